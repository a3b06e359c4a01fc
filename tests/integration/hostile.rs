//! Hostile and broken servers: each fails its probe with a named reason, and within the
//! configured timeouts. The time bounds asserted here are correctness (a probe never outlives
//! its deadline), measured with a wide margin; they are not speed benchmarks.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use certdrift::demo::server::LocalTlsServer;
use certdrift::probe::MAX_CHAIN_CERTS;
use certdrift::probe::starttls::{MAX_LINE_BYTES, MAX_PREAMBLE_BYTES, MAX_PREAMBLE_LINES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::util::{LocalSite, Run, certdrift, check_config, tarpit};

/// What a run may take beyond the configured timeouts: starting the process, reading the
/// files, and a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(3);

/// The most connections a test peer accepts; probes make at most a few.
const MAX_CONNECTIONS: usize = 16;

/// Runs `check` with top-level `settings` and one site `peer` at `address` speaking
/// `protocol`, reading a valid certificate file. Returns the run and how long it took.
async fn check_peer(address: SocketAddr, settings: &str, protocol: &str) -> (Run, Duration) {
    let site = LocalSite::start("peer.certdrift.test").await;
    let started = Instant::now();
    let run = check_config(site.dir.path(), &format!(
            "{settings}[[site]]\nname = \"peer\"\nhost = \"{}\"\nport = {}\nsni = \"peer.certdrift.test\"\n\
             protocol = \"{protocol}\"\ncert = \"{}\"\n",
            address.ip(),
            address.port(),
            site.fullchain().display()
        )).await;
    (run, started.elapsed())
}

/// Checks `address` speaking `protocol` with a 5 s probe timeout, and asserts it fails as
/// [`assert_failed`] says, within those 5 s.
async fn fails_within_5s(address: SocketAddr, protocol: &str, kind: &str, reason: &str) {
    let (run, took) = check_peer(address, "timeout = \"5s\"\n", protocol).await;
    assert_failed(&run, took, kind, reason, Duration::from_secs(5));
}

/// Asserts that `run` is a `probe_failed` of `kind` with `reason`, and took less than
/// `bound` plus the margin.
fn assert_failed(run: &Run, took: Duration, kind: &str, reason: &str, bound: Duration) {
    assert_eq!(run.status, 2, "{run:?}");
    let result = run.first_result();
    assert_eq!(result["verdict"], "probe_failed", "{result}");
    assert_eq!(result["error"]["kind"], kind, "{result}");
    assert_eq!(result["reason"], reason, "{result}");
    assert_eq!(result["error"]["message"], reason, "{result}");
    assert!(
        took < bound + MARGIN,
        "the run took {took:?}; the configured bound is {bound:?} (+{MARGIN:?})"
    );
}

/// A loopback peer that runs `handle` on each of at most [`MAX_CONNECTIONS`] connections.
async fn peer<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..MAX_CONNECTIONS {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(handle(socket));
        }
    });
    address
}

#[tokio::test]
async fn a_tarpit_times_out_in_the_handshake_phase() {
    let address = tarpit().await;
    let settings = "timeout = \"8s\"\nhandshake_timeout = \"1s\"\n";
    let (run, took) = check_peer(address, settings, "tls").await;
    let result = run.first_result();
    let reason = result["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.starts_with("timed out during the TLS handshake after 1s"),
        "{reason}"
    );
    assert_failed(&run, took, "timeout", &reason, Duration::from_secs(1));
    let probe = result["duration_seconds"].as_f64().unwrap();
    assert!(
        (1.0..1.0 + MARGIN.as_secs_f64()).contains(&probe),
        "the probe gave up after {probe}s; handshake_timeout is 1s"
    );
    assert_eq!(
        result["handshakes"], 1,
        "a dead peer is not waited for again"
    );
}

#[tokio::test]
async fn a_tls_alert_is_named() {
    let address = peer(|mut socket| async move {
        let mut hello = [0u8; 512];
        let _ = socket.read(&mut hello).await;
        // A TLS 1.2 record: alert, fatal (2), handshake_failure (40).
        let _ = socket
            .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 40])
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    })
    .await;
    fails_within_5s(
        address,
        "tls",
        "tls_alert",
        "the server sent TLS alert handshake_failure",
    )
    .await;
}

#[tokio::test]
async fn a_server_closing_mid_handshake_is_named() {
    let address = peer(|mut socket| async move {
        let mut hello = [0u8; 64];
        let _ = socket.read(&mut hello).await;
        drop(socket);
    })
    .await;
    fails_within_5s(
        address,
        "tls",
        "closed",
        "the server closed the connection during the TLS handshake",
    )
    .await;
}

#[tokio::test]
async fn a_server_sending_garbage_is_a_tls_failure() {
    let address = peer(|mut socket| async move {
        let mut hello = [0u8; 512];
        let _ = socket.read(&mut hello).await;
        // Another protocol's banner where a ServerHello was due, then noise.
        let _ = socket.write_all(b"SSH-2.0-OpenSSH_9.2p1\r\n").await;
        let noise: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        let _ = socket.write_all(&noise).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    })
    .await;
    fails_within_5s(
        address,
        "tls",
        "tls",
        "the TLS handshake failed: received corrupt message of type InvalidContentType",
    )
    .await;
}

#[tokio::test]
async fn an_oversized_chain_is_refused() {
    let site = LocalSite::start("long.certdrift.test").await;
    let first = &site.generations[0];
    let count = MAX_CHAIN_CERTS + 2;
    let mut chain = first.cert_pem().to_owned();
    for _ in 1..count {
        chain.push_str(first.chain_pem());
    }
    let server = LocalTlsServer::start("127.0.0.1:0".parse().unwrap(), &chain, first.key_pem())
        .await
        .unwrap();
    fails_within_5s(
        server.local_addr(),
        "tls",
        "oversized_chain",
        &format!(
            "the server presented {count} certificates, more than the {MAX_CHAIN_CERTS} a chain may have"
        ),
    )
    .await;
}

/// An SMTP peer: greets, answers EHLO with `ehlo_reply`, and answers STARTTLS with
/// `starttls_reply`.
async fn smtp_peer(ehlo_reply: &'static str, starttls_reply: &'static str) -> SocketAddr {
    peer(move |mut socket| async move {
        let _ = socket.write_all(b"220 mx.certdrift.test ESMTP\r\n").await;
        let mut line = [0u8; 512];
        let _ = socket.read(&mut line).await; // EHLO
        let _ = socket.write_all(ehlo_reply.as_bytes()).await;
        let _ = socket.read(&mut line).await; // STARTTLS
        let _ = socket.write_all(starttls_reply.as_bytes()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    })
    .await
}

#[tokio::test]
async fn control_characters_a_server_sends_are_escaped_in_messages() {
    let answer = "454 \x1b[31mno tls\u{202e}\u{9b}2J\r\n";
    let address = smtp_peer("250-mx.certdrift.test\r\n250 STARTTLS\r\n", answer).await;
    fails_within_5s(
        address,
        "smtp",
        "starttls_refused",
        "the server does not start TLS over smtp: it answered STARTTLS with \
         454 \\x1b[31mno tls\\u{202e}\\u{9b}2J",
    )
    .await;

    // The table a person reads carries no control character either.
    let site = LocalSite::start("peer.certdrift.test").await;
    let table = certdrift(&[
        "check",
        "--host",
        &address.ip().to_string(),
        "--port",
        &address.port().to_string(),
        "--sni",
        "peer.certdrift.test",
        "--protocol",
        "smtp",
        "--cert",
        site.fullchain().to_str().unwrap(),
    ])
    .await;
    assert_eq!(table.status, 2, "{table:?}");
    assert!(
        table.stdout.contains("454 \\x1b[31mno tls\\u{202e}"),
        "{}",
        table.stdout
    );
    assert!(
        !table.stdout.contains(['\x1b', '\u{202e}', '\u{9b}']),
        "{:?}",
        table.stdout
    );
}

#[tokio::test]
async fn an_smtp_server_refusing_starttls_says_what_it_answered() {
    let address = smtp_peer(
        "250-mx.certdrift.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
        "454 4.7.0 TLS not available due to local problem\r\n",
    )
    .await;
    fails_within_5s(
        address,
        "smtp",
        "starttls_refused",
        "the server does not start TLS over smtp: it answered STARTTLS with 454 4.7.0 TLS not available due to local problem",
    )
    .await;

    let address = smtp_peer("250-mx.certdrift.test\r\n250 SIZE 10240000\r\n", "").await;
    fails_within_5s(
        address,
        "smtp",
        "starttls_refused",
        "the server does not start TLS over smtp: it does not offer STARTTLS in its EHLO reply",
    )
    .await;
}

#[tokio::test]
async fn an_endless_line_before_tls_stops_at_the_line_cap() {
    let address = peer(|mut socket| async move {
        // Four megabytes without a newline, or until the prober hangs up.
        let chunk = [b'2'; 1024];
        for _ in 0..4096 {
            if socket.write_all(&chunk).await.is_err() {
                return;
            }
        }
    })
    .await;
    fails_within_5s(
        address,
        "smtp",
        "preamble",
        &format!(
            "the smtp dialogue before TLS failed: the server sent a line longer than {MAX_LINE_BYTES} bytes"
        ),
    )
    .await;
}

#[tokio::test]
async fn a_hang_up_during_starttls_is_named_as_the_dialogue_not_the_handshake() {
    let address = peer(|mut socket| async move {
        let _ = socket.write_all(b"220 mx.certdrift.test ESMTP\r\n").await;
        let mut ehlo = [0u8; 256];
        let _ = socket.read(&mut ehlo).await;
        drop(socket);
    })
    .await;
    fails_within_5s(
        address,
        "smtp",
        "closed",
        "the server closed the connection during the dialogue before TLS",
    )
    .await;
}

#[tokio::test]
async fn a_long_line_that_arrives_whole_stops_at_the_line_cap() {
    // Terminated and sent in one write, so the prober sees the end of line at once.
    let address = peer(|mut socket| async move {
        let line = format!("220 {}\r\n", "A".repeat(MAX_LINE_BYTES + 1000));
        let _ = socket.write_all(line.as_bytes()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    })
    .await;
    fails_within_5s(
        address,
        "smtp",
        "preamble",
        &format!(
            "the smtp dialogue before TLS failed: the server sent a line longer than {MAX_LINE_BYTES} bytes"
        ),
    )
    .await;
}

#[tokio::test]
async fn too_many_lines_before_tls_stop_at_the_lines_cap() {
    let address = peer(|mut socket| async move {
        for _ in 0..10 * MAX_PREAMBLE_LINES {
            if socket.write_all(b"220-still greeting\r\n").await.is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    })
    .await;
    fails_within_5s(
        address,
        "smtp",
        "preamble",
        &format!(
            "the smtp dialogue before TLS failed: the server sent more than {MAX_PREAMBLE_LINES} lines"
        ),
    )
    .await;
}

#[tokio::test]
async fn many_short_lines_before_tls_stop_at_the_byte_cap() {
    // Under the line cap and the line length cap, over the total.
    let line = format!("220-{}\r\n", "x".repeat(400));
    let lines = MAX_PREAMBLE_BYTES / line.len() + 2;
    assert!(lines < MAX_PREAMBLE_LINES && line.len() < MAX_LINE_BYTES);
    let address = peer(move |mut socket| {
        let greeting = line.repeat(lines);
        async move {
            let _ = socket.write_all(greeting.as_bytes()).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    fails_within_5s(
        address,
        "smtp",
        "preamble",
        &format!(
            "the smtp dialogue before TLS failed: the server sent more than {MAX_PREAMBLE_BYTES} bytes before TLS"
        ),
    )
    .await;
}

#[tokio::test]
async fn an_oversized_mysql_greeting_is_refused_by_its_length() {
    // A packet header announcing 2000 bytes; MySQL's greeting is under 100.
    let address = peer(|mut socket| async move {
        let mut packet = vec![0xd0, 0x07, 0x00, 0x00];
        packet.extend(std::iter::repeat_n(0x0a, 2000));
        let _ = socket.write_all(&packet).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    })
    .await;
    fails_within_5s(
        address,
        "mysql",
        "preamble",
        "the mysql dialogue before TLS failed: the server sent a first packet of 2000 bytes",
    )
    .await;
}

#[tokio::test]
async fn an_oversized_ldap_response_is_refused_by_its_length() {
    // Reads the StartTLS request, then announces a 64 KiB LDAPMessage (a SEQUENCE with a
    // four-byte length) instead of a short ExtendedResponse.
    let address = peer(|mut socket| async move {
        let mut request = [0u8; 256];
        let _ = socket.read(&mut request).await;
        let _ = socket
            .write_all(&[0x30, 0x84, 0x00, 0x01, 0x00, 0x00])
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    })
    .await;
    fails_within_5s(
        address,
        "ldap",
        "preamble",
        "the ldap dialogue before TLS failed: the server sent an LDAP message of 65542 bytes",
    )
    .await;
}

/// A listener whose accept queue is full: it never accepts, and its one queued connection
/// fills a backlog of zero, so the kernel leaves further SYNs unanswered and a connect hangs,
/// as it does towards a firewalled host. The returned stream and socket keep it so.
async fn full_backlog() -> (SocketAddr, tokio::net::TcpListener, TcpStream) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let address = listener.local_addr().unwrap();
    let queued = TcpStream::connect(address).await.unwrap();
    (address, listener, queued)
}

#[tokio::test]
async fn a_connect_that_hangs_is_stopped_by_the_connect_timeout() {
    let (address, _listener, _queued) = full_backlog().await;
    let settings = "timeout = \"20s\"\nconnect_timeout = \"1s\"\n";
    let (run, took) = check_peer(address, settings, "tls").await;
    let reason = run.first_result()["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.starts_with("timed out during TCP connect after 1s"),
        "{reason}"
    );
    assert_failed(&run, took, "timeout", &reason, Duration::from_secs(1));
}

#[tokio::test]
async fn a_slow_drip_is_stopped_by_the_preamble_timeout() {
    let address = peer(|mut socket| async move {
        // One byte a second of a greeting that would take half a minute.
        for byte in b"220 slow.certdrift.test ESMTP ready\r\n" {
            if socket.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
    let settings = "timeout = \"20s\"\npreamble_timeout = \"2s\"\n";
    let (run, took) = check_peer(address, settings, "smtp").await;
    let reason = run.first_result()["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.starts_with("timed out during the dialogue before TLS after 2s"),
        "{reason}"
    );
    assert_failed(&run, took, "timeout", &reason, Duration::from_secs(2));
    assert!(
        took >= Duration::from_secs(2),
        "it waited the preamble timeout: {took:?}"
    );
}

#[tokio::test]
async fn a_starttls_protocol_against_an_implicit_tls_port_hints_at_protocol_tls() {
    // A TLS server waits for a ClientHello, as an SMTP client waits for a greeting.
    let site = LocalSite::start("implicit.certdrift.test").await;
    let settings = "timeout = \"10s\"\npreamble_timeout = \"1s\"\n";
    let (run, took) = check_peer(site.address(), settings, "smtp").await;
    let reason = run.first_result()["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.starts_with("timed out during the dialogue before TLS after 1s")
            && reason.ends_with(
                "; the server sent nothing: the port may speak TLS at once \
                 (try `protocol = \"tls\"`)"
            ),
        "{reason}"
    );
    assert_failed(&run, took, "timeout", &reason, Duration::from_secs(1));

    // LDAP speaks first; a TLS server answers its request with a TLS alert record.
    let (run, took) = check_peer(site.address(), settings, "ldap").await;
    assert_failed(
        &run,
        took,
        "preamble",
        "the ldap dialogue before TLS failed: the server sent a TLS record, not plaintext; \
         the port may speak TLS at once (try `protocol = \"tls\"`)",
        Duration::from_secs(1),
    );
}

#[tokio::test]
async fn a_tarpit_beside_a_good_site_delays_nothing_beyond_the_deadline() {
    let address = tarpit().await;
    let good = LocalSite::start("good.certdrift.test").await;
    let started = Instant::now();
    let run = check_config(good.dir.path(), &format!(
            "timeout = \"2s\"\n\n[[site]]\nname = \"tarpit\"\nhost = \"{}\"\nport = {}\nsni = \"tarpit.certdrift.test\"\ncert = \"{}\"\n\n{}",
            address.ip(),
            address.port(),
            good.fullchain().display(),
            good.site_table("good")
        )).await;
    let took = started.elapsed();
    assert_eq!(run.status, 2, "{run:?}");
    let results = run.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2, "{run:?}");
    assert_eq!(results[0]["site"], "tarpit");
    assert_eq!(results[0]["verdict"], "probe_failed");
    assert_eq!(results[0]["error"]["kind"], "timeout");
    assert_eq!(results[1]["site"], "good");
    assert_eq!(results[1]["verdict"], "in_sync", "{}", results[1]);
    assert_eq!(results[1]["served"]["serial"], good.serial(1));
    assert_eq!(results[1]["handshakes"], 3);
    assert!(
        took < Duration::from_secs(2) + MARGIN,
        "the whole check took {took:?}; the probe deadline is 2s (+{MARGIN:?})"
    );
}

#[tokio::test]
async fn a_server_that_answers_once_then_hangs_costs_one_timeout_not_one_per_handshake() {
    // The first connection is passed through to a real TLS server; every later one is held
    // open in silence, as by a worker that wedged after its first answer.
    let good = LocalSite::start("once.certdrift.test").await;
    let upstream = good.address();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for index in 0..MAX_CONNECTIONS {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                if index == 0 {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut socket, &mut server).await;
                    }
                } else {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            });
        }
    });
    let started = Instant::now();
    let run = check_config(
        good.dir.path(),
        &format!(
            "timeout = \"2s\"\n\n[[site]]\nname = \"once\"\nhost = \"{}\"\nport = {}\n\
             sni = \"once.certdrift.test\"\ncert = \"{}\"\nhandshakes = 5\n",
            address.ip(),
            address.port(),
            good.fullchain().display()
        ),
    )
    .await;
    let took = started.elapsed();

    // The one answer is compared; the hang is a finding, and the pass stopped there.
    let result = run.first_result();
    assert_eq!(result["verdict"], "in_sync", "{result}");
    assert_eq!(result["served"]["serial"], good.serial(1));
    assert_eq!(result["handshakes"], 2, "{result}");
    assert_eq!(result["handshakes_failed"], 1, "{result}");
    let findings: Vec<&str> = result["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["finding"].as_str().unwrap())
        .collect();
    assert_eq!(findings, ["handshakes_failed"], "{result}");
    assert!(
        took < Duration::from_secs(2) + MARGIN,
        "the check took {took:?}; one 2s timeout (+{MARGIN:?}) is the most a hang may cost"
    );
}

#[test]
fn the_caps_are_what_the_readme_says() {
    // The README documents these bounds; a change here must change it too.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for documented in [
        format!("{MAX_CHAIN_CERTS} certificates"),
        format!("{MAX_PREAMBLE_LINES} lines"),
        format!("{MAX_LINE_BYTES} bytes"),
        format!("{} KiB", MAX_PREAMBLE_BYTES / 1024),
    ] {
        assert!(readme.contains(&documented), "README lacks `{documented}`");
    }
}
