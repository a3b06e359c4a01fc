//! The fleet benchmark: what one probe costs certdrift, beside a bare tokio-rustls loop and
//! prometheus-blackbox-exporter on the same local endpoints, and whether 10,000 sites × 2
//! addresses fit in one interval.
//!
//! `cargo bench --bench fleet` runs the whole benchmark (about three minutes on 2 cores) and
//! prints a report (see BENCHMARKS.md). Without `--bench`, as `cargo test --all-targets` runs
//! it, it makes a smoke run of a few seconds over a handful of endpoints that fails when any
//! measurement stops measuring.
//!
//! The TLS endpoints live in a child process (this binary again, in the `endpoints` role), so
//! the CPU time of the process under test is its own: every figure is CPU time from
//! `/proc/PID/stat` divided by probes made, never wall time or handshakes per second. The
//! 10,000-site run is a child too (the `scale` role), so its RSS is that of a prober holding
//! the fleet and nothing else. Every endpoint is on 127.0.0.1 or ::1, and every loop is bounded
//! in count and time.

#![allow(clippy::print_stdout)] // A benchmark's report is its output.

use std::fmt::Write as _;
use std::io::{BufRead, Read, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use certdrift::alert::AlertEngine;
use certdrift::config::Config;
use certdrift::demo::ca::{LeafSpec, TestCa};
use certdrift::demo::server::LocalTlsServer;
use certdrift::metrics::Metrics;
use certdrift::probe::Prober;
use certdrift::state::Store;
use certdrift::verdict::Verdict;
use certdrift::{serve, status_page};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use time::OffsetDateTime;
use tokio::io::AsyncBufReadExt;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

/// Which part this process plays; unset for the coordinator.
const ROLE: &str = "CERTDRIFT_FLEET_ROLE";
/// `scale` makes the coordinator run the scale child only, to iterate on it.
const ONLY: &str = "CERTDRIFT_FLEET_ONLY";
/// The directory with the certificate files, shared by every role.
const DIR: &str = "CERTDRIFT_FLEET_DIR";
/// `endpoints`: how many port pairs (127.0.0.1:P and [::1]:P) to serve.
const PORTS: &str = "CERTDRIFT_FLEET_PORTS";
/// `scale`: the serving ports, comma-separated, then the blackholed one.
const GOOD_PORTS: &str = "CERTDRIFT_FLEET_GOOD_PORTS";
const BLACKHOLE_PORT: &str = "CERTDRIFT_FLEET_BLACKHOLE_PORT";
/// `scale`: sites, interval and timeout of the run.
const SCALE_SITES: &str = "CERTDRIFT_FLEET_SITES";
const SCALE_INTERVAL: &str = "CERTDRIFT_FLEET_INTERVAL_MS";
const SCALE_TIMEOUT: &str = "CERTDRIFT_FLEET_TIMEOUT_MS";

/// Every site's name is `siteN` under this domain; the one certificate covers them all.
const DOMAIN: &str = "fleet.test";
/// The addresses of every site.
const ADDRESSES: [&str; 2] = ["127.0.0.1", "::1"];

fn main() -> ExitCode {
    let role = std::env::var(ROLE).unwrap_or_default();
    // certdrift runs on the runtime `serve` runs on; everything else, the reference loop
    // included, on tokio's default one, as a bare client would.
    let runtime = if role == "scale" {
        serve::runtime()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
    .expect("a tokio runtime");
    let result = match role.as_str() {
        "endpoints" => runtime.block_on(endpoints_role()),
        "scale" => runtime.block_on(scale_role()),
        _ => {
            let plan = if std::env::args().any(|arg| arg == "--bench") {
                Plan::FULL
            } else {
                Plan::SMOKE
            };
            runtime.block_on(coordinate(plan))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fleet benchmark ({}): {err:#}", role_name(&role));
            ExitCode::FAILURE
        }
    }
}

fn role_name(role: &str) -> &str {
    if role.is_empty() { "coordinator" } else { role }
}

/// How big each run is.
#[derive(Debug, Clone, Copy)]
struct Plan {
    name: &'static str,
    /// Port pairs the endpoints child serves.
    ports: usize,
    /// Sites of the CPU runs (each with both addresses).
    sites: usize,
    /// The paced runs' interval: `sites * 2 / interval` probes per second.
    paced_interval: Duration,
    /// How long each CPU run is measured, after a first sweep to warm up.
    measure: Duration,
    /// How many alternating rounds of the paced certdrift and reference runs.
    rounds: usize,
    /// How long the flat-out runs are measured.
    flat_measure: Duration,
    /// The scale run: sites, interval, timeout.
    scale_sites: usize,
    scale_interval: Duration,
    scale_timeout: Duration,
}

impl Plan {
    const FULL: Plan = Plan {
        name: "full",
        ports: 4,
        sites: 200,
        paced_interval: Duration::from_secs(2),
        measure: Duration::from_secs(8),
        rounds: 3,
        flat_measure: Duration::from_secs(6),
        scale_sites: 10_000,
        scale_interval: Duration::from_secs(60),
        scale_timeout: Duration::from_secs(10),
    };

    const SMOKE: Plan = Plan {
        name: "smoke",
        ports: 1,
        sites: 4,
        paced_interval: Duration::from_millis(500),
        measure: Duration::from_millis(600),
        rounds: 1,
        flat_measure: Duration::from_millis(300),
        scale_sites: 20,
        scale_interval: Duration::from_secs(1),
        scale_timeout: Duration::from_millis(500),
    };

    /// Probes per second of the paced runs.
    fn paced_rate(&self) -> f64 {
        (self.sites * ADDRESSES.len()) as f64 / self.paced_interval.as_secs_f64()
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
struct Figures {
    probes: u64,
    failed: u64,
    cpu: Duration,
    wall: Duration,
    rss_kib: Option<u64>,
    metrics_render: Option<Duration>,
    status_render: Option<Duration>,
}

impl Figures {
    fn cpu_us_per_probe(&self) -> f64 {
        if self.probes == 0 {
            return f64::NAN;
        }
        self.cpu.as_secs_f64() * 1e6 / self.probes as f64
    }

    fn rate(&self) -> f64 {
        self.probes as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

async fn coordinate(plan: Plan) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("certdrift-fleet-")
        .tempdir()?;
    let files = write_certificates(dir.path())?;
    print_machine(&plan);

    let endpoints = Endpoints::start(dir.path(), plan.ports).await?;
    println!(
        "endpoints: pid {}, ports {:?} on 127.0.0.1 and ::1, blackhole port {}\n",
        endpoints.pid, endpoints.good, endpoints.blackhole
    );

    if std::env::var(ONLY).is_ok_and(|only| only == "scale") {
        let scale = run_scale_child(&plan, dir.path(), &endpoints).await?;
        println!("{scale:#?}");
        return Ok(());
    }
    let rate = plan.paced_rate();
    let paced_config = cpu_config(&plan, &endpoints.good, &files, plan.paced_interval)?;
    let targets = reference_targets(&plan, &endpoints.good);
    let reference = Arc::new(reference_config(&files.root)?);

    // The paced runs, whose ratio is the main target, alternate in rounds so that a burst of
    // load from elsewhere on the machine hits both sides; each side's median round counts.
    let mut certdrift_rounds = Vec::new();
    let mut reference_rounds = Vec::new();
    for _ in 0..plan.rounds {
        certdrift_rounds.push(run_certdrift(paced_config.clone(), plan.measure).await?);
        reference_rounds.push(
            run_reference(targets.clone(), reference.clone(), Some(rate), plan.measure).await?,
        );
    }
    println!(
        "paced rounds, CPU-µs per probe: certdrift {}; reference {}\n",
        per_probe_list(&certdrift_rounds),
        per_probe_list(&reference_rounds)
    );
    let certdrift_paced = median(certdrift_rounds);
    let reference_paced = median(reference_rounds);

    let mut flat_config = paced_config;
    flat_config.interval = Duration::ZERO;
    let certdrift_flat = run_certdrift(flat_config, plan.flat_measure).await?;
    let reference_flat = run_reference(targets.clone(), reference, None, plan.flat_measure).await?;

    let exporter = Blackbox::start(dir.path(), &files.root).await?;
    let blackbox_skip = exporter
        .run("tls_insecure", &targets, rate, plan.measure)
        .await?;
    let blackbox_ca = exporter.run("tls_ca", &targets, rate, plan.measure).await?;
    drop(exporter);

    println!(
        "{:<42} {:>9} {:>8} {:>10} {:>8} {:>10} {:>10}",
        "run", "probes", "failed", "cpu-µs/pr", "probes/s", "RSS MiB", "/metrics ms"
    );
    let rows = [
        (
            format!("certdrift, paced {rate:.0}/s, verify on (median)"),
            &certdrift_paced,
        ),
        (
            "certdrift, flat out (concurrency 64)".to_owned(),
            &certdrift_flat,
        ),
        (
            format!("tokio-rustls default+webpki, {rate:.0}/s (median)"),
            &reference_paced,
        ),
        (
            "tokio-rustls default + webpki, flat out 64".to_owned(),
            &reference_flat,
        ),
        (
            format!("blackbox_exporter insecure_skip, {rate:.0}/s"),
            &blackbox_skip,
        ),
        (
            format!("blackbox_exporter ca_file, {rate:.0}/s"),
            &blackbox_ca,
        ),
    ];
    for (name, figures) in rows {
        print_row(&name, figures);
    }
    for (name, figures) in [
        ("certdrift paced", &certdrift_paced),
        ("certdrift flat", &certdrift_flat),
    ] {
        println!("{name}: status page {} ms", fmt_ms(figures.status_render));
    }

    let paced = certdrift_paced.cpu_us_per_probe();
    let to_reference = paced / reference_paced.cpu_us_per_probe();
    let to_blackbox = paced / blackbox_ca.cpu_us_per_probe();
    println!("\nratios (CPU per probe, paced, verification on):");
    println!(
        "  certdrift / tokio-rustls default+webpki: {to_reference:.2}x (target <= 0.60x: {})",
        met(to_reference <= 0.6)
    );
    println!(
        "  certdrift / blackbox_exporter ca_file:   {to_blackbox:.2}x (target <= 0.25x: {})",
        met(to_blackbox <= 0.25)
    );
    println!(
        "  certdrift / blackbox_exporter insecure:  {:.2}x",
        paced / blackbox_skip.cpu_us_per_probe()
    );
    println!(
        "  flat out: certdrift / tokio-rustls:      {:.2}x",
        certdrift_flat.cpu_us_per_probe() / reference_flat.cpu_us_per_probe()
    );

    let scale = run_scale_child(&plan, dir.path(), &endpoints).await?;
    drop(endpoints);
    let bound = plan.scale_interval + plan.scale_timeout;
    println!(
        "\nscale: {} sites x 2 addresses, {} blackholed, interval {}, timeout {}, concurrency {}",
        plan.scale_sites,
        scale.blackholed,
        humantime::format_duration(plan.scale_interval),
        humantime::format_duration(plan.scale_timeout),
        certdrift::config::DEFAULT_CONCURRENCY
    );
    println!(
        "  first sweep {:.1} s (target <= {} s: {}); {} probes, {:.0} cpu-µs/probe, {} in_sync, {} timed out",
        scale.sweep.as_secs_f64(),
        bound.as_secs_f64(),
        met(scale.sweep <= bound),
        scale.figures.probes,
        scale.figures.cpu_us_per_probe(),
        scale.in_sync,
        scale.timed_out
    );
    let rss_mib = scale.figures.rss_kib.unwrap_or(0) as f64 / 1024.0;
    println!(
        "  RSS {rss_mib:.1} MiB (target <= 48: {}); peak {:.1} MiB",
        met(rss_mib <= 48.0),
        scale.peak_rss_kib as f64 / 1024.0
    );
    let metrics_ms = scale
        .figures
        .metrics_render
        .unwrap_or_default()
        .as_secs_f64()
        * 1e3;
    println!(
        "  /metrics {metrics_ms:.1} ms ({:.1} ms CPU of the rendering thread, while probing goes on) for {} series, {} KiB (target < 100 ms: {}); status page {} ms",
        scale.metrics_cpu.as_secs_f64() * 1e3,
        scale.series,
        scale.metrics_bytes / 1024,
        met(metrics_ms < 100.0),
        fmt_ms(scale.figures.status_render)
    );
    println!(
        "\n{} run finished in {:.0} s",
        plan.name,
        started.elapsed().as_secs_f64()
    );

    // What the smoke run asserts: each measurement measured something real.
    let checks = [
        ("certdrift paced made probes", certdrift_paced.probes > 0),
        (
            "certdrift paced had no failures",
            certdrift_paced.failed == 0,
        ),
        ("certdrift flat made probes", certdrift_flat.probes > 0),
        ("the reference loop made probes", reference_paced.probes > 0),
        (
            "the reference loop had no failures",
            reference_paced.failed == 0,
        ),
        ("blackbox_exporter probed", blackbox_ca.probes > 0),
        (
            "blackbox_exporter probes succeeded",
            blackbox_ca.failed == 0,
        ),
        (
            "/metrics was rendered",
            certdrift_paced.metrics_render.is_some(),
        ),
        (
            "the scale run probed every site",
            scale.in_sync + scale.timed_out == scale.rows,
        ),
        (
            "blackholed addresses timed out",
            scale.timed_out == scale.blackholed,
        ),
        (
            "the scale sweep finished",
            scale.sweep <= bound + Duration::from_secs(30),
        ),
    ];
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(what, _)| *what)
        .collect();
    anyhow::ensure!(failed.is_empty(), "failed checks: {}", failed.join(", "));
    Ok(())
}

/// The round with the median CPU per probe.
fn median(mut rounds: Vec<Figures>) -> Figures {
    rounds.sort_by(|a, b| a.cpu_us_per_probe().total_cmp(&b.cpu_us_per_probe()));
    rounds.swap_remove(rounds.len() / 2)
}

fn per_probe_list(rounds: &[Figures]) -> String {
    let list: Vec<String> = rounds
        .iter()
        .map(|round| format!("{:.0}", round.cpu_us_per_probe()))
        .collect();
    list.join(", ")
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn fmt_ms(duration: Option<Duration>) -> String {
    duration.map_or("-".to_owned(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
}

fn print_row(name: &str, figures: &Figures) {
    let rss = figures
        .rss_kib
        .map_or("-".to_owned(), |kib| format!("{:.1}", kib as f64 / 1024.0));
    println!(
        "{:<42} {:>9} {:>8} {:>10.0} {:>8.0} {:>10} {:>10}",
        name,
        figures.probes,
        figures.failed,
        figures.cpu_us_per_probe(),
        figures.rate(),
        rss,
        fmt_ms(figures.metrics_render)
    );
}

fn print_machine(plan: &Plan) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| status_field(&text, "MemTotal:"))
        .map_or("unknown".to_owned(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("certdrift fleet benchmark, {} run", plan.name);
    println!(
        "machine: {cores} cores, {model}, {memory}, Linux {}, {rustc}",
        kernel.trim()
    );
    println!(
        "CPU runs: {} sites x 2 addresses, one handshake per probe, paced at {:.0} probes/s for {} rounds of {} s, flat out for {} s\n",
        plan.sites,
        plan.paced_rate(),
        plan.rounds,
        plan.measure.as_secs_f64(),
        plan.flat_measure.as_secs_f64()
    );
}

/// The certificate every endpoint serves and the files that go with it.
struct Files {
    fullchain: PathBuf,
    root: PathBuf,
}

/// Writes one `*.fleet.test` ECDSA P-256 leaf with its chain and key, and the root.
fn write_certificates(dir: &Path) -> anyhow::Result<Files> {
    let ca = TestCa::new("certdrift fleet bench CA");
    let leaf = ca.issue(&LeafSpec::new([format!("*.{DOMAIN}")]));
    let files = Files {
        fullchain: dir.join("fullchain.pem"),
        root: dir.join("root.pem"),
    };
    std::fs::write(&files.fullchain, leaf.fullchain_pem())?;
    std::fs::write(dir.join("key.pem"), leaf.key_pem())?;
    std::fs::write(&files.root, ca.root_pem())?;
    Ok(files)
}

/// The config of the CPU runs: `plan.sites` sites over the serving ports, both addresses
/// each, one handshake per probe (as blackbox_exporter makes), verified against the root.
fn cpu_config(
    plan: &Plan,
    ports: &[u16],
    files: &Files,
    interval: Duration,
) -> anyhow::Result<Config> {
    let port_of = |index: usize| ports[index % ports.len()];
    let text = fleet_toml(plan.sites, port_of, files, interval, None, Some(1));
    let mut config = Config::from_toml(&text, "fleet benchmark", Path::new("."))?;
    // The config file's minimum interval is 1 s; the smoke run goes faster.
    config.interval = interval;
    Ok(config)
}

/// A config of `sites` sites, site `i` on `port_of(i)` at both addresses.
fn fleet_toml(
    sites: usize,
    port_of: impl Fn(usize) -> u16,
    files: &Files,
    interval: Duration,
    timeout: Option<Duration>,
    handshakes: Option<u32>,
) -> String {
    let mut text = format!("interval = \"{}ms\"\n", interval.as_millis().max(1000));
    if let Some(timeout) = timeout {
        writeln!(text, "timeout = \"{}ms\"", timeout.as_millis()).expect("a String");
    }
    writeln!(text, "ca_file = {:?}", files.root.display().to_string()).expect("a String");
    let cert = format!("{:?}", files.fullchain.display().to_string());
    for index in 0..sites {
        write!(
            text,
            "[[site]]\nname = \"site{index}\"\nhost = \"site{index}.{DOMAIN}\"\nport = {}\n\
             connect_to = [\"127.0.0.1\", \"::1\"]\ncert = {cert}\n",
            port_of(index)
        )
        .expect("a String");
        if let Some(handshakes) = handshakes {
            writeln!(text, "handshakes = {handshakes}").expect("a String");
        }
    }
    text
}

/// Runs `serve`'s scheduler over `config` on `serve`'s runtime: one sweep to warm up, then
/// `measure` long, counting the probes and the process's CPU time in between; then renders
/// `/metrics` and the status page.
async fn run_certdrift(config: Config, measure: Duration) -> anyhow::Result<Figures> {
    tokio::task::spawn_blocking(move || {
        serve::runtime()?.block_on(measure_certdrift(config, measure))
    })
    .await?
}

async fn measure_certdrift(config: Config, measure: Duration) -> anyhow::Result<Figures> {
    let run = Scheduler::start(config)?;
    anyhow::ensure!(
        run.first_sweep().await.is_some(),
        "the first sweep did not finish"
    );

    let before = (process_cpu(std::process::id())?, run.prober.probes_made());
    let window = Instant::now();
    tokio::time::sleep(measure).await;
    let after = (process_cpu(std::process::id())?, run.prober.probes_made());
    let wall = window.elapsed();
    let (store, _) = run.stop().await;

    let (metrics_render, _, _) = time_metrics(&store);
    Ok(Figures {
        probes: after.1 - before.1,
        failed: store_rows(&store).failed,
        cpu: after.0.saturating_sub(before.0),
        wall,
        rss_kib: process_rss(std::process::id()),
        metrics_render: Some(metrics_render),
        status_render: Some(time_status(&store)),
    })
}

/// `serve`'s scheduler running over a config, with what the HTTP side would read.
struct Scheduler {
    prober: Arc<Prober>,
    store: Arc<Store>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    started: Instant,
    bound: Duration,
}

impl Scheduler {
    fn start(config: Config) -> anyhow::Result<Self> {
        let prober = Arc::new(Prober::new(config.ca_files()).map_err(anyhow::Error::msg)?);
        let names: Vec<&str> = config.sites.iter().map(|site| site.name.as_str()).collect();
        let store = Arc::new(Store::new(names.iter().copied()));
        let alerts = Arc::new(
            AlertEngine::new(
                config.alerts.clone(),
                Vec::new(),
                &names,
                "http://127.0.0.1/".to_owned(),
            )
            .map_err(anyhow::Error::msg)?,
        );
        let bound = config.interval + config.timeouts.total * 2 + Duration::from_secs(30);
        let (stop, stop_rx) = watch::channel(false);
        let started = Instant::now();
        let task = tokio::spawn(serve::schedule(
            Arc::new(config),
            prober.clone(),
            store.clone(),
            alerts,
            Arc::new(watch::Sender::new(0)),
            stop_rx,
        ));
        Ok(Self {
            prober,
            store,
            stop,
            task,
            started,
            bound,
        })
    }

    /// Waits until every site has a report; returns how long the sweep took, or `None` when
    /// it did not finish within interval + 2 × timeout + 30 s.
    async fn first_sweep(&self) -> Option<Duration> {
        while !self.store.is_complete() {
            if self.started.elapsed() > self.bound {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Some(self.started.elapsed())
    }

    async fn stop(self) -> (Arc<Store>, Arc<Prober>) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(15), self.task).await;
        (self.store, self.prober)
    }
}

/// How long `/metrics` takes to render, in wall time and in CPU time of the rendering
/// thread (the fastest of three each), and the text.
fn time_metrics(store: &Arc<Store>) -> (Duration, Duration, String) {
    let metrics = Metrics::new(store.clone());
    let mut best = Duration::MAX;
    let mut best_cpu = Duration::MAX;
    let mut body = String::new();
    for _ in 0..3 {
        let cpu_before = thread_cpu();
        let started = std::time::Instant::now();
        body = metrics.render();
        best = best.min(started.elapsed());
        best_cpu = best_cpu.min(thread_cpu().saturating_sub(cpu_before));
    }
    (best, best_cpu, body)
}

/// CPU time of the calling thread, from `/proc/thread-self/schedstat` (nanoseconds); zero
/// where it cannot be read.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// How long the status page takes to render (the fastest of three).
fn time_status(store: &Store) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let page = store.read(|sites| status_page::render(sites, OffsetDateTime::now_utc()));
        best = best.min(started.elapsed());
        std::hint::black_box(page);
    }
    best
}

/// Rows of the store by outcome.
#[derive(Debug, Default)]
struct Rows {
    total: u64,
    in_sync: u64,
    timed_out: u64,
    failed: u64,
}

fn store_rows(store: &Store) -> Rows {
    store.read(|sites| {
        let mut rows = Rows::default();
        for row in sites
            .iter()
            .filter_map(|site| site.report.as_ref())
            .flat_map(|report| &report.addresses)
        {
            rows.total += 1;
            let trusted = row
                .served
                .as_ref()
                .is_some_and(|served| served.verification.is_trusted());
            if row.verdict == Verdict::InSync && trusted {
                rows.in_sync += 1;
            } else {
                rows.failed += 1;
            }
            if row
                .error
                .as_ref()
                .is_some_and(|error| error.kind == "timeout")
            {
                rows.timed_out += 1;
            }
        }
        rows
    })
}

/// Every `(address, SNI name)` of the CPU runs' sites, in site order.
fn reference_targets(plan: &Plan, ports: &[u16]) -> Arc<Vec<(SocketAddr, ServerName<'static>)>> {
    let mut targets = Vec::new();
    for index in 0..plan.sites {
        let port = ports[index % ports.len()];
        let name = ServerName::try_from(format!("site{index}.{DOMAIN}")).expect("a valid name");
        for address in ADDRESSES {
            let ip = address.parse().expect("a literal address");
            targets.push((SocketAddr::new(ip, port), name.clone()));
        }
    }
    Arc::new(targets)
}

/// The reference: rustls' default client config (aws-lc-rs, its default key shares and
/// suite order, webpki validation of every chain) trusting the bench's root. Resumption is
/// off, as in certdrift, so every handshake is a full one.
fn reference_config(root: &Path) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(root)? {
        roots.add(cert?)?;
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// Handshakes with `targets` in turn, at `rate` per second (at most 64 at once), or flat out
/// with 64 workers when `rate` is `None`, for `measure`; then waits for the handshakes in
/// flight and reports this process's CPU over the whole run.
async fn run_reference(
    targets: Arc<Vec<(SocketAddr, ServerName<'static>)>>,
    config: Arc<rustls::ClientConfig>,
    rate: Option<f64>,
    measure: Duration,
) -> anyhow::Result<Figures> {
    let connector = TlsConnector::from(config);
    let made = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let handshake = move |index: usize| {
        let (address, name) = targets[index % targets.len()].clone();
        let connector = connector.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(address).await?;
            let _ = tcp.set_nodelay(true);
            let tls = connector.connect(name, tcp).await?;
            drop(tls);
            Ok::<(), std::io::Error>(())
        }
    };
    let count = {
        let made = made.clone();
        let failed = failed.clone();
        move |result: Result<Result<(), std::io::Error>, tokio::time::error::Elapsed>| {
            made.fetch_add(1, Ordering::Relaxed);
            if !matches!(result, Ok(Ok(()))) {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    let figures = paced_or_flat(rate, measure, handshake, count).await?;
    Ok(Figures {
        probes: made.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        ..figures
    })
}

/// Runs `work(i)` for `i = 0, 1, ...` at `rate` per second (at most 64 at once), or with 64
/// workers back to back when `rate` is `None`, for `measure`; each is bounded by 10 s and its
/// result handed to `done`. Returns this process's CPU time and the wall time of the run,
/// in-flight work included.
async fn paced_or_flat<W, F, D>(
    rate: Option<f64>,
    measure: Duration,
    work: W,
    done: D,
) -> anyhow::Result<Figures>
where
    W: Fn(usize) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), std::io::Error>> + Send + 'static,
    D: Fn(Result<Result<(), std::io::Error>, tokio::time::error::Elapsed>) + Send + Sync + 'static,
{
    const IN_FLIGHT: usize = 64;
    const EACH: Duration = Duration::from_secs(10);
    let work = Arc::new(work);
    let done = Arc::new(done);
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let cpu_before = process_cpu(std::process::id())?;
    let started = Instant::now();
    let end = started + measure;

    match rate {
        Some(rate) => {
            let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut index = 0;
            while Instant::now() < end {
                ticks.tick().await;
                let permit = permits.clone().acquire_owned().await?;
                let (work, done) = (work.clone(), done.clone());
                tokio::spawn(async move {
                    done(tokio::time::timeout(EACH, work(index)).await);
                    drop(permit);
                });
                index += 1;
            }
        }
        None => {
            let next = Arc::new(AtomicU64::new(0));
            let workers: Vec<_> = (0..IN_FLIGHT)
                .map(|_| {
                    let (work, done, next) = (work.clone(), done.clone(), next.clone());
                    tokio::spawn(async move {
                        while Instant::now() < end {
                            let index = next.fetch_add(1, Ordering::Relaxed) as usize;
                            done(tokio::time::timeout(EACH, work(index)).await);
                        }
                    })
                })
                .collect();
            for worker in workers {
                worker.await?;
            }
        }
    }
    // Everything started has finished once every permit is back.
    let _all = permits.acquire_many(IN_FLIGHT as u32).await?;
    Ok(Figures {
        cpu: process_cpu(std::process::id())?.saturating_sub(cpu_before),
        wall: started.elapsed(),
        ..Figures::default()
    })
}

/// The TLS endpoints, served by a child process.
struct Endpoints {
    child: tokio::process::Child,
    pid: u32,
    good: Vec<u16>,
    blackhole: u16,
}

impl Endpoints {
    /// Starts this binary in the `endpoints` role and reads the ports it serves.
    async fn start(dir: &Path, ports: usize) -> anyhow::Result<Self> {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .env(ROLE, "endpoints")
            .env(DIR, dir)
            .env(PORTS, ports.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().unwrap_or(0);
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(20),
            tokio::io::BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .map_err(|_| anyhow::anyhow!("the endpoints child did not start within 20 s"))??;
        let mut words = line.split_whitespace();
        anyhow::ensure!(
            words.next() == Some("ready"),
            "the endpoints child said {line:?}"
        );
        let good = words
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<u16>, _>>()?;
        let blackhole = words.next().unwrap_or_default().parse()?;
        Ok(Self {
            child,
            pid,
            good,
            blackhole,
        })
    }
}

impl Drop for Endpoints {
    fn drop(&mut self) {
        // Closing its stdin ends the child; kill_on_drop is the backstop.
        drop(self.child.stdin.take());
    }
}

/// The `endpoints` role: serves the certificate on `PORTS` port pairs (127.0.0.1:P and
/// [::1]:P), blackholes one more pair, prints `ready P1,P2,... B`, and runs until its stdin
/// closes.
async fn endpoints_role() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::var(DIR)?);
    let count: usize = std::env::var(PORTS)?.parse()?;
    let chain = std::fs::read_to_string(dir.join("fullchain.pem"))?;
    let key = std::fs::read_to_string(dir.join("key.pem"))?;

    let mut servers = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..count {
        let (v4, v6) = port_pair(|address| {
            let (chain, key) = (chain.clone(), key.clone());
            async move { LocalTlsServer::start(address, &chain, &key).await }
        })
        .await?;
        ports.push(v4.local_addr().port());
        servers.push((v4, v6));
    }
    let (blackhole_v4, blackhole_v6) = port_pair(blackhole).await?;
    let blackhole_port = blackhole_v4.0.local_addr()?.port();

    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    println!("ready {} {blackhole_port}", list.join(","));
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await?;
    drop((servers, blackhole_v4, blackhole_v6));
    Ok(())
}

/// Binds `bind(127.0.0.1:0)`, then `bind([::1]:P)` on the same port, trying new ports while
/// the IPv6 one is taken.
async fn port_pair<T, B, F>(bind: B) -> anyhow::Result<(T, T)>
where
    T: Bound,
    B: Fn(SocketAddr) -> F,
    F: Future<Output = std::io::Result<T>>,
{
    for _ in 0..50 {
        let v4 = bind("127.0.0.1:0".parse().expect("a literal address")).await?;
        let port = v4.port();
        if let Ok(v6) = bind(SocketAddr::new("::1".parse().expect("a literal"), port)).await {
            return Ok((v4, v6));
        }
    }
    anyhow::bail!("no port free on both 127.0.0.1 and ::1 after 50 tries")
}

/// Something bound to a local port.
trait Bound {
    fn port(&self) -> u16;
}

impl Bound for LocalTlsServer {
    fn port(&self) -> u16 {
        self.local_addr().port()
    }
}

impl Bound for (tokio::net::TcpListener, tokio::net::TcpStream) {
    fn port(&self) -> u16 {
        self.0.local_addr().map_or(0, |address| address.port())
    }
}

/// A listener that never accepts, with its backlog of zero filled by one queued connection:
/// the kernel leaves further SYNs unanswered, as a firewall that drops packets does.
async fn blackhole(
    address: SocketAddr,
) -> std::io::Result<(tokio::net::TcpListener, tokio::net::TcpStream)> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(address)?;
    let listener = socket.listen(0)?;
    let queued = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
    Ok((listener, queued))
}

/// prometheus-blackbox-exporter, run from the Debian package on loopback.
struct Blackbox {
    child: tokio::process::Child,
    pid: u32,
    url: String,
    client: reqwest::Client,
}

impl Blackbox {
    /// Starts the exporter with two tcp+tls modules: `tls_insecure` (insecure_skip_verify)
    /// and `tls_ca` (verifying against `root`).
    async fn start(dir: &Path, root: &Path) -> anyhow::Result<Self> {
        let program = "prometheus-blackbox-exporter";
        let config = dir.join("blackbox.yml");
        let server_name = format!("site0.{DOMAIN}");
        std::fs::write(
            &config,
            format!(
                "modules:\n  \
                 tls_insecure:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      tls: true\n      \
                 tls_config:\n        insecure_skip_verify: true\n        server_name: {server_name}\n  \
                 tls_ca:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      tls: true\n      \
                 tls_config:\n        ca_file: {}\n        server_name: {server_name}\n",
                root.display()
            ),
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = tokio::process::Command::new(program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| {
                anyhow::anyhow!(
                    "cannot run {program} ({err}): install the Debian package \
                     prometheus-blackbox-exporter (.ci/install-packages does)"
                )
            })?;
        let pid = child.id().unwrap_or(0);
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?;
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let up = client.get(format!("{url}/-/healthy")).send().await;
            if up.is_ok_and(|response| response.status().is_success()) {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(15),
                "{program} did not answer on {url} within 15 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            child,
            pid,
            url,
            client,
        })
    }

    /// Drives `/probe?module=MODULE` over `targets` at `rate` per second for `measure`, as
    /// Prometheus would scrape it, and reports the exporter's CPU per probe.
    async fn run(
        &self,
        module: &'static str,
        targets: &Arc<Vec<(SocketAddr, ServerName<'static>)>>,
        rate: f64,
        measure: Duration,
    ) -> anyhow::Result<Figures> {
        let made = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (client, url, targets) = (self.client.clone(), self.url.clone(), targets.clone());
        let probe = move |index: usize| {
            let (address, _) = targets[index % targets.len()].clone();
            let request = client.get(format!("{url}/probe?module={module}&target={address}"));
            async move {
                let body = request
                    .send()
                    .await
                    .map_err(std::io::Error::other)?
                    .text()
                    .await
                    .map_err(std::io::Error::other)?;
                if body.lines().any(|line| line == "probe_success 1") {
                    Ok(())
                } else {
                    Err(std::io::Error::other("probe_success is not 1"))
                }
            }
        };
        let count = {
            let (made, failed) = (made.clone(), failed.clone());
            move |result: Result<Result<(), std::io::Error>, tokio::time::error::Elapsed>| {
                made.fetch_add(1, Ordering::Relaxed);
                if !matches!(result, Ok(Ok(()))) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        let exporter_before = process_cpu(self.pid)?;
        let figures = paced_or_flat(Some(rate), measure, probe, count).await?;
        let exporter_cpu = process_cpu(self.pid)?.saturating_sub(exporter_before);
        Ok(Figures {
            probes: made.load(Ordering::Relaxed),
            failed: failed.load(Ordering::Relaxed),
            cpu: exporter_cpu,
            rss_kib: process_rss(self.pid),
            ..figures
        })
    }
}

impl Drop for Blackbox {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// What the scale child reported.
#[derive(Debug, Default)]
struct Scale {
    figures: Figures,
    sweep: Duration,
    rows: u64,
    in_sync: u64,
    timed_out: u64,
    blackholed: u64,
    series: u64,
    metrics_bytes: u64,
    metrics_cpu: Duration,
    peak_rss_kib: u64,
}

/// Runs the `scale` role in a child and reads its `key value` lines.
async fn run_scale_child(plan: &Plan, dir: &Path, endpoints: &Endpoints) -> anyhow::Result<Scale> {
    let good: Vec<String> = endpoints.good.iter().map(u16::to_string).collect();
    let child = tokio::process::Command::new(std::env::current_exe()?)
        .env(ROLE, "scale")
        .env(DIR, dir)
        .env(GOOD_PORTS, good.join(","))
        .env(BLACKHOLE_PORT, endpoints.blackhole.to_string())
        .env(SCALE_SITES, plan.scale_sites.to_string())
        .env(SCALE_INTERVAL, plan.scale_interval.as_millis().to_string())
        .env(SCALE_TIMEOUT, plan.scale_timeout.as_millis().to_string())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let bound = plan.scale_interval + plan.scale_timeout * 3 + Duration::from_secs(60);
    let output = tokio::time::timeout(bound, child.wait_with_output())
        .await
        .map_err(|_| anyhow::anyhow!("the scale run did not finish within {bound:?}"))??;
    anyhow::ensure!(output.status.success(), "the scale run failed");
    let mut scale = Scale::default();
    for line in BufRead::lines(output.stdout.as_slice()) {
        let line = line?;
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let number: u64 = value.parse().unwrap_or(0);
        match key {
            "sweep_ms" => scale.sweep = Duration::from_millis(number),
            "probes" => scale.figures.probes = number,
            "cpu_us" => scale.figures.cpu = Duration::from_micros(number),
            "rss_kib" => scale.figures.rss_kib = Some(number),
            "peak_rss_kib" => scale.peak_rss_kib = number,
            "metrics_us" => scale.figures.metrics_render = Some(Duration::from_micros(number)),
            "metrics_cpu_us" => scale.metrics_cpu = Duration::from_micros(number),
            "status_us" => scale.figures.status_render = Some(Duration::from_micros(number)),
            "rows" => scale.rows = number,
            "in_sync" => scale.in_sync = number,
            "timed_out" => scale.timed_out = number,
            "blackholed" => scale.blackholed = number,
            "series" => scale.series = number,
            "metrics_bytes" => scale.metrics_bytes = number,
            _ => {}
        }
    }
    Ok(scale)
}

/// The `scale` role: every tenth site on the blackholed port, the rest spread over the
/// serving ports, the config's defaults otherwise (concurrency, handshakes); one sweep, then
/// the figures as `key value` lines.
async fn scale_role() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::var(DIR)?);
    let good = std::env::var(GOOD_PORTS)?
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<u16>, _>>()?;
    let blackhole: u16 = std::env::var(BLACKHOLE_PORT)?.parse()?;
    let sites: usize = std::env::var(SCALE_SITES)?.parse()?;
    let interval = Duration::from_millis(std::env::var(SCALE_INTERVAL)?.parse()?);
    let timeout = Duration::from_millis(std::env::var(SCALE_TIMEOUT)?.parse()?);
    let files = Files {
        fullchain: dir.join("fullchain.pem"),
        root: dir.join("root.pem"),
    };
    let port_of = |index: usize| {
        if index.is_multiple_of(10) {
            blackhole
        } else {
            good[index % good.len()]
        }
    };
    let text = fleet_toml(sites, port_of, &files, interval, Some(timeout), None);
    let mut config = Config::from_toml(&text, "fleet benchmark", Path::new("."))?;
    config.interval = interval;
    drop(text);
    let blackholed = config
        .sites
        .iter()
        .filter(|site| site.port == blackhole)
        .count()
        * 2;

    let pid = std::process::id();
    let cpu_before = process_cpu(pid)?;
    let run = Scheduler::start(config)?;
    // An unfinished sweep is reported as taking the whole bound, and measured anyway.
    let sweep = run.first_sweep().await.unwrap_or(run.bound);
    let cpu = process_cpu(pid)?.saturating_sub(cpu_before);
    let probes = run.prober.probes_made();
    let rss_kib = process_rss(pid).unwrap_or(0);
    let (metrics_render, metrics_cpu, body) = time_metrics(&run.store);
    let status_render = time_status(&run.store);
    let (store, _) = run.stop().await;
    let rows = store_rows(&store);

    let series = body.lines().filter(|line| !line.starts_with('#')).count();
    let peak = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| status_field(&text, "VmHWM:"))
        .unwrap_or(0);
    for (key, value) in [
        ("sweep_ms", sweep.as_millis() as u64),
        ("probes", probes),
        ("cpu_us", cpu.as_micros() as u64),
        ("rss_kib", rss_kib),
        ("peak_rss_kib", peak),
        ("metrics_us", metrics_render.as_micros() as u64),
        ("metrics_cpu_us", metrics_cpu.as_micros() as u64),
        ("status_us", status_render.as_micros() as u64),
        ("rows", rows.total),
        ("in_sync", rows.in_sync),
        ("timed_out", rows.timed_out),
        ("blackholed", blackholed as u64),
        ("series", series as u64),
        ("metrics_bytes", body.len() as u64),
    ] {
        println!("{key} {value}");
    }
    std::io::stdout().flush()?;
    Ok(())
}

/// User plus system CPU time of process `pid`, all its threads, from `/proc/PID/stat`.
fn process_cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces; fields 14 and 15
    // (utime, stime) are the 12th and 13th after it.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat has no command name"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    anyhow::ensure!(fields.len() > 13, "/proc/{pid}/stat is too short");
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// `sysconf(_SC_CLK_TCK)`, asked of `getconf` once (100 on every common Linux build).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

/// The resident set of process `pid`, in KiB.
fn process_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field(&status, "VmRSS:")
}

/// The number after `key` in a `/proc` status-like text.
fn status_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}
