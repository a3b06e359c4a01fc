//! Every protocol against the real server that speaks it (see `daemons`), and real nginx with
//! two certificates for one name.
//!
//! Each test follows one certbot lineage through a renewal: the server starts on generation
//! 1 (`in_sync`), generation 2 is written and `live/` re-pointed without a reload
//! (`reload_needed`, the server still on 1), then the server is reloaded its own way
//! (`in_sync` on 2). Serials are compared with the generations the test issued.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certdrift::demo::ca::{IssuedCert, KeyAlgorithm, LeafSpec, TestCa};
use certdrift::demo::layout::CertbotLineage;
use serde_json::Value;
use tempfile::TempDir;

use crate::daemons::{Dovecot, Mariadb, Postfix, Postgres, Prosody, Slapd, UNPRIVILEGED, Vsftpd};
use crate::servers::Nginx;
use crate::util::{Run, certdrift, run_command};

/// A certbot lineage the test renews, with the CA that issues it.
struct Lineage {
    dir: TempDir,
    ca: TestCa,
    name: String,
    algorithm: KeyAlgorithm,
    lineage: CertbotLineage,
    generations: Vec<IssuedCert>,
    ca_file: PathBuf,
    owner: Option<(&'static str, &'static str)>,
}

impl Lineage {
    /// Generation 1 for `name`, with a key of `algorithm`, and `live/` pointing at it.
    async fn new(name: &str, algorithm: KeyAlgorithm) -> Self {
        let ca = TestCa::new(&format!("{name} test CA"));
        Self::issued_by(ca, name, algorithm, None).await
    }

    /// Like [`Lineage::new`], the whole tree owned by `owner` (user, group) after each
    /// write, for a server that reads its files as that user.
    async fn owned_by(
        name: &str,
        algorithm: KeyAlgorithm,
        owner: (&'static str, &'static str),
    ) -> Self {
        let ca = TestCa::new(&format!("{name} test CA"));
        Self::issued_by(ca, name, algorithm, Some(owner)).await
    }

    /// Like [`Lineage::new`], issued by `ca`.
    async fn issued_by(
        ca: TestCa,
        name: &str,
        algorithm: KeyAlgorithm,
        owner: Option<(&'static str, &'static str)>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        if owner.is_some() {
            // The owner must get through the temp dir to reach `letsencrypt/`.
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let ca_file = dir.path().join("root.pem");
        std::fs::write(&ca_file, ca.root_pem()).unwrap();
        let mut lineage = Self {
            lineage: CertbotLineage::new(dir.path().join("letsencrypt"), name),
            dir,
            ca,
            name: name.to_owned(),
            algorithm,
            generations: Vec::new(),
            ca_file,
            owner,
        };
        lineage.renew().await;
        lineage
    }

    /// Issues the next generation, writes it and points `live/` at it; no server is told.
    async fn renew(&mut self) {
        let mut spec = LeafSpec::new([self.name.as_str()]).key_algorithm(self.algorithm);
        if let Some(previous) = self.generations.last() {
            let not_before = previous.summary().not_before + time::Duration::minutes(30);
            spec = spec.valid_between(not_before, not_before + time::Duration::days(90));
        }
        let issued = self.ca.issue(&spec);
        let number = self.generations.len() as u32 + 1;
        self.lineage.write_generation(number, &issued).unwrap();
        self.lineage.point_live_at(number).unwrap();
        self.generations.push(issued);
        if let Some((user, group)) = self.owner {
            let root = self.dir.path().join("letsencrypt");
            let run = run_command(
                "chown",
                &["-R", &format!("{user}:{group}"), root.to_str().unwrap()],
            )
            .await;
            assert_eq!(run.status, 0, "chown: {run:?}");
        }
    }

    /// The serial of generation `number` (1-based).
    fn serial(&self, number: usize) -> String {
        self.generations[number - 1].summary().serial
    }

    /// `live/NAME/fullchain.pem`.
    fn fullchain(&self) -> PathBuf {
        self.lineage.live_path("fullchain")
    }

    /// `live/NAME/privkey.pem`.
    fn privkey(&self) -> PathBuf {
        self.lineage.live_path("privkey")
    }

    /// A `[[site]]` table: `site` on 127.0.0.1:`port` over `protocol`, with this lineage's
    /// name as SNI, its fullchain as the disk side, and its CA trusted.
    fn site_table(&self, site: &str, port: u16, protocol: &str) -> String {
        format!(
            "[[site]]\nname = \"{site}\"\nhost = \"127.0.0.1\"\nport = {port}\nsni = \"{}\"\n\
             protocol = \"{protocol}\"\ncert = \"{}\"\nca_file = \"{}\"\n\n",
            self.name,
            self.fullchain().display(),
            self.ca_file.display()
        )
    }

    /// Writes a config holding `tables` and returns its path.
    fn config(&self, tables: &[String]) -> PathBuf {
        let path = self.dir.path().join("certdrift.toml");
        std::fs::write(&path, format!("timeout = \"10s\"\n\n{}", tables.concat())).unwrap();
        path
    }
}

/// `certdrift check --config CONFIG --format json`.
async fn check(config: &Path) -> Run {
    certdrift(&[
        "check",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "json",
    ])
    .await
}

/// The results of `run`, one per site and address, in config order.
fn results(run: &Run) -> Vec<Value> {
    run.json()["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// What a whole `check` run should say: `verdict` on every result of the sites in
/// `protocols` (site name, protocol), generation `served` presented, generation `disk` read.
struct Expect<'a> {
    protocols: &'a [(&'a str, &'a str)],
    verdict: &'a str,
    served: usize,
    disk: usize,
}

impl Expect<'_> {
    /// Where `run` differs from what is expected, or `None`.
    fn mismatch(&self, run: &Run, lineage: &Lineage) -> Option<String> {
        let results = results(run);
        if results.len() != self.protocols.len() {
            return Some(format!(
                "{} results instead of {}",
                results.len(),
                self.protocols.len()
            ));
        }
        let want_status = if self.verdict == "in_sync" { 0 } else { 1 };
        if run.status != want_status {
            return Some(format!("exit status {}", run.status));
        }
        for (result, (site, protocol)) in results.iter().zip(self.protocols) {
            let seen = [
                ("site", result["site"].clone(), Value::from(*site)),
                (
                    "protocol",
                    result["protocol"].clone(),
                    Value::from(*protocol),
                ),
                (
                    "verdict",
                    result["verdict"].clone(),
                    Value::from(self.verdict),
                ),
                (
                    "served serial",
                    result["served"]["serial"].clone(),
                    Value::from(lineage.serial(self.served)),
                ),
                (
                    "disk serial",
                    result["disk"]["serial"].clone(),
                    Value::from(lineage.serial(self.disk)),
                ),
                (
                    "verification",
                    result["served"]["verification"]["result"].clone(),
                    Value::from("trusted"),
                ),
                (
                    "findings",
                    result["findings"].clone(),
                    Value::Array(Vec::new()),
                ),
            ];
            for (what, got, want) in seen {
                if got != want {
                    return Some(format!("{site}: {what} is {got} instead of {want}"));
                }
            }
        }
        None
    }

    /// Runs `check` once and asserts everything.
    async fn once(&self, config: &Path, lineage: &Lineage) {
        let run = check(config).await;
        if let Some(mismatch) = self.mismatch(&run, lineage) {
            panic!("{mismatch}\nrun: {run:?}");
        }
    }

    /// Runs `check` until everything holds twice in a row, at most 40 times: right after a
    /// reload some servers still answer a connection or two from a process that loaded the
    /// old certificate.
    async fn eventually(&self, config: &Path, lineage: &Lineage) {
        let mut streak = 0;
        let mut last = String::new();
        for _ in 0..40 {
            let run = check(config).await;
            match self.mismatch(&run, lineage) {
                None => streak += 1,
                Some(mismatch) => {
                    streak = 0;
                    last = format!("{mismatch}\nrun: {run:?}");
                }
            }
            if streak == 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        panic!("never twice in a row `{}`; last: {last}", self.verdict);
    }
}

/// The first two steps every test shares: in sync on generation 1, then renewed on disk
/// without a reload.
async fn in_sync_then_renewed(config: &Path, lineage: &mut Lineage, protocols: &[(&str, &str)]) {
    let in_sync = Expect {
        protocols,
        verdict: "in_sync",
        served: 1,
        disk: 1,
    };
    in_sync.eventually(config, lineage).await;
    lineage.renew().await;
    let stale = Expect {
        protocols,
        verdict: "reload_needed",
        served: 1,
        disk: 2,
    };
    stale.once(config, lineage).await;
}

/// The last step: after the server's reload, in sync on generation 2.
async fn in_sync_after_reload(config: &Path, lineage: &Lineage, protocols: &[(&str, &str)]) {
    let reloaded = Expect {
        protocols,
        verdict: "in_sync",
        served: 2,
        disk: 2,
    };
    reloaded.eventually(config, lineage).await;
}

#[tokio::test]
async fn postfix_smtp_starttls_serves_the_sni_certificate_until_reloaded() {
    let mut lineage = Lineage::new("smtp.certdrift.test", KeyAlgorithm::EcdsaP256).await;
    // The certificate for every other name: the SNI map, not luck, picks the lineage's.
    let fallback = lineage
        .ca
        .issue(&LeafSpec::new(["fallback.certdrift.test"]));
    let fallback_cert = lineage.dir.path().join("fallback.pem");
    let fallback_key = lineage.dir.path().join("fallback-key.pem");
    std::fs::write(&fallback_cert, fallback.fullchain_pem()).unwrap();
    std::fs::write(&fallback_key, fallback.key_pem()).unwrap();
    let postfix = Postfix::start(
        &lineage.name,
        &lineage.fullchain(),
        &lineage.privkey(),
        &fallback_cert,
        &fallback_key,
    )
    .await;

    let protocols = [("postfix", "smtp")];
    let config = lineage.config(&[lineage.site_table("postfix", postfix.port, "smtp")]);
    in_sync_then_renewed(&config, &mut lineage, &protocols).await;

    // Another SNI name gets the fallback certificate from the same listener.
    let other = lineage.dir.path().join("other.toml");
    std::fs::write(
        &other,
        format!(
            "[[site]]\nname = \"fallback\"\nhost = \"127.0.0.1\"\nport = {}\n\
             sni = \"fallback.certdrift.test\"\nprotocol = \"smtp\"\ncert = \"{}\"\nca_file = \"{}\"\n",
            postfix.port,
            fallback_cert.display(),
            lineage.ca_file.display()
        ),
    )
    .unwrap();
    let run = check(&other).await;
    let result = &results(&run)[0];
    assert_eq!(result["verdict"], "in_sync", "{run:?}");
    assert_eq!(result["served"]["serial"], fallback.summary().serial);

    postfix.reload().await;
    in_sync_after_reload(&config, &lineage, &protocols).await;
}

#[tokio::test]
async fn dovecot_imap_imaps_and_pop3_serve_the_old_certificate_until_reloaded() {
    let mut lineage = Lineage::new("mail.certdrift.test", KeyAlgorithm::EcdsaP256).await;
    let dovecot = Dovecot::start(&lineage.fullchain(), &lineage.privkey()).await;
    let protocols = [("imap", "imap"), ("imaps", "tls"), ("pop3", "pop3")];
    let config = lineage.config(&[
        lineage.site_table("imap", dovecot.imap_port, "imap"),
        lineage.site_table("imaps", dovecot.imaps_port, "tls"),
        lineage.site_table("pop3", dovecot.pop3_port, "pop3"),
    ]);
    in_sync_then_renewed(&config, &mut lineage, &protocols).await;
    dovecot.reload().await;
    in_sync_after_reload(&config, &lineage, &protocols).await;
}

#[tokio::test]
async fn postgres_ssl_request_serves_the_old_certificate_until_reloaded() {
    let mut lineage =
        Lineage::owned_by("db.certdrift.test", KeyAlgorithm::EcdsaP256, UNPRIVILEGED).await;
    let postgres = Postgres::start(&lineage.fullchain(), &lineage.privkey()).await;
    let protocols = [("postgres", "postgres")];
    let config = lineage.config(&[lineage.site_table("postgres", postgres.port, "postgres")]);
    in_sync_then_renewed(&config, &mut lineage, &protocols).await;
    postgres.reload();
    in_sync_after_reload(&config, &lineage, &protocols).await;
}

#[tokio::test]
async fn mariadb_ssl_request_serves_the_old_certificate_until_flush_ssl() {
    let mut lineage = Lineage::new("sql.certdrift.test", KeyAlgorithm::EcdsaP256).await;
    let mariadb = Mariadb::start(&lineage.fullchain(), &lineage.privkey()).await;
    let protocols = [("mariadb", "mysql")];
    let config = lineage.config(&[lineage.site_table("mariadb", mariadb.port, "mysql")]);
    in_sync_then_renewed(&config, &mut lineage, &protocols).await;
    mariadb.reload().await;
    in_sync_after_reload(&config, &lineage, &protocols).await;
}

#[tokio::test]
async fn vsftpd_auth_tls_serves_the_old_certificate_until_restarted() {
    let mut lineage = Lineage::new("ftp.certdrift.test", KeyAlgorithm::EcdsaP256).await;
    let mut vsftpd = Vsftpd::start(&lineage.fullchain(), &lineage.privkey()).await;
    let protocols = [("vsftpd", "ftp")];
    let config = lineage.config(&[lineage.site_table("vsftpd", vsftpd.port, "ftp")]);
    in_sync_then_renewed(&config, &mut lineage, &protocols).await;
    vsftpd.reload().await;
    in_sync_after_reload(&config, &lineage, &protocols).await;
}

#[tokio::test]
async fn slapd_ldap_starttls_serves_the_old_certificate_until_its_tls_config_changes() {
    let mut lineage = Lineage::new("ldap.certdrift.test", KeyAlgorithm::EcdsaP256).await;
    let slapd = Slapd::start(&lineage.fullchain(), &lineage.privkey()).await;
    let protocols = [("slapd", "ldap")];
    let config = lineage.config(&[lineage.site_table("slapd", slapd.port, "ldap")]);
    in_sync_then_renewed(&config, &mut lineage, &protocols).await;
    slapd.reload().await;
    in_sync_after_reload(&config, &lineage, &protocols).await;
}

#[tokio::test]
async fn prosody_client_and_server_streams_serve_the_old_certificate_until_reloaded() {
    let mut lineage = Lineage::new("xmpp.certdrift.test", KeyAlgorithm::EcdsaP256).await;
    let prosody = Prosody::start(&lineage.name, &lineage.fullchain(), &lineage.privkey()).await;
    let protocols = [("c2s", "xmpp"), ("s2s", "xmpp-server")];
    let config = lineage.config(&[
        lineage.site_table("c2s", prosody.c2s_port, "xmpp"),
        lineage.site_table("s2s", prosody.s2s_port, "xmpp-server"),
    ]);
    in_sync_then_renewed(&config, &mut lineage, &protocols).await;
    prosody.reload();
    in_sync_after_reload(&config, &lineage, &protocols).await;
}

#[tokio::test]
async fn nginx_dual_certificates_are_each_compared_with_their_own_file() {
    const NAME: &str = "dual.certdrift.test";
    // Two lineages (certbot makes one per key type), one CA: the site has one `ca_file`.
    let ecdsa = Lineage::new(NAME, KeyAlgorithm::EcdsaP256).await;
    let mut rsa = Lineage::issued_by(ecdsa.ca.clone(), NAME, KeyAlgorithm::Rsa2048, None).await;
    let nginx = Nginx::start_with_certs(
        &["127.0.0.1"],
        NAME,
        &[
            (&ecdsa.fullchain(), &ecdsa.privkey()),
            (&rsa.fullchain(), &rsa.privkey()),
        ],
    )
    .await;
    let config = ecdsa.dir.path().join("dual.toml");
    std::fs::write(
        &config,
        format!(
            "[[site]]\nname = \"dual\"\nhost = \"127.0.0.1\"\nport = {}\nsni = \"{NAME}\"\n\
             key_types = [\"ecdsa\", \"rsa\"]\ncert = {{ ecdsa = \"{}\", rsa = \"{}\" }}\n\
             ca_file = \"{}\"\n",
            nginx.port,
            ecdsa.fullchain().display(),
            rsa.fullchain().display(),
            ecdsa.ca_file.display()
        ),
    )
    .unwrap();

    let rows = |run: &Run| -> Vec<(String, String, String, String)> {
        results(run)
            .iter()
            .map(|row| {
                let text = |value: &Value| value.as_str().unwrap_or("?").to_owned();
                (
                    text(&row["key_type"]),
                    text(&row["verdict"]),
                    text(&row["served"]["serial"]),
                    text(&row["disk"]["serial"]),
                )
            })
            .collect()
    };
    let run = check(&config).await;
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(
        rows(&run),
        [
            (
                "ecdsa".into(),
                "in_sync".into(),
                ecdsa.serial(1),
                ecdsa.serial(1)
            ),
            ("rsa".into(), "in_sync".into(), rsa.serial(1), rsa.serial(1)),
        ]
    );

    // Only the RSA certificate renewed: only the RSA row needs the reload.
    rsa.renew().await;
    let run = check(&config).await;
    assert_eq!(run.status, 1, "{run:?}");
    assert_eq!(
        rows(&run),
        [
            (
                "ecdsa".into(),
                "in_sync".into(),
                ecdsa.serial(1),
                ecdsa.serial(1)
            ),
            (
                "rsa".into(),
                "reload_needed".into(),
                rsa.serial(1),
                rsa.serial(2)
            ),
        ]
    );

    nginx.reload().await;
    let want = [
        (
            "ecdsa".to_owned(),
            "in_sync".to_owned(),
            ecdsa.serial(1),
            ecdsa.serial(1),
        ),
        (
            "rsa".to_owned(),
            "in_sync".to_owned(),
            rsa.serial(2),
            rsa.serial(2),
        ),
    ];
    let mut streak = 0;
    let mut last = None;
    for _ in 0..40 {
        let run = check(&config).await;
        streak = if rows(&run) == want { streak + 1 } else { 0 };
        last = Some(run);
        if streak == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(streak, 2, "never twice in sync after the reload: {last:?}");
}

#[tokio::test]
async fn servers_with_tls_off_are_probe_failed_with_what_they_answered() {
    let lineage = Lineage::new("plain.certdrift.test", KeyAlgorithm::EcdsaP256).await;
    let (postfix, dovecot, postgres, mariadb, vsftpd, slapd, prosody) = tokio::join!(
        Postfix::start_without_tls(),
        Dovecot::start_without_tls(),
        Postgres::start_without_tls(),
        Mariadb::start_without_tls(),
        Vsftpd::start_without_tls(),
        Slapd::start_without_tls(),
        Prosody::start_without_tls(&lineage.name),
    );
    // (site, protocol, port, what the reason must say the server answered)
    let sites = [
        (
            "postfix",
            "smtp",
            postfix.port,
            "does not offer STARTTLS in its EHLO reply",
        ),
        (
            "imap",
            "imap",
            dovecot.imap_port,
            "answered STARTTLS with `a1 BAD TLS support isn't enabled.`",
        ),
        (
            "pop3",
            "pop3",
            dovecot.pop3_port,
            "answered STLS with `-ERR TLS support isn't enabled.`",
        ),
        (
            "postgres",
            "postgres",
            postgres.port,
            "answered SSLRequest with N",
        ),
        ("mariadb", "mysql", mariadb.port, "no CLIENT_SSL capability"),
        (
            "vsftpd",
            "ftp",
            vsftpd.port,
            "answered AUTH TLS with `530 Please login with USER and PASS.`",
        ),
        (
            "slapd",
            "ldap",
            slapd.port,
            "answered StartTLS with LDAP result code 2 (protocolError): unsupported extended operation",
        ),
        (
            "c2s",
            "xmpp",
            prosody.c2s_port,
            "does not offer STARTTLS in its stream features",
        ),
        (
            "s2s",
            "xmpp-server",
            prosody.s2s_port,
            "closed the stream with error undefined-condition (No stream features to offer)",
        ),
    ];
    let tables: Vec<String> = sites
        .iter()
        .map(|(site, protocol, port, _)| lineage.site_table(site, *port, protocol))
        .collect();
    let config = lineage.config(&tables);
    let run = check(&config).await;
    assert_eq!(run.status, 2, "{run:?}");
    let results = results(&run);
    assert_eq!(results.len(), sites.len(), "{run:?}");
    for (result, (site, protocol, _, answer)) in results.iter().zip(sites) {
        assert_eq!(result["site"], site);
        assert_eq!(result["protocol"], protocol);
        assert_eq!(result["verdict"], "probe_failed", "{site}: {result:#}");
        assert_eq!(
            result["error"]["kind"], "starttls_refused",
            "{site}: {result:#}"
        );
        let reason = result["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with(&format!(
                "the server does not start TLS over {protocol}: it "
            )),
            "{site}: {reason}"
        );
        assert!(
            reason.contains(answer),
            "{site}: `{reason}` lacks `{answer}`"
        );
    }
}
