//! The served side: what certificate chain a server presents on one address.
//!
//! A probe reads as five steps: resolve the host to addresses, connect under a deadline,
//! handshake with the site's SNI, take the presented chain, summarize it. Every probe is a
//! full handshake (resumption is off), so a server that kept an old certificate cannot hide
//! behind a resumed session. The chain is accepted whatever it holds (see
//! [`verify::AcceptAnyChain`]); whether it is trusted is checked afterwards and reported beside
//! the result.
//!
//! Protocols that speak before TLS (SMTP, IMAP, LDAP, PostgreSQL, ...) get their dialogue
//! between connect and handshake ([`starttls`]). Each phase has its own timeout inside the
//! probe's deadline, and what a server may send is capped, so a hostile or broken server
//! costs one probe slot for at most the deadline.
//!
//! Failures are values ([`ProbeError`]), never panics: one address failing never stops the
//! others. The comparison with the disk is [`crate::verdict`]'s job.

pub mod starttls;
pub mod verify;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{ClientConfig, client::Resumption};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;

use crate::cert::{CertSummary, Fingerprint};
use crate::text::whole_millis;
pub use starttls::Protocol;
pub use verify::{ChainVerifier, Verification};

/// What a server presented on one address.
#[derive(Debug, Clone, Serialize)]
pub struct Served {
    /// The presented chain, leaf first, in the order the server sent it.
    pub chain: Vec<CertSummary>,
    /// Whether the chain verifies against the trust store, for the SNI name.
    pub verification: Verification,
    /// The negotiated protocol version, such as `TLSv1.3`.
    pub tls_version: &'static str,
}

impl Served {
    /// The leaf: the first certificate presented.
    pub fn leaf(&self) -> &CertSummary {
        // A Served is only built from a non-empty chain (see `handshake`).
        &self.chain[0]
    }
}

/// Why a probe of one address did not produce a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {detail}")]
    Dns {
        /// The name looked up.
        host: String,
        /// What the resolver said.
        detail: String,
    },
    /// A phase did not finish before the probe's deadline.
    #[error("timed out during {phase} after {}{}", humantime::format_duration(whole_millis(*after)), hint.map_or(String::new(), |hint| format!("; {hint}")))]
    Timeout {
        /// The phase that was running.
        phase: Phase,
        /// Time since the probe started.
        after: Duration,
        /// What the timeout suggests, when something does ([`SILENT_PREAMBLE_HINT`]).
        hint: Option<&'static str>,
    },
    /// Nothing listens on the port.
    #[error("connection refused")]
    Refused,
    /// Connecting failed for another reason (unreachable network, reset, ...).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The server sent a TLS alert during the handshake.
    #[error("the server sent TLS alert {0}")]
    TlsAlert(String),
    /// The handshake failed on our side (an unsupported or malformed message, a bad
    /// signature).
    #[error("the TLS handshake failed: {0}")]
    Tls(String),
    /// The server does not offer TLS on this protocol, or refused to start it.
    #[error("the server does not start TLS over {protocol}: it {detail}")]
    StartTlsRefused {
        /// The protocol's config name.
        protocol: &'static str,
        /// What the server said.
        detail: String,
    },
    /// The plaintext dialogue before TLS broke the protocol or a bound.
    #[error("the {protocol} dialogue before TLS failed: {detail}")]
    Preamble {
        /// The protocol's config name.
        protocol: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The server presented more certificates than any real chain has.
    #[error("the server presented {count} certificates, more than the {limit} a chain may have")]
    OversizedChain {
        /// How many it presented.
        count: usize,
        /// The cap.
        limit: usize,
    },
    /// The server closed the connection before the handshake finished.
    #[error("the server closed the connection during {phase}")]
    Closed {
        /// The phase that was running: the dialogue before TLS, or the handshake.
        phase: Phase,
    },
    /// The handshake finished without a server certificate (anonymous or PSK-only).
    #[error("the server presented no certificate")]
    NoCertificate,
    /// A presented certificate could not be parsed.
    #[error("presented certificate {index} cannot be parsed: {detail}")]
    BadCertificate {
        /// Position in the chain, 0 for the leaf.
        index: usize,
        /// The parser's complaint.
        detail: String,
    },
}

impl ProbeError {
    /// A short, stable name for the kind of failure, for labels and JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dns { .. } => "dns",
            Self::Timeout { .. } => "timeout",
            Self::Refused => "refused",
            Self::Connect(_) => "connect",
            Self::TlsAlert(_) => "tls_alert",
            Self::Tls(_) => "tls",
            Self::StartTlsRefused { .. } => "starttls_refused",
            Self::Preamble { .. } => "preamble",
            Self::OversizedChain { .. } => "oversized_chain",
            Self::Closed { .. } => "closed",
            Self::NoCertificate => "no_certificate",
            Self::BadCertificate { .. } => "bad_certificate",
        }
    }
}

/// A step of a probe, for timeout messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Resolving the host name.
    Resolve,
    /// TCP connect.
    Connect,
    /// The plaintext dialogue before TLS (STARTTLS and the like).
    Preamble,
    /// The TLS handshake.
    Handshake,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Resolve => "name resolution",
            Self::Connect => "TCP connect",
            Self::Preamble => "the dialogue before TLS",
            Self::Handshake => "the TLS handshake",
        })
    }
}

/// The signature algorithm family a handshake offers, to pick one certificate of a server
/// that holds several (nginx and apache select by what the client offers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyType {
    /// Offer only ECDSA signature schemes and ECDHE_ECDSA suites.
    Ecdsa,
    /// Offer only RSA signature schemes and ECDHE_RSA suites.
    Rsa,
}

impl KeyType {
    /// The config and label name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ecdsa => "ecdsa",
            Self::Rsa => "rsa",
        }
    }
}

impl std::str::FromStr for KeyType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "ecdsa" => Ok(Self::Ecdsa),
            "rsa" => Ok(Self::Rsa),
            _ => Err(format!(
                "`{text}` is not a key type; use \"ecdsa\" or \"rsa\""
            )),
        }
    }
}

/// Time limits of one probe. Each phase ends at its own limit or at the probe's whole
/// deadline, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The whole probe: connect, dialogue and handshake.
    pub total: Duration,
    /// TCP connect.
    pub connect: Duration,
    /// The plaintext dialogue before TLS.
    pub preamble: Duration,
    /// The TLS handshake.
    pub handshake: Duration,
}

impl Timeouts {
    /// Every phase limited by `total` only.
    pub fn uniform(total: Duration) -> Self {
        Self {
            total,
            connect: total,
            preamble: total,
            handshake: total,
        }
    }
}

/// One handshake to make.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Where to connect.
    pub address: SocketAddr,
    /// SNI to send (none for an IP address) and the name to verify the chain for.
    pub server_name: &'a ServerName<'static>,
    /// What to speak before TLS.
    pub protocol: Protocol,
    /// Which certificate family to ask for; `None` offers everything.
    pub key_type: Option<KeyType>,
    /// Trust anchors instead of the system store.
    pub ca_file: Option<&'a Path>,
    /// Certificates already parsed (the site's file and its chain): a presented certificate
    /// with the same fingerprint is taken from here instead of being parsed again, which is
    /// the common case of a server in sync. Empty when nothing is known.
    pub known: &'a [&'a CertSummary],
}

/// Which addresses of a host to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressFamily {
    /// IPv4 and IPv6.
    #[default]
    All,
    /// A records only.
    Ipv4,
    /// AAAA records only.
    Ipv6,
}

impl AddressFamily {
    /// Whether `address` belongs to the family.
    pub fn admits(self, address: &SocketAddr) -> bool {
        match self {
            Self::All => true,
            Self::Ipv4 => address.is_ipv4(),
            Self::Ipv6 => address.is_ipv6(),
        }
    }

    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
        }
    }
}

impl std::str::FromStr for AddressFamily {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "all" => Ok(Self::All),
            "ipv4" => Ok(Self::Ipv4),
            "ipv6" => Ok(Self::Ipv6),
            _ => Err(format!(
                "`{text}` is not an address family; use \"all\", \"ipv4\" or \"ipv6\""
            )),
        }
    }
}

/// How many probes may be in each stage at once: `concurrency` handshakes, and
/// [`SOCKETS_PER_HANDSHAKE`] times as many probes in all, counting those still waiting on a
/// TCP connect or the dialogue before TLS.
///
/// A handshake costs CPU; a connect waiting for an answer costs only a socket. With one bound
/// for both, a fleet where a tenth of the addresses never answer (a firewall that drops
/// packets) would have every slot waiting out connect timeouts while the reachable servers
/// queue behind them: 2,000 such addresses at a 10 s timeout hold 64 slots for over five
/// minutes, far more than a 60 s interval.
#[derive(Debug)]
pub struct ProbeLimits {
    sockets: Semaphore,
    handshakes: Semaphore,
}

impl ProbeLimits {
    /// At most `concurrency` handshakes at once (at least one), and
    /// `concurrency * SOCKETS_PER_HANDSHAKE` probes in all.
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            sockets: Semaphore::new(concurrency.saturating_mul(SOCKETS_PER_HANDSHAKE)),
            handshakes: Semaphore::new(concurrency),
        }
    }

    /// Waits for a handshake permit, also taken for a name lookup (`getaddrinfo` runs on the
    /// blocking pool, and thousands at once would queue there instead of here).
    pub async fn handshake(&self) -> SemaphorePermit<'_> {
        self.handshakes
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    async fn socket(&self) -> SemaphorePermit<'_> {
        self.sockets
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }
}

/// How many probes may hold a socket per handshake permit (see [`ProbeLimits`]). At the
/// default concurrency of 64, 512 sockets stay under the 1,024 open files a service gets by
/// default.
pub const SOCKETS_PER_HANDSHAKE: usize = 8;

/// The most certificates a served chain may hold. Real chains have two to four; a few more
/// allow cross-signs. More is a misconfiguration or an attack on the prober's memory.
pub const MAX_CHAIN_CERTS: usize = 10;

/// Runs probes. Build one and share it: it holds the TLS client configurations and the trust
/// stores, which are costly to build.
#[derive(Clone)]
pub struct Prober {
    any_key: TlsConnector,
    ecdsa_only: TlsConnector,
    rsa_only: TlsConnector,
    system_roots: ChainVerifier,
    ca_files: HashMap<PathBuf, ChainVerifier>,
    probes_made: Arc<AtomicU64>,
}

impl Prober {
    /// A prober that verifies against the system trust store, plus a verifier for each CA
    /// file in `ca_files`.
    ///
    /// # Errors
    ///
    /// A message naming the CA file that cannot be read or holds no certificate.
    pub fn new<'a>(ca_files: impl IntoIterator<Item = &'a Path>) -> Result<Self, String> {
        let provider = crypto_provider();
        let mut verifiers = HashMap::new();
        for path in ca_files {
            if !verifiers.contains_key(path) {
                verifiers.insert(
                    path.to_owned(),
                    ChainVerifier::from_ca_file(path, provider.clone())?,
                );
            }
        }
        Ok(Self {
            any_key: connector(&provider, None)?,
            ecdsa_only: connector(&provider, Some(KeyType::Ecdsa))?,
            rsa_only: connector(&provider, Some(KeyType::Rsa))?,
            system_roots: ChainVerifier::system(provider),
            ca_files: verifiers,
            probes_made: Arc::new(AtomicU64::new(0)),
        })
    }

    /// How many probes this prober (and its clones) finished, failed ones included: the
    /// fleet benchmark divides CPU time by it.
    pub fn probes_made(&self) -> u64 {
        self.probes_made.load(Ordering::Relaxed)
    }

    /// Resolves `host` to the addresses of `family`, in the resolver's order without
    /// repeats.
    ///
    /// An IP address is returned as is. Names go through the system resolver
    /// (`getaddrinfo`), so `/etc/hosts` and nsswitch apply as they do for the servers.
    ///
    /// # Errors
    ///
    /// [`ProbeError::Dns`] when the name does not resolve or has no address of `family`,
    /// [`ProbeError::Timeout`] when the resolver does not answer before `deadline`.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        family: AddressFamily,
        deadline: Instant,
    ) -> Result<Vec<SocketAddr>, ProbeError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let started = Instant::now();
        let found = timeout_at(deadline, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| ProbeError::Timeout {
                phase: Phase::Resolve,
                after: started.elapsed(),
                hint: None,
            })?
            .map_err(|err| ProbeError::Dns {
                host: host.to_owned(),
                detail: err.to_string(),
            })?;
        let mut addresses: Vec<SocketAddr> = Vec::new();
        for address in found.filter(|address| family.admits(address)) {
            if !addresses.contains(&address) {
                addresses.push(address);
            }
        }
        if addresses.is_empty() {
            return Err(ProbeError::Dns {
                host: host.to_owned(),
                detail: match family {
                    AddressFamily::All => "no addresses".to_owned(),
                    other => format!("no {} addresses", other.as_str()),
                },
            });
        }
        Ok(addresses)
    }

    /// Connects to the target, speaks its protocol's preamble, handshakes, and returns the
    /// presented chain with its verification.
    ///
    /// The probe holds a socket slot of `limits` throughout and a handshake permit for the
    /// handshake; time spent waiting for the permit does not count against `timeouts`.
    ///
    /// # Errors
    ///
    /// A [`ProbeError`] saying which step failed and how.
    pub async fn probe(
        &self,
        target: &Target<'_>,
        timeouts: &Timeouts,
        limits: &ProbeLimits,
    ) -> Result<Served, ProbeError> {
        let _socket = limits.socket().await;
        let result = self.connect_and_handshake(target, timeouts, limits).await;
        self.probes_made.fetch_add(1, Ordering::Relaxed);
        result
    }

    async fn connect_and_handshake(
        &self,
        target: &Target<'_>,
        timeouts: &Timeouts,
        limits: &ProbeLimits,
    ) -> Result<Served, ProbeError> {
        let mut started = Instant::now();
        let mut deadline = started + timeouts.total;
        let phase_end = |limit: Duration, deadline: Instant| (Instant::now() + limit).min(deadline);
        let timed_out = |phase, started: Instant| ProbeError::Timeout {
            phase,
            after: started.elapsed(),
            hint: None,
        };

        let mut tcp = timeout_at(
            phase_end(timeouts.connect, deadline),
            TcpStream::connect(target.address),
        )
        .await
        .map_err(|_| timed_out(Phase::Connect, started))?
        .map_err(connect_error)?;
        // Probes are tiny request/response exchanges: Nagle would only add latency.
        let _ = tcp.set_nodelay(true);

        if target.protocol != Protocol::Tls {
            let domain = match target.server_name {
                ServerName::DnsName(name) => name.as_ref().to_owned(),
                other => other.to_str().into_owned(),
            };
            let local = tcp.local_addr().unwrap_or(target.address);
            let mut received = 0;
            timeout_at(
                phase_end(timeouts.preamble, deadline),
                starttls::negotiate(&mut tcp, target.protocol, &domain, local, &mut received),
            )
            .await
            .map_err(|_| ProbeError::Timeout {
                phase: Phase::Preamble,
                after: started.elapsed(),
                // Both sides waiting for the other is what a STARTTLS client meets on an
                // implicit-TLS port, where the server waits for a ClientHello.
                hint: (received == 0).then_some(SILENT_PREAMBLE_HINT),
            })??;
        }

        // The wait for a permit is the prober's queue, not the server's slowness: it moves
        // the deadline rather than eat into it.
        let waiting = Instant::now();
        let _permit = limits.handshake().await;
        started += waiting.elapsed();
        deadline += waiting.elapsed();

        let connector = match target.key_type {
            None => &self.any_key,
            Some(KeyType::Ecdsa) => &self.ecdsa_only,
            Some(KeyType::Rsa) => &self.rsa_only,
        };
        let tls = timeout_at(
            phase_end(timeouts.handshake, deadline),
            connector.connect(target.server_name.clone(), tcp),
        )
        .await
        .map_err(|_| timed_out(Phase::Handshake, started))?
        .map_err(handshake_error)?;
        let (_, connection) = tls.get_ref();
        let presented = connection.peer_certificates().unwrap_or_default();
        if presented.is_empty() {
            return Err(ProbeError::NoCertificate);
        }
        if presented.len() > MAX_CHAIN_CERTS {
            return Err(ProbeError::OversizedChain {
                count: presented.len(),
                limit: MAX_CHAIN_CERTS,
            });
        }
        let tls_version = match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "unknown",
        };

        let chain = presented
            .iter()
            .enumerate()
            .map(|(index, der)| {
                let fingerprint = Fingerprint::of(der);
                if let Some(known) = target
                    .known
                    .iter()
                    .find(|cert| cert.fingerprint_sha256 == fingerprint)
                {
                    return Ok(CertSummary::clone(known));
                }
                CertSummary::from_der(der).map_err(|err| ProbeError::BadCertificate {
                    index,
                    detail: err.0,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let verifier = target
            .ca_file
            .and_then(|path| self.ca_files.get(path))
            .unwrap_or(&self.system_roots);
        let verification = verifier.verify(presented, target.server_name, UnixTime::now(), &chain);

        // Say goodbye politely so servers do not log an aborted connection; the probe's
        // answer is already known, so its failure does not matter.
        let mut tls = tls;
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, tokio::io::AsyncWriteExt::shutdown(&mut tls))
            .await;

        Ok(Served {
            chain,
            verification,
            tls_version,
        })
    }
}

impl fmt::Debug for Prober {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prober")
            .field("system_roots", &self.system_roots)
            .field("ca_files", &self.ca_files.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The name to send as SNI and to verify against: `sni` if set, else `host`.
///
/// # Errors
///
/// A message when the name is neither a valid DNS name nor an IP address.
pub fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_owned())
        .map_err(|_| format!("`{name}` is not a valid DNS name or IP address"))
}

/// The time now, for callers that verify outside a probe.
pub fn unix_now() -> UnixTime {
    UnixTime::since_unix_epoch(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

/// aws-lc-rs, with the choices ordered for a monitor rather than for secrecy.
///
/// A probe carries no secrets, so the cheapest options go first: X25519 before the hybrid
/// post-quantum share (which costs ~30 µs more per handshake on this kind of machine), and
/// SHA-256 suites before SHA-384 ones (no hardware path for SHA-384 here). Every group and
/// suite stays offered, so servers that insist on one still complete the handshake.
pub(crate) fn crypto_provider() -> Arc<CryptoProvider> {
    let mut provider = aws_lc_rs::default_provider();
    provider.kx_groups.sort_by_key(|group| match group.name() {
        rustls::NamedGroup::X25519 => 0,
        rustls::NamedGroup::secp256r1 => 1,
        rustls::NamedGroup::secp384r1 => 2,
        _ => 3,
    });
    provider
        .cipher_suites
        .sort_by_key(|suite| match suite.suite() {
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => 1,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 2,
            _ => 3,
        });
    Arc::new(provider)
}

/// A TLS connector that accepts any chain and offers the signature schemes and TLS 1.2
/// suites of `key_type` only (all of them for `None`).
fn connector(
    provider: &Arc<CryptoProvider>,
    key_type: Option<KeyType>,
) -> Result<TlsConnector, String> {
    let mut provider = CryptoProvider::clone(provider);
    if let Some(key_type) = key_type {
        provider.cipher_suites.retain(|suite| match suite {
            rustls::SupportedCipherSuite::Tls13(_) => true,
            rustls::SupportedCipherSuite::Tls12(tls12) => {
                let name = format!("{:?}", tls12.common.suite);
                match key_type {
                    KeyType::Ecdsa => name.contains("_ECDSA_"),
                    KeyType::Rsa => name.contains("_RSA_"),
                }
            }
        });
    }
    let provider = Arc::new(provider);
    let verifier = verify::AcceptAnyChain::new(provider.clone(), key_type);
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|err| format!("cannot configure TLS: {err}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Ok(TlsConnector::from(Arc::new(config)))
}

fn connect_error(err: io::Error) -> ProbeError {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => ProbeError::Refused,
        _ => ProbeError::Connect(err.to_string()),
    }
}

fn handshake_error(err: io::Error) -> ProbeError {
    if let Some(tls_err) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return match tls_err {
            rustls::Error::AlertReceived(alert) => ProbeError::TlsAlert(alert_name(*alert)),
            other => ProbeError::Tls(other.to_string()),
        };
    }
    match err.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe => ProbeError::Closed {
            phase: Phase::Handshake,
        },
        _ => ProbeError::Tls(err.to_string()),
    }
}

/// The RFC 8446 name of an alert (`handshake_failure`), from rustls' `HandshakeFailure`.
fn alert_name(alert: rustls::AlertDescription) -> String {
    let debug = format!("{alert:?}");
    let mut name = String::with_capacity(debug.len() + 4);
    for (index, ch) in debug.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if index > 0 {
                name.push('_');
            }
            name.push(ch.to_ascii_lowercase());
        } else {
            name.push(ch);
        }
    }
    // rustls spells this one the British way; RFC 8446 section 6 does not.
    if name == "unrecognised_name" {
        return "unrecognized_name".to_owned();
    }
    name
}

const SHUTDOWN_GRACE: Duration = Duration::from_millis(100);

/// What a peer that sends TLS where a STARTTLS dialogue was due suggests.
pub const IMPLICIT_TLS_HINT: &str = "the port may speak TLS at once (try `protocol = \"tls\"`)";
/// What a peer that sends nothing at all during a STARTTLS dialogue suggests.
pub const SILENT_PREAMBLE_HINT: &str =
    "the server sent nothing: the port may speak TLS at once (try `protocol = \"tls\"`)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_says_its_phase_and_whole_milliseconds() {
        let err = ProbeError::Timeout {
            phase: Phase::Handshake,
            after: Duration::new(2, 718_819),
            hint: None,
        };
        assert_eq!(
            err.to_string(),
            "timed out during the TLS handshake after 2s"
        );
        let err = ProbeError::Timeout {
            phase: Phase::Connect,
            after: Duration::new(1, 5_250_000),
            hint: None,
        };
        assert_eq!(err.to_string(), "timed out during TCP connect after 1s 5ms");
    }

    #[test]
    fn alert_names_follow_the_rfc() {
        assert_eq!(
            alert_name(rustls::AlertDescription::HandshakeFailure),
            "handshake_failure"
        );
        assert_eq!(
            alert_name(rustls::AlertDescription::UnrecognisedName),
            "unrecognized_name"
        );
        assert_eq!(
            alert_name(rustls::AlertDescription::ProtocolVersion),
            "protocol_version"
        );
    }

    #[test]
    fn provider_offers_x25519_and_sha256_first() {
        let provider = crypto_provider();
        assert_eq!(provider.kx_groups[0].name(), rustls::NamedGroup::X25519);
        assert_eq!(
            provider.cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        assert_eq!(
            provider.kx_groups.len(),
            aws_lc_rs::default_provider().kx_groups.len()
        );
    }

    #[test]
    fn every_client_config_offers_x25519_and_sha256_suites_first() {
        let prober = Prober::new([]).unwrap();
        for connector in [&prober.any_key, &prober.ecdsa_only, &prober.rsa_only] {
            let config = connector.config();
            let provider = config.crypto_provider();
            let groups: Vec<_> = provider
                .kx_groups
                .iter()
                .map(|group| group.name())
                .collect();
            assert_eq!(
                groups[..3],
                [
                    rustls::NamedGroup::X25519,
                    rustls::NamedGroup::secp256r1,
                    rustls::NamedGroup::secp384r1
                ]
            );
            // The hybrid post-quantum share stays offered, after the cheap ones.
            assert!(groups.contains(&rustls::NamedGroup::X25519MLKEM768));
            let suites: Vec<_> = provider
                .cipher_suites
                .iter()
                .map(|suite| suite.suite())
                .collect();
            assert_eq!(
                suites[..3],
                [
                    rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
                    rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                    rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
                ]
            );
            // TLS 1.2 stays: many servers still speak nothing newer.
            assert!(
                provider
                    .cipher_suites
                    .iter()
                    .any(|suite| matches!(suite, rustls::SupportedCipherSuite::Tls12(_)))
            );
        }
    }

    #[test]
    fn server_name_accepts_names_and_addresses() {
        assert!(matches!(
            server_name("blog.example.org"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(matches!(server_name("::1"), Ok(ServerName::IpAddress(_))));
        assert!(server_name("not a name").is_err());
    }
}
