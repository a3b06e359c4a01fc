//! What `serve` knows now: the latest report of every site, and since when each address has
//! been drifting.
//!
//! The scheduler writes one site at a time; `/metrics` and the status page read a consistent
//! view of all of them. Writes are short (a report swap), so a plain `RwLock` is enough.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;

use time::OffsetDateTime;

use crate::cert::Fingerprint;
use crate::inspect::{AddressReport, SiteReport};
use crate::probe::KeyType;
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
    /// Per certificate file, the leaf it holds and when certdrift saw that leaf arrive:
    /// at the first read, the file's own change time ([`crate::watch::changed_at`]); at
    /// each later change of leaf, the file's change time when it is newer than the last
    /// one, else the time of the read (a copy that kept an old modification time).
    pub disk_changed: HashMap<PathBuf, (Fingerprint, OffsetDateTime)>,
}

impl SiteEntry {
    /// When the certificate in the file behind `row` (the one for its key type) changed.
    pub fn disk_changed_for(&self, row: &AddressReport) -> Option<OffsetDateTime> {
        let report = self.report.as_ref()?;
        let disk = report
            .disks
            .iter()
            .find(|disk| disk.key_type.map(KeyType::as_str) == row.key_type)?;
        self.disk_changed.get(&disk.file).map(|(_, at)| *at)
    }
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
                disk_changed: HashMap::new(),
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

        let mut disk_changed = HashMap::new();
        for disk in &report.disks {
            let Ok(cert) = &disk.result else {
                // An unreadable file keeps its last known change: the grace of a drift
                // does not restart because the file was briefly missing.
                if let Some(known) = entry.disk_changed.get(&disk.file) {
                    disk_changed.insert(disk.file.clone(), *known);
                }
                continue;
            };
            let fingerprint = cert.leaf.fingerprint_sha256;
            let on_file = disk.changed_at.map(|at| at.min(now));
            let at = match entry.disk_changed.get(&disk.file) {
                Some(&(known, since)) if known == fingerprint => since,
                Some(&(_, since)) => on_file.filter(|at| *at > since).unwrap_or(now),
                None => on_file.unwrap_or(now),
            };
            disk_changed.insert(disk.file.clone(), (fingerprint, at));
        }
        entry.disk_changed = disk_changed;
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
