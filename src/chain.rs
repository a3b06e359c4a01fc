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
    let mut findings = link_findings(chain, "the served chain");

    let expired: Vec<String> = chain
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, cert)| cert.not_after < now)
        .map(|(index, cert)| {
            let what = if is_self_issued(cert) {
                "root"
            } else {
                "intermediate or cross-sign"
            };
            format!(
                "certificate {index} of the served chain, the {what} {}, expired {}",
                cert.subject,
                cert.not_after.date()
            )
        })
        .collect();
    if !expired.is_empty() {
        findings.push(Finding::new(
            FindingKind::ExpiredIntermediate,
            format!(
                "{}; the served leaf itself is valid until {}",
                capped_list(expired.iter().map(String::as_str), "; "),
                chain[0].not_after.date()
            ),
        ));
    }
    findings
}

/// Findings about the chain in the file, read as the server will present it after its next
/// reload: the leaf, then the chain file's certificates in order.
///
/// Only order and links are checked: the file's dates are the CA's business, and what is
/// served now is checked by [`served_chain_findings`].
pub fn file_chain_findings(leaf: &CertSummary, chain: &[CertSummary]) -> Vec<Finding> {
    let whole: Vec<CertSummary> = std::iter::once(leaf).chain(chain).cloned().collect();
    link_findings(&whole, "the file's chain")
}

/// `chain_order` and `chain_broken`, at most one of each, for the links between the
/// certificates of `chain` (leaf first); `whose` names the chain in the details.
fn link_findings(chain: &[CertSummary], whose: &str) -> Vec<Finding> {
    let mut findings: Vec<Finding> = Vec::new();
    for (index, pair) in chain.windows(2).enumerate() {
        let (child, next) = (&pair[0], &pair[1]);
        let found = match link(child, next) {
            Link::Issued => continue,
            Link::KeyIdMismatch => Finding::new(
                FindingKind::ChainBroken,
                format!(
                    "in {whose}, certificate {} ({}) has the name of certificate {index}'s issuer but \
                     another key: certificate {index} names authority key id {}, certificate {} has \
                     subject key id {}; an intermediate from before the CA rotated its key",
                    index + 1,
                    next.subject,
                    key_id_hex(child.authority_key_id.as_deref()),
                    index + 1,
                    key_id_hex(next.subject_key_id.as_deref()),
                ),
            ),
            Link::NameMismatch => {
                if let Some(position) = issuer_elsewhere(chain, index) {
                    Finding::new(
                        FindingKind::ChainOrder,
                        format!(
                            "in {whose}, certificate {index} ({}) is followed by {} but its issuer is certificate {position}",
                            child.subject, next.subject
                        ),
                    )
                } else if is_self_issued(child) {
                    Finding::new(
                        FindingKind::ChainOrder,
                        format!(
                            "in {whose}, certificate {index} ({}) is a self-signed root, which belongs last, \
                             but {} follows it",
                            child.subject, next.subject
                        ),
                    )
                } else if let Some(position) = issued_by(chain, index + 1) {
                    Finding::new(
                        FindingKind::ChainOrder,
                        format!(
                            "in {whose}, certificate {index} ({}) is followed by {}, which issued certificate \
                             {position}, not this one",
                            child.subject, next.subject
                        ),
                    )
                } else {
                    Finding::new(
                        FindingKind::ChainBroken,
                        format!(
                            "in {whose}, certificate {} ({}) did not issue certificate {index}, whose issuer is {}",
                            index + 1,
                            next.subject,
                            child.issuer
                        ),
                    )
                }
            }
        };
        if !findings.iter().any(|seen| seen.kind == found.kind) {
            findings.push(found);
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

/// The position of a certificate in `chain` that `chain[issuer]` issued, if any: whether a
/// certificate belongs in the chain at all.
fn issued_by(chain: &[CertSummary], issuer: usize) -> Option<usize> {
    chain
        .iter()
        .enumerate()
        .filter(|(position, _)| *position != issuer)
        .find(|(_, child)| link(child, &chain[issuer]) == Link::Issued)
        .map(|(position, _)| position)
}

/// A key identifier as colon-free lower-case hex, or `none`.
fn key_id_hex(id: Option<&[u8]>) -> String {
    match id {
        Some(bytes) => bytes.iter().map(|byte| format!("{byte:02x}")).collect(),
        None => "none".to_owned(),
    }
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
    capped_list(certs.iter().map(|cert| cert.subject.as_str()), " and ")
}

fn subjects_or_nothing(certs: &[&CertSummary]) -> String {
    if certs.is_empty() {
        return "no intermediate".to_owned();
    }
    capped_list(certs.iter().map(|cert| cert.subject.as_str()), ", ")
}

/// `items` joined by `separator`, at most [`MAX_LISTED`] of them, then ` and N more`: a
/// detail stays readable whatever a server or file holds.
pub fn capped_list<'a>(items: impl IntoIterator<Item = &'a str>, separator: &str) -> String {
    let items: Vec<&str> = items.into_iter().collect();
    if items.len() <= MAX_LISTED {
        return items.join(separator);
    }
    format!(
        "{} and {} more",
        items[..MAX_LISTED].join(separator),
        items.len() - MAX_LISTED
    )
}

/// The most certificates a finding's detail names one by one.
pub const MAX_LISTED: usize = 5;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::ca::{LeafSpec, TestCa};

    #[test]
    fn long_lists_stop_after_five_names() {
        assert_eq!(capped_list(["a", "b"], " and "), "a and b");
        let seven = ["a", "b", "c", "d", "e", "f", "g"];
        assert_eq!(capped_list(seven, ", "), "a, b, c, d, e and 2 more");
    }

    #[test]
    fn a_served_chain_lacking_many_intermediates_names_five() {
        let ca = TestCa::new("Capped CA");
        let leaf = ca
            .issue(&LeafSpec::new(["capped.certdrift.test"]))
            .summary();
        let file_chain: Vec<CertSummary> = (1..=7)
            .map(|n| TestCa::new(&format!("Extra {n}")).intermediate_summary())
            .collect();
        let findings = compare_chains(&[leaf], &file_chain);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].kind, FindingKind::ChainIncomplete);
        let names: Vec<&str> = file_chain[..5].iter().map(|c| c.subject.as_str()).collect();
        assert_eq!(
            findings[0].detail,
            format!(
                "the served chain lacks {} and 2 more, which the file has",
                names.join(" and ")
            )
        );
    }
}
