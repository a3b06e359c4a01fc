//! Every address of a site: names with several addresses, address families, `connect_to`,
//! and several handshakes per address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use certdrift::demo::ca::LeafSpec;
use certdrift::demo::server::LocalTlsServer;

use crate::util::{LocalSite, certdrift, certdrift_with_hosts, check_config, free_port};

const NAME: &str = "multi.certdrift.test";

/// A lineage at generation 2 on disk, served by 127.0.0.2 (reloaded, generation 2) and by
/// ::1 (not reloaded, generation 1), on the same port.
struct TwoNodes {
    site: LocalSite,
    stale: LocalTlsServer,
    port: u16,
}

async fn two_nodes() -> TwoNodes {
    let port = free_port();
    let bind: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    let mut site = LocalSite::start_on(NAME, bind, LeafSpec::new([NAME])).await;
    let first = &site.generations[0];
    let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let stale = LocalTlsServer::start(v6, &first.fullchain_pem(), first.key_pem())
        .await
        .unwrap();
    site.renew();
    site.serve_generation(2);
    TwoNodes { site, stale, port }
}

fn config(nodes: &TwoNodes, extra: &str) -> std::path::PathBuf {
    let path = nodes.site.dir.path().join("certdrift.toml");
    let text = format!(
        "[[site]]\nname = \"multi\"\nhost = \"{NAME}\"\nport = {}\ncert = \"{}\"\nca_file = \"{}\"\n{extra}",
        nodes.port,
        nodes.site.fullchain().display(),
        nodes.site.ca_file.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

const HOSTS: &str = "127.0.0.2 multi.certdrift.test\n::1 multi.certdrift.test\n";

#[tokio::test]
async fn every_address_of_a_name_gets_its_own_verdict() {
    let nodes = two_nodes().await;
    let config = config(&nodes, "");
    let run = certdrift_with_hosts(
        HOSTS,
        &[
            "check",
            "--format",
            "json",
            "--config",
            config.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.status, 1, "{run:?}");
    let results = run.json()["results"].as_array().unwrap().clone();
    let mut seen: Vec<(String, String)> = results
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_owned(),
                r["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (format!("127.0.0.2:{}", nodes.port), "in_sync".to_owned()),
            (format!("[::1]:{}", nodes.port), "reload_needed".to_owned()),
        ]
    );
    for result in &results {
        assert_eq!(result["sni"], NAME);
        let finding = &result["findings"][0];
        assert_eq!(finding["finding"], "addresses_differ", "{result}");
        let detail = finding["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!(
                "127.0.0.2:{} serves serial {}",
                nodes.port,
                nodes.site.serial(2)
            )),
            "{detail}"
        );
        assert!(
            detail.contains(&format!(
                "[::1]:{} serves serial {}",
                nodes.port,
                nodes.site.serial(1)
            )),
            "{detail}"
        );
    }
    drop(nodes.stale);
}

#[tokio::test]
async fn an_address_family_keeps_only_its_addresses() {
    let nodes = two_nodes().await;
    for (family, address, verdict) in [
        ("ipv4", "127.0.0.2", "in_sync"),
        ("ipv6", "[::1]", "reload_needed"),
    ] {
        let config = config(&nodes, &format!("addresses = \"{family}\"\n"));
        let run = certdrift_with_hosts(
            HOSTS,
            &[
                "check",
                "--format",
                "json",
                "--config",
                config.to_str().unwrap(),
            ],
        )
        .await;
        let results = run.json()["results"].as_array().unwrap().clone();
        assert_eq!(results.len(), 1, "{family}: {run:?}");
        assert_eq!(results[0]["address"], format!("{address}:{}", nodes.port));
        assert_eq!(results[0]["verdict"], verdict);
        assert!(
            results[0]["findings"].as_array().unwrap().is_empty(),
            "one address cannot differ from itself"
        );
    }
}

#[tokio::test]
async fn connect_to_probes_given_addresses_with_the_sites_sni() {
    // The host name is never resolved: an origin behind a CDN, nodes behind a balancer.
    let nodes = two_nodes().await;
    let config = config(&nodes, "connect_to = [\"127.0.0.2\", \"::1\"]\n");
    let run = certdrift(&[
        "check",
        "--format",
        "json",
        "--config",
        config.to_str().unwrap(),
    ])
    .await;
    let results = run.json()["results"].as_array().unwrap().clone();
    let addresses: Vec<&str> = results
        .iter()
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        addresses,
        [
            format!("127.0.0.2:{}", nodes.port),
            format!("[::1]:{}", nodes.port)
        ]
    );
    assert_eq!(results[0]["verdict"], "in_sync");
    assert_eq!(results[1]["verdict"], "reload_needed");
    assert_eq!(results[1]["sni"], NAME);
}

#[tokio::test]
async fn a_worker_that_missed_the_reload_makes_the_address_mixed() {
    let mut site = LocalSite::start("mixed.certdrift.test").await;
    site.renew();
    let (old, new) = (&site.generations[0], &site.generations[1]);
    let (old_chain, new_chain) = (old.fullchain_pem(), new.fullchain_pem());
    site.server
        .reload_rotating(&[(&new_chain, new.key_pem()), (&old_chain, old.key_pem())])
        .unwrap();
    let run = check_config(
        site.dir.path(),
        &format!("{}handshakes = 4\n", site.site_table("mixed")),
    )
    .await;
    assert_eq!(run.status, 1, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "mixed");
    assert_eq!(result["handshakes"], 4);
    let mut leaves: Vec<(String, String, u64, String)> = result["served_leaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|leaf| {
            (
                leaf["serial"].as_str().unwrap().to_owned(),
                leaf["fingerprint_sha256"].as_str().unwrap().to_owned(),
                leaf["count"].as_u64().unwrap(),
                leaf["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    leaves.sort();
    let fingerprint = |generation: usize| {
        site.generations[generation - 1]
            .summary()
            .fingerprint_sha256
            .to_string()
    };
    let mut expected = vec![
        (site.serial(2), fingerprint(2), 2, "in_sync".to_owned()),
        (
            site.serial(1),
            fingerprint(1),
            2,
            "reload_needed".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(leaves, expected);
    assert!(
        result["reason"]
            .as_str()
            .unwrap()
            .starts_with("4 handshakes returned 2 different certificates"),
        "{}",
        result["reason"]
    );
}

#[tokio::test]
async fn one_handshake_per_address_can_be_asked_for() {
    let site = LocalSite::start("once.certdrift.test").await;
    let run = check_config(
        site.dir.path(),
        &format!("{}handshakes = 1\n", site.site_table("once")),
    )
    .await;
    let result = run.first_result();
    assert_eq!(result["handshakes"], 1, "{run:?}");
    assert_eq!(result["verdict"], "in_sync");
    assert!(result.get("served_leaves").is_none());
}

/// `server`'s (full, resumed) handshake counts once they add up to `total`, or after 2 s:
/// the server counts a moment after the client's side of a handshake ends.
async fn handshakes_once(server: &LocalTlsServer, total: usize) -> (usize, usize) {
    for _ in 0..100 {
        let (full, resumed) = server.handshakes();
        if full + resumed >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.handshakes()
}

#[tokio::test]
async fn every_handshake_is_full_even_where_the_server_offers_resumption() {
    use rustls::pki_types::pem::PemObject;

    // TLS 1.2, as nginx 1.22 speaks by default: the server hands out a session id in its
    // hello, and a client with a session cache resumes the next handshake with it.
    let site = LocalSite::start("full.certdrift.test").await;
    let first = &site.generations[0];
    let server = LocalTlsServer::start_with_versions(
        "127.0.0.1:0".parse().unwrap(),
        &first.fullchain_pem(),
        first.key_pem(),
        &[&rustls::version::TLS12],
    )
    .await
    .unwrap();
    let address = server.local_addr();

    // The server does resume: a client with rustls' default session cache gets a resumed
    // second handshake.
    let mut roots = rustls::RootCertStore::empty();
    let ca_pem = std::fs::read(&site.ca_file).unwrap();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    for total in 1..=2 {
        let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("full.certdrift.test").unwrap();
        let _tls = connector.connect(name, tcp).await.unwrap();
        handshakes_once(&server, total).await;
    }
    assert_eq!(
        handshakes_once(&server, 2).await,
        (1, 1),
        "the server resumes a client that asks"
    );

    // certdrift's five handshakes to the address are all full: a resumed session carries
    // no certificate, and could hide one loaded since.
    let run = check_config(
        site.dir.path(),
        &format!(
            "[[site]]\nname = \"full\"\nhost = \"127.0.0.1\"\nport = {}\n\
             sni = \"full.certdrift.test\"\ncert = \"{}\"\nca_file = \"{}\"\nhandshakes = 5\n",
            address.port(),
            site.fullchain().display(),
            site.ca_file.display()
        ),
    )
    .await;
    let result = run.first_result();
    assert_eq!(result["handshakes"], 5, "{run:?}");
    assert_eq!(result["served"]["tls_version"], "TLSv1.2", "{result}");
    assert_eq!(handshakes_once(&server, 7).await, (6, 1));
}
