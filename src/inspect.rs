//! One site, end to end: read its files, resolve its host, probe every address, compare.
//!
//! This is the pipeline both `check` and `serve` run; they differ only in what they do with
//! the [`SiteReport`] (print it, or keep it for `/metrics`). Nothing here fails as a whole: a
//! disk error, a resolver failure or a dead address each become a verdict, so one target's
//! failure never stops the others.
//!
//! A site yields one [`AddressReport`] per address and certificate: with `key_types`, each
//! address is probed once per key type, and each answer is compared with that type's file.
//! Each is probed `handshakes` times; different leaves on one address make it `mixed`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::cert::{CertSummary, Fingerprint};
use crate::chain;
use crate::config::{CertFiles, Site};
use crate::disk::{self, DiskCert, DiskError};
use crate::finding::{self, Finding, FindingKind};
use crate::key::{self, KeyCheck};
use crate::lineage::{self, Inspection, LineageMatch};
use crate::probe::{
    KeyType, ProbeError, ProbeLimits, Prober, Served, Target, Timeouts, Verification,
};
use crate::verdict::{self, Verdict};
use crate::{serving, watch};

/// Everything learned about one site in one pass.
#[derive(Debug, Clone)]
pub struct SiteReport {
    /// The site's name.
    pub site: String,
    /// What each certificate file held, in the order of the site's `certs`.
    pub disks: Vec<DiskState>,
    /// One entry per address and certificate; entries named `host:port` when resolution
    /// failed.
    pub addresses: Vec<AddressReport>,
}

/// One certificate file as read in this pass.
#[derive(Debug, Clone)]
pub struct DiskState {
    /// The key type it is for, on dual-certificate sites.
    pub key_type: Option<KeyType>,
    /// The configured file.
    pub file: PathBuf,
    /// What it held.
    pub result: Result<DiskCert, DiskError>,
    /// The key check, when `key` is set and the certificate could be read.
    pub key_check: Option<KeyCheck>,
    /// The ACME lineage the file belongs to or was copied from, when one was found.
    pub lineage: Option<LineageMatch>,
    /// What is wrong with that lineage or the copy ([`lineage::inspect`]).
    pub lineage_findings: Vec<Finding>,
    /// Notes on the lineage search, shown with the file's notes ([`lineage::Inspection`]).
    pub lineage_notes: Vec<String>,
    /// When the file's content last changed, from the modification times of the file and
    /// of every symlink on the way to it ([`watch::changed_at`]).
    pub changed_at: Option<OffsetDateTime>,
}

/// The verdict for one site on one address (and key type), with both sides' summaries.
#[derive(Debug, Clone, Serialize)]
pub struct AddressReport {
    /// The site's name.
    pub site: String,
    /// Where the site came from, when the config says (`FILE:LINE` from `certdrift
    /// discover`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// `IP:port` probed, or `host:port` when the host did not resolve.
    pub address: String,
    /// The key type asked for, on dual-certificate sites.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_type: Option<&'static str>,
    /// The SNI name sent, if any.
    pub sni: Option<String>,
    /// What was spoken before TLS.
    pub protocol: &'static str,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, with serials and dates.
    pub reason: String,
    /// What to do about it.
    pub advice: &'static str,
    /// Problems beside the verdict.
    pub findings: Vec<Finding>,
    /// Who serves the address and what that suggests, for `reload_needed` on a local
    /// address whose listening process could be found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// What the server presented (the most frequent leaf), when a handshake succeeded.
    pub served: Option<ServedReport>,
    /// Every distinct leaf seen on the address, when there was more than one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub served_leaves: Vec<LeafSeen>,
    /// Handshakes made.
    pub handshakes: u32,
    /// Handshakes that failed.
    pub handshakes_failed: u32,
    /// What the file holds, when it could be read.
    pub disk: Option<DiskReport>,
    /// The failure, for `probe_failed` and `disk_error`.
    pub error: Option<ErrorReport>,
    /// When the probes finished.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// How long the probes of this address took, one after another.
    pub duration_seconds: f64,
}

impl AddressReport {
    /// What tells this row apart among its site's rows: the address, plus the key type on
    /// dual-certificate sites (`127.0.0.1:443#rsa`).
    pub fn row_id(&self) -> String {
        match self.key_type {
            Some(key_type) => format!("{}#{key_type}", self.address),
            None => self.address.clone(),
        }
    }
}

/// The served side of a report.
#[derive(Debug, Clone, Serialize)]
pub struct ServedReport {
    /// The leaf's summary; the same one as the disk's when the server serves the file's
    /// certificate, so an address in sync costs no second copy.
    #[serde(flatten)]
    pub leaf: Arc<CertSummary>,
    /// How many certificates the server presented, leaf included.
    pub chain_length: usize,
    /// The presented certificates after the leaf, in order.
    pub chain: Vec<ChainEntry>,
    /// Whether the chain verifies against the trust store, for the SNI name.
    pub verification: Verification,
    /// The negotiated protocol version.
    pub tls_version: &'static str,
}

/// A certificate of a chain, in brief.
#[derive(Debug, Clone, Serialize)]
pub struct ChainEntry {
    /// Subject name.
    pub subject: String,
    /// Issuer name.
    pub issuer: String,
    /// SHA-256 fingerprint.
    pub fingerprint_sha256: Fingerprint,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

/// One distinct leaf among an address's handshakes.
#[derive(Debug, Clone, Serialize)]
pub struct LeafSeen {
    /// Its fingerprint.
    pub fingerprint_sha256: Fingerprint,
    /// Its serial.
    pub serial: String,
    /// How many handshakes returned it.
    pub count: u32,
    /// What it would be compared alone with the file.
    pub verdict: Verdict,
}

/// The disk side of a report.
#[derive(Debug, Clone, Serialize)]
pub struct DiskReport {
    /// The file read.
    pub file: String,
    /// The leaf's summary.
    #[serde(flatten)]
    pub leaf: Arc<CertSummary>,
    /// How many chain certificates go with the leaf.
    pub chain_length: usize,
    /// Where the chain was read from, when not from `file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_file: Option<String>,
    /// Oddities found while reading.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The ACME lineage the file belongs to or was copied from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineage: Option<LineageMatch>,
    /// When the file's content last changed, as far as modification times tell.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub changed_at: Option<OffsetDateTime>,
}

/// A failure, as a stable kind and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorReport {
    /// A short stable name (`refused`, `timeout`, `not_found`, ...).
    pub kind: &'static str,
    /// The whole message.
    pub message: String,
}

/// Reads `site`'s files and probes every address of its host, within `limits` and each
/// probe bounded by `timeouts`.
pub async fn inspect_site(
    prober: &Prober,
    site: &Site,
    timeouts: &Timeouts,
    limits: &ProbeLimits,
) -> SiteReport {
    let disks: Vec<DiskState> = site
        .certs
        .iter()
        .map(|files| read_disk(site, files))
        .collect();

    let started = Instant::now();
    let resolved = if site.connect_to.is_empty() {
        let _permit = limits.handshake().await;
        prober
            .resolve(
                &site.host,
                site.port,
                site.addresses,
                started + timeouts.total,
            )
            .await
    } else {
        Ok(site
            .connect_to
            .iter()
            .map(|&ip| SocketAddr::new(ip, site.port))
            .filter(|address| site.addresses.admits(address))
            .collect())
    };
    let addresses = match resolved {
        Ok(addresses) => addresses,
        Err(err) => {
            let label = format!("{}:{}", bracketed(&site.host), site.port);
            let reports = disks
                .iter()
                .map(|disk| {
                    let observed = Observed {
                        leaves: Vec::new(),
                        failures: vec![err.clone()],
                        took: started.elapsed(),
                    };
                    address_report(site, label.clone(), disk, observed)
                })
                .collect();
            return SiteReport {
                site: site.name.clone(),
                disks,
                addresses: reports,
            };
        }
    };

    let server_name = site.server_name();
    // What each file holds, so that a server presenting the same certificates costs no
    // second parse of them.
    let known: Vec<Vec<&CertSummary>> = disks
        .iter()
        .map(|disk| match &disk.result {
            Ok(cert) => std::iter::once(&*cert.leaf).chain(&cert.chain).collect(),
            Err(_) => Vec::new(),
        })
        .collect();
    let known = &known;
    let probes = addresses.iter().flat_map(|&address| {
        let server_name = &server_name;
        site.certs
            .iter()
            .enumerate()
            .map(move |(lane, files)| async move {
                let target = Target {
                    address,
                    server_name,
                    protocol: site.protocol,
                    key_type: files.key_type,
                    ca_file: site.ca_file.as_deref(),
                    known: &known[lane],
                };
                (
                    address,
                    lane,
                    observe(prober, &target, site.handshakes, timeouts, limits).await,
                )
            })
    });
    let results = futures_util::future::join_all(probes).await;

    let mut reports: Vec<AddressReport> = results
        .into_iter()
        .map(|(address, lane, observed)| {
            address_report(site, address_label(address), &disks[lane], observed)
        })
        .collect();
    flag_addresses_that_differ(&mut reports);
    SiteReport {
        site: site.name.clone(),
        disks,
        addresses: reports,
    }
}

/// `IP:port`, with brackets around IPv6 addresses: the `address` label.
pub fn address_label(address: SocketAddr) -> String {
    address.to_string()
}

/// What `handshakes` probes of one address returned.
struct Observed {
    /// Each distinct leaf once, with the handshake that first returned it and a count.
    leaves: Vec<(Served, u32)>,
    failures: Vec<ProbeError>,
    took: Duration,
}

async fn observe(
    prober: &Prober,
    target: &Target<'_>,
    handshakes: u32,
    timeouts: &Timeouts,
    limits: &ProbeLimits,
) -> Observed {
    let started = Instant::now();
    let mut observed = Observed {
        leaves: Vec::new(),
        failures: Vec::new(),
        took: Duration::ZERO,
    };
    for _ in 0..handshakes {
        match prober.probe(target, timeouts, limits).await {
            Ok(served) => {
                let fingerprint = served.leaf().fingerprint_sha256;
                match observed
                    .leaves
                    .iter_mut()
                    .find(|(seen, _)| seen.leaf().fingerprint_sha256 == fingerprint)
                {
                    Some((_, count)) => *count += 1,
                    None => observed.leaves.push((served, 1)),
                }
            }
            // A server that is down stays down for the next handshake: one failure is
            // enough to report, and the rest would only wait out the same timeout again.
            // So does one that answered and then stopped answering: after a timeout, the
            // pass ends with what it has, and an address costs at most one timeout.
            Err(err) if observed.leaves.is_empty() || matches!(err, ProbeError::Timeout { .. }) => {
                observed.failures.push(err);
                break;
            }
            Err(err) => observed.failures.push(err),
        }
    }
    observed.took = started.elapsed();
    observed
}

fn read_disk(site: &Site, files: &CertFiles) -> DiskState {
    let result = disk::load_with_chain(&files.cert, files.chain.as_deref());
    let key_check = match (&files.key, &result) {
        (Some(key_path), Ok(cert)) => Some(key::check_key(key_path, &cert.leaf)),
        _ => None,
    };
    let inspection = match &result {
        Ok(cert) => lineage::inspect(
            &files.cert,
            &cert.leaf,
            site.lineage.as_deref(),
            site.letsencrypt_dir.as_deref(),
        ),
        Err(_) => Inspection::default(),
    };
    DiskState {
        key_type: files.key_type,
        file: files.cert.clone(),
        changed_at: result
            .as_ref()
            .ok()
            .and_then(|_| watch::changed_at(&files.cert)),
        result,
        key_check,
        lineage: inspection.found,
        lineage_findings: inspection.findings,
        lineage_notes: inspection.notes,
    }
}

fn address_report(
    site: &Site,
    address: String,
    disk: &DiskState,
    observed: Observed,
) -> AddressReport {
    let now = OffsetDateTime::now_utc();
    let disk_leaf = disk.result.as_ref().map(|cert| &*cert.leaf);
    let handshakes = (observed.leaves.iter().map(|(_, count)| count).sum::<u32>())
        + observed.failures.len() as u32;

    // The leaf most handshakes returned stands for the address; on a tie, the first seen.
    let majority = observed
        .leaves
        .iter()
        .enumerate()
        .max_by_key(|(index, (_, count))| (*count, std::cmp::Reverse(*index)))
        .map(|(_, (served, _))| served);

    let mut assessment = match (majority, observed.failures.first()) {
        (Some(served), _) => verdict::assess(disk_leaf, Ok(served.leaf()), now),
        (None, Some(err)) => verdict::assess(disk_leaf, Err(err), now),
        (None, None) => verdict::assess(disk_leaf, Err(&ProbeError::NoCertificate), now),
    };
    let mut served_leaves = Vec::new();
    if observed.leaves.len() > 1 {
        served_leaves = observed
            .leaves
            .iter()
            .map(|(served, count)| LeafSeen {
                fingerprint_sha256: served.leaf().fingerprint_sha256,
                serial: served.leaf().serial.clone(),
                count: *count,
                verdict: verdict::assess(disk_leaf, Ok(served.leaf()), now).verdict,
            })
            .collect();
        if let Ok(disk_leaf) = disk_leaf {
            let seen: Vec<String> = served_leaves
                .iter()
                .map(|leaf| format!("serial {} {}x ({})", leaf.serial, leaf.count, leaf.verdict))
                .collect();
            assessment = verdict::Assessment {
                verdict: Verdict::Mixed,
                reason: format!(
                    "{handshakes} handshakes returned {} different certificates: {}; the file has serial {}",
                    served_leaves.len(),
                    seen.join(", "),
                    disk_leaf.serial
                ),
            };
        }
    }

    let mut findings = Vec::new();
    if let Some(served) = majority {
        findings.extend(chain::served_chain_findings(&served.chain, now));
        if let Ok(disk_cert) = &disk.result {
            let chain_known = !disk_cert.chain.is_empty();
            if chain_known && disk_cert.leaf.fingerprint_sha256 == served.leaf().fingerprint_sha256
            {
                findings.extend(chain::compare_chains(&served.chain, &disk_cert.chain));
            }
            // The file's chain is what the next reload serves: when it is not what is served
            // now (a renewal not yet loaded, a stale chain.pem), its links are checked too.
            let file_chain = std::iter::once(&*disk_cert.leaf).chain(&disk_cert.chain);
            let served_now = served.chain.iter();
            let same = file_chain
                .map(|cert| cert.fingerprint_sha256)
                .eq(served_now.map(|cert| cert.fingerprint_sha256));
            if chain_known && !same {
                findings.extend(chain::file_chain_findings(
                    &disk_cert.leaf,
                    &disk_cert.chain,
                ));
            }
        }
        if let Some(sni) = &site.sni
            && !served.leaf().covers(sni)
        {
            findings.push(Finding::new(
                FindingKind::NameNotCovered,
                format!(
                    "the served certificate covers {}, not {sni}",
                    served.leaf().names().join(", ")
                ),
            ));
        }
        // Trust is reported beside the verdict, but an expired leaf is what clients see
        // fail whatever the verdict: it must not pass as "in sync".
        if served.leaf().not_after <= now {
            findings.push(Finding::new(
                FindingKind::ServedExpired,
                format!(
                    "the served certificate (serial {}) {}",
                    served.leaf().serial,
                    verdict::expiry_words(served.leaf().not_after, now)
                ),
            ));
        }
        if !observed.failures.is_empty() {
            findings.push(Finding::new(
                FindingKind::HandshakesFailed,
                format!(
                    "{} of {handshakes} handshakes failed: {}",
                    observed.failures.len(),
                    observed.failures[0]
                ),
            ));
        }
    }
    if let Ok(disk_cert) = &disk.result
        && disk_cert.leaf.not_after <= now
    {
        findings.push(Finding::new(
            FindingKind::DiskExpired,
            format!(
                "the certificate in the file (serial {}) {}",
                disk_cert.leaf.serial,
                verdict::expiry_words(disk_cert.leaf.not_after, now)
            ),
        ));
    }
    match &disk.key_check {
        Some(KeyCheck::Mismatch) => findings.push(Finding::new(
            FindingKind::KeyMismatch,
            "the private key file does not belong to the certificate file",
        )),
        Some(KeyCheck::Unreadable(reason)) => {
            findings.push(Finding::new(FindingKind::KeyUnreadable, reason.clone()))
        }
        Some(KeyCheck::Matches) | None => {}
    }

    findings.extend(disk.lineage_findings.iter().cloned());
    let findings = finding::one_per_kind(findings);

    let hint = match (assessment.verdict, &disk.changed_at) {
        (Verdict::ReloadNeeded, Some(changed_at)) => address
            .parse::<SocketAddr>()
            .ok()
            .and_then(|address| serving::hint(address, *changed_at)),
        _ => None,
    };

    let error = match (&disk.result, majority, observed.failures.first()) {
        (Err(err), _, _) => Some(ErrorReport {
            kind: err.kind(),
            message: err.to_string(),
        }),
        (Ok(_), None, Some(err)) => Some(ErrorReport {
            kind: err.kind(),
            message: err.to_string(),
        }),
        _ => None,
    };
    AddressReport {
        site: site.name.clone(),
        origin: site.origin.clone(),
        address,
        key_type: disk.key_type.map(KeyType::as_str),
        sni: site.sni.clone(),
        protocol: site.protocol.as_str(),
        verdict: assessment.verdict,
        reason: assessment.reason,
        advice: assessment.verdict.advice(),
        findings,
        hint,
        served: majority.map(|served| served_report(served, disk)),
        served_leaves,
        handshakes,
        handshakes_failed: observed.failures.len() as u32,
        disk: disk.result.as_ref().ok().map(|cert| DiskReport {
            file: cert.path.display().to_string(),
            leaf: cert.leaf.clone(),
            chain_length: cert.chain.len(),
            chain_file: cert
                .chain_file
                .as_ref()
                .map(|path| path.display().to_string()),
            notes: cert
                .notes
                .iter()
                .chain(&disk.lineage_notes)
                .cloned()
                .collect(),
            lineage: disk.lineage.clone(),
            changed_at: disk.changed_at,
        }),
        error,
        checked_at: now,
        duration_seconds: observed.took.as_secs_f64(),
    }
}

fn served_report(served: &Served, disk: &DiskState) -> ServedReport {
    let leaf = match &disk.result {
        Ok(cert) if cert.leaf.fingerprint_sha256 == served.leaf().fingerprint_sha256 => {
            cert.leaf.clone()
        }
        _ => Arc::new(served.leaf().clone()),
    };
    ServedReport {
        leaf,
        chain_length: served.chain.len(),
        chain: served
            .chain
            .iter()
            .skip(1)
            .map(|cert| ChainEntry {
                subject: cert.subject.clone(),
                issuer: cert.issuer.clone(),
                fingerprint_sha256: cert.fingerprint_sha256,
                not_after: cert.not_after,
            })
            .collect(),
        verification: served.verification.clone(),
        tls_version: served.tls_version,
    }
}

/// Adds `addresses_differ` to every address of a key type whose addresses serve different
/// leaves: one node of three not reloaded, or the IPv6 listener answered by another vhost.
fn flag_addresses_that_differ(reports: &mut [AddressReport]) {
    let key_types: Vec<Option<&'static str>> =
        reports.iter().map(|report| report.key_type).collect();
    for key_type in key_types {
        let group: Vec<usize> = (0..reports.len())
            .filter(|&i| reports[i].key_type == key_type)
            .collect();
        let mut leaves: Vec<(Fingerprint, String, Vec<String>)> = Vec::new();
        for &i in &group {
            let Some(served) = &reports[i].served else {
                continue;
            };
            let fingerprint = served.leaf.fingerprint_sha256;
            match leaves.iter_mut().find(|(seen, _, _)| *seen == fingerprint) {
                Some((_, _, addresses)) => addresses.push(reports[i].address.clone()),
                None => leaves.push((
                    fingerprint,
                    served.leaf.serial.clone(),
                    vec![reports[i].address.clone()],
                )),
            }
        }
        if leaves.len() < 2 {
            continue;
        }
        let detail: Vec<String> = leaves
            .iter()
            .map(|(_, serial, addresses)| {
                format!(
                    "{} serve{} serial {serial}",
                    addresses.join(", "),
                    if addresses.len() == 1 { "s" } else { "" }
                )
            })
            .collect();
        let detail = detail.join("; ");
        for &i in &group {
            if !reports[i]
                .findings
                .iter()
                .any(|finding| finding.kind == FindingKind::AddressesDiffer)
            {
                reports[i]
                    .findings
                    .push(Finding::new(FindingKind::AddressesDiffer, detail.clone()));
            }
        }
    }
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}
