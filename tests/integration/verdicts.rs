//! Every verdict, end to end through `certdrift check`, against in-process TLS servers.

use certdrift::demo::ca::LeafSpec;
use time::OffsetDateTime;

use crate::util::{LocalSite, certdrift, run_command, strs};

#[tokio::test]
async fn served_certificate_equal_to_disk_is_in_sync_and_exits_0() {
    let site = LocalSite::start("sync.certdrift.test").await;
    let run = site.check().await;
    assert_eq!(run.status, 0, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync");
    assert_eq!(result["site"], "sync.certdrift.test");
    assert_eq!(result["address"], site.address().to_string());
    assert_eq!(result["sni"], "sync.certdrift.test");
    assert_eq!(result["served"]["serial"], site.serial(1));
    assert_eq!(result["disk"]["serial"], site.serial(1));
    assert_eq!(
        result["served"]["fingerprint_sha256"],
        result["disk"]["fingerprint_sha256"]
    );
    assert_eq!(result["served"]["verification"]["result"], "trusted");
    assert_eq!(result["served"]["chain_length"], 2);
    assert_eq!(result["disk"]["chain_length"], 1);
    assert_eq!(
        result["disk"]["file"],
        site.fullchain().display().to_string()
    );
}

#[tokio::test]
async fn renewal_without_reload_is_reload_needed_and_exits_1() {
    let mut site = LocalSite::start("renew.certdrift.test").await;
    site.renew();
    let run = site.check().await;
    assert_eq!(run.status, 1, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "reload_needed");
    assert_eq!(result["served"]["serial"], site.serial(1));
    assert_eq!(result["disk"]["serial"], site.serial(2));
    assert!(
        result["advice"]
            .as_str()
            .unwrap()
            .starts_with("reload the server")
    );

    site.serve_generation(2);
    let run = site.check().await;
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(run.first_result()["verdict"], "in_sync");
}

#[tokio::test]
async fn live_pointing_back_at_an_old_generation_is_disk_older() {
    let mut site = LocalSite::start("rollback.certdrift.test").await;
    site.renew();
    site.serve_generation(2);
    site.lineage.point_live_at(1).unwrap();
    let run = site.check().await;
    assert_eq!(run.status, 1, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "disk_older");
    assert_eq!(result["served"]["serial"], site.serial(2));
    assert_eq!(result["disk"]["serial"], site.serial(1));
}

#[tokio::test]
async fn a_certificate_for_other_names_is_unrelated() {
    let mut site = LocalSite::start("mine.certdrift.test").await;
    site.renew_with(LeafSpec::new(["default-vhost.certdrift.test"]));
    site.serve_generation(2);
    site.lineage.point_live_at(1).unwrap();
    let run = site.check().await;
    assert_eq!(run.status, 1, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "unrelated");
    assert!(
        result["reason"]
            .as_str()
            .unwrap()
            .contains("default-vhost.certdrift.test")
    );
}

#[tokio::test]
async fn an_expired_served_certificate_is_still_compared() {
    let now = OffsetDateTime::now_utc();
    let expired = LeafSpec::new(["expired.certdrift.test"]).valid_between(
        now - time::Duration::days(100),
        now - time::Duration::days(10),
    );
    let mut site = LocalSite::start_on(
        "expired.certdrift.test",
        "127.0.0.1:0".parse().unwrap(),
        expired,
    )
    .await;
    site.renew_with(LeafSpec::new(["expired.certdrift.test"]));
    let run = site.check().await;
    let result = run.first_result();
    assert_eq!(result["verdict"], "reload_needed", "{run:?}");
    assert_eq!(result["served"]["verification"]["result"], "untrusted");
    assert_eq!(result["served"]["verification"]["reason"], "expired");
    assert!(
        result["reason"].as_str().unwrap().contains("days ago"),
        "{}",
        result["reason"]
    );
    let findings = result["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{result}");
    assert_eq!(findings[0]["finding"], "served_expired");
    assert_eq!(
        findings[0]["detail"],
        format!(
            "the served certificate (serial {}) expired {} (10 days ago)",
            site.serial(1),
            (now - time::Duration::days(10)).date()
        )
    );
}

#[tokio::test]
async fn an_expired_certificate_in_sync_is_a_finding_and_exits_1() {
    // The renewal never happened: server and file agree, on a certificate clients reject.
    let now = OffsetDateTime::now_utc();
    let expired = LeafSpec::new(["lapsed.certdrift.test"]).valid_between(
        now - time::Duration::days(90),
        now - time::Duration::days(2),
    );
    let site = LocalSite::start_on(
        "lapsed.certdrift.test",
        "127.0.0.1:0".parse().unwrap(),
        expired,
    )
    .await;
    let run = site.check().await;
    assert_eq!(run.status, 1, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync", "{result}");
    let kinds: Vec<&str> = result["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["finding"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["served_expired", "disk_expired"], "{result}");
}

#[tokio::test]
async fn verification_is_reported_beside_the_verdict_never_instead() {
    // Without --ca-file the test CA is unknown to the system store: the verdict stands.
    let site = LocalSite::start("untrusted.certdrift.test").await;
    let mut args = site.check_args();
    args.truncate(args.len() - 2);
    let run = certdrift(&strs(&args)).await;
    assert_eq!(run.status, 0, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync");
    assert_eq!(result["served"]["verification"]["result"], "untrusted");
    assert!(
        result["served"]["verification"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("unknown issuer")
    );
}

#[tokio::test]
async fn sni_that_the_certificate_does_not_cover_fails_verification_only() {
    let site = LocalSite::start("named.certdrift.test").await;
    let mut args = site.check_args();
    let sni = args.iter().position(|arg| arg == "--sni").unwrap();
    args[sni + 1] = "other.certdrift.test".into();
    let run = certdrift(&strs(&args)).await;
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync", "{run:?}");
    assert_eq!(
        result["served"]["verification"]["reason"],
        "not valid for the name"
    );
    assert_eq!(result["findings"][0]["finding"], "name_not_covered");
    assert_eq!(
        result["findings"][0]["detail"],
        "the served certificate covers named.certdrift.test, not other.certdrift.test"
    );
    assert_eq!(run.status, 1, "a finding is a problem to fix");
}

#[tokio::test]
async fn ipv6_loopback_is_probed_and_labelled_in_brackets() {
    let site = LocalSite::start_on(
        "v6.certdrift.test",
        "[::1]:0".parse().unwrap(),
        LeafSpec::new(["v6.certdrift.test"]),
    )
    .await;
    let run = site.check().await;
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(
        run.first_result()["address"],
        format!("[::1]:{}", site.address().port())
    );
}

#[tokio::test]
async fn a_closed_port_is_probe_failed_refused_and_exits_2() {
    let site = LocalSite::start("refused.certdrift.test").await;
    let mut args = site.check_args();
    let port = args.iter().position(|arg| arg == "--port").unwrap();
    args[port + 1] = crate::util::free_port().to_string();
    let run = certdrift(&strs(&args)).await;
    assert_eq!(run.status, 2, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "probe_failed");
    assert_eq!(result["error"]["kind"], "refused");
    assert_eq!(
        result["disk"]["serial"],
        site.serial(1),
        "the disk side is still reported"
    );
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_probe_failed_dns() {
    // In a network namespace of its own the lookup fails at once and nothing leaves the
    // host; `.invalid` never resolves anyway (RFC 6761).
    let site = LocalSite::start("dns.certdrift.test").await;
    let cert = site.fullchain().display().to_string();
    let args = [
        "-n",
        crate::util::certdrift_bin(),
        "check",
        "--format",
        "json",
        "--host",
        "no-such-host.invalid",
        "--cert",
        &cert,
    ];
    let run = run_command("unshare", &args).await;
    assert_eq!(run.status, 2, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "probe_failed");
    assert_eq!(result["error"]["kind"], "dns");
    assert_eq!(result["address"], "no-such-host.invalid:443");
    assert!(
        result["reason"]
            .as_str()
            .unwrap()
            .starts_with("cannot resolve no-such-host.invalid")
    );
}

#[tokio::test]
async fn the_table_shows_verdicts_serials_and_what_to_do() {
    let mut site = LocalSite::start("table.certdrift.test").await;
    site.renew();
    let mut args = site.check_args();
    args.drain(1..3); // drop --format json
    let run = certdrift(&strs(&args)).await;
    assert_eq!(run.status, 1, "{run:?}");
    let header = run.stdout.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "SITE", "ADDRESS", "VERDICT", "FINDINGS", "SERVED", "DISK", "ACTION"
        ]
    );
    let row = run.stdout.lines().nth(1).unwrap();
    assert!(row.contains("reload_needed"), "{row}");
    for generation in [1, 2] {
        let serial = site.serial(generation);
        let shown = format!("{}…{}", &serial[..6], &serial[serial.len() - 6..]);
        assert!(row.contains(&shown), "{shown} in {row}");
    }
    assert!(row.ends_with("reload the server"), "{row}");
    assert!(
        run.stdout.contains("what to do: reload the server"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("sites: 1, addresses: 1 (reload_needed 1)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.is_empty(),
        "logs stay off stdout and quiet: {}",
        run.stderr
    );
}
