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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use time::macros::datetime;

    use super::*;
    use crate::demo::ca::{LeafSpec, TestCa};
    use crate::disk::DiskCert;
    use crate::inspect::DiskState;

    const FILE: &str = "/etc/letsencrypt/live/blog/fullchain.pem";

    fn report(leaf: &crate::cert::CertSummary, changed_at: OffsetDateTime) -> SiteReport {
        SiteReport {
            site: "blog".to_owned(),
            disks: vec![DiskState {
                key_type: None,
                file: PathBuf::from(FILE),
                result: Ok(DiskCert {
                    path: PathBuf::from(FILE),
                    leaf: Arc::new(leaf.clone()),
                    chain: Vec::new(),
                    chain_file: None,
                    notes: Vec::new(),
                }),
                key_check: None,
                lineage: None,
                lineage_findings: Vec::new(),
                lineage_notes: Vec::new(),
                changed_at: Some(changed_at),
            }],
            addresses: Vec::new(),
        }
    }

    #[test]
    fn the_disk_change_time_moves_only_when_the_leaf_does() {
        let ca = TestCa::new("state CA");
        let first = ca.issue(&LeafSpec::new(["blog.example.org"])).summary();
        let second = ca.issue(&LeafSpec::new(["blog.example.org"])).summary();
        let store = Store::new(["blog"]);
        let changed = |store: &Store| store.read(|sites| sites[0].disk_changed[Path::new(FILE)].1);
        let renewed = datetime!(2026-03-01 08:00 UTC);
        let started = datetime!(2026-03-02 12:00 UTC);

        // First read: the file's own change time, from before certdrift started.
        store.record(0, report(&first, renewed), started);
        assert_eq!(changed(&store), renewed);
        // Same leaf, touched file: no change.
        let later = started + time::Duration::minutes(1);
        store.record(0, report(&first, later), later);
        assert_eq!(changed(&store), renewed);
        // A new leaf with a newer modification time: that time.
        let swapped = started + time::Duration::minutes(2);
        let seen = swapped + time::Duration::seconds(1);
        store.record(0, report(&second, swapped), seen);
        assert_eq!(changed(&store), swapped);
        // Back to the old leaf with its old modification time (`cp -p`): when it was seen.
        let restored = seen + time::Duration::minutes(5);
        store.record(0, report(&first, renewed), restored);
        assert_eq!(changed(&store), restored);
    }
}
