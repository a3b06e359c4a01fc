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

/// What [`inspect`] found about a site's file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspection {
    /// The lineage the file belongs to or was copied from, when one was found.
    pub found: Option<LineageMatch>,
    /// What is wrong with that lineage or the copy.
    pub findings: Vec<Finding>,
    /// Notes for the row's disk side: a search cut short by [`MAX_LINEAGES`].
    pub notes: Vec<String>,
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

    /// The number of the newest complete generation in `archive/NAME/`.
    ///
    /// A generation is complete when it has all four files ([`is_complete`]); a stray
    /// `cert4.pem` (an empty file, a dangling link, a half-copied renewal) is not one. This
    /// is the generation certbot's `update_symlinks` points `live/` at, so `live_not_newest`
    /// advises it only when it would change something.
    fn newest_generation(&self) -> Option<u32> {
        let archive = self.archive_dir();
        let mut numbers: Vec<u32> = fs::read_dir(&archive)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| generation_of(&entry.file_name().to_string_lossy(), "cert"))
            .collect();
        numbers.sort_unstable();
        numbers
            .into_iter()
            .rev()
            .find(|&number| is_complete(&archive, number))
    }
}

/// Whether generation `number` in `archive` is complete: each of the four kinds is a
/// non-empty regular file (after following symlinks), and `certN.pem` holds a certificate
/// [`disk::load`] can read.
fn is_complete(archive: &Path, number: u32) -> bool {
    let file = |kind: &str| archive.join(format!("{kind}{number}.pem"));
    KINDS.iter().all(|kind| {
        fs::metadata(file(kind)).is_ok_and(|metadata| metadata.is_file() && metadata.len() > 0)
    }) && disk::load(&file("cert")).is_ok()
}

/// The lineage of the file at `path` whose leaf is `leaf`, and the findings about it.
///
/// `explicit` is the site's `lineage` (a `live/NAME` directory); `letsencrypt_dir` is where
/// to look for a lineage the file was copied from when neither it nor the path says. When
/// a search of a root reads only the first [`MAX_LINEAGES`] lineages by name, a note says
/// so, since what it did not read may be the answer.
pub fn inspect(
    path: &Path,
    leaf: &CertSummary,
    explicit: Option<&Path>,
    letsencrypt_dir: Option<&Path>,
) -> Inspection {
    let mut notes = Vec::new();
    let Some((lineage, relation)) = find(path, leaf, explicit, letsencrypt_dir, &mut notes) else {
        return Inspection {
            notes,
            ..Inspection::default()
        };
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
    findings.extend(newer_lineages(&lineage, used, &mut notes));
    let found = LineageMatch {
        live: lineage.live_dir(),
        relation,
    };
    Inspection {
        found: Some(found),
        findings,
        notes,
    }
}

fn find(
    path: &Path,
    leaf: &CertSummary,
    explicit: Option<&Path>,
    letsencrypt_dir: Option<&Path>,
    notes: &mut Vec<String>,
) -> Option<(Lineage, Relation)> {
    let own = own_lineage(path);
    if let Some(live) = explicit {
        // A typo here would quietly turn the lineage findings off: say so on the row.
        if !live.is_dir() {
            notes.push(format!(
                "`lineage` {} is not a directory: no lineage findings for this file; \
                 give the lineage's live/NAME directory",
                live.display()
            ));
            return None;
        }
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
    matching_lineage(root, leaf, notes).map(|lineage| (lineage, Relation::Copy))
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
///
/// Without a fingerprint match, a search cut short by [`MAX_LINEAGES`] adds a note: the
/// copy's lineage, or a newer one for its names, may be among those not read.
fn matching_lineage(root: &Path, leaf: &CertSummary, notes: &mut Vec<String>) -> Option<Lineage> {
    let Lineages { lineages, total } = lineages_under(root);
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
    if total > lineages.len() {
        notes.push(format!(
            "only {} of {total} lineages in {} were searched for this copy's lineage; \
             set `lineage` on the site",
            lineages.len(),
            root.display()
        ));
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

/// The lineages under a root that a search reads.
struct Lineages {
    /// The first [`MAX_LINEAGES`] by name.
    lineages: Vec<Lineage>,
    /// How many there are.
    total: usize,
}

/// The `ROOT/live/NAME` directories, sorted by name so that a capped search reads the same
/// ones at every pass, at most [`MAX_LINEAGES`].
fn lineages_under(root: &Path) -> Lineages {
    let mut names: Vec<String> = fs::read_dir(root.join("live"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort_unstable();
    let total = names.len();
    names.truncate(MAX_LINEAGES);
    let lineages = names
        .into_iter()
        .map(|name| Lineage {
            root: root.to_owned(),
            name,
        })
        .collect();
    Lineages { lineages, total }
}

/// `live_not_symlink` and `live_not_newest` for `lineage`'s `live/` entries.
fn live_findings(lineage: &Lineage) -> Vec<Finding> {
    let live = lineage.live_dir();
    let newest = lineage.newest_generation();
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
                "in {}, {}; {} holds complete generations up to {newest}",
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
/// added) than `current`, the one `lineage` holds now. A search cut short by
/// [`MAX_LINEAGES`] adds a note.
fn newer_lineages(
    lineage: &Lineage,
    current: &CertSummary,
    notes: &mut Vec<String>,
) -> Vec<Finding> {
    let Lineages { lineages, total } = lineages_under(&lineage.root);
    if total > lineages.len() {
        notes.push(format!(
            "only {} of {total} lineages in {} were searched for a newer lineage of the same names",
            lineages.len(),
            lineage.root.display()
        ));
    }
    lineages
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
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::demo::ca::{IssuedCert, LeafSpec, TestCa};
    use crate::demo::layout::CertbotLineage;

    /// A lineage `name` under `root` with generations `1..=generations`, `live/` at the last.
    fn lineage_with(
        root: &Path,
        name: &str,
        ca: &TestCa,
        generations: u32,
    ) -> (CertbotLineage, Vec<IssuedCert>) {
        let lineage = CertbotLineage::new(root, name);
        let issued: Vec<IssuedCert> = (1..=generations)
            .map(|n| {
                let cert = ca.issue(&LeafSpec::new([name]).serial(&[n as u8]));
                lineage
                    .write_generation(n, &cert)
                    .expect("writing a generation");
                cert
            })
            .collect();
        lineage.point_live_at(generations).expect("pointing live/");
        (lineage, issued)
    }

    fn kinds(inspection: &Inspection) -> Vec<FindingKind> {
        inspection
            .findings
            .iter()
            .map(|finding| finding.kind)
            .collect()
    }

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

    #[test]
    fn only_complete_generations_count_for_live_not_newest() {
        let root = tempfile::tempdir().expect("a temporary directory");
        let ca = TestCa::new("lineage test CA");
        let (lineage, issued) = lineage_with(root.path(), "stray.test", &ca, 3);
        let cert = lineage.live_path("cert");
        let leaf = issued[2].summary();
        let inspect_live = || inspect(&cert, &leaf, None, None);
        assert_eq!(kinds(&inspect_live()), []);

        // An empty cert4.pem is no generation certbot would point live/ at.
        let archive = lineage.archive_dir();
        fs::write(archive.join("cert4.pem"), "").expect("writing an empty file");
        assert_eq!(kinds(&inspect_live()), []);

        // Nor is a generation whose four files are a self-loop, a dangling link, a
        // directory and a FIFO.
        symlink("cert9.pem", archive.join("cert9.pem")).expect("a looping link");
        symlink("missing9.pem", archive.join("fullchain9.pem")).expect("a dangling link");
        fs::create_dir(archive.join("chain9.pem")).expect("a directory");
        let fifo = std::process::Command::new("mkfifo")
            .arg(archive.join("privkey9.pem"))
            .status()
            .expect("mkfifo runs");
        assert!(fifo.success());
        assert_eq!(kinds(&inspect_live()), []);

        // A complete generation 5 does count, and the detail names it.
        let fifth = ca.issue(&LeafSpec::new(["stray.test"]).serial(&[5]));
        lineage
            .write_generation(5, &fifth)
            .expect("writing generation 5");
        let inspection = inspect_live();
        assert_eq!(kinds(&inspection), [FindingKind::LiveNotNewest]);
        assert!(
            inspection.findings[0].detail.ends_with(&format!(
                "{} holds complete generations up to 5",
                archive.display()
            )),
            "{}",
            inspection.findings[0].detail
        );
    }

    #[test]
    fn a_capped_copy_search_says_how_much_it_read() {
        let root = tempfile::tempdir().expect("a temporary directory");
        let ca = TestCa::new("lineage test CA");
        // `a-shop.test` sorts first, so a search that reads lineages in name order finds it.
        let (_, issued) = lineage_with(root.path(), "a-shop.test", &ca, 1);
        for n in 0..MAX_LINEAGES + 1 {
            fs::create_dir_all(root.path().join("live").join(format!("z{n:04}.test")))
                .expect("creating a lineage directory");
        }
        let copy = root.path().join("copy.pem");
        fs::write(&copy, issued[0].fullchain_pem()).expect("writing the copy");
        let inspection = inspect(&copy, &issued[0].summary(), None, Some(root.path()));
        let found = inspection
            .found
            .expect("the copy's lineage is among the first");
        assert_eq!(found.live, root.path().join("live/a-shop.test"));
        assert_eq!(found.relation, Relation::Copy);

        let other = ca.issue(&LeafSpec::new(["elsewhere.test"]));
        let inspection = inspect(&copy, &other.summary(), None, Some(root.path()));
        assert_eq!(inspection.found, None);
        assert_eq!(
            inspection.notes,
            [format!(
                "only {MAX_LINEAGES} of {} lineages in {} were searched for this copy's lineage; \
                 set `lineage` on the site",
                MAX_LINEAGES + 2,
                root.path().display()
            )]
        );
    }

    #[test]
    fn an_uncapped_copy_search_adds_no_note() {
        let root = tempfile::tempdir().expect("a temporary directory");
        let ca = TestCa::new("lineage test CA");
        lineage_with(root.path(), "shop.test", &ca, 1);
        let copy = root.path().join("copy.pem");
        let other = ca.issue(&LeafSpec::new(["elsewhere.test"]));
        fs::write(&copy, other.fullchain_pem()).expect("writing the copy");
        let inspection = inspect(&copy, &other.summary(), None, Some(root.path()));
        assert_eq!(inspection, Inspection::default());
    }

    #[test]
    fn a_lineage_key_that_names_no_directory_says_so() {
        let root = tempfile::tempdir().expect("a temporary directory");
        let ca = TestCa::new("lineage test CA");
        let cert = ca.issue(&LeafSpec::new(["typo.test"]));
        let copy = root.path().join("copy.pem");
        fs::write(&copy, cert.fullchain_pem()).expect("writing the copy");
        let missing = root.path().join("live").join("typo.tset");
        let inspection = inspect(&copy, &cert.summary(), Some(&missing), None);
        assert_eq!(inspection.found, None);
        assert_eq!(
            inspection.notes,
            [format!(
                "`lineage` {} is not a directory: no lineage findings for this file; \
                 give the lineage's live/NAME directory",
                missing.display()
            )]
        );
    }
}
