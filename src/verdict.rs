//! The comparison: what the served leaf and the disk leaf say together, as one [`Verdict`].
//!
//! Identity is the SHA-256 fingerprint, nothing else. Dates and keys alone mislead: a renewal
//! with `--reuse-key` keeps the key, and two renewals minutes apart have near-equal dates. Only
//! when the fingerprints differ do dates decide which side is newer, and names decide whether
//! the two are the same site's certificate at all.
//!
//! "Now" is an input, never read from the clock here, so tests use fixed times.

use std::fmt;

use serde::Serialize;
use time::OffsetDateTime;

use crate::cert::CertSummary;
use crate::disk::DiskError;
use crate::probe::ProbeError;

/// The state of one site on one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The server presents the certificate that is on disk.
    InSync,
    /// The disk holds a newer certificate than the one served: the server was not reloaded
    /// after a renewal.
    ReloadNeeded,
    /// The server presents a newer certificate than the disk holds: a reload would put an
    /// older certificate live.
    DiskOlder,
    /// The served certificate covers none of the disk certificate's names: another server,
    /// vhost or proxy answers.
    Unrelated,
    /// Handshakes to the same address returned different leaves: a stale worker or a second
    /// process on the port.
    Mixed,
    /// The address could not be probed.
    ProbeFailed,
    /// The certificate file could not be read.
    DiskError,
}

impl Verdict {
    /// Every verdict, in the order of the `certdrift_verdict` series.
    pub const ALL: [Verdict; 7] = [
        Verdict::InSync,
        Verdict::ReloadNeeded,
        Verdict::DiskOlder,
        Verdict::Unrelated,
        Verdict::Mixed,
        Verdict::ProbeFailed,
        Verdict::DiskError,
    ];

    /// The name used in labels, JSON and the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InSync => "in_sync",
            Self::ReloadNeeded => "reload_needed",
            Self::DiskOlder => "disk_older",
            Self::Unrelated => "unrelated",
            Self::Mixed => "mixed",
            Self::ProbeFailed => "probe_failed",
            Self::DiskError => "disk_error",
        }
    }

    /// Whether the two sides disagree: true for `reload_needed`, `disk_older`, `unrelated`
    /// and `mixed`; false for `in_sync` and for the verdicts that could not compare.
    pub fn is_drift(self) -> bool {
        matches!(
            self,
            Self::ReloadNeeded | Self::DiskOlder | Self::Unrelated | Self::Mixed
        )
    }

    /// Whether the site could not be checked: `probe_failed` or `disk_error`.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::ProbeFailed | Self::DiskError)
    }

    /// What an operator should do about it.
    pub fn advice(self) -> &'static str {
        match self {
            Self::InSync => "nothing to do",
            Self::ReloadNeeded => {
                "reload the server so it loads the renewed certificate (e.g. `systemctl reload nginx`), \
                 and add a reload to the ACME client's deploy hook"
            }
            Self::DiskOlder => {
                "do NOT reload: that would put an older certificate live. Find out why the file is older \
                 than what is served (live/ pointing at an old generation, a restored backup, a deploy step \
                 copying an old file)"
            }
            Self::Unrelated => {
                "check that host, port and SNI reach the server that uses this file: a default vhost, a \
                 proxy or CDN in front, or another machine answers"
            }
            Self::Mixed => {
                "one port, several certificates: a process was not replaced by the last reload (an old \
                 worker, a second instance bound with SO_REUSEPORT, another node behind the address); \
                 restart the service and check what listens on the port"
            }
            Self::ProbeFailed => {
                "check that the server is up and reachable on this address and port"
            }
            Self::DiskError => {
                "fix the certificate file or its path (`cert` in the config, or --cert)"
            }
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verdict with the reason, in words, that led to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// The verdict.
    pub verdict: Verdict,
    /// Why, with the serials and dates involved.
    pub reason: String,
}

/// Compares what is served on one address with what is on disk, at `now`.
///
/// A disk error wins over a probe failure: the comparison needs the disk leaf whatever the
/// server says, and the file is the thing to fix first.
pub fn assess(
    disk: Result<&CertSummary, &DiskError>,
    served: Result<&CertSummary, &ProbeError>,
    now: OffsetDateTime,
) -> Assessment {
    let disk = match disk {
        Ok(disk) => disk,
        Err(err) => {
            return Assessment {
                verdict: Verdict::DiskError,
                reason: err.to_string(),
            };
        }
    };
    let served = match served {
        Ok(served) => served,
        Err(err) => {
            return Assessment {
                verdict: Verdict::ProbeFailed,
                reason: err.to_string(),
            };
        }
    };
    compare(disk, served, now)
}

/// Compares two leaves whose both sides were read.
pub fn compare(disk: &CertSummary, served: &CertSummary, now: OffsetDateTime) -> Assessment {
    if served.fingerprint_sha256 == disk.fingerprint_sha256 {
        return Assessment {
            verdict: Verdict::InSync,
            reason: format!("serves the certificate on disk ({})", describe(disk, now)),
        };
    }

    if !served.shares_a_name_with(disk) {
        return Assessment {
            verdict: Verdict::Unrelated,
            reason: format!(
                "serves a certificate for {} ({}), which covers none of the names on disk ({})",
                name_list(served),
                describe(served, now),
                name_list(disk),
            ),
        };
    }

    // Equal dates with different fingerprints (a re-issue in the same second, or a
    // different key) cannot say which is newer. The disk is what the operator deployed last,
    // so the safe advice is still to load it.
    let verdict = if served.is_newer_than(disk) {
        Verdict::DiskOlder
    } else {
        Verdict::ReloadNeeded
    };
    let reason = match verdict {
        Verdict::DiskOlder => format!(
            "serves {}, newer than the file's {}",
            describe(served, now),
            describe(disk, now)
        ),
        _ => format!(
            "serves {}; the file has the newer {}",
            describe(served, now),
            describe(disk, now)
        ),
    };
    Assessment { verdict, reason }
}

/// Serial, start and end of a certificate, with how long it has left at `now`.
fn describe(cert: &CertSummary, now: OffsetDateTime) -> String {
    format!(
        "serial {}, issued {}, {}",
        cert.serial,
        cert.not_before.date(),
        expiry_words(cert.not_after, now)
    )
}

/// "expires 2026-12-24 (in 21 days)" or "expired 2026-11-30 (3 days ago)".
pub fn expiry_words(not_after: OffsetDateTime, now: OffsetDateTime) -> String {
    let left = not_after - now;
    if left.is_negative() {
        format!("expired {} ({} ago)", not_after.date(), span_words(-left))
    } else {
        format!("expires {} (in {})", not_after.date(), span_words(left))
    }
}

fn span_words(span: time::Duration) -> String {
    let days = span.whole_days();
    if days >= 2 {
        format!("{days} days")
    } else if span.whole_hours() >= 2 {
        format!("{} hours", span.whole_hours())
    } else {
        match span.whole_minutes() {
            0 | 1 => "1 minute".to_owned(),
            minutes => format!("{minutes} minutes"),
        }
    }
}

fn name_list(cert: &CertSummary) -> String {
    let names = cert.names();
    match names.len() {
        0 => "no name".to_owned(),
        1..=3 => names.join(", "),
        more => format!("{} and {} more", names[..3].join(", "), more - 3),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration as StdDuration;

    use time::Duration;
    use time::macros::datetime;

    use super::*;
    use crate::demo::ca::{LeafSpec, TestCa};
    use crate::probe::Phase;

    const NOW: OffsetDateTime = datetime!(2026-06-15 12:00 UTC);

    fn leaf(ca: &TestCa, names: &[&str], not_before: OffsetDateTime, days: i64) -> CertSummary {
        let spec = LeafSpec::new(names.iter().copied())
            .valid_between(not_before, not_before + Duration::days(days));
        ca.issue(&spec).summary()
    }

    #[test]
    fn same_fingerprint_is_in_sync() {
        let ca = TestCa::new("Sync CA");
        let cert = leaf(
            &ca,
            &["www.example.org"],
            datetime!(2026-06-01 0:00 UTC),
            90,
        );
        let assessment = compare(&cert, &cert.clone(), NOW);
        assert_eq!(assessment.verdict, Verdict::InSync);
        assert!(
            assessment
                .reason
                .contains("expires 2026-08-30 (in 75 days)"),
            "{}",
            assessment.reason
        );
    }

    #[test]
    fn newer_disk_leaf_needs_a_reload() {
        let ca = TestCa::new("Renew CA");
        let served = leaf(
            &ca,
            &["www.example.org"],
            datetime!(2026-03-20 0:00 UTC),
            90,
        );
        let disk = leaf(
            &ca,
            &["www.example.org"],
            datetime!(2026-05-20 0:00 UTC),
            90,
        );
        let assessment = compare(&disk, &served, NOW);
        assert_eq!(assessment.verdict, Verdict::ReloadNeeded);
        assert!(
            assessment.reason.contains("serves serial")
                && assessment
                    .reason
                    .contains("expires 2026-06-18 (in 2 days); the file has the newer"),
            "{}",
            assessment.reason
        );
    }

    #[test]
    fn reused_key_still_needs_a_reload() {
        // certbot --reuse-key: the public key is the same, the certificate is not.
        let ca = TestCa::new("Reuse CA");
        let first = ca.issue(&LeafSpec::new(["www.example.org"]).valid_between(
            datetime!(2026-03-20 0:00 UTC),
            datetime!(2026-06-18 0:00 UTC),
        ));
        let second = ca.issue(
            &LeafSpec::new(["www.example.org"])
                .valid_between(
                    datetime!(2026-05-20 0:00 UTC),
                    datetime!(2026-08-18 0:00 UTC),
                )
                .reuse_key(first.key_pem()),
        );
        let (served, disk) = (first.summary(), second.summary());
        assert_eq!(served.public_key_sha256, disk.public_key_sha256);
        assert_eq!(compare(&disk, &served, NOW).verdict, Verdict::ReloadNeeded);
    }

    #[test]
    fn renewals_minutes_apart_are_ordered_by_not_before() {
        let ca = TestCa::new("Minutes CA");
        let start = datetime!(2026-06-15 11:00 UTC);
        let earlier = leaf(&ca, &["a.example.org"], start, 6);
        let later = leaf(&ca, &["a.example.org"], start + Duration::minutes(3), 6);
        assert_eq!(
            compare(&later, &earlier, NOW).verdict,
            Verdict::ReloadNeeded
        );
        assert_eq!(compare(&earlier, &later, NOW).verdict, Verdict::DiskOlder);
    }

    #[test]
    fn newer_served_leaf_means_disk_older() {
        let ca = TestCa::new("Older CA");
        let disk = leaf(
            &ca,
            &["www.example.org"],
            datetime!(2026-03-20 0:00 UTC),
            90,
        );
        let served = leaf(
            &ca,
            &["www.example.org"],
            datetime!(2026-05-20 0:00 UTC),
            90,
        );
        let assessment = compare(&disk, &served, NOW);
        assert_eq!(assessment.verdict, Verdict::DiskOlder);
        assert!(Verdict::DiskOlder.advice().starts_with("do NOT reload"));
    }

    #[test]
    fn equal_dates_with_other_fingerprint_prefer_the_disk() {
        let ca = TestCa::new("Tie CA");
        let start = datetime!(2026-06-01 0:00 UTC);
        let one = leaf(&ca, &["www.example.org"], start, 90);
        let two = leaf(&ca, &["www.example.org"], start, 90);
        assert_ne!(one.fingerprint_sha256, two.fingerprint_sha256);
        assert_eq!(compare(&one, &two, NOW).verdict, Verdict::ReloadNeeded);
    }

    #[test]
    fn no_shared_name_is_unrelated_even_when_newer() {
        let ca = TestCa::new("Unrelated CA");
        let disk = leaf(
            &ca,
            &["www.example.org", "example.org"],
            datetime!(2026-03-20 0:00 UTC),
            90,
        );
        let served = leaf(
            &ca,
            &["default.hosting.example"],
            datetime!(2026-05-20 0:00 UTC),
            90,
        );
        let assessment = compare(&disk, &served, NOW);
        assert_eq!(assessment.verdict, Verdict::Unrelated);
        assert!(
            assessment.reason.contains("default.hosting.example"),
            "{}",
            assessment.reason
        );
        assert!(
            assessment.reason.contains("www.example.org, example.org"),
            "{}",
            assessment.reason
        );
    }

    #[test]
    fn a_covering_wildcard_is_related() {
        let ca = TestCa::new("Wildcard CA");
        let disk = leaf(
            &ca,
            &["www.example.org"],
            datetime!(2026-05-20 0:00 UTC),
            90,
        );
        let served = leaf(&ca, &["*.example.org"], datetime!(2026-03-20 0:00 UTC), 90);
        assert_eq!(compare(&disk, &served, NOW).verdict, Verdict::ReloadNeeded);
    }

    #[test]
    fn failures_become_verdicts_and_the_disk_error_wins() {
        let ca = TestCa::new("Failure CA");
        let cert = leaf(
            &ca,
            &["www.example.org"],
            datetime!(2026-06-01 0:00 UTC),
            90,
        );
        let disk_error = DiskError::NotFound {
            path: PathBuf::from("/etc/ssl/missing.pem"),
        };
        let probe_error = ProbeError::Timeout {
            phase: Phase::Handshake,
            after: StdDuration::from_secs(10),
            hint: None,
        };

        let failed = assess(Ok(&cert), Err(&probe_error), NOW);
        assert_eq!(failed.verdict, Verdict::ProbeFailed);
        assert_eq!(
            failed.reason,
            "timed out during the TLS handshake after 10s"
        );

        let unreadable = assess(Err(&disk_error), Ok(&cert), NOW);
        assert_eq!(unreadable.verdict, Verdict::DiskError);
        assert!(
            unreadable
                .reason
                .starts_with("/etc/ssl/missing.pem: no such file")
        );

        assert_eq!(
            assess(Err(&disk_error), Err(&probe_error), NOW).verdict,
            Verdict::DiskError
        );
    }

    #[test]
    fn expiry_words_count_from_now() {
        assert_eq!(
            expiry_words(NOW + Duration::days(3), NOW),
            "expires 2026-06-18 (in 3 days)"
        );
        assert_eq!(
            expiry_words(NOW + Duration::hours(5), NOW),
            "expires 2026-06-15 (in 5 hours)"
        );
        assert_eq!(
            expiry_words(NOW - Duration::days(2), NOW),
            "expired 2026-06-13 (2 days ago)"
        );
        assert_eq!(
            expiry_words(NOW + Duration::seconds(20), NOW),
            "expires 2026-06-15 (in 1 minute)"
        );
    }

    #[test]
    fn every_verdict_has_a_distinct_name_and_class() {
        let names: std::collections::BTreeSet<&str> =
            Verdict::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(names.len(), Verdict::ALL.len());
        let drift: Vec<Verdict> = Verdict::ALL.into_iter().filter(|v| v.is_drift()).collect();
        let expected = [
            Verdict::ReloadNeeded,
            Verdict::DiskOlder,
            Verdict::Unrelated,
            Verdict::Mixed,
        ];
        assert_eq!(drift, expected);
        let failures: Vec<Verdict> = Verdict::ALL
            .into_iter()
            .filter(|v| v.is_failure())
            .collect();
        assert_eq!(failures, [Verdict::ProbeFailed, Verdict::DiskError]);
    }
}
