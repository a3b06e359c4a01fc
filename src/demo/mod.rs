//! `certdrift demo`: the main job, shown on a machine with nothing configured.
//!
//! A throw-away CA ([`ca`]) issues two generations of a certificate into a certbot-style
//! layout ([`layout`]) in a temporary directory, and a local TLS server ([`server`]) plays
//! nginx. The demo walks through the four states an operator meets and prints what `check`
//! says at each, plus what `serve` would export while the server needs a reload.
//!
//! The same pieces build the fixtures of the test suite.

pub mod ca;
pub mod layout;
pub mod server;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use time::{Duration, OffsetDateTime};

use crate::check;
use crate::config::{AdHoc, Config};
use crate::metrics::Metrics;
use crate::probe::Prober;
use crate::report;
use crate::state::Store;
use crate::verdict::Verdict;
use ca::{LeafSpec, TestCa};
use layout::CertbotLineage;
use server::LocalTlsServer;

/// The demo's certificate name; `.test` is reserved (RFC 6761) and never resolves.
pub const DEMO_NAME: &str = "demo.certdrift.test";

/// Runs the demo, writing the walk-through to `out`.
///
/// Returns whether every step showed the expected verdict.
///
/// # Errors
///
/// When the temporary directory cannot be written or the local server cannot bind.
pub async fn run(out: &mut dyn Write) -> anyhow::Result<bool> {
    let dir = tempfile::Builder::new()
        .prefix("certdrift-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let ca = TestCa::new("certdrift demo CA");
    let lineage = CertbotLineage::new(dir.path().join("letsencrypt"), DEMO_NAME);
    let ca_file = dir.path().join("demo-root.pem");
    std::fs::write(&ca_file, ca.root_pem()).context("cannot write the demo CA file")?;

    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    // Reports count whole days left, rounded down, so a certificate that expires exactly 10
    // days from now has 9 days left a moment later. The hour keeps the counts the text says.
    let margin = Duration::hours(1);
    let generation_1 = ca.issue(
        &LeafSpec::new([DEMO_NAME])
            .valid_between(now - Duration::days(80), now + Duration::days(10) + margin),
    );
    let generation_2 = ca.issue(
        &LeafSpec::new([DEMO_NAME])
            .valid_between(now - Duration::hours(1), now + Duration::days(90) + margin),
    );
    lineage.write_generation(1, &generation_1)?;
    lineage.point_live_at(1)?;

    let bind: SocketAddr = "127.0.0.1:0".parse().expect("a literal address");
    let server = LocalTlsServer::start(bind, &generation_1.fullchain_pem(), generation_1.key_pem())
        .await
        .context("cannot start the demo's local TLS server")?;
    let address = server.local_addr();
    let fullchain = lineage.live_path("fullchain");
    let ip = address.ip().to_string();
    let config = Config::ad_hoc(AdHoc {
        port: Some(address.port()),
        sni: Some(DEMO_NAME),
        ca_file: Some(&ca_file),
        ..AdHoc::new(&ip, &fullchain)
    })?;
    let prober = Prober::new(config.ca_files()).map_err(anyhow::Error::msg)?;

    writeln!(
        out,
        "certdrift demo: a renewal on disk that the server does not pick up\n"
    )?;
    writeln!(
        out,
        "Working in {} (removed at the end).",
        dir.path().display()
    )?;
    writeln!(
        out,
        "A throw-away CA issues {DEMO_NAME}; a local TLS server on {address} plays nginx, which\n\
         keeps the certificate it loaded until it is reloaded. Each step runs the equivalent of:\n\n  \
         certdrift check --host {} --port {} --sni {DEMO_NAME} \\\n    --cert {} --ca-file {}\n",
        address.ip(),
        address.port(),
        fullchain.display(),
        ca_file.display()
    )?;

    let mut seen = Vec::new();

    writeln!(
        out,
        "1. Generation 1 is on disk (live/ -> archive/...1.pem) and served, 10 days before it expires.\n"
    )?;
    seen.push(show_check(out, &config, &prober).await?);

    lineage.write_generation(2, &generation_2)?;
    lineage.point_live_at(2)?;
    writeln!(
        out,
        "2. certbot renews: generation 2 is written and live/ re-pointed. Nobody reloads the server.\n"
    )?;
    let reports = check::run(&config, &prober).await;
    seen.push(print_reports(out, &reports)?);
    show_exports(out, &reports)?;

    server
        .reload(&generation_2.fullchain_pem(), generation_2.key_pem())
        .context("cannot load generation 2 into the demo server")?;
    writeln!(out, "3. The server is reloaded and loads generation 2.\n")?;
    seen.push(show_check(out, &config, &prober).await?);

    lineage.point_live_at(1)?;
    writeln!(
        out,
        "4. Someone points live/ back at generation 1 while generation 2 is served.\n"
    )?;
    seen.push(show_check(out, &config, &prober).await?);

    let expected = [
        Verdict::InSync,
        Verdict::ReloadNeeded,
        Verdict::InSync,
        Verdict::DiskOlder,
    ];
    let as_expected = seen == expected;
    if as_expected {
        writeln!(
            out,
            "Seen: in_sync, reload_needed, in_sync, disk_older, as expected.\n\n\
             Next: on a server with nginx (apache2, haproxy, postfix, dovecot) and certbot, run\n  \
             certdrift check\n\
             which reads their configs (`certdrift discover` prints what it found), or check one site,\n  \
             certdrift check --host www.example.org --cert /etc/letsencrypt/live/www.example.org/fullchain.pem\n\
             or write a config file (see the README) and run `certdrift serve --config FILE`."
        )?;
    } else {
        let seen: Vec<&str> = seen.iter().map(|verdict| verdict.as_str()).collect();
        writeln!(
            out,
            "Unexpected verdicts: saw {}, expected in_sync, reload_needed, in_sync, disk_older.",
            seen.join(", ")
        )?;
    }
    drop(server);
    Ok(as_expected)
}

async fn show_check(
    out: &mut dyn Write,
    config: &Config,
    prober: &Prober,
) -> anyhow::Result<Verdict> {
    let reports = check::run(config, prober).await;
    print_reports(out, &reports)
}

fn print_reports(
    out: &mut dyn Write,
    reports: &[crate::inspect::SiteReport],
) -> anyhow::Result<Verdict> {
    let table = report::render_table(reports, OffsetDateTime::now_utc());
    for line in table.lines() {
        writeln!(out, "{}", format!("   {line}").trim_end())?;
    }
    let outcome = check::Outcome::of(reports);
    writeln!(out, "   (check exits with status {})\n", outcome as u8)?;
    let verdict = reports
        .first()
        .and_then(|site| site.addresses.first())
        .map_or(Verdict::ProbeFailed, |row| row.verdict);
    Ok(verdict)
}

/// Prints the metric lines and status record `serve` would export for the drifted site.
fn show_exports(out: &mut dyn Write, reports: &[crate::inspect::SiteReport]) -> anyhow::Result<()> {
    let store = Arc::new(Store::new(
        reports.iter().map(|report| report.site.as_str()),
    ));
    for (index, report) in reports.iter().enumerate() {
        store.record(index, report.clone(), OffsetDateTime::now_utc());
    }
    let exposition = Metrics::new(store).render();
    writeln!(
        out,
        "   What `certdrift serve` exports meanwhile on /metrics (non-zero series):\n"
    )?;
    for line in exposition.lines() {
        let interesting = line.starts_with("certdrift_")
            && !line.ends_with(" 0")
            && !line.starts_with("certdrift_build_info");
        if interesting {
            writeln!(out, "     {line}")?;
        }
    }
    let json = report::render_json(reports, OffsetDateTime::now_utc());
    let document: serde_json::Value = serde_json::from_str(&json)?;
    if let Some(first) = document["results"].get(0) {
        let excerpt = serde_json::json!({
            "site": first["site"],
            "address": first["address"],
            "verdict": first["verdict"],
            "reason": first["reason"],
            "advice": first["advice"],
        });
        writeln!(out, "\n   and on /api/v1/status (excerpt):\n")?;
        for line in serde_json::to_string_pretty(&excerpt)?.lines() {
            writeln!(out, "     {line}")?;
        }
    }
    writeln!(out)?;
    Ok(())
}
