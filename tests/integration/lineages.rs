//! ACME lineages through `certdrift check --format json`: a stale copy, a newer `NAME-0001`,
//! `live/` pointing back at an old generation, `live/` turned into plain files, a search cut
//! at 500 lineages.

use std::path::Path;

use certdrift::demo::ca::LeafSpec;
use certdrift::demo::layout::CertbotLineage;

use crate::util::{LocalSite, check_config};

/// The findings of a `check` result, as `(name, detail)`.
fn findings(result: &serde_json::Value) -> Vec<(String, String)> {
    result["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array in {result}"))
        .iter()
        .map(|finding| {
            (
                finding["finding"].as_str().unwrap().to_owned(),
                finding["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The detail of the one finding named `name`, failing with every finding seen otherwise.
fn detail_of(result: &serde_json::Value, name: &str) -> String {
    let all = findings(result);
    let matching: Vec<&String> = all
        .iter()
        .filter(|(kind, _)| kind == name)
        .map(|(_, detail)| detail)
        .collect();
    assert_eq!(matching.len(), 1, "one {name} finding expected in {all:?}");
    matching[0].clone()
}

/// A `[[site]]` table for `site` read from `cert` instead of its live fullchain.
fn site_reading(site: &LocalSite, name: &str, cert: &Path, extra: &str) -> String {
    site.site_table(name).replace(
        &format!("cert = \"{}\"", site.fullchain().display()),
        &format!("cert = \"{}\"\n{extra}", cert.display()),
    )
}

#[tokio::test]
async fn a_haproxy_copy_older_than_its_lineage_is_copy_stale() {
    let mut site = LocalSite::start("shop.certdrift.test").await;
    // The deploy step made haproxy's combined PEM from generation 1, the server loaded it,
    // then a renewal wrote generation 2 and the deploy step did not run.
    let copy = site.dir.path().join("haproxy").join("shop.pem");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    let first = &site.generations[0];
    std::fs::write(
        &copy,
        format!("{}{}", first.fullchain_pem(), first.key_pem()),
    )
    .unwrap();
    let root = site.dir.path().join("letsencrypt");

    // Before the renewal the copy is current: no lineage finding, yet the lineage is known.
    let config = format!(
        "letsencrypt_dir = \"{}\"\n\n{}",
        root.display(),
        site_reading(&site, "shop", &copy, "")
    );
    let run = check_config(site.dir.path(), &config).await;
    assert_eq!(run.status, 0, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync");
    assert_eq!(findings(&result), []);
    assert_eq!(
        result["disk"]["lineage"]["live"],
        site.lineage.live_dir().display().to_string()
    );
    assert_eq!(result["disk"]["lineage"]["relation"], "copy");

    site.renew();
    let run = check_config(site.dir.path(), &config).await;
    assert_eq!(run.status, 1, "{run:?}");
    let result = run.first_result();
    // The server serves what the copy holds: a reload would change nothing.
    assert_eq!(result["verdict"], "in_sync");
    let detail = detail_of(&result, "copy_stale");
    assert!(
        detail.starts_with(&format!(
            "{} holds serial {} (not before ",
            copy.display(),
            site.serial(1)
        )),
        "{detail}"
    );
    assert!(
        detail.contains(&format!(
            "a copy of lineage {}, whose current certificate is serial {} (not before ",
            site.lineage.live_dir().display(),
            site.serial(2)
        )),
        "{detail}"
    );
    let advice = result["findings"][0]["advice"].as_str().unwrap();
    assert!(advice.starts_with("a reload would not help"), "{advice}");

    // The explicit `lineage` key finds it with matching turned off.
    let explicit = format!(
        "letsencrypt_dir = \"\"\n\n{}",
        site_reading(
            &site,
            "shop",
            &copy,
            &format!("lineage = \"{}\"", site.lineage.live_dir().display())
        )
    );
    let result = check_config(site.dir.path(), &explicit)
        .await
        .first_result();
    assert!(detail_of(&result, "copy_stale").contains(&site.serial(2)));
    let unmatched = format!(
        "letsencrypt_dir = \"\"\n\n{}",
        site_reading(&site, "shop", &copy, "")
    );
    let result = check_config(site.dir.path(), &unmatched)
        .await
        .first_result();
    assert_eq!(findings(&result), []);
    assert_eq!(result["disk"]["lineage"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_newer_lineage_for_the_same_names_is_stale_lineage() {
    let site = LocalSite::start("app.certdrift.test").await;
    // certbot made app.certdrift.test-0001 (a second `certonly` for the same name) and
    // renews that one, while the server still loads the first lineage.
    let newer = CertbotLineage::new(
        site.dir.path().join("letsencrypt"),
        "app.certdrift.test-0001",
    );
    let later = site.generations[0].summary().not_before + time::Duration::hours(2);
    // It covers one more name, as when a `-d` was added.
    let issued = site.ca.issue(
        &LeafSpec::new(["app.certdrift.test", "www.app.certdrift.test"])
            .valid_between(later, later + time::Duration::days(90)),
    );
    newer.write_generation(1, &issued).unwrap();
    newer.point_live_at(1).unwrap();

    let run = site.check().await;
    assert_eq!(run.status, 1, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync");
    assert_eq!(result["disk"]["lineage"]["relation"], "live");
    let detail = detail_of(&result, "stale_lineage");
    assert!(
        detail.starts_with(&format!(
            "the site uses lineage app.certdrift.test (serial {}, not before ",
            site.serial(1)
        )),
        "{detail}"
    );
    assert!(
        detail.contains(&format!(
            "but lineage app.certdrift.test-0001 holds a newer certificate for its names (serial {}, not before ",
            issued.summary().serial
        )),
        "{detail}"
    );

    // A lineage for other names is no reason.
    let other = CertbotLineage::new(site.dir.path().join("letsencrypt"), "other.certdrift.test");
    std::fs::remove_dir_all(newer.live_dir()).unwrap();
    let unrelated = site.ca.issue(
        &LeafSpec::new(["other.certdrift.test"])
            .valid_between(later, later + time::Duration::days(90)),
    );
    other.write_generation(1, &unrelated).unwrap();
    other.point_live_at(1).unwrap();
    let result = site.check().await.first_result();
    assert_eq!(findings(&result), []);
}

#[tokio::test]
async fn live_pointing_back_at_an_old_generation_is_live_not_newest() {
    let mut site = LocalSite::start("back.certdrift.test").await;
    site.renew();
    site.renew();
    site.serve_generation(3);
    let result = site.check().await.first_result();
    assert_eq!(result["verdict"], "in_sync");
    assert_eq!(findings(&result), []);

    // live/ pointed back at generation 1 (a rollback, or a restore from an old backup).
    site.lineage.point_live_at(1).unwrap();
    let run = site.check().await;
    assert_eq!(run.status, 1, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "disk_older");
    let detail = detail_of(&result, "live_not_newest");
    let live = site.lineage.live_dir();
    assert_eq!(
        detail,
        format!(
            "in {}, cert.pem -> ../../archive/back.certdrift.test/cert1.pem (generation 1), \
             chain.pem -> ../../archive/back.certdrift.test/chain1.pem (generation 1), \
             fullchain.pem -> ../../archive/back.certdrift.test/fullchain1.pem (generation 1), \
             privkey.pem -> ../../archive/back.certdrift.test/privkey1.pem (generation 1); \
             {} holds complete generations up to 3",
            live.display(),
            site.lineage.archive_dir().display()
        )
    );
}

#[tokio::test]
async fn live_entries_turned_into_plain_files_are_live_not_symlink() {
    let site = LocalSite::start("plain.certdrift.test").await;
    // Someone "fixed" permissions with cp -L over the links.
    for kind in ["cert", "fullchain"] {
        let link = site.lineage.live_path(kind);
        let text = std::fs::read(&link).unwrap();
        std::fs::remove_file(&link).unwrap();
        std::fs::write(&link, text).unwrap();
    }
    let run = site.check().await;
    assert_eq!(run.status, 1, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync");
    let detail = detail_of(&result, "live_not_symlink");
    assert_eq!(
        detail,
        format!(
            "in {}, cert.pem, fullchain.pem are plain files, not symlinks into {}: certbot refuses to renew such a lineage",
            site.lineage.live_dir().display(),
            site.lineage.archive_dir().display()
        )
    );
    assert!(
        findings(&result)
            .iter()
            .all(|(kind, _)| kind == "live_not_symlink"),
        "{result}"
    );
}

#[tokio::test]
async fn a_copy_search_cut_at_500_lineages_says_so_on_the_row() {
    let site = LocalSite::start("many.certdrift.test").await;
    let copy = site.dir.path().join("copy.pem");
    std::fs::write(&copy, site.generations[0].fullchain_pem()).unwrap();
    let root = site.dir.path().join("letsencrypt");
    // 500 lineages that sort before the copy's own push it out of the search.
    for n in 0..500 {
        std::fs::create_dir_all(root.join("live").join(format!("a{n:03}.certdrift.test"))).unwrap();
    }
    let config = format!(
        "letsencrypt_dir = \"{}\"\n\n{}",
        root.display(),
        site_reading(&site, "many", &copy, "")
    );
    let result = check_config(site.dir.path(), &config).await.first_result();
    assert_eq!(result["verdict"], "in_sync");
    assert_eq!(result["disk"]["lineage"], serde_json::Value::Null);
    assert_eq!(
        result["disk"]["notes"],
        serde_json::json!([format!(
            "only 500 of 501 lineages in {} were searched for this copy's lineage; \
             set `lineage` on the site",
            root.display()
        )])
    );
}
