//! Real nginx serving a certbot-style lineage: it keeps what it loaded until reloaded, and
//! the who-is-serving hints name it; and haproxy -W, whose hint names the master, not the
//! worker that holds the socket.

use certdrift::demo::ca::{LeafSpec, TestCa};
use certdrift::demo::layout::CertbotLineage;

use crate::serve::{scrape_until, start_serve};
use crate::servers::{Haproxy, Nginx, check_until};
use crate::util::{certdrift, check_json_args, free_port, strs};

const NAME: &str = "nginx.certdrift.test";

#[tokio::test]
async fn nginx_serves_the_old_generation_until_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("nginx test CA");
    let lineage = CertbotLineage::new(dir.path().join("letsencrypt"), NAME);
    let first = ca.issue(&LeafSpec::new([NAME]));
    let second = {
        let later = first.summary().not_before + time::Duration::hours(1);
        ca.issue(&LeafSpec::new([NAME]).valid_between(later, later + time::Duration::days(90)))
    };
    lineage.write_generation(1, &first).unwrap();
    lineage.point_live_at(1).unwrap();
    let ca_file = dir.path().join("root.pem");
    std::fs::write(&ca_file, ca.root_pem()).unwrap();

    let nginx = Nginx::start(
        &["127.0.0.1"],
        NAME,
        &lineage.live_path("fullchain"),
        &lineage.live_path("privkey"),
    )
    .await;
    let address = format!("127.0.0.1:{}", nginx.port).parse().unwrap();
    let args = check_json_args(address, NAME, &lineage.live_path("fullchain"), &ca_file);

    // Generation 1 on disk and served.
    let run = certdrift(&strs(&args)).await;
    assert_eq!(run.status, 0, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync");
    assert_eq!(result["served"]["serial"], first.summary().serial);
    assert_eq!(result["served"]["verification"]["result"], "trusted");
    assert_eq!(result["served"]["chain_length"], 2);

    // certbot-style renewal: generation 2 written, live/ re-pointed, nginx not reloaded.
    lineage.write_generation(2, &second).unwrap();
    lineage.point_live_at(2).unwrap();
    let run = certdrift(&strs(&args)).await;
    assert_eq!(run.status, 1, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "reload_needed");
    assert_eq!(result["served"]["serial"], first.summary().serial);
    assert_eq!(result["disk"]["serial"], second.summary().serial);

    // serve exports the same.
    let config = dir.path().join("certdrift.toml");
    std::fs::write(
        &config,
        format!(
            "interval = \"1s\"\n[[site]]\nname = \"nginx\"\nhost = \"127.0.0.1\"\nport = {}\nsni = \"{NAME}\"\ncert = \"{}\"\nca_file = \"{}\"\n",
            nginx.port,
            lineage.live_path("fullchain").display(),
            ca_file.display()
        ),
    )
    .unwrap();
    let (_serve, base) = start_serve(&config, &dir.path().join("serve.log")).await;
    let address = format!("127.0.0.1:{}", nginx.port);
    scrape_until(
        &base,
        &format!(
            "certdrift_verdict{{site=\"nginx\",address=\"{address}\",verdict=\"reload_needed\"}} 1"
        ),
    )
    .await;

    // nginx -s reload: in sync again, in check and in serve.
    nginx.reload().await;
    let run = check_until(&args, "in_sync").await;
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(
        run.first_result()["served"]["serial"],
        second.summary().serial
    );
    scrape_until(
        &base,
        &format!("certdrift_verdict{{site=\"nginx\",address=\"{address}\",verdict=\"in_sync\"}} 1"),
    )
    .await;

    // live/ pointed back at generation 1 while 2 is served: do not reload.
    lineage.point_live_at(1).unwrap();
    let run = certdrift(&strs(&args)).await;
    assert_eq!(run.status, 1, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "disk_older");
    assert_eq!(result["served"]["serial"], second.summary().serial);
    assert_eq!(result["disk"]["serial"], first.summary().serial);
    assert!(nginx.pid() > 0);
}

/// A lineage with generation 1 live, its CA file, and generation 2 issued but not written.
struct Renewal {
    dir: tempfile::TempDir,
    lineage: CertbotLineage,
    ca_file: std::path::PathBuf,
    first: certdrift::demo::ca::IssuedCert,
    second: certdrift::demo::ca::IssuedCert,
}

impl Renewal {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("who-serves test CA");
        let lineage = CertbotLineage::new(dir.path().join("letsencrypt"), name);
        let first = ca.issue(&LeafSpec::new([name]));
        let later = first.summary().not_before + time::Duration::hours(1);
        let second =
            ca.issue(&LeafSpec::new([name]).valid_between(later, later + time::Duration::days(90)));
        lineage.write_generation(1, &first).unwrap();
        lineage.point_live_at(1).unwrap();
        let ca_file = dir.path().join("root.pem");
        std::fs::write(&ca_file, ca.root_pem()).unwrap();
        Self {
            dir,
            lineage,
            ca_file,
            first,
            second,
        }
    }

    /// certbot's renewal: generation 2 written, live/ re-pointed.
    fn renew(&self) {
        self.lineage.write_generation(2, &self.second).unwrap();
        self.lineage.point_live_at(2).unwrap();
    }
}

/// The hint of a `check` with `args` that must exit 1 with `reload_needed`.
async fn reload_needed_hint(args: &[String]) -> String {
    let run = certdrift(&strs(args)).await;
    assert_eq!(run.status, 1, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "reload_needed");
    result["hint"]
        .as_str()
        .unwrap_or_else(|| panic!("no hint in {result}"))
        .to_owned()
}

#[tokio::test]
async fn a_renewal_without_reload_names_nginx_and_its_pid() {
    let renewal = Renewal::new(NAME);
    let live = renewal.lineage.live_path("fullchain");
    let nginx = Nginx::start(
        &["127.0.0.1"],
        NAME,
        &live,
        &renewal.lineage.live_path("privkey"),
    )
    .await;
    let address = format!("127.0.0.1:{}", nginx.port).parse().unwrap();
    let args = check_json_args(address, NAME, &live, &renewal.ca_file);
    // In sync first: a worker has answered, so every nginx process started before the
    // renewal below.
    let run = check_until(&args, "in_sync").await;
    assert_eq!(run.first_result()["hint"], serde_json::Value::Null);

    renewal.renew();
    let hint = reload_needed_hint(&args).await;
    assert!(
        hint.starts_with(&format!(
            "nginx (pid {}) started before the disk changed: reload it",
            nginx.pid()
        )),
        "{hint}"
    );
    // The table report carries it under the row's advice.
    let table: Vec<String> = args
        .iter()
        .map(|arg| {
            if arg == "json" {
                "table".to_owned()
            } else {
                arg.clone()
            }
        })
        .collect();
    let run = certdrift(&strs(&table)).await;
    assert!(
        run.stdout.contains(&format!(
            "\n  who serves it: nginx (pid {}) started before the disk changed: reload it",
            nginx.pid()
        )),
        "{run:?}"
    );
}

#[tokio::test]
async fn nginx_reloaded_but_reading_a_copy_gets_the_other_file_hint() {
    let renewal = Renewal::new(NAME);
    // nginx loads a copy of generation 1 (as from a container image or a chroot), while
    // certdrift is told the server loads the lineage's live/ file.
    let copy_dir = renewal.dir.path().join("copy");
    std::fs::create_dir(&copy_dir).unwrap();
    let (copy, copy_key) = (copy_dir.join("fullchain.pem"), copy_dir.join("privkey.pem"));
    std::fs::write(&copy, renewal.first.fullchain_pem()).unwrap();
    std::fs::write(&copy_key, renewal.first.key_pem()).unwrap();
    let nginx = Nginx::start(&["127.0.0.1"], NAME, &copy, &copy_key).await;
    let live = renewal.lineage.live_path("fullchain");
    let address = format!("127.0.0.1:{}", nginx.port).parse().unwrap();
    let args = check_json_args(address, NAME, &live, &renewal.ca_file);
    check_until(&args, "in_sync").await;

    renewal.renew();
    nginx.reload().await;
    // The new workers start a moment after `nginx -s reload` returns; until then the old
    // ones still hold the socket.
    let hint = crate::util::wait_for(
        "the hint about a reloaded nginx",
        std::time::Duration::from_secs(20),
        || {
            let args = args.clone();
            async move {
                let result = certdrift(&strs(&args)).await.first_result();
                let hint = result["hint"].as_str().unwrap_or_default().to_owned();
                if result["verdict"] == "reload_needed" && hint.contains("was reloaded") {
                    Ok(hint)
                } else {
                    Err(result.to_string())
                }
            }
        },
    )
    .await;
    assert!(
        hint.starts_with(&format!(
            "nginx (pid {}) was reloaded after the change and still serves the old certificate: \
             it reads another file (a bind-mounted single file, a container, a chroot)",
            nginx.pid()
        )),
        "{hint}"
    );
}

#[tokio::test]
async fn a_haproxy_master_worker_is_named_by_its_master_across_reloads() {
    const HAPROXY_NAME: &str = "haproxy.certdrift.test";
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("haproxy hint test CA");
    let ca_file = dir.path().join("root.pem");
    std::fs::write(&ca_file, ca.root_pem()).unwrap();
    // haproxy's combined PEM, as a deploy hook writes it.
    let combined = dir.path().join("site.pem");
    let deploy = |serial: u8| {
        let issued = ca.issue(&LeafSpec::new([HAPROXY_NAME]).serial(&[serial]));
        let text = format!("{}{}", issued.fullchain_pem(), issued.key_pem());
        std::fs::write(&combined, text).unwrap();
    };
    deploy(1);
    let port = free_port();
    let cfg = format!(
        "defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend site
    bind 127.0.0.1:{port} ssl crt {}
    default_backend nowhere

backend nowhere
",
        combined.display()
    );
    let haproxy = Haproxy::start(dir, &cfg, &[port]).await;
    let address = format!("127.0.0.1:{port}").parse().unwrap();
    let args = check_json_args(address, HAPROXY_NAME, &combined, &ca_file);
    check_until(&args, "in_sync").await;
    let master_named = format!(
        "haproxy (pid {}) started before the disk changed: reload it",
        haproxy.pid()
    );

    // Two deploys without a reload, one before and one after a reload (which replaces the
    // worker): both hints name the master the test started.
    for serial in [2, 3] {
        deploy(serial);
        let hint = reload_needed_hint(&args).await;
        assert!(hint.starts_with(&master_named), "{hint}");
        haproxy.reload();
        check_until(&args, "in_sync").await;
    }
}
