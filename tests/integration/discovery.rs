//! Discovery against real servers: nginx, apache2, haproxy, postfix and dovecot, each
//! started from a config the test writes in a temp dir, on loopback; certbot's renewal confs
//! from a real certbot run against pebble.
//!
//! `certdrift discover` is pointed at the test's configs by its flags, with `--sources`
//! naming only what the test started: nothing under /etc is read. Its output is parsed by
//! the real config loader, then checked: every site `in_sync`, and after a renewal on disk
//! without a reload, `reload_needed` on the sites that serve the renewed lineage.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certdrift::config::Config;
use certdrift::demo::ca::{IssuedCert, KeyAlgorithm, LeafSpec, TestCa};
use certdrift::demo::layout::CertbotLineage;
use certdrift::discover::{self, SourceKind, Sources};
use serde_json::Value;

use crate::daemons::{Dovecot, Postfix};
use crate::servers::{Apache, Haproxy, Nginx, Pebble};
use crate::util::{ChildGuard, Run, certdrift, certdrift_bin, free_port, http_get, wait_for};

/// A certbot-style lineage the test renews by hand.
struct TestLineage {
    ca: TestCa,
    lineage: CertbotLineage,
    names: Vec<String>,
    algorithm: KeyAlgorithm,
    generations: Vec<IssuedCert>,
}

impl TestLineage {
    /// Generation 1 of lineage `name` under `root`, for `names`, `live/` pointing at it.
    fn new(root: &Path, name: &str, names: &[&str], algorithm: KeyAlgorithm) -> Self {
        let mut lineage = Self {
            ca: TestCa::new(&format!("{name} discovery CA")),
            lineage: CertbotLineage::new(root, name),
            names: names.iter().map(|name| (*name).to_owned()).collect(),
            algorithm,
            generations: Vec::new(),
        };
        lineage.renew();
        lineage
    }

    /// Writes the next generation and points `live/` at it; no server is told.
    fn renew(&mut self) {
        let mut spec = LeafSpec::new(self.names.clone()).key_algorithm(self.algorithm);
        if let Some(previous) = self.generations.last() {
            let not_before = previous.summary().not_before + time::Duration::minutes(30);
            spec = spec.valid_between(not_before, not_before + time::Duration::days(90));
        }
        let issued = self.ca.issue(&spec);
        let number = self.generations.len() as u32 + 1;
        self.lineage.write_generation(number, &issued).unwrap();
        self.lineage.point_live_at(number).unwrap();
        self.generations.push(issued);
    }

    /// The serial of generation `number` (1-based).
    fn serial(&self, number: usize) -> String {
        self.generations[number - 1].summary().serial
    }

    /// `live/NAME/KIND.pem`.
    fn live(&self, kind: &str) -> PathBuf {
        self.lineage.live_path(kind)
    }

    /// The newest generation as one file, chain then key: what a deploy hook writes for
    /// haproxy.
    fn combined(&self) -> String {
        let last = self.generations.last().expect("generation 1 exists");
        format!("{}{}", last.fullchain_pem(), last.key_pem())
    }
}

/// `certdrift discover ARGS`, which must succeed; its output is written to `dir` and loaded
/// with the real config loader.
async fn discover_config(dir: &Path, args: &[&str]) -> (Run, Config, PathBuf) {
    let mut all = vec!["discover"];
    all.extend_from_slice(args);
    let run = certdrift(&all).await;
    assert_eq!(run.status, 0, "{run:?}");
    let path = dir.join("discovered.toml");
    std::fs::write(&path, &run.stdout).unwrap();
    let config = Config::load(&path)
        .unwrap_or_else(|err| panic!("the discovered config does not load: {err}\n{}", run.stdout));
    (run, config, path)
}

/// `certdrift check ARGS --format json`.
async fn check_json(args: &[&str]) -> Run {
    let mut all = vec!["check", "--format", "json"];
    all.extend_from_slice(args);
    certdrift(&all).await
}

/// Every result's verdict, by `SITE` (or `SITE#KEY_TYPE`) and address.
fn verdicts(run: &Run) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for result in run.json()["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let mut site = result["site"].as_str().unwrap_or("?").to_owned();
        if let Some(key_type) = result["key_type"].as_str() {
            site = format!("{site}#{key_type}");
        }
        map.entry(site)
            .or_default()
            .push(result["verdict"].as_str().unwrap_or("?").to_owned());
    }
    map
}

/// Runs `check ARGS` until every row of each site in `expected` has the site's verdict (and
/// there is no other site), twice in a row; fails after 30 s with the last run.
async fn expect_verdicts(args: &[&str], expected: &[(&str, &str)]) -> Run {
    let want: BTreeMap<String, String> = expected
        .iter()
        .map(|(site, verdict)| ((*site).to_owned(), (*verdict).to_owned()))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut streak = 0;
    loop {
        let run = check_json(args).await;
        let seen = verdicts(&run);
        let matches = seen.len() == want.len()
            && seen.iter().all(|(site, rows)| {
                want.get(site)
                    .is_some_and(|verdict| rows.iter().all(|row| row == verdict))
            });
        streak = if matches { streak + 1 } else { 0 };
        if streak >= 2 {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {want:?}, last seen {seen:?}: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The results of `site` in `run`.
fn results_of(run: &Run, site: &str) -> Vec<Value> {
    run.json()["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|result| result["site"] == site)
        .collect()
}

fn text(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

fn loopback4() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

#[tokio::test]
async fn nginx_server_blocks_are_discovered_and_checked_through_a_renewal() {
    let certs = tempfile::tempdir().unwrap();
    let le = certs.path().join("letsencrypt");
    let mut blog = TestLineage::new(
        &le,
        "blog.discover.test",
        &["blog.discover.test", "www.blog.discover.test"],
        KeyAlgorithm::EcdsaP256,
    );
    let shop_ecdsa = TestLineage::new(
        &le,
        "shop-ecdsa",
        &["shop.discover.test"],
        KeyAlgorithm::EcdsaP256,
    );
    let mut shop_rsa = TestLineage::new(
        &le,
        "shop-rsa",
        &["shop.discover.test"],
        KeyAlgorithm::Rsa2048,
    );

    let dir = tempfile::tempdir().unwrap();
    let (blog_port, shop_port, plain_port) = (free_port(), free_port(), free_port());
    let sites = dir.path().join("sites");
    std::fs::create_dir_all(&sites).unwrap();
    std::fs::write(
        sites.join("blog.conf"),
        format!(
            "server {{
    listen 127.0.0.1:{blog_port} ssl; # IPv4
    listen [::1]:{blog_port} ssl;
    server_name blog.discover.test www.blog.discover.test;
    ssl_certificate {};
    ssl_certificate_key {};
}}
",
            blog.live("fullchain").display(),
            blog.live("privkey").display()
        ),
    )
    .unwrap();
    std::fs::write(
        sites.join("shop.conf"),
        format!(
            "server {{
    listen 127.0.0.1:{shop_port} ssl default_server;
    server_name \"shop.discover.test\";
    ssl_certificate {};
    ssl_certificate_key {};
    ssl_certificate {};
    ssl_certificate_key {};
    ssl_protocols TLSv1.2 TLSv1.3;
}}
server {{
    listen 127.0.0.1:{plain_port};
    server_name plain.discover.test;
}}
",
            shop_ecdsa.live("fullchain").display(),
            shop_ecdsa.live("privkey").display(),
            shop_rsa.live("fullchain").display(),
            shop_rsa.live("privkey").display()
        ),
    )
    .unwrap();
    let nginx = Nginx::start_in(dir, "    include sites/*.conf;\n", blog_port).await;
    let prefix = format!("{}/", nginx.dir.path().display());
    let flags = [
        "--nginx-conf",
        text(nginx.conf()),
        "--nginx-prefix",
        &prefix,
        "--sources",
        "nginx",
    ];

    let (run, config, path) = discover_config(nginx.dir.path(), &flags).await;
    let blog_site = format!("nginx-blog.discover.test-{blog_port}");
    let shop_site = format!("nginx-shop.discover.test-{shop_port}");
    let names: Vec<&str> = config.sites.iter().map(|site| site.name.as_str()).collect();
    assert_eq!(
        names,
        [blog_site.as_str(), shop_site.as_str()],
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("read from nginx -T"), "{}", run.stdout);
    let blog_config = &config.sites[0];
    assert_eq!(
        blog_config.connect_to,
        [loopback4(), "::1".parse().unwrap()]
    );
    assert_eq!(blog_config.sni.as_deref(), Some("blog.discover.test"));
    assert_eq!(blog_config.certs[0].cert, blog.live("fullchain"));
    assert_eq!(blog_config.certs[0].key, Some(blog.live("privkey")));
    let blog_origin = format!("{}:1", sites.join("blog.conf").display());
    assert_eq!(blog_config.origin.as_deref(), Some(blog_origin.as_str()));
    assert!(
        run.stdout
            .contains(&format!("# from {blog_origin}: nginx server block")),
        "{}",
        run.stdout
    );
    let shop_config = &config.sites[1];
    let key_types: Vec<Option<&str>> = shop_config
        .certs
        .iter()
        .map(|files| files.key_type.map(|key_type| key_type.as_str()))
        .collect();
    assert_eq!(key_types, [Some("ecdsa"), Some("rsa")]);
    assert_eq!(shop_config.certs[1].cert, shop_rsa.live("fullchain"));

    let config_args = ["--config", text(&path)];
    let shop_ecdsa_row = format!("{shop_site}#ecdsa");
    let shop_rsa_row = format!("{shop_site}#rsa");
    let run = expect_verdicts(
        &config_args,
        &[
            (&blog_site, "in_sync"),
            (&shop_ecdsa_row, "in_sync"),
            (&shop_rsa_row, "in_sync"),
        ],
    )
    .await;
    assert_eq!(run.status, 0, "{run:?}");
    let blog_rows = results_of(&run, &blog_site);
    assert_eq!(blog_rows.len(), 2, "{run:?}");
    assert_eq!(blog_rows[0]["origin"], blog_origin.as_str());
    assert_eq!(blog_rows[0]["served"]["serial"], blog.serial(1));

    blog.renew();
    shop_rsa.renew();
    let run = expect_verdicts(
        &config_args,
        &[
            (&blog_site, "reload_needed"),
            (&shop_ecdsa_row, "in_sync"),
            (&shop_rsa_row, "reload_needed"),
        ],
    )
    .await;
    assert_eq!(run.status, 1, "{run:?}");
    let blog_rows = results_of(&run, &blog_site);
    assert_eq!(blog_rows[1]["served"]["serial"], blog.serial(1));
    assert_eq!(blog_rows[1]["disk"]["serial"], blog.serial(2));

    // serve without --config discovers the same sites and exports the drift.
    let listen = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["serve", "--listen", &listen];
    args.extend_from_slice(&flags);
    let log = nginx.dir.path().join("serve.log");
    let _serve = ChildGuard::spawn(
        Path::new(certdrift_bin()),
        &args,
        &[("CERTDRIFT_LOG", "info")],
        &log,
    );
    let metrics = format!("http://{listen}/metrics");
    let line = format!(
        "certdrift_verdict{{site=\"{blog_site}\",address=\"[::1]:{blog_port}\",verdict=\"reload_needed\"}} 1"
    );
    wait_for(&line, Duration::from_secs(30), || {
        let metrics = metrics.clone();
        let line = line.clone();
        async move {
            match http_get(&metrics).await {
                Ok((200, body)) if body.contains(&line) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    let serve_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        serve_log.contains("using the discovered configuration"),
        "{serve_log}"
    );
}

#[tokio::test]
async fn apache_vhosts_are_discovered_and_checked_through_a_renewal() {
    let certs = tempfile::tempdir().unwrap();
    let mut lineage = TestLineage::new(
        &certs.path().join("letsencrypt"),
        "www.apache.test",
        &["www.apache.test", "apache.test"],
        KeyAlgorithm::EcdsaP256,
    );
    let dir = tempfile::tempdir().unwrap();
    let (tls_port, plain_port) = (free_port(), free_port());
    let live = lineage.live("cert");
    let live_dir = live.parent().unwrap();
    let sites = dir.path().join("sites");
    std::fs::create_dir_all(&sites).unwrap();
    std::fs::write(
        sites.join("www.conf"),
        format!(
            "<VirtualHost 127.0.0.1:{plain_port}>
    ServerName www.apache.test
</VirtualHost>
<IfModule ssl_module>
# The lineage's directory, as a variable.
Define LIVE {}
<VirtualHost 127.0.0.1:{tls_port}>
    ServerName https://www.apache.test:{tls_port}
    ServerAlias apache.test
    SSLEngine on
    SSLCertificateFile      \"${{LIVE}}/cert.pem\"
    SSLCertificateChainFile ${{LIVE}}/chain.pem
    SSLCertificateKeyFile   ${{LIVE}}/privkey.pem
</VirtualHost>
</IfModule>
",
            live_dir.display()
        ),
    )
    .unwrap();
    let apache = Apache::start(
        dir,
        "IncludeOptional sites/*.conf\n",
        &[tls_port, plain_port],
    )
    .await;

    let (run, config, path) = discover_config(
        apache.dir.path(),
        &["--apache-conf", text(apache.conf()), "--sources", "apache"],
    )
    .await;
    let site = format!("apache-www.apache.test-{tls_port}");
    assert_eq!(config.sites.len(), 1, "{}", run.stdout);
    let found = &config.sites[0];
    assert_eq!(found.name, site);
    assert_eq!(found.connect_to, [loopback4()]);
    assert_eq!(found.certs[0].cert, lineage.live("cert"));
    assert_eq!(found.certs[0].chain, Some(lineage.live("chain")));
    assert_eq!(found.certs[0].key, Some(lineage.live("privkey")));
    assert_eq!(
        found.origin.as_deref(),
        Some(format!("{}:7", sites.join("www.conf").display()).as_str())
    );

    let args = ["--config", text(&path)];
    let run = expect_verdicts(&args, &[(&site, "in_sync")]).await;
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(results_of(&run, &site)[0]["served"]["chain_length"], 2);
    lineage.renew();
    let run = expect_verdicts(&args, &[(&site, "reload_needed")]).await;
    assert_eq!(run.status, 1, "{run:?}");
    assert_eq!(
        results_of(&run, &site)[0]["disk"]["serial"],
        lineage.serial(2)
    );
}

#[tokio::test]
async fn haproxy_binds_are_discovered_per_certificate_and_checked_through_a_renewal() {
    let certs = tempfile::tempdir().unwrap();
    let le = certs.path().join("letsencrypt");
    let mut front = TestLineage::new(
        &le,
        "front.haproxy.test",
        &["front.haproxy.test"],
        KeyAlgorithm::EcdsaP256,
    );
    let mut alpha = TestLineage::new(
        &le,
        "alpha.haproxy.test",
        &["alpha.haproxy.test"],
        KeyAlgorithm::EcdsaP256,
    );
    let beta = TestLineage::new(
        &le,
        "beta.haproxy.test",
        &["beta.haproxy.test"],
        KeyAlgorithm::Rsa2048,
    );

    let dir = tempfile::tempdir().unwrap();
    let pem_dir = dir.path().join("certs");
    let shared = pem_dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    // Combined PEMs, as a deploy hook copies them out of the lineage.
    std::fs::write(pem_dir.join("front.pem"), front.combined()).unwrap();
    std::fs::write(shared.join("alpha.pem"), alpha.combined()).unwrap();
    std::fs::write(shared.join("beta.pem"), beta.combined()).unwrap();
    let (front_port, shared_port) = (free_port(), free_port());
    let cfg = format!(
        "global
    crt-base {}
    stats socket {}/admin.sock level admin

defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend front
    bind 127.0.0.1:{front_port} ssl crt front.pem
    default_backend nowhere

frontend shared # one bind, a directory of certificates
    bind 127.0.0.1:{shared_port} ssl crt {}/
    default_backend nowhere

backend nowhere
",
        pem_dir.display(),
        dir.path().display(),
        shared.display()
    );
    let haproxy = Haproxy::start(dir, &cfg, &[front_port, shared_port]).await;

    let (run, config, path) = discover_config(
        haproxy.dir.path(),
        &[
            "--haproxy-conf",
            text(haproxy.conf()),
            "--sources",
            "haproxy",
        ],
    )
    .await;
    let front_site = format!("haproxy-front.haproxy.test-{front_port}");
    let alpha_site = format!("haproxy-alpha.haproxy.test-{shared_port}");
    let beta_site = format!("haproxy-beta.haproxy.test-{shared_port}");
    let names: Vec<&str> = config.sites.iter().map(|site| site.name.as_str()).collect();
    assert_eq!(
        names,
        [front_site.as_str(), alpha_site.as_str(), beta_site.as_str()],
        "{}",
        run.stdout
    );
    // The key is in the combined file.
    assert_eq!(
        config.sites[0].certs[0].key,
        Some(pem_dir.join("front.pem"))
    );
    assert_eq!(config.sites[2].sni.as_deref(), Some("beta.haproxy.test"));
    assert_eq!(
        config.sites[0].origin.as_deref(),
        Some(format!("{}:12", haproxy.conf().display()).as_str())
    );

    let args = ["--config", text(&path)];
    let run = expect_verdicts(
        &args,
        &[
            (&front_site, "in_sync"),
            (&alpha_site, "in_sync"),
            (&beta_site, "in_sync"),
        ],
    )
    .await;
    assert_eq!(run.status, 0, "{run:?}");

    // The deploy step copies the renewed lineages; haproxy is not reloaded.
    front.renew();
    alpha.renew();
    std::fs::write(pem_dir.join("front.pem"), front.combined()).unwrap();
    std::fs::write(shared.join("alpha.pem"), alpha.combined()).unwrap();
    let run = expect_verdicts(
        &args,
        &[
            (&front_site, "reload_needed"),
            (&alpha_site, "reload_needed"),
            (&beta_site, "in_sync"),
        ],
    )
    .await;
    assert_eq!(
        results_of(&run, &alpha_site)[0]["served"]["serial"],
        alpha.serial(1)
    );
}

#[tokio::test]
async fn postfix_listeners_and_sni_map_are_discovered_and_checked_through_a_renewal() {
    let certs = tempfile::tempdir().unwrap();
    let le = certs.path().join("letsencrypt");
    let mut smtp = TestLineage::new(
        &le,
        "smtp.discover.test",
        &["smtp.discover.test"],
        KeyAlgorithm::EcdsaP256,
    );
    // The helper's myhostname is mail.certdrift.test; its certificate is the fallback.
    let fallback = TestLineage::new(
        &le,
        "mail.certdrift.test",
        &["mail.certdrift.test"],
        KeyAlgorithm::EcdsaP256,
    );
    let postfix = Postfix::start(
        "smtp.discover.test",
        &smtp.live("fullchain"),
        &smtp.live("privkey"),
        &fallback.live("fullchain"),
        &fallback.live("privkey"),
    )
    .await;
    let conf = postfix.conf_dir();
    let out = tempfile::tempdir().unwrap();
    let (run, config, path) = discover_config(
        out.path(),
        &["--postfix-dir", text(&conf), "--sources", "postfix"],
    )
    .await;
    let default_site = format!("postfix-mail.certdrift.test-{}", postfix.port);
    let sni_site = format!("postfix-smtp.discover.test-{}", postfix.port);
    let names: Vec<&str> = config.sites.iter().map(|site| site.name.as_str()).collect();
    assert_eq!(
        names,
        [default_site.as_str(), sni_site.as_str()],
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("read from postconf -x and master.cf"),
        "{}",
        run.stdout
    );
    for site in &config.sites {
        assert_eq!(site.protocol.as_str(), "smtp");
        assert_eq!(site.connect_to, [loopback4()]);
    }
    assert_eq!(config.sites[0].certs[0].cert, fallback.live("fullchain"));
    assert_eq!(config.sites[0].certs[0].key, Some(fallback.live("privkey")));
    assert_eq!(config.sites[1].certs[0].cert, smtp.live("fullchain"));
    assert_eq!(config.sites[1].certs[0].key, Some(smtp.live("privkey")));
    assert_eq!(
        config.sites[0].origin.as_deref(),
        Some(format!("{}:1", conf.join("master.cf").display()).as_str())
    );
    assert_eq!(
        config.sites[1].origin.as_deref(),
        Some(format!("{}:1", conf.join("sni").display()).as_str())
    );

    let args = ["--config", text(&path)];
    let run = expect_verdicts(&args, &[(&default_site, "in_sync"), (&sni_site, "in_sync")]).await;
    assert_eq!(run.status, 0, "{run:?}");
    smtp.renew();
    let run = expect_verdicts(
        &args,
        &[(&default_site, "in_sync"), (&sni_site, "reload_needed")],
    )
    .await;
    assert_eq!(
        results_of(&run, &sni_site)[0]["disk"]["serial"],
        smtp.serial(2)
    );
    assert_eq!(
        results_of(&run, &sni_site)[0]["served"]["serial"],
        smtp.serial(1)
    );
}

#[tokio::test]
async fn dovecot_listeners_are_discovered_and_checked_through_a_renewal() {
    let certs = tempfile::tempdir().unwrap();
    let mut lineage = TestLineage::new(
        &certs.path().join("letsencrypt"),
        "imap.discover.test",
        &["imap.discover.test"],
        KeyAlgorithm::EcdsaP256,
    );
    let dovecot = Dovecot::start(&lineage.live("fullchain"), &lineage.live("privkey")).await;
    let out = tempfile::tempdir().unwrap();
    let (run, config, path) = discover_config(
        out.path(),
        &[
            "--dovecot-conf",
            text(dovecot.conf()),
            "--sources",
            "dovecot",
        ],
    )
    .await;
    assert!(
        run.stdout.contains("read from doveconf and the files"),
        "{}",
        run.stdout
    );
    let expected = [
        (
            format!("dovecot-imap.discover.test-{}", dovecot.imap_port),
            "imap",
        ),
        (
            format!("dovecot-imap.discover.test-{}", dovecot.imaps_port),
            "tls",
        ),
        (
            format!("dovecot-imap.discover.test-{}", dovecot.pop3_port),
            "pop3",
        ),
    ];
    let found: Vec<(String, &str)> = config
        .sites
        .iter()
        .map(|site| (site.name.clone(), site.protocol.as_str()))
        .collect();
    assert_eq!(found, expected, "{}", run.stdout);
    for site in &config.sites {
        assert_eq!(site.certs[0].cert, lineage.live("fullchain"));
        // doveconf hides ssl_key; the file says where it is.
        assert_eq!(site.certs[0].key, Some(lineage.live("privkey")));
        assert_eq!(site.connect_to, [loopback4()]);
    }
    let imaps_origin = config.sites[1].origin.clone().unwrap();
    assert!(
        imaps_origin.starts_with(text(dovecot.conf())) && !imaps_origin.ends_with(".conf"),
        "{imaps_origin}"
    );

    let args = ["--config", text(&path)];
    let sites: Vec<&str> = expected.iter().map(|(site, _)| site.as_str()).collect();
    let in_sync: Vec<(&str, &str)> = sites.iter().map(|site| (*site, "in_sync")).collect();
    let run = expect_verdicts(&args, &in_sync).await;
    assert_eq!(run.status, 0, "{run:?}");
    lineage.renew();
    let drifted: Vec<(&str, &str)> = sites.iter().map(|site| (*site, "reload_needed")).collect();
    let run = expect_verdicts(&args, &drifted).await;
    assert_eq!(run.status, 1, "{run:?}");
}

#[tokio::test]
async fn certbot_lineages_from_a_real_renewal_are_discovered_and_check_needs_no_config() {
    const NAME: &str = "acme.discover.test";
    const UNUSED: &str = "unused.discover.test";
    let pebble = Pebble::start().await;
    let state = tempfile::tempdir().unwrap();
    for name in [NAME, UNUSED] {
        let issue = pebble.certonly(state.path(), name).await;
        assert_eq!(issue.status, 0, "certbot certonly -d {name}: {issue:?}");
    }
    let le = state.path().join("le");
    let live = le.join("live").join(NAME);
    let nginx = Nginx::start(
        &["127.0.0.1"],
        NAME,
        &live.join("fullchain.pem"),
        &live.join("privkey.pem"),
    )
    .await;
    let prefix = format!("{}/", nginx.dir.path().display());
    let site = format!("nginx-{NAME}-{}", nginx.port);

    // The library's view: both lineages, their live/ paths, their domains, who uses them.
    let sources = Sources {
        nginx_conf: Some(nginx.conf().to_owned()),
        nginx_prefix: Some(PathBuf::from(&prefix)),
        letsencrypt_dir: Some(le.clone()),
        only: Some(vec![SourceKind::Nginx, SourceKind::Certbot]),
        ..Sources::default()
    };
    let discovery = tokio::task::spawn_blocking(move || discover::discover(&sources))
        .await
        .unwrap();
    assert!(discovery.warnings.is_empty(), "{:?}", discovery.warnings);
    let lineages: Vec<&str> = discovery.lineages.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(lineages, [NAME, UNUSED]);
    let used = &discovery.lineages[0];
    assert_eq!(
        used.conf.file,
        le.join("renewal").join(format!("{NAME}.conf"))
    );
    assert_eq!(used.cert, Some(live.join("cert.pem")));
    assert_eq!(used.chain, Some(live.join("chain.pem")));
    assert_eq!(used.fullchain, Some(live.join("fullchain.pem")));
    assert_eq!(used.privkey, Some(live.join("privkey.pem")));
    assert_eq!(used.domains, [NAME]);
    assert_eq!(used.used_by, [site.as_str()]);
    assert_eq!(discovery.lineages[1].domains, [UNUSED]);
    assert!(discovery.lineages[1].used_by.is_empty());
    assert_eq!(discovery.sites[0].lineage.as_deref(), Some(NAME));

    let flags = [
        "--nginx-conf",
        text(nginx.conf()),
        "--nginx-prefix",
        &prefix,
        "--letsencrypt-dir",
        text(&le),
        "--sources",
        "nginx,certbot",
    ];
    let (run, _, _) = discover_config(state.path(), &flags).await;
    assert!(
        run.stdout.contains(&format!("# certbot lineage {NAME} (")),
        "{}",
        run.stdout
    );
    let unused_live = le.join("live").join(UNUSED);
    for line in [
        format!("# lineage {UNUSED} ("),
        format!("domains {UNUSED}\n# [[site]]\n"),
        format!(
            "# cert = \"{}\"",
            unused_live.join("fullchain.pem").display()
        ),
    ] {
        assert!(
            run.stdout.contains(&line),
            "`{line}` not in\n{}",
            run.stdout
        );
    }

    // `check` without --config, pointed at nginx and certbot only.
    let run = expect_verdicts(&flags, &[(&site, "in_sync")]).await;
    assert_eq!(run.status, 0, "{run:?}");
    let before = results_of(&run, &site)[0].clone();
    // The server block follows the helper's preamble of eleven lines.
    assert_eq!(before["origin"], format!("{}:12", nginx.conf().display()));

    let renew = pebble
        .certbot(
            state.path(),
            &[
                "renew",
                "--force-renewal",
                "--no-random-sleep-on-renew",
                "--cert-name",
                NAME,
            ],
        )
        .await;
    assert_eq!(renew.status, 0, "certbot renew: {renew:?}");
    let run = expect_verdicts(&flags, &[(&site, "reload_needed")]).await;
    assert_eq!(run.status, 1, "{run:?}");
    let after = results_of(&run, &site)[0].clone();
    assert_eq!(after["served"]["serial"], before["served"]["serial"]);
    assert_ne!(after["disk"]["serial"], before["disk"]["serial"]);
}

#[tokio::test]
async fn unreadable_and_unparsable_configs_are_reported_and_other_sources_still_count() {
    let certs = tempfile::tempdir().unwrap();
    let lineage = TestLineage::new(
        &certs.path().join("letsencrypt"),
        "ok.discover.test",
        &["ok.discover.test"],
        KeyAlgorithm::EcdsaP256,
    );
    let broken = tempfile::tempdir().unwrap();
    let root = broken.path();

    // nginx: one include parses, one does not (nginx -T fails on it, so the files are read).
    std::fs::create_dir_all(root.join("nginx/sites")).unwrap();
    // pid and error log in the temp dir: nginx -T must not touch the machine's.
    std::fs::write(
        root.join("nginx/nginx.conf"),
        format!(
            "pid {root}/nginx.pid;\nerror_log {root}/error.log;\nevents {{}}\nhttp {{\n    include sites/*.conf;\n}}\n",
            root = root.display()
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("nginx/sites/good.conf"),
        format!(
            "server {{\n    listen 127.0.0.1:{} ssl;\n    server_name good.discover.test;\n    ssl_certificate {};\n}}\n",
            free_port(),
            lineage.live("fullchain").display()
        ),
    )
    .unwrap();
    let bad_nginx = root.join("nginx/sites/bad.conf");
    std::fs::write(
        &bad_nginx,
        "server {\n    listen 443 ssl;\n    server_name bad.discover.test\n}\n",
    )
    .unwrap();
    // apache2: not text.
    let bad_apache = root.join("apache2.conf");
    std::fs::write(&bad_apache, b"ServerRoot /\xff\xfe\n").unwrap();
    // dovecot: a section that never closes.
    let bad_dovecot = root.join("dovecot.conf");
    std::fs::write(
        &bad_dovecot,
        "ssl = yes\nservice imap-login {\n  inet_listener imap {\n",
    )
    .unwrap();
    // postfix: main.cf without master.cf.
    let postfix_dir = root.join("postfix");
    std::fs::create_dir_all(&postfix_dir).unwrap();
    std::fs::write(
        postfix_dir.join("main.cf"),
        "smtpd_tls_security_level = may\n",
    )
    .unwrap();

    // haproxy, real and fine.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.pem"), lineage.combined()).unwrap();
    let port = free_port();
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\nfrontend ok\n    bind 127.0.0.1:{port} ssl crt {}/ok.pem\n    default_backend nowhere\n\nbackend nowhere\n",
        dir.path().display()
    );
    let haproxy = Haproxy::start(dir, &cfg, &[port]).await;

    let nginx_conf = root.join("nginx/nginx.conf");
    let flags = [
        "--nginx-conf",
        text(&nginx_conf),
        "--apache-conf",
        text(&bad_apache),
        "--dovecot-conf",
        text(&bad_dovecot),
        "--postfix-dir",
        text(&postfix_dir),
        "--haproxy-conf",
        text(haproxy.conf()),
        "--sources",
        "nginx,apache,haproxy,postfix,dovecot",
    ];
    let out = tempfile::tempdir().unwrap();
    let (run, config, _) = discover_config(out.path(), &flags).await;
    let warnings = [
        format!(
            "{}: nginx -T failed",
            root.join("nginx/nginx.conf").display()
        ),
        format!(
            "{}:3: `server_name` has no `;` before the `}}` on line 4",
            bad_nginx.display()
        ),
        format!(
            "{}: cannot read the apache2 config: not UTF-8 text",
            bad_apache.display()
        ),
        format!("{}:2: `service {{` is not closed", bad_dovecot.display()),
        format!(
            "{}: cannot read master.cf",
            postfix_dir.join("master.cf").display()
        ),
    ];
    for warning in &warnings {
        assert!(
            run.stderr
                .contains(&format!("certdrift: warning: {warning}")),
            "`{warning}` not on stderr:\n{}",
            run.stderr
        );
        assert!(
            run.stdout.contains(&format!("#   {warning}")),
            "`{warning}` not in the output:\n{}",
            run.stdout
        );
    }
    let names: Vec<&str> = config.sites.iter().map(|site| site.name.as_str()).collect();
    let haproxy_site = format!("haproxy-ok.discover.test-{port}");
    assert_eq!(names.len(), 2, "{}", run.stdout);
    assert!(
        names[0].starts_with("nginx-good.discover.test-"),
        "{names:?}"
    );
    assert_eq!(names[1], haproxy_site);

    // check without --config: the broken sources are warnings, haproxy's site is checked.
    let mut check_flags = flags.to_vec();
    let last = check_flags.len() - 1;
    check_flags[last] = "apache,haproxy,postfix,dovecot";
    let run = expect_verdicts(&check_flags, &[(&haproxy_site, "in_sync")]).await;
    assert_eq!(run.status, 0, "{run:?}");
    assert!(
        run.stderr.contains("cannot read the apache2 config"),
        "{}",
        run.stderr
    );

    // With every source empty, check says what it looked at and how to give a config.
    let nothing = root.join("nothing");
    let run = certdrift(&[
        "check",
        "--nginx-conf",
        text(&nothing),
        "--sources",
        "nginx",
    ])
    .await;
    assert_eq!(run.status, 2, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "nothing to check: discovery found no TLS site (nginx {}: not found; apache /etc/apache2/apache2.conf: skipped",
            nothing.display()
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("Pass --config FILE, or --host HOST --cert FILE"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn include_loops_through_globs_finish_with_one_site_per_block() {
    // The attack: every file of a glob includes the glob again. Depth alone let that grow
    // as 3^16; the include stack reads each path once per chain, and each block is one site.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let loops = root.join("nginx");
    std::fs::create_dir(&loops).unwrap();
    let glob = format!("{}/loop*.conf", loops.display());
    std::fs::write(
        loops.join("nginx.conf"),
        format!("events {{}}\nevents {{}}\nhttp {{\n    include {glob};\n}}\n"),
    )
    .unwrap();
    for n in 1..=3 {
        std::fs::write(
            loops.join(format!("loop{n}.conf")),
            format!("include {glob};\nserver {{ listen 127.0.0.1:{n}443 ssl; server_name n{n}.loop.test; ssl_certificate {root}/n{n}.pem; }}\n", root = root.display()),
        )
        .unwrap();
    }
    let sites = root.join("apache/sites");
    std::fs::create_dir_all(&sites).unwrap();
    std::fs::write(
        root.join("apache/apache2.conf"),
        "IncludeOptional sites/*.conf\n",
    )
    .unwrap();
    for name in ["a", "b", "c"] {
        std::fs::write(
            sites.join(format!("{name}.conf")),
            format!("<VirtualHost 127.0.0.1:443>\n    ServerName {name}.loop.test\n    SSLEngine on\n    SSLCertificateFile {}/{name}.pem\n</VirtualHost>\nInclude sites/*.conf\n", root.display()),
        )
        .unwrap();
    }
    let run = certdrift(&[
        "discover",
        "--nginx-conf",
        text(&loops.join("nginx.conf")),
        "--apache-conf",
        text(&root.join("apache/apache2.conf")),
        "--sources",
        "nginx,apache",
    ])
    .await;
    let config = Config::from_toml(&run.stdout, "discovered", root)
        .unwrap_or_else(|err| panic!("{err}\n{}\n{}", run.stdout, run.stderr));
    let mut names: Vec<&str> = config.sites.iter().map(|site| site.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "apache-a.loop.test-443",
            "apache-b.loop.test-443",
            "apache-c.loop.test-443",
            "nginx-n1.loop.test-1443",
            "nginx-n2.loop.test-2443",
            "nginx-n3.loop.test-3443",
        ],
        "{}",
        run.stderr
    );
    let self_loop = format!(
        "{}:6: Include {}: already being read (an include loop); not read again",
        sites.join("a.conf").display(),
        sites.join("a.conf").display()
    );
    assert_eq!(run.stderr.matches(&self_loop).count(), 1, "{}", run.stderr);
}
