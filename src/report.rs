//! `check`'s report: a table for people, JSON for programs.
//!
//! The table puts one row per site and address with the verdict, both serials and expiries
//! and a short action; the details below it give the full reason and advice for every row
//! that is not in sync. JSON carries the same records in full (see [`AddressReport`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use time::OffsetDateTime;

use crate::cert::CertSummary;
use crate::inspect::{AddressReport, SiteReport};
use crate::verdict::Verdict;

/// The version of the JSON document's shape; bumped when a field changes meaning or goes.
pub const JSON_VERSION: u32 = 1;

/// Renders the human table, with details for every row that needs attention.
pub fn render_table(sites: &[SiteReport], now: OffsetDateTime) -> String {
    let rows: Vec<&AddressReport> = sites.iter().flat_map(|site| &site.addresses).collect();
    let mut table: Vec<[String; COLUMNS]> = vec![[
        "SITE".to_owned(),
        "ADDRESS".to_owned(),
        "VERDICT".to_owned(),
        "FINDINGS".to_owned(),
        "SERVED".to_owned(),
        "DISK".to_owned(),
        "ACTION".to_owned(),
    ]];
    for row in &rows {
        let findings: Vec<&str> = row
            .findings
            .iter()
            .map(|finding| finding.kind.as_str())
            .collect();
        table.push([
            row.site.clone(),
            address_cell(row),
            row.verdict.to_string(),
            if findings.is_empty() {
                "-".to_owned()
            } else {
                findings.join(",")
            },
            row.served
                .as_ref()
                .map_or_else(|| "-".to_owned(), |served| cert_cell(&served.leaf, now)),
            row.disk
                .as_ref()
                .map_or_else(|| "-".to_owned(), |disk| cert_cell(&disk.leaf, now)),
            row_action(row.verdict, !row.findings.is_empty()).to_owned(),
        ]);
    }

    let mut out = String::new();
    let widths: Vec<usize> = (0..COLUMNS)
        .map(|col| {
            table
                .iter()
                .map(|row| row[col].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let mut line = String::new();
        for (col, cell) in row.iter().enumerate() {
            if col + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[col]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }

    let details: Vec<&&AddressReport> = rows.iter().filter(|row| needs_detail(row)).collect();
    if !details.is_empty() {
        out.push('\n');
    }
    for row in details {
        let _ = writeln!(
            out,
            "{} {}: {}: {}",
            row.site,
            address_cell(row),
            row.verdict,
            row.reason
        );
        if row.verdict != Verdict::InSync {
            let _ = writeln!(out, "  what to do: {}", row.advice);
        }
        if let Some(hint) = &row.hint {
            let _ = writeln!(out, "  who serves it: {hint}");
        }
        for finding in &row.findings {
            let _ = writeln!(out, "  {}: {}", finding.kind, finding.detail);
            let _ = writeln!(out, "    what to do: {}", finding.advice);
        }
        if let Some(served) = &row.served
            && !served.verification.is_trusted()
        {
            let _ = writeln!(out, "  served chain: {}", served.verification);
        }
        for note in row.disk.iter().flat_map(|disk| &disk.notes) {
            let _ = writeln!(out, "  disk note: {note}");
        }
    }

    out.push('\n');
    out.push_str(&summary_line(sites, rows.len()));
    out.push('\n');
    out
}

/// The row's address, with the key type for a dual-certificate site (`192.0.2.10:443 rsa`):
/// the table's ADDRESS cell, and how the details under it name the row.
fn address_cell(row: &AddressReport) -> String {
    match row.key_type {
        Some(key_type) => format!("{} {key_type}", row.address),
        None => row.address.clone(),
    }
}

/// Renders the JSON document: `{"version", "checked_at", "results": [...]}`, one result per
/// site and address.
pub fn render_json(sites: &[SiteReport], now: OffsetDateTime) -> String {
    render_document(sites, None, now)
}

/// Renders `serve`'s `/api/v1/status`: the document of [`render_json`] plus `pending`, the
/// names of the sites not probed yet (empty once every site has a report), so a client can
/// tell "no results yet" from "no sites".
pub fn render_status_json(sites: &[SiteReport], pending: &[&str], now: OffsetDateTime) -> String {
    render_document(sites, Some(pending), now)
}

fn render_document(sites: &[SiteReport], pending: Option<&[&str]>, now: OffsetDateTime) -> String {
    #[derive(Serialize)]
    struct Document<'a> {
        version: u32,
        #[serde(with = "time::serde::rfc3339")]
        checked_at: OffsetDateTime,
        results: Vec<&'a AddressReport>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pending: Option<&'a [&'a str]>,
    }
    let document = Document {
        version: JSON_VERSION,
        checked_at: now,
        results: sites.iter().flat_map(|site| &site.addresses).collect(),
        pending,
    };
    // Every field is a plain string, number, bool, list or map: serialization cannot fail.
    let mut json = serde_json::to_string_pretty(&document).expect("reports serialize");
    json.push('\n');
    json
}

/// A short action for the table's last column.
pub fn action(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::InSync => "-",
        Verdict::ReloadNeeded => "reload the server",
        Verdict::DiskOlder => "do not reload; see below",
        Verdict::Unrelated => "check host, port and SNI",
        Verdict::Mixed => "restart; see below",
        Verdict::ProbeFailed => "check the server is reachable",
        Verdict::DiskError => "fix the file or path",
    }
}

/// The table's ACTION for a row: the verdict's, or a pointer to the findings when the
/// verdict alone asks for nothing (they still make `check` exit 1).
fn row_action(verdict: Verdict, has_findings: bool) -> &'static str {
    if verdict == Verdict::InSync && has_findings {
        "see findings below"
    } else {
        action(verdict)
    }
}

/// "sites: 2, addresses: 3 (in_sync 2, reload_needed 1); findings on 1".
fn summary_line(sites: &[SiteReport], addresses: usize) -> String {
    let mut counts: BTreeMap<Verdict, usize> = BTreeMap::new();
    let mut with_findings = 0;
    for row in sites.iter().flat_map(|site| &site.addresses) {
        *counts.entry(row.verdict).or_default() += 1;
        with_findings += usize::from(!row.findings.is_empty());
    }
    let counts: Vec<String> = counts
        .iter()
        .map(|(verdict, n)| format!("{verdict} {n}"))
        .collect();
    let mut line = format!(
        "sites: {}, addresses: {addresses} ({})",
        sites.len(),
        counts.join(", ")
    );
    if with_findings > 0 {
        let _ = write!(line, "; findings on {with_findings}");
    }
    line
}

fn needs_detail(row: &AddressReport) -> bool {
    row.verdict != Verdict::InSync
        || !row.findings.is_empty()
        || row
            .served
            .as_ref()
            .is_some_and(|served| !served.verification.is_trusted())
        || row.disk.as_ref().is_some_and(|disk| !disk.notes.is_empty())
}

/// "8f01a2…c4d5e6 2026-12-24 (21d)": a serial cut to fit and the expiry with days left.
fn cert_cell(cert: &CertSummary, now: OffsetDateTime) -> String {
    let serial = short_serial(&cert.serial);
    let left = cert.not_after - now;
    let left = if left.is_negative() {
        "expired".to_owned()
    } else {
        format!("{}d", left.whole_days())
    };
    format!("{serial} {} ({left})", cert.not_after.date())
}

/// `serial` (lower-case hex) in at most [`SERIAL_WIDTH`] characters and an ellipsis: its
/// start and its end. Private CAs number certificates in sequence (`openssl x509
/// -CAcreateserial`), so two generations often differ only in the last digits; the end must
/// show.
fn short_serial(serial: &str) -> String {
    if serial.len() <= SERIAL_WIDTH || !serial.is_ascii() {
        return serial.to_owned();
    }
    let half = SERIAL_WIDTH / 2;
    format!("{}…{}", &serial[..half], &serial[serial.len() - half..])
}

const SERIAL_WIDTH: usize = 12;
const COLUMNS: usize = 7;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_serial_keeps_its_start_and_its_end() {
        assert_eq!(
            short_serial("35c7d0841af0e4b1f1a2b3c4d5e686ad"),
            "35c7d0…e686ad"
        );
        // Sequential serials of two generations stay apart.
        assert_ne!(
            short_serial("35c7d0841af0e4b1f1a2b3c4d5e686ad"),
            short_serial("35c7d0841af0e4b1f1a2b3c4d5e686ae")
        );
        assert_eq!(short_serial("03e9"), "03e9");
        assert_eq!(short_serial("0123456789ab"), "0123456789ab");
    }

    #[test]
    fn an_in_sync_row_with_findings_points_at_them() {
        assert_eq!(row_action(Verdict::InSync, true), "see findings below");
        assert_eq!(row_action(Verdict::InSync, false), "-");
        assert_eq!(row_action(Verdict::ReloadNeeded, true), "reload the server");
    }
}
