//! A tolerant reader of PEM text: the blocks of a certificate file, as OpenSSL finds them.
//!
//! Certificate files on real servers are written by many hands: ACME clients, control panels,
//! Windows editors, people pasting into a terminal. OpenSSL accepts all of them, so servers load
//! them, and certdrift must read them the same way or it would report a disk error for a file
//! the server happily serves. This module accepts a UTF-8 byte-order mark, CRLF line ends, text
//! before, between and after blocks, RFC 1421 header lines inside a block (`Proc-Type: ...`),
//! white space inside the base64 body, and a missing final newline.
//!
//! It only splits text into labelled DER blobs; what a blob means is for [`crate::cert`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// One `-----BEGIN LABEL-----` ... `-----END LABEL-----` block, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    /// The label between `BEGIN ` and the dashes, such as `CERTIFICATE` or `PRIVATE KEY`.
    pub label: String,
    /// The decoded body.
    pub der: Vec<u8>,
    /// The 1-based line of the `BEGIN` marker, for messages.
    pub line: usize,
}

impl PemBlock {
    /// Whether the block holds an X.509 certificate, as OpenSSL's certificate readers accept.
    ///
    /// True for `CERTIFICATE` and the legacy `X509 CERTIFICATE`. `TRUSTED CERTIFICATE` is
    /// false: its body carries OpenSSL trust settings after the certificate, and servers do
    /// not load such files as their own certificate.
    pub fn is_certificate(&self) -> bool {
        matches!(self.label.as_str(), "CERTIFICATE" | "X509 CERTIFICATE")
    }
}

/// What is wrong with a PEM block, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// A `BEGIN` marker with no matching `END` before the end of the text.
    #[error("line {line}: the {label} block has no END line")]
    Unterminated {
        /// The block's label.
        label: String,
        /// Line of the `BEGIN` marker.
        line: usize,
    },
    /// An `END` marker whose label differs from its `BEGIN`.
    #[error("line {line}: the {label} block ends with END {found}")]
    MismatchedEnd {
        /// The label of the `BEGIN` marker.
        label: String,
        /// The label found on the `END` marker.
        found: String,
        /// Line of the `BEGIN` marker.
        line: usize,
    },
    /// The body is not valid base64.
    #[error("line {line}: the {label} block is not valid base64 ({detail})")]
    BadBase64 {
        /// The block's label.
        label: String,
        /// Line of the `BEGIN` marker.
        line: usize,
        /// The decoder's complaint.
        detail: String,
    },
}

/// Splits PEM text into its blocks, in file order.
///
/// Text outside blocks is ignored, as OpenSSL ignores it. An empty input, or one with no
/// `BEGIN` marker, gives an empty list; whether that is an error is the caller's call.
///
/// # Errors
///
/// The first block that is unterminated, ends with another label, or does not decode.
pub fn parse_blocks(text: &[u8]) -> Result<Vec<PemBlock>, PemError> {
    let text = text.strip_prefix(UTF8_BOM).unwrap_or(text);
    let mut blocks = Vec::new();
    let mut open: Option<(String, usize, String)> = None;

    for (index, raw_line) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let line = raw_line.trim_ascii();
        match &mut open {
            None => {
                if let Some(label) = marker_label(line, BEGIN) {
                    open = Some((label.to_owned(), line_no, String::new()));
                }
            }
            Some((label, begin_line, body)) => {
                if let Some(found) = marker_label(line, END) {
                    if found != label {
                        return Err(PemError::MismatchedEnd {
                            label: label.clone(),
                            found: found.to_owned(),
                            line: *begin_line,
                        });
                    }
                    let der =
                        STANDARD
                            .decode(body.as_bytes())
                            .map_err(|err| PemError::BadBase64 {
                                label: label.clone(),
                                line: *begin_line,
                                detail: err.to_string(),
                            })?;
                    blocks.push(PemBlock {
                        label: std::mem::take(label),
                        der,
                        line: *begin_line,
                    });
                    open = None;
                } else if is_header_line(line) {
                    // RFC 1421 encapsulated headers (`Proc-Type: 4,ENCRYPTED`) carry no body.
                } else {
                    for &byte in line {
                        if !byte.is_ascii_whitespace() {
                            body.push(char::from(byte));
                        }
                    }
                }
            }
        }
    }

    match open {
        Some((label, line, _)) => Err(PemError::Unterminated { label, line }),
        None => Ok(blocks),
    }
}

/// The label of a `-----BEGIN X-----` (or `END`) line, if the line is one.
fn marker_label<'a>(line: &'a [u8], kind: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(b"-----")?;
    let rest = rest.strip_prefix(kind.as_bytes())?;
    let rest = rest.strip_prefix(b" ")?;
    let label = rest.strip_suffix(b"-----")?;
    std::str::from_utf8(label).ok()
}

/// Whether a line inside a block is an RFC 1421 header (`Name: value`), not base64.
///
/// base64 has no colon, so a colon is enough to tell them apart.
fn is_header_line(line: &[u8]) -> bool {
    line.contains(&b':')
}

const BEGIN: &str = "BEGIN";
const END: &str = "END";
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "aGVsbG8gd29ybGQ="; // "hello world"

    fn block(label: &str) -> String {
        format!("-----BEGIN {label}-----\n{BODY}\n-----END {label}-----\n")
    }

    #[test]
    fn reads_blocks_in_order_with_their_lines() {
        let text = format!("{}{}", block("CERTIFICATE"), block("PRIVATE KEY"));
        let blocks = parse_blocks(text.as_bytes()).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "CERTIFICATE");
        assert_eq!(blocks[0].der, b"hello world");
        assert_eq!(blocks[0].line, 1);
        assert_eq!(blocks[1].label, "PRIVATE KEY");
        assert_eq!(blocks[1].line, 4);
    }

    #[test]
    fn tolerates_crlf_bom_surrounding_text_and_no_final_newline() {
        let crlf = block("CERTIFICATE").replace('\n', "\r\n");
        let text = format!(
            "\u{feff}subject=CN = example\r\nissuer=whatever\r\n{crlf}between\r\n{}",
            crlf.trim_end()
        );
        let blocks = parse_blocks(text.as_bytes()).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].der, b"hello world");
        assert_eq!(blocks[0].line, 3);
        assert_eq!(blocks[1].der, b"hello world");
        assert_eq!(blocks[1].line, 7);
    }

    #[test]
    fn tolerates_headers_and_wrapped_or_spaced_base64() {
        let text = "-----BEGIN CERTIFICATE-----\nProc-Type: 4,CRL\n\naGVsbG8g\n  d29y bGQ=\t\n\
                    -----END CERTIFICATE-----";
        let blocks = parse_blocks(text.as_bytes()).unwrap();
        assert_eq!(blocks[0].der, b"hello world");
    }

    #[test]
    fn no_blocks_is_an_empty_list() {
        assert!(parse_blocks(b"").unwrap().is_empty());
        assert!(parse_blocks(b"just some words\n").unwrap().is_empty());
    }

    #[test]
    fn reports_an_unterminated_block_with_its_line() {
        let err = parse_blocks(b"\n-----BEGIN CERTIFICATE-----\naGVsbG8=\n").unwrap_err();
        assert_eq!(
            err,
            PemError::Unterminated {
                label: "CERTIFICATE".into(),
                line: 2
            }
        );
    }

    #[test]
    fn reports_a_mismatched_end() {
        let err =
            parse_blocks(b"-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END RSA PRIVATE KEY-----")
                .unwrap_err();
        assert!(
            matches!(err, PemError::MismatchedEnd { ref found, .. } if found == "RSA PRIVATE KEY")
        );
    }

    #[test]
    fn reports_bad_base64() {
        let err = parse_blocks(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----")
            .unwrap_err();
        assert!(
            matches!(err, PemError::BadBase64 { line: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn only_certificate_labels_are_certificates() {
        let labels = [
            "CERTIFICATE",
            "X509 CERTIFICATE",
            "TRUSTED CERTIFICATE",
            "PRIVATE KEY",
        ];
        let kinds: Vec<bool> = labels
            .iter()
            .map(|label| {
                PemBlock {
                    label: (*label).into(),
                    der: vec![],
                    line: 1,
                }
                .is_certificate()
            })
            .collect();
        assert_eq!(kinds, [true, true, false, false]);
    }
}
