//! Alerting end to end: `certdrift serve` against in-test webhook receivers that fail on
//! demand, a real Alertmanager, restarts with a state file, and the shipped Prometheus rules
//! under promtool.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::hmac;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;

use crate::util::{
    ChildGuard, LocalSite, free_port, http_get, require, run_command, spawn_serve, wait_for,
    wait_for_port,
};

/// Answer 200.
const ANSWER: u8 = 0;
/// Answer 500.
const FAIL: u8 = 1;
/// Read the request and never answer.
const HANG: u8 = 2;

/// One request a test receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    signature: Option<String>,
    body: Vec<u8>,
    /// The status answered; 0 when it never answered.
    answered: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// A webhook receiver on loopback that records every request and answers as `mode` says.
#[derive(Clone)]
struct Inbox {
    received: Arc<Mutex<Vec<Received>>>,
    mode: Arc<AtomicU8>,
}

impl Inbox {
    /// Starts on `port` in `mode`.
    async fn start(port: u16, mode: u8) -> Self {
        let inbox = Self {
            received: Arc::default(),
            mode: Arc::new(AtomicU8::new(mode)),
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the receiver's port is free");
        let app = Router::new().fallback(record).with_state(inbox.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        inbox
    }

    fn set_mode(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The bodies of the requests answered 200.
    fn delivered(&self) -> Vec<Value> {
        self.all()
            .iter()
            .filter(|r| r.answered == 200)
            .map(Received::json)
            .collect()
    }

    /// Waits until `count` requests were answered 200, and returns their bodies.
    async fn wait_delivered(&self, what: &str, count: usize) -> Vec<Value> {
        wait_for(what, Duration::from_secs(30), || async {
            let delivered = self.delivered();
            if delivered.len() >= count {
                Ok(delivered)
            } else {
                Err(format!("{:?}", self.all()))
            }
        })
        .await
    }
}

async fn record(
    State(inbox): State<Inbox>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mode = inbox.mode.load(Ordering::SeqCst);
    let answered = match mode {
        ANSWER => 200,
        FAIL => 500,
        _ => 0,
    };
    inbox.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        signature: headers
            .get("x-certdrift-signature")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        body: body.to_vec(),
        answered,
    });
    match mode {
        ANSWER => StatusCode::OK,
        FAIL => StatusCode::INTERNAL_SERVER_ERROR,
        _ => std::future::pending().await,
    }
}

/// Starts `serve` with `config` and `envs` on a free port, logging at debug level (so the
/// no-secrets checks see everything), and waits for `/healthz`.
async fn start_certdrift(config: &Path, log: &Path, envs: &[(&str, &str)]) -> (ChildGuard, String) {
    let mut all_envs = vec![("CERTDRIFT_LOG", "debug")];
    all_envs.extend_from_slice(envs);
    spawn_serve(config, log, "--listen", &[], &all_envs).await
}

/// `[alerts]` for fast tests: no grace, one failure is enough, retries within milliseconds.
fn fast_alerts(state_file: &Path) -> String {
    format!(
        "interval = \"1s\"\ntimeout = \"2s\"\n\n[alerts]\nstate_file = \"{}\"\nreload_grace = \"0s\"\n\
         failure_count = 1\nretry_base = \"50ms\"\nretry_max = \"300ms\"\n\n",
        state_file.display()
    )
}

/// A site whose disk holds generation 2 while generation 1 is served: `reload_needed`.
async fn drifting_site(name: &str) -> LocalSite {
    let mut site = LocalSite::start(name).await;
    site.renew();
    site
}

fn count(bodies: &[Value], event: &str) -> usize {
    bodies.iter().filter(|body| body["event"] == event).count()
}

async fn scrape(base: &str) -> String {
    http_get(&format!("{base}/metrics"))
        .await
        .expect("/metrics answers")
        .1
}

#[tokio::test]
async fn receivers_down_then_up_get_each_notification_once_and_delay_nobody() {
    let site = drifting_site("down.certdrift.test").await;
    let dir = site.dir.path();
    let healthy_port = free_port();
    let refused_port = free_port();
    let failing_port = free_port();
    let silent_port = free_port();
    let healthy = Inbox::start(healthy_port, ANSWER).await;
    let failing = Inbox::start(failing_port, FAIL).await;
    let silent = Inbox::start(silent_port, HANG).await;
    let secret = "hook-secret-4f1c";
    let config = dir.join("certdrift.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}\
             [[receiver]]\nname = \"healthy\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{healthy_port}/hook/T0KEN-abc123\"\nsecret_env = \"CERTDRIFT_TEST_HOOK_SECRET\"\n\n\
             [[receiver]]\nname = \"refused\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{refused_port}/hook\"\n\n\
             [[receiver]]\nname = \"failing\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{failing_port}/hook\"\n\n\
             [[receiver]]\nname = \"silent\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{silent_port}/hook\"\ntimeout = \"300ms\"\n",
            fast_alerts(&dir.join("alerts.json")),
            site.site_table("blog"),
        ),
    )
    .unwrap();
    let log = dir.join("serve.log");
    let (_child, base) =
        start_certdrift(&config, &log, &[("CERTDRIFT_TEST_HOOK_SECRET", secret)]).await;

    // The healthy receiver is told while the three others fail.
    let first = healthy
        .wait_delivered("the healthy receiver's notification", 1)
        .await;
    assert_eq!(first[0]["event"], "firing");
    assert_eq!(first[0]["alert"], "ReloadNeeded");
    assert_eq!(first[0]["site"], "blog");
    assert_eq!(first[0]["address"], site.address().to_string());
    assert_eq!(first[0]["severity"], "warning");
    assert_eq!(first[0]["version"], 1);
    wait_for(
        "retries to the failing and silent receivers",
        Duration::from_secs(20),
        || async {
            let (failed, hung) = (failing.all().len(), silent.all().len());
            if failed >= 2 && hung >= 2 {
                Ok(())
            } else {
                Err(format!("failing got {failed}, silent got {hung}"))
            }
        },
    )
    .await;
    assert!(failing.delivered().is_empty() && silent.delivered().is_empty());

    // All come back.
    let refused = Inbox::start(refused_port, ANSWER).await;
    failing.set_mode(ANSWER);
    silent.set_mode(ANSWER);
    for (name, inbox) in [
        ("refused", &refused),
        ("failing", &failing),
        ("silent", &silent),
    ] {
        let delivered = inbox
            .wait_delivered(&format!("the {name} receiver's notification"), 1)
            .await;
        assert_eq!(delivered[0]["event"], "firing", "{name}");
        assert_eq!(delivered[0]["alert"], "ReloadNeeded", "{name}");
    }
    // Several probe intervals and retry periods later, still exactly one each.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (name, inbox) in [
        ("healthy", &healthy),
        ("refused", &refused),
        ("failing", &failing),
        ("silent", &silent),
    ] {
        let delivered = inbox.delivered();
        assert_eq!(delivered.len(), 1, "{name} got {delivered:?}");
    }
    // A retry is the same notification: the id of the first failed attempt was delivered.
    for (name, inbox) in [("failing", &failing), ("silent", &silent)] {
        let all = inbox.all();
        assert!(all[0].answered != 200, "{name}'s first attempt failed");
        assert_eq!(all[0].json()["id"], inbox.delivered()[0]["id"], "{name}");
    }

    // The signature verifies with the secret from the environment.
    let signed = &healthy.all()[0];
    assert_eq!(signed.path, "/hook/T0KEN-abc123");
    let hex = signed
        .signature
        .as_deref()
        .and_then(|value| value.strip_prefix("sha256="))
        .expect("a sha256= signature header");
    let tag: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        &signed.body,
        &tag,
    )
    .expect("the signature verifies");
    assert!(
        failing.all()[0].signature.is_none(),
        "unsigned without a secret"
    );

    let metrics = scrape(&base).await;
    let address = site.address();
    for line in [
        format!(
            "certdrift_alerts_firing{{alert=\"ReloadNeeded\",site=\"blog\",address=\"{address}\",severity=\"warning\"}} 1"
        ),
        "certdrift_notifications_total{receiver=\"failing\",result=\"success\"} 1".to_owned(),
        "certdrift_notifications_total{receiver=\"healthy\",result=\"failure\"} 0".to_owned(),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in\n{metrics}"
        );
    }
    let failures = |receiver: &str| -> u64 {
        let prefix =
            format!("certdrift_notifications_total{{receiver=\"{receiver}\",result=\"failure\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no failure count for {receiver} in\n{metrics}"))
    };
    assert!(failures("failing") >= 2 && failures("silent") >= 2 && failures("refused") >= 2);

    // Neither the URL's token nor the secret is ever logged, even at debug level.
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("notification not delivered; will retry"),
        "{log_text}"
    );
    // Retry delays carry jitter; the log gives them in whole milliseconds, not nanoseconds.
    let delays: Vec<&str> = log_text
        .split("retry_in=")
        .skip(1)
        .filter_map(|rest| rest.split(" error=").next())
        .collect();
    assert!(!delays.is_empty(), "{log_text}");
    for delay in &delays {
        assert!(
            humantime::parse_duration(delay).is_ok_and(|d| d.subsec_nanos() % 1_000_000 == 0),
            "retry_in={delay} is not whole milliseconds"
        );
    }
    assert!(
        !log_text.contains("T0KEN-abc123"),
        "the URL token is in the log:\n{log_text}"
    );
    assert!(
        !log_text.contains(secret),
        "the secret is in the log:\n{log_text}"
    );
}

#[tokio::test]
async fn restart_while_firing_sends_no_duplicate_and_the_resolve_still_arrives() {
    let site = drifting_site("restart.certdrift.test").await;
    let dir = site.dir.path();
    let port = free_port();
    let inbox = Inbox::start(port, ANSWER).await;
    let state_file = dir.join("state").join("alerts.json");
    std::fs::create_dir(dir.join("state")).unwrap();
    let config = dir.join("certdrift.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}[[receiver]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n",
            fast_alerts(&state_file),
            site.site_table("blog"),
        ),
    )
    .unwrap();

    let (mut first, _) = start_certdrift(&config, &dir.join("serve-1.log"), &[]).await;
    let fired = inbox.wait_delivered("the firing notification", 1).await;
    assert_eq!(fired[0]["event"], "firing");
    stop(&mut first);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    assert_eq!(saved["firing"][0]["alert"], "ReloadNeeded", "{saved}");
    assert_eq!(saved["outbox"], Value::Array(Vec::new()), "{saved}");

    // Restart while the drift goes on: several probes, no second notification.
    let (mut second, base) = start_certdrift(&config, &dir.join("serve-2.log"), &[]).await;
    let address = site.address();
    let firing = format!(
        "certdrift_alerts_firing{{alert=\"ReloadNeeded\",site=\"blog\",address=\"{address}\",severity=\"warning\"}} 1"
    );
    assert!(
        scrape(&base).await.lines().any(|l| l == firing),
        "restored before the first probe"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(inbox.delivered().len(), 1, "{:?}", inbox.delivered());
    stop(&mut second);

    // Reloaded while certdrift is down: the restarted daemon still sends the resolve.
    site.serve_generation(2);
    let (_third, base) = start_certdrift(&config, &dir.join("serve-3.log"), &[]).await;
    let bodies = inbox.wait_delivered("the resolve", 2).await;
    assert_eq!(count(&bodies, "firing"), 1, "{bodies:?}");
    assert_eq!(count(&bodies, "resolved"), 1, "{bodies:?}");
    let resolved = &bodies[1];
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["started_at"], bodies[0]["started_at"]);
    assert!(resolved["ended_at"].is_string(), "{resolved}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(inbox.delivered().len(), 2, "{:?}", inbox.delivered());
    let metrics = scrape(&base).await;
    assert!(!metrics.contains("certdrift_alerts_firing{"), "{metrics}");
}

fn stop(child: &mut ChildGuard) {
    child.signal("TERM");
    assert_eq!(
        child.wait_exit(Duration::from_secs(10)),
        Some(0),
        "serve stops cleanly"
    );
}

#[tokio::test]
async fn alertmanager_receives_firing_and_resolved_alerts() {
    let alertmanager = require("prometheus-alertmanager");
    let site = drifting_site("am.certdrift.test").await;
    let dir = site.dir.path().to_owned();
    let hook_port = free_port();
    let inbox = Inbox::start(hook_port, ANSWER).await;
    let am_port = free_port();
    let am_config = dir.join("alertmanager.yml");
    std::fs::write(
        &am_config,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname, site, address]\n  group_wait: 0s\n  \
             group_interval: 100ms\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    \
             webhook_configs:\n      - url: http://127.0.0.1:{hook_port}/am\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let storage = dir.join("am-data");
    let _am = ChildGuard::spawn(
        &alertmanager,
        &[
            &format!("--config.file={}", am_config.display()),
            &format!("--storage.path={}", storage.display()),
            &format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=",
        ],
        &[],
        &dir.join("alertmanager.log"),
    );
    wait_for_port(([127, 0, 0, 1], am_port).into(), Duration::from_secs(20)).await;

    let config = dir.join("certdrift.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}[[receiver]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = \"http://127.0.0.1:{am_port}\"\n",
            fast_alerts(&dir.join("alerts.json")),
            site.site_table("blog"),
        ),
    )
    .unwrap();
    let (_certdrift, base) = start_certdrift(&config, &dir.join("serve.log"), &[]).await;

    let address = site.address().to_string();
    let firing = wait_alertmanager(&inbox, "firing").await;
    let alert = &firing["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "CertdriftReloadNeeded");
    assert_eq!(alert["labels"]["site"], "blog");
    assert_eq!(alert["labels"]["address"], address.as_str());
    assert_eq!(alert["labels"]["severity"], "warning");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .starts_with(&format!("blog on {address} serves an older certificate")),
        "{alert}"
    );
    assert_eq!(alert["generatorURL"], format!("{base}/"));

    // Reload: in sync, so certdrift resolves, and Alertmanager says so.
    site.serve_generation(2);
    let resolved = wait_alertmanager(&inbox, "resolved").await;
    assert_eq!(
        resolved["alerts"][0]["labels"]["alertname"],
        "CertdriftReloadNeeded"
    );
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
}

/// Waits for an Alertmanager webhook message with `status`.
async fn wait_alertmanager(inbox: &Inbox, status: &str) -> Value {
    wait_for(
        &format!("an Alertmanager `{status}` message"),
        Duration::from_secs(30),
        || async {
            inbox
                .delivered()
                .into_iter()
                .find(|body| body["status"] == status)
                .ok_or_else(|| format!("{:?}", inbox.delivered()))
        },
    )
    .await
}

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

#[tokio::test]
async fn shipped_prometheus_rules_pass_promtool_check_and_unit_tests() {
    let promtool = require("promtool");
    let promtool = promtool.to_str().unwrap();
    let rules = deploy("prometheus/certdrift.rules.yml");
    let check = run_command(promtool, &["check", "rules", rules.to_str().unwrap()]).await;
    assert_eq!(check.status, 0, "{check:?}");
    assert!(
        check.stdout.contains("SUCCESS: 13 rules found"),
        "{check:?}"
    );

    let tests = deploy("prometheus/tests/certdrift.rules.test.yml");
    let test = run_command(promtool, &["test", "rules", tests.to_str().unwrap()]).await;
    assert_eq!(test.status, 0, "{test:?}");
    assert!(test.stdout.contains("SUCCESS"), "{test:?}");

    // Every rule has a firing and a not-firing case.
    let tests_text = std::fs::read_to_string(&tests).unwrap();
    let rules_text = std::fs::read_to_string(&rules).unwrap();
    let names: Vec<&str> = rules_text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(names.len(), 13);
    for name in names {
        let cases: Vec<&str> = tests_text
            .split("- eval_time:")
            .filter(|case| case.contains(&format!("alertname: {name}\n")))
            .collect();
        assert!(
            cases.iter().any(|case| case.contains("exp_alerts: []")),
            "{name}: no not-firing case"
        );
        assert!(
            cases.iter().any(|case| case.contains("exp_labels:")),
            "{name}: no firing case"
        );
    }
}

#[test]
fn the_prometheus_rule_object_embeds_the_same_groups() {
    let read = |path: &str| -> serde_yaml_ng::Value {
        let text = std::fs::read_to_string(deploy(path)).unwrap();
        serde_yaml_ng::from_str(&text).unwrap_or_else(|err| panic!("{path}: {err}"))
    };
    let rules = read("prometheus/certdrift.rules.yml");
    let object = read("kubernetes/prometheusrule.yaml");
    assert_eq!(object["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(object["kind"], "PrometheusRule");
    assert_eq!(object["metadata"]["name"], "certdrift");
    assert!(
        rules["groups"]
            .as_sequence()
            .is_some_and(|groups| !groups.is_empty())
    );
    assert_eq!(object["spec"]["groups"], rules["groups"]);
}

#[tokio::test]
async fn check_runs_without_the_daemons_receiver_secrets_and_serve_refuses() {
    // The cron job's environment rarely has the daemon's secrets; `check` sends no alerts.
    let site = LocalSite::start("cron.certdrift.test").await;
    let config = site.dir.path().join("certdrift.toml");
    std::fs::write(
        &config,
        format!(
            "{}[[receiver]]\nname = \"chat\"\ntype = \"slack\"\nurl_env = \"CERTDRIFT_TEST_CRON_UNSET\"\n",
            site.site_table("cron")
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let check = crate::util::certdrift(&["check", "--config", config]).await;
    assert_eq!(check.status, 0, "{check:?}");
    assert!(
        !check.stderr.contains("CERTDRIFT_TEST_CRON_UNSET"),
        "{check:?}"
    );

    let refusal = serve_refusal(Path::new(config)).await;
    assert!(
        refusal.contains(
            "receiver `chat`: `url_env`: the environment variable `CERTDRIFT_TEST_CRON_UNSET` is not set or empty"
        ),
        "{refusal}"
    );
}

/// Runs `serve` with `config` on a free port, expects it to refuse to start (status 2), and
/// returns what it said.
async fn serve_refusal(config: &Path) -> String {
    let listen = format!("127.0.0.1:{}", free_port());
    let run = crate::util::certdrift(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        &listen,
    ])
    .await;
    assert_eq!(run.status, 2, "{run:?}");
    run.stderr.trim_end().to_owned()
}

/// Printed for review like the `messages` module's (`-- --nocapture`).
#[allow(clippy::print_stdout)]
#[tokio::test]
async fn alert_config_and_state_errors_name_the_file_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let site =
        "[[site]]\nname = \"blog\"\nhost = \"blog.example.org\"\ncert = \"/etc/ssl/blog.pem\"\n";
    let cases: &[(&str, String)] = &[
        (
            "[alerts]\nserved_expiring = \"soon\"\n",
            "certdrift.toml:7: `served_expiring`: `soon` is neither a share of the lifetime (\"1/6\", \"25%\") nor a time left (\"14d\")".to_owned(),
        ),
        (
            "[alerts]\nfailure_count = 0\n",
            "certdrift.toml:7: `failure_count` must be at least 1".to_owned(),
        ),
        (
            "[[receiver]]\nname = \"chat\"\ntype = \"slack\"\nurl_env = \"CERTDRIFT_TEST_NOT_SET\"\n",
            "certdrift.toml:9: receiver `chat`: `url_env`: the environment variable `CERTDRIFT_TEST_NOT_SET` is not set or empty; set it for certdrift's process".to_owned(),
        ),
        (
            "[[receiver]]\nname = \"chat\"\ntype = \"slack\"\nurl = \"https://hooks.example.com/x\"\nsecret = \"k\"\n",
            "certdrift.toml:10: `secret` signs webhook payloads only; a slack receiver takes none".to_owned(),
        ),
        (
            "[[receiver]]\nname = \"am\"\ntype = \"alertmanager\"\n",
            "certdrift.toml:6: receiver `am` has no `url`; give `url`, or `url_env` naming an environment variable that holds it".to_owned(),
        ),
    ];
    let config = dir.path().join("certdrift.toml");
    for (extra, expected) in cases {
        std::fs::write(&config, format!("{site}\n{extra}")).unwrap();
        let run = crate::util::certdrift(&["serve", "--config", config.to_str().unwrap()]).await;
        let message = run.stderr.trim_end();
        println!("{message}");
        assert_eq!(run.status, 2, "{run:?}");
        assert_eq!(
            message,
            format!("certdrift: {}{expected}", dir.path().join("").display()),
            "{extra}"
        );
    }

    // A damaged state file stops `serve` with its path and what to do.
    let state = dir.path().join("alerts.json");
    std::fs::write(&state, "{\"version\": 1, \"firing\": [").unwrap();
    std::fs::write(
        &config,
        format!("[alerts]\nstate_file = \"{}\"\n\n{site}", state.display()),
    )
    .unwrap();
    let message = serve_refusal(&config).await;
    println!("{message}");
    assert!(
        message.starts_with(&format!(
            "certdrift: {}: not a certdrift alert state file",
            state.display()
        )),
        "{message}"
    );
    assert!(
        message.ends_with("move it away to start with no alert firing"),
        "{message}"
    );

    // So does one that cannot be written: nothing would be kept across a restart.
    let unwritable = dir.path().join("no-such-dir").join("alerts.json");
    std::fs::write(
        &config,
        format!(
            "[alerts]\nstate_file = \"{}\"\n\n{site}",
            unwritable.display()
        ),
    )
    .unwrap();
    let message = serve_refusal(&config).await;
    println!("{message}");
    assert!(
        message.starts_with(&format!(
            "certdrift: {}: cannot write the alert state file",
            unwritable.display()
        )),
        "{message}"
    );
}

#[tokio::test]
async fn repeats_are_sent_every_repeat_interval_between_probes() {
    let site = drifting_site("repeat.certdrift.test").await;
    let dir = site.dir.path();
    let port = free_port();
    let inbox = Inbox::start(port, ANSWER).await;
    let config = dir.join("certdrift.toml");
    // One probe a minute: the repeats below can only come from the repeat timer.
    let alerts =
        fast_alerts(&dir.join("alerts.json")).replace("interval = \"1s\"", "interval = \"1m\"");
    std::fs::write(
        &config,
        format!(
            "{alerts}{}[[receiver]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nrepeat_interval = \"1s\"\n",
            site.site_table("blog"),
        ),
    )
    .unwrap();
    let (_child, _) = start_certdrift(&config, &dir.join("serve.log"), &[]).await;
    let bodies = inbox.wait_delivered("a firing and two repeats", 3).await;
    assert_eq!(bodies[0]["event"], "firing", "{bodies:?}");
    assert_eq!(bodies[1]["event"], "repeat", "{bodies:?}");
    assert_eq!(bodies[2]["event"], "repeat", "{bodies:?}");
    assert_eq!(bodies[1]["started_at"], bodies[0]["started_at"]);
    assert_ne!(bodies[1]["id"], bodies[2]["id"]);
}
