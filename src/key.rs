//! The opt-in key check: does the private key on disk belong to the certificate on disk?
//!
//! When it does not, the server keeps running on what it loaded, but its next reload or
//! restart fails, usually at the worst time. The key is read only to derive its public half;
//! it is never logged, exported or kept, and errors never quote its contents.

use std::io::Read;
use std::path::Path;

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

use crate::cert::{CertSummary, Fingerprint};

/// The outcome of comparing a key file with a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// The key's public half is the certificate's public key.
    Matches,
    /// It is another key.
    Mismatch,
    /// The key file could not be used; the reason names the path, never the contents.
    Unreadable(String),
}

/// Compares the private key in the PEM file at `path` with `cert`'s public key.
pub fn check_key(path: &Path, cert: &CertSummary) -> KeyCheck {
    let shown = path.display();
    let mut bytes = Vec::new();
    let read = crate::disk::open_regular(path)
        .and_then(|file| file.take(MAX_KEY_BYTES + 1).read_to_end(&mut bytes));
    if let Err(err) = read {
        return KeyCheck::Unreadable(format!("{shown}: cannot read the key: {err}"));
    }
    if bytes.len() as u64 > MAX_KEY_BYTES {
        return KeyCheck::Unreadable(format!(
            "{shown}: larger than {MAX_KEY_BYTES} bytes, not a key file"
        ));
    }
    let Ok(key) = PrivateKeyDer::from_pem_slice(&bytes) else {
        return KeyCheck::Unreadable(format!(
            "{shown}: no PEM private key (PKCS#8, RSA or EC) in the file"
        ));
    };
    let provider = crate::probe::crypto_provider();
    let signing_key = match provider.key_provider.load_private_key(key) {
        Ok(signing_key) => signing_key,
        Err(_) => {
            return KeyCheck::Unreadable(format!("{shown}: the private key cannot be loaded"));
        }
    };
    let Some(public) = signing_key.public_key() else {
        return KeyCheck::Unreadable(format!(
            "{shown}: cannot derive the public key of this key type"
        ));
    };
    if Fingerprint::of(public.as_ref()) == cert.public_key_sha256 {
        KeyCheck::Matches
    } else {
        KeyCheck::Mismatch
    }
}

/// Private keys are a few kilobytes at most (RSA 8192 in PEM is under 7 KiB).
const MAX_KEY_BYTES: u64 = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::ca::{KeyAlgorithm, LeafSpec, TestCa};

    #[test]
    fn a_key_matches_its_own_certificate_only() {
        let ca = TestCa::new("Key CA");
        let dir = tempfile::tempdir().unwrap();
        for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
            let mine = ca.issue(&LeafSpec::new(["key.example"]).key_algorithm(algorithm));
            let other = ca.issue(&LeafSpec::new(["key.example"]).key_algorithm(algorithm));
            let path = dir.path().join("privkey.pem");
            std::fs::write(&path, mine.key_pem()).unwrap();
            assert_eq!(
                check_key(&path, &mine.summary()),
                KeyCheck::Matches,
                "{algorithm:?}"
            );
            assert_eq!(
                check_key(&path, &other.summary()),
                KeyCheck::Mismatch,
                "{algorithm:?}"
            );
        }
    }

    #[test]
    fn unreadable_keys_are_named_without_their_contents() {
        let ca = TestCa::new("Key CA");
        let cert = ca.issue(&LeafSpec::new(["key.example"]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-key.pem");
        std::fs::write(&path, cert.cert_pem()).unwrap();
        let KeyCheck::Unreadable(reason) = check_key(&path, &cert.summary()) else {
            panic!("a certificate is not a key");
        };
        assert!(reason.starts_with(&path.display().to_string()), "{reason}");
        let missing = check_key(&dir.path().join("missing.pem"), &cert.summary());
        assert!(
            matches!(missing, KeyCheck::Unreadable(ref reason) if reason.contains("cannot read the key"))
        );
    }
}
