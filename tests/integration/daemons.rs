//! Real mail, directory, database, FTP and XMPP servers from Debian packages, each run by
//! hand on loopback from a temp dir, in the foreground, as a child process the test owns
//! (see ../shared/TESTBED.md for the recipes).
//!
//! Every server gets its certificate and key as paths (a certbot `live/` lineage in the
//! tests) and keeps what it loaded until [`reload`](Postfix::reload)ed, the way each one is
//! reloaded in production: a signal, its control command, an SQL statement or an LDAP
//! modify. vsftpd has no such way (it loads the certificate once, at start), so its reload is
//! a restart on the same port.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::util::{ChildGuard, free_port, require, run_command};

/// The unprivileged account the servers that refuse root (PostgreSQL) run as, and that must
/// then be able to read the certificate files.
pub const UNPRIVILEGED: (&str, &str) = ("nobody", "nogroup");

/// The certificate (with its chain) and key files a server loads.
#[derive(Debug, Clone, Copy)]
pub struct TlsFiles<'a> {
    /// The PEM certificate chain, leaf first.
    pub cert: &'a Path,
    /// The PEM private key.
    pub key: &'a Path,
}

/// How long a server may take to listen after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A temp dir other users may enter: the servers' worker processes run as their own users.
fn shared_dir() -> TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("the temp dir's mode can be set");
    dir
}

/// `path` as a `&str`; temp paths are always UTF-8.
fn text(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// Waits until `address` accepts connections; fails early with the server's log when the
/// process exits, and with the log after [`START_TIMEOUT`].
async fn await_listener(name: &str, child: &mut ChildGuard, address: SocketAddr, log: &Path) {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            return;
        }
        let exited = !child.is_running();
        if exited || tokio::time::Instant::now() >= deadline {
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            let why = if exited { "exited" } else { "is not listening" };
            panic!(
                "{name} {why} on {address} after start; its log ({}):\n{log_text}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `program ARGS` and fails the test, with its output, unless it exits 0.
async fn run_ok(program: &Path, args: &[&str]) {
    let run = run_command(text(program), args).await;
    assert_eq!(
        run.status,
        0,
        "{} {args:?} failed: {run:?}",
        program.display()
    );
}

/// `127.0.0.1:port`.
fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Postfix's smtpd on a submission-style port (STARTTLS required), choosing its certificate
/// by SNI through `tls_server_sni_maps`, with a fallback certificate for other names.
pub struct Postfix {
    dir: TempDir,
    child: ChildGuard,
    /// The submission-style listener.
    pub port: u16,
}

impl Postfix {
    /// Starts postfix's master on a free port. `sni_name` gets `cert`/`key` from the SNI map;
    /// any other name (or none) gets `fallback_cert`/`fallback_key`.
    pub async fn start(
        sni_name: &str,
        cert: &Path,
        key: &Path,
        fallback_cert: &Path,
        fallback_key: &Path,
    ) -> Self {
        let tls = TlsFiles { cert, key };
        let fallback = TlsFiles {
            cert: fallback_cert,
            key: fallback_key,
        };
        Self::launch(Some((sni_name, tls, fallback))).await
    }

    /// Starts postfix with TLS off: its EHLO reply offers no STARTTLS.
    pub async fn start_without_tls() -> Self {
        Self::launch(None).await
    }

    async fn launch(sni: Option<(&str, TlsFiles<'_>, TlsFiles<'_>)>) -> Self {
        let master = require("master");
        let dir = shared_dir();
        let root = dir.path();
        let conf = root.join("conf");
        let data = root.join("data");
        for sub in [&conf, &data, &root.join("queue")] {
            std::fs::create_dir_all(sub).unwrap();
        }
        // master takes a lock in data_directory as the mail owner.
        run_ok(&require("chown"), &["postfix", text(&data)]).await;

        let port = free_port();
        let main_cf = conf.join("main.cf");
        std::fs::write(
            &main_cf,
            format!(
                "compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = /dev/stdout
inet_interfaces = loopback-only
inet_protocols = ipv4
smtpd_peername_lookup = no
myhostname = mail.certdrift.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
notify_classes =
{tls}",
                root = root.display(),
                tls = match sni {
                    Some((_, _, fallback)) => format!(
                        "smtpd_tls_security_level = may\n\
                         smtpd_tls_chain_files = {}, {}\n\
                         tls_server_sni_maps = hash:{}/conf/sni\n",
                        fallback.key.display(),
                        fallback.cert.display(),
                        root.display()
                    ),
                    None => "smtpd_tls_security_level = none\n".to_owned(),
                },
            ),
        )
        .unwrap();
        let required = if sni.is_some() {
            " -o smtpd_tls_security_level=encrypt"
        } else {
            ""
        };
        std::fs::write(
            conf.join("master.cf"),
            format!(
                "127.0.0.1:{port} inet n - n - - smtpd{required}
tlsmgr unix - - n 1000? 1 tlsmgr
postlog unix-dgram n - n - 1 postlogd
"
            ),
        )
        .unwrap();
        // An SNI map names files, but `postmap -F` stores their contents: the map is rebuilt
        // at each reload, as a deploy hook must do.
        if let Some((name, tls, _)) = sni {
            std::fs::write(
                conf.join("sni"),
                format!("{name} {} {}\n", tls.key.display(), tls.cert.display()),
            )
            .unwrap();
            build_sni_map(&conf).await;
        }
        // master ignores a main.cf younger than about two seconds.
        run_ok(&require("touch"), &["-d", "-10 sec", text(&main_cf)]).await;
        // `postfix check` creates the queue's subdirectories with their owners and modes.
        run_ok(&require("postfix"), &["-c", text(&conf), "check"]).await;

        let log = root.join("postfix.log");
        let mut child = ChildGuard::spawn(&master, &["-c", text(&conf), "-s"], &[], &log);
        await_listener("postfix", &mut child, loopback(port), &log).await;
        Self { dir, child, port }
    }

    /// The config directory (main.cf, master.cf, the SNI map's source `sni`).
    pub fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    /// Rebuilds the SNI map from the certificate files, then `kill -HUP` the master: new
    /// smtpd processes read the new map and fallback files.
    pub async fn reload(&self) {
        build_sni_map(&self.dir.path().join("conf")).await;
        self.child.signal("HUP");
    }
}

/// `postmap -F` on `conf/sni`: stores the contents of the files each line names.
async fn build_sni_map(conf: &Path) {
    let map = format!("hash:{}", conf.join("sni").display());
    run_ok(&require("postmap"), &["-F", "-c", text(conf), &map]).await;
}

/// Dovecot serving IMAP (STARTTLS), IMAPS (implicit TLS) and POP3 (STLS).
pub struct Dovecot {
    _dir: TempDir,
    _child: ChildGuard,
    conf: PathBuf,
    /// IMAP with STARTTLS.
    pub imap_port: u16,
    /// IMAP over implicit TLS.
    pub imaps_port: u16,
    /// POP3 with STLS.
    pub pop3_port: u16,
}

impl Dovecot {
    /// Starts dovecot on three free ports, serving `cert` and `key`.
    pub async fn start(cert: &Path, key: &Path) -> Self {
        Self::launch(Some(TlsFiles { cert, key })).await
    }

    /// Starts dovecot with `ssl = no`, on IMAP and POP3 only (`imaps_port` is 0).
    pub async fn start_without_tls() -> Self {
        Self::launch(None).await
    }

    async fn launch(tls: Option<TlsFiles<'_>>) -> Self {
        let dovecot = require("dovecot");
        let dir = shared_dir();
        let root = dir.path();
        let (imap_port, pop3_port) = (free_port(), free_port());
        let imaps_port = if tls.is_some() { free_port() } else { 0 };
        let conf = root.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                "protocols = imap pop3
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = /dev/stderr
{ssl}
auth_mechanisms = plain
passdb {{
  driver = static
  args = password=unused
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={root}/home
}}
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
",
                root = root.display(),
                ssl = match tls {
                    Some(tls) => format!(
                        "ssl = yes\nssl_cert = <{}\nssl_key = <{}",
                        tls.cert.display(),
                        tls.key.display()
                    ),
                    None => "ssl = no".to_owned(),
                },
            ),
        )
        .unwrap();
        let log = root.join("dovecot.log");
        let mut child = ChildGuard::spawn(&dovecot, &["-F", "-c", text(&conf)], &[], &log);
        for port in [imap_port, imaps_port, pop3_port] {
            if port == 0 {
                continue;
            }
            await_listener("dovecot", &mut child, loopback(port), &log).await;
        }
        Self {
            _dir: dir,
            _child: child,
            conf,
            imap_port,
            imaps_port,
            pop3_port,
        }
    }

    /// The config file.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// `dovecot reload`: the master re-reads its config, certificate files included, and
    /// starts new login processes.
    pub async fn reload(&self) {
        run_ok(&require("dovecot"), &["-c", text(&self.conf), "reload"]).await;
    }
}

/// PostgreSQL 15 in a fresh cluster, run as [`UNPRIVILEGED`] (it refuses root), with
/// `ssl = on`.
pub struct Postgres {
    _dir: TempDir,
    child: ChildGuard,
    /// The TCP port.
    pub port: u16,
}

/// Where Debian installs PostgreSQL 15's server programs.
const POSTGRES_BIN: &str = "/usr/lib/postgresql/15/bin";

impl Postgres {
    /// `initdb` in a temp dir, then `postgres` on a free port serving `cert` and `key`, which
    /// [`UNPRIVILEGED`] must be able to read (and own the key: PostgreSQL checks).
    pub async fn start(cert: &Path, key: &Path) -> Self {
        Self::launch(Some(TlsFiles { cert, key })).await
    }

    /// Starts PostgreSQL with `ssl = off`: it answers SSLRequest with `N`.
    pub async fn start_without_tls() -> Self {
        Self::launch(None).await
    }

    async fn launch(tls: Option<TlsFiles<'_>>) -> Self {
        let bin = Path::new(POSTGRES_BIN);
        assert!(
            bin.join("postgres").is_file(),
            "PostgreSQL 15 is not installed ({POSTGRES_BIN}/postgres is missing): run .ci/test, \
             which installs the Debian packages the tests need"
        );
        let dir = shared_dir();
        let root = dir.path();
        let (user, group) = UNPRIVILEGED;
        run_ok(&require("chown"), &[&format!("{user}:{group}"), text(root)]).await;
        let data = root.join("data");
        let as_user = ["--reuid", user, "--regid", group, "--clear-groups"];
        let initdb = bin.join("initdb").display().to_string();
        let mut args = as_user.to_vec();
        args.extend([
            initdb.as_str(),
            "-D",
            text(&data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "--no-instructions",
        ]);
        run_ok(&require("setpriv"), &args).await;

        let port = free_port();
        let postgres = bin.join("postgres").display().to_string();
        let port_text = port.to_string();
        let socket_setting = format!("unix_socket_directories={}", root.display());
        let mut args = as_user.to_vec();
        args.extend([
            postgres.as_str(),
            "-D",
            text(&data),
            "-p",
            &port_text,
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            &socket_setting,
            "-c",
            "fsync=off",
        ]);
        let ssl_settings = match tls {
            Some(tls) => vec![
                "ssl=on".to_owned(),
                format!("ssl_cert_file={}", tls.cert.display()),
                format!("ssl_key_file={}", tls.key.display()),
            ],
            None => vec!["ssl=off".to_owned()],
        };
        for setting in &ssl_settings {
            args.extend(["-c", setting.as_str()]);
        }
        let log = root.join("postgres.log");
        let mut child = ChildGuard::spawn(&require("setpriv"), &args, &[], &log);
        await_listener("postgres", &mut child, loopback(port), &log).await;
        Self {
            _dir: dir,
            child,
            port,
        }
    }

    /// `kill -HUP` the postmaster (what `pg_ctl reload` does): it re-reads the SSL files for
    /// new connections. setpriv execs postgres, so the child is the postmaster.
    pub fn reload(&self) {
        self.child.signal("HUP");
    }
}

/// MariaDB with TLS on, in a temp data dir, without grant tables (the test needs no
/// accounts: TLS starts before authentication).
pub struct Mariadb {
    _dir: TempDir,
    _child: ChildGuard,
    socket: PathBuf,
    /// The TCP port.
    pub port: u16,
}

impl Mariadb {
    /// Starts `mariadbd --no-defaults` on a free port serving `cert` and `key`.
    pub async fn start(cert: &Path, key: &Path) -> Self {
        Self::launch(Some(TlsFiles { cert, key })).await
    }

    /// Starts MariaDB without a certificate: TLS is off and its greeting says so.
    pub async fn start_without_tls() -> Self {
        Self::launch(None).await
    }

    async fn launch(tls: Option<TlsFiles<'_>>) -> Self {
        let mariadbd = require("mariadbd");
        let dir = shared_dir();
        let root = dir.path();
        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let port = free_port();
        let socket = root.join("mysqld.sock");
        let log = root.join("mariadb.log");
        let mut args = vec![
            "--no-defaults".to_owned(),
            format!("--datadir={}", data.display()),
            "--user=root".to_owned(),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--socket={}", socket.display()),
            format!("--pid-file={}", root.join("mariadb.pid").display()),
            format!("--log-error={}", log.display()),
            "--skip-grant-tables".to_owned(),
            "--skip-name-resolve".to_owned(),
            "--innodb-use-native-aio=0".to_owned(),
            "--innodb-buffer-pool-size=8M".to_owned(),
        ];
        if let Some(tls) = tls {
            args.push(format!("--ssl-cert={}", tls.cert.display()));
            args.push(format!("--ssl-key={}", tls.key.display()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = ChildGuard::spawn(&mariadbd, &args, &[], &log);
        await_listener("mariadbd", &mut child, loopback(port), &log).await;
        Self {
            _dir: dir,
            _child: child,
            socket,
            port,
        }
    }

    /// `FLUSH SSL` over the local socket: the server reloads its certificate and key for new
    /// connections.
    pub async fn reload(&self) {
        run_ok(
            &require("mariadb"),
            &[
                "--no-defaults",
                "--socket",
                text(&self.socket),
                "-u",
                "root",
                "-e",
                "FLUSH SSL",
            ],
        )
        .await;
    }
}

/// vsftpd in standalone mode with `AUTH TLS`.
pub struct Vsftpd {
    dir: TempDir,
    child: ChildGuard,
    conf: PathBuf,
    /// The control port.
    pub port: u16,
}

impl Vsftpd {
    /// Starts vsftpd on a free port serving `cert` and `key`.
    pub async fn start(cert: &Path, key: &Path) -> Self {
        Self::launch(Some(TlsFiles { cert, key })).await
    }

    /// Starts vsftpd with `ssl_enable=NO`: it answers AUTH TLS with an error reply.
    pub async fn start_without_tls() -> Self {
        Self::launch(None).await
    }

    async fn launch(tls: Option<TlsFiles<'_>>) -> Self {
        let dir = shared_dir();
        let root = dir.path();
        let empty = root.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let port = free_port();
        let conf = root.join("vsftpd.conf");
        // Debian's vsftpd defaults to one legacy cipher (DES-CBC3-SHA) that no current client
        // offers; `HIGH` is what a real deployment sets.
        std::fs::write(
            &conf,
            format!(
                "listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port={port}
background=NO
anonymous_enable=YES
local_enable=NO
write_enable=NO
pasv_enable=NO
{ssl}
secure_chroot_dir={empty}
xferlog_enable=NO
",
                ssl = match tls {
                    Some(tls) => format!(
                        "ssl_enable=YES\nrsa_cert_file={}\nrsa_private_key_file={}\nssl_ciphers=HIGH",
                        tls.cert.display(),
                        tls.key.display()
                    ),
                    None => "ssl_enable=NO".to_owned(),
                },
                empty = empty.display(),
            ),
        )
        .unwrap();
        let child = Self::spawn(root, &conf, port).await;
        Self {
            dir,
            child,
            conf,
            port,
        }
    }

    async fn spawn(root: &Path, conf: &Path, port: u16) -> ChildGuard {
        let log = root.join("vsftpd.log");
        let mut child = ChildGuard::spawn(&require("vsftpd"), &[text(conf)], &[], &log);
        await_listener("vsftpd", &mut child, loopback(port), &log).await;
        child
    }

    /// Restarts vsftpd on the same port: it loads its certificate once, in the listening
    /// process, and SIGHUP re-reads the config but not the certificate.
    pub async fn reload(&mut self) {
        self.child.signal("TERM");
        assert!(
            self.child.wait_exit(Duration::from_secs(10)).is_some(),
            "vsftpd did not stop on SIGTERM"
        );
        self.child = Self::spawn(self.dir.path(), &self.conf, self.port).await;
    }
}

/// OpenLDAP's slapd with a cn=config directory made from a slapd.conf, listening on
/// `ldap://` for StartTLS.
pub struct Slapd {
    dir: TempDir,
    _child: ChildGuard,
    tls: Option<(PathBuf, PathBuf)>,
    /// The `ldap://` port.
    pub port: u16,
}

/// The cn=config administrator's password, for the reload's modify.
const SLAPD_CONFIG_PASSWORD: &str = "certdrift-test";

impl Slapd {
    /// Starts slapd on a free port serving `cert` and `key`.
    pub async fn start(cert: &Path, key: &Path) -> Self {
        Self::launch(Some(TlsFiles { cert, key })).await
    }

    /// Starts slapd without TLS settings: it answers StartTLS with an LDAP error code.
    pub async fn start_without_tls() -> Self {
        Self::launch(None).await
    }

    async fn launch(tls: Option<TlsFiles<'_>>) -> Self {
        let dir = shared_dir();
        let root = dir.path();
        let config_dir = root.join("slapd.d");
        std::fs::create_dir_all(&config_dir).unwrap();
        let slapd_conf = root.join("slapd.conf");
        std::fs::write(
            &slapd_conf,
            format!(
                "include /etc/ldap/schema/core.schema
pidfile {root}/slapd.pid
argsfile {root}/slapd.args
{tls_lines}database config
rootdn \"cn=admin,cn=config\"
rootpw {SLAPD_CONFIG_PASSWORD}
",
                root = root.display(),
                tls_lines = match tls {
                    Some(tls) => format!(
                        "TLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                        tls.cert.display(),
                        tls.key.display()
                    ),
                    None => String::new(),
                },
            ),
        )
        .unwrap();
        run_ok(
            &require("slaptest"),
            &["-Q", "-f", text(&slapd_conf), "-F", text(&config_dir)],
        )
        .await;

        let port = free_port();
        let url = format!("ldap://127.0.0.1:{port}/");
        let log = root.join("slapd.log");
        // Any `-d` keeps slapd in the foreground; level 0 logs nothing extra.
        let mut child = ChildGuard::spawn(
            &require("slapd"),
            &["-F", text(&config_dir), "-h", &url, "-d", "0"],
            &[],
            &log,
        );
        await_listener("slapd", &mut child, loopback(port), &log).await;
        Self {
            dir,
            _child: child,
            tls: tls.map(|tls| (tls.cert.to_owned(), tls.key.to_owned())),
            port,
        }
    }

    /// Replaces `olcTLSCertificateFile` and `olcTLSCertificateKeyFile` in cn=config with the
    /// same paths: slapd rebuilds its TLS context from the files on any change to them. This
    /// is how a certbot deploy hook reloads slapd without a restart.
    pub async fn reload(&self) {
        let (cert, key) = self
            .tls
            .as_ref()
            .expect("reload is for a slapd started with TLS");
        let ldif = format!(
            "dn: cn=config
changetype: modify
replace: olcTLSCertificateFile
olcTLSCertificateFile: {}
-
replace: olcTLSCertificateKeyFile
olcTLSCertificateKeyFile: {}
",
            cert.display(),
            key.display()
        );
        let file = self.dir.path().join("reload.ldif");
        std::fs::write(&file, ldif).unwrap();
        let url = format!("ldap://127.0.0.1:{}", self.port);
        run_ok(
            &require("ldapmodify"),
            &[
                "-H",
                &url,
                "-x",
                "-D",
                "cn=admin,cn=config",
                "-w",
                SLAPD_CONFIG_PASSWORD,
                "-f",
                text(&file),
            ],
        )
        .await;
    }
}

/// Prosody with one virtual host, offering STARTTLS on client and server streams.
pub struct Prosody {
    _dir: TempDir,
    child: ChildGuard,
    /// Client-to-server streams.
    pub c2s_port: u16,
    /// Server-to-server streams.
    pub s2s_port: u16,
}

impl Prosody {
    /// Starts prosody on two free ports with virtual host `host` serving `cert` and `key`.
    pub async fn start(host: &str, cert: &Path, key: &Path) -> Self {
        Self::launch(host, Some(TlsFiles { cert, key })).await
    }

    /// Starts prosody with `mod_tls` off and no certificate for `host`: its stream features
    /// offer no STARTTLS. (With mod_tls on and no certificate it still offers STARTTLS, then
    /// fails the handshake.)
    pub async fn start_without_tls(host: &str) -> Self {
        Self::launch(host, None).await
    }

    async fn launch(host: &str, tls: Option<TlsFiles<'_>>) -> Self {
        let dir = shared_dir();
        let root = dir.path();
        std::fs::create_dir_all(root.join("data")).unwrap();
        let (c2s_port, s2s_port) = (free_port(), free_port());
        let conf = root.join("prosody.cfg.lua");
        // run_as_root keeps the test from having to hand the certificate files to the
        // prosody user; every other port (HTTP, components, direct TLS) is off.
        std::fs::write(
            &conf,
            format!(
                "pidfile = \"{root}/prosody.pid\"
data_path = \"{root}/data\"
run_as_root = true
daemonize = false
log = {{ info = \"{root}/prosody.log\" }}
interfaces = {{ \"127.0.0.1\" }}
c2s_ports = {{ {c2s_port} }}
s2s_ports = {{ {s2s_port} }}
c2s_direct_tls_ports = {{}}
s2s_direct_tls_ports = {{}}
http_ports = {{}}
https_ports = {{}}
component_ports = {{}}
modules_enabled = {{ \"saslauth\", \"disco\"{tls_module} }}
modules_disabled = {{ \"admin_shell\"{no_tls_module} }}
c2s_require_encryption = {encrypted}
s2s_require_encryption = {encrypted}
authentication = \"anonymous\"
VirtualHost \"{host}\"
{ssl}
",
                root = root.display(),
                encrypted = tls.is_some(),
                tls_module = if tls.is_some() { ", \"tls\"" } else { "" },
                no_tls_module = if tls.is_some() { "" } else { ", \"tls\"" },
                ssl = match tls {
                    Some(tls) => format!(
                        "  ssl = {{ certificate = \"{}\"; key = \"{}\" }}",
                        tls.cert.display(),
                        tls.key.display()
                    ),
                    None => String::new(),
                },
            ),
        )
        .unwrap();
        let log = root.join("prosody.out");
        let mut child = ChildGuard::spawn(
            &require("prosody"),
            &["--config", text(&conf), "-F"],
            &[],
            &log,
        );
        for port in [c2s_port, s2s_port] {
            await_listener("prosody", &mut child, loopback(port), &log).await;
        }
        Self {
            _dir: dir,
            child,
            c2s_port,
            s2s_port,
        }
    }

    /// `kill -HUP` (what `prosodyctl reload` sends): prosody re-reads its config and
    /// certificates.
    pub fn reload(&self) {
        self.child.signal("HUP");
    }
}
