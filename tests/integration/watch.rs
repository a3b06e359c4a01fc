//! Instant detection: with `serve` probing once an hour and its periodic re-read also set to
//! an hour, a certbot symlink swap, an atomic rename and a Kubernetes `..data` swap each put
//! the new verdict on /metrics at once, and move `certdrift_disk_change_timestamp_seconds`;
//! a change no event reports is found by the periodic re-read.

use std::os::unix::fs::symlink;
use std::path::Path;

use crate::serve::{scrape_until, start_serve};
use crate::util::{ChildGuard, LocalSite};

/// Starts `serve` on `site`, reading `cert`, with an hour between probes and the fallback
/// re-read every `fallback`: with an hour, only the watcher can notice a change within the
/// test.
async fn serve_with_fallback(
    site: &LocalSite,
    cert: &Path,
    fallback: &str,
) -> (ChildGuard, String) {
    let table = site.site_table("watched").replace(
        &format!("cert = \"{}\"", site.fullchain().display()),
        &format!("cert = \"{}\"", cert.display()),
    );
    let config = site.dir.path().join("certdrift.toml");
    std::fs::write(
        &config,
        format!("interval = \"1h\"\nwatch_fallback = \"{fallback}\"\ntimeout = \"5s\"\n\n{table}"),
    )
    .unwrap();
    start_serve(&config, &site.dir.path().join("serve.log")).await
}

/// The line `certdrift_verdict{...,verdict="VERDICT"} 1` for `site`.
fn verdict_line(site: &LocalSite, verdict: &str) -> String {
    format!(
        "certdrift_verdict{{site=\"watched\",address=\"{}\",verdict=\"{verdict}\"}} 1",
        site.address()
    )
}

/// The value of `certdrift_disk_change_timestamp_seconds` for `cert` in `scrape`.
fn disk_change(scrape: &str, cert: &Path) -> f64 {
    let prefix = format!(
        "certdrift_disk_change_timestamp_seconds{{site=\"watched\",file=\"{}\"}} ",
        cert.display()
    );
    let line = scrape
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` in\n{scrape}"));
    line[prefix.len()..].parse().unwrap()
}

/// A running `serve` on a site, and the disk change time it first exported.
struct Watched {
    _serve: ChildGuard,
    base: String,
    first: f64,
}

impl Watched {
    /// Starts `serve` on `site` reading `cert` and waits for verdict `before`.
    async fn start(site: &LocalSite, cert: &Path, before: &str) -> Self {
        Self::start_with_fallback(site, cert, before, "1h").await
    }

    /// Like [`Watched::start`], with the fallback re-read every `fallback`.
    async fn start_with_fallback(
        site: &LocalSite,
        cert: &Path,
        before: &str,
        fallback: &str,
    ) -> Self {
        let (serve, base) = serve_with_fallback(site, cert, fallback).await;
        let scrape = scrape_until(&base, &verdict_line(site, before)).await;
        Self {
            _serve: serve,
            first: disk_change(&scrape, cert),
            base,
        }
    }

    /// Waits for verdict `after` (far less than the hour of the interval), and checks that
    /// the disk change time moved forward.
    async fn assert_seen(&self, site: &LocalSite, cert: &Path, after: &str) {
        let scrape = scrape_until(&self.base, &verdict_line(site, after)).await;
        let second = disk_change(&scrape, cert);
        assert!(
            second > self.first,
            "the disk change time moved: {} -> {second}",
            self.first
        );
    }
}

#[tokio::test]
async fn a_certbot_symlink_swap_is_seen_without_waiting_for_the_interval() {
    let mut site = LocalSite::start("swap.certdrift.test").await;
    let cert = site.fullchain();
    let watched = Watched::start(&site, &cert, "in_sync").await;

    // Generation 2 written and the four live/ links re-pointed by unlink and symlink, one
    // after another, as certbot does.
    site.renew();
    watched.assert_seen(&site, &cert, "reload_needed").await;
}

#[tokio::test]
async fn an_atomic_rename_over_the_file_is_seen_without_waiting_for_the_interval() {
    let mut site = LocalSite::start("rename.certdrift.test").await;
    let deployed = site.dir.path().join("deployed");
    std::fs::create_dir(&deployed).unwrap();
    let cert = deployed.join("fullchain.pem");
    std::fs::write(&cert, site.generations[0].fullchain_pem()).unwrap();
    site.renew();
    let watched = Watched::start(&site, &cert, "in_sync").await;

    // A deploy step writes a temp file beside it and renames it over the old one.
    let temp = deployed.join(".fullchain.pem.tmp");
    std::fs::write(&temp, site.generations[1].fullchain_pem()).unwrap();
    std::fs::rename(&temp, &cert).unwrap();
    watched.assert_seen(&site, &cert, "reload_needed").await;
}

#[tokio::test]
async fn a_kubernetes_data_symlink_swap_is_seen_without_waiting_for_the_interval() {
    let mut site = LocalSite::start("secret.certdrift.test").await;
    site.renew();
    // A Secret mounted as a volume: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/.
    let volume = site.dir.path().join("secret");
    let write_version = |version: &str, pem: String| {
        std::fs::create_dir_all(volume.join(version)).unwrap();
        std::fs::write(volume.join(version).join("tls.crt"), pem).unwrap();
    };
    write_version("..2026_12_01", site.generations[0].fullchain_pem());
    symlink("..2026_12_01", volume.join("..data")).unwrap();
    symlink("..data/tls.crt", volume.join("tls.crt")).unwrap();
    let cert = volume.join("tls.crt");
    let watched = Watched::start(&site, &cert, "in_sync").await;

    // The kubelet writes the new version and renames a new ..data link over the old one.
    write_version("..2026_12_02", site.generations[1].fullchain_pem());
    symlink("..2026_12_02", volume.join("..data_tmp")).unwrap();
    std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
    watched.assert_seen(&site, &cert, "reload_needed").await;
}

#[tokio::test]
async fn a_change_no_watched_directory_sees_is_found_by_the_fallback_re_read() {
    let mut site = LocalSite::start("fallback.certdrift.test").await;
    site.renew();
    let deployed = site.dir.path().join("deployed");
    let elsewhere = site.dir.path().join("elsewhere");
    std::fs::create_dir(&deployed).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    let cert = deployed.join("fullchain.pem");
    std::fs::write(&cert, site.generations[0].fullchain_pem()).unwrap();
    // A hard link in a directory nobody watches: a write through it changes the watched
    // file but raises no event in its directory, like a write on another NFS client.
    let other_name = elsewhere.join("fullchain.pem");
    std::fs::hard_link(&cert, &other_name).unwrap();
    let watched = Watched::start_with_fallback(&site, &cert, "in_sync", "1s").await;

    std::fs::write(&other_name, site.generations[1].fullchain_pem()).unwrap();
    watched.assert_seen(&site, &cert, "reload_needed").await;
}
