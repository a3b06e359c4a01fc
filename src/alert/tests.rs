//! Conditions, transitions, filters, payloads and signatures, with fixed times and no
//! network.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;

use super::notify::backoff;
use super::receivers::{self, SIGNATURE_HEADER};
use super::state::{AlertBook, Event, Notification, StateFile};
use super::*;
use crate::cert::CertSummary;
use crate::config::{Config, Receiver, Threshold};
use crate::demo::ca::{LeafSpec, TestCa};
use crate::disk::{DiskCert, DiskError};
use crate::finding::Finding;
use crate::inspect::{AddressReport, DiskState, ServedReport, SiteReport};
use crate::probe::Verification;

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);
const ADDRESS: &str = "192.0.2.10:443";

fn leaf(ca: &TestCa, not_before: OffsetDateTime, days: i64) -> CertSummary {
    ca.issue(
        &LeafSpec::new(["blog.example.org"])
            .valid_between(not_before, not_before + time::Duration::days(days)),
    )
    .summary()
}

fn row(verdict: Verdict, served: Option<CertSummary>) -> AddressReport {
    AddressReport {
        site: "blog".to_owned(),
        origin: None,
        address: ADDRESS.to_owned(),
        key_type: None,
        sni: Some("blog.example.org".to_owned()),
        protocol: "tls",
        verdict,
        reason: format!("reason for {verdict}"),
        advice: verdict.advice(),
        findings: Vec::new(),
        hint: None,
        served: served.map(|leaf| ServedReport {
            leaf: leaf.into(),
            chain_length: 2,
            chain: Vec::new(),
            verification: Verification::Trusted,
            tls_version: "TLSv1.3",
        }),
        served_leaves: Vec::new(),
        handshakes: 3,
        handshakes_failed: 0,
        disk: None,
        error: None,
        checked_at: NOW,
        duration_seconds: 0.01,
    }
}

fn disk(cert: Result<CertSummary, DiskError>) -> DiskState {
    let file = PathBuf::from("/etc/letsencrypt/live/blog/fullchain.pem");
    DiskState {
        key_type: None,
        file: file.clone(),
        result: cert.map(|leaf| DiskCert {
            path: file,
            leaf: Arc::new(leaf),
            chain: Vec::new(),
            chain_file: None,
            notes: Vec::new(),
        }),
        key_check: None,
        lineage: None,
        lineage_findings: Vec::new(),
        lineage_notes: Vec::new(),
        changed_at: None,
    }
}

fn entry(
    disks: Vec<DiskState>,
    rows: Vec<AddressReport>,
    drift_since: Option<OffsetDateTime>,
) -> SiteEntry {
    let drift_since = drift_since
        .into_iter()
        .map(|since| (ADDRESS.to_owned(), (rows[0].verdict, since)))
        .collect();
    SiteEntry {
        name: "blog".to_owned(),
        report: Some(SiteReport {
            site: "blog".to_owned(),
            disks,
            addresses: rows,
        }),
        drift_since,
        disk_changed: HashMap::new(),
    }
}

fn settings() -> AlertSettings {
    AlertSettings::default()
}

fn names(conditions: &[Condition]) -> Vec<(AlertName, bool)> {
    conditions.iter().map(|c| (c.key.alert, c.ready)).collect()
}

#[test]
fn reload_needed_waits_for_the_grace_period() {
    let ca = TestCa::new("grace CA");
    let served = leaf(&ca, NOW - time::Duration::days(60), 90);
    let renewed = leaf(&ca, NOW - time::Duration::days(1), 90);
    let mut evaluator = Evaluator::new(settings());
    let site = |since| {
        entry(
            vec![disk(Ok(renewed.clone()))],
            vec![row(Verdict::ReloadNeeded, Some(served.clone()))],
            Some(since),
        )
    };
    let early = evaluator.evaluate(&site(NOW - time::Duration::minutes(9)), NOW);
    assert_eq!(names(&early), [(AlertName::ReloadNeeded, false)]);
    let late = evaluator.evaluate(&site(NOW - time::Duration::minutes(10)), NOW);
    assert_eq!(names(&late), [(AlertName::ReloadNeeded, true)]);
    assert_eq!(late[0].severity, Severity::Warning);
    assert_eq!(late[0].key.address, ADDRESS);
    assert_eq!(
        late[0].summary,
        format!(
            "blog on {ADDRESS} serves an older certificate than the one on disk; reload the server"
        )
    );
    assert!(
        late[0]
            .description
            .starts_with("reason for reload_needed. What to do: reload the server"),
        "{}",
        late[0].description
    );
}

#[test]
fn the_reload_grace_counts_from_the_disk_change() {
    let ca = TestCa::new("grace CA");
    let served = leaf(&ca, NOW - time::Duration::days(60), 90);
    let renewed = leaf(&ca, NOW - time::Duration::days(1), 90);
    let mut evaluator = Evaluator::new(settings());
    // certdrift just started (the drift is new), but the file changed an hour ago: the
    // grace is over. And the other way round: an old drift, a file changed a minute ago.
    let site = |drift_since, changed| {
        let mut entry = entry(
            vec![disk(Ok(renewed.clone()))],
            vec![row(Verdict::ReloadNeeded, Some(served.clone()))],
            Some(drift_since),
        );
        let file = PathBuf::from("/etc/letsencrypt/live/blog/fullchain.pem");
        entry
            .disk_changed
            .insert(file, (renewed.fingerprint_sha256, changed));
        entry
    };
    let restarted = site(NOW, NOW - time::Duration::hours(1));
    assert_eq!(
        names(&evaluator.evaluate(&restarted, NOW)),
        [(AlertName::ReloadNeeded, true)]
    );
    let fresh = site(
        NOW - time::Duration::hours(1),
        NOW - time::Duration::minutes(1),
    );
    assert_eq!(
        names(&evaluator.evaluate(&fresh, NOW)),
        [(AlertName::ReloadNeeded, false)]
    );
}

#[test]
fn probe_and_disk_failures_alert_after_the_failure_count() {
    let mut evaluator = Evaluator::new(AlertSettings {
        failure_count: 2,
        ..settings()
    });
    let failing = || {
        entry(
            vec![disk(Err(DiskError::NotFound {
                path: "/etc/letsencrypt/live/blog/fullchain.pem".into(),
            }))],
            vec![row(Verdict::ProbeFailed, None)],
            None,
        )
    };
    let first = evaluator.evaluate(&failing(), NOW);
    assert_eq!(
        names(&first),
        [
            (AlertName::DiskError, false),
            (AlertName::ProbeFailing, false)
        ]
    );
    assert_eq!(
        first[0].key.address, "/etc/letsencrypt/live/blog/fullchain.pem",
        "disk alerts are keyed by the file"
    );
    let second = evaluator.evaluate(&failing(), NOW);
    assert_eq!(
        names(&second),
        [
            (AlertName::DiskError, true),
            (AlertName::ProbeFailing, true)
        ]
    );

    // One success resets the count.
    let ca = TestCa::new("reset CA");
    let cert = leaf(&ca, NOW - time::Duration::days(10), 90);
    let fine = entry(
        vec![disk(Ok(cert.clone()))],
        vec![row(Verdict::InSync, Some(cert))],
        None,
    );
    assert!(evaluator.evaluate(&fine, NOW).is_empty());
    assert_eq!(
        names(&evaluator.evaluate(&failing(), NOW)),
        [
            (AlertName::DiskError, false),
            (AlertName::ProbeFailing, false)
        ]
    );
}

#[test]
fn expiry_thresholds_scale_with_the_lifetime() {
    let ca = TestCa::new("lifetime CA");
    let mut evaluator = Evaluator::new(settings());
    let alerts_for = |evaluator: &mut Evaluator, cert: CertSummary| {
        names(&evaluator.evaluate(
            &entry(
                vec![disk(Ok(cert.clone()))],
                vec![row(Verdict::InSync, Some(cert))],
                None,
            ),
            NOW,
        ))
    };
    // 6-day certificate, 3 days in: 3 days left, over a quarter and a sixth of 6 days.
    let six_day = leaf(&ca, NOW - time::Duration::days(3), 6);
    assert_eq!(alerts_for(&mut evaluator, six_day), []);
    // 6-day certificate, 5 days in: 1 day left is under a quarter (1.5 days), not under a
    // sixth (exactly 1 day).
    let six_day_late = leaf(&ca, NOW - time::Duration::days(5), 6);
    assert_eq!(
        alerts_for(&mut evaluator, six_day_late),
        [(AlertName::RenewalOverdue, true)]
    );
    // 90-day certificate with 20 days left: under 22.5 days, over 15.
    let ninety = leaf(&ca, NOW - time::Duration::days(70), 90);
    assert_eq!(
        alerts_for(&mut evaluator, ninety),
        [(AlertName::RenewalOverdue, true)]
    );
    // 90-day certificate with 10 days left: both.
    let ninety_late = leaf(&ca, NOW - time::Duration::days(80), 90);
    assert_eq!(
        alerts_for(&mut evaluator, ninety_late),
        [
            (AlertName::RenewalOverdue, true),
            (AlertName::ServedExpiringSoon, true)
        ]
    );
    // Expired: `Expired`, not `ServedExpiringSoon`.
    let expired = leaf(&ca, NOW - time::Duration::days(91), 90);
    assert_eq!(
        alerts_for(&mut evaluator, expired),
        [
            (AlertName::RenewalOverdue, true),
            (AlertName::Expired, true)
        ]
    );

    // Absolute overrides: 30 days left on a 90-day certificate trips a 45-day threshold.
    let mut absolute = Evaluator::new(AlertSettings {
        served_expiring: Threshold::Left(Duration::from_secs(45 * 86400)),
        renewal_overdue: Threshold::Left(Duration::from_secs(86400)),
        ..settings()
    });
    let month_left = leaf(&ca, NOW - time::Duration::days(60), 90);
    assert_eq!(
        alerts_for(&mut absolute, month_left),
        [(AlertName::ServedExpiringSoon, true)]
    );
}

#[test]
fn findings_become_alerts_once_per_kind() {
    let ca = TestCa::new("finding CA");
    let cert = leaf(&ca, NOW - time::Duration::days(10), 90);
    let mut with_findings = row(Verdict::InSync, Some(cert.clone()));
    with_findings.findings = vec![
        Finding::new(FindingKind::ChainIncomplete, "no intermediate"),
        Finding::new(FindingKind::ChainOrder, "out of order"),
        Finding::new(FindingKind::NameNotCovered, "www.example.org"),
        Finding::new(FindingKind::KeyMismatch, "privkey.pem"),
        Finding::new(FindingKind::ChainDiffers, "not an alert"),
        Finding::new(FindingKind::CopyStale, "haproxy.pem is generation 1"),
        Finding::new(FindingKind::LiveNotNewest, "live/ at generation 1"),
    ];
    let conditions = Evaluator::new(settings())
        .evaluate(&entry(vec![disk(Ok(cert))], vec![with_findings], None), NOW);
    let severities: Vec<(AlertName, Severity)> = conditions
        .iter()
        .map(|c| (c.key.alert, c.severity))
        .collect();
    assert_eq!(
        severities,
        [
            (AlertName::ChainProblem, Severity::Warning),
            (AlertName::NameNotCovered, Severity::Critical),
            (AlertName::KeyMismatch, Severity::Critical),
            (AlertName::LineageProblem, Severity::Warning),
        ]
    );
}

fn receiver(name: &str, extra: &str) -> Receiver {
    let text = format!(
        "[[site]]\nname = \"blog\"\nhost = \"blog.example.org\"\ncert = \"c.pem\"\n\n\
         [[site]]\nname = \"mail\"\nhost = \"mail.example.org\"\ncert = \"m.pem\"\n\n\
         [[receiver]]\nname = \"{name}\"\n{extra}\n"
    );
    Config::from_toml(&text, "certdrift.toml", Path::new("/etc/certdrift"))
        .unwrap_or_else(|err| panic!("{err}"))
        .receivers
        .remove(0)
}

fn webhook(name: &str) -> Receiver {
    receiver(
        name,
        "type = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\nrepeat_interval = \"1h\"",
    )
}

fn condition(alert: AlertName, site: &str, ready: bool) -> Condition {
    Condition {
        key: AlertKey {
            alert,
            site: site.to_owned(),
            address: ADDRESS.to_owned(),
        },
        severity: alert.severity(),
        summary: format!("{site} summary"),
        description: format!("{site} description"),
        ready,
    }
}

fn events(book: &AlertBook) -> Vec<(&str, Event, AlertName)> {
    book.outbox
        .iter()
        .map(|n| (n.receiver.as_str(), n.event, n.key.alert))
        .collect()
}

#[test]
fn fires_once_repeats_after_the_interval_and_resolves_once() {
    let receivers = [webhook("ops")];
    let mut book = AlertBook::new();
    let reload = condition(AlertName::ReloadNeeded, "blog", true);

    assert!(!book.apply(
        "blog",
        &[condition(AlertName::ReloadNeeded, "blog", false)],
        &receivers,
        NOW
    ));
    assert!(book.outbox.is_empty(), "not ready: nothing fires");

    assert!(book.apply("blog", std::slice::from_ref(&reload), &receivers, NOW));
    assert_eq!(
        events(&book),
        [("ops", Event::Firing, AlertName::ReloadNeeded)]
    );
    assert_eq!(book.firing[0].started_at, NOW);

    // Still firing, delivered, within the repeat interval: nothing new.
    let id = book.outbox[0].id.clone();
    assert!(book.remove(&id));
    let later = NOW + time::Duration::minutes(59);
    assert!(!book.apply("blog", std::slice::from_ref(&reload), &receivers, later));
    assert!(book.outbox.is_empty());

    // After the interval: one repeat, not two even if evaluated twice.
    let hour = NOW + time::Duration::hours(1);
    assert!(book.apply("blog", std::slice::from_ref(&reload), &receivers, hour));
    book.apply(
        "blog",
        std::slice::from_ref(&reload),
        &receivers,
        hour + time::Duration::hours(2),
    );
    assert_eq!(
        events(&book),
        [("ops", Event::Repeat, AlertName::ReloadNeeded)]
    );

    // Another site's evaluation does not resolve this one.
    assert!(!book.apply("mail", &[], &receivers, hour));
    assert_eq!(book.firing.len(), 1);

    // Resolve: queued after the undelivered repeat, with the end time.
    let end = NOW + time::Duration::hours(5);
    assert!(book.apply("blog", &[], &receivers, end));
    assert_eq!(
        events(&book),
        [
            ("ops", Event::Repeat, AlertName::ReloadNeeded),
            ("ops", Event::Resolved, AlertName::ReloadNeeded)
        ]
    );
    assert_eq!(book.outbox[1].ended_at, Some(end));
    assert_eq!(book.outbox[1].started_at, NOW);
    assert!(book.firing.is_empty());
    assert!(!book.apply("blog", &[], &receivers, end));
    assert_eq!(book.outbox.len(), 2);
}

#[test]
fn a_restored_book_neither_fires_again_nor_forgets_the_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let file = StateFile::new(dir.path().join("alerts.json"));
    assert_eq!(
        file.load().unwrap(),
        AlertBook::new(),
        "no file: empty book"
    );
    let receivers = [webhook("ops")];
    let mut book = AlertBook::new();
    book.apply(
        "blog",
        &[condition(AlertName::ProbeFailing, "blog", true)],
        &receivers,
        NOW,
    );
    let id = book.outbox[0].id.clone();
    book.remove(&id);
    file.save(&book).unwrap();

    let mut restored = file.load().unwrap();
    assert_eq!(restored, book);
    // After a restart the failure count starts over, so the condition is not ready yet: it
    // keeps firing, and nothing is sent.
    let later = NOW + time::Duration::minutes(1);
    assert!(!restored.apply(
        "blog",
        &[condition(AlertName::ProbeFailing, "blog", false)],
        &receivers,
        later
    ));
    assert!(restored.outbox.is_empty());
    assert_eq!(restored.firing.len(), 1);
    assert!(restored.apply("blog", &[], &receivers, later));
    assert_eq!(
        events(&restored),
        [("ops", Event::Resolved, AlertName::ProbeFailing)]
    );

    std::fs::write(file.path(), "{ not json").unwrap();
    let err = file.load().unwrap_err();
    assert!(
        err.starts_with(&format!(
            "{}: not a certdrift alert state file",
            file.path().display()
        )),
        "{err}"
    );
}

#[test]
fn receivers_get_only_the_sites_and_severities_they_ask_for() {
    let receivers = [
        webhook("all"),
        receiver(
            "blog-critical",
            "type = \"slack\"\nurl = \"https://hooks.example.com/T0/B0/x\"\nsites = [\"blog\"]\nseverities = [\"critical\"]",
        ),
        receiver(
            "mail-only",
            "type = \"alertmanager\"\nurl = \"http://127.0.0.1:9093\"\nsites = [\"mail\"]",
        ),
    ];
    assert!(receivers[1].accepts("blog", Severity::Critical));
    assert!(!receivers[1].accepts("blog", Severity::Warning));
    assert!(!receivers[1].accepts("mail", Severity::Critical));
    assert!(receivers[2].accepts("mail", Severity::Warning));
    assert!(!receivers[2].accepts("blog", Severity::Critical));

    let mut book = AlertBook::new();
    book.apply(
        "blog",
        &[
            condition(AlertName::ReloadNeeded, "blog", true),
            condition(AlertName::Expired, "blog", true),
        ],
        &receivers,
        NOW,
    );
    book.apply(
        "mail",
        &[condition(AlertName::DiskOlder, "mail", true)],
        &receivers,
        NOW,
    );
    assert_eq!(
        events(&book),
        [
            ("all", Event::Firing, AlertName::ReloadNeeded),
            ("all", Event::Firing, AlertName::Expired),
            ("blog-critical", Event::Firing, AlertName::Expired),
            ("all", Event::Firing, AlertName::DiskOlder),
            ("mail-only", Event::Firing, AlertName::DiskOlder),
        ]
    );
}

fn notification(event: Event) -> Notification {
    Notification {
        id: "0123456789abcdef0123456789abcdef".to_owned(),
        receiver: "ops".to_owned(),
        event,
        key: AlertKey {
            alert: AlertName::ReloadNeeded,
            site: "blog".to_owned(),
            address: ADDRESS.to_owned(),
        },
        severity: Severity::Warning,
        summary: "blog on 192.0.2.10:443 needs a reload".to_owned(),
        description: "served 01, disk 02".to_owned(),
        started_at: NOW,
        ended_at: (event == Event::Resolved).then_some(NOW + time::Duration::hours(1)),
    }
}

#[test]
fn webhook_payload_has_every_documented_field() {
    let request = receivers::build(
        &webhook("ops"),
        &notification(Event::Resolved),
        "http://certdrift:10159/",
    );
    assert_eq!(request.url, "http://127.0.0.1:9/hook");
    assert!(request.headers.is_empty(), "no secret, no signature");
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({
            "version": 1,
            "id": "0123456789abcdef0123456789abcdef",
            "event": "resolved",
            "status": "resolved",
            "alert": "ReloadNeeded",
            "severity": "warning",
            "site": "blog",
            "address": "192.0.2.10:443",
            "summary": "blog on 192.0.2.10:443 needs a reload",
            "description": "served 01, disk 02",
            "started_at": "2026-06-01T12:00:00Z",
            "ended_at": "2026-06-01T13:00:00Z",
            "generator_url": "http://certdrift:10159/",
        })
    );
    let firing = receivers::webhook_payload(&notification(Event::Repeat), "http://x/");
    assert_eq!(firing["status"], "firing");
    assert_eq!(firing["event"], "repeat");
    assert_eq!(firing["ended_at"], serde_json::Value::Null);
}

#[test]
fn signed_webhook_carries_a_verifiable_hmac() {
    let signed = receiver(
        "signed",
        "type = \"webhook\"\nurl = \"https://hooks.example.com/certdrift\"\nsecret = \"s3cret-key\"",
    );
    let request = receivers::build(&signed, &notification(Event::Firing), "http://x/");
    assert_eq!(request.headers.len(), 1);
    let (name, value) = &request.headers[0];
    assert_eq!(*name, SIGNATURE_HEADER);
    let hex = value.strip_prefix("sha256=").expect("sha256= prefix");
    let tag: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"s3cret-key");
    hmac::verify(&key, &request.body, &tag).expect("the signature verifies with the secret");
    let wrong = hmac::Key::new(hmac::HMAC_SHA256, b"another key");
    assert!(hmac::verify(&wrong, &request.body, &tag).is_err());
    // RFC 4231 test case 2, so the construction is HMAC-SHA256 and nothing else.
    assert_eq!(
        receivers::signature(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(format!("{:?}", signed.url), "[redacted]");
    assert!(!format!("{signed:?}").contains("s3cret-key"));
}

#[test]
fn slack_and_alertmanager_payloads() {
    let slack = receiver(
        "chat",
        "type = \"slack\"\nurl = \"https://hooks.example.com/T0/B0/x\"",
    );
    let request = receivers::build(&slack, &notification(Event::Firing), "http://x/");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&request.body).unwrap(),
        json!({"text": "[FIRING] ReloadNeeded (warning): blog on 192.0.2.10:443 needs a reload\nserved 01, disk 02"})
    );

    let am = receiver(
        "am",
        "type = \"alertmanager\"\nurl = \"http://127.0.0.1:9093/\"",
    );
    assert_eq!(am.repeat_interval, Duration::from_secs(60));
    let firing = receivers::build(&am, &notification(Event::Firing), "http://certdrift:10159/");
    assert_eq!(firing.url, "http://127.0.0.1:9093/api/v2/alerts");
    let expected = json!([{
        "labels": {
            "alertname": "CertdriftReloadNeeded",
            "severity": "warning",
            "site": "blog",
            "address": "192.0.2.10:443",
        },
        "annotations": {
            "summary": "blog on 192.0.2.10:443 needs a reload",
            "description": "served 01, disk 02",
        },
        "startsAt": "2026-06-01T12:00:00Z",
        "generatorURL": "http://certdrift:10159/",
    }]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&firing.body).unwrap(),
        expected
    );
    let resolved = receivers::build(
        &am,
        &notification(Event::Resolved),
        "http://certdrift:10159/",
    );
    let mut expected = expected;
    expected[0]["endsAt"] = json!("2026-06-01T13:00:00Z");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&resolved.body).unwrap(),
        expected
    );
}

#[test]
fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
    let base = Duration::from_secs(1);
    let max = Duration::from_secs(60);
    assert_eq!(backoff(base, max, 1, 0.0), Duration::from_millis(500));
    assert_eq!(backoff(base, max, 1, 1.0), Duration::from_secs(1));
    assert_eq!(backoff(base, max, 3, 0.0), Duration::from_secs(2));
    assert_eq!(backoff(base, max, 3, 0.5), Duration::from_secs(3));
    assert_eq!(backoff(base, max, 20, 1.0), max);
    assert_eq!(backoff(base, max, u32::MAX, 0.0), max / 2);
}

#[test]
fn alert_and_receiver_config_is_validated() {
    let base = "[[site]]\nname = \"blog\"\nhost = \"blog.example.org\"\ncert = \"c.pem\"\n";
    let parse = |extra: &str| {
        Config::from_toml(
            &format!("{base}{extra}"),
            "certdrift.toml",
            Path::new("/etc/certdrift"),
        )
    };
    let config = parse(
        "[alerts]\nstate_file = \"alerts.json\"\nreload_grace = \"0s\"\nfailure_count = 1\n\
         served_expiring = \"14d\"\nrenewal_overdue = \"30%\"\nretry_base = \"10ms\"\nretry_max = \"1s\"\n",
    )
    .unwrap();
    assert_eq!(
        config.alerts.state_file.as_deref(),
        Some(Path::new("/etc/certdrift/alerts.json"))
    );
    assert_eq!(config.alerts.reload_grace, Duration::ZERO);
    assert_eq!(
        config.alerts.served_expiring,
        Threshold::Left(Duration::from_secs(14 * 86400))
    );
    assert_eq!(config.alerts.renewal_overdue, Threshold::FractionLeft(0.3));
    assert_eq!(config.alerts.retry_base, Duration::from_millis(10));
    let defaults = parse("").unwrap().alerts;
    assert_eq!(defaults.reload_grace, Duration::from_secs(600));
    assert_eq!(defaults.served_expiring, Threshold::FractionLeft(1.0 / 6.0));
    assert_eq!(defaults.failure_count, 3);

    let error = |extra: &str| parse(extra).unwrap_err().to_string();
    assert_eq!(
        error("[alerts]\nserved_expiring = \"3/2\"\n"),
        "certdrift.toml:6: `served_expiring`: `3/2` must be a share between 0 and 1 of the lifetime"
    );
    assert_eq!(
        error("[[receiver]]\nname = \"x\"\ntype = \"pager\"\nurl = \"http://a/\"\n"),
        "certdrift.toml:7: `type`: `pager` is not a receiver type; use \"webhook\", \"slack\" or \"alertmanager\""
    );
    assert_eq!(
        error(
            "[[receiver]]\nname = \"x\"\ntype = \"slack\"\nurl = \"http://a/\"\nsites = [\"mail\"]\n"
        ),
        "certdrift.toml:9: `sites`: no [[site]] is named `mail`"
    );
    // An unset variable leaves the receiver out, for `serve` to refuse and `check` to ignore.
    let unresolved = parse(
        "[[receiver]]\nname = \"x\"\ntype = \"webhook\"\nurl_env = \"CERTDRIFT_TEST_UNSET_VARIABLE\"\n",
    )
    .unwrap();
    assert!(unresolved.receivers.is_empty());
    assert_eq!(
        unresolved
            .unresolved_receivers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "certdrift.toml:8: receiver `x`: `url_env`: the environment variable `CERTDRIFT_TEST_UNSET_VARIABLE` is not set or empty; set it for certdrift's process"
        ]
    );
    // A bad URL is reported without quoting it: it may hold a token.
    let bad_url =
        error("[[receiver]]\nname = \"x\"\ntype = \"slack\"\nurl = \"hooks/T0/secret-token\"\n");
    assert!(!bad_url.contains("secret-token"), "{bad_url}");
    assert!(
        bad_url.contains("receiver `x`: the URL is not an http:// or https:// URL"),
        "{bad_url}"
    );
}

/// A log sink for tests: what a `fmt` subscriber writes, kept in memory.
#[derive(Clone, Default)]
struct CapturedLog(Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn notifications_of_a_removed_receiver_are_dropped_with_a_warning() {
    let before = [webhook("ops"), webhook("old")];
    let mut book = AlertBook::new();
    book.apply(
        "blog",
        &[
            condition(AlertName::ReloadNeeded, "blog", true),
            condition(AlertName::Expired, "blog", true),
        ],
        &before,
        NOW,
    );
    assert_eq!(book.outbox.len(), 4);

    let log = CapturedLog::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .finish();
    let after = [webhook("ops")];
    let changed = tracing::subscriber::with_default(subscriber, || {
        book.retain_configured(&["blog"], &after, NOW)
    });

    assert!(changed);
    assert!(book.outbox.iter().all(|n| n.receiver == "ops"));
    assert_eq!(book.outbox.len(), 2);
    let text = log.text();
    assert!(
        text.contains(
            "WARN certdrift::alert::state: dropped the queued notifications of a receiver no \
             longer in the config receiver=old dropped=2"
        ),
        "{text}"
    );
    assert!(
        !text.contains("127.0.0.1:9/hook"),
        "the URL is in the log: {text}"
    );
}
