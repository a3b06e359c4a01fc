//! A small TLS server on a local socket that serves one certificate until told to "reload".
//!
//! It stands in for nginx in the demo and in tests: like a real server, it keeps serving the
//! certificate it loaded, whatever happens on disk, until [`LocalTlsServer::reload`] hands it a
//! new one. It accepts any client, completes the handshake, then waits for the client to close.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::probe::KeyType;
use crate::probe::verify::scheme_key_type;

/// A TLS server on a local address, serving a certificate that can be swapped.
///
/// Dropping it stops accepting connections.
pub struct LocalTlsServer {
    addr: SocketAddr,
    current: Arc<CurrentCert>,
    handshakes: Arc<HandshakeCounts>,
    accept_task: JoinHandle<()>,
}

/// How many handshakes completed, full and resumed.
#[derive(Debug, Default)]
struct HandshakeCounts {
    full: AtomicUsize,
    resumed: AtomicUsize,
}

impl LocalTlsServer {
    /// Binds `bind` (use port 0 for any free port) and starts serving `chain_pem` with
    /// `key_pem`.
    ///
    /// # Errors
    ///
    /// A bind failure, or PEM that does not hold a certificate chain and a usable key.
    pub async fn start(bind: SocketAddr, chain_pem: &str, key_pem: &str) -> io::Result<Self> {
        Self::start_with_versions(bind, chain_pem, key_pem, rustls::DEFAULT_VERSIONS).await
    }

    /// Like [`LocalTlsServer::start`], speaking only `versions` (nginx 1.22 speaks TLS 1.2
    /// only unless told otherwise).
    ///
    /// # Errors
    ///
    /// As [`LocalTlsServer::start`], or versions the crypto provider does not support.
    pub async fn start_with_versions(
        bind: SocketAddr,
        chain_pem: &str,
        key_pem: &str,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> io::Result<Self> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let current = Arc::new(CurrentCert {
            serving: RwLock::new(Serving::One(certified_key(&provider, chain_pem, key_pem)?)),
            turn: AtomicUsize::new(0),
            provider: provider.clone(),
        });
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let handshakes = Arc::new(HandshakeCounts::default());
        let accept_task = tokio::spawn(accept_loop(listener, acceptor, handshakes.clone()));
        Ok(Self {
            addr,
            current,
            handshakes,
            accept_task,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Handshakes completed so far: (full, resumed). The server keeps a session cache, as
    /// real servers do, so a client that offers resumption gets it.
    pub fn handshakes(&self) -> (usize, usize) {
        (
            self.handshakes.full.load(Ordering::SeqCst),
            self.handshakes.resumed.load(Ordering::SeqCst),
        )
    }

    /// Serves `chain_pem` and `key_pem` from the next handshake on, as a reload would.
    ///
    /// # Errors
    ///
    /// PEM that does not hold a certificate chain and a usable key; the old certificate
    /// stays in place.
    pub fn reload(&self, chain_pem: &str, key_pem: &str) -> io::Result<()> {
        let key = certified_key(&self.current.provider, chain_pem, key_pem)?;
        self.current.set(Serving::One(key));
        Ok(())
    }

    /// Serves each `(chain_pem, key_pem)` in turn, one per handshake, as a server with a
    /// worker that missed the last reload does.
    ///
    /// # Errors
    ///
    /// As [`LocalTlsServer::reload`].
    pub fn reload_rotating(&self, certs: &[(&str, &str)]) -> io::Result<()> {
        let keys = self.certified_keys(certs)?;
        self.current.set(Serving::Rotating(keys));
        Ok(())
    }

    /// Serves, to each client, the first of `certs` whose key signs with a scheme the client
    /// offers, as nginx and apache do with one ECDSA and one RSA certificate.
    ///
    /// # Errors
    ///
    /// As [`LocalTlsServer::reload`].
    pub fn reload_by_key_type(&self, certs: &[(&str, &str)]) -> io::Result<()> {
        let keys = self.certified_keys(certs)?;
        self.current.set(Serving::ByKeyType(keys));
        Ok(())
    }

    fn certified_keys(&self, certs: &[(&str, &str)]) -> io::Result<Vec<Arc<CertifiedKey>>> {
        if certs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no certificate to serve",
            ));
        }
        certs
            .iter()
            .map(|(chain, key)| certified_key(&self.current.provider, chain, key))
            .collect()
    }
}

impl Drop for LocalTlsServer {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl std::fmt::Debug for LocalTlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTlsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The certificates handed to handshakes, and how to pick one.
#[derive(Debug)]
struct CurrentCert {
    serving: RwLock<Serving>,
    turn: AtomicUsize,
    provider: Arc<CryptoProvider>,
}

#[derive(Debug)]
enum Serving {
    One(Arc<CertifiedKey>),
    Rotating(Vec<Arc<CertifiedKey>>),
    ByKeyType(Vec<Arc<CertifiedKey>>),
}

impl CurrentCert {
    fn set(&self, serving: Serving) {
        *self
            .serving
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = serving;
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let serving = self
            .serving
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*serving {
            Serving::One(key) => Some(key.clone()),
            Serving::Rotating(keys) => {
                let turn = self.turn.fetch_add(1, Ordering::Relaxed);
                Some(keys[turn % keys.len()].clone())
            }
            Serving::ByKeyType(keys) => keys
                .iter()
                .find(|key| {
                    let wanted = match key.key.algorithm() {
                        rustls::SignatureAlgorithm::ECDSA => Some(KeyType::Ecdsa),
                        rustls::SignatureAlgorithm::RSA => Some(KeyType::Rsa),
                        _ => None,
                    };
                    hello
                        .signature_schemes()
                        .iter()
                        .any(|scheme| wanted.is_some() && scheme_key_type(*scheme) == wanted)
                })
                .cloned(),
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: Arc<HandshakeCounts>,
) {
    loop {
        let Ok((tcp, _peer)) = listener.accept().await else {
            // Out of file descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        let handshakes = handshakes.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let counter = match tls.get_ref().1.handshake_kind() {
                Some(rustls::HandshakeKind::Resumed) => &handshakes.resumed,
                _ => &handshakes.full,
            };
            counter.fetch_add(1, Ordering::SeqCst);
            // Hold the connection until the client is done, as a real server would.
            let mut buf = [0u8; 512];
            let _ = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await;
        });
    }
}

fn certified_key(
    provider: &CryptoProvider,
    chain_pem: &str,
    key_pem: &str,
) -> io::Result<Arc<CertifiedKey>> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("certificate PEM: {err}"),
            )
        })?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, format!("key PEM: {err}")))?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, format!("key: {err}")))?;
    Ok(Arc::new(CertifiedKey::new(chain, signing_key)))
}
