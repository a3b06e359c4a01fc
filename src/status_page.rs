//! The status page `serve` shows at `/`: one HTML document, rendered on the server from
//! `templates/status.html`, with no script, font or stylesheet fetched from anywhere else, so
//! it works offline and on a phone.
//!
//! The page shows the same rows as `/api/v1/status` (one per site and address, see
//! [`report::render_json`](crate::report::render_json)); this module only shapes them for
//! people: days left, times in UTC, a colour per verdict. Everything from the outside world
//! (site names, certificate subjects, error messages) goes through the template engine's HTML
//! escaping, never into markup by hand.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use minijinja::Environment;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::cert::CertSummary;
use crate::inspect::AddressReport;
use crate::report;
use crate::state::SiteEntry;
use crate::verdict::Verdict;

/// Renders the page for every site in `sites`, as seen at `now`.
///
/// Sites not probed yet are listed as waiting for their first probe.
pub fn render(sites: &[SiteEntry], now: OffsetDateTime) -> String {
    let page = PageView::new(sites, now);
    // The template is compiled into the binary and tested; rendering a fixed template over
    // plain strings and numbers cannot fail, so a failure is a bug worth a clear message.
    TEMPLATES
        .get_template(TEMPLATE_NAME)
        .and_then(|template| template.render(&page))
        .unwrap_or_else(|err| format!("the status page template failed: {err:#}\n"))
}

/// What the template sees.
#[derive(Debug, Serialize)]
struct PageView {
    generated_at: String,
    version: &'static str,
    site_count: usize,
    counts: Vec<CountView>,
    rows: Vec<RowView>,
    pending: Vec<String>,
}

/// How many rows have one verdict.
#[derive(Debug, Serialize)]
struct CountView {
    verdict: &'static str,
    count: usize,
}

/// One site and address.
#[derive(Debug, Serialize)]
struct RowView {
    site: String,
    address: String,
    key_type: Option<&'static str>,
    sni: Option<String>,
    protocol: &'static str,
    verdict: &'static str,
    /// `ok`, `drift` or `fail`: the colour family, beside the verdict's own class.
    severity: &'static str,
    action: &'static str,
    reason: String,
    advice: &'static str,
    hint: Option<String>,
    error: Option<String>,
    findings: Vec<FindingView>,
    served: Option<CertView>,
    served_verification: Option<String>,
    disk: Option<CertView>,
    disk_notes: Vec<String>,
    drift_since: Option<String>,
    last_probe: String,
    last_probe_ago: String,
    duration_ms: u64,
}

/// A finding, flattened for the template.
#[derive(Debug, Serialize)]
struct FindingView {
    kind: &'static str,
    detail: String,
    advice: &'static str,
}

/// One side's leaf, as people read it.
#[derive(Debug, Serialize)]
struct CertView {
    serial: String,
    not_after: String,
    days_left: i64,
    /// `expired`, `soon` (under 14 days) or `ok`.
    expiry: &'static str,
    subject: String,
    file: Option<String>,
}

impl PageView {
    fn new(sites: &[SiteEntry], now: OffsetDateTime) -> Self {
        let mut rows = Vec::new();
        let mut pending = Vec::new();
        let mut counts: BTreeMap<Verdict, usize> = BTreeMap::new();
        for entry in sites {
            let Some(report) = &entry.report else {
                pending.push(entry.name.clone());
                continue;
            };
            for row in &report.addresses {
                *counts.entry(row.verdict).or_default() += 1;
                let drift_since = entry
                    .drift_since
                    .get(&row.row_id())
                    .map(|(_, since)| timestamp(*since));
                rows.push(RowView::new(row, drift_since, now));
            }
        }
        Self {
            generated_at: timestamp(now),
            version: env!("CARGO_PKG_VERSION"),
            site_count: sites.len(),
            counts: counts
                .into_iter()
                .map(|(verdict, count)| CountView {
                    verdict: verdict.as_str(),
                    count,
                })
                .collect(),
            rows,
            pending,
        }
    }
}

impl RowView {
    fn new(row: &AddressReport, drift_since: Option<String>, now: OffsetDateTime) -> Self {
        let ago = (now - row.checked_at).whole_seconds().max(0);
        Self {
            site: row.site.clone(),
            address: row.address.clone(),
            key_type: row.key_type,
            sni: row.sni.clone(),
            protocol: row.protocol,
            verdict: row.verdict.as_str(),
            severity: severity(row.verdict),
            action: report::action(row.verdict),
            reason: row.reason.clone(),
            advice: row.advice,
            hint: row.hint.clone(),
            error: row
                .error
                .as_ref()
                .map(|error| format!("{}: {}", error.kind, error.message)),
            findings: row
                .findings
                .iter()
                .map(|finding| FindingView {
                    kind: finding.kind.as_str(),
                    detail: finding.detail.clone(),
                    advice: finding.advice,
                })
                .collect(),
            served: row
                .served
                .as_ref()
                .map(|served| CertView::new(&served.leaf, None, now)),
            served_verification: row
                .served
                .as_ref()
                .map(|served| served.verification.to_string()),
            disk: row
                .disk
                .as_ref()
                .map(|disk| CertView::new(&disk.leaf, Some(disk.file.clone()), now)),
            disk_notes: row
                .disk
                .iter()
                .flat_map(|disk| disk.notes.iter().cloned())
                .collect(),
            drift_since,
            last_probe: timestamp(row.checked_at),
            last_probe_ago: format!("{ago}s ago"),
            duration_ms: (row.duration_seconds * 1000.0).round() as u64,
        }
    }
}

impl CertView {
    fn new(leaf: &CertSummary, file: Option<String>, now: OffsetDateTime) -> Self {
        let left = leaf.not_after - now;
        let expiry = if left.is_negative() {
            "expired"
        } else if left < time::Duration::days(SOON_DAYS) {
            "soon"
        } else {
            "ok"
        };
        Self {
            serial: leaf.serial.clone(),
            not_after: timestamp(leaf.not_after),
            days_left: left.whole_days(),
            expiry,
            subject: leaf.subject.clone(),
            file,
        }
    }
}

/// The colour family of a verdict: green, amber (drift) or red (could not check).
fn severity(verdict: Verdict) -> &'static str {
    if verdict.is_drift() {
        "drift"
    } else if verdict.is_failure() {
        "fail"
    } else {
        "ok"
    }
}

/// "2026-12-03 21:25 UTC".
fn timestamp(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(TIMESTAMP)
        .unwrap_or_else(|_| at.to_string())
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // minijinja escapes HTML by the template name's extension: keep the `.html`.
    env.add_template(TEMPLATE_NAME, include_str!("../templates/status.html"))
        .expect("the status page template compiles");
    env
});

const TEMPLATE_NAME: &str = "status.html";
const TIMESTAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
/// Fewer days left than this colours an expiry amber.
const SOON_DAYS: i64 = 14;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use time::macros::datetime;

    use super::*;
    use crate::inspect::SiteReport;

    fn site(name: &str, report: Option<SiteReport>) -> SiteEntry {
        SiteEntry {
            name: name.to_owned(),
            report,
            drift_since: HashMap::new(),
            disk_changed: HashMap::new(),
        }
    }

    #[test]
    fn a_site_not_probed_yet_is_listed_as_waiting() {
        let html = render(
            &[site("<b>first</b>", None)],
            datetime!(2026-12-03 12:00 UTC),
        );
        assert!(html.contains("&lt;b&gt;first&lt;&#x2f;b&gt;"), "{html}");
        assert!(!html.contains("<b>first</b>"), "{html}");
        assert!(html.contains("Waiting for the first probe"), "{html}");
    }

    #[test]
    fn days_left_and_the_expiry_colour_follow_not_after() {
        let now = datetime!(2026-12-03 12:00 UTC);
        let leaf = |days: i64| {
            crate::demo::ca::TestCa::new("page test CA")
                .issue(
                    &crate::demo::ca::LeafSpec::new(["page.test"]).valid_between(
                        now - time::Duration::days(90),
                        now + time::Duration::days(days),
                    ),
                )
                .summary()
        };
        let view = CertView::new(&leaf(30), None, now);
        assert_eq!((view.days_left, view.expiry), (30, "ok"));
        let view = CertView::new(&leaf(13), None, now);
        assert_eq!((view.days_left, view.expiry), (13, "soon"));
        let view = CertView::new(&leaf(-2), Some("f.pem".into()), now);
        assert_eq!((view.days_left, view.expiry), (-2, "expired"));
        assert_eq!(view.file.as_deref(), Some("f.pem"));
    }

    #[test]
    fn every_verdict_has_a_colour_family() {
        let families: Vec<&str> = Verdict::ALL.iter().map(|v| severity(*v)).collect();
        assert_eq!(
            families,
            ["ok", "drift", "drift", "drift", "drift", "fail", "fail"]
        );
    }

    #[test]
    fn the_template_compiles_and_names_the_version() {
        let html = render(&[], datetime!(2026-12-03 12:00 UTC));
        assert!(html.starts_with("<!doctype html>"), "{html}");
        assert!(html.contains(env!("CARGO_PKG_VERSION")), "{html}");
        assert!(html.contains("2026-12-03 12:00:00 UTC"), "{html}");
    }
}
