//! Helpers shared by the integration tests: the `certdrift` binary, child processes that
//! stop when dropped, free loopback ports, polling, HTTP, and an in-process TLS site.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use certdrift::demo::ca::{IssuedCert, LeafSpec, TestCa};
use certdrift::demo::layout::CertbotLineage;
use certdrift::demo::server::LocalTlsServer;
use tempfile::TempDir;

/// What a finished `certdrift` run printed and returned.
#[derive(Debug)]
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!(
                "stdout is not JSON ({err}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// The first result of `check --format json`.
    pub fn first_result(&self) -> serde_json::Value {
        self.json()["results"][0].clone()
    }
}

/// The path of the binary under test.
pub fn certdrift_bin() -> &'static str {
    env!("CARGO_BIN_EXE_certdrift")
}

/// Runs `certdrift ARGS` to completion (at most a minute).
pub async fn certdrift(args: &[&str]) -> Run {
    run_command(certdrift_bin(), args).await
}

/// Writes `text` as `certdrift.toml` in `dir` and runs `check --format json` on it.
pub async fn check_config(dir: &Path, text: &str) -> Run {
    let config = dir.join("certdrift.toml");
    std::fs::write(&config, text).unwrap();
    certdrift(&[
        "check",
        "--format",
        "json",
        "--config",
        config.to_str().unwrap(),
    ])
    .await
}

/// Runs `program ARGS` to completion (at most a minute), capturing its output.
pub async fn run_command(program: &str, args: &[&str]) -> Run {
    let child = tokio::process::Command::new(program)
        .args(args)
        .env_remove("CERTDRIFT_CONFIG")
        .env("CERTDRIFT_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish within a minute"))
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
    Run {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `certdrift ARGS` with `/etc/hosts` replaced by `hosts` for that process only: a
/// mount namespace of its own bind-mounts a temp file over it, so names resolve to the
/// loopback addresses a test chooses and nothing on the host changes.
pub async fn certdrift_with_hosts(hosts: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("hosts");
    std::fs::write(&file, hosts).expect("the hosts file is written");
    let file = file.display().to_string();
    let mut all = vec![
        "-m",
        "sh",
        "-c",
        "mount --bind \"$0\" /etc/hosts && exec \"$@\"",
        &file,
        certdrift_bin(),
    ];
    all.extend_from_slice(args);
    run_command("unshare", &all).await
}

/// The path of a program the tests need, or a failure saying how to get it.
pub fn require(program: &str) -> PathBuf {
    let dirs = std::env::var("PATH").unwrap_or_default();
    let extra = ["/usr/sbin", "/sbin", "/usr/lib/postfix/sbin"];
    let found = dirs
        .split(':')
        .chain(extra)
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file());
    found.unwrap_or_else(|| {
        panic!("`{program}` is not installed: run .ci/test, which installs the Debian packages the tests need")
    })
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding port 0 on loopback works")
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    name: String,
}

impl ChildGuard {
    /// Starts `program ARGS` with stdout and stderr appended to `log`.
    pub fn spawn(program: &Path, args: &[&str], envs: &[(&str, &str)], log: &Path) -> Self {
        let out = std::fs::File::create(log).expect("the log file can be created");
        let err = out.try_clone().expect("a file handle clones");
        let child = std::process::Command::new(program)
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Self {
            child,
            name: program.display().to_string(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (a `kill` name such as `TERM` or `HUP`).
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(
            status.success(),
            "kill -{signal} {} ({}) failed",
            self.child.id(),
            self.name
        );
    }

    /// Waits up to `timeout` for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            if self.wait_exit(Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout` saying
/// what was awaited and the last value seen.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if tokio::time::Instant::now() >= deadline {
            panic!("gave up waiting for {what} after {timeout:?}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GET `url`; the status and body, or the error as text.
pub async fn http_get(url: &str) -> Result<(u16, String), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .map_err(|err| err.to_string())?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|err| err.to_string())?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|err| err.to_string())?;
    Ok((status, body))
}

/// Waits until something accepts TCP connections on `address`.
pub async fn wait_for_port(address: SocketAddr, timeout: Duration) {
    wait_for(
        &format!("a listener on {address}"),
        timeout,
        || async move {
            tokio::net::TcpStream::connect(address)
                .await
                .map(drop)
                .map_err(|err| err.to_string())
        },
    )
    .await;
}

/// A site served by an in-process TLS server from a certbot-style lineage: the stand-in
/// for nginx in tests that do not need the real one.
pub struct LocalSite {
    pub dir: TempDir,
    pub ca: TestCa,
    pub name: String,
    pub lineage: CertbotLineage,
    pub generations: Vec<IssuedCert>,
    pub server: LocalTlsServer,
    pub ca_file: PathBuf,
}

impl LocalSite {
    /// Generation 1 for `name` on disk, live/ pointing at it, and served on 127.0.0.1.
    pub async fn start(name: &str) -> Self {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap(), LeafSpec::new([name])).await
    }

    /// Like [`LocalSite::start`], on `bind`, with generation 1 made from `spec`.
    pub async fn start_on(name: &str, bind: SocketAddr, spec: LeafSpec) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let ca = TestCa::new(&format!("{name} test CA"));
        let lineage = CertbotLineage::new(dir.path().join("letsencrypt"), name);
        let first = ca.issue(&spec);
        lineage
            .write_generation(1, &first)
            .expect("generation 1 is written");
        lineage
            .point_live_at(1)
            .expect("live/ points at generation 1");
        let server = LocalTlsServer::start(bind, &first.fullchain_pem(), first.key_pem())
            .await
            .expect("the local TLS server starts");
        let ca_file = dir.path().join("root.pem");
        std::fs::write(&ca_file, ca.root_pem()).expect("the CA file is written");
        Self {
            dir,
            ca,
            name: name.to_owned(),
            lineage,
            generations: vec![first],
            server,
            ca_file,
        }
    }

    /// Issues and writes the next generation, and points live/ at it, without a reload.
    /// Returns the new generation's number.
    pub fn renew(&mut self) -> usize {
        let previous = self
            .generations
            .last()
            .expect("generation 1 exists")
            .summary();
        let not_before = previous.not_before + time::Duration::minutes(30);
        let spec = LeafSpec::new([self.name.as_str()])
            .valid_between(not_before, not_before + time::Duration::days(90));
        self.renew_with(spec)
    }

    /// Like [`LocalSite::renew`], with the new generation made from `spec`.
    pub fn renew_with(&mut self, spec: LeafSpec) -> usize {
        let next = self.ca.issue(&spec);
        let number = self.generations.len() + 1;
        self.lineage
            .write_generation(number as u32, &next)
            .expect("the generation is written");
        self.lineage
            .point_live_at(number as u32)
            .expect("live/ is re-pointed");
        self.generations.push(next);
        number
    }

    /// Makes the server serve generation `number` (1-based), as a reload that read it would.
    pub fn serve_generation(&self, number: usize) {
        let generation = &self.generations[number - 1];
        self.server
            .reload(&generation.fullchain_pem(), generation.key_pem())
            .expect("the generation loads");
    }

    /// The serial of generation `number` (1-based).
    pub fn serial(&self, number: usize) -> String {
        self.generations[number - 1].summary().serial
    }

    /// `live/NAME/fullchain.pem`.
    pub fn fullchain(&self) -> PathBuf {
        self.lineage.live_path("fullchain")
    }

    /// The server's address.
    pub fn address(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// `check` arguments for this site as an ad-hoc site, trusting the test CA, with JSON
    /// output.
    pub fn check_args(&self) -> Vec<String> {
        check_json_args(self.address(), &self.name, &self.fullchain(), &self.ca_file)
    }

    /// A `[[site]]` table for this site named `site`.
    pub fn site_table(&self, site: &str) -> String {
        let address = self.address();
        format!(
            "[[site]]\nname = \"{site}\"\nhost = \"{}\"\nport = {}\nsni = \"{}\"\ncert = \"{}\"\nca_file = \"{}\"\n\n",
            address.ip(),
            address.port(),
            self.name,
            self.fullchain().display(),
            self.ca_file.display()
        )
    }

    /// Runs `check` on this site.
    pub async fn check(&self) -> Run {
        let args = self.check_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        certdrift(&args).await
    }
}

/// `check --format json` arguments for one ad-hoc site at `address` with `sni`, reading
/// `cert` and trusting `ca_file`.
pub fn check_json_args(address: SocketAddr, sni: &str, cert: &Path, ca_file: &Path) -> Vec<String> {
    [
        "check",
        "--format",
        "json",
        "--host",
        &address.ip().to_string(),
        "--port",
        &address.port().to_string(),
        "--sni",
        sni,
        "--cert",
        &cert.display().to_string(),
        "--ca-file",
        &ca_file.display().to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Arguments as `&str`s.
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Starts `certdrift serve --config CONFIG LISTEN_FLAG 127.0.0.1:FREE EXTRA...` with the log
/// at info level (or as `envs` say; they are set after it), waits for `/healthz`, and
/// returns the child and its base URL.
pub async fn spawn_serve(
    config: &Path,
    log: &Path,
    listen_flag: &str,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> (ChildGuard, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "serve",
        "--config",
        config.to_str().expect("a UTF-8 path"),
        listen_flag,
        &listen,
    ];
    args.extend_from_slice(extra);
    let mut all_envs = vec![("CERTDRIFT_LOG", "info")];
    all_envs.extend_from_slice(envs);
    let child = ChildGuard::spawn(Path::new(certdrift_bin()), &args, &all_envs, log);
    let base = format!("http://{listen}");
    let health = format!("{base}/healthz");
    wait_for("serve's /healthz", Duration::from_secs(20), || {
        let health = health.clone();
        async move {
            match http_get(&health).await {
                Ok((200, body)) if body == "ok\n" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    (child, base)
}

/// A loopback peer that accepts up to 16 connections and says nothing on any, holding each
/// for a minute: a probe of it waits out its handshake timeout.
pub async fn tarpit() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback binds");
    let address = listener.local_addr().expect("a bound address");
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(socket);
            });
        }
    });
    address
}
