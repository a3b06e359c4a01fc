//! `certdrift serve`: the endpoints as a scraper and a person see them.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::util::{ChildGuard, LocalSite, http_get, require, spawn_serve, tarpit, wait_for};

/// Starts `serve` on a free port with `config` and waits for `/healthz`.
pub async fn start_serve(config: &std::path::Path, log: &std::path::Path) -> (ChildGuard, String) {
    spawn_serve(config, log, "--listen", &[], &[]).await
}

/// Scrapes `/metrics` until `line` appears, and returns the whole scrape.
pub async fn scrape_until(base: &str, line: &str) -> String {
    let url = format!("{base}/metrics");
    wait_for(
        &format!("`{line}` on /metrics"),
        Duration::from_secs(30),
        || {
            let url = url.clone();
            async move {
                let (_, body) = http_get(&url).await?;
                if body.lines().any(|l| l == line) {
                    Ok(body)
                } else {
                    Err(body
                        .lines()
                        .filter(|l| l.starts_with("certdrift_verdict"))
                        .collect::<Vec<_>>()
                        .join("\n"))
                }
            }
        },
    )
    .await
}

#[tokio::test]
async fn serve_exports_each_site_and_address_and_stops_on_sigterm() {
    let synced = LocalSite::start("synced.certdrift.test").await;
    let mut drifted = LocalSite::start("drifted.certdrift.test").await;
    drifted.renew();
    let config = synced.dir.path().join("certdrift.toml");
    std::fs::write(
        &config,
        format!(
            "interval = \"2s\"\ntimeout = \"2s\"\n\n{}{}",
            synced.site_table("synced"),
            drifted.site_table("drifted")
        ),
    )
    .unwrap();
    let log = synced.dir.path().join("serve.log");
    let (mut child, base) = start_serve(&config, &log).await;

    let drifted_at = drifted.address().to_string();
    let synced_at = synced.address().to_string();
    let want = format!(
        "certdrift_verdict{{site=\"drifted\",address=\"{drifted_at}\",verdict=\"reload_needed\"}} 1"
    );
    let scrape = scrape_until(&base, &want).await;
    let expect = [
        format!(
            "certdrift_verdict{{site=\"drifted\",address=\"{drifted_at}\",verdict=\"in_sync\"}} 0"
        ),
        format!(
            "certdrift_verdict{{site=\"synced\",address=\"{synced_at}\",verdict=\"in_sync\"}} 1"
        ),
        format!(
            "certdrift_verdict{{site=\"synced\",address=\"{synced_at}\",verdict=\"reload_needed\"}} 0"
        ),
        format!("certdrift_probe_success{{site=\"drifted\",address=\"{drifted_at}\"}} 1"),
        format!("certdrift_served_cert_verified{{site=\"drifted\",address=\"{drifted_at}\"}} 1"),
        format!(
            "certdrift_served_cert_not_after_seconds{{site=\"drifted\",address=\"{drifted_at}\"}} {}",
            drifted.generations[0].summary().not_after.unix_timestamp()
        ),
        format!(
            "certdrift_disk_cert_not_after_seconds{{site=\"drifted\",file=\"{}\"}} {}",
            drifted.fullchain().display(),
            drifted.generations[1].summary().not_after.unix_timestamp()
        ),
        format!(
            "certdrift_served_cert_not_before_seconds{{site=\"drifted\",address=\"{drifted_at}\"}} {}",
            drifted.generations[0].summary().not_before.unix_timestamp()
        ),
        format!(
            "certdrift_disk_cert_not_before_seconds{{site=\"drifted\",file=\"{}\"}} {}",
            drifted.fullchain().display(),
            drifted.generations[1].summary().not_before.unix_timestamp()
        ),
        format!(
            "certdrift_disk_read_success{{site=\"drifted\",file=\"{}\"}} 1",
            drifted.fullchain().display()
        ),
        format!(
            "certdrift_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
    ];
    for line in &expect {
        assert!(
            scrape.lines().any(|l| l == line),
            "missing `{line}` in\n{scrape}"
        );
    }
    let served_info = scrape
        .lines()
        .find(|l| l.starts_with("certdrift_served_cert_info{site=\"drifted\""))
        .expect("served info");
    assert!(
        served_info.contains(&format!("serial=\"{}\"", drifted.serial(1))),
        "{served_info}"
    );
    let disk_info = scrape
        .lines()
        .find(|l| l.starts_with("certdrift_disk_cert_info{site=\"drifted\""))
        .expect("disk info");
    assert!(
        disk_info.contains(&format!("serial=\"{}\"", drifted.serial(2))),
        "{disk_info}"
    );
    assert!(scrape.contains(&format!(
        "certdrift_drift_since_seconds{{site=\"drifted\",address=\"{drifted_at}\"}}"
    )));
    // The time series of the probe itself: a recent Unix time, and a duration under the
    // probe deadline.
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    let last_probe = series_value(
        &scrape,
        &format!(
            "certdrift_last_probe_timestamp_seconds{{site=\"drifted\",address=\"{drifted_at}\"}} "
        ),
    )
    .expect("certdrift_last_probe_timestamp_seconds");
    assert!(
        last_probe > now - 120.0 && last_probe <= now + 1.0,
        "{last_probe} vs {now}"
    );
    let duration = series_value(
        &scrape,
        &format!("certdrift_probe_duration_seconds{{site=\"drifted\",address=\"{drifted_at}\"}} "),
    )
    .expect("certdrift_probe_duration_seconds");
    assert!(duration > 0.0 && duration < 10.0, "{duration}");
    assert!(
        !scrape.contains("certdrift_drift_since_seconds{site=\"synced\""),
        "no drift, no series"
    );

    // The scrape is valid exposition format, as promtool judges it.
    let promtool = require("promtool");
    let mut check = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .await
        .unwrap();
    let output = check.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // The status API carries the same verdicts.
    let (status, body) = http_get(&format!("{base}/api/v1/status")).await.unwrap();
    assert_eq!(status, 200);
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    let verdicts: Vec<(String, String)> = document["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["site"].as_str().unwrap().to_owned(),
                r["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("synced".into(), "in_sync".into()),
            ("drifted".into(), "reload_needed".into())
        ]
    );

    // A reload is seen at the next interval, and the drift series goes away.
    drifted.serve_generation(2);
    let want = format!(
        "certdrift_verdict{{site=\"drifted\",address=\"{drifted_at}\",verdict=\"in_sync\"}} 1"
    );
    let scrape = scrape_until(&base, &want).await;
    assert!(
        !scrape.contains("certdrift_drift_since_seconds"),
        "{scrape}"
    );

    child.signal("TERM");
    let code = child.wait_exit(Duration::from_secs(10));
    assert_eq!(
        code,
        Some(0),
        "serve exits 0 on SIGTERM; log:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("verdict changed"), "{log_text}");
    assert!(log_text.contains("certdrift stopped"), "{log_text}");
}

#[tokio::test]
async fn recheck_probes_at_once_instead_of_waiting_for_the_interval() {
    let mut site = LocalSite::start("recheck.certdrift.test").await;
    let config = site.dir.path().join("certdrift.toml");
    std::fs::write(
        &config,
        format!("interval = \"1h\"\n\n{}", site.site_table("recheck")),
    )
    .unwrap();
    let (_child, base) = start_serve(&config, &site.dir.path().join("serve.log")).await;
    let at = site.address().to_string();
    scrape_until(
        &base,
        &format!("certdrift_verdict{{site=\"recheck\",address=\"{at}\",verdict=\"in_sync\"}} 1"),
    )
    .await;

    site.renew();
    let response = reqwest::Client::new()
        .post(format!("{base}/-/recheck"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    scrape_until(
        &base,
        &format!(
            "certdrift_verdict{{site=\"recheck\",address=\"{at}\",verdict=\"reload_needed\"}} 1"
        ),
    )
    .await;
}

/// The value of the series that starts with `prefix` (name and labels) in `scrape`.
fn series_value(scrape: &str, prefix: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(prefix))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn a_recheck_that_arrives_during_a_probe_probes_again_when_it_ends() {
    // A peer that accepts and never speaks keeps the site's probe in flight for the whole
    // handshake timeout, so the request below lands while the site is not waiting.
    let at = tarpit().await;
    let site = LocalSite::start("inflight.certdrift.test").await;
    let config = site.dir.path().join("certdrift.toml");
    std::fs::write(
        &config,
        format!(
            "interval = \"1h\"\ntimeout = \"3s\"\n\n[[site]]\nname = \"slow\"\nhost = \"127.0.0.1\"\n\
             port = {}\nsni = \"inflight.certdrift.test\"\ncert = \"{}\"\nhandshakes = 1\n",
            at.port(),
            site.fullchain().display()
        ),
    )
    .unwrap();
    let (_child, base) = start_serve(&config, &site.dir.path().join("serve.log")).await;

    // The first pass starts at once and takes 3 s; ask for a re-check during it.
    let response = reqwest::Client::new()
        .post(format!("{base}/-/recheck"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let prefix =
        format!("certdrift_last_probe_timestamp_seconds{{site=\"slow\",address=\"{at}\"}} ");
    let url = format!("{base}/metrics");
    let first = wait_for("the first probe's result", Duration::from_secs(20), || {
        let url = url.clone();
        let prefix = prefix.clone();
        async move {
            let (_, body) = http_get(&url).await?;
            series_value(&body, &prefix).ok_or(body)
        }
    })
    .await;
    // With a one-hour interval, only the re-check can bring a second probe.
    wait_for(
        "a second probe, for the re-check",
        Duration::from_secs(20),
        || {
            let url = url.clone();
            let prefix = prefix.clone();
            async move {
                let (_, body) = http_get(&url).await?;
                match series_value(&body, &prefix) {
                    Some(value) if value > first => Ok(()),
                    other => Err(format!("last probe still {other:?}")),
                }
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_site_stuck_in_its_probe_delays_neither_the_others_nor_the_http_side() {
    let stuck_at = tarpit().await;
    let good = LocalSite::start("steady.certdrift.test").await;
    let config = good.dir.path().join("certdrift.toml");
    std::fs::write(
        &config,
        format!(
            "interval = \"1s\"\ntimeout = \"8s\"\n\n[[site]]\nname = \"stuck\"\nhost = \"127.0.0.1\"\n\
             port = {}\nsni = \"stuck.certdrift.test\"\ncert = \"{}\"\nhandshakes = 1\n\n{}",
            stuck_at.port(),
            good.fullchain().display(),
            good.site_table("steady")
        ),
    )
    .unwrap();
    let (_child, base) = start_serve(&config, &good.dir.path().join("serve.log")).await;

    // While the stuck site's first probe waits out its 8 s, the good site is probed every
    // second and /metrics answers every poll.
    let good_probe = format!(
        "certdrift_last_probe_timestamp_seconds{{site=\"steady\",address=\"{}\"}} ",
        good.address()
    );
    let mut seen = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        let (status, body) = http_get(&format!("{base}/metrics")).await.unwrap();
        assert_eq!(status, 200);
        assert!(
            !body.contains("certdrift_probe_success{site=\"stuck\""),
            "the stuck probe cannot have ended yet:\n{body}"
        );
        if let Some(value) = series_value(&body, &good_probe)
            && !seen.contains(&value)
        {
            seen.push(value);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        seen.len() >= 3,
        "the good site was probed {} times in 6 s: {seen:?}",
        seen.len()
    );
}

#[tokio::test]
async fn serve_refuses_an_address_in_use_with_a_clear_error() {
    let site = LocalSite::start("busy.certdrift.test").await;
    let config = site.dir.path().join("certdrift.toml");
    std::fs::write(&config, site.site_table("busy")).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let run = crate::util::certdrift(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        &listen,
    ])
    .await;
    assert_eq!(run.status, 2, "{run:?}");
    assert!(
        run.stderr.contains(&format!("cannot listen on {listen}")),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_chain_finding_is_exported_while_present() {
    let site = LocalSite::start("finding.certdrift.test").await;
    let first = &site.generations[0];
    site.server
        .reload(first.cert_pem(), first.key_pem())
        .unwrap();
    let config = site.dir.path().join("certdrift.toml");
    std::fs::write(
        &config,
        format!(
            "interval = \"1s\"\ntimeout = \"2s\"\n\n{}",
            site.site_table("finding")
        ),
    )
    .unwrap();
    let (_child, base) = start_serve(&config, &site.dir.path().join("serve.log")).await;
    let at = site.address().to_string();
    let finding = format!(
        "certdrift_finding{{site=\"finding\",address=\"{at}\",finding=\"chain_incomplete\"}} 1"
    );
    let scrape = scrape_until(&base, &finding).await;
    assert!(
        scrape.lines().any(|l| l
            == format!(
                "certdrift_verdict{{site=\"finding\",address=\"{at}\",verdict=\"in_sync\"}} 1"
            )),
        "{scrape}"
    );
    let findings: Vec<&str> = scrape
        .lines()
        .filter(|l| l.starts_with("certdrift_finding{"))
        .collect();
    assert_eq!(findings, [finding.as_str()]);

    // Served with its intermediate again: the series goes away at the next pass.
    site.server
        .reload(&first.fullchain_pem(), first.key_pem())
        .unwrap();
    let url = format!("{base}/metrics");
    wait_for("the finding to go away", Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            let (_, body) = http_get(&url).await?;
            match body.lines().find(|l| l.starts_with("certdrift_finding{")) {
                Some(line) => Err(line.to_owned()),
                None => Ok(()),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn the_status_api_lists_the_sites_not_probed_yet() {
    // With a long interval the first pass is spread over it too: `first` is probed at once,
    // `second` only half an hour later, so it stays pending for the whole test.
    let site = LocalSite::start("first.certdrift.test").await;
    let config = site.dir.path().join("certdrift.toml");
    std::fs::write(
        &config,
        format!(
            "interval = \"1h\"\n{}[[site]]\nname = \"second\"\nhost = \"127.0.0.1\"\nport = {}\n\
             cert = \"/nonexistent/second.pem\"\n",
            site.site_table("first"),
            crate::util::free_port()
        ),
    )
    .unwrap();
    let (_serve, base) = start_serve(&config, &site.dir.path().join("serve.log")).await;

    let url = format!("{base}/api/v1/status");
    let document = wait_for("the first site's result", Duration::from_secs(20), || {
        let url = url.clone();
        async move {
            let (_, body) = http_get(&url).await?;
            let document: serde_json::Value =
                serde_json::from_str(&body).map_err(|err| err.to_string())?;
            if document["results"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                Ok(document)
            } else {
                Err(body)
            }
        }
    })
    .await;
    assert_eq!(
        document["pending"],
        serde_json::json!(["second"]),
        "{document}"
    );
    let sites: Vec<&str> = document["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| result["site"].as_str().unwrap())
        .collect();
    assert_eq!(sites, ["first"], "{document}");
}
