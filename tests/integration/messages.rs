//! Every user-facing error message, printed so reviewers read them as users will
//! (`cargo test messages -- --nocapture`), and checked to name what they are about.

// Printing is this module's purpose.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Duration;

use certdrift::disk::DiskError;
use certdrift::pem::PemError;
use certdrift::probe::{Phase, ProbeError};

use crate::util::{certdrift, certdrift_bin, run_command};

/// Runs `certdrift ARGS`, expects exit status 2 and a one-line message on stderr.
async fn cli_error(args: &[&str]) -> String {
    let run = certdrift(args).await;
    assert_eq!(run.status, 2, "{args:?}: {run:?}");
    run.stderr.trim_end().to_owned()
}

#[tokio::test]
async fn config_and_command_line_errors_name_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let site =
        "[[site]]\nname = \"blog\"\nhost = \"blog.example.org\"\ncert = \"/etc/ssl/blog.pem\"\n";
    let cases: &[(&str, String, &str)] = &[
        (
            "unknown key",
            site.replace("host =", "hots ="),
            "certdrift.toml:3: unknown field `hots`",
        ),
        (
            "duplicate name",
            format!("{site}{site}"),
            "certdrift.toml:6: `name`: site `blog` is already defined at line 2",
        ),
        (
            "bidi control in name",
            site.replace("name = \"blog\"", "name = \"blog\u{202e}gpj\""),
            "certdrift.toml:2: `name`: `blog\\u{202e}gpj` holds the control character U+202E; \
             use visible characters only",
        ),
        (
            "line separator in name",
            site.replace("name = \"blog\"", "name = \"blog\u{2028}x\""),
            "certdrift.toml:2: `name`: `blog\\u{2028}x` holds the control character U+2028",
        ),
        (
            "bad duration",
            format!("interval = \"soon\"\n{site}"),
            "certdrift.toml:1: `interval`: `soon` is not a duration",
        ),
        (
            "missing cert",
            "[[site]]\nname = \"a\"\nhost = \"a.example\"\n".into(),
            "certdrift.toml:1: missing field `cert`",
        ),
        (
            "wrong type",
            site.replace("cert =", "port = \"https\"\ncert ="),
            "certdrift.toml:4: `port`: invalid type",
        ),
        (
            "port zero",
            site.replace("cert =", "port = 0\ncert ="),
            "certdrift.toml:4: `port`: 0 is not a port",
        ),
        (
            "port too large",
            site.replace("cert =", "port = 70000\ncert ="),
            "certdrift.toml:4: `port`: 70000 is not a port; use 1-65535",
        ),
        (
            "bad sni",
            site.replace("cert =", "sni = \"bad_name!\"\ncert ="),
            "certdrift.toml:4: `sni`: `bad_name!` is not a valid DNS name",
        ),
        (
            "bad host",
            site.replace("blog.example.org", "blog example"),
            "certdrift.toml:3: `host`: `blog example` is not a valid DNS name",
        ),
        (
            "ip sni",
            site.replace("cert =", "sni = \"192.0.2.1\"\ncert ="),
            "certdrift.toml:4: `sni`: `192.0.2.1` is an IP address",
        ),
        (
            "bad listen",
            format!("listen = \"localhost\"\n{site}"),
            "certdrift.toml:1: `listen`: `localhost` is not an address and port",
        ),
        (
            "no sites",
            "timeout = \"5s\"\n".into(),
            "certdrift.toml: no [[site]] table",
        ),
        (
            "unknown protocol",
            format!("{site}protocol = \"gopher\"\n"),
            "certdrift.toml:5: `protocol`: `gopher` is not a protocol; use one of tls, smtp",
        ),
        (
            "unknown address family",
            format!("{site}addresses = \"ipv5\"\n"),
            "certdrift.toml:5: `addresses`: `ipv5` is not an address family",
        ),
        (
            "connect_to not an address",
            format!("{site}connect_to = [\"blog\"]\n"),
            "certdrift.toml:5: `connect_to`: `blog` is not an IP address",
        ),
        (
            "too many handshakes",
            format!("{site}handshakes = 50\n"),
            "certdrift.toml:5: `handshakes` must be between 1 and 20",
        ),
        (
            "key_types with one cert",
            format!("{site}key_types = [\"ecdsa\", \"rsa\"]\n"),
            "certdrift.toml:4: `cert` must be a table by key type when `key_types` is set",
        ),
        (
            "toml syntax",
            "[[site]\nname = 1\n".into(),
            "certdrift.toml:1:",
        ),
        (
            "missing ca file",
            site.replace("cert =", "ca_file = \"/nonexistent/ca.pem\"\ncert ="),
            "/nonexistent/ca.pem: cannot read the CA file",
        ),
    ];
    for (case, text, expected) in cases {
        let path = dir.path().join("certdrift.toml");
        std::fs::write(&path, text).unwrap();
        let message = cli_error(&["check", "--config", path.to_str().unwrap()]).await;
        println!("config, {case}:\n  {message}");
        let expected = expected.replace("certdrift.toml", &path.display().to_string());
        assert!(message.starts_with("certdrift: "), "{case}: {message}");
        assert!(
            message.contains(&expected),
            "{case}: expected `{expected}` in `{message}`"
        );
    }

    let missing = cli_error(&["check", "--config", "/nonexistent/certdrift.toml"]).await;
    println!("config, unreadable:\n  {missing}");
    assert!(
        missing.contains("/nonexistent/certdrift.toml: cannot read the config file"),
        "{missing}"
    );

    // Without --config, check discovers; pointed at nothing (never at /etc), it finds nothing.
    let empty = tempfile::tempdir().unwrap();
    let missing = empty.path().join("nginx.conf");
    let nothing = cli_error(&[
        "check",
        "--nginx-conf",
        missing.to_str().unwrap(),
        "--sources",
        "nginx",
    ])
    .await;
    println!("command line, nothing to check:\n  {nothing}");
    assert!(
        nothing.contains("nothing to check: discovery found no TLS site")
            && nothing.contains("Pass --config FILE, or --host HOST --cert FILE"),
        "{nothing}"
    );

    // One message for a port out of range, from the flag and from the config.
    for port in ["0", "70000"] {
        let bad_port = cli_error(&[
            "check",
            "--host",
            "a.example",
            "--port",
            port,
            "--cert",
            "x.pem",
        ])
        .await;
        println!("command line, port {port}:\n  {bad_port}");
        assert!(
            bad_port.starts_with(&format!(
                "error: invalid value '{port}' for '--port <PORT>': {port} is not a port; use 1-65535"
            )),
            "{bad_port}"
        );
    }

    let bad_sni = cli_error(&[
        "check",
        "--host",
        "127.0.0.1",
        "--sni",
        "bad_name!",
        "--cert",
        "x.pem",
    ])
    .await;
    println!("command line, bad SNI:\n  {bad_sni}");
    assert_eq!(
        bad_sni,
        "certdrift: command line: --sni: `bad_name!` is not a valid DNS name"
    );

    // A --config that only the environment set is named as such.
    let run = run_command(
        "env",
        &[
            "CERTDRIFT_CONFIG=/etc/certdrift/certdrift.toml",
            certdrift_bin(),
            "check",
            "--host",
            "a.example",
            "--cert",
            "x.pem",
        ],
    )
    .await;
    println!(
        "command line, --host with CERTDRIFT_CONFIG exported:\n  {}",
        run.stderr.trim_end()
    );
    assert_eq!(run.status, 2, "{run:?}");
    assert!(
        run.stderr.contains(
            "note: --config comes from the environment: \
             CERTDRIFT_CONFIG=/etc/certdrift/certdrift.toml; unset it"
        ),
        "{}",
        run.stderr
    );

    // clap's own errors also exit 2, with usage.
    let run = certdrift(&["check", "--host", "a.example"]).await;
    println!(
        "command line, --host without --cert:\n  {}",
        run.stderr.lines().next().unwrap_or("")
    );
    assert_eq!(run.status, 2);
    assert!(run.stderr.contains("--cert"), "{}", run.stderr);
}

#[test]
fn disk_and_probe_errors_read_well() {
    let path = PathBuf::from("/etc/letsencrypt/live/blog.example.org/fullchain.pem");
    let disk = [
        DiskError::NotFound { path: path.clone() },
        DiskError::DanglingSymlink {
            path: path.clone(),
            target: "../../archive/blog.example.org/fullchain3.pem".into(),
        },
        DiskError::PermissionDenied { path: path.clone() },
        DiskError::IsDirectory { path: path.clone() },
        DiskError::NotRegularFile {
            path: path.clone(),
            what: "a FIFO",
        },
        DiskError::Empty { path: path.clone() },
        DiskError::TooLarge {
            path: path.clone(),
            size: 5_000_000,
            limit: 1_048_576,
        },
        DiskError::NoCertificate {
            path: path.clone(),
            found: vec!["PRIVATE KEY".into()],
        },
        DiskError::NoCertificate {
            path: path.clone(),
            found: vec![],
        },
        DiskError::BadPem {
            path: path.clone(),
            source: PemError::Unterminated {
                label: "CERTIFICATE".into(),
                line: 31,
            },
        },
        DiskError::BadPem {
            path: path.clone(),
            source: PemError::MismatchedEnd {
                label: "CERTIFICATE".into(),
                found: "PRIVATE KEY".into(),
                line: 1,
            },
        },
        DiskError::BadCertificate {
            path: path.clone(),
            line: 1,
            detail: "not a valid X.509 certificate: Parsing Error".into(),
        },
        DiskError::Io {
            path: path.clone(),
            detail: "Input/output error (os error 5)".into(),
        },
    ];
    for err in &disk {
        let message = err.to_string();
        println!("disk, {}:\n  {message}", err.kind());
        assert!(
            message.starts_with(&path.display().to_string()),
            "{message}"
        );
        assert!(!message.ends_with('.'), "{message}");
    }

    let probe = [
        ProbeError::Dns {
            host: "blog.example.org".into(),
            detail: "failed to lookup address information: Name or service not known".into(),
        },
        ProbeError::Timeout {
            phase: Phase::Connect,
            after: Duration::from_secs(10),
            hint: None,
        },
        ProbeError::Timeout {
            phase: Phase::Handshake,
            after: Duration::from_millis(10_000),
            hint: None,
        },
        ProbeError::Timeout {
            phase: Phase::Preamble,
            after: Duration::from_millis(5_000),
            hint: Some(certdrift::probe::SILENT_PREAMBLE_HINT),
        },
        ProbeError::Refused,
        ProbeError::Connect("Network is unreachable (os error 101)".into()),
        ProbeError::TlsAlert("handshake_failure".into()),
        ProbeError::Tls("received corrupt message of type InvalidContentType".into()),
        ProbeError::Closed {
            phase: Phase::Handshake,
        },
        ProbeError::Closed {
            phase: Phase::Preamble,
        },
        ProbeError::NoCertificate,
        ProbeError::BadCertificate {
            index: 1,
            detail: "not a valid X.509 certificate: Parsing Error".into(),
        },
        ProbeError::Timeout {
            phase: Phase::Resolve,
            after: Duration::from_secs(10),
            hint: None,
        },
        ProbeError::StartTlsRefused {
            protocol: "smtp",
            detail: "answered STARTTLS with `454 4.7.0 TLS not available due to local problem`"
                .into(),
        },
        ProbeError::Preamble {
            protocol: "imap",
            detail: "the server sent more than 100 lines".into(),
        },
        ProbeError::OversizedChain {
            count: 12,
            limit: certdrift::probe::MAX_CHAIN_CERTS,
        },
    ];
    for err in &probe {
        let message = err.to_string();
        println!("probe, {}:\n  {message}", err.kind());
        assert!(message.chars().next().unwrap().is_lowercase(), "{message}");
        assert!(!message.ends_with('.'), "{message}");
    }
}
