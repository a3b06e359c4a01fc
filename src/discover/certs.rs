//! What discovery needs to know about a certificate file a server names: the names its leaf
//! covers (to choose an SNI name when the server config has none, and a lineage's domains),
//! its key type (to tell the two files of a dual-certificate site apart), and whether a
//! private key sits in the same file (haproxy's and postfix's combined PEMs).
//!
//! The file is read the way `check` reads it ([`crate::disk::load`]); the key is never
//! decoded here, only its block label is seen.

use std::path::Path;

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::disk::{self, DiskError};
use crate::probe::KeyType;

/// A certificate file, as far as discovery looks into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPeek {
    /// The leaf's DNS names (SAN, else the subject CN), lower case, in certificate order.
    pub dns_names: Vec<String>,
    /// The leaf's key type, when it is one a handshake can ask for.
    pub key_type: Option<KeyType>,
    /// Whether a private key block is in the file too.
    pub has_private_key: bool,
}

impl CertPeek {
    /// The first name that can be sent as SNI: a DNS name without a wildcard; failing that, a
    /// wildcard's name with the wildcard label replaced by `certdrift-probe`, which the
    /// wildcard certificate covers.
    pub fn sni_candidate(&self) -> Option<String> {
        self.dns_names
            .iter()
            .find(|name| !name.contains('*'))
            .cloned()
            .or_else(|| {
                self.dns_names
                    .iter()
                    .find_map(|name| name.strip_prefix("*."))
                    .map(|rest| format!("certdrift-probe.{rest}"))
            })
    }
}

/// Reads the certificate file at `path`.
///
/// # Errors
///
/// What [`disk::load`] says about the file (missing, unreadable, not PEM, no certificate).
pub fn peek(path: &Path) -> Result<CertPeek, DiskError> {
    let (cert, blocks) = disk::load_blocks(path)?;
    let key_type = blocks
        .iter()
        .find(|block| block.is_certificate())
        .and_then(|block| key_type_of(&block.der));
    let has_private_key = blocks
        .iter()
        .any(|block| block.label.ends_with("PRIVATE KEY"));
    Ok(CertPeek {
        dns_names: cert.leaf.dns_names.clone(),
        key_type,
        has_private_key,
    })
}

/// The key type of the certificate in `der`: RSA or ECDSA (EdDSA and others are neither).
pub fn key_type_of(der: &[u8]) -> Option<KeyType> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    match cert
        .public_key()
        .algorithm
        .algorithm
        .to_id_string()
        .as_str()
    {
        RSA_ENCRYPTION | RSASSA_PSS => Some(KeyType::Rsa),
        EC_PUBLIC_KEY => Some(KeyType::Ecdsa),
        _ => None,
    }
}

/// rsaEncryption (RFC 8017, appendix A.1).
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
/// id-RSASSA-PSS (RFC 8017, appendix A.2.3).
const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
/// id-ecPublicKey (RFC 5480, section 2.1.1).
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::ca::{KeyAlgorithm, LeafSpec, TestCa};

    #[test]
    fn reads_names_key_type_and_a_combined_key() {
        let ca = TestCa::new("Peek CA");
        let dir = tempfile::tempdir().unwrap();
        let rsa = ca.issue(
            &LeafSpec::new(["*.example.test", "example.test"]).key_algorithm(KeyAlgorithm::Rsa2048),
        );
        let ecdsa = ca.issue(&LeafSpec::new(["*.example.test"]));
        let rsa_path = dir.path().join("rsa.pem");
        std::fs::write(&rsa_path, rsa.fullchain_pem()).unwrap();
        let combined = dir.path().join("combined.pem");
        std::fs::write(
            &combined,
            format!("{}{}", ecdsa.fullchain_pem(), ecdsa.key_pem()),
        )
        .unwrap();

        let peeked = peek(&rsa_path).unwrap();
        assert_eq!(peeked.key_type, Some(KeyType::Rsa));
        assert!(!peeked.has_private_key);
        assert_eq!(peeked.sni_candidate().as_deref(), Some("example.test"));

        let peeked = peek(&combined).unwrap();
        assert_eq!(peeked.key_type, Some(KeyType::Ecdsa));
        assert!(peeked.has_private_key);
        assert_eq!(
            peeked.sni_candidate().as_deref(),
            Some("certdrift-probe.example.test")
        );

        let missing = peek(&dir.path().join("missing.pem")).unwrap_err();
        assert_eq!(missing.kind(), "not_found");
    }
}
