//! The command line a new user meets first: the demo, the help text and the logging flags.

use std::time::Duration;

use crate::util::{certdrift, free_port, spawn_serve};

#[tokio::test]
async fn demo_walks_through_the_four_states_with_nothing_configured() {
    let run = certdrift(&["demo"]).await;
    assert_eq!(run.status, 0, "{run:?}");
    // The demo's TLS server is certdrift's own process: no hint to reload certdrift.
    assert!(!run.stdout.contains("who serves it"), "{}", run.stdout);
    let verdict_rows: Vec<&str> = run
        .stdout
        .lines()
        .filter(|line| line.trim_start().starts_with("demo.certdrift.test  "))
        .collect();
    let verdicts: Vec<&str> = verdict_rows
        .iter()
        .map(|row| row.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(
        verdicts,
        ["in_sync", "reload_needed", "in_sync", "disk_older"],
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("(check exits with status 1)"));
    // The days the demo's text promises are the days its reports count.
    let days: u32 = run
        .stdout
        .split_once("served, ")
        .and_then(|(_, rest)| rest.split_once(" days before it expires"))
        .and_then(|(days, _)| days.parse().ok())
        .unwrap_or_else(|| panic!("no day count in step 1:\n{}", run.stdout));
    assert!(
        verdict_rows[0].contains(&format!("({days}d)")),
        "{}",
        verdict_rows[0]
    );
    assert!(
        run.stdout
            .contains(&format!("(in {days} days); the file has")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.lines().any(|line| line
            .trim_start()
            .starts_with("certdrift_verdict{site=\"demo.certdrift.test\"")
            && line.contains("verdict=\"reload_needed\"} 1")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\"verdict\": \"reload_needed\""),
        "{}",
        run.stdout
    );
    // The temporary directory is gone afterwards.
    let dir = run
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("Working in "))
        .unwrap();
    let dir = dir.split(' ').next().unwrap();
    assert!(!std::path::Path::new(dir).exists(), "{dir} was left behind");
}

#[tokio::test]
async fn check_help_states_the_exit_codes() {
    let run = certdrift(&["check", "--help"]).await;
    assert_eq!(run.status, 0);
    assert!(
        run.stdout
            .contains("0 in sync, 1 drift found, 2 could not check or bad config"),
        "{}",
        run.stdout
    );
    let top = certdrift(&["--help"]).await;
    for command in ["check", "serve", "demo"] {
        assert!(
            top.stdout
                .lines()
                .any(|line| line.trim_start().starts_with(command)),
            "{}",
            top.stdout
        );
    }
}

#[tokio::test]
async fn a_mistyped_log_level_is_refused_with_what_is_accepted() {
    for value in ["warning", "bogus", "info,verbose", ""] {
        let run = certdrift(&["--log-level", value, "check"]).await;
        assert_eq!(run.status, 2, "{value}: {run:?}");
        assert!(
            run.stderr
                .contains(&format!("invalid value '{value}' for '--log-level")),
            "{value}: {}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("use a level (error, warn, info, debug, trace, off) or a filter"),
            "{value}: {}",
            run.stderr
        );
    }
    let word = certdrift(&["--log-level", "info,verbose", "check"]).await;
    assert!(
        word.stderr.contains("`verbose` is not a log level"),
        "{word:?}"
    );

    // Levels in any case and real filters pass on to the next error: a missing config.
    for value in [
        "WARN",
        "off",
        "certdrift=debug",
        "info,certdrift::probe=trace",
    ] {
        let run = certdrift(&[
            "--log-level",
            value,
            "check",
            "--config",
            "/nonexistent/certdrift.toml",
        ])
        .await;
        assert_eq!(run.status, 2, "{value}: {run:?}");
        assert!(
            run.stderr
                .starts_with("certdrift: /nonexistent/certdrift.toml: cannot read the config file"),
            "{value}: {}",
            run.stderr
        );
    }
}

#[tokio::test]
async fn logs_to_a_file_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("certdrift.toml");
    std::fs::write(
        &config,
        format!(
            "interval = \"1h\"\n[[site]]\nname = \"a\"\nhost = \"127.0.0.1\"\nport = {}\n\
             cert = \"/nonexistent/a.pem\"\n",
            free_port()
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let (mut serve, _base) = spawn_serve(&config, &log, "--listen", &[], &[]).await;
    serve.signal("TERM");
    assert_eq!(serve.wait_exit(Duration::from_secs(20)), Some(0));

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO"), "no info line was logged:\n{text}");
    assert!(
        !text.contains('\x1b'),
        "colour codes in a log file:\n{text:?}"
    );
}

#[tokio::test]
async fn site_flags_beside_a_config_file_are_refused_not_ignored() {
    // With a config file, the site's port, SNI, protocol, key and CA come from the file; a
    // flag that would be silently dropped is an error instead.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("certdrift.toml");
    std::fs::write(
        &config,
        "[[site]]\nname = \"a\"\nhost = \"127.0.0.1\"\nport = 1\ncert = \"c.pem\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    for (flag, value, shown) in [
        ("--port", "5", "--port <PORT>"),
        ("--sni", "x.test", "--sni <SNI>"),
        ("--protocol", "smtp", "--protocol <PROTOCOL>"),
        ("--key", "k.pem", "--key <KEY>"),
        ("--ca-file", "ca.pem", "--ca-file <CA_FILE>"),
    ] {
        let run = certdrift(&["check", "--config", config, flag, value]).await;
        assert_eq!(run.status, 2, "{flag}: {run:?}");
        assert!(
            run.stderr.contains(&format!(
                "the argument '--config <CONFIG>' cannot be used with '{shown}'"
            )),
            "{flag}: {}",
            run.stderr
        );
    }
}
