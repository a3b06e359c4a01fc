//! Alerts: which conditions in a site's latest report deserve a person's attention, and
//! getting one message about each to the people who asked for it.
//!
//! This module turns a [`SiteEntry`] into the [`Condition`]s that hold now; [`state`] decides
//! what fires, repeats and resolves and keeps that in a file; [`notify`] delivers, retries and
//! counts; [`receivers`] builds each receiver type's request. `serve` calls
//! [`AlertEngine::observe`] after every probe of a site.
//!
//! A condition is *raw* when its verdict or finding holds, and *ready* once it has held long
//! enough (the reload grace, the failure count). An alert fires when ready and stays firing
//! while raw: so a restart, which forgets how long a drift lasted, never resolves and re-fires
//! what was already firing.

pub mod notify;
pub mod receivers;
pub mod state;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::AlertSettings;
use crate::finding::FindingKind;
use crate::state::SiteEntry;
use crate::verdict::{self, Verdict};

pub use notify::AlertEngine;

/// How urgent an alert is; the `severity` label and a receiver filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Needs attention soon; nothing is broken for clients yet.
    Warning,
    /// Clients fail, or will when the next thing happens (a reload, an expiry).
    Critical,
}

impl Severity {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "warning" => Ok(Self::Warning),
            "critical" => Ok(Self::Critical),
            other => Err(format!(
                "`{other}` is not a severity; use \"warning\" or \"critical\""
            )),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every alert certdrift raises. The names are an interface: the `alert` label, the payloads
/// and the shipped Prometheus rules (prefixed `Certdrift`) use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlertName {
    /// `reload_needed` for longer than the reload grace.
    ReloadNeeded,
    /// `mixed` for longer than the reload grace.
    MixedCertificates,
    /// `disk_older`: a reload would put an older certificate live.
    DiskOlder,
    /// `unrelated`: another server answers on the address.
    UnrelatedCertificate,
    /// The served certificate does not cover the SNI name.
    NameNotCovered,
    /// The served chain is incomplete, out of order, broken or holds an expired intermediate.
    ChainProblem,
    /// The private key file does not match the certificate on disk.
    KeyMismatch,
    /// The ACME lineage behind the file has a problem: a stale copy, a newer lineage for the
    /// same names, `live/` behind the archive or made of plain files.
    LineageProblem,
    /// The address failed `failure_count` probes in a row.
    ProbeFailing,
    /// The certificate file could not be read `failure_count` times in a row.
    DiskError,
    /// The served certificate has less than `served_expiring` left.
    ServedExpiringSoon,
    /// The certificate on disk has less than `renewal_overdue` left: the ACME client should
    /// have renewed it by now.
    RenewalOverdue,
    /// The served certificate has expired.
    Expired,
}

impl AlertName {
    /// Every alert, in documentation order.
    pub const ALL: [AlertName; 13] = [
        Self::ReloadNeeded,
        Self::MixedCertificates,
        Self::DiskOlder,
        Self::UnrelatedCertificate,
        Self::NameNotCovered,
        Self::ChainProblem,
        Self::KeyMismatch,
        Self::LineageProblem,
        Self::ProbeFailing,
        Self::DiskError,
        Self::ServedExpiringSoon,
        Self::RenewalOverdue,
        Self::Expired,
    ];

    /// The name, as in the `alert` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReloadNeeded => "ReloadNeeded",
            Self::MixedCertificates => "MixedCertificates",
            Self::DiskOlder => "DiskOlder",
            Self::UnrelatedCertificate => "UnrelatedCertificate",
            Self::NameNotCovered => "NameNotCovered",
            Self::ChainProblem => "ChainProblem",
            Self::KeyMismatch => "KeyMismatch",
            Self::LineageProblem => "LineageProblem",
            Self::ProbeFailing => "ProbeFailing",
            Self::DiskError => "DiskError",
            Self::ServedExpiringSoon => "ServedExpiringSoon",
            Self::RenewalOverdue => "RenewalOverdue",
            Self::Expired => "Expired",
        }
    }

    /// How urgent it is.
    pub fn severity(self) -> Severity {
        match self {
            Self::UnrelatedCertificate
            | Self::NameNotCovered
            | Self::KeyMismatch
            | Self::Expired => Severity::Critical,
            _ => Severity::Warning,
        }
    }
}

impl fmt::Display for AlertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What identifies one alert: the condition, the site and where. `address` is the probed
/// address (with `#keytype` on dual-certificate sites) for served-side alerts, and the
/// certificate file's path for `DiskError` and `RenewalOverdue`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlertKey {
    /// The condition.
    pub alert: AlertName,
    /// The site's name.
    pub site: String,
    /// The address, or the file for disk-side alerts.
    pub address: String,
}

/// A condition that holds in the latest report.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Which alert, on which site and address.
    pub key: AlertKey,
    /// Its severity.
    pub severity: Severity,
    /// One line naming the site, the address and what is wrong.
    pub summary: String,
    /// Why, with serials and dates, and what to do.
    pub description: String,
    /// Whether it has held long enough to fire (the reload grace, the failure count).
    pub ready: bool,
}

/// Derives conditions from reports, remembering consecutive failures between passes.
#[derive(Debug)]
pub struct Evaluator {
    settings: AlertSettings,
    failures: HashMap<(String, String), u32>,
}

impl Evaluator {
    /// An evaluator with `settings`' thresholds and no failures counted.
    pub fn new(settings: AlertSettings) -> Self {
        Self {
            settings,
            failures: HashMap::new(),
        }
    }

    /// Every condition that holds in `entry`'s latest report at `now`; empty before the first
    /// probe.
    pub fn evaluate(&mut self, entry: &SiteEntry, now: OffsetDateTime) -> Vec<Condition> {
        let Some(report) = &entry.report else {
            return Vec::new();
        };
        let site = entry.name.as_str();
        let mut conditions = Vec::new();
        let mut failing = HashSet::new();
        macro_rules! push {
            ($alert:expr, $address:expr, $summary:expr, $description:expr, $ready:expr $(,)?) => {
                conditions.push(condition(
                    site,
                    $alert,
                    $address,
                    $summary,
                    $description,
                    $ready,
                ))
            };
        }

        for disk in &report.disks {
            let file = disk.file.display().to_string();
            match &disk.result {
                Err(err) => {
                    let count = self.count_failure(site, &file, &mut failing);
                    push!(
                        AlertName::DiskError,
                        &file,
                        format!("{site}: the certificate file {file} cannot be read"),
                        format!(
                            "{err}. Failed {count} time(s) in a row. What to do: {}",
                            Verdict::DiskError.advice()
                        ),
                        count >= self.settings.failure_count,
                    );
                }
                Ok(cert) => {
                    let leaf = &cert.leaf;
                    let threshold = self.settings.renewal_overdue;
                    if leaf.not_after - now < threshold.time_left(leaf.not_before, leaf.not_after) {
                        push!(
                            AlertName::RenewalOverdue,
                            &file,
                            format!(
                                "{site}: the certificate in {file} should have been renewed by now"
                            ),
                            format!(
                                "Serial {} on disk expires {} ({}), less than {threshold} left. What to do: \
                                 check the ACME client's timer and logs (`certbot renew --dry-run`), then renew.",
                                leaf.serial,
                                rfc3339(leaf.not_after),
                                verdict::expiry_words(leaf.not_after, now)
                            ),
                            true,
                        );
                    }
                }
            }
        }

        for row in &report.addresses {
            let address = row.row_id();
            let at = format!("{site} on {address}");
            let because = |advice: &str| format!("{}. What to do: {advice}", row.reason);
            match row.verdict {
                Verdict::ReloadNeeded | Verdict::Mixed => {
                    let (alert, what) = if row.verdict == Verdict::ReloadNeeded {
                        (
                            AlertName::ReloadNeeded,
                            "serves an older certificate than the one on disk; reload the server",
                        )
                    } else {
                        (
                            AlertName::MixedCertificates,
                            "serves several certificates; restart the service",
                        )
                    };
                    // The grace counts from the renewal on disk when certdrift knows it
                    // (`certdrift_disk_change_timestamp_seconds`), so a restart of certdrift
                    // does not restart it; a mixed address counts from the drift.
                    let drift_since = entry.drift_since.get(&address).map(|(_, since)| *since);
                    let since = match row.verdict {
                        Verdict::ReloadNeeded => entry.disk_changed_for(row).or(drift_since),
                        _ => drift_since,
                    };
                    let ready =
                        since.is_some_and(|since| now - since >= self.settings.reload_grace);
                    push!(
                        alert,
                        &address,
                        format!("{at} {what}"),
                        because(row.verdict.advice()),
                        ready
                    );
                }
                Verdict::DiskOlder => push!(
                    AlertName::DiskOlder,
                    &address,
                    format!("{at} serves a newer certificate than the file; do not reload"),
                    because(row.verdict.advice()),
                    true,
                ),
                Verdict::Unrelated => push!(
                    AlertName::UnrelatedCertificate,
                    &address,
                    format!("{at} serves a certificate for other names; check host, port and SNI"),
                    because(row.verdict.advice()),
                    true,
                ),
                Verdict::ProbeFailed => {
                    let count = self.count_failure(site, &address, &mut failing);
                    let error = row
                        .error
                        .as_ref()
                        .map_or(row.reason.as_str(), |error| error.message.as_str());
                    push!(
                        AlertName::ProbeFailing,
                        &address,
                        format!("{at} cannot be probed; check that the server is up"),
                        format!(
                            "{error}. Failed {count} time(s) in a row. What to do: {}",
                            Verdict::ProbeFailed.advice()
                        ),
                        count >= self.settings.failure_count,
                    );
                }
                Verdict::InSync | Verdict::DiskError => {}
            }

            for finding in &row.findings {
                let alert = match finding.kind {
                    FindingKind::NameNotCovered => AlertName::NameNotCovered,
                    FindingKind::KeyMismatch => AlertName::KeyMismatch,
                    FindingKind::ChainIncomplete
                    | FindingKind::ChainBroken
                    | FindingKind::ChainOrder
                    | FindingKind::ExpiredIntermediate => AlertName::ChainProblem,
                    FindingKind::CopyStale
                    | FindingKind::StaleLineage
                    | FindingKind::LiveNotNewest
                    | FindingKind::LiveNotSymlink => AlertName::LineageProblem,
                    _ => continue,
                };
                if conditions
                    .iter()
                    .any(|c| c.key.alert == alert && c.key.address == address)
                {
                    continue;
                }
                push!(
                    alert,
                    &address,
                    format!(
                        "{at}: {} ({})",
                        finding.kind.as_str().replace('_', " "),
                        finding.advice
                    ),
                    format!("{}. What to do: {}", finding.detail, finding.advice),
                    true,
                );
            }

            if let Some(served) = &row.served {
                let leaf = &served.leaf;
                let threshold = self.settings.served_expiring;
                if leaf.not_after <= now {
                    push!(
                        AlertName::Expired,
                        &address,
                        format!("{at} serves an expired certificate; renew and reload now"),
                        format!(
                            "Serial {} expired {} ({}). What to do: renew the certificate and reload the server.",
                            leaf.serial,
                            rfc3339(leaf.not_after),
                            verdict::expiry_words(leaf.not_after, now)
                        ),
                        true,
                    );
                } else if leaf.not_after - now
                    < threshold.time_left(leaf.not_before, leaf.not_after)
                {
                    push!(
                        AlertName::ServedExpiringSoon,
                        &address,
                        format!("{at} serves a certificate that expires soon; renew and reload"),
                        format!(
                            "Serial {} expires {} ({}), less than {threshold} left. What to do: check that \
                             the renewal ran and that the server was reloaded after it.",
                            leaf.serial,
                            rfc3339(leaf.not_after),
                            verdict::expiry_words(leaf.not_after, now)
                        ),
                        true,
                    );
                }
            }
        }

        self.failures
            .retain(|(name, place), _| name != site || failing.contains(place));
        conditions
    }

    /// Counts one more consecutive failure of `place` (an address or a file) and returns the
    /// count.
    fn count_failure(&mut self, site: &str, place: &str, failing: &mut HashSet<String>) -> u32 {
        failing.insert(place.to_owned());
        let count = self
            .failures
            .entry((site.to_owned(), place.to_owned()))
            .or_insert(0);
        *count += 1;
        *count
    }
}

fn condition(
    site: &str,
    alert: AlertName,
    address: &str,
    summary: String,
    description: String,
    ready: bool,
) -> Condition {
    Condition {
        key: AlertKey {
            alert,
            site: site.to_owned(),
            address: address.to_owned(),
        },
        severity: alert.severity(),
        summary,
        description,
        ready,
    }
}

/// `at` as RFC 3339, as in every payload.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests;
