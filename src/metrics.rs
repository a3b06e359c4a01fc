//! Every metric `serve` exports, defined in one place.
//!
//! The per-site metrics are not kept in prometheus counters and gauges that the scheduler
//! updates: they are derived from the [`Store`] at scrape time, written straight into the
//! text exposition. A site's series therefore appear and disappear with its state, and an old
//! serial's `_info` series cannot linger after a reload. Timestamps are gauges of Unix
//! seconds, as Prometheus conventions ask; names carry their unit.
//!
//! The few series that are not per site (`certdrift_build_info`, the alert series) live in a
//! prometheus [`Registry`] and are merged in by name. The per-site ones skip the registry's
//! protobuf objects: 10,000 sites × 2 addresses make about 300,000 series, and building an
//! object with owned label strings for each took two seconds and 200 MB per scrape, where
//! writing the text directly takes a few tens of milliseconds and only the text's memory.

use std::fmt::Write as _;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{IntGaugeVec, Opts, Registry, TextEncoder};

use crate::alert::AlertEngine;
use crate::cert::CertSummary;
use crate::inspect::SiteReport;
use crate::state::{SiteEntry, Store};
use crate::verdict::Verdict;

/// The metrics endpoint: the store's series plus a registry for `certdrift_build_info` and
/// the alert series.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    store: Arc<Store>,
}

impl Metrics {
    /// Registers every metric over `store`.
    pub fn new(store: Arc<Store>) -> Self {
        let registry = Registry::new();
        let build_info = IntGaugeVec::new(
            Opts::new(
                "certdrift_build_info",
                "A constant 1, labelled with the running version.",
            ),
            &["version"],
        )
        .expect("a valid metric definition");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry
            .register(Box::new(build_info))
            .expect("registered once");
        Self { registry, store }
    }

    /// Adds the alert series: `certdrift_alerts_firing` from `alerts`' current state, and its
    /// `certdrift_notifications_total` counter.
    pub fn register_alerts(&self, alerts: Arc<AlertEngine>) {
        self.registry
            .register(Box::new(alerts.notifications_counter()))
            .expect("registered once");
        self.registry
            .register(Box::new(AlertCollector::new(alerts)))
            .expect("registered once");
    }

    /// The Prometheus text exposition of every metric, families in name order, each
    /// family's per-site series in config order.
    pub fn render(&self) -> String {
        let registered = self.registry.gather();
        let mut families: Vec<(&str, Option<&MetricFamily>)> = FAMILIES
            .iter()
            .map(|(name, _, _)| (*name, None))
            .chain(
                registered
                    .iter()
                    .map(|family| (family.name(), Some(family))),
            )
            .collect();
        families.sort_by_key(|(name, _)| *name);

        self.store.read(|sites| {
            let labels = RowLabels::new(sites);
            // More than the about 3 KiB a site with two addresses takes, so the text never
            // grows by copying; pages never written are never resident.
            let mut out = String::with_capacity(4096 + sites.len() * 4 * 1024);
            for (name, registered) in families {
                match registered {
                    // The text encoder only fails on a family without a name or type, which
                    // a registered collector cannot yield.
                    Some(family) => TextEncoder::new()
                        .encode_utf8(std::slice::from_ref(family), &mut out)
                        .expect("a registered family encodes"),
                    None => write_store_family(&mut out, name, sites, &labels),
                }
            }
            out
        })
    }
}

/// Name, help and labels of every series the store yields.
const FAMILIES: &[(&str, &str, &[&str])] = &[
    (
        VERDICT,
        "1 for the site's current verdict on the address (and key type), 0 for every other verdict.",
        &["site", "address", "verdict"],
    ),
    (
        SERVED_NOT_AFTER,
        "Unix time when the certificate served on the address expires.",
        &["site", "address"],
    ),
    (
        SERVED_NOT_BEFORE,
        "Unix time when the certificate served on the address became valid.",
        &["site", "address"],
    ),
    (
        DISK_NOT_AFTER,
        "Unix time when the certificate in the site's file expires.",
        &["site", "file"],
    ),
    (
        DISK_NOT_BEFORE,
        "Unix time when the certificate in the site's file became valid.",
        &["site", "file"],
    ),
    (
        SERVED_INFO,
        "A constant 1, labelled with the served certificate's identity.",
        &[
            "site",
            "address",
            "serial",
            "fingerprint_sha256",
            "subject",
            "issuer",
        ],
    ),
    (
        DISK_INFO,
        "A constant 1, labelled with the identity of the certificate in the site's file.",
        &[
            "site",
            "file",
            "serial",
            "fingerprint_sha256",
            "subject",
            "issuer",
        ],
    ),
    (
        DRIFT_SINCE,
        "Unix time when the current drift verdict was first seen on the address; absent when not drifting.",
        &["site", "address"],
    ),
    (
        PROBE_SUCCESS,
        "1 if the last probe of the address completed a TLS handshake, else 0.",
        &["site", "address"],
    ),
    (
        PROBE_DURATION,
        "How long the last probe of the address took, in seconds.",
        &["site", "address"],
    ),
    (
        LAST_PROBE,
        "Unix time when the address was last probed.",
        &["site", "address"],
    ),
    (
        SERVED_VERIFIED,
        "1 if the served chain verifies against the trust store for the SNI name, else 0.",
        &["site", "address"],
    ),
    (
        FINDING,
        "1 while the finding is present on the address; absent otherwise.",
        &["site", "address", "finding"],
    ),
    (
        DISK_READ_SUCCESS,
        "1 if the site's certificate file was read and parsed, else 0.",
        &["site", "file"],
    ),
    (
        DISK_CHANGE,
        "Unix time when the certificate in the site's file last changed, as seen by certdrift (the file's modification time at the first read).",
        &["site", "file"],
    ),
];

const VERDICT: &str = "certdrift_verdict";
const SERVED_NOT_AFTER: &str = "certdrift_served_cert_not_after_seconds";
const SERVED_NOT_BEFORE: &str = "certdrift_served_cert_not_before_seconds";
const DISK_NOT_AFTER: &str = "certdrift_disk_cert_not_after_seconds";
const DISK_NOT_BEFORE: &str = "certdrift_disk_cert_not_before_seconds";
const SERVED_INFO: &str = "certdrift_served_cert_info";
const DISK_INFO: &str = "certdrift_disk_cert_info";
const DRIFT_SINCE: &str = "certdrift_drift_since_seconds";
const PROBE_SUCCESS: &str = "certdrift_probe_success";
const PROBE_DURATION: &str = "certdrift_probe_duration_seconds";
const LAST_PROBE: &str = "certdrift_last_probe_timestamp_seconds";
const SERVED_VERIFIED: &str = "certdrift_served_cert_verified";
const DISK_READ_SUCCESS: &str = "certdrift_disk_read_success";
const DISK_CHANGE: &str = "certdrift_disk_change_timestamp_seconds";
const FINDING: &str = "certdrift_finding";

/// The escaped labels every sample of a row starts with, computed once per scrape rather
/// than once per family: `site="...",file="..."` for each file, `site="...",address="..."`
/// (and `key_type`) for each address, in store order.
struct RowLabels {
    files: Vec<String>,
    addresses: Vec<String>,
}

impl RowLabels {
    fn new(sites: &[SiteEntry]) -> Self {
        let mut labels = Self {
            files: Vec::new(),
            addresses: Vec::new(),
        };
        for entry in sites {
            let Some(report) = &entry.report else {
                continue;
            };
            let site = entry.name.as_str();
            for disk in &report.disks {
                let file = disk.file.to_string_lossy();
                labels
                    .files
                    .push(label_text(&[("site", site), ("file", &file)]));
            }
            for row in &report.addresses {
                // Dual-certificate sites carry `key_type`; others leave it out, which PromQL
                // treats as an empty value.
                let mut text = label_text(&[("site", site), ("address", &row.address)]);
                if let Some(key_type) = row.key_type {
                    text.push(',');
                    text.push_str(&label_text(&[("key_type", key_type)]));
                }
                labels.addresses.push(text);
            }
        }
        labels
    }
}

/// `name="value",...`, values escaped.
fn label_text(labels: &[(&str, &str)]) -> String {
    let mut text = String::new();
    for (index, (name, value)) in labels.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        text.push_str(name);
        text.push_str("=\"");
        escape_into(&mut text, value, true);
        text.push('"');
    }
    text
}

/// Writes family `name` (one of [`FAMILIES`]): its `# HELP` and `# TYPE` lines and every
/// site's samples; nothing at all when no site has one.
fn write_store_family(out: &mut String, name: &str, sites: &[SiteEntry], labels: &RowLabels) {
    let help = FAMILIES
        .iter()
        .find(|(family, _, _)| *family == name)
        .map_or("", |(_, help, _)| *help);
    let start = out.len();
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    escape_into(out, help, false);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push_str(" gauge\n");
    let header_end = out.len();

    let mut samples = Samples { out, name };
    let mut files = labels.files.iter();
    let mut addresses = labels.addresses.iter();
    for entry in sites {
        if let Some(report) = &entry.report {
            site_samples(&mut samples, entry, report, &mut files, &mut addresses);
        }
    }
    if out.len() == header_end {
        out.truncate(start);
    }
}

/// The samples of one site in the family `samples` writes; `files` and `addresses` yield the
/// labels of its rows ([`RowLabels`]) in order.
fn site_samples<'a>(
    samples: &mut Samples<'_>,
    entry: &SiteEntry,
    report: &SiteReport,
    files: &mut impl Iterator<Item = &'a String>,
    addresses: &mut impl Iterator<Item = &'a String>,
) {
    let name = samples.name;
    for (disk, at) in report.disks.iter().zip(files) {
        if name == DISK_CHANGE {
            if let Some((_, changed)) = entry.disk_changed.get(&disk.file) {
                samples.write(at, &[], unix_seconds(*changed));
            }
            continue;
        }
        match &disk.result {
            Ok(_) if name == DISK_READ_SUCCESS => samples.write(at, &[], 1.0),
            Ok(cert) => cert_sample(
                samples,
                DISK_NOT_AFTER,
                DISK_NOT_BEFORE,
                DISK_INFO,
                at,
                &cert.leaf,
            ),
            Err(_) if name == DISK_READ_SUCCESS => samples.write(at, &[], 0.0),
            Err(_) => {}
        }
    }

    for (row, at) in report.addresses.iter().zip(addresses) {
        let served = row.served.as_ref();
        match name {
            VERDICT => {
                for verdict in Verdict::ALL {
                    let value = if verdict == row.verdict { 1.0 } else { 0.0 };
                    samples.write(at, &[("verdict", verdict.as_str())], value);
                }
            }
            FINDING => {
                for finding in &row.findings {
                    samples.write(at, &[("finding", finding.kind.as_str())], 1.0);
                }
            }
            PROBE_SUCCESS => samples.write(at, &[], if served.is_some() { 1.0 } else { 0.0 }),
            PROBE_DURATION => samples.write(at, &[], row.duration_seconds),
            LAST_PROBE => samples.write(at, &[], row.checked_at.unix_timestamp() as f64),
            SERVED_VERIFIED => {
                if let Some(served) = served {
                    let verified = if served.verification.is_trusted() {
                        1.0
                    } else {
                        0.0
                    };
                    samples.write(at, &[], verified);
                }
            }
            SERVED_NOT_AFTER | SERVED_NOT_BEFORE | SERVED_INFO => {
                if let Some(served) = served {
                    cert_sample(
                        samples,
                        SERVED_NOT_AFTER,
                        SERVED_NOT_BEFORE,
                        SERVED_INFO,
                        at,
                        &served.leaf,
                    );
                }
            }
            DRIFT_SINCE => {
                if entry.drift_since.is_empty() {
                    continue;
                }
                if let Some((_, since)) = entry.drift_since.get(&row.row_id()) {
                    samples.write(at, &[], since.unix_timestamp() as f64);
                }
            }
            _ => {}
        }
    }
}

/// The sample of `cert` in the family `samples` writes, if it is one of `cert`'s: its expiry
/// (`not_after`), its start (`not_before`) or its identity series (`info`), labelled `at`.
fn cert_sample(
    samples: &mut Samples<'_>,
    not_after: &str,
    not_before: &str,
    info: &str,
    at: &str,
    cert: &CertSummary,
) {
    if samples.name == not_after {
        samples.write(at, &[], cert.not_after.unix_timestamp() as f64);
    } else if samples.name == not_before {
        samples.write(at, &[], cert.not_before.unix_timestamp() as f64);
    } else if samples.name == info {
        let fingerprint = cert.fingerprint_sha256.to_string();
        let identity = [
            ("serial", cert.serial.as_str()),
            ("fingerprint_sha256", fingerprint.as_str()),
            ("subject", cert.subject.as_str()),
            ("issuer", cert.issuer.as_str()),
        ];
        samples.write(at, &identity, 1.0);
    }
}

/// `at` in Unix seconds, with its fraction: a change and the verdict it caused are often
/// less than a second apart.
fn unix_seconds(at: time::OffsetDateTime) -> f64 {
    at.unix_timestamp_nanos() as f64 / 1e9
}

/// Writes samples of one family in the text format: `name{label="value",...} value`.
struct Samples<'a> {
    out: &'a mut String,
    name: &'a str,
}

impl Samples<'_> {
    /// One sample labelled `at` (already escaped, see [`RowLabels`]) and then `extra`.
    fn write(&mut self, at: &str, extra: &[(&str, &str)], value: f64) {
        let out = &mut *self.out;
        out.push_str(self.name);
        out.push('{');
        out.push_str(at);
        for (label, text) in extra {
            out.push(',');
            out.push_str(label);
            out.push_str("=\"");
            escape_into(out, text, true);
            out.push('"');
        }
        out.push_str("} ");
        // Whole numbers (0, 1, Unix times) print as the prometheus encoder prints them, with
        // integer formatting, which is much faster than float formatting; most samples are
        // a 0 or a 1.
        if value == 0.0 {
            out.push('0');
        } else if value == 1.0 {
            out.push('1');
        } else if value.fract() == 0.0 && value.abs() < 1e15 {
            let _ = write!(out, "{}", value as i64);
        } else {
            let _ = write!(out, "{value}");
        }
        out.push('\n');
    }
}

/// Appends `text` escaped for the text format: backslash and line feed, and the double
/// quote too inside a label value.
fn escape_into(out: &mut String, text: &str, in_label: bool) {
    let special = |byte: &u8| *byte == b'\\' || *byte == b'\n' || (in_label && *byte == b'"');
    if !text.as_bytes().iter().any(special) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if in_label => out.push_str("\\\""),
            other => out.push(other),
        }
    }
}

/// Derives `certdrift_alerts_firing` from the alert engine at each scrape.
struct AlertCollector {
    alerts: Arc<AlertEngine>,
    desc: Desc,
}

const ALERTS_FIRING: &str = "certdrift_alerts_firing";

impl AlertCollector {
    fn new(alerts: Arc<AlertEngine>) -> Self {
        let desc = Desc::new(
            ALERTS_FIRING.to_owned(),
            "1 for each alert certdrift's own alerting has firing; absent otherwise.".to_owned(),
            ["alert", "site", "address", "severity"]
                .map(str::to_owned)
                .to_vec(),
            Default::default(),
        )
        .expect("a valid metric definition");
        Self { alerts, desc }
    }
}

impl Collector for AlertCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut family = MetricFamily::default();
        family.set_name(ALERTS_FIRING.to_owned());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::GAUGE);
        for alert in self.alerts.firing() {
            let labels = [
                ("alert", alert.key.alert.as_str()),
                ("site", alert.key.site.as_str()),
                ("address", alert.key.address.as_str()),
                ("severity", alert.severity.as_str()),
            ];
            family.mut_metric().push(sample(&labels, 1.0));
        }
        if family.get_metric().is_empty() {
            Vec::new()
        } else {
            vec![family]
        }
    }
}

fn sample(labels: &[(&str, &str)], value: f64) -> Metric {
    let pairs = labels
        .iter()
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name((*name).to_owned());
            pair.set_value((*value).to_owned());
            pair
        })
        .collect();
    let mut gauge = Gauge::default();
    gauge.set_value(value);
    let mut metric = Metric::from_label(pairs);
    metric.set_gauge(gauge);
    metric
}
