//! A throw-away certificate authority: a root, one intermediate, and leaves with chosen names,
//! dates, serials and key types.
//!
//! `certdrift demo` uses it to show the main job with nothing configured, and the tests use it
//! to build every chain they need on fixed dates (expired, not yet valid, renewed with the same
//! key, issued by another intermediate). Nothing here is meant to protect anything: keys live
//! in memory and in the demo's temporary directory only.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::cert::CertSummary;

/// The key algorithm of a leaf certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256, what ACME clients make by default.
    #[default]
    EcdsaP256,
    /// RSA 2048 with SHA-256.
    Rsa2048,
}

/// What a leaf certificate should say.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    names: Vec<String>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    serial: Option<Vec<u8>>,
    key_algorithm: KeyAlgorithm,
    key_pem: Option<String>,
}

impl LeafSpec {
    /// A leaf for `names` (DNS names or IP addresses), valid from an hour ago for 90 days.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let not_before = truncate_to_second(OffsetDateTime::now_utc() - Duration::hours(1));
        Self {
            names: names.into_iter().map(Into::into).collect(),
            not_before,
            not_after: not_before + Duration::days(90),
            serial: None,
            key_algorithm: KeyAlgorithm::default(),
            key_pem: None,
        }
    }

    /// Sets the validity period.
    pub fn valid_between(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    /// Sets the serial number's content bytes; the default is random.
    pub fn serial(mut self, bytes: &[u8]) -> Self {
        self.serial = Some(bytes.to_vec());
        self
    }

    /// Sets the key algorithm of a freshly made key. Ignored with [`LeafSpec::reuse_key`].
    pub fn key_algorithm(mut self, algorithm: KeyAlgorithm) -> Self {
        self.key_algorithm = algorithm;
        self
    }

    /// Reuses a PKCS#8 PEM private key, as `certbot renew --reuse-key` does.
    pub fn reuse_key(mut self, key_pem: &str) -> Self {
        self.key_pem = Some(key_pem.to_owned());
        self
    }
}

/// A leaf certificate with its private key and the chain that goes with it.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    der: Vec<u8>,
    pem: String,
    key_pem: String,
    chain_pem: String,
}

impl IssuedCert {
    /// The leaf's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The leaf alone, as certbot's `cert.pem`.
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// The intermediate, as certbot's `chain.pem`.
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// Leaf then intermediate, as certbot's `fullchain.pem`.
    pub fn fullchain_pem(&self) -> String {
        format!("{}{}", self.pem, self.chain_pem)
    }

    /// The private key in PKCS#8 PEM, as certbot's `privkey.pem`.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The leaf's summary.
    pub fn summary(&self) -> CertSummary {
        // The DER was made by rcgen a moment ago; x509-parser reads all of what rcgen writes.
        CertSummary::from_der(&self.der).expect("rcgen output parses")
    }
}

/// A root and an intermediate that issue leaves. Cheap to clone.
#[derive(Clone)]
pub struct TestCa {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    root: Arc<CertifiedIssuer<'static, KeyPair>>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    /// Makes a root called `NAME Root` and an intermediate called `NAME`, which signs leaves.
    ///
    /// Both are valid from 2000 to 2100, so that leaf dates alone decide what tests see.
    pub fn new(name: &str) -> Self {
        let root = CertifiedIssuer::self_signed(
            ca_params(&format!("{name} Root")),
            new_key(KeyAlgorithm::EcdsaP256),
        )
        .expect("rcgen signs a root");
        let intermediate =
            CertifiedIssuer::signed_by(ca_params(name), new_key(KeyAlgorithm::EcdsaP256), &root)
                .expect("rcgen signs an intermediate");
        Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                root: Arc::new(root),
                intermediate,
            }),
        }
    }

    /// The same root with a new intermediate of the same name but a new key, as a CA's key
    /// rotation makes. Leaves it issues link to the old intermediate by name only.
    pub fn rotate_intermediate(&self) -> Self {
        let intermediate = CertifiedIssuer::signed_by(
            ca_params(&self.inner.name),
            new_key(KeyAlgorithm::EcdsaP256),
            &*self.inner.root,
        )
        .expect("rcgen signs an intermediate");
        Self {
            inner: Arc::new(Inner {
                name: self.inner.name.clone(),
                root: self.inner.root.clone(),
                intermediate,
            }),
        }
    }

    /// This CA's root, cross-signed by `other`'s root for the given period, in PEM: the kind
    /// of certificate that keeps old clients working and later expires in served chains.
    pub fn cross_signed_root(
        &self,
        other: &TestCa,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> String {
        let mut params = ca_params(&format!("{} Root", self.inner.name));
        params.not_before = not_before;
        params.not_after = not_after;
        params
            .signed_by(self.inner.root.key(), &*other.inner.root)
            .expect("rcgen cross-signs a root")
            .pem()
    }

    /// The intermediate in PEM.
    pub fn intermediate_pem(&self) -> String {
        self.inner.intermediate.pem()
    }

    /// Issues a leaf as `spec` says.
    pub fn issue(&self, spec: &LeafSpec) -> IssuedCert {
        let mut params = CertificateParams::new(spec.names.clone())
            .expect("leaf names are valid DNS names or IP addresses");
        let mut dn = DistinguishedName::new();
        if let Some(first) = spec.names.first() {
            dn.push(DnType::CommonName, first.as_str());
        }
        params.distinguished_name = dn;
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.serial_number = spec.serial.as_deref().map(SerialNumber::from_slice);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];

        let key = match &spec.key_pem {
            Some(pem) => KeyPair::from_pem(pem).expect("a reused key is a PEM key rcgen made"),
            None => new_key(spec.key_algorithm),
        };
        let cert = params
            .signed_by(&key, &self.inner.intermediate)
            .expect("rcgen signs a leaf");
        IssuedCert {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            chain_pem: self.inner.intermediate.pem(),
        }
    }

    /// The root in PEM, to use as a trust anchor.
    pub fn root_pem(&self) -> String {
        self.inner.root.pem()
    }

    /// The intermediate's DER.
    pub fn intermediate_der(&self) -> &[u8] {
        self.inner.intermediate.der()
    }

    /// The intermediate's summary.
    pub fn intermediate_summary(&self) -> CertSummary {
        CertSummary::from_der(self.intermediate_der()).expect("rcgen output parses")
    }
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.use_authority_key_identifier_extension = true;
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    params
}

fn new_key(algorithm: KeyAlgorithm) -> KeyPair {
    let made = match algorithm {
        KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyAlgorithm::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        }
    };
    made.expect("aws-lc-rs generates keys")
}

fn truncate_to_second(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}
