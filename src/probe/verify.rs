//! Two verifiers with two jobs.
//!
//! [`AcceptAnyChain`] is what the handshake uses: certdrift must see the certificate a server
//! presents whatever its state (expired, self-signed, for another name), because "the server
//! still serves last month's expired certificate" is exactly what it exists to report. It still
//! checks the handshake signature against the presented leaf, so the chain certdrift records is
//! one the server holds the key for, not bytes anyone on the path could replay.
//!
//! [`ChainVerifier`] then checks the presented chain against a trust store, separately, and its
//! outcome is reported beside the result, never instead of it. A server presents the same
//! chain probe after probe, so the outcome is reused per distinct chain and name (see
//! [`VERIFICATION_MAX_AGE`]); the handshake signature is checked on every probe.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::digest;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use serde::Serialize;
use time::OffsetDateTime;

use crate::cert::{CertSummary, Fingerprint};
use crate::probe::KeyType;

/// Accepts any certificate chain but checks the handshake signature.
#[derive(Debug)]
pub(crate) struct AcceptAnyChain {
    provider: Arc<CryptoProvider>,
    schemes: Vec<SignatureScheme>,
}

impl AcceptAnyChain {
    /// Offers the signature schemes of `key_type` that the provider verifies, or all of them
    /// for `None`.
    pub(crate) fn new(provider: Arc<CryptoProvider>, key_type: Option<KeyType>) -> Self {
        let mut schemes = provider
            .signature_verification_algorithms
            .supported_schemes();
        if let Some(key_type) = key_type {
            schemes.retain(|scheme| scheme_key_type(*scheme) == Some(key_type));
        }
        Self { provider, schemes }
    }
}

/// The key family a signature scheme belongs to; `None` for EdDSA and legacy schemes.
pub(crate) fn scheme_key_type(scheme: SignatureScheme) -> Option<KeyType> {
    use SignatureScheme::*;
    match scheme {
        ECDSA_NISTP256_SHA256 | ECDSA_NISTP384_SHA384 | ECDSA_NISTP521_SHA512 => {
            Some(KeyType::Ecdsa)
        }
        RSA_PKCS1_SHA256 | RSA_PKCS1_SHA384 | RSA_PKCS1_SHA512 | RSA_PSS_SHA256
        | RSA_PSS_SHA384 | RSA_PSS_SHA512 => Some(KeyType::Rsa),
        _ => None,
    }
}

impl ServerCertVerifier for AcceptAnyChain {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// Whether a served chain leads to a trusted root and is valid for the name, as a browser
/// would decide (without revocation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Verification {
    /// The chain verifies for the name at the time of the probe.
    Trusted,
    /// It does not; `reason` says why.
    Untrusted {
        /// Why, in a few words: `expired`, `unknown issuer`, `not valid for name ...`.
        reason: String,
    },
}

impl Verification {
    /// Whether the chain verified.
    pub fn is_trusted(&self) -> bool {
        matches!(self, Self::Trusted)
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Trusted => f.write_str("trusted"),
            Self::Untrusted { reason } => write!(f, "untrusted: {reason}"),
        }
    }
}

/// Verifies chains against one set of trust anchors, reusing each outcome while it holds.
#[derive(Clone)]
pub struct ChainVerifier {
    inner: Result<Arc<WebPkiServerVerifier>, String>,
    cache: Arc<VerificationCache>,
}

/// How long a verification outcome is reused at most, however far the chain's own validity
/// boundaries are.
///
/// An outcome is reused while the chain (every certificate's fingerprint, in order) and the
/// name are the same, until the first not-before or not-after of a presented certificate
/// passes, and for this long at most, so what the presented chain cannot show (a trust
/// anchor's own expiry) is seen within an hour. Verifying a chain (path building and every
/// signature on the path) costs about twice the handshake signature check, which stays on
/// every probe.
pub const VERIFICATION_MAX_AGE: Duration = Duration::from_secs(3600);

/// The most outcomes kept per trust store: a few per site even for 10,000 sites. Past it,
/// outcomes that are no longer fresh go first, then all of them.
const VERIFICATION_CACHE_ENTRIES: usize = 65_536;

impl ChainVerifier {
    /// Trusts the system's store (the files `rustls-native-certs` finds, such as
    /// `/etc/ssl/certs/ca-certificates.crt`).
    ///
    /// A store that cannot be read or is empty is not an error here: every chain then
    /// verifies as untrusted with the reason, and probes go on.
    pub fn system(provider: Arc<CryptoProvider>) -> Self {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let detail = match found.errors.first() {
                Some(err) => format!("no trusted roots in the system store ({err})"),
                None => "no trusted roots in the system store".to_owned(),
            };
            return Self {
                inner: Err(detail),
                cache: Arc::default(),
            };
        }
        Self::from_roots(roots, provider)
    }

    /// Trusts only the certificates in the PEM file `path`.
    ///
    /// # Errors
    ///
    /// A message naming the file when it cannot be read or holds no certificate.
    pub fn from_ca_file(path: &Path, provider: Arc<CryptoProvider>) -> Result<Self, String> {
        let unreadable =
            |err: std::io::Error| format!("{}: cannot read the CA file: {err}", path.display());
        let mut text = Vec::new();
        crate::disk::open_regular(path)
            .and_then(|file| file.take(MAX_CA_FILE_BYTES + 1).read_to_end(&mut text))
            .map_err(unreadable)?;
        if text.len() as u64 > MAX_CA_FILE_BYTES {
            return Err(format!(
                "{}: larger than {} MiB, not a CA file",
                path.display(),
                MAX_CA_FILE_BYTES >> 20
            ));
        }
        let certs = CertificateDer::pem_slice_iter(&text)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| format!("{}: bad PEM in the CA file: {err}", path.display()))?;
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "{}: the CA file holds no usable certificate",
                path.display()
            ));
        }
        Ok(Self::from_roots(roots, provider))
    }

    fn from_roots(roots: RootCertStore, provider: Arc<CryptoProvider>) -> Self {
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|err| format!("cannot build a verifier: {err}"));
        Self {
            inner,
            cache: Arc::default(),
        }
    }

    /// Verifies `chain` (leaf first) for `name` at `now`; `summaries` are the same
    /// certificates parsed, in the same order, to say which one expired and to recognise a
    /// chain verified before (see [`VERIFICATION_MAX_AGE`]).
    pub fn verify(
        &self,
        chain: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        now: UnixTime,
        summaries: &[CertSummary],
    ) -> Verification {
        let key = cache_key(name, summaries);
        let now_secs = now.as_secs() as i64;
        if let Some(verification) = self.cache.fresh(&key, now_secs) {
            return verification;
        }
        let verification = self.verify_uncached(chain, name, now, summaries);
        self.cache.insert(
            key,
            verification.clone(),
            fresh_until(summaries, now_secs),
            now_secs,
        );
        verification
    }

    fn verify_uncached(
        &self,
        chain: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        now: UnixTime,
        summaries: &[CertSummary],
    ) -> Verification {
        let verifier = match &self.inner {
            Ok(verifier) => verifier,
            Err(reason) => {
                return Verification::Untrusted {
                    reason: reason.clone(),
                };
            }
        };
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Verification::Untrusted {
                reason: "no certificate".to_owned(),
            };
        };
        match verifier.verify_server_cert(leaf, intermediates, name, &[], now) {
            Ok(_) => Verification::Trusted,
            Err(err) => Verification::Untrusted {
                reason: describe_verify_error(&err, summaries, now),
            },
        }
    }
}

impl fmt::Debug for ChainVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainVerifier")
            .field("usable", &self.inner.is_ok())
            .field("cache", &self.cache)
            .finish()
    }
}

/// Verification outcomes by chain and name, each with the Unix second it stops being fresh.
#[derive(Default)]
struct VerificationCache {
    entries: Mutex<HashMap<Fingerprint, (Verification, i64)>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl VerificationCache {
    /// The outcome stored for `key`, if it is still fresh at `now` (Unix seconds).
    fn fresh(&self, key: &Fingerprint, now: i64) -> Option<Verification> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match entries.get(key) {
            Some((verification, until)) if now < *until => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(verification.clone())
            }
            _ => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn insert(&self, key: Fingerprint, verification: Verification, until: i64, now: i64) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= VERIFICATION_CACHE_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, (_, until)| now < *until);
            if entries.len() >= VERIFICATION_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (verification, until));
    }
}

impl fmt::Debug for VerificationCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationCache")
            .field("hits", &self.hits.load(Ordering::Relaxed))
            .field("misses", &self.misses.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The identity of a verification: SHA-256 over the name and every certificate's
/// fingerprint, in order.
fn cache_key(name: &ServerName<'_>, summaries: &[CertSummary]) -> Fingerprint {
    let mut context = digest::Context::new(&digest::SHA256);
    match name {
        ServerName::DnsName(dns) => context.update(dns.as_ref().as_bytes()),
        other => context.update(other.to_str().as_bytes()),
    }
    // A separator no DNS name or address text holds, so names and fingerprints cannot run
    // into each other.
    context.update(&[0]);
    for cert in summaries {
        context.update(&cert.fingerprint_sha256.0);
    }
    let mut bytes = [0; 32];
    bytes.copy_from_slice(context.finish().as_ref());
    Fingerprint(bytes)
}

/// The Unix second from which an outcome found at `now` may differ: the first validity
/// boundary of a certificate in `summaries` still ahead (a not-before, or the second after a
/// not-after, RFC 5280 section 4.1.2.5), or `now` plus [`VERIFICATION_MAX_AGE`] if sooner.
fn fresh_until(summaries: &[CertSummary], now: i64) -> i64 {
    let mut until = now.saturating_add(VERIFICATION_MAX_AGE.as_secs() as i64);
    for cert in summaries {
        let not_before = cert.not_before.unix_timestamp();
        let after_not_after = cert.not_after.unix_timestamp().saturating_add(1);
        if not_before > now {
            until = until.min(not_before);
        }
        if after_not_after > now {
            until = until.min(after_not_after);
        }
    }
    until
}

/// Turns a webpki verdict into a short reason a person can act on.
///
/// webpki says "expired" for any certificate of the path; an expired intermediate or
/// cross-sign must not read as the server's own certificate expiring, so the dates say which.
fn describe_verify_error(err: &Error, summaries: &[CertSummary], now: UnixTime) -> String {
    let Error::InvalidCertificate(cert_err) = err else {
        return err.to_string();
    };
    match cert_err {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            let now = OffsetDateTime::from_unix_timestamp(now.as_secs() as i64)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            match summaries.iter().position(|cert| cert.not_after < now) {
                Some(0) | None => "expired".to_owned(),
                Some(index) => format!(
                    "expired intermediate {} (certificate {index} of the chain)",
                    summaries[index].subject
                ),
            }
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "not yet valid".to_owned()
        }
        CertificateError::UnknownIssuer => {
            "unknown issuer (self-signed, a private CA, or an incomplete chain)".to_owned()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "not valid for the name".to_owned()
        }
        CertificateError::BadSignature => "bad signature in the chain".to_owned(),
        CertificateError::Revoked => "revoked".to_owned(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "not issued for TLS server authentication".to_owned()
        }
        CertificateError::BadEncoding => "a certificate in the chain is not valid DER".to_owned(),
        CertificateError::UnhandledCriticalExtension => {
            "a certificate in the chain has a critical extension the verifier does not know"
                .to_owned()
        }
        CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "a certificate in the chain is signed with an algorithm the verifier does not support"
                .to_owned()
        }
        CertificateError::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(webpki_err) => describe_webpki_error(webpki_err),
            None => format!("rejected by the verifier: {}", other.0),
        },
        _ => format!("rejected by the verifier: {}", words_of(cert_err)),
    }
}

/// The webpki errors rustls passes through without a variant of its own, in words.
fn describe_webpki_error(err: &webpki::Error) -> String {
    use webpki::Error::*;
    let reason = match err {
        CaUsedAsEndEntity => {
            "a CA certificate is used as the server certificate (e.g. self-signed with CA:TRUE)"
        }
        EndEntityUsedAsCa => {
            "a certificate that is not a CA (CA:FALSE or no basicConstraints) issued another \
             one in the chain"
        }
        CertDistrusted => "a certificate in the chain is distrusted",
        PathLenConstraintViolated => "the chain is longer than a CA's pathLenConstraint allows",
        NameConstraintViolation => "a name is outside a CA's name constraints",
        MaximumPathDepthExceeded => "the chain is too long to verify",
        MaximumSignatureChecksExceeded | MaximumPathBuildCallsExceeded => {
            "the chain takes too many steps to verify (many candidate intermediates)"
        }
        SignatureAlgorithmMismatch => {
            "a certificate's signature algorithm differs from the one it is signed with"
        }
        UnsupportedCertVersion => "a certificate in the chain is not X.509 version 3",
        UnsupportedCriticalExtension => {
            "a certificate in the chain has a critical extension the verifier does not know"
        }
        MalformedExtensions | ExtensionValueInvalid => {
            "a certificate in the chain has a malformed extension"
        }
        EmptyEkuExtension => "a certificate has an empty extendedKeyUsage extension",
        MalformedDnsIdentifier | MalformedNameConstraint => {
            "a certificate in the chain has a malformed name"
        }
        InvalidSerialNumber => "a certificate in the chain has an invalid serial number",
        UnsupportedNameType => {
            "a certificate in the chain has a name type the verifier does not support"
        }
        _ => return format!("rejected by the verifier: {}", words_of(err)),
    };
    reason.to_owned()
}

/// An error's variant name in lower-case words (`MaximumPathDepthExceeded` → `maximum path
/// depth exceeded`), for errors the lists above do not know yet; without its fields.
fn words_of(err: &impl fmt::Debug) -> String {
    let debug = format!("{err:?}");
    let name: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut words = String::with_capacity(name.len() + 8);
    for (index, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && index > 0 {
            words.push(' ');
        }
        words.push(c.to_ascii_lowercase());
    }
    words
}

/// The most a `ca_file` may weigh. The system bundle is about 200 KiB; a file much larger is
/// not a CA file (`/dev/zero`, a log named by mistake).
const MAX_CA_FILE_BYTES: u64 = 16 << 20;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::OtherError;
    use rustls::pki_types::pem::PemObject;

    use super::*;
    use crate::demo::ca::{IssuedCert, LeafSpec, TestCa};
    use crate::probe::crypto_provider;

    #[test]
    fn a_ca_certificate_served_as_the_leaf_reads_as_such() {
        let ca = TestCa::new("Leaf Test CA");
        let root = CertificateDer::from_pem_slice(ca.root_pem().as_bytes()).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(root.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = ChainVerifier::from_roots(roots, provider);
        let name = ServerName::try_from("leaf.certdrift.test").unwrap();
        let summary = CertSummary::from_der(&root).unwrap();

        let outcome = verifier.verify(&[root], &name, UnixTime::now(), &[summary]);
        assert_eq!(
            outcome.to_string(),
            "untrusted: a CA certificate is used as the server certificate \
             (e.g. self-signed with CA:TRUE)"
        );
    }

    #[test]
    fn verifier_errors_read_as_words_never_as_debug() {
        let now = UnixTime::now();
        let other = |err: webpki::Error| {
            Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(err))))
        };
        let cases = [
            (
                other(webpki::Error::EndEntityUsedAsCa),
                "a certificate that is not a CA (CA:FALSE or no basicConstraints) issued \
                 another one in the chain",
            ),
            (
                other(webpki::Error::PathLenConstraintViolated),
                "the chain is longer than a CA's pathLenConstraint allows",
            ),
            (
                other(webpki::Error::UnsupportedCrlVersion),
                "rejected by the verifier: unsupported crl version",
            ),
            (
                Error::InvalidCertificate(CertificateError::BadEncoding),
                "a certificate in the chain is not valid DER",
            ),
            (
                Error::InvalidCertificate(CertificateError::InvalidOcspResponse),
                "rejected by the verifier: invalid ocsp response",
            ),
        ];
        for (err, expected) in cases {
            assert_eq!(describe_verify_error(&err, &[], now), expected);
        }
    }

    fn verifier_for(ca: &TestCa) -> ChainVerifier {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca.root_pem().as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        ChainVerifier::from_roots(roots, crypto_provider())
    }

    fn chain_of(issued: &IssuedCert) -> (Vec<CertificateDer<'static>>, Vec<CertSummary>) {
        let ders: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(issued.fullchain_pem().as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let summaries = ders
            .iter()
            .map(|der| CertSummary::from_der(der).unwrap())
            .collect();
        (ders, summaries)
    }

    fn name(text: &str) -> ServerName<'static> {
        ServerName::try_from(text.to_owned()).unwrap()
    }

    fn at(when: OffsetDateTime) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(when.unix_timestamp() as u64))
    }

    fn counts(verifier: &ChainVerifier) -> (u64, u64) {
        (
            verifier.cache.hits.load(Ordering::Relaxed),
            verifier.cache.misses.load(Ordering::Relaxed),
        )
    }

    #[test]
    fn reuses_the_outcome_for_the_same_chain_and_name() {
        let ca = TestCa::new("Cache Hit CA");
        let (ders, summaries) = chain_of(&ca.issue(&LeafSpec::new(["www.example.org"])));
        let verifier = verifier_for(&ca);
        let now = at(OffsetDateTime::now_utc());

        let first = verifier.verify(&ders, &name("www.example.org"), now, &summaries);
        let second = verifier.verify(&ders, &name("www.example.org"), now, &summaries);

        assert_eq!(first, Verification::Trusted);
        assert_eq!(second, Verification::Trusted);
        assert_eq!(counts(&verifier), (1, 1));
    }

    #[test]
    fn verifies_again_when_the_chain_or_the_name_changes() {
        let ca = TestCa::new("Cache Miss CA");
        let other_ca = TestCa::new("Another CA");
        let (ders, summaries) = chain_of(&ca.issue(&LeafSpec::new(["www.example.org"])));
        let (foreign, foreign_summaries) =
            chain_of(&other_ca.issue(&LeafSpec::new(["www.example.org"])));
        let verifier = verifier_for(&ca);
        let now = at(OffsetDateTime::now_utc());

        let trusted = verifier.verify(&ders, &name("www.example.org"), now, &summaries);
        let other_chain =
            verifier.verify(&foreign, &name("www.example.org"), now, &foreign_summaries);
        let other_name = verifier.verify(&ders, &name("mail.example.org"), now, &summaries);

        assert_eq!(trusted, Verification::Trusted);
        assert_eq!(
            other_chain,
            Verification::Untrusted {
                reason: "unknown issuer (self-signed, a private CA, or an incomplete chain)"
                    .to_owned()
            }
        );
        assert_eq!(
            other_name,
            Verification::Untrusted {
                reason: "not valid for the name".to_owned()
            }
        );
        assert_eq!(counts(&verifier), (0, 3));
    }

    #[test]
    fn verifies_again_once_a_certificate_expires() {
        let ca = TestCa::new("Cache Expiry CA");
        let not_after = time::macros::datetime!(2030-06-01 0:00 UTC);
        let spec = LeafSpec::new(["www.example.org"])
            .valid_between(time::macros::datetime!(2030-01-01 0:00 UTC), not_after);
        let (ders, summaries) = chain_of(&ca.issue(&spec));
        let verifier = verifier_for(&ca);
        let www = name("www.example.org");

        let before = verifier.verify(
            &ders,
            &www,
            at(not_after - time::Duration::minutes(1)),
            &summaries,
        );
        let at_the_end = verifier.verify(&ders, &www, at(not_after), &summaries);
        let after = verifier.verify(
            &ders,
            &www,
            at(not_after + time::Duration::seconds(1)),
            &summaries,
        );

        assert_eq!(before, Verification::Trusted);
        assert_eq!(at_the_end, Verification::Trusted);
        assert_eq!(
            after,
            Verification::Untrusted {
                reason: "expired".to_owned()
            }
        );
        assert_eq!(counts(&verifier), (1, 2));
    }

    #[test]
    fn verifies_again_after_the_max_age() {
        let ca = TestCa::new("Cache Age CA");
        let (ders, summaries) = chain_of(&ca.issue(&LeafSpec::new(["www.example.org"])));
        let verifier = verifier_for(&ca);
        let www = name("www.example.org");
        let now = OffsetDateTime::now_utc();
        let max_age = time::Duration::seconds(VERIFICATION_MAX_AGE.as_secs() as i64);

        verifier.verify(&ders, &www, at(now), &summaries);
        verifier.verify(
            &ders,
            &www,
            at(now + max_age - time::Duration::seconds(1)),
            &summaries,
        );
        verifier.verify(&ders, &www, at(now + max_age), &summaries);

        assert_eq!(counts(&verifier), (1, 2));
    }

    #[test]
    fn freshness_ends_at_the_first_boundary_ahead() {
        let ca = TestCa::new("Boundary CA");
        let not_before = time::macros::datetime!(2030-01-01 0:00 UTC);
        let not_after = time::macros::datetime!(2030-01-01 0:30 UTC);
        let spec = LeafSpec::new(["www.example.org"]).valid_between(not_before, not_after);
        let (_, summaries) = chain_of(&ca.issue(&spec));
        let start = not_before.unix_timestamp();

        // Not yet valid: fresh until it becomes valid.
        assert_eq!(fresh_until(&summaries, start - 10), start);
        // Valid: fresh until the second after its not-after, within the max age.
        assert_eq!(
            fresh_until(&summaries, start),
            not_after.unix_timestamp() + 1
        );
        // Expired: nothing ahead but the max age.
        let later = not_after.unix_timestamp() + 100;
        assert_eq!(
            fresh_until(&summaries, later),
            later + VERIFICATION_MAX_AGE.as_secs() as i64
        );
    }
}
