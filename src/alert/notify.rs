//! The alert engine: evaluates each new site report, keeps the [`AlertBook`] and its state
//! file, and delivers the queued notifications.
//!
//! Each receiver has its own delivery task and reads only its own part of the outbox, so a
//! receiver that is down, slow or never answers holds up no other receiver and no probe. A
//! notification leaves the outbox only once delivered (or refused for good with a 4xx
//! status); until then it is retried with exponential backoff and jitter, across restarts
//! too, since the outbox is in the state file. Delivery is at least once: a crash between a
//! receiver's answer and the state file's rewrite sends that one notification again, with
//! the same `id`.
//!
//! URLs and secrets never reach the log: errors are logged without their URL, and receivers
//! are named by their `name`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus::{IntCounterVec, Opts};
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::Evaluator;
use super::receivers::{self, Request};
use super::state::{AlertBook, FiringAlert, Notification, StateFile};
use crate::config::{AlertSettings, Receiver};
use crate::state::SiteEntry;
use crate::text::whole_millis;

/// Everything `serve` needs for alerting, shared by the probe tasks, the delivery tasks and
/// `/metrics`.
pub struct AlertEngine {
    settings: AlertSettings,
    receivers: Vec<Receiver>,
    generator_url: String,
    book: Mutex<AlertBook>,
    evaluator: Mutex<Evaluator>,
    state_file: Option<StateFile>,
    wake: Vec<Notify>,
    notifications: IntCounterVec,
    client: reqwest::Client,
}

/// How often due repeats are looked for; repeat intervals are at least a second.
const REPEAT_CHECK: Duration = Duration::from_secs(1);

/// The `result` label values of `certdrift_notifications_total`.
pub const RESULTS: [&str; 3] = ["success", "failure", "rejected"];

impl AlertEngine {
    /// An engine for `receivers`, with the state from `settings.state_file` (alerts of sites
    /// not in `sites` resolved, notifications for receivers no longer configured dropped).
    ///
    /// # Errors
    ///
    /// A message naming the state file when it cannot be read or written, or when the HTTP
    /// client cannot be built.
    pub fn new(
        settings: AlertSettings,
        receivers: Vec<Receiver>,
        sites: &[&str],
        generator_url: String,
    ) -> Result<Self, String> {
        let state_file = settings.state_file.clone().map(StateFile::new);
        let mut book = match &state_file {
            Some(file) => file.load()?,
            None => AlertBook::new(),
        };
        book.retain_configured(sites, &receivers, OffsetDateTime::now_utc());
        // Written at once, changed or not: a state file that cannot be written must stop the
        // start, not warn at every change while nothing is kept.
        if let Some(file) = &state_file {
            file.save(&book)?;
        }
        let notifications = IntCounterVec::new(
            Opts::new(
                "certdrift_notifications_total",
                "Alert notification deliveries by receiver and result: success, failure (will be retried), rejected (4xx, dropped).",
            ),
            &["receiver", "result"],
        )
        .expect("a valid metric definition");
        for receiver in &receivers {
            for result in RESULTS {
                notifications.with_label_values(&[receiver.name.as_str(), result]);
            }
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("certdrift/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| format!("cannot build the HTTP client for alert receivers: {err}"))?;
        if !book.firing.is_empty() || !book.outbox.is_empty() {
            info!(
                firing = book.firing.len(),
                undelivered = book.outbox.len(),
                "alert state restored"
            );
        }
        Ok(Self {
            evaluator: Mutex::new(Evaluator::new(settings.clone())),
            wake: receivers.iter().map(|_| Notify::new()).collect(),
            settings,
            receivers,
            generator_url,
            book: Mutex::new(book),
            state_file,
            notifications,
            client,
        })
    }

    /// Evaluates `entry`'s latest report at `now`: fires, repeats and resolves its alerts,
    /// saves the state when it changed, and wakes the receivers with something to send.
    pub fn observe(&self, entry: &SiteEntry, now: OffsetDateTime) {
        if entry.report.is_none() {
            return;
        }
        let conditions = lock(&self.evaluator).evaluate(entry, now);
        let mut book = lock(&self.book);
        // Only this site's alerts can change here; copying every firing alert's key on each
        // probe would cost a fleet with thousands of them millions of allocations a minute.
        let site_alerts = |alert: &&FiringAlert| alert.key.site == entry.name;
        let before: Vec<_> = book
            .firing
            .iter()
            .filter(site_alerts)
            .map(|alert| alert.key.clone())
            .collect();
        if !book.apply(&entry.name, &conditions, &self.receivers, now) {
            return;
        }
        for alert in book.firing.iter().filter(site_alerts) {
            if !before.contains(&alert.key) {
                warn!(alert = %alert.key.alert, site = %alert.key.site, address = %alert.key.address, severity = %alert.severity, summary = %alert.summary, "alert firing");
            }
        }
        for key in before {
            if !book
                .firing
                .iter()
                .filter(site_alerts)
                .any(|alert| alert.key == key)
            {
                info!(alert = %key.alert, site = %key.site, address = %key.address, "alert resolved");
            }
        }
        self.save(&book);
        self.wake_receivers(&book);
    }

    /// Queues the repeats that are due at `now`, whether or not their site was probed since:
    /// an Alertmanager must hear from a firing alert within its `resolve_timeout` even when
    /// the probe interval is longer.
    pub fn repeat_due(&self, now: OffsetDateTime) {
        let mut book = lock(&self.book);
        if book.queue_due(&self.receivers, now) {
            self.save(&book);
            self.wake_receivers(&book);
        }
    }

    fn wake_receivers(&self, book: &AlertBook) {
        for (receiver, wake) in self.receivers.iter().zip(&self.wake) {
            if book.next_for(&receiver.name).is_some() {
                wake.notify_one();
            }
        }
    }

    /// The alerts firing now.
    pub fn firing(&self) -> Vec<FiringAlert> {
        lock(&self.book).firing.clone()
    }

    /// `certdrift_notifications_total`, for the metrics registry.
    pub fn notifications_counter(&self) -> IntCounterVec {
        self.notifications.clone()
    }

    /// Starts one delivery task per receiver, and one that queues due repeats every second;
    /// each ends when `stop` turns true.
    pub fn spawn_delivery(self: &Arc<Self>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let mut tasks: Vec<_> = (0..self.receivers.len())
            .map(|index| tokio::spawn(self.clone().deliver(index, stop.clone())))
            .collect();
        if !self.receivers.is_empty() {
            tasks.push(tokio::spawn(self.clone().repeat(stop)));
        }
        tasks
    }

    async fn repeat(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(REPEAT_CHECK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => self.repeat_due(OffsetDateTime::now_utc()),
                _ = stop.changed() => return,
            }
        }
    }

    /// Sends receiver `index`'s notifications oldest first, retrying each until it is
    /// delivered or refused.
    async fn deliver(self: Arc<Self>, index: usize, mut stop: watch::Receiver<bool>) {
        let receiver = &self.receivers[index];
        let mut attempts: u32 = 0;
        loop {
            if *stop.borrow() {
                return;
            }
            let next = lock(&self.book).next_for(&receiver.name).cloned();
            let Some(notification) = next else {
                tokio::select! {
                    () = self.wake[index].notified() => continue,
                    _ = stop.changed() => return,
                }
            };
            let request = receivers::build(receiver, &notification, &self.generator_url);
            let outcome = tokio::select! {
                outcome = self.send(receiver, request) => outcome,
                _ = stop.changed() => return,
            };
            let label = |result: &str| {
                self.notifications
                    .with_label_values(&[receiver.name.as_str(), result])
                    .inc();
            };
            match outcome {
                Ok(()) => {
                    label("success");
                    attempts = 0;
                    info!(receiver = %receiver.name, alert = %notification.key.alert, site = %notification.key.site, address = %notification.key.address, event = notification.event.as_str(), "notification delivered");
                    self.finish(&notification);
                }
                Err(Failure::Rejected(error)) => {
                    label("rejected");
                    attempts = 0;
                    warn!(receiver = %receiver.name, alert = %notification.key.alert, site = %notification.key.site, %error, "the receiver refused the notification; dropped, fix the receiver's configuration");
                    self.finish(&notification);
                }
                Err(Failure::Retry(error)) => {
                    label("failure");
                    attempts = attempts.saturating_add(1);
                    let delay = backoff(
                        self.settings.retry_base,
                        self.settings.retry_max,
                        attempts,
                        fastrand::f64(),
                    );
                    warn!(receiver = %receiver.name, alert = %notification.key.alert, site = %notification.key.site, attempt = attempts, retry_in = %humantime::format_duration(whole_millis(delay)), %error, "notification not delivered; will retry");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
        }
    }

    fn finish(&self, notification: &Notification) {
        let mut book = lock(&self.book);
        if book.remove(&notification.id) {
            self.save(&book);
        }
    }

    async fn send(&self, receiver: &Receiver, request: Request) -> Result<(), Failure> {
        let mut builder = self
            .client
            .post(request.url)
            .timeout(receiver.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(request.body);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        let response = builder
            .send()
            .await
            .map_err(|err| Failure::Retry(describe(err)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            Err(Failure::Retry(format!("HTTP {status}")))
        } else {
            Err(Failure::Rejected(format!("HTTP {status}")))
        }
    }

    fn save(&self, book: &AlertBook) {
        if let Some(file) = &self.state_file
            && let Err(error) = file.save(book)
        {
            warn!(%error, "alert state not saved; a restart may repeat or miss notifications");
        }
    }
}

/// Why a delivery did not succeed.
enum Failure {
    /// Worth retrying: no connection, a timeout, 5xx, 408 or 429.
    Retry(String),
    /// Refused for good (another 4xx): retrying would be refused again.
    Rejected(String),
}

/// The delay before retry number `attempt` (1-based): `base` doubled per earlier attempt,
/// capped at `max`, then "equal jitter": half of it fixed, the other half scaled by `random`
/// (0 to 1), so receivers that come back are not hit by every sender at once.
pub fn backoff(base: Duration, max: Duration, attempt: u32, random: f64) -> Duration {
    let doublings = attempt.saturating_sub(1).min(32);
    let delay = base.saturating_mul(1u32 << doublings.min(31)).min(max);
    delay / 2 + delay.mul_f64(random.clamp(0.0, 1.0) / 2.0)
}

/// A send error and its causes, without the URL (it may carry a token).
fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
