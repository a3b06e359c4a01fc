//! Small text helpers shared by every message certdrift writes: text quoted from a peer made
//! safe to print, and durations rounded for people.
//!
//! Whatever a server sends (a STARTTLS answer, an XMPP or LDAP error text, a name in its
//! certificate) can reach the terminal, the log, the status page and alert notifications.
//! [`escape_controls`] is the one place that makes such text inert there.

use std::fmt::Write;
use std::time::Duration;

/// `text` with every control character written as an escape: C0 controls and DEL as `\x1b`,
/// C1 controls, the bidirectional controls and the line and paragraph separators as
/// `\u{202e}`. Everything else, including non-ASCII letters, is kept as it is.
///
/// A server's answer such as `454 \x1b[31mno tls` would otherwise recolour the terminal, and
/// a right-to-left override would make a message read backwards.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(is_escaped) {
        return text.to_owned();
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !is_escaped(c) {
            escaped.push(c);
        } else if c.is_ascii() {
            // Writing to a String cannot fail.
            let _ = write!(escaped, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
        }
    }
    escaped
}

/// Whether `c` is one of the characters [`escape_controls`] escapes, the same set the config
/// refuses in names: C0, DEL and C1 controls, U+2028/U+2029, and the bidirectional controls
/// (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069).
pub fn is_escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `duration` cut to whole milliseconds, for messages and logs: `586ms`, not
/// `586ms 989us 643ns`.
pub fn whole_millis(duration: Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_from_a_peer_are_escaped() {
        assert_eq!(escape_controls("454 \x1b[31mno tls"), "454 \\x1b[31mno tls");
        assert_eq!(
            escape_controls("a\r\nb\tc\0\x7f"),
            "a\\x0d\\x0ab\\x09c\\x00\\x7f"
        );
        assert_eq!(escape_controls("c1 \u{9b}31m"), "c1 \\u{9b}31m");
        assert_eq!(
            escape_controls("user\u{202e}gpj.exe \u{2066}x\u{2069} \u{200f}\u{2028}"),
            "user\\u{202e}gpj.exe \\u{2066}x\\u{2069} \\u{200f}\\u{2028}"
        );
        assert_eq!(
            escape_controls("Grüße, 日本 — 220 ready"),
            "Grüße, 日本 — 220 ready"
        );
    }

    #[test]
    fn durations_are_cut_to_whole_milliseconds() {
        assert_eq!(
            whole_millis(Duration::new(0, 586_989_643)),
            Duration::from_millis(586)
        );
        assert_eq!(
            humantime::format_duration(whole_millis(Duration::new(2, 7_718_819))).to_string(),
            "2s 7ms"
        );
    }
}
