//! The disk side: what OpenSSL tolerates is read, and every way a file can be wrong becomes a
//! `disk_error` naming the path, never a panic.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use certdrift::demo::ca::{LeafSpec, TestCa};
use certdrift::disk::{self, DiskError};

use crate::util::{LocalSite, certdrift, run_command};

fn issued() -> (TestCa, certdrift::demo::ca::IssuedCert) {
    let ca = TestCa::new("Disk Test CA");
    let cert = ca.issue(&LeafSpec::new(["disk.certdrift.test"]));
    (ca, cert)
}

#[test]
fn reads_what_openssl_tolerates() {
    let (_ca, cert) = issued();
    let dir = tempfile::tempdir().unwrap();
    let fullchain = cert.fullchain_pem();
    let variants = [
        ("crlf", fullchain.replace('\n', "\r\n")),
        ("bom", format!("\u{feff}{fullchain}")),
        (
            "text-around",
            format!(
                "subject=CN = disk\nissuer=CN = Disk Test CA\n{fullchain}\nsome trailing notes\n"
            ),
        ),
        ("no-final-newline", fullchain.trim_end().to_owned()),
        (
            "key-inside",
            format!("{}{}{}", cert.cert_pem(), cert.key_pem(), cert.chain_pem()),
        ),
    ];
    for (name, text) in variants {
        let path = dir.path().join(format!("{name}.pem"));
        fs::write(&path, text).unwrap();
        let read = disk::load(&path).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(
            read.leaf.fingerprint_sha256,
            cert.summary().fingerprint_sha256,
            "{name}"
        );
        assert_eq!(read.chain.len(), 1, "{name}");
        assert!(read.notes.is_empty(), "{name}: {:?}", read.notes);
    }
}

#[test]
fn notes_a_chain_listed_before_its_leaf() {
    let (_ca, cert) = issued();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reversed.pem");
    fs::write(&path, format!("{}{}", cert.chain_pem(), cert.cert_pem())).unwrap();
    let read = disk::load(&path).unwrap();
    assert!(
        read.leaf.is_ca,
        "the first block stays the leaf, as servers serve it"
    );
    assert_eq!(read.notes.len(), 1);
    assert!(
        read.notes[0].contains("looks like the leaf"),
        "{}",
        read.notes[0]
    );
}

#[test]
fn every_broken_file_is_a_disk_error_naming_its_path() {
    let (_ca, cert) = issued();
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);

    fs::write(at("empty.pem"), "").unwrap();
    fs::write(at("blank.pem"), "\n  \r\n").unwrap();
    fs::write(at("key-only.pem"), cert.key_pem()).unwrap();
    fs::write(at("prose.txt"), "this is not a certificate\n").unwrap();
    fs::write(
        at("unterminated.pem"),
        cert.cert_pem().replace("-----END CERTIFICATE-----", ""),
    )
    .unwrap();
    fs::write(
        at("bad-base64.pem"),
        "-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    fs::write(
        at("not-x509.pem"),
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    fs::write(at("cert.der"), cert.der()).unwrap();
    fs::write(
        at("huge.pem"),
        vec![b'A'; disk::MAX_FILE_BYTES as usize + 1],
    )
    .unwrap();
    fs::create_dir(at("a-directory")).unwrap();
    symlink(at("archive/cert9.pem"), at("dangling.pem")).unwrap();

    let cases = [
        ("missing.pem", "not_found"),
        ("dangling.pem", "dangling_symlink"),
        ("a-directory", "is_directory"),
        ("empty.pem", "empty"),
        ("blank.pem", "empty"),
        ("huge.pem", "too_large"),
        ("key-only.pem", "no_certificate"),
        ("prose.txt", "no_certificate"),
        ("cert.der", "no_certificate"),
        ("unterminated.pem", "bad_pem"),
        ("bad-base64.pem", "bad_pem"),
        ("not-x509.pem", "bad_certificate"),
    ];
    for (name, kind) in cases {
        let path = at(name);
        let err = disk::load(&path).expect_err(name);
        assert_eq!(err.kind(), kind, "{name}: {err}");
        assert_eq!(err.path(), path, "{name}");
        assert!(
            err.to_string().starts_with(&path.display().to_string()),
            "{name}: {err}"
        );
    }

    let key_only = disk::load(&at("key-only.pem")).unwrap_err();
    assert!(
        key_only.to_string().ends_with("(found: PRIVATE KEY)"),
        "{key_only}"
    );
    let der = disk::load(&at("cert.der")).unwrap_err();
    assert!(der.to_string().contains("is it DER?"), "{der}");
    let unterminated = disk::load(&at("unterminated.pem")).unwrap_err();
    assert!(matches!(unterminated, DiskError::BadPem { .. }));
    assert!(
        unterminated
            .to_string()
            .contains("line 1: the CERTIFICATE block has no END line"),
        "{unterminated}"
    );
}

#[tokio::test]
async fn an_unreadable_file_is_permission_denied_for_an_unprivileged_user() {
    // The suite runs as root, which reads everything, so the check runs as `nobody`, as
    // certdrift would under a dedicated user without the capability to read root's files.
    let (_ca, cert) = issued();
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("privkey-style.pem");
    fs::write(&path, cert.fullchain_pem()).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();

    let cert_arg = path.display().to_string();
    let args = [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        crate::util::certdrift_bin(),
        "check",
        "--format",
        "json",
        "--host",
        "127.0.0.1",
        "--port",
        "9",
        "--cert",
        &cert_arg,
    ];
    let run = run_command("setpriv", &args).await;
    assert_eq!(run.status, 2, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "disk_error");
    assert_eq!(result["error"]["kind"], "permission_denied");
    assert!(
        result["reason"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{cert_arg}: permission denied"))
    );
}

#[tokio::test]
async fn a_disk_error_still_reports_what_is_served() {
    let site = LocalSite::start("gone.certdrift.test").await;
    fs::remove_dir_all(site.lineage.archive_dir()).unwrap();
    let run = site.check().await;
    assert_eq!(run.status, 2, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "disk_error");
    assert_eq!(result["error"]["kind"], "dangling_symlink");
    assert_eq!(result["served"]["serial"], site.serial(1));
    assert!(result["disk"].is_null());
}

#[tokio::test]
async fn one_broken_site_does_not_stop_the_others() {
    let good = LocalSite::start("good.certdrift.test").await;
    let config = good.dir.path().join("certdrift.toml");
    let broken = format!(
        "[[site]]\nname = \"broken\"\nhost = \"127.0.0.1\"\nport = {}\ncert = \"{}\"\n",
        crate::util::free_port(),
        Path::new("/nonexistent/fullchain.pem").display()
    );
    fs::write(&config, format!("{broken}\n{}", good.site_table("good"))).unwrap();
    let run = certdrift(&[
        "check",
        "--format",
        "json",
        "--config",
        config.to_str().unwrap(),
    ])
    .await;
    assert_eq!(run.status, 2, "{run:?}");
    let results = run.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["site"], "broken");
    assert_eq!(results[0]["verdict"], "disk_error");
    assert_eq!(results[1]["site"], "good");
    assert_eq!(results[1]["verdict"], "in_sync");
}

/// A temp dir with a FIFO called `name` in it, made by coreutils' mkfifo.
fn temp_fifo(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
    (dir, path)
}

#[tokio::test]
async fn a_fifo_or_a_device_as_the_key_or_ca_file_is_refused_not_read() {
    let site = crate::util::LocalSite::start("special.certdrift.test").await;
    let (_dir, fifo) = temp_fifo("privkey.pem");
    let address = site.address();
    let (host, port) = (address.ip().to_string(), address.port().to_string());
    let cert = site.fullchain().display().to_string();
    let ca = site.ca_file.display().to_string();

    // A FIFO as the key: a key_unreadable finding, not a `check` that never returns.
    let key = fifo.display().to_string();
    let args = [
        "check",
        "--format",
        "json",
        "--host",
        &host,
        "--port",
        &port,
        "--sni",
        "special.certdrift.test",
        "--cert",
        &cert,
        "--ca-file",
        &ca,
        "--key",
        &key,
    ];
    let run = certdrift(&args).await;
    assert_eq!(run.status, 1, "{run:?}");
    let findings = run.first_result()["findings"].clone();
    assert_eq!(findings[0]["finding"], "key_unreadable", "{findings}");
    assert_eq!(
        findings[0]["detail"],
        format!("{key}: cannot read the key: not a regular file (it is a FIFO)")
    );

    // A device as the CA file: a clear error at once, not memory filling up from /dev/zero.
    for (path, what) in [
        (key.as_str(), "a FIFO"),
        ("/dev/zero", "a character device"),
    ] {
        let args = [
            "check",
            "--host",
            &host,
            "--port",
            &port,
            "--cert",
            &cert,
            "--ca-file",
            path,
        ];
        let run = certdrift(&args).await;
        assert_eq!(run.status, 2, "{run:?}");
        assert_eq!(
            run.stderr.trim_end(),
            format!(
                "certdrift: {path}: cannot read the CA file: not a regular file (it is {what})"
            )
        );
    }
}

#[tokio::test]
async fn a_fifo_or_a_device_as_the_cert_file_is_refused_not_read() {
    let (dir, fifo) = temp_fifo("fullchain.pem");
    let link = dir.path().join("live.pem");
    symlink(&fifo, &link).unwrap();

    let port = crate::util::free_port().to_string();
    let cases = [
        (fifo.clone(), "a FIFO"),
        (link, "a FIFO"),
        ("/dev/zero".into(), "a character device"),
    ];
    for (path, what) in cases {
        let cert = path.display().to_string();
        // Without the check, the FIFO blocks `check` until run_command's minute is up.
        let run = certdrift(&[
            "check",
            "--format",
            "json",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--cert",
            &cert,
        ])
        .await;
        assert_eq!(run.status, 2, "{run:?}");
        let result = run.first_result();
        assert_eq!(result["verdict"], "disk_error", "{result}");
        assert_eq!(result["error"]["kind"], "not_regular_file", "{result}");
        assert_eq!(
            result["advice"],
            "fix the certificate file or its path (`cert` in the config, or --cert)"
        );
        assert_eq!(
            result["error"]["message"],
            format!(
                "{cert}: not a regular file (it is {what}); the certificate path (`cert` in the \
                 config, or --cert) must name a PEM file such as fullchain.pem"
            ),
            "{result}"
        );
    }
}

#[tokio::test]
async fn a_fifo_a_device_or_a_huge_file_as_the_config_is_refused() {
    let (dir, fifo) = temp_fifo("certdrift.toml");
    let huge = dir.path().join("huge.toml");
    let mut text = "# padding\n".repeat(110_000);
    text.push_str("[[site]]\nname = \"a\"\nhost = \"a.example\"\ncert = \"/a.pem\"\n");
    fs::write(&huge, text).unwrap();

    let cases = [
        (
            fifo.display().to_string(),
            "not a regular file (it is a FIFO); give the path of the TOML config file",
        ),
        (
            "/dev/zero".to_owned(),
            "not a regular file (it is a character device); give the path of the TOML config file",
        ),
        (
            huge.display().to_string(),
            "the config file is larger than 1048576 bytes (1 MiB)",
        ),
    ];
    for (path, expected) in cases {
        let run = certdrift(&["check", "--config", &path]).await;
        assert_eq!(run.status, 2, "{run:?}");
        assert!(
            run.stderr
                .starts_with(&format!("certdrift: {path}: {expected}")),
            "{path}: {}",
            run.stderr
        );
    }
}
