//! `certdrift serve`: the daemon. A scheduler probes every site once per interval, spread
//! evenly over it, and an HTTP server exports what the probes found.
//!
//! Each site has its own task and its own slot in the interval, so a slow or dead site delays
//! nobody: probes wait only for a concurrency permit, and the HTTP side never waits for
//! probes. The [`crate::watch`]er wakes a site at once when one of its files changes, without
//! waiting for its slot. SIGINT and SIGTERM stop every part cleanly.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::alert::AlertEngine;
use crate::config::{Config, Site};
use crate::inspect::{self, SiteReport};
use crate::metrics::Metrics;
use crate::probe::{ProbeLimits, Prober};
use crate::report;
use crate::state::Store;
use crate::status_page;

/// Options of `serve` that are not in the config file.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Overrides the config's `listen`.
    pub listen: Option<SocketAddr>,
    /// Where the metrics are served, `/metrics` by default.
    pub telemetry_path: String,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            listen: None,
            telemetry_path: "/metrics".to_owned(),
        }
    }
}

/// The paths `serve` answers besides the metrics endpoint, which cannot be the telemetry
/// path.
pub const RESERVED_PATHS: &[&str] = &["/", "/healthz", "/api/v1/status", "/-/recheck"];

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    store: Arc<Store>,
    metrics: Metrics,
    recheck: Arc<watch::Sender<u64>>,
}

impl AppState {
    /// State over `store`, with `recheck` bumped by `POST /-/recheck`.
    pub fn new(store: Arc<Store>, recheck: Arc<watch::Sender<u64>>) -> Self {
        Self {
            metrics: Metrics::new(store.clone()),
            store,
            recheck,
        }
    }

    /// Adds the alert engine's series to `/metrics`.
    pub fn with_alerts(self, alerts: Arc<AlertEngine>) -> Self {
        self.metrics.register_alerts(alerts);
        self
    }
}

/// The async runtime `check` and `serve` run on: one worker thread, plus tokio's blocking
/// pool.
///
/// A monitor's work is small bursts spread over time, and one worker handles several thousand
/// probes a second, many times what a fleet of 10,000 sites needs. A second worker buys no
/// throughput but costs CPU on every probe: at a paced rate each I/O event wakes a parked
/// thread, and the fleet benchmark (BENCHMARKS.md) measured one worker 15-20% cheaper per probe
/// than two. The long renders (`/metrics`, the status page) run on the blocking pool so they
/// never hold up probes.
///
/// # Errors
///
/// When the operating system refuses a thread or the I/O driver.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
}

/// Runs the daemon until SIGINT or SIGTERM.
///
/// # Errors
///
/// When the listen address cannot be bound or a CA file cannot be read; probe failures are
/// verdicts, never errors.
pub async fn run(config: Config, options: ServeOptions) -> anyhow::Result<()> {
    if let Some(error) = config.unresolved_receivers.first() {
        return Err(anyhow::Error::new(error.clone()));
    }
    let prober = Arc::new(Prober::new(config.ca_files()).map_err(anyhow::Error::msg)?);
    let store = Arc::new(Store::new(
        config.sites.iter().map(|site| site.name.as_str()),
    ));
    let recheck = Arc::new(watch::Sender::new(0));
    let listen = options.listen.unwrap_or(config.listen);

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen}; pick another address with --listen or `listen`")
        })?;
    let bound = listener.local_addr().unwrap_or(listen);
    let generator_url = config
        .alerts
        .external_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}/"));
    let site_names: Vec<&str> = config.sites.iter().map(|site| site.name.as_str()).collect();
    let alerts = Arc::new(
        AlertEngine::new(
            config.alerts.clone(),
            config.receivers.clone(),
            &site_names,
            generator_url,
        )
        .map_err(anyhow::Error::msg)?,
    );
    info!(
        listen = %bound,
        receivers = config.receivers.len(),
        sites = config.sites.len(),
        interval = %humantime::format_duration(config.interval),
        "certdrift serving"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let deliveries = alerts.spawn_delivery(stop_rx.clone());
    let scheduler = tokio::spawn(schedule(
        Arc::new(config),
        prober,
        store.clone(),
        alerts.clone(),
        recheck.clone(),
        stop_rx,
    ));
    let app = router(
        AppState::new(store, recheck).with_alerts(alerts),
        &options.telemetry_path,
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")?;

    let _ = stop_tx.send(true);
    let _ = scheduler.await;
    for delivery in deliveries {
        let _ = delivery.await;
    }
    info!("certdrift stopped");
    Ok(())
}

/// The HTTP routes: metrics at `telemetry_path`, `/healthz`, the status at `/` and
/// `/api/v1/status`, and `POST /-/recheck`.
pub fn router(state: AppState, telemetry_path: &str) -> Router {
    Router::new()
        .route(telemetry_path, get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(status_page))
        .route("/api/v1/status", get(status_json))
        .route("/-/recheck", post(recheck_handler))
        .with_state(state)
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    let metrics = state.metrics.clone();
    let Ok(body) = tokio::task::spawn_blocking(move || metrics.render()).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn status_page(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    let render = move || store.read(|sites| status_page::render(sites, OffsetDateTime::now_utc()));
    let Ok(body) = tokio::task::spawn_blocking(render).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

async fn status_json(State(state): State<AppState>) -> Response {
    let reports = current_reports(&state.store);
    let pending: Vec<String> = state.store.read(|sites| {
        sites
            .iter()
            .filter(|site| site.report.is_none())
            .map(|site| site.name.clone())
            .collect()
    });
    let pending: Vec<&str> = pending.iter().map(String::as_str).collect();
    let body = report::render_status_json(&reports, &pending, OffsetDateTime::now_utc());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn recheck_handler(State(state): State<AppState>) -> impl IntoResponse {
    // A counter, not a wake-up: a site whose probe is in flight sees the change when that
    // probe ends and probes again, and requests that arrive meanwhile fold into one.
    state
        .recheck
        .send_modify(|requests| *requests = requests.wrapping_add(1));
    (StatusCode::ACCEPTED, "re-checking every site now\n")
}

fn current_reports(store: &Store) -> Vec<SiteReport> {
    store.read(|sites| {
        sites
            .iter()
            .filter_map(|site| site.report.clone())
            .collect()
    })
}

/// Probes every site of `config` once per `interval`, site `i` of `n` first at
/// `i * interval / n`, recording each report in `store` and showing it to `alerts`, until
/// `stop` turns true.
///
/// This is `serve`'s scheduler; the fleet benchmark (`benches/fleet.rs`) drives it directly.
pub async fn schedule(
    config: Arc<Config>,
    prober: Arc<Prober>,
    store: Arc<Store>,
    alerts: Arc<AlertEngine>,
    recheck: Arc<watch::Sender<u64>>,
    stop: watch::Receiver<bool>,
) {
    let limits = Arc::new(ProbeLimits::new(config.concurrency));
    let count = config.sites.len().max(1) as u32;
    let start = Instant::now();
    let changed: Vec<Arc<Notify>> = config
        .sites
        .iter()
        .map(|_| Arc::new(Notify::new()))
        .collect();
    let watcher = tokio::spawn(crate::watch::run(
        config.clone(),
        changed.clone(),
        stop.clone(),
    ));
    let tasks: Vec<_> = (0..config.sites.len())
        .map(|index| {
            let first = start + config.interval / count * index as u32;
            tokio::spawn(site_loop(
                index,
                first,
                config.clone(),
                prober.clone(),
                store.clone(),
                alerts.clone(),
                limits.clone(),
                recheck.subscribe(),
                changed[index].clone(),
                stop.clone(),
            ))
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let _ = watcher.await;
}

#[allow(clippy::too_many_arguments)] // Each is a distinct shared handle; a struct would only rename them.
async fn site_loop(
    index: usize,
    first: Instant,
    config: Arc<Config>,
    prober: Arc<Prober>,
    store: Arc<Store>,
    alerts: Arc<AlertEngine>,
    limits: Arc<ProbeLimits>,
    mut recheck: watch::Receiver<u64>,
    changed: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let site: &Site = &config.sites[index];
    let mut next = first;
    loop {
        let on_schedule = tokio::select! {
            _ = tokio::time::sleep_until(next) => true,
            changed = recheck.changed() => {
                if changed.is_err() {
                    return;
                }
                recheck.borrow_and_update();
                debug!(site = %site.name, "re-check requested");
                false
            }
            // A permit stored while a pass ran wakes this at once: a change that landed
            // mid-probe gets a pass of its own.
            () = changed.notified() => {
                debug!(site = %site.name, "a certificate file changed");
                false
            }
            _ = stop.changed() => return,
        };

        // Boxed, so that a site waiting for its slot (most of them, most of the time) holds a
        // small future rather than room for a whole inspection.
        let inspection = Box::pin(inspect::inspect_site(
            &prober,
            site,
            &config.timeouts,
            &limits,
        ));
        let report = tokio::select! {
            report = inspection => report,
            _ = stop.changed() => return,
        };
        log_report(&report);
        let now = OffsetDateTime::now_utc();
        for change in store.record(index, report, now) {
            let before = change.before.map_or("none", |verdict| verdict.as_str());
            info!(site = %site.name, address = %change.address, before, after = %change.after, "verdict changed");
        }
        store.read(|sites| alerts.observe(&sites[index], now));

        // A re-check keeps the regular slot where it was. Missed slots are skipped, not
        // made up: a burst of catch-up probes would only repeat what the one just finished
        // learned.
        if on_schedule {
            next += config.interval;
            let now = Instant::now();
            if next <= now {
                next = now + config.interval;
            }
        }
    }
}

fn log_report(report: &SiteReport) {
    for row in &report.addresses {
        if let Some(error) = &row.error {
            debug!(site = %row.site, address = %row.address, kind = error.kind, error = %error.message, "probe result");
        } else {
            debug!(site = %row.site, address = %row.address, verdict = %row.verdict, "probe result");
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                warn!(error = %err, "cannot listen for SIGTERM; stop with SIGINT");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    info!("stopping");
}
