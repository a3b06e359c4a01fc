//! The alert book: which alerts fire, what each receiver was last sent, and the notifications
//! not yet delivered. It lives in a JSON state file, rewritten atomically after each change,
//! so a restart neither fires again what was firing nor forgets a resolve or a retry.
//!
//! The transitions (fire, repeat, resolve) are here and are pure: "now" and the conditions
//! are inputs, and the result is the notifications to queue. Delivery is [`super::notify`]'s.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::warn;

use super::{AlertKey, Condition, Severity};
use crate::config::Receiver;

/// The state file's format version; a file of another version is refused.
pub const STATE_VERSION: u32 = 1;

/// Every firing alert and every undelivered notification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertBook {
    /// The format version, [`STATE_VERSION`].
    pub version: u32,
    /// The alerts firing now.
    pub firing: Vec<FiringAlert>,
    /// Notifications queued and not yet delivered, oldest first.
    pub outbox: Vec<Notification>,
}

/// One firing alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiringAlert {
    /// What, where.
    #[serde(flatten)]
    pub key: AlertKey,
    /// Its severity.
    pub severity: Severity,
    /// The latest summary.
    pub summary: String,
    /// The latest description.
    pub description: String,
    /// When it fired.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Per receiver, when a notification about it was last queued.
    pub last_queued: BTreeMap<String, Timestamp>,
}

/// A point in time, as RFC 3339 in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp(#[serde(with = "time::serde::rfc3339")] pub OffsetDateTime);

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The alert started firing (or a receiver that never heard of it was added).
    Firing,
    /// It still fires; sent every `repeat_interval`.
    Repeat,
    /// It stopped.
    Resolved,
}

impl Event {
    /// The name in payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Repeat => "repeat",
            Self::Resolved => "resolved",
        }
    }
}

/// One message for one receiver about one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique and kept across retries, so receivers can drop a repeated delivery.
    pub id: String,
    /// The receiver's name.
    pub receiver: String,
    /// Why it is sent.
    pub event: Event,
    /// The alert as it was when queued.
    #[serde(flatten)]
    pub key: AlertKey,
    /// Its severity.
    pub severity: Severity,
    /// Its summary.
    pub summary: String,
    /// Its description.
    pub description: String,
    /// When the alert fired.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it resolved, for [`Event::Resolved`].
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
}

impl AlertBook {
    /// An empty book.
    pub fn new() -> Self {
        Self {
            version: STATE_VERSION,
            ..Self::default()
        }
    }

    /// Applies `conditions`, the conditions that hold on `site` at `now`, and queues what
    /// `receivers` must be told. Returns whether anything changed.
    ///
    /// A ready condition fires; a firing alert stays firing while its condition holds, ready
    /// or not, and resolves when it no longer holds. A firing alert is queued again for a
    /// receiver once its `repeat_interval` has passed since the last one, unless a
    /// notification about it still waits for that receiver.
    pub fn apply(
        &mut self,
        site: &str,
        conditions: &[Condition],
        receivers: &[Receiver],
        now: OffsetDateTime,
    ) -> bool {
        let mut changed = false;
        let mut resolved = Vec::new();
        self.firing.retain(|alert| {
            let holds = alert.key.site != site || conditions.iter().any(|c| c.key == alert.key);
            if !holds {
                resolved.push(alert.clone());
            }
            holds
        });
        for alert in resolved {
            changed = true;
            for receiver in receivers.iter().filter(|r| r.accepts(site, alert.severity)) {
                self.queue(receiver, Event::Resolved, &alert, Some(now));
            }
        }

        for condition in conditions {
            match self
                .firing
                .iter_mut()
                .find(|alert| alert.key == condition.key)
            {
                Some(alert)
                    if alert.summary != condition.summary
                        || alert.description != condition.description =>
                {
                    alert.summary.clone_from(&condition.summary);
                    alert.description.clone_from(&condition.description);
                    changed = true;
                }
                Some(_) => {}
                None if condition.ready => {
                    self.firing.push(FiringAlert {
                        key: condition.key.clone(),
                        severity: condition.severity,
                        summary: condition.summary.clone(),
                        description: condition.description.clone(),
                        started_at: now,
                        last_queued: BTreeMap::new(),
                    });
                    changed = true;
                }
                None => {}
            }
        }

        changed | self.queue_due(receivers, now)
    }

    /// Resolves every alert of a site not in `sites` (a site removed from the config), and
    /// drops queued notifications for receivers no longer configured, with a warning per
    /// receiver saying how many. Returns whether anything changed.
    pub fn retain_configured(
        &mut self,
        sites: &[&str],
        receivers: &[Receiver],
        now: OffsetDateTime,
    ) -> bool {
        let mut dropped: BTreeMap<String, usize> = BTreeMap::new();
        self.outbox.retain(|n| {
            let configured = receivers.iter().any(|r| r.name == n.receiver);
            if !configured {
                *dropped.entry(n.receiver.clone()).or_default() += 1;
            }
            configured
        });
        // Named by `name` only: the URL of a removed receiver is not known here, and would
        // not be logged if it were.
        for (receiver, count) in &dropped {
            warn!(
                receiver = %receiver,
                dropped = count,
                "dropped the queued notifications of a receiver no longer in the config"
            );
        }
        let mut changed = !dropped.is_empty();
        let gone: Vec<String> = self
            .firing
            .iter()
            .map(|alert| alert.key.site.clone())
            .filter(|site| !sites.contains(&site.as_str()))
            .collect();
        for site in gone {
            changed |= self.apply(&site, &[], receivers, now);
        }
        changed
    }

    /// Queues a first or repeated notification of each firing alert to each receiver that is
    /// due one. Returns whether anything was queued.
    pub fn queue_due(&mut self, receivers: &[Receiver], now: OffsetDateTime) -> bool {
        let mut due = Vec::new();
        for (index, alert) in self.firing.iter().enumerate() {
            for receiver in receivers
                .iter()
                .filter(|r| r.accepts(&alert.key.site, alert.severity))
            {
                let event = match alert.last_queued.get(&receiver.name) {
                    None => Event::Firing,
                    Some(Timestamp(last)) if now - *last >= receiver.repeat_interval => {
                        Event::Repeat
                    }
                    Some(_) => continue,
                };
                let waiting = self
                    .outbox
                    .iter()
                    .any(|n| n.receiver == receiver.name && n.key == alert.key);
                if !waiting {
                    due.push((index, receiver, event));
                }
            }
        }
        let changed = !due.is_empty();
        for (index, receiver, event) in due {
            let alert = self.firing[index].clone();
            self.queue(receiver, event, &alert, None);
            self.firing[index]
                .last_queued
                .insert(receiver.name.clone(), Timestamp(now));
        }
        changed
    }

    fn queue(
        &mut self,
        receiver: &Receiver,
        event: Event,
        alert: &FiringAlert,
        ended_at: Option<OffsetDateTime>,
    ) {
        self.outbox.push(Notification {
            id: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            receiver: receiver.name.clone(),
            event,
            key: alert.key.clone(),
            severity: alert.severity,
            summary: alert.summary.clone(),
            description: alert.description.clone(),
            started_at: alert.started_at,
            ended_at,
        });
    }

    /// The oldest undelivered notification for `receiver`.
    pub fn next_for(&self, receiver: &str) -> Option<&Notification> {
        self.outbox.iter().find(|n| n.receiver == receiver)
    }

    /// Removes the notification `id` once delivered (or rejected for good).
    pub fn remove(&mut self, id: &str) -> bool {
        let before = self.outbox.len();
        self.outbox.retain(|n| n.id != id);
        before != self.outbox.len()
    }
}

/// Where the book is kept, if anywhere.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the book; an empty one when the file does not exist yet.
    ///
    /// # Errors
    ///
    /// A message naming the file when it cannot be read, is not a state file, or has another
    /// version.
    pub fn load(&self) -> Result<AlertBook, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(AlertBook::new()),
            Err(err) => {
                return Err(format!(
                    "{}: cannot read the alert state file: {err}",
                    self.path.display()
                ));
            }
        };
        let book: AlertBook = serde_json::from_str(&text).map_err(|err| {
            format!(
                "{}: not a certdrift alert state file ({err}); move it away to start with no alert firing",
                self.path.display()
            )
        })?;
        if book.version != STATE_VERSION {
            return Err(format!(
                "{}: alert state version {} is not {STATE_VERSION}; move it away to start with no alert firing",
                self.path.display(),
                book.version
            ));
        }
        Ok(book)
    }

    /// Writes the book atomically: to a temp file in the same directory, flushed to disk,
    /// then renamed over the old one. A crash leaves the old file or the new one, never half.
    ///
    /// # Errors
    ///
    /// A message naming the file when the directory is not writable or the disk is full.
    pub fn save(&self, book: &AlertBook) -> Result<(), String> {
        let dir = self
            .path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let fail = |err: std::io::Error| {
            format!(
                "{}: cannot write the alert state file: {err}",
                self.path.display()
            )
        };
        let json = serde_json::to_vec_pretty(book).expect("the alert book serializes");
        let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
        temp.write_all(&json).map_err(fail)?;
        temp.as_file().sync_all().map_err(fail)?;
        temp.persist(&self.path).map_err(|err| fail(err.error))?;
        Ok(())
    }
}
