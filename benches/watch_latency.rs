//! How long `serve` takes from a certificate file change to the new verdict on /metrics.
//!
//! Runs the real binary on loopback against an in-process TLS server, with an hour between
//! probes and between fallback re-reads, so every verdict change comes from the watcher.
//! Each round re-points a certbot lineage's live/ links (generation 2, then back to 1) and
//! polls /metrics every 5 ms until the verdict flips. `cargo bench --bench watch_latency`
//! runs 30 rounds and prints the figures; without `--bench` (as `cargo test --all-targets`
//! runs it) it does one round, as a smoke test.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use certdrift::demo::ca::{LeafSpec, TestCa};
use certdrift::demo::layout::CertbotLineage;
use certdrift::demo::server::LocalTlsServer;

const NAME: &str = "bench.certdrift.test";
/// The most any one wait may take before the benchmark gives up.
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() {
    let rounds = if std::env::args().any(|arg| arg == "--bench") {
        30
    } else {
        1
    };

    let dir = tempfile::tempdir().expect("a temp dir");
    let ca = TestCa::new("bench CA");
    let lineage = CertbotLineage::new(dir.path().join("letsencrypt"), NAME);
    let first = ca.issue(&LeafSpec::new([NAME]));
    let later = first.summary().not_before + time::Duration::hours(1);
    let second =
        ca.issue(&LeafSpec::new([NAME]).valid_between(later, later + time::Duration::days(90)));
    lineage.write_generation(1, &first).expect("generation 1");
    lineage.write_generation(2, &second).expect("generation 2");
    lineage.point_live_at(1).expect("live/ at 1");
    let server = LocalTlsServer::start(
        "127.0.0.1:0".parse().unwrap(),
        &first.fullchain_pem(),
        first.key_pem(),
    )
    .await
    .expect("the TLS server starts");
    let ca_file = dir.path().join("root.pem");
    std::fs::write(&ca_file, ca.root_pem()).expect("the CA file");

    let address = server.local_addr();
    let config = dir.path().join("certdrift.toml");
    std::fs::write(
        &config,
        format!(
            "interval = \"1h\"\nwatch_fallback = \"1h\"\n[[site]]\nname = \"bench\"\nhost = \"{}\"\nport = {}\n\
             sni = \"{NAME}\"\ncert = \"{}\"\nca_file = \"{}\"\n",
            address.ip(),
            address.port(),
            lineage.live_path("fullchain").display(),
            ca_file.display()
        ),
    )
    .expect("the config");
    let listen = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("its address")
    };
    let mut serve = Command::new(env!("CARGO_BIN_EXE_certdrift"))
        .args(["serve", "--config", config.to_str().unwrap(), "--listen"])
        .arg(listen.to_string())
        .env("CERTDRIFT_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("serve starts");

    let metrics = format!("http://{listen}/metrics");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    let line = |verdict: &str| {
        format!("certdrift_verdict{{site=\"bench\",address=\"{address}\",verdict=\"{verdict}\"}} 1")
    };
    wait_for_line(&client, &metrics, &line("in_sync")).await;

    let mut took = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (generation, verdict) = if round % 2 == 0 {
            (2, "reload_needed")
        } else {
            (1, "in_sync")
        };
        let started = Instant::now();
        lineage.point_live_at(generation).expect("live/ re-pointed");
        wait_for_line(&client, &metrics, &line(verdict)).await;
        took.push(started.elapsed());
    }
    let _ = serve.kill();
    let _ = serve.wait();
    report(&mut took, &lineage.live_dir());
}

/// Polls `url` every 5 ms until a line equals `line`.
async fn wait_for_line(client: &reqwest::Client, url: &str, line: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(response) = client.get(url).send().await
            && let Ok(body) = response.text().await
            && body.lines().any(|seen| seen == line)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{line}` did not appear on {url} within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[allow(clippy::print_stdout)] // The figures are the benchmark's output.
fn report(took: &mut [Duration], live: &Path) {
    took.sort();
    let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
    let at = |fraction: f64| took[((took.len() - 1) as f64 * fraction).round() as usize];
    println!(
        "watch_latency: {} change(s) of {} (certbot-style link swap) to the new verdict on /metrics",
        took.len(),
        live.display()
    );
    println!(
        "  min {:.0} ms, median {:.0} ms, p90 {:.0} ms, max {:.0} ms (polling every 5 ms; debounce {} ms)",
        ms(took[0]),
        ms(at(0.5)),
        ms(at(0.9)),
        ms(took[took.len() - 1]),
        certdrift::watch::DEBOUNCE.as_millis()
    );
}
