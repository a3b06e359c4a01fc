//! Chain analysis: the served chain on its own (order, links, expired intermediates), and
//! compared with the chain in the file.
//!
//! Certificates are linked by their names and key identifiers: a certificate's issuer name
//! must be the next certificate's subject (RFC 5280 section 6.1), and where both carry them,
//! its authorityKeyIdentifier must be the next one's subjectKeyIdentifier (section 4.2.1.1).
//! A CA that rotates its intermediate key under the same name breaks the second test only,
//! which is how a stale `chain.pem` next to a renewed `cert.pem` shows. Nothing here knows any
//! CA by name.

use time::OffsetDateTime;

use crate::cert::CertSummary;
use crate::finding::{Finding, FindingKind};

/// How a certificate relates to the one presented after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// The next certificate issued this one, by name and (where present) key id.
    Issued,
    /// The names match but the key ids do not: another key under the same name.
    KeyIdMismatch,
    /// The next certificate's subject is not this one's issuer.
    NameMismatch,
}

/// How `child` relates to `parent`.
pub fn link(child: &CertSummary, parent: &CertSummary) -> Link {
    if child.issuer_der != parent.subject_der {
        return Link::NameMismatch;
    }
    match (&child.authority_key_id, &parent.subject_key_id) {
        (Some(authority), Some(subject)) if authority != subject => Link::KeyIdMismatch,
        _ => Link::Issued,
    }
}

/// Findings about a served chain on its own, at `now`: order, broken links, expired
/// intermediates.
///
/// The last certificate's issuer is usually not sent (servers omit the root), so only the
/// links between presented certificates are checked.
pub fn served_chain_findings(chain: &[CertSummary], now: OffsetDateTime) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (index, pair) in chain.windows(2).enumerate() {
        let (child, next) = (&pair[0], &pair[1]);
        let found = match link(child, next) {
            Link::Issued => continue,
            Link::KeyIdMismatch => Finding::new(
                FindingKind::ChainBroken,
                format!(
                    "certificate {} ({}) has the name of certificate {index}'s issuer but another key \
                     (authority key id differs): an intermediate from before a CA key rotation",
                    index + 1,
                    next.subject
                ),
            ),
            Link::NameMismatch => match issuer_elsewhere(chain, index) {
                Some(position) => Finding::new(
                    FindingKind::ChainOrder,
                    format!(
                        "certificate {index} ({}) is followed by {} but its issuer is certificate {position}",
                        child.subject, next.subject
                    ),
                ),
                None => Finding::new(
                    FindingKind::ChainBroken,
                    format!(
                        "certificate {} ({}) did not issue certificate {index}, whose issuer is {}",
                        index + 1,
                        next.subject,
                        child.issuer
                    ),
                ),
            },
        };
        if !findings
            .iter()
            .any(|seen: &Finding| seen.kind == found.kind)
        {
            findings.push(found);
        }
    }

    for (index, cert) in chain.iter().enumerate().skip(1) {
        if cert.not_after < now {
            let what = if is_self_issued(cert) {
                "root"
            } else {
                "intermediate or cross-sign"
            };
            findings.push(Finding::new(
                FindingKind::ExpiredIntermediate,
                format!(
                    "certificate {index} of the served chain, the {what} {}, expired {}; the served leaf is valid until {}",
                    cert.subject,
                    cert.not_after.date(),
                    chain[0].not_after.date()
                ),
            ));
        }
    }
    findings
}

/// Findings from comparing the intermediates a server presents for the disk's leaf with
/// those in the file (fullchain.pem, or chain.pem beside cert.pem).
///
/// Self-signed roots are left out on both sides: sending one is allowed and useless, and
/// leaving it out is right.
pub fn compare_chains(served: &[CertSummary], disk_chain: &[CertSummary]) -> Vec<Finding> {
    let served_ids: Vec<_> = served
        .iter()
        .skip(1)
        .filter(|cert| !is_self_issued(cert))
        .collect();
    let disk_ids: Vec<_> = disk_chain
        .iter()
        .filter(|cert| !is_self_issued(cert))
        .collect();
    let missing: Vec<&&CertSummary> = disk_ids
        .iter()
        .filter(|cert| {
            !served_ids
                .iter()
                .any(|other| other.fingerprint_sha256 == cert.fingerprint_sha256)
        })
        .collect();
    let extra: Vec<&&CertSummary> = served_ids
        .iter()
        .filter(|cert| {
            !disk_ids
                .iter()
                .any(|other| other.fingerprint_sha256 == cert.fingerprint_sha256)
        })
        .collect();

    if !missing.is_empty() && extra.is_empty() {
        return vec![Finding::new(
            FindingKind::ChainIncomplete,
            format!(
                "the served chain lacks {}, which the file has",
                subjects(&missing)
            ),
        )];
    }
    if !missing.is_empty() || !extra.is_empty() {
        return vec![Finding::new(
            FindingKind::ChainDiffers,
            format!(
                "the server sends {} where the file has {}",
                subjects_or_nothing(&served_ids),
                subjects_or_nothing(&disk_ids)
            ),
        )];
    }
    Vec::new()
}

/// Whether a certificate names itself as issuer (a root, or a self-signed leaf).
fn is_self_issued(cert: &CertSummary) -> bool {
    cert.issuer_der == cert.subject_der
}

/// The position of a certificate in `chain`, other than `index + 1`, that issued
/// `chain[index]`.
fn issuer_elsewhere(chain: &[CertSummary], index: usize) -> Option<usize> {
    let child = &chain[index];
    chain
        .iter()
        .enumerate()
        .filter(|(position, _)| *position != index && *position != index + 1)
        .find(|(_, candidate)| link(child, candidate) == Link::Issued)
        .map(|(position, _)| position)
}

fn subjects(certs: &[&&CertSummary]) -> String {
    let names: Vec<&str> = certs.iter().map(|cert| cert.subject.as_str()).collect();
    names.join(" and ")
}

fn subjects_or_nothing(certs: &[&CertSummary]) -> String {
    if certs.is_empty() {
        return "no intermediate".to_owned();
    }
    let names: Vec<&str> = certs.iter().map(|cert| cert.subject.as_str()).collect();
    names.join(", ")
}
