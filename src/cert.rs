//! Certificate summaries: the few facts of an X.509 certificate that certdrift compares and
//! reports, parsed once with x509-parser into an owned [`CertSummary`].
//!
//! Both sides of the comparison end up here: the disk side ([`crate::disk`]) hands in the DER
//! of each PEM block, the served side ([`crate::probe`]) the DER of each certificate the server
//! presented. No borrowed DER outlives the call, so a summary is cheap to keep per site.
//!
//! Identity is the SHA-256 fingerprint of the DER (see [`Fingerprint`]). Dates, serials and
//! keys are reported but never used alone to decide that two certificates are the same.
//! "SAN" below is the subjectAltName extension (RFC 5280, section 4.2.1.6).

use std::fmt;
use std::net::IpAddr;

use aws_lc_rs::digest;
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::text::escape_controls;

/// The SHA-256 digest of some DER bytes, shown as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Hashes `der` with SHA-256.
    pub fn of(der: &[u8]) -> Self {
        let digest = digest::digest(&digest::SHA256, der);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    /// The first 8 hex digits, enough to tell certificates apart in a table.
    pub fn short(&self) -> String {
        self.to_string()[..8].to_owned()
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// What certdrift knows about one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    /// SHA-256 of the whole DER certificate: the certificate's identity.
    pub fingerprint_sha256: Fingerprint,
    /// The serial number as lower-case hex without leading zero bytes.
    pub serial: String,
    /// Start of the validity period.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of the validity period.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The subject distinguished name, as `CN=..., O=...`.
    pub subject: String,
    /// The issuer distinguished name.
    pub issuer: String,
    /// DNS names from the SAN, lower-case; the subject CN when there is no SAN DNS name.
    pub dns_names: Vec<String>,
    /// IP addresses from the SAN.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<IpAddr>,
    /// SHA-256 of the DER SubjectPublicKeyInfo: equal for renewals that reuse the key.
    pub public_key_sha256: Fingerprint,
    /// Whether basicConstraints says this is a CA certificate.
    pub is_ca: bool,
    /// The subjectKeyIdentifier extension, if present.
    #[serde(skip)]
    pub subject_key_id: Option<Vec<u8>>,
    /// The keyIdentifier of the authorityKeyIdentifier extension, if present.
    #[serde(skip)]
    pub authority_key_id: Option<Vec<u8>>,
    /// The DER of the subject name, to link a certificate to the one it issued.
    #[serde(skip)]
    pub subject_der: Vec<u8>,
    /// The DER of the issuer name.
    #[serde(skip)]
    pub issuer_der: Vec<u8>,
}

impl CertSummary {
    /// Parses one DER certificate.
    ///
    /// # Errors
    ///
    /// [`CertError`] when the bytes are not an X.509 certificate, carry trailing bytes, or
    /// have an extension x509-parser rejects.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|err| CertError(err.to_string()))?;
        if !rest.is_empty() {
            return Err(CertError(format!(
                "{} bytes after the certificate",
                rest.len()
            )));
        }

        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        let san = cert
            .subject_alternative_name()
            .map_err(|err| CertError(format!("subjectAltName: {err}")))?;
        for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(dns) => {
                    dns_names.push(escape_controls(&normalize_dns_name(dns)));
                }
                GeneralName::IPAddress(bytes) => ip_addresses.extend(ip_from_san(bytes)),
                _ => {}
            }
        }
        // Before SANs were required (CA/B Baseline Requirements 7.1.4.2), clients matched
        // the subject CN; old private-CA certificates still rely on it.
        if dns_names.is_empty() && ip_addresses.is_empty() {
            let common_names = cert.subject().iter_common_name();
            dns_names.extend(
                common_names
                    .filter_map(|cn| cn.as_str().ok())
                    .map(|cn| escape_controls(&normalize_dns_name(cn))),
            );
        }

        let is_ca = cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|ext| ext.value.ca);
        let subject_key_id =
            cert.extensions()
                .iter()
                .find_map(|ext| match ext.parsed_extension() {
                    x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                        Some(id.0.to_vec())
                    }
                    _ => None,
                });
        let authority_key_id =
            cert.extensions()
                .iter()
                .find_map(|ext| match ext.parsed_extension() {
                    x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                        aki.key_identifier.as_ref().map(|id| id.0.to_vec())
                    }
                    _ => None,
                });

        Ok(Self {
            fingerprint_sha256: Fingerprint::of(der),
            serial: serial_hex(cert.raw_serial()),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            // Names come from whoever made the certificate, a served one from the peer:
            // escaped here, once, for every message, page and alert that shows them.
            subject: escape_controls(&cert.subject().to_string()),
            issuer: escape_controls(&cert.issuer().to_string()),
            dns_names,
            ip_addresses,
            public_key_sha256: Fingerprint::of(cert.public_key().raw),
            is_ca,
            subject_key_id,
            authority_key_id,
            subject_der: cert.subject().as_raw().to_vec(),
            issuer_der: cert.issuer().as_raw().to_vec(),
        })
    }

    /// Whether this certificate is newer than `other`: a later not-before, or on a tie a
    /// later not-after.
    ///
    /// Renewal always moves not-before forward, so it decides; not-after only breaks ties
    /// (two issuances in the same second with different lifetimes).
    pub fn is_newer_than(&self, other: &CertSummary) -> bool {
        (self.not_before, self.not_after) > (other.not_before, other.not_after)
    }

    /// Whether the certificate is valid for `name`, a DNS name or an IP address.
    ///
    /// DNS names follow RFC 6125, section 6.4.3: case-insensitive, and a wildcard only as the
    /// whole left-most label, matching exactly one label (`*.example.org` covers
    /// `www.example.org` but neither `example.org` nor `a.b.example.org`).
    pub fn covers(&self, name: &str) -> bool {
        if let Ok(ip) = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return self.ip_addresses.contains(&ip);
        }
        let name = normalize_dns_name(name);
        self.dns_names
            .iter()
            .any(|pattern| dns_pattern_covers(pattern, &name))
    }

    /// Whether this certificate covers at least one of `other`'s names.
    ///
    /// A wildcard name of `other` counts as covered by the same wildcard only.
    pub fn shares_a_name_with(&self, other: &CertSummary) -> bool {
        let covers_dns = other.dns_names.iter().any(|name| {
            self.dns_names
                .iter()
                .any(|pattern| pattern == name || dns_pattern_covers(pattern, name))
        });
        covers_dns
            || other
                .ip_addresses
                .iter()
                .any(|ip| self.ip_addresses.contains(ip))
    }

    /// All names, DNS then IP, for display.
    pub fn names(&self) -> Vec<String> {
        let ips = self.ip_addresses.iter().map(IpAddr::to_string);
        self.dns_names.iter().cloned().chain(ips).collect()
    }
}

/// A certificate x509-parser could not parse, with its complaint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid X.509 certificate: {0}")]
pub struct CertError(pub String);

/// Whether the SAN pattern `pattern` covers the (non-wildcard) DNS name `name`.
///
/// Both are expected lower-case without a trailing dot.
fn dns_pattern_covers(pattern: &str, name: &str) -> bool {
    if pattern == name {
        return true;
    }
    let Some(suffix) = pattern.strip_prefix("*.") else {
        return false;
    };
    if name.starts_with("*.") {
        return false;
    }
    match name.split_once('.') {
        Some((first_label, rest)) => !first_label.is_empty() && rest == suffix,
        None => false,
    }
}

/// Lower-cases a DNS name and drops one trailing dot, as name comparison needs.
pub fn normalize_dns_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

fn ip_from_san(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Formats a DER INTEGER's content bytes as lower-case hex without leading zero bytes.
///
/// DER adds a zero byte to keep large serials positive; `openssl x509 -serial` keeps it
/// while most other tools drop it. Dropping it makes the same serial print the same way.
fn serial_hex(raw: &[u8]) -> String {
    let significant = match raw.iter().position(|&b| b != 0) {
        Some(start) => &raw[start..],
        None => &[0][..],
    };
    significant
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::ca::{LeafSpec, TestCa};

    #[test]
    fn control_characters_in_names_are_escaped() {
        let ca = TestCa::new("Evil\u{1b}[2J CA\u{202e}");
        let leaf = ca.issue(&LeafSpec::new(["a\u{7}.example.org"]));
        let summary = CertSummary::from_der(leaf.der()).unwrap();
        assert_eq!(summary.issuer, "CN=Evil\\x1b[2J CA\\u{202e}");
        assert_eq!(summary.dns_names, ["a\\x07.example.org"]);
    }

    #[test]
    fn summarizes_a_leaf() {
        let ca = TestCa::new("Summary Test CA");
        let spec = LeafSpec::new(["www.example.org", "Example.org."])
            .valid_between(
                time::macros::datetime!(2026-01-01 0:00 UTC),
                time::macros::datetime!(2026-04-01 0:00 UTC),
            )
            .serial(&[0x00, 0x8f, 0x01]);
        let leaf = ca.issue(&spec);
        let summary = CertSummary::from_der(leaf.der()).unwrap();

        assert_eq!(summary.fingerprint_sha256, Fingerprint::of(leaf.der()));
        assert_eq!(summary.serial, "8f01");
        assert_eq!(
            summary.not_before,
            time::macros::datetime!(2026-01-01 0:00 UTC)
        );
        assert_eq!(
            summary.not_after,
            time::macros::datetime!(2026-04-01 0:00 UTC)
        );
        assert_eq!(summary.dns_names, ["www.example.org", "example.org"]);
        assert_eq!(summary.issuer, "CN=Summary Test CA");
        assert!(!summary.is_ca);
        assert_eq!(
            summary.authority_key_id,
            ca.intermediate_summary().subject_key_id
        );
        assert_eq!(summary.issuer_der, ca.intermediate_summary().subject_der);
    }

    #[test]
    fn serial_keeps_one_zero_for_zero() {
        assert_eq!(serial_hex(&[0, 0]), "00");
        assert_eq!(serial_hex(&[0x01, 0x00]), "0100");
    }

    #[test]
    fn wildcards_cover_exactly_one_label() {
        assert!(dns_pattern_covers("*.example.org", "www.example.org"));
        assert!(!dns_pattern_covers("*.example.org", "example.org"));
        assert!(!dns_pattern_covers("*.example.org", "a.b.example.org"));
        assert!(!dns_pattern_covers("*.example.org", "*.other.org"));
        assert!(!dns_pattern_covers("w*.example.org", "www.example.org"));
        assert!(dns_pattern_covers("www.example.org", "www.example.org"));
    }

    #[test]
    fn covers_is_case_insensitive_and_knows_ip_addresses() {
        let ca = TestCa::new("Cover CA");
        let leaf = CertSummary::from_der(
            ca.issue(&LeafSpec::new(["*.Example.org", "127.0.0.1"]))
                .der(),
        )
        .unwrap();
        assert!(leaf.covers("WWW.example.ORG."));
        assert!(leaf.covers("127.0.0.1"));
        assert!(!leaf.covers("127.0.0.2"));
        assert!(!leaf.covers("example.org"));
    }

    #[test]
    fn rejects_garbage_and_trailing_bytes() {
        assert!(CertSummary::from_der(b"not a certificate").is_err());
        let ca = TestCa::new("Trailing CA");
        let mut der = ca.issue(&LeafSpec::new(["a.example"])).der().to_vec();
        der.push(0);
        let err = CertSummary::from_der(&der).unwrap_err();
        assert!(err.0.contains("1 bytes after"), "{err}");
    }
}
