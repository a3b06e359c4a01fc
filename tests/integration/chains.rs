//! Every link of the chain, name coverage, the key check and dual certificates, through
//! `certdrift check` against in-process TLS servers serving chains made with rcgen.

use std::path::{Path, PathBuf};

use certdrift::demo::ca::{KeyAlgorithm, LeafSpec, TestCa};
use serde_json::Value;
use time::OffsetDateTime;

use crate::util::{LocalSite, Run, certdrift, check_config, check_json_args, strs};

/// The `finding` names of a result, in order.
fn kinds(result: &Value) -> Vec<String> {
    result["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array in {result}"))
        .iter()
        .map(|finding| finding["finding"].as_str().unwrap().to_owned())
        .collect()
}

/// The detail of the finding `kind` in `result`.
fn detail<'a>(result: &'a Value, kind: &str) -> &'a str {
    result["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["finding"] == kind)
        .unwrap_or_else(|| panic!("no {kind} finding in {result}"))["detail"]
        .as_str()
        .unwrap()
}

/// Runs `check` on `site` as a table.
async fn check_table(site: &LocalSite) -> Run {
    let mut args = site.check_args();
    args.drain(1..3); // drop --format json
    certdrift(&strs(&args)).await
}

#[tokio::test]
async fn a_leaf_served_without_its_intermediate_is_chain_incomplete() {
    let site = LocalSite::start("incomplete.certdrift.test").await;
    let first = &site.generations[0];
    site.server
        .reload(first.cert_pem(), first.key_pem())
        .unwrap();

    let run = site.check().await;
    assert_eq!(run.status, 1, "a finding is a problem to fix: {run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync", "the leaf is the right one");
    assert_eq!(kinds(&result), ["chain_incomplete"]);
    assert_eq!(
        detail(&result, "chain_incomplete"),
        "the served chain lacks CN=incomplete.certdrift.test test CA, which the file has"
    );
    assert_eq!(result["served"]["chain_length"], 1);
    assert_eq!(result["disk"]["chain_length"], 1);
    assert!(
        result["served"]["verification"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("unknown issuer"),
        "{result}"
    );

    // The table shows it in the FINDINGS column and says what to do below.
    let run = check_table(&site).await;
    let row = run.stdout.lines().nth(1).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[2..4], ["in_sync", "chain_incomplete"], "{row}");
    assert!(
        run.stdout.contains(
            "  chain_incomplete: the served chain lacks CN=incomplete.certdrift.test test CA, which the file has\n    what to do: configure the server with the full chain"
        ),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn a_file_repeating_its_leaf_is_a_disk_note_not_a_missing_intermediate() {
    let site = LocalSite::start("dup.certdrift.test").await;
    let first = &site.generations[0];
    site.server
        .reload(first.cert_pem(), first.key_pem())
        .unwrap();
    // `cat cert.pem cert.pem > dup.pem`, in a directory without a chain.pem.
    let dir = tempfile::tempdir().unwrap();
    let dup = dir.path().join("dup.pem");
    std::fs::write(&dup, format!("{}{}", first.cert_pem(), first.cert_pem())).unwrap();
    let second_line = first.cert_pem().lines().count() + 1;

    let run = certdrift(&strs(&check_json_args(
        site.address(),
        "dup.certdrift.test",
        &dup,
        &site.ca_file,
    )))
    .await;
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync", "{result}");
    assert_eq!(kinds(&result), Vec::<String>::new(), "{result}");
    assert_eq!(result["disk"]["chain_length"], 0, "{result}");
    assert_eq!(
        result["disk"]["notes"],
        serde_json::json!([format!(
            "line {second_line} repeats the certificate at line 1 (CN=dup.certdrift.test); the \
             copy is not counted as part of the chain, but servers send it as written: remove it"
        )]),
        "{result}"
    );
    assert_eq!(run.status, 0, "{run:?}");
}

#[tokio::test]
async fn a_wrong_intermediate_with_the_right_leaf_is_chain_differs_and_chain_broken() {
    let site = LocalSite::start("wrong.certdrift.test").await;
    let other = TestCa::new("Other Issuing CA");
    let first = &site.generations[0];
    let served = format!("{}{}", first.cert_pem(), other.intermediate_pem());
    site.server.reload(&served, first.key_pem()).unwrap();

    let run = site.check().await;
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync", "{run:?}");
    assert_eq!(kinds(&result), ["chain_broken", "chain_differs"]);
    assert_eq!(
        detail(&result, "chain_broken"),
        "in the served chain, certificate 1 (CN=Other Issuing CA) did not issue certificate 0, \
         whose issuer is CN=wrong.certdrift.test test CA"
    );
    assert_eq!(
        detail(&result, "chain_differs"),
        "the server sends CN=Other Issuing CA where the file has CN=wrong.certdrift.test test CA"
    );
    assert_eq!(run.status, 1);
}

#[tokio::test]
async fn a_reordered_chain_is_chain_order_and_nothing_else() {
    let site = LocalSite::start("order.certdrift.test").await;
    let first = &site.generations[0];

    // [leaf, root, intermediate]: every certificate belongs, the order is wrong.
    let served = format!(
        "{}{}{}",
        first.cert_pem(),
        site.ca.root_pem(),
        site.ca.intermediate_pem()
    );
    site.server.reload(&served, first.key_pem()).unwrap();
    let run = site.check().await;
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync", "{run:?}");
    assert_eq!(kinds(&result), ["chain_order"], "{result}");
    assert_eq!(
        detail(&result, "chain_order"),
        "in the served chain, certificate 0 (CN=order.certdrift.test) is followed by \
         CN=order.certdrift.test test CA Root but its issuer is certificate 2"
    );

    // [leaf, cross-sign, intermediate]: out of order, and one certificate more than the file.
    let old = TestCa::new("Order Old");
    let now = OffsetDateTime::now_utc();
    let cross = site.ca.cross_signed_root(
        &old,
        now - time::Duration::days(10),
        now + time::Duration::days(300),
    );
    let served = format!(
        "{}{}{}",
        first.cert_pem(),
        cross,
        site.ca.intermediate_pem()
    );
    site.server.reload(&served, first.key_pem()).unwrap();
    let run = site.check().await;
    let result = run.first_result();
    assert_eq!(kinds(&result), ["chain_order", "chain_differs"], "{result}");
}

#[tokio::test]
async fn an_expired_cross_sign_is_reported_as_that_never_as_the_certificate_expiring() {
    let site = LocalSite::start("cross.certdrift.test").await;
    let old = TestCa::new("Cross Old");
    let now = OffsetDateTime::now_utc();
    let expired_on = (now - time::Duration::days(30))
        .replace_nanosecond(0)
        .unwrap();
    let cross = site
        .ca
        .cross_signed_root(&old, now - time::Duration::days(400), expired_on);
    let first = &site.generations[0];
    // The CA's long chain, as the file and the server both hold it.
    let long_chain = format!("{}{}", first.fullchain_pem(), cross);
    std::fs::write(site.fullchain(), &long_chain).unwrap();
    site.server.reload(&long_chain, first.key_pem()).unwrap();

    // Clients that only know the old root build their path through the expired cross-sign.
    let old_root = site.dir.path().join("old-root.pem");
    std::fs::write(&old_root, old.root_pem()).unwrap();
    let args = check_json_args(site.address(), &site.name, &site.fullchain(), &old_root);
    let run = certdrift(&strs(&args)).await;
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync", "{run:?}");
    assert_eq!(kinds(&result), ["expired_intermediate"], "{result}");
    assert_eq!(
        detail(&result, "expired_intermediate"),
        format!(
            "certificate 2 of the served chain, the intermediate or cross-sign CN=cross.certdrift.test test CA Root, \
             expired {}; the served leaf itself is valid until {}",
            expired_on.date(),
            first.summary().not_after.date()
        )
    );
    let reason = result["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("serves the certificate on disk") && !reason.contains("expired"),
        "{reason}"
    );
    assert_eq!(
        result["served"]["verification"]["reason"],
        "expired intermediate CN=cross.certdrift.test test CA Root (certificate 2 of the chain)"
    );

    // Clients that know the current root are fine; the finding stays.
    let run = site.check().await;
    let result = run.first_result();
    assert_eq!(result["served"]["verification"]["result"], "trusted");
    assert_eq!(kinds(&result), ["expired_intermediate"]);

    // The table's served cell shows the leaf's days left, not "expired".
    let run = check_table(&site).await;
    let row = run.stdout.lines().nth(1).unwrap();
    assert!(row.contains("expired_intermediate"), "{row}");
    assert!(!row.contains("(expired)"), "{row}");
}

/// certbot's split files in a directory of their own: `cert.pem` and `chain.pem`.
fn write_split(dir: &Path, cert_pem: &str, chain_pem: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cert.pem"), cert_pem).unwrap();
    std::fs::write(dir.join("chain.pem"), chain_pem).unwrap();
    dir.join("cert.pem")
}

#[tokio::test]
async fn cert_pem_with_chain_pem_beside_it_is_compared_like_a_fullchain() {
    let site = LocalSite::start("split.certdrift.test").await;
    let first = &site.generations[0];
    let cert = write_split(
        &site.dir.path().join("split"),
        first.cert_pem(),
        first.chain_pem(),
    );
    let args = check_json_args(site.address(), &site.name, &cert, &site.ca_file);

    let run = certdrift(&strs(&args)).await;
    assert_eq!(run.status, 0, "{run:?}");
    let result = run.first_result();
    assert_eq!(kinds(&result), Vec::<String>::new());
    assert_eq!(result["disk"]["chain_length"], 1);
    assert_eq!(
        result["disk"]["chain_file"],
        site.dir
            .path()
            .join("split/chain.pem")
            .display()
            .to_string()
    );

    site.server
        .reload(first.cert_pem(), first.key_pem())
        .unwrap();
    let run = certdrift(&strs(&args)).await;
    assert_eq!(kinds(&run.first_result()), ["chain_incomplete"], "{run:?}");
}

#[tokio::test]
async fn a_stale_chain_pem_after_an_intermediate_rotation_is_chain_broken_by_key_id() {
    let site = LocalSite::start("rotated.certdrift.test").await;
    let first = &site.generations[0];
    let split = site.dir.path().join("split");
    let cert = write_split(&split, first.cert_pem(), first.chain_pem());
    let args = check_json_args(site.address(), &site.name, &cert, &site.ca_file);

    // The CA rotates its intermediate's key under the same name; the renewal rewrites
    // cert.pem but the deploy step leaves last month's chain.pem.
    let rotated = site.ca.rotate_intermediate();
    let second = rotated.issue(&LeafSpec::new([site.name.as_str()]));
    std::fs::write(split.join("cert.pem"), second.cert_pem()).unwrap();
    let leaf_aki = hex(second_authority_key_id(&second.summary()));
    let stale_ski = hex(site.ca.intermediate_summary().subject_key_id.unwrap());
    assert_ne!(leaf_aki, stale_ski);

    let run = certdrift(&strs(&args)).await;
    let result = run.first_result();
    assert_eq!(result["verdict"], "reload_needed", "{run:?}");
    assert_eq!(kinds(&result), ["chain_broken"], "{result}");
    assert_eq!(
        detail(&result, "chain_broken"),
        format!(
            "in the file's chain, certificate 1 (CN=rotated.certdrift.test test CA) has the name of \
             certificate 0's issuer but another key: certificate 0 names authority key id {leaf_aki}, \
             certificate 1 has subject key id {stale_ski}; an intermediate from before the CA rotated its key"
        )
    );

    // A server that loads cert.pem and chain.pem serves the broken chain after its reload.
    let split_chain = format!("{}{}", second.cert_pem(), first.chain_pem());
    site.server.reload(&split_chain, second.key_pem()).unwrap();
    let run = certdrift(&strs(&args)).await;
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync", "{run:?}");
    assert_eq!(kinds(&result), ["chain_broken"], "{result}");
    assert!(
        detail(&result, "chain_broken").starts_with("in the served chain, certificate 1"),
        "{result}"
    );
    assert_eq!(
        result["served"]["verification"]["reason"],
        "bad signature in the chain"
    );

    // The CA's current chain.pem, loaded: nothing left to report.
    std::fs::write(split.join("chain.pem"), second.chain_pem()).unwrap();
    site.server
        .reload(&second.fullchain_pem(), second.key_pem())
        .unwrap();
    let run = certdrift(&strs(&args)).await;
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(kinds(&run.first_result()), Vec::<String>::new());
}

fn second_authority_key_id(summary: &certdrift::cert::CertSummary) -> Vec<u8> {
    summary
        .authority_key_id
        .clone()
        .expect("rcgen writes an authority key id")
}

fn hex(bytes: Vec<u8>) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tokio::test]
async fn a_wildcard_covers_one_label_as_rfc_6125_says() {
    let site = LocalSite::start_on(
        "wild.certdrift.test",
        "127.0.0.1:0".parse().unwrap(),
        LeafSpec::new(["*.example.test"]),
    )
    .await;
    let cases = [
        ("a.example.test", true),
        ("A.Example.Test", true),
        ("a.b.example.test", false),
        ("example.test", false),
    ];
    for (sni, covered) in cases {
        let args = check_json_args(site.address(), sni, &site.fullchain(), &site.ca_file);
        let run = certdrift(&strs(&args)).await;
        let result = run.first_result();
        assert_eq!(result["verdict"], "in_sync", "{sni}: {run:?}");
        if covered {
            assert_eq!(kinds(&result), Vec::<String>::new(), "{sni}: {result}");
            assert_eq!(run.status, 0, "{sni}");
        } else {
            assert_eq!(kinds(&result), ["name_not_covered"], "{sni}: {result}");
            assert_eq!(
                detail(&result, "name_not_covered"),
                format!("the served certificate covers *.example.test, not {sni}")
            );
            assert_eq!(
                result["served"]["verification"]["reason"],
                "not valid for the name"
            );
            assert_eq!(run.status, 1, "{sni}");
        }
    }
}

/// A one-site config for `site` with `extra` lines in the site table.
fn site_config(site: &LocalSite, extra: &str) -> String {
    format!("{}\n{extra}\n", site.site_table("keyed").trim_end())
}

/// Asserts that no line of the PEM in `key_file` shows up in `run`'s output.
fn assert_no_key_material(run: &Run, key_file: &Path) {
    let text = std::fs::read_to_string(key_file).unwrap_or_default();
    for line in text.lines().filter(|line| line.len() >= 16) {
        assert!(
            !run.stdout.contains(line) && !run.stderr.contains(line),
            "key material `{line}` in the output: {run:?}"
        );
    }
}

#[tokio::test]
async fn the_key_check_says_match_mismatch_and_unreadable_without_showing_the_key() {
    let site = LocalSite::start("keyed.certdrift.test").await;
    let dir = site.dir.path();

    // certbot's own privkey.pem belongs to the certificate: nothing to report.
    let privkey = site.lineage.live_path("privkey");
    let run = check_config(
        dir,
        &site_config(&site, &format!("key = \"{}\"", privkey.display())),
    )
    .await;
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(kinds(&run.first_result()), Vec::<String>::new());
    assert_no_key_material(&run, &privkey);

    // Another certificate's key: the next reload would fail.
    let stranger = site.ca.issue(&LeafSpec::new([site.name.as_str()]));
    let wrong = dir.join("wrong-privkey.pem");
    std::fs::write(&wrong, stranger.key_pem()).unwrap();
    let text = site_config(&site, &format!("key = \"{}\"", wrong.display()));
    let run = check_config(dir, &text).await;
    assert_eq!(run.status, 1, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync");
    assert_eq!(kinds(&result), ["key_mismatch"]);
    assert_eq!(
        detail(&result, "key_mismatch"),
        "the private key file does not belong to the certificate file"
    );
    assert_no_key_material(&run, &wrong);

    // Garbage inside PEM armour, a missing file and a directory: unreadable, by path.
    let garbage = dir.join("garbage-privkey.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nTm90QUtleUJ1dEFTZWNyZXRMb29raW5nU3RyaW5nMTIzNDU2Nzg5MA==\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let cases = [
        (garbage.clone(), "the private key cannot be loaded"),
        (dir.join("missing-privkey.pem"), "cannot read the key"),
        (dir.to_path_buf(), "cannot read the key"),
    ];
    for (path, why) in cases {
        let text = site_config(&site, &format!("key = \"{}\"", path.display()));
        let run = check_config(dir, &text).await;
        let result = run.first_result();
        assert_eq!(
            kinds(&result),
            ["key_unreadable"],
            "{}: {result}",
            path.display()
        );
        let said = detail(&result, "key_unreadable");
        assert!(
            said.starts_with(&format!("{}: ", path.display())) && said.contains(why),
            "{said}"
        );
        assert_eq!(run.status, 1, "{run:?}");
        assert_no_key_material(&run, &path);
    }

    // The table run says it too, still without the key.
    let config = dir.join("certdrift.toml");
    std::fs::write(
        &config,
        site_config(&site, &format!("key = \"{}\"", garbage.display())),
    )
    .unwrap();
    let run = certdrift(&["check", "--config", config.to_str().unwrap()]).await;
    assert!(run.stdout.contains("key_unreadable"), "{}", run.stdout);
    assert_no_key_material(&run, &garbage);
}

#[tokio::test]
async fn dual_certificates_are_probed_and_compared_per_key_type() {
    let mut site = LocalSite::start("dual.certdrift.test").await;
    let ecdsa = site.generations[0].clone();
    let rsa = site
        .ca
        .issue(&LeafSpec::new([site.name.as_str()]).key_algorithm(KeyAlgorithm::Rsa2048));
    let dir = site.dir.path().to_path_buf();
    let rsa_dir = dir.join("rsa");
    std::fs::create_dir_all(&rsa_dir).unwrap();
    std::fs::write(rsa_dir.join("fullchain.pem"), rsa.fullchain_pem()).unwrap();
    std::fs::write(rsa_dir.join("privkey.pem"), rsa.key_pem()).unwrap();
    site.server
        .reload_by_key_type(&[
            (&ecdsa.fullchain_pem(), ecdsa.key_pem()),
            (&rsa.fullchain_pem(), rsa.key_pem()),
        ])
        .unwrap();

    let address = site.address();
    let table = format!(
        "[[site]]\nname = \"dual\"\nhost = \"{}\"\nport = {}\nsni = \"{}\"\nca_file = \"{}\"\n\
         key_types = [\"ecdsa\", \"rsa\"]\ncert = {{ ecdsa = \"{}\", rsa = \"{}\" }}\n",
        address.ip(),
        address.port(),
        site.name,
        site.ca_file.display(),
        site.fullchain().display(),
        rsa_dir.join("fullchain.pem").display()
    );
    let config = |keys: &str| format!("{table}{keys}");
    let rows = |run: &Run| -> Vec<(String, String, String)> {
        run.json()["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row["key_type"].as_str().unwrap().to_owned(),
                    row["verdict"].as_str().unwrap().to_owned(),
                    row["served"]["serial"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };

    let run = check_config(&dir, &config("")).await;
    assert_eq!(run.status, 0, "{run:?}");
    let ecdsa_serial = ecdsa.summary().serial;
    let rsa_serial = rsa.summary().serial;
    assert_eq!(
        rows(&run),
        [
            ("ecdsa".into(), "in_sync".into(), ecdsa_serial.clone()),
            ("rsa".into(), "in_sync".into(), rsa_serial.clone())
        ]
    );

    // Only the ECDSA certificate is renewed on disk: only its row drifts.
    site.renew();
    let run = check_config(&dir, &config("")).await;
    assert_eq!(run.status, 1, "{run:?}");
    assert_eq!(
        rows(&run),
        [
            ("ecdsa".into(), "reload_needed".into(), ecdsa_serial.clone()),
            ("rsa".into(), "in_sync".into(), rsa_serial.clone())
        ]
    );
    site.server
        .reload_by_key_type(&[
            (
                &site.generations[1].fullchain_pem(),
                site.generations[1].key_pem(),
            ),
            (&rsa.fullchain_pem(), rsa.key_pem()),
        ])
        .unwrap();

    // Keys per type, checked each against its own certificate: swapped, both mismatch.
    let swapped = format!(
        "key = {{ ecdsa = \"{}\", rsa = \"{}\" }}\n",
        rsa_dir.join("privkey.pem").display(),
        site.lineage.live_path("privkey").display()
    );
    let run = check_config(&dir, &config(&swapped)).await;
    let results = run.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2, "{run:?}");
    for row in &results {
        assert_eq!(row["verdict"], "in_sync", "{row}");
        assert_eq!(kinds(row), ["key_mismatch"], "{row}");
    }
    // Under the table, each row's details say which key type they are about.
    let config_path = dir.join("certdrift.toml");
    let run = certdrift(&["check", "--config", config_path.to_str().unwrap()]).await;
    let details: Vec<&str> = run
        .stdout
        .lines()
        .filter(|line| line.starts_with("dual "))
        .filter_map(|line| line.split_once(": in_sync: ").map(|(row, _)| row))
        .collect();
    assert_eq!(
        details,
        [
            format!("dual {address} ecdsa"),
            format!("dual {address} rsa")
        ],
        "{}",
        run.stdout
    );
    let right = format!(
        "key = {{ ecdsa = \"{}\", rsa = \"{}\" }}\n",
        site.lineage.live_path("privkey").display(),
        rsa_dir.join("privkey.pem").display()
    );
    let run = check_config(&dir, &config(&right)).await;
    assert_eq!(run.status, 0, "{run:?}");

    // The table names each row's key type.
    let run = certdrift(&["check", "--config", config_path.to_str().unwrap()]).await;
    assert!(
        run.stdout.contains(&format!("{address} ecdsa"))
            && run.stdout.contains(&format!("{address} rsa")),
        "{}",
        run.stdout
    );
}

#[test]
fn no_ca_is_known_by_name_in_the_source() {
    // Chain checks link certificates by names and key ids they carry, never by a CA's
    // intermediate or root names.
    let known = [
        "ISRG",
        "Let's Encrypt",
        "Lets Encrypt",
        "DST Root",
        "\"R3\"",
        "\"R10\"",
        "\"R11\"",
        "\"E1\"",
        "\"E5\"",
        "\"E6\"",
        "DigiCert",
        "Sectigo",
        "GlobalSign",
        "ZeroSSL",
        "Buypass",
        "GTS ",
        "Amazon RSA",
    ];
    let mut pending = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
    let mut seen = 0;
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            seen += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            for name in known {
                assert!(
                    !text.contains(name),
                    "{} names a CA ({name}); chain checks must not depend on CA names",
                    path.display()
                );
            }
        }
        assert!(seen < 1000, "a bounded walk of src/");
    }
    assert!(seen > 10, "src/ was walked ({seen} files)");
}
