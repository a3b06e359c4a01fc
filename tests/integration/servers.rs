//! Real servers from Debian packages (nginx, apache2, haproxy, pebble, certbot), run by hand
//! on loopback from a temp dir, as child processes the test owns (see ../shared/TESTBED.md
//! for the recipes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certdrift::demo::ca::{LeafSpec, TestCa};
use tempfile::TempDir;

use crate::util::{ChildGuard, Run, free_port, require, run_command, wait_for_port};

/// nginx with one TLS server block, serving a certificate from files it reads at start and
/// at each reload only.
pub struct Nginx {
    pub dir: TempDir,
    child: ChildGuard,
    conf: PathBuf,
    pub port: u16,
}

impl Nginx {
    /// Starts nginx listening on each of `listens` (`127.0.0.1`, `[::1]`) at a free port,
    /// serving `cert` and `key` for `server_name`.
    pub async fn start(listens: &[&str], server_name: &str, cert: &Path, key: &Path) -> Self {
        Self::start_with_certs(listens, server_name, &[(cert, key)]).await
    }

    /// Like [`Nginx::start`], with one `ssl_certificate` pair per entry of `certs` (an ECDSA
    /// and an RSA certificate for one name: nginx picks by what the client offers).
    pub async fn start_with_certs(
        listens: &[&str],
        server_name: &str,
        certs: &[(&Path, &Path)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let listen_lines: String = listens
            .iter()
            .map(|address| format!("        listen {address}:{port} ssl;\n"))
            .collect();
        let cert_lines: String = certs
            .iter()
            .map(|(cert, key)| {
                format!(
                    "        ssl_certificate {};\n        ssl_certificate_key {};\n",
                    cert.display(),
                    key.display()
                )
            })
            .collect();
        let server = format!(
            "    server {{
{listen_lines}        server_name {server_name};
{cert_lines}        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{ return 200 \"ok\\n\"; }}
    }}
"
        );
        Self::start_in(dir, &server, port).await
    }

    /// Starts nginx from `dir`, whose `nginx.conf` gets the usual preamble (pid, logs and
    /// temp paths inside `dir`) and `http { ... http_body }`; waits until `port` accepts
    /// connections on 127.0.0.1. Files `http_body` includes must be in `dir` already.
    pub async fn start_in(dir: TempDir, http_body: &str, port: u16) -> Self {
        let nginx = require("nginx");
        let root = dir.path();
        for temp in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(root.join("tmp").join(temp)).unwrap();
        }
        let conf = root.join("nginx.conf");
        let text = format!(
            "worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
{http_body}}}
",
            root = root.display(),
        );
        std::fs::write(&conf, text).unwrap();

        let prefix = format!("{}/", root.display());
        let conf_arg = conf.display().to_string();
        let error_log = root.join("error.log").display().to_string();
        let test = run_command(
            nginx.to_str().unwrap(),
            &["-t", "-q", "-p", &prefix, "-c", &conf_arg, "-e", &error_log],
        )
        .await;
        assert_eq!(test.status, 0, "nginx -t: {test:?}");
        let child = ChildGuard::spawn(
            &nginx,
            &[
                "-p",
                &prefix,
                "-c",
                &conf_arg,
                "-e",
                &error_log,
                "-g",
                "daemon off;",
            ],
            &[],
            &root.join("stdout.log"),
        );
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_for_port(address, Duration::from_secs(20)).await;
        Self {
            dir,
            child,
            conf,
            port,
        }
    }

    /// `nginx -s reload`: the master re-reads the config and certificates and starts new
    /// workers; old workers finish their connections.
    pub async fn reload(&self) {
        let nginx = require("nginx");
        let prefix = format!("{}/", self.dir.path().display());
        let error_log = self.dir.path().join("error.log").display().to_string();
        let run = run_command(
            nginx.to_str().unwrap(),
            &[
                "-p",
                &prefix,
                "-c",
                self.conf.to_str().unwrap(),
                "-e",
                &error_log,
                "-s",
                "reload",
            ],
        )
        .await;
        assert_eq!(run.status, 0, "nginx -s reload: {run:?}");
    }

    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The main config file.
    pub fn conf(&self) -> &Path {
        &self.conf
    }
}

/// apache2 with mod_ssl, run in the foreground from a temp dir (ServerRoot), its vhosts in
/// files the test writes.
pub struct Apache {
    pub dir: TempDir,
    _child: ChildGuard,
    conf: PathBuf,
}

impl Apache {
    /// Writes `DIR/httpd.conf` (runtime files and log inside `dir`, mpm_event, authz_core,
    /// socache_shmcb and ssl loaded, `Listen 127.0.0.1:PORT` per entry of `ports`) followed
    /// by `body`, checks it with `apache2 -t`, starts apache2 and waits for every port.
    pub async fn start(dir: TempDir, body: &str, ports: &[u16]) -> Self {
        let apache = require("apache2");
        let root = dir.path();
        std::fs::create_dir_all(root.join("run")).unwrap();
        let modules = ["mpm_event", "authz_core", "socache_shmcb", "ssl"]
            .map(|module| {
                format!("LoadModule {module}_module /usr/lib/apache2/modules/mod_{module}.so\n")
            })
            .concat();
        let listens: String = ports
            .iter()
            .map(|port| format!("Listen 127.0.0.1:{port}\n"))
            .collect();
        let conf = root.join("httpd.conf");
        std::fs::write(
            &conf,
            format!(
                "ServerRoot {root}
DefaultRuntimeDir {root}/run
PidFile {root}/httpd.pid
Mutex file:{root}/run default
ErrorLog {root}/error.log
User www-data
Group www-data
ServerName localhost
{modules}{listens}{body}",
                root = root.display()
            ),
        )
        .unwrap();
        let conf_arg = conf.display().to_string();
        let test = run_command(apache.to_str().unwrap(), &["-t", "-f", &conf_arg]).await;
        assert_eq!(test.status, 0, "apache2 -t: {test:?}");
        let child = ChildGuard::spawn(
            &apache,
            &["-f", &conf_arg, "-DFOREGROUND"],
            &[],
            &root.join("stdout.log"),
        );
        for port in ports {
            let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            wait_for_port(address, Duration::from_secs(20)).await;
        }
        Self {
            dir,
            _child: child,
            conf,
        }
    }

    /// The main config file.
    pub fn conf(&self) -> &Path {
        &self.conf
    }
}

/// haproxy in master-worker mode with the master in the foreground, from a config the test
/// writes.
pub struct Haproxy {
    pub dir: TempDir,
    _child: ChildGuard,
    conf: PathBuf,
}

impl Haproxy {
    /// Writes `DIR/haproxy.cfg` as `text`, checks it with `haproxy -c`, starts haproxy and
    /// waits until every port of `ports` accepts connections on 127.0.0.1.
    pub async fn start(dir: TempDir, text: &str, ports: &[u16]) -> Self {
        let haproxy = require("haproxy");
        let conf = dir.path().join("haproxy.cfg");
        std::fs::write(&conf, text).unwrap();
        let conf_arg = conf.display().to_string();
        let test = run_command(haproxy.to_str().unwrap(), &["-c", "-q", "-f", &conf_arg]).await;
        assert_eq!(test.status, 0, "haproxy -c: {test:?}");
        let child = ChildGuard::spawn(
            &haproxy,
            &["-W", "-db", "-f", &conf_arg],
            &[],
            &dir.path().join("haproxy.log"),
        );
        for port in ports {
            let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            wait_for_port(address, Duration::from_secs(20)).await;
        }
        Self {
            dir,
            _child: child,
            conf,
        }
    }

    /// The config file.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The master's pid: the process the test started, which `-W` keeps across reloads.
    pub fn pid(&self) -> u32 {
        self._child.pid()
    }

    /// Reloads haproxy the master-worker way: SIGUSR2 to the master, which starts new
    /// workers with the config and certificates read again.
    pub fn reload(&self) {
        self._child.signal("USR2");
    }
}

/// Runs `check` (JSON) with `args` until its verdict on the first result is `verdict` three
/// times in a row: right after a reload, old nginx workers may still answer once or twice
/// with the old certificate.
pub async fn check_until(args: &[String], verdict: &str) -> Run {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut streak = 0;
    loop {
        let run = crate::util::certdrift(&crate::util::strs(args)).await;
        let seen = run.first_result()["verdict"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        streak = if seen == verdict { streak + 1 } else { 0 };
        if streak >= 3 {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for three `{verdict}` checks in a row; last: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// pebble, Let's Encrypt's test ACME server, with its own HTTPS certificate.
pub struct Pebble {
    _dir: TempDir,
    _child: ChildGuard,
    pub directory_url: String,
    pub https_ca: PathBuf,
    pub http_port: u16,
    management: SocketAddr,
}

impl Pebble {
    /// Starts pebble on free loopback ports. Validation always succeeds
    /// (`PEBBLE_VA_ALWAYS_VALID`): the test is about renewal, not about challenges.
    pub async fn start() -> Self {
        let pebble = require("pebble");
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("pebble HTTPS");
        let https = ca.issue(&LeafSpec::new(["127.0.0.1", "localhost"]));
        let cert = dir.path().join("https-cert.pem");
        let key = dir.path().join("https-key.pem");
        let https_ca = dir.path().join("https-ca.pem");
        std::fs::write(&cert, https.fullchain_pem()).unwrap();
        std::fs::write(&key, https.key_pem()).unwrap();
        std::fs::write(&https_ca, ca.root_pem()).unwrap();

        let (port, management_port, http_port, tls_port) =
            (free_port(), free_port(), free_port(), free_port());
        let config = dir.path().join("pebble.json");
        let text = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": cert,
                "privateKey": key,
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        std::fs::write(&config, text.to_string()).unwrap();
        let unused_dns = format!("127.0.0.1:{}", free_port());
        let child = ChildGuard::spawn(
            &pebble,
            &[
                "-config",
                config.to_str().unwrap(),
                "-dnsserver",
                &unused_dns,
            ],
            &[
                ("PEBBLE_VA_ALWAYS_VALID", "1"),
                ("PEBBLE_VA_NOSLEEP", "1"),
                ("PEBBLE_WFE_NONCEREJECT", "0"),
            ],
            &dir.path().join("pebble.log"),
        );
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_for_port(address, Duration::from_secs(20)).await;
        Self {
            _dir: dir,
            _child: child,
            directory_url: format!("https://127.0.0.1:{port}/dir"),
            https_ca,
            http_port,
            management: format!("127.0.0.1:{management_port}").parse().unwrap(),
        }
    }

    /// The root that issues pebble's certificates; it changes at every pebble start.
    pub async fn issuing_root_pem(&self) -> String {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&self.https_ca).unwrap()).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([ca])
            .no_proxy()
            .build()
            .unwrap();
        let url = format!("https://{}/roots/0", self.management);
        let response = client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {url}: {err}"));
        assert!(
            response.status().is_success(),
            "GET {url}: {}",
            response.status()
        );
        response.text().await.unwrap()
    }

    /// `certbot certonly` for `name` with the standalone authenticator on pebble's HTTP
    /// port, state under `state`: a new lineage `name`.
    pub async fn certonly(&self, state: &Path, name: &str) -> Run {
        let http_port = self.http_port.to_string();
        self.certbot(
            state,
            &[
                "certonly",
                "--server",
                &self.directory_url,
                "--agree-tos",
                "--register-unsafely-without-email",
                "--standalone",
                "--http-01-address",
                "127.0.0.1",
                "--http-01-port",
                &http_port,
                "-d",
                name,
            ],
        )
        .await
    }

    /// Runs certbot with its state under `state`, trusting pebble's HTTPS certificate.
    pub async fn certbot(&self, state: &Path, args: &[&str]) -> Run {
        let certbot = require("certbot");
        let config_dir = state.join("le").display().to_string();
        let work_dir = state.join("work").display().to_string();
        let logs_dir = state.join("logs").display().to_string();
        let mut all = vec![
            "--non-interactive",
            "--config-dir",
            &config_dir,
            "--work-dir",
            &work_dir,
            "--logs-dir",
            &logs_dir,
        ];
        all.extend_from_slice(args);
        let ca_bundle = self.https_ca.display().to_string();
        let child = tokio::process::Command::new(certbot)
            .args(&all)
            .env("REQUESTS_CA_BUNDLE", &ca_bundle)
            .env_remove("CURL_CA_BUNDLE")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(120), child)
            .await
            .expect("certbot finishes within two minutes")
            .expect("certbot runs");
        Run {
            status: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}
