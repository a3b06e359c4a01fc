//! `certdrift check`: one pass over every site, a report, and an exit status for cron and
//! Nagios-style callers.

use std::process::ExitCode;

use crate::config::Config;
use crate::inspect::{self, SiteReport};
use crate::probe::{ProbeLimits, Prober};

/// What a whole run found, as the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// 0: every address of every site serves the certificate on disk.
    InSync = 0,
    /// 1: at least one address drifted (`reload_needed`, `disk_older`, `unrelated`,
    /// `mixed`) or has a finding, and every site could be checked.
    Drift = 1,
    /// 2: at least one site could not be checked (`probe_failed`, `disk_error`), or the
    /// configuration is bad. This wins over drift: an unknown state is never reported as
    /// merely drifted.
    Trouble = 2,
}

impl Outcome {
    /// The worst outcome among the reports.
    pub fn of(sites: &[SiteReport]) -> Self {
        let rows = sites.iter().flat_map(|site| &site.addresses);
        rows.map(|row| {
            if row.verdict.is_failure() {
                Outcome::Trouble
            } else if row.verdict.is_drift() || !row.findings.is_empty() {
                Outcome::Drift
            } else {
                Outcome::InSync
            }
        })
        .max()
        .unwrap_or(Outcome::InSync)
    }
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        ExitCode::from(outcome as u8)
    }
}

/// Inspects every site of `config` once, at most `config.concurrency` handshakes at a time, and
/// returns the reports in config order.
pub async fn run(config: &Config, prober: &Prober) -> Vec<SiteReport> {
    let limits = ProbeLimits::new(config.concurrency);
    let inspections = config
        .sites
        .iter()
        .map(|site| inspect::inspect_site(prober, site, &config.timeouts, &limits));
    futures_util::future::join_all(inspections).await
}
