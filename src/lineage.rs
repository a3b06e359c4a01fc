//! ACME lineages: which certbot lineage a site's certificate file comes from, and what is
//! wrong with the lineage or with the copy the server loads.
//!
//! certbot keeps every generation of a lineage `NAME` in `ROOT/archive/NAME/<kind>N.pem` and
//! points `ROOT/live/NAME/<kind>.pem` at the newest with relative symlinks. A server either
//! loads the live files (directly or through another symlink), or a copy that a deploy step
//! made (haproxy's combined PEM, a postfix or container copy). This module finds the lineage
//! for a file read by [`crate::disk`], in this order: the site's explicit `lineage`, the
//! file's own path (under `live/NAME/` or resolving into `archive/NAME/`), then a match in
//! the `letsencrypt_dir` by fingerprint (any generation) or by the leaf's names. It reports
//! what it sees as [`Finding`]s beside the verdict; a lineage it cannot read is no finding.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cert::CertSummary;
use crate::disk;
use crate::finding::{Finding, FindingKind};

/// certbot's four files of a generation, as named in `live/NAME/`.
const KINDS: [&str; 4] = ["cert", "chain", "fullchain", "privkey"];

/// The most lineages read from a `letsencrypt_dir` when matching: a real server has a
/// handful; a directory with thousands is not certbot's, and reading it at every pass would
/// cost more than it tells.
const MAX_LINEAGES: usize = 500;

/// The lineage a certificate file belongs to, for JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineageMatch {
    /// `ROOT/live/NAME`.
    pub live: PathBuf,
    /// How the file relates to it.
    pub relation: Relation,
}

/// How a site's file relates to its lineage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// The file is the lineage's own (in `live/NAME/` or resolving into `archive/NAME/`).
    Live,
    /// The file is a copy made from the lineage.
    Copy,
}

/// One certbot lineage: `ROOT` and `NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Lineage {
    root: PathBuf,
    name: String,
}

impl Lineage {
    fn from_live_dir(live: &Path) -> Option<Self> {
        let name = live.file_name()?.to_str()?.to_owned();
        let root = live.parent()?.parent()?.to_owned();
        Some(Self { root, name })
    }

    fn live_dir(&self) -> PathBuf {
        self.root.join("live").join(&self.name)
    }

    fn archive_dir(&self) -> PathBuf {
        self.root.join("archive").join(&self.name)
    }

    /// The lineage's current leaf: `live/NAME/cert.pem`, else the first of `fullchain.pem`.
    fn current_leaf(&self) -> Option<CertSummary> {
        ["cert", "fullchain"].iter().find_map(|kind| {
            disk::load(&self.live_dir().join(format!("{kind}.pem")))
                .ok()
                .map(|cert| CertSummary::clone(&cert.leaf))
        })
    }

    /// Generation numbers of `archive/NAME/certN.pem`, ascending.
    fn generations(&self) -> Vec<u32> {
        let mut numbers: Vec<u32> = fs::read_dir(self.archive_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| generation_of(&entry.file_name().to_string_lossy(), "cert"))
            .collect();
        numbers.sort_unstable();
        numbers
    }
}

/// The lineage of the file at `path` whose leaf is `leaf`, and the findings about it.
///
/// `explicit` is the site's `lineage` (a `live/NAME` directory); `letsencrypt_dir` is where
/// to look for a lineage the file was copied from when neither it nor the path says.
pub fn inspect(
    path: &Path,
    leaf: &CertSummary,
    explicit: Option<&Path>,
    letsencrypt_dir: Option<&Path>,
) -> (Option<LineageMatch>, Vec<Finding>) {
    let Some((lineage, relation)) = find(path, leaf, explicit, letsencrypt_dir) else {
        return (None, Vec::new());
    };
    let mut findings = live_findings(&lineage);
    let current = lineage.current_leaf();
    if relation == Relation::Copy
        && let Some(current) = &current
        && current.fingerprint_sha256 != leaf.fingerprint_sha256
        && current.is_newer_than(leaf)
    {
        findings.push(Finding::new(
            FindingKind::CopyStale,
            format!(
                "{} holds serial {} (not before {}), a copy of lineage {}, whose current certificate is serial {} (not before {}): \
                 the step that copies the lineage to this file did not run or failed",
                path.display(),
                leaf.serial,
                date(leaf),
                lineage.live_dir().display(),
                current.serial,
                date(current)
            ),
        ));
    }
    let used = current.as_ref().unwrap_or(leaf);
    findings.extend(newer_lineages(&lineage, used));
    let found = LineageMatch {
        live: lineage.live_dir(),
        relation,
    };
    (Some(found), findings)
}

fn find(
    path: &Path,
    leaf: &CertSummary,
    explicit: Option<&Path>,
    letsencrypt_dir: Option<&Path>,
) -> Option<(Lineage, Relation)> {
    let own = own_lineage(path);
    if let Some(live) = explicit {
        let lineage = Lineage::from_live_dir(live)?;
        let relation = match &own {
            Some(own) if *own == lineage => Relation::Live,
            _ => Relation::Copy,
        };
        return Some((lineage, relation));
    }
    if let Some(own) = own {
        return Some((own, Relation::Live));
    }
    let root = letsencrypt_dir?;
    matching_lineage(root, leaf).map(|lineage| (lineage, Relation::Copy))
}

/// The lineage whose `live/NAME/` holds `path`, or whose `archive/NAME/` it resolves into.
fn own_lineage(path: &Path) -> Option<Lineage> {
    let in_live = |path: &Path, dir: &str| {
        let name_dir = path.parent()?;
        let kind_dir = name_dir.parent()?;
        (kind_dir.file_name()? == dir).then(|| Lineage::from_live_dir(name_dir))?
    };
    if let Some(lineage) = in_live(path, "live") {
        return Some(lineage);
    }
    let resolved = fs::canonicalize(path).ok()?;
    in_live(&resolved, "archive")
}

/// A lineage under `root` whose generations include `leaf`, else the newest one whose
/// current certificate has exactly `leaf`'s names.
fn matching_lineage(root: &Path, leaf: &CertSummary) -> Option<Lineage> {
    let lineages = lineages_under(root);
    let by_fingerprint = lineages.iter().find(|lineage| {
        fs::read_dir(lineage.archive_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| generation_of(&entry.file_name().to_string_lossy(), "cert").is_some())
            .filter_map(|entry| disk::load(&entry.path()).ok())
            .any(|cert| cert.leaf.fingerprint_sha256 == leaf.fingerprint_sha256)
    });
    if let Some(lineage) = by_fingerprint {
        return Some(lineage.clone());
    }
    lineages
        .into_iter()
        .filter_map(|lineage| {
            let current = lineage.current_leaf()?;
            same_names(&current, leaf).then_some((lineage, current))
        })
        .max_by(|(_, a), (_, b)| (a.not_before, a.not_after).cmp(&(b.not_before, b.not_after)))
        .map(|(lineage, _)| lineage)
}

/// Every `ROOT/live/NAME` directory, by name, at most [`MAX_LINEAGES`].
fn lineages_under(root: &Path) -> Vec<Lineage> {
    let mut lineages: Vec<Lineage> = fs::read_dir(root.join("live"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .filter_map(|entry| {
            Some(Lineage {
                root: root.to_owned(),
                name: entry.file_name().to_str()?.to_owned(),
            })
        })
        .take(MAX_LINEAGES)
        .collect();
    lineages.sort_by(|a, b| a.name.cmp(&b.name));
    lineages
}

/// `live_not_symlink` and `live_not_newest` for `lineage`'s `live/` entries.
fn live_findings(lineage: &Lineage) -> Vec<Finding> {
    let live = lineage.live_dir();
    let newest = lineage.generations().last().copied();
    let mut plain = Vec::new();
    let mut behind = Vec::new();
    for kind in KINDS {
        let entry = live.join(format!("{kind}.pem"));
        let Ok(metadata) = fs::symlink_metadata(&entry) else {
            continue;
        };
        if metadata.file_type().is_file() {
            plain.push(format!("{kind}.pem"));
            continue;
        }
        let Ok(target) = fs::read_link(&entry) else {
            continue;
        };
        let target_name = target
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let (Some(at), Some(newest)) = (generation_of(&target_name, kind), newest)
            && at < newest
        {
            behind.push(format!(
                "{kind}.pem -> {} (generation {at})",
                target.display()
            ));
        }
    }

    let mut findings = Vec::new();
    if !plain.is_empty() {
        findings.push(Finding::new(
            FindingKind::LiveNotSymlink,
            format!(
                "in {}, {} {} into {}: certbot refuses to renew such a lineage",
                live.display(),
                plain.join(", "),
                if plain.len() == 1 {
                    "is a plain file, not a symlink"
                } else {
                    "are plain files, not symlinks"
                },
                lineage.archive_dir().display()
            ),
        ));
    }
    if let (false, Some(newest)) = (behind.is_empty(), newest) {
        findings.push(Finding::new(
            FindingKind::LiveNotNewest,
            format!(
                "in {}, {}; {} holds generations up to {newest}",
                live.display(),
                behind.join(", "),
                lineage.archive_dir().display()
            ),
        ));
    }
    findings
}

/// `stale_lineage` when another lineage under the same root has a newer certificate for
/// all of `current`'s names (the same, or more: certbot makes `NAME-0001` when a name is
/// added) than `current`, the one `lineage` holds now.
fn newer_lineages(lineage: &Lineage, current: &CertSummary) -> Vec<Finding> {
    lineages_under(&lineage.root)
        .into_iter()
        .filter(|other| other.name != lineage.name)
        .filter_map(|other| {
            let leaf = other.current_leaf()?;
            (has_every_name(&leaf, current) && leaf.is_newer_than(current)).then(|| {
                Finding::new(
                    FindingKind::StaleLineage,
                    format!(
                        "the site uses lineage {} (serial {}, not before {}), but lineage {} holds a newer certificate \
                         for its names (serial {}, not before {})",
                        lineage.name,
                        current.serial,
                        date(current),
                        other.name,
                        leaf.serial,
                        date(&leaf)
                    ),
                )
            })
        })
        .collect()
}

/// `N` of `<kind>N.pem`.
fn generation_of(file_name: &str, kind: &str) -> Option<u32> {
    file_name
        .strip_prefix(kind)?
        .strip_suffix(".pem")?
        .parse()
        .ok()
}

/// Whether both certificates carry the same set of names, in any order and case.
fn same_names(a: &CertSummary, b: &CertSummary) -> bool {
    let names = name_set(a);
    !names.is_empty() && names == name_set(b)
}

/// Whether `wider` carries every name of `cert` (and maybe more), compared exactly: a
/// wildcard counts only for the same wildcard.
fn has_every_name(wider: &CertSummary, cert: &CertSummary) -> bool {
    let wider = name_set(wider);
    let names = name_set(cert);
    !names.is_empty() && names.iter().all(|name| wider.contains(name))
}

/// The certificate's names, lower-cased, sorted, each once.
fn name_set(cert: &CertSummary) -> Vec<String> {
    let mut names: Vec<String> = cert
        .names()
        .into_iter()
        .map(|name| name.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn date(cert: &CertSummary) -> String {
    crate::alert::rfc3339(cert.not_before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_numbers_come_from_certbot_file_names() {
        assert_eq!(generation_of("fullchain12.pem", "fullchain"), Some(12));
        assert_eq!(generation_of("cert1.pem", "cert"), Some(1));
        assert_eq!(generation_of("cert.pem", "cert"), None);
        assert_eq!(generation_of("chain3.pem", "cert"), None);
        assert_eq!(generation_of("cert3.pem.bak", "cert"), None);
    }

    #[test]
    fn the_lineage_of_a_live_path_is_its_directory() {
        let lineage = own_lineage(Path::new("/etc/letsencrypt/live/example.org/fullchain.pem"))
            .expect("a live/ path names its lineage");
        assert_eq!(lineage.root, Path::new("/etc/letsencrypt"));
        assert_eq!(lineage.name, "example.org");
        assert_eq!(
            own_lineage(Path::new("/etc/haproxy/certs/example.pem")),
            None
        );
    }
}
