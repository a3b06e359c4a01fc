//! The plaintext dialogue some protocols need before TLS: STARTTLS for mail, FTP, LDAP and
//! XMPP, and the SSL request of PostgreSQL and MySQL.
//!
//! Each dialogue is the least that gets the server to start TLS, bounded in bytes, lines and
//! time: a server that talks forever, sends one endless line, or never answers fails the
//! probe with a clear reason instead of holding it. A server that does not offer TLS, or
//! refuses the request, fails it with [`ProbeError::StartTlsRefused`] saying what it answered.
//!
//! The references are RFC 3207 (SMTP), RFC 2595 (IMAP, POP3), RFC 4217 (FTP), RFC 4511
//! section 4.14 (LDAP), RFC 6120 section 5 (XMPP), the PostgreSQL protocol's SSLRequest, and
//! MySQL's protocol-41 SSLRequest packet.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::probe::{IMPLICIT_TLS_HINT, Phase, ProbeError};
use crate::text::escape_controls;

/// How a site speaks before TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// TLS from the first byte (HTTPS, IMAPS, SMTPS, LDAPS, ...).
    #[default]
    Tls,
    /// SMTP with STARTTLS (ports 25 and 587).
    Smtp,
    /// IMAP with STARTTLS.
    Imap,
    /// POP3 with STLS.
    Pop3,
    /// FTP with AUTH TLS.
    Ftp,
    /// LDAP with the StartTLS extended operation.
    Ldap,
    /// XMPP client-to-server stream with STARTTLS.
    XmppClient,
    /// XMPP server-to-server stream with STARTTLS.
    XmppServer,
    /// PostgreSQL's SSLRequest.
    Postgres,
    /// MySQL/MariaDB's SSL request in the handshake response.
    Mysql,
}

impl Protocol {
    /// Every protocol, in documentation order.
    pub const ALL: [Protocol; 10] = [
        Protocol::Tls,
        Protocol::Smtp,
        Protocol::Imap,
        Protocol::Pop3,
        Protocol::Ftp,
        Protocol::Ldap,
        Protocol::XmppClient,
        Protocol::XmppServer,
        Protocol::Postgres,
        Protocol::Mysql,
    ];

    /// The name used in the config (`protocol = "smtp"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls => "tls",
            Self::Smtp => "smtp",
            Self::Imap => "imap",
            Self::Pop3 => "pop3",
            Self::Ftp => "ftp",
            Self::Ldap => "ldap",
            Self::XmppClient => "xmpp",
            Self::XmppServer => "xmpp-server",
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
        }
    }

    /// The port the protocol's STARTTLS form usually listens on (443 for implicit TLS).
    pub fn default_port(self) -> u16 {
        match self {
            Self::Tls => 443,
            Self::Smtp => 25,
            Self::Imap => 143,
            Self::Pop3 => 110,
            Self::Ftp => 21,
            Self::Ldap => 389,
            Self::XmppClient => 5222,
            Self::XmppServer => 5269,
            Self::Postgres => 5432,
            Self::Mysql => 3306,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let found = Self::ALL
            .into_iter()
            .find(|protocol| protocol.as_str() == text);
        found
            .or(match text {
                "https" | "implicit" => Some(Self::Tls),
                "xmpp-client" => Some(Self::XmppClient),
                "postgresql" => Some(Self::Postgres),
                "mariadb" => Some(Self::Mysql),
                _ => None,
            })
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|protocol| protocol.as_str()).collect();
                format!(
                    "`{text}` is not a protocol; use one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Runs `protocol`'s dialogue on `stream` until the server is ready for a TLS ClientHello.
///
/// `domain` is the name the server is asked for where the protocol names one (XMPP's stream
/// `to`); `local` is our address, for SMTP's EHLO. `received` counts the bytes the server
/// sent, and stays readable when the caller's timeout drops the dialogue.
///
/// # Errors
///
/// [`ProbeError::StartTlsRefused`] when the server does not offer or refuses TLS,
/// [`ProbeError::Preamble`] when it breaks the protocol or a bound, [`ProbeError::Closed`] when
/// it hangs up.
pub async fn negotiate(
    stream: &mut TcpStream,
    protocol: Protocol,
    domain: &str,
    local: SocketAddr,
    received: &mut usize,
) -> Result<(), ProbeError> {
    let mut conversation = Conversation::new(stream, protocol, received);
    match protocol {
        Protocol::Tls => Ok(()),
        Protocol::Smtp => conversation.smtp(local).await,
        Protocol::Imap => conversation.imap().await,
        Protocol::Pop3 => conversation.pop3().await,
        Protocol::Ftp => conversation.ftp().await,
        Protocol::Ldap => conversation.ldap().await,
        Protocol::XmppClient => conversation.xmpp(domain, "jabber:client").await,
        Protocol::XmppServer => conversation.xmpp(domain, "jabber:server").await,
        Protocol::Postgres => conversation.postgres().await,
        Protocol::Mysql => conversation.mysql().await,
    }
}

/// The most bytes a server may send before TLS starts. Real greetings and capability lists
/// are under 2 KiB; XMPP stream features with many mechanisms stay under 8 KiB.
pub const MAX_PREAMBLE_BYTES: usize = 32 * 1024;
/// The most lines a server may send before TLS starts.
pub const MAX_PREAMBLE_LINES: usize = 100;
/// The longest line accepted (RFC 5321 section 4.5.3.1.5 allows 512 bytes for SMTP replies).
pub const MAX_LINE_BYTES: usize = 4096;

/// A bounded, buffered plaintext exchange.
struct Conversation<'a> {
    stream: &'a mut TcpStream,
    protocol: Protocol,
    buffer: Vec<u8>,
    received: &'a mut usize,
    lines: usize,
}

impl<'a> Conversation<'a> {
    fn new(stream: &'a mut TcpStream, protocol: Protocol, received: &'a mut usize) -> Self {
        Self {
            stream,
            protocol,
            buffer: Vec::with_capacity(512),
            received,
            lines: 0,
        }
    }

    /// RFC 3207: greeting, EHLO, STARTTLS, 220.
    async fn smtp(&mut self, local: SocketAddr) -> Result<(), ProbeError> {
        let (code, _) = self.smtp_reply().await?;
        if code != 220 {
            return Err(self.refused(format!("greeted with {code} instead of 220")));
        }
        // RFC 5321 section 4.1.4: EHLO names the client; an address literal is right for a
        // client that has no name of its own.
        let literal = match local.ip() {
            std::net::IpAddr::V4(ip) => format!("[{ip}]"),
            std::net::IpAddr::V6(ip) => format!("[IPv6:{ip}]"),
        };
        self.send(format!("EHLO {literal}\r\n").as_bytes()).await?;
        let (code, lines) = self.smtp_reply().await?;
        if code != 250 {
            return Err(self.refused(format!("answered EHLO with {code}")));
        }
        let offers_starttls = lines.iter().any(|line| {
            line.get(4..)
                .is_some_and(|ext| ext.eq_ignore_ascii_case("STARTTLS"))
        });
        if !offers_starttls {
            return Err(self.refused("does not offer STARTTLS in its EHLO reply".to_owned()));
        }
        self.send(b"STARTTLS\r\n").await?;
        let (code, lines) = self.smtp_reply().await?;
        if code != 220 {
            return Err(self.refused(format!(
                "answered STARTTLS with {}",
                clip(lines.last().map_or("", String::as_str))
            )));
        }
        Ok(())
    }

    /// RFC 2595 section 3.1: greeting, `a STARTTLS`, tagged OK.
    async fn imap(&mut self) -> Result<(), ProbeError> {
        let greeting = self.line().await?;
        if !greeting.starts_with("* OK") {
            return Err(self.refused(format!("greeted with `{}`", clip(&greeting))));
        }
        self.send(b"a1 STARTTLS\r\n").await?;
        loop {
            let line = self.line().await?;
            if let Some(status) = line.strip_prefix("a1 ") {
                if status.starts_with("OK") {
                    return Ok(());
                }
                return Err(self.refused(format!("answered STARTTLS with `{}`", clip(&line))));
            }
        }
    }

    /// RFC 2595 section 4: greeting, STLS, +OK.
    async fn pop3(&mut self) -> Result<(), ProbeError> {
        let greeting = self.line().await?;
        if !greeting.starts_with("+OK") {
            return Err(self.refused(format!("greeted with `{}`", clip(&greeting))));
        }
        self.send(b"STLS\r\n").await?;
        let reply = self.line().await?;
        if !reply.starts_with("+OK") {
            return Err(self.refused(format!("answered STLS with `{}`", clip(&reply))));
        }
        Ok(())
    }

    /// RFC 4217 section 4: greeting, AUTH TLS, 234.
    async fn ftp(&mut self) -> Result<(), ProbeError> {
        let (code, _) = self.smtp_reply().await?;
        if code != 220 {
            return Err(self.refused(format!("greeted with {code} instead of 220")));
        }
        self.send(b"AUTH TLS\r\n").await?;
        let (code, lines) = self.smtp_reply().await?;
        if code != 234 {
            return Err(self.refused(format!(
                "answered AUTH TLS with `{}`",
                clip(lines.last().map_or("", String::as_str))
            )));
        }
        Ok(())
    }

    /// RFC 4511 section 4.14: an ExtendedRequest for 1.3.6.1.4.1.1466.20037, then an
    /// ExtendedResponse whose resultCode is success (0).
    async fn ldap(&mut self) -> Result<(), ProbeError> {
        const START_TLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";
        // LDAPMessage ::= SEQUENCE { messageID 1, [APPLICATION 23] { [0] requestName } }
        let mut request = vec![0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16];
        request.extend_from_slice(START_TLS_OID);
        self.send(&request).await?;

        let message = self.ber_element().await?;
        match ldap_extended_result(&message) {
            Ok((0, _)) => Ok(()),
            Ok((code, diagnostic)) => {
                let name = ldap_result_name(code).map_or(String::new(), |n| format!(" ({n})"));
                let said = if diagnostic.is_empty() {
                    String::new()
                } else {
                    format!(": {}", clip(&diagnostic))
                };
                Err(self.refused(format!(
                    "answered StartTLS with LDAP result code {code}{name}{said}"
                )))
            }
            Err(what) => Err(self.broken(&what)),
        }
    }

    /// RFC 6120 sections 4 and 5: open a stream, read its features, ask for STARTTLS,
    /// expect `<proceed/>`.
    async fn xmpp(&mut self, domain: &str, namespace: &str) -> Result<(), ProbeError> {
        let open = format!(
            "<?xml version='1.0'?><stream:stream to='{}' version='1.0' xml:lang='en' xmlns='{namespace}' \
             xmlns:stream='http://etherx.jabber.org/streams'>",
            xml_escape(domain)
        );
        self.send(open.as_bytes()).await?;
        let features = self
            .until_any(&[
                "</stream:features>",
                "<stream:features/>",
                "</stream:stream>",
            ])
            .await?;
        if features.contains("<stream:error") {
            // The stream header comes first; what matters is the error's condition and text.
            let detail = xmpp_stream_error(&features).unwrap_or_else(|| clip(&features));
            return Err(self.refused(format!("closed the stream with error {detail}")));
        }
        if !features.contains("urn:ietf:params:xml:ns:xmpp-tls") {
            return Err(self.refused("does not offer STARTTLS in its stream features".to_owned()));
        }
        self.buffer.clear();
        self.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await?;
        let answer = self.until_any(&["<proceed", "<failure"]).await?;
        if answer.contains("<failure") {
            return Err(self.refused("answered STARTTLS with <failure/>".to_owned()));
        }
        // `<proceed .../>` may be followed by nothing else: TLS starts right after it.
        self.until_any(&["/>", "</proceed>"]).await.map(drop)
    }

    /// PostgreSQL: SSLRequest (length 8, code 80877103), then one byte, `S` or `N`.
    async fn postgres(&mut self) -> Result<(), ProbeError> {
        self.send(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await?;
        let mut answer = [0u8; 1];
        self.read_exact(&mut answer).await?;
        match answer[0] {
            b'S' => Ok(()),
            b'N' => {
                Err(self.refused("answered SSLRequest with N: TLS is off (ssl = off)".to_owned()))
            }
            other => Err(self.broken(&format!("answered SSLRequest with byte {other:#04x}"))),
        }
    }

    /// MySQL protocol 41: read the server's initial handshake, check it offers CLIENT_SSL,
    /// answer with an SSLRequest packet.
    async fn mysql(&mut self) -> Result<(), ProbeError> {
        let mut header = [0u8; 4];
        self.read_exact(&mut header).await?;
        let length =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        if length == 0 || length > MAX_MYSQL_GREETING {
            return Err(self.broken(&format!("a first packet of {length} bytes")));
        }
        let mut payload = vec![0u8; length];
        self.read_exact(&mut payload).await?;
        if payload[0] == 0xff {
            let text = String::from_utf8_lossy(payload.get(3..).unwrap_or_default()).into_owned();
            return Err(self.refused(format!("sent an error first: {}", clip(&text))));
        }
        if payload[0] != 10 {
            return Err(self.broken(&format!(
                "handshake protocol version {} instead of 10",
                payload[0]
            )));
        }
        // version string NUL-terminated, connection id (4), auth data (8), filler (1),
        // then the lower two bytes of the capability flags.
        let version_end = payload[1..]
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.broken("a server version without its terminator"))?;
        let flags_at = 1 + version_end + 1 + 4 + 8 + 1;
        let flags = payload
            .get(flags_at..flags_at + 2)
            .map(|bytes| u16::from_le_bytes([bytes[0], bytes[1]]))
            .ok_or_else(|| self.broken("a handshake without capability flags"))?;
        if u32::from(flags) & CLIENT_SSL == 0 {
            return Err(self.refused(
                "does not offer TLS (no CLIENT_SSL capability; have_ssl is off)".to_owned(),
            ));
        }

        let capabilities =
            CLIENT_SSL | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_LONG_PASSWORD;
        let mut packet = vec![32, 0, 0, header[3].wrapping_add(1)];
        packet.extend_from_slice(&capabilities.to_le_bytes());
        packet.extend_from_slice(&(16u32 * 1024 * 1024).to_le_bytes());
        packet.push(45); // utf8mb4_general_ci
        packet.extend_from_slice(&[0; 23]);
        self.send(&packet).await
    }

    /// One SMTP/FTP-style reply: lines `NNN-text` ending with `NNN text`. Returns the code
    /// and every line.
    async fn smtp_reply(&mut self) -> Result<(u16, Vec<String>), ProbeError> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await?;
            let code = line
                .get(..3)
                .and_then(|digits| digits.parse::<u16>().ok())
                .ok_or_else(|| {
                    self.broken(&format!(
                        "the line `{}` where a reply code was due",
                        clip(&line)
                    ))
                })?;
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return Ok((code, lines));
            }
        }
    }

    /// The next line, without its CRLF.
    async fn line(&mut self) -> Result<String, ProbeError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                // A whole line can arrive in one read: its length counts as much as that of
                // one still coming in.
                let length = end - usize::from(end > 0 && self.buffer[end - 1] == b'\r');
                if length > MAX_LINE_BYTES {
                    return Err(self.broken(&format!("a line longer than {MAX_LINE_BYTES} bytes")));
                }
                let raw: Vec<u8> = self.buffer.drain(..=end).collect();
                self.lines += 1;
                if self.lines > MAX_PREAMBLE_LINES {
                    return Err(self.broken(&format!("more than {MAX_PREAMBLE_LINES} lines")));
                }
                let text = String::from_utf8_lossy(&raw);
                return Ok(text.trim_end_matches(['\r', '\n']).to_owned());
            }
            if self.buffer.len() > MAX_LINE_BYTES {
                return Err(self.broken(&format!("a line longer than {MAX_LINE_BYTES} bytes")));
            }
            self.fill().await?;
        }
    }

    /// Everything up to and including the first of `markers`.
    async fn until_any(&mut self, markers: &[&str]) -> Result<String, ProbeError> {
        loop {
            let text = String::from_utf8_lossy(&self.buffer);
            let found = markers
                .iter()
                .filter_map(|marker| text.find(marker).map(|at| at + marker.len()))
                .min();
            if let Some(end) = found {
                let taken: Vec<u8> = self.buffer.drain(..end).collect();
                return Ok(String::from_utf8_lossy(&taken).into_owned());
            }
            self.fill().await?;
        }
    }

    /// One BER element (tag, length, contents), read whole.
    async fn ber_element(&mut self) -> Result<Vec<u8>, ProbeError> {
        loop {
            if let Some((total, _)) = ber_header(&self.buffer) {
                if total > MAX_PREAMBLE_BYTES {
                    return Err(self.broken(&format!("an LDAP message of {total} bytes")));
                }
                if self.buffer.len() >= total {
                    return Ok(self.buffer.drain(..total).collect());
                }
            }
            self.fill().await?;
        }
    }

    async fn read_exact(&mut self, out: &mut [u8]) -> Result<(), ProbeError> {
        while self.buffer.len() < out.len() {
            self.fill().await?;
        }
        out.copy_from_slice(&self.buffer[..out.len()]);
        self.buffer.drain(..out.len());
        Ok(())
    }

    /// Reads more bytes into the buffer, within the byte budget.
    async fn fill(&mut self) -> Result<(), ProbeError> {
        let mut chunk = [0u8; 1024];
        let read = self
            .stream
            .read(&mut chunk)
            .await
            .map_err(|err| self.io_error(&err))?;
        if read == 0 {
            return Err(ProbeError::Closed {
                phase: Phase::Preamble,
            });
        }
        // A TLS record header (handshake or alert, version 3.x) where plaintext was due: the
        // server expects TLS from the first byte.
        if *self.received == 0 && matches!(chunk[..read], [0x15 | 0x16, 0x03, ..]) {
            return Err(self.broken(&format!("a TLS record, not plaintext; {IMPLICIT_TLS_HINT}")));
        }
        *self.received += read;
        if *self.received > MAX_PREAMBLE_BYTES {
            return Err(self.broken(&format!("more than {MAX_PREAMBLE_BYTES} bytes before TLS")));
        }
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(())
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), ProbeError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|err| self.io_error(&err))
    }

    fn io_error(&self, err: &std::io::Error) -> ProbeError {
        match err.kind() {
            std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::UnexpectedEof => ProbeError::Closed {
                phase: Phase::Preamble,
            },
            _ => ProbeError::Preamble {
                protocol: self.protocol.as_str(),
                detail: err.to_string(),
            },
        }
    }

    fn refused(&self, detail: String) -> ProbeError {
        ProbeError::StartTlsRefused {
            protocol: self.protocol.as_str(),
            detail,
        }
    }

    fn broken(&self, what: &str) -> ProbeError {
        ProbeError::Preamble {
            protocol: self.protocol.as_str(),
            detail: format!("the server sent {what}"),
        }
    }
}

/// The total length of the BER element at the start of `bytes` and its contents, if the
/// header is complete. Definite lengths only, as LDAP requires (RFC 4511 section 5.1).
fn ber_header(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let first = *bytes.get(1)?;
    let (length, header) = if first & 0x80 == 0 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let length_bytes = bytes.get(2..2 + count)?;
        (
            length_bytes
                .iter()
                .fold(0usize, |acc, &b| acc << 8 | usize::from(b)),
            2 + count,
        )
    };
    let contents = bytes
        .get(header..header + length)
        .unwrap_or(&bytes[header.min(bytes.len())..]);
    Some((header + length, contents))
}

/// The resultCode and diagnosticMessage of an LDAPMessage holding an ExtendedResponse, or
/// what the message is instead (for [`Conversation::broken`]).
fn ldap_extended_result(message: &[u8]) -> Result<(u8, String), String> {
    // LDAPMessage ::= SEQUENCE { messageID INTEGER, protocolOp, controls [0] OPTIONAL }: the
    // operation is the element right after the messageID.
    let (_, rest) = ber_split(message).ok_or("a truncated LDAP message")?;
    let (op_len, body) = ber_header(rest).ok_or("an LDAP message without an operation")?;
    if rest.len() < op_len {
        return Err("a truncated LDAP operation".to_owned());
    }
    if rest[0] != LDAP_EXTENDED_RESPONSE {
        return Err(format!(
            "an LDAP operation of tag {:#04x} instead of ExtendedResponse",
            rest[0]
        ));
    }
    // ExtendedResponse starts with LDAPResult: resultCode ENUMERATED (one byte for every
    // defined code), matchedDN and diagnosticMessage OCTET STRINGs.
    let [0x0a, 0x01, code, rest @ ..] = body else {
        return Err("an ExtendedResponse without a result code".to_owned());
    };
    let diagnostic = ber_header(rest)
        .and_then(|(matched_len, _)| rest.get(matched_len..))
        .filter(|after| after.first() == Some(&0x04))
        .and_then(ber_header)
        .map(|(_, text)| String::from_utf8_lossy(text).into_owned())
        .unwrap_or_default();
    Ok((*code, diagnostic))
}

/// RFC 4511 appendix A's name for the result codes a StartTLS refusal carries.
fn ldap_result_name(code: u8) -> Option<&'static str> {
    match code {
        1 => Some("operationsError"),
        2 => Some("protocolError"),
        52 => Some("unavailable"),
        53 => Some("unwillingToPerform"),
        _ => None,
    }
}

/// Splits the contents of a constructed element into its first child and the rest.
fn ber_split(element: &[u8]) -> Option<(&[u8], &[u8])> {
    let (_, contents) = ber_header(element)?;
    let (child_len, _) = ber_header(contents)?;
    (child_len <= contents.len()).then(|| contents.split_at(child_len))
}

/// The condition and text of the `<stream:error>` in `received`, as
/// `undefined-condition (No stream features to offer)`; `None` without a condition element.
fn xmpp_stream_error(received: &str) -> Option<String> {
    let error = &received[received.find("<stream:error")?..];
    let body = error[error.find('>')? + 1..].trim_start();
    // RFC 6120 section 4.9.2: the first child names the condition; an optional <text/> says
    // more in words.
    let condition: String = body
        .strip_prefix('<')?
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    if condition.is_empty() {
        return None;
    }
    let text = body.find("<text").and_then(|start| {
        let element = &body[start..];
        let content = &element[element.find('>')? + 1..];
        Some(&content[..content.find("</text>")?])
    });
    Some(match text {
        Some(text) if !text.trim().is_empty() => format!("{condition} ({})", clip(text)),
        _ => condition,
    })
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('\'', "&apos;")
        .replace('<', "&lt;")
}

/// A server's words as messages quote them: trimmed, cut to 120 characters, and with
/// control characters escaped ([`escape_controls`]).
fn clip(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(120) {
        Some((at, _)) => format!("{}…", escape_controls(&text[..at])),
        None => escape_controls(text),
    }
}

/// `[APPLICATION 24]`, constructed: the ExtendedResponse operation (RFC 4511 section 4.12).
const LDAP_EXTENDED_RESPONSE: u8 = 0x78;
const MAX_MYSQL_GREETING: usize = 1024;
const CLIENT_LONG_PASSWORD: u32 = 0x0000_0001;
const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
const CLIENT_SSL: u32 = 0x0000_0800;
const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_parse_by_name_and_alias() {
        for protocol in Protocol::ALL {
            assert_eq!(protocol.as_str().parse::<Protocol>(), Ok(protocol));
        }
        assert_eq!("postgresql".parse::<Protocol>(), Ok(Protocol::Postgres));
        let err = "gopher".parse::<Protocol>().unwrap_err();
        assert!(
            err.starts_with("`gopher` is not a protocol; use one of tls, smtp"),
            "{err}"
        );
    }

    #[test]
    fn ber_headers_read_short_and_long_lengths() {
        assert_eq!(
            ber_header(&[0x30, 0x03, 1, 2, 3]),
            Some((5, &[1u8, 2, 3][..]))
        );
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(7u8, 256));
        assert_eq!(
            ber_header(&long).map(|(total, body)| (total, body.len())),
            Some((260, 256))
        );
        assert_eq!(ber_header(&[0x30]), None);
    }

    #[test]
    fn ldap_start_tls_answers_from_slapd_are_read_as_result_codes() {
        // slapd 2.5.13's answer to the StartTLS request, byte for byte: messageID 1,
        // ExtendedResponse { resultCode success, matchedDN "", diagnosticMessage "" }.
        let success = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
        ];
        assert_eq!(ldap_extended_result(&success), Ok((0, String::new())));
        // slapd 2.5.13 without TLS settings: protocolError (2) with a diagnostic message.
        let mut refused = vec![
            0x30, 0x2a, 0x02, 0x01, 0x01, 0x78, 0x25, 0x0a, 0x01, 0x02, 0x04, 0x00, 0x04, 0x1e,
        ];
        refused.extend_from_slice(b"unsupported extended operation");
        assert_eq!(
            ldap_extended_result(&refused),
            Ok((2, "unsupported extended operation".to_owned()))
        );
        // A success with a responseName after the diagnostic message.
        let mut named = vec![0x30, 0x24, 0x02, 0x01, 0x01, 0x78, 0x1f];
        named.extend_from_slice(&[0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00, 0x8a, 0x16]);
        named.extend_from_slice(b"1.3.6.1.4.1.1466.20037");
        assert_eq!(ldap_extended_result(&named), Ok((0, String::new())));
        // A BindResponse where the ExtendedResponse was due.
        let bind = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
        ];
        assert_eq!(
            ldap_extended_result(&bind),
            Err("an LDAP operation of tag 0x61 instead of ExtendedResponse".to_owned())
        );
    }

    #[test]
    fn xmpp_stream_errors_are_read_as_condition_and_text() {
        // prosody 0.12.3's answer to a server stream when it has no STARTTLS to offer.
        let prosody = "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
            xml:lang='en' xmlns='jabber:server' version='1.0' from='t.test' to='' \
            id='196ada5d-ed73-4c2d-a809-8317eba31976'><stream:error><undefined-condition \
            xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text \
            xmlns='urn:ietf:params:xml:ns:xmpp-streams'>No stream features to offer</text>\
            </stream:error></stream:stream>";
        assert_eq!(
            xmpp_stream_error(prosody).as_deref(),
            Some("undefined-condition (No stream features to offer)")
        );
        let bare = "<stream:stream><stream:error> <host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>";
        assert_eq!(xmpp_stream_error(bare).as_deref(), Some("host-unknown"));
        assert_eq!(xmpp_stream_error("<stream:error/></stream:stream>"), None);
        assert_eq!(xmpp_stream_error("<stream:features/>"), None);
    }

    #[test]
    fn ldap_success_response_splits_into_id_and_operation() {
        // A real slapd answer: messageID 1, ExtendedResponse { success, "", "" }.
        let response = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
        ];
        let (id, rest) = ber_split(&response).unwrap();
        assert_eq!(id, [0x02, 0x01, 0x01]);
        assert_eq!(rest[0], 0x78);
    }
}
