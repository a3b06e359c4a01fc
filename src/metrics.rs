//! Every metric `serve` exports, defined in one place.
//!
//! The per-site metrics are not kept in prometheus counters and gauges that the scheduler
//! updates: they are derived from the [`Store`] at scrape time by [`StoreCollector`]. A site's
//! series therefore appear and disappear with its state, and an old serial's `_info` series
//! cannot linger after a reload. Timestamps are gauges of Unix seconds, as Prometheus
//! conventions ask; names carry their unit.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::alert::AlertEngine;
use crate::cert::CertSummary;
use crate::state::Store;
use crate::verdict::Verdict;

/// The metrics endpoint's registry: the store's series plus `certdrift_build_info`.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
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
        registry
            .register(Box::new(StoreCollector::new(store)))
            .expect("registered once");
        Self { registry }
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

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // The text encoder only fails on a writer error, and a Vec never fails.
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding into a Vec succeeds");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

/// Derives the per-site series from the store at each scrape.
struct StoreCollector {
    store: Arc<Store>,
    descs: Vec<Desc>,
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
        DISK_CHANGE,
        "Unix time when the certificate in the site's file last changed, as seen by certdrift (the file's modification time at the first read).",
        &["site", "file"],
    ),
    (
        DISK_READ_SUCCESS,
        "1 if the site's certificate file was read and parsed, else 0.",
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

impl StoreCollector {
    fn new(store: Arc<Store>) -> Self {
        let descs = FAMILIES
            .iter()
            .map(|(name, help, labels)| {
                let labels = labels.iter().map(|label| (*label).to_owned()).collect();
                Desc::new(
                    (*name).to_owned(),
                    (*help).to_owned(),
                    labels,
                    Default::default(),
                )
                .expect("a valid metric definition")
            })
            .collect();
        Self { store, descs }
    }
}

impl Collector for StoreCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families: Vec<MetricFamily> = FAMILIES
            .iter()
            .map(|(name, help, _)| {
                let mut family = MetricFamily::default();
                family.set_name((*name).to_owned());
                family.set_help((*help).to_owned());
                family.set_field_type(MetricType::GAUGE);
                family
            })
            .collect();
        let mut add = |name: &str, labels: &[(&str, &str)], value: f64| {
            let index = FAMILIES
                .iter()
                .position(|(family, _, _)| *family == name)
                .expect("every series belongs to a declared family");
            families[index].mut_metric().push(sample(labels, value));
        };

        self.store.read(|sites| {
            for entry in sites {
                let Some(report) = &entry.report else {
                    continue;
                };
                let site = entry.name.as_str();

                for disk in &report.disks {
                    let file = disk.file.to_string_lossy();
                    let at = [("site", site), ("file", &*file)];
                    match &disk.result {
                        Ok(cert) => {
                            add(DISK_READ_SUCCESS, &at, 1.0);
                            add_cert(
                                &mut add,
                                DISK_NOT_AFTER,
                                DISK_NOT_BEFORE,
                                DISK_INFO,
                                &at,
                                &cert.leaf,
                            );
                        }
                        Err(_) => add(DISK_READ_SUCCESS, &at, 0.0),
                    }
                    if let Some((_, changed)) = entry.disk_changed.get(&disk.file) {
                        add(DISK_CHANGE, &at, unix_seconds(*changed));
                    }
                }

                for row in &report.addresses {
                    // Dual-certificate sites carry `key_type`; others leave it out, which
                    // PromQL treats as an empty value.
                    let mut at = vec![("site", site), ("address", row.address.as_str())];
                    if let Some(key_type) = row.key_type {
                        at.push(("key_type", key_type));
                    }
                    let with = |extra: (&'static str, &'static str)| {
                        let mut labels = at.clone();
                        labels.push(extra);
                        labels
                    };
                    for verdict in Verdict::ALL {
                        let value = if verdict == row.verdict { 1.0 } else { 0.0 };
                        add(VERDICT, &with(("verdict", verdict.as_str())), value);
                    }
                    for finding in &row.findings {
                        add(FINDING, &with(("finding", finding.kind.as_str())), 1.0);
                    }
                    let served = row.served.as_ref();
                    add(PROBE_SUCCESS, &at, if served.is_some() { 1.0 } else { 0.0 });
                    add(PROBE_DURATION, &at, row.duration_seconds);
                    add(LAST_PROBE, &at, row.checked_at.unix_timestamp() as f64);
                    if let Some(served) = served {
                        let verified = if served.verification.is_trusted() {
                            1.0
                        } else {
                            0.0
                        };
                        add(SERVED_VERIFIED, &at, verified);
                        add_cert(
                            &mut add,
                            SERVED_NOT_AFTER,
                            SERVED_NOT_BEFORE,
                            SERVED_INFO,
                            &at,
                            &served.leaf,
                        );
                    }
                    if let Some((_, since)) = entry.drift_since.get(&row.row_id()) {
                        add(DRIFT_SINCE, &at, since.unix_timestamp() as f64);
                    }
                }
            }
        });
        families.retain(|family| !family.get_metric().is_empty());
        families
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

/// The expiry, start and identity series of `cert`, labelled with `at` (site and file, or
/// site and address).
fn add_cert(
    add: &mut impl FnMut(&str, &[(&str, &str)], f64),
    not_after: &str,
    not_before: &str,
    info: &str,
    at: &[(&str, &str)],
    cert: &CertSummary,
) {
    add(not_after, at, cert.not_after.unix_timestamp() as f64);
    add(not_before, at, cert.not_before.unix_timestamp() as f64);
    let fingerprint = cert.fingerprint_sha256.to_string();
    let mut labels = at.to_vec();
    labels.extend([
        ("serial", cert.serial.as_str()),
        ("fingerprint_sha256", fingerprint.as_str()),
        ("subject", cert.subject.as_str()),
        ("issuer", cert.issuer.as_str()),
    ]);
    add(info, &labels, 1.0);
}

/// `at` in Unix seconds, with its fraction: a change and the verdict it caused are often
/// less than a second apart.
fn unix_seconds(at: time::OffsetDateTime) -> f64 {
    at.unix_timestamp_nanos() as f64 / 1e9
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
