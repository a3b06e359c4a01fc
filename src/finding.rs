//! Findings: problems reported beside the verdict.
//!
//! The verdict answers one question, "does the server present the leaf on disk?". A server
//! can do that and still be wrong: without the intermediate, with a chain in the wrong order,
//! with a certificate that does not cover the name clients ask for, or with a key on disk
//! that will not load at the next restart. Each of those is a [`Finding`], with its own name
//! (a stable label value), the details, and what to do.

use std::fmt;

use serde::Serialize;

/// What kind of problem a finding reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The served chain lacks an intermediate that the file has.
    ChainIncomplete,
    /// Same leaf, other intermediates than the file's.
    ChainDiffers,
    /// The served chain is not in issuing order.
    ChainOrder,
    /// A served certificate is not the issuer of the one before it (name or key id).
    ChainBroken,
    /// An intermediate or cross-sign in the served chain has expired.
    ExpiredIntermediate,
    /// The served leaf does not cover the SNI name.
    NameNotCovered,
    /// The private key on disk does not belong to the certificate on disk.
    KeyMismatch,
    /// The private key file could not be read.
    KeyUnreadable,
    /// Addresses of the same site serve different leaves.
    AddressesDiffer,
    /// Some of the handshakes to the address failed while others succeeded.
    HandshakesFailed,
    /// The served leaf's not-after has passed: clients reject it now.
    ServedExpired,
    /// The file's leaf has expired: the renewal did not happen, and reloading will not help.
    DiskExpired,
    /// The file is a copy of an ACME lineage, older than the lineage's current certificate.
    CopyStale,
    /// A newer lineage for the same names (`NAME-0001`) exists beside the one in use.
    StaleLineage,
    /// A `live/` link of the lineage points at an older generation than the archive's newest.
    LiveNotNewest,
    /// A `live/` entry of the lineage is a plain file instead of a symlink into `archive/`.
    LiveNotSymlink,
}

impl FindingKind {
    /// Every kind, in documentation order.
    pub const ALL: [FindingKind; 16] = [
        FindingKind::ChainIncomplete,
        FindingKind::ChainDiffers,
        FindingKind::ChainOrder,
        FindingKind::ChainBroken,
        FindingKind::ExpiredIntermediate,
        FindingKind::NameNotCovered,
        FindingKind::KeyMismatch,
        FindingKind::KeyUnreadable,
        FindingKind::AddressesDiffer,
        FindingKind::HandshakesFailed,
        FindingKind::ServedExpired,
        FindingKind::DiskExpired,
        FindingKind::CopyStale,
        FindingKind::StaleLineage,
        FindingKind::LiveNotNewest,
        FindingKind::LiveNotSymlink,
    ];

    /// The name used in labels, JSON and the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChainIncomplete => "chain_incomplete",
            Self::ChainDiffers => "chain_differs",
            Self::ChainOrder => "chain_order",
            Self::ChainBroken => "chain_broken",
            Self::ExpiredIntermediate => "expired_intermediate",
            Self::NameNotCovered => "name_not_covered",
            Self::KeyMismatch => "key_mismatch",
            Self::KeyUnreadable => "key_unreadable",
            Self::AddressesDiffer => "addresses_differ",
            Self::HandshakesFailed => "handshakes_failed",
            Self::ServedExpired => "served_expired",
            Self::DiskExpired => "disk_expired",
            Self::CopyStale => "copy_stale",
            Self::StaleLineage => "stale_lineage",
            Self::LiveNotNewest => "live_not_newest",
            Self::LiveNotSymlink => "live_not_symlink",
        }
    }

    /// What an operator should do about it.
    pub fn advice(self) -> &'static str {
        match self {
            Self::ChainIncomplete => {
                "configure the server with the full chain (certbot's fullchain.pem, not cert.pem), then reload"
            }
            Self::ChainDiffers => {
                "the server sends other intermediates than the file holds: check which chain file it loads, then reload"
            }
            Self::ChainOrder => {
                "list the leaf first, then each certificate followed by its issuer, then reload"
            }
            Self::ChainBroken => {
                "replace the intermediates with the ones that issued this certificate (the CA's current chain), then reload"
            }
            Self::ExpiredIntermediate => {
                "drop the expired intermediate or cross-sign from the chain file (get the CA's current chain), then reload"
            }
            Self::NameNotCovered => {
                "issue a certificate that includes this name, or fix the SNI/vhost that answers it"
            }
            Self::KeyMismatch => {
                "the next reload or restart will fail: put the key that belongs to this certificate in place first"
            }
            Self::KeyUnreadable => "fix the `key` path or its permissions",
            Self::AddressesDiffer => {
                "some addresses serve another certificate: reload or redeploy every node behind the name"
            }
            Self::HandshakesFailed => {
                "some connections fail: look for an overloaded or half-broken process on the port"
            }
            Self::ServedExpired => {
                "clients reject this certificate now: put a valid one on disk (renew it if the file has expired too), then reload"
            }
            Self::DiskExpired => {
                "the ACME client did not renew it: run the renewal by hand (`certbot renew`), read its log, then reload"
            }
            Self::CopyStale => {
                "a reload would not help: re-run the deploy step that copies the lineage to this file \
                 (certbot's --deploy-hook or renewal-hooks/deploy), fix why it failed, then reload"
            }
            Self::StaleLineage => {
                "point the server (or the copy's deploy step) at the newer lineage's live/ files and reload; \
                 then remove the old lineage (`certbot delete --cert-name NAME`) so renewals stop splitting"
            }
            Self::LiveNotNewest => {
                "unless this is a deliberate rollback, point live/ at the newest generation \
                 (`certbot update_symlinks`), then reload"
            }
            Self::LiveNotSymlink => {
                "put the files back into archive/ and the links into live/ (`certbot update_symlinks`); \
                 deploy copies elsewhere, never over live/"
            }
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem, with its details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind of problem.
    #[serde(rename = "finding")]
    pub kind: FindingKind,
    /// The certificates, names or counts involved.
    pub detail: String,
    /// What to do.
    pub advice: &'static str,
}

impl Finding {
    /// A finding of `kind` with `detail`.
    pub fn new(kind: FindingKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            advice: kind.advice(),
        }
    }
}

/// Folds findings of the same kind into one, their details joined, in first-seen order.
///
/// A finding is a label value (`certdrift_finding{finding=...}`), so an address carries each
/// kind at most once; two sources of the same problem (the served chain and the file's) keep
/// both details.
pub fn one_per_kind(findings: Vec<Finding>) -> Vec<Finding> {
    let mut merged: Vec<Finding> = Vec::with_capacity(findings.len());
    for finding in findings {
        match merged.iter_mut().find(|seen| seen.kind == finding.kind) {
            Some(seen) => {
                if seen.detail != finding.detail {
                    seen.detail = format!("{}; {}", seen.detail, finding.detail);
                }
            }
            None => merged.push(finding),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_of_one_kind_fold_into_one() {
        let folded = one_per_kind(vec![
            Finding::new(FindingKind::ChainBroken, "in the served chain, a"),
            Finding::new(FindingKind::NameNotCovered, "b"),
            Finding::new(FindingKind::ChainBroken, "in the file's chain, c"),
            Finding::new(FindingKind::NameNotCovered, "b"),
        ]);
        let kinds: Vec<FindingKind> = folded.iter().map(|finding| finding.kind).collect();
        assert_eq!(
            kinds,
            [FindingKind::ChainBroken, FindingKind::NameNotCovered]
        );
        assert_eq!(
            folded[0].detail,
            "in the served chain, a; in the file's chain, c"
        );
        assert_eq!(folded[1].detail, "b");
    }
}
