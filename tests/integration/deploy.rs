//! The files under `deploy/`, checked by the tools that run them: `systemd-analyze verify`
//! and `security` on the unit, the unit's capability tried for real with setpriv, the certbot
//! deploy hook against a running `serve`, every Kubernetes manifest against the Kubernetes
//! and Prometheus Operator schemas offline, and every command line in them against
//! certdrift's own parser.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use certdrift::demo::server::LocalTlsServer;

use crate::serve::scrape_until;
use crate::servers::Pebble;
use crate::util::spawn_serve;
use crate::util::{LocalSite, certdrift, certdrift_bin, free_port, require, run_command, strs};

const UNIT: &str = "deploy/systemd/certdrift.service";
const INSTALLED_BIN: &str = "/usr/local/bin/certdrift";

#[tokio::test]
async fn systemd_analyze_verifies_the_unit_and_rates_its_exposure_ok() {
    let unit = read(UNIT);
    for line in [
        "User=certdrift",
        "AmbientCapabilities=CAP_DAC_READ_SEARCH",
        "CapabilityBoundingSet=CAP_DAC_READ_SEARCH",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        // `-`: a host without certbot's directory still starts the unit.
        "ReadOnlyPaths=/etc/certdrift -/etc/letsencrypt",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks `{line}`");
    }
    // verify checks that ExecStart's program exists: point it at the binary under test.
    assert!(unit.contains(&format!("ExecStart={INSTALLED_BIN} ")));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("certdrift.service");
    std::fs::write(&file, unit.replace(INSTALLED_BIN, certdrift_bin())).unwrap();
    let analyze = require("systemd-analyze");
    let analyze = analyze.to_str().unwrap();
    let run = run_command(analyze, &["verify", file.to_str().unwrap()]).await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stderr, "", "systemd-analyze verify complains");

    // The same check notices a misspelt hardening option.
    let typo = dir.path().join("typo.service");
    std::fs::write(
        &typo,
        read(UNIT)
            .replace(INSTALLED_BIN, certdrift_bin())
            .replace("NoNewPrivileges=", "NoNewPrivilege="),
    )
    .unwrap();
    let run = run_command(analyze, &["verify", typo.to_str().unwrap()]).await;
    assert!(run.stderr.contains("Unknown key"), "{run:?}");

    let run = run_command(
        analyze,
        &["security", "--offline=yes", file.to_str().unwrap()],
    )
    .await;
    let exposure: f64 = run
        .stdout
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for certdrift.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{}{}", run.stdout, run.stderr));
    eprintln!("systemd-analyze security: exposure {exposure}");
    assert!(
        exposure <= 2.0,
        "exposure {exposure} (was 1.7 when written)"
    );
}

#[tokio::test]
async fn the_units_capability_lets_an_unprivileged_user_read_root_only_certificates() {
    let site = LocalSite::start("caps.certdrift.test").await;
    // certbot's modes: live/ and archive/ 0700 root, the temp dir above them traversable.
    let root = site.dir.path().join("letsencrypt");
    for dir in [site.dir.path(), root.as_path()] {
        chmod(dir, 0o755);
    }
    for dir in ["live", "archive"] {
        chmod(&root.join(dir), 0o700);
    }
    chmod(&site.ca_file, 0o644);
    let check = site.check_args();
    let setpriv = require("setpriv");
    let unprivileged = ["--reuid=65534", "--regid=65534", "--clear-groups"];

    let mut without: Vec<&str> = unprivileged.to_vec();
    without.push(certdrift_bin());
    without.extend(strs(&check));
    let run = run_command(setpriv.to_str().unwrap(), &without).await;
    let result = run.first_result();
    assert_eq!(result["verdict"], "disk_error", "{run:?}");
    assert_eq!(result["error"]["kind"], "permission_denied", "{run:?}");

    // What the unit grants: CAP_DAC_READ_SEARCH as an ambient capability.
    let mut with: Vec<&str> = unprivileged.to_vec();
    with.extend([
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
        certdrift_bin(),
    ]);
    with.extend(strs(&check));
    let run = run_command(setpriv.to_str().unwrap(), &with).await;
    assert_eq!(run.first_result()["verdict"], "in_sync", "{run:?}");
}

#[tokio::test]
async fn the_unit_and_example_config_run_as_written() {
    let unit = read(UNIT);
    let exec = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .unwrap();
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    assert_cli_accepts(&args, "/etc/certdrift/certdrift.toml").await;

    // The example config loads (read only: nothing is probed).
    let config =
        certdrift::config::Config::load(Path::new(&repo_path("deploy/systemd/certdrift.toml")))
            .unwrap_or_else(|err| panic!("{err:#}"));
    let names: Vec<&str> = config.sites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["www", "mail"]);
}

#[tokio::test]
async fn the_certbot_deploy_hook_makes_serve_recheck_at_once() {
    let mut site = LocalSite::start("hook.certdrift.test").await;
    let config = site.dir.path().join("certdrift.toml");
    std::fs::write(
        &config,
        format!("interval = \"1h\"\n\n{}", site.site_table("hook")),
    )
    .unwrap();
    let (_serve, base) = spawn_serve(
        &config,
        &site.dir.path().join("serve.log"),
        "--listen",
        &[],
        &[],
    )
    .await;
    let at = site.address().to_string();
    scrape_until(
        &base,
        &format!("certdrift_verdict{{site=\"hook\",address=\"{at}\",verdict=\"in_sync\"}} 1"),
    )
    .await;

    site.renew();
    let lineage = site.lineage.live_dir().display().to_string();
    let (status, stdout, stderr) = run_hook(&base, &lineage).await;
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "asked {base}/-/recheck to re-check after renewing {lineage}"
        )),
        "{stdout}{stderr}"
    );
    // Within scrape_until's 30 s, far less than the 1 h interval.
    scrape_until(
        &base,
        &format!("certdrift_verdict{{site=\"hook\",address=\"{at}\",verdict=\"reload_needed\"}} 1"),
    )
    .await;

    // A certdrift that is not there does not fail the renewal, but says so.
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let (status, stdout, stderr) = run_hook(&nobody, &lineage).await;
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("{nobody}/-/recheck did not accept the re-check")),
        "{stderr}"
    );
}

#[tokio::test]
async fn certbot_runs_the_deploy_hook_after_a_real_renewal_and_serve_sees_it_at_once() {
    const NAME: &str = "hooked.certdrift.test";
    let pebble = Pebble::start().await;
    let state = tempfile::tempdir().unwrap();
    let issue = pebble.certonly(state.path(), NAME).await;
    assert_eq!(issue.status, 0, "certbot certonly: {issue:?}");
    let live = state.path().join("le/live").join(NAME);
    let fullchain = std::fs::read_to_string(live.join("fullchain.pem")).unwrap();
    let key = std::fs::read_to_string(live.join("privkey.pem")).unwrap();
    let server = LocalTlsServer::start("127.0.0.1:0".parse().unwrap(), &fullchain, &key)
        .await
        .unwrap();
    let ca_file = state.path().join("pebble-root.pem");
    std::fs::write(&ca_file, pebble.issuing_root_pem().await).unwrap();
    let config = state.path().join("certdrift.toml");
    std::fs::write(
        &config,
        format!(
            "interval = \"1h\"\n\n[[site]]\nname = \"hooked\"\nhost = \"127.0.0.1\"\nport = {}\n\
             sni = \"{NAME}\"\ncert = \"{}\"\nca_file = \"{}\"\n",
            server.local_addr().port(),
            live.join("fullchain.pem").display(),
            ca_file.display()
        ),
    )
    .unwrap();
    let (_serve, base) = spawn_serve(
        &config,
        &state.path().join("serve.log"),
        "--listen",
        &[],
        &[],
    )
    .await;
    let at = server.local_addr().to_string();
    scrape_until(
        &base,
        &format!("certdrift_verdict{{site=\"hooked\",address=\"{at}\",verdict=\"in_sync\"}} 1"),
    )
    .await;

    // certbot runs deploy hooks with its own environment: a wrapper sets CERTDRIFT_URL.
    let wrapper = state.path().join("certdrift-hook");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nCERTDRIFT_URL='{base}' exec '{}'\n",
            repo_path("deploy/certbot/deploy-hook")
        ),
    )
    .unwrap();
    chmod(&wrapper, 0o755);
    let renew = pebble
        .certbot(
            state.path(),
            &[
                "renew",
                "--force-renewal",
                "--no-random-sleep-on-renew",
                "--cert-name",
                NAME,
                "--deploy-hook",
                wrapper.to_str().unwrap(),
            ],
        )
        .await;
    assert_eq!(renew.status, 0, "certbot renew: {renew:?}");
    let log = std::fs::read_to_string(state.path().join("logs/letsencrypt.log")).unwrap();
    assert!(
        log.contains(&format!(
            "asked {base}/-/recheck to re-check after renewing {}",
            live.display()
        )),
        "certbot's log has no sign of the hook:\n{log}"
    );
    // The server was not reloaded: the re-check the hook asked for finds the renewal
    // within seconds, not at the 1 h interval.
    scrape_until(
        &base,
        &format!(
            "certdrift_verdict{{site=\"hooked\",address=\"{at}\",verdict=\"reload_needed\"}} 1"
        ),
    )
    .await;
}

#[tokio::test]
async fn every_kubernetes_manifest_validates_offline_against_its_schema() {
    let tools = tools_dir();
    let python = tools.join("venv/bin/python");
    assert!(
        python.is_file() && tools.join("node_modules/@kubernetes-models").is_dir(),
        "the manifest validators are not installed in {}: run .ci/install-packages",
        tools.display()
    );
    let manifests = manifest_files();
    assert!(manifests.len() >= 4, "{manifests:?}");
    let mut kinds = Vec::new();
    for version in ["1.28.0", "1.37.0"] {
        let (status, stdout) = validate(&manifests, version).await;
        assert_eq!(status, 0, "{stdout}");
        for file in &manifests {
            assert!(
                stdout
                    .lines()
                    .any(|line| line.starts_with(&format!("ok {file} "))),
                "{file} was not validated:\n{stdout}"
            );
        }
        assert!(!stdout.contains("invalid"), "{stdout}");
        kinds = stdout
            .lines()
            .filter_map(|line| line.split_whitespace().nth(2).map(str::to_owned))
            .collect();
    }
    for kind in ["DaemonSet", "ConfigMap", "Service", "ServiceMonitor"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in {kinds:?}");
    }

    // The validators reject what they should: an unknown field in a built-in kind, a
    // wrong type in a CRD kind.
    let dir = tempfile::tempdir().unwrap();
    let bad_daemonset = dir.path().join("daemonset.yaml");
    let daemonset = read("deploy/kubernetes/daemonset.yaml");
    assert!(daemonset.contains("      hostNetwork: true\n"));
    std::fs::write(
        &bad_daemonset,
        daemonset.replace("      hostNetwork: true\n", "      hostNetwrk: true\n"),
    )
    .unwrap();
    let bad_monitor = dir.path().join("servicemonitor.yaml");
    let monitor = read("deploy/kubernetes/servicemonitor.yaml");
    assert!(monitor.contains("interval: 60s"));
    std::fs::write(
        &bad_monitor,
        monitor.replace("interval: 60s", "interval: 60"),
    )
    .unwrap();
    let bad = [
        bad_daemonset.display().to_string(),
        bad_monitor.display().to_string(),
    ];
    let (status, stdout) = validate(&bad, "1.37.0").await;
    assert_eq!(status, 1, "{stdout}");
    assert!(stdout.contains("'hostNetwrk' was unexpected"), "{stdout}");
    assert!(
        stdout.contains("spec/endpoints/0/interval must be string"),
        "{stdout}"
    );
}

#[tokio::test]
async fn the_kubernetes_objects_fit_together_and_run_certdrift_as_written() {
    let objects: Vec<serde_json::Value> = {
        let mut all = Vec::new();
        for file in manifest_files() {
            all.extend(yaml_documents(&file).await);
        }
        all
    };
    let find = |kind: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
            .clone()
    };
    let daemonset = find("DaemonSet");
    let pod = &daemonset["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert_eq!(daemonset["spec"]["selector"]["matchLabels"], *labels);
    let service = find("Service");
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(labels[key], *value, "the Service selects the pods");
    }
    let monitor = find("ServiceMonitor");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            service["metadata"]["labels"][key], *value,
            "the ServiceMonitor selects the Service"
        );
    }
    let container = &pod["spec"]["containers"][0];
    let port = &container["ports"][0];
    assert_eq!(service["spec"]["ports"][0]["targetPort"], port["name"]);
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );

    // Certificates: the node's /etc/letsencrypt, read-only; the capability to read it.
    let volume = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["hostPath"]["path"] == "/etc/letsencrypt")
        .expect("a hostPath volume for /etc/letsencrypt");
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .unwrap();
    assert_eq!(mount["readOnly"], true);
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    assert_eq!(security["capabilities"]["add"][0], "DAC_READ_SEARCH");

    // The container's arguments are certdrift's, and listen where the port says.
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let port_number = port["containerPort"].as_u64().unwrap();
    assert!(
        args.contains(&format!("--web.listen-address=$(NODE_IP):{port_number}").as_str()),
        "listens on the node's address only: {args:?}"
    );
    let node_ip = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|env| env["name"] == "NODE_IP")
        .expect("NODE_IP in the container's env");
    assert_eq!(
        node_ip["valueFrom"]["fieldRef"]["fieldPath"],
        "status.hostIP"
    );
    // What the kubelet passes once it has expanded $(NODE_IP).
    let expanded: Vec<String> = args
        .iter()
        .map(|arg| arg.replace("$(NODE_IP)", "127.0.0.1"))
        .collect();
    assert_cli_accepts(&strs(&expanded), "/etc/certdrift/certdrift.toml").await;

    // `kubectl apply -f deploy/kubernetes/` takes the files in name order and does not
    // order objects by dependency: the Namespace must come first, and every other object
    // must live in it.
    let files = manifest_files();
    let first = yaml_documents(&files[0]).await;
    assert_eq!(first[0]["kind"], "Namespace", "{} sorts first", files[0]);
    let namespace = first[0]["metadata"]["name"].clone();
    for object in objects.iter().filter(|o| o["kind"] != "Namespace") {
        assert_eq!(
            object["metadata"]["namespace"], namespace,
            "{} {} is not in the Namespace",
            object["kind"], object["metadata"]["name"]
        );
    }

    // The ConfigMap's config is a valid certdrift config.
    let configmap = find("ConfigMap");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("certdrift.toml");
    std::fs::write(
        &config,
        configmap["data"]["certdrift.toml"].as_str().unwrap(),
    )
    .unwrap();
    let config = certdrift::config::Config::load(&config).unwrap_or_else(|err| panic!("{err:#}"));
    assert_eq!(config.listen.port() as u64, port_number);
    assert_eq!(config.sites[0].name, "www");
}
#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_as_a_non_root_user_in_another() {
    let dockerfile = read("deploy/docker/Dockerfile");
    let stages: Vec<&str> = dockerfile.split("\nFROM ").skip(1).collect();
    assert_eq!(stages.len(), 2, "a build and a runtime stage");
    assert!(stages[0].starts_with("rust:") && stages[0].contains(" AS build"));
    assert!(stages[0].contains("cargo build --release --locked"));
    let runtime = stages[1];
    assert!(runtime.contains("COPY --from=build "), "{runtime}");
    let user = runtime
        .lines()
        .find_map(|line| line.strip_prefix("USER "))
        .expect("a USER in the runtime stage");
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "USER {user}"
    );
    // Everything the build stage copies exists, and the ignore file lets it through.
    let ignore = read("deploy/docker/Dockerfile.dockerignore");
    for line in stages[0].lines().filter_map(|l| l.strip_prefix("COPY ")) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[..parts.len() - 1] {
            assert!(
                Path::new(&repo_path(source)).exists(),
                "COPY {source}: not in the repository"
            );
            assert!(
                ignore.lines().any(|l| l == format!("!{source}")),
                "{source} is not let through Dockerfile.dockerignore"
            );
        }
    }
}

#[tokio::test]
async fn the_dockerfile_command_is_certdrifts() {
    let dockerfile = read("deploy/docker/Dockerfile");
    let cmd = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("CMD "))
        .expect("a CMD");
    let args: Vec<String> = serde_json::from_str(cmd).expect("CMD in exec form");
    assert_cli_accepts(&strs(&args), "/etc/certdrift/certdrift.toml").await;
}

/// Runs certdrift with `args` (its own program name left out), `config` swapped for a
/// file that does not exist: the parser must accept every flag and fail only on the file.
async fn assert_cli_accepts(args: &[&str], config: &str) {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.toml").display().to_string();
    let swapped: Vec<String> = args
        .iter()
        .map(|arg| arg.replace(config, &missing))
        .collect();
    assert_ne!(
        swapped,
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "{config} is not in {args:?}"
    );
    let run = certdrift(&strs(&swapped)).await;
    assert_eq!(run.status, 2, "{run:?}");
    assert!(
        run.stderr.contains(&missing) && !run.stderr.contains("error:"),
        "certdrift {swapped:?} should fail on the missing config only:\n{}",
        run.stderr
    );
}

/// Runs `deploy/certbot/deploy-hook` as certbot would after renewing `lineage`.
async fn run_hook(base: &str, lineage: &str) -> (i32, String, String) {
    let hook = repo_path("deploy/certbot/deploy-hook");
    let output = tokio::process::Command::new(&hook)
        .env("CERTDRIFT_URL", base)
        .env("RENEWED_LINEAGE", lineage)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .expect("the hook finishes")
        .unwrap_or_else(|err| panic!("cannot run {hook}: {err}"));
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs tests/deploy/validate_manifests.py on `files` for Kubernetes `version`.
async fn validate(files: &[String], version: &str) -> (i32, String) {
    let tools = tools_dir();
    let python = tools.join("venv/bin/python").display().to_string();
    let script = repo_path("tests/deploy/validate_manifests.py");
    let modules = tools.join("node_modules").display().to_string();
    let mut args = vec![script.as_str(), version, modules.as_str()];
    args.extend(files.iter().map(String::as_str));
    let run = run_command(&python, &args).await;
    (run.status, format!("{}{}", run.stdout, run.stderr))
}

/// The documents of a YAML file, as JSON (PyYAML from the validators' venv).
async fn yaml_documents(file: &str) -> Vec<serde_json::Value> {
    let python = tools_dir().join("venv/bin/python").display().to_string();
    let run = run_command(
        &python,
        &[
            "-c",
            "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
            file,
        ],
    )
    .await;
    assert_eq!(run.status, 0, "{file}: {}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

/// Every `.yaml`/`.yml` file in deploy/kubernetes, whoever added it.
fn manifest_files() -> Vec<String> {
    let dir = PathBuf::from(repo_path("deploy/kubernetes"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .map(|path| path.display().to_string())
        .collect();
    files.sort();
    files
}

fn tools_dir() -> PathBuf {
    PathBuf::from(repo_path("target/deploy-tools"))
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_path(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn repo_path(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}
