//! What `serve` knows now: the latest report of every site, and since when each address has
//! been drifting.
//!
//! The scheduler writes one site at a time; `/metrics` and the status page read a consistent
//! view of all of them. Writes are short (a report swap), so a plain `RwLock` is enough.

use std::collections::HashMap;
use std::sync::RwLock;

use time::OffsetDateTime;

use crate::inspect::SiteReport;
use crate::verdict::Verdict;

/// The latest state of every configured site.
#[derive(Debug)]
pub struct Store {
    sites: RwLock<Vec<SiteEntry>>,
}

/// One site's latest state.
#[derive(Debug, Clone)]
pub struct SiteEntry {
    /// The site's name.
    pub name: String,
    /// The latest report; `None` until the first probe finishes.
    pub report: Option<SiteReport>,
    /// Per row (address, plus key type on dual-certificate sites), the drift verdict in
    /// force and when it was first seen.
    pub drift_since: HashMap<String, (Verdict, OffsetDateTime)>,
}

/// A verdict that changed on one address, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictChange {
    /// The address.
    pub address: String,
    /// The verdict before, `None` on the first probe.
    pub before: Option<Verdict>,
    /// The verdict now.
    pub after: Verdict,
}

impl Store {
    /// A store for these sites, in config order, with no reports yet.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let sites = names
            .into_iter()
            .map(|name| SiteEntry {
                name: name.to_owned(),
                report: None,
                drift_since: HashMap::new(),
            })
            .collect();
        Self {
            sites: RwLock::new(sites),
        }
    }

    /// Replaces site `index`'s report, seen at `now`, and returns the verdicts that changed.
    ///
    /// A drift keeps its start time while the same drift verdict holds on the address; any
    /// other verdict ends it.
    pub fn record(
        &self,
        index: usize,
        report: SiteReport,
        now: OffsetDateTime,
    ) -> Vec<VerdictChange> {
        let mut sites = self
            .sites
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(entry) = sites.get_mut(index) else {
            return Vec::new();
        };

        let before: HashMap<String, Verdict> = entry
            .report
            .iter()
            .flat_map(|report| &report.addresses)
            .map(|row| (row.row_id(), row.verdict))
            .collect();
        let changes = report
            .addresses
            .iter()
            .filter(|row| before.get(&row.row_id()) != Some(&row.verdict))
            .map(|row| VerdictChange {
                address: row.row_id(),
                before: before.get(&row.row_id()).copied(),
                after: row.verdict,
            })
            .collect();

        let mut drift_since = HashMap::new();
        for row in report.addresses.iter().filter(|row| row.verdict.is_drift()) {
            let since = match entry.drift_since.get(&row.row_id()) {
                Some(&(verdict, since)) if verdict == row.verdict => since,
                _ => now,
            };
            drift_since.insert(row.row_id(), (row.verdict, since));
        }
        entry.drift_since = drift_since;
        entry.report = Some(report);
        changes
    }

    /// Runs `read` over every site's entry, under the read lock.
    pub fn read<R>(&self, read: impl FnOnce(&[SiteEntry]) -> R) -> R {
        let sites = self
            .sites
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        read(&sites)
    }

    /// Whether every site has been probed at least once.
    pub fn is_complete(&self) -> bool {
        self.read(|sites| sites.iter().all(|site| site.report.is_some()))
    }
}
