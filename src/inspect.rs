//! One site, end to end: read the file, resolve the host, probe every address, compare.
//!
//! This is the pipeline both `check` and `serve` run; they differ only in what they do with
//! the [`SiteReport`] (print it, or keep it for `/metrics`). Nothing here fails as a whole:
//! a disk error, a resolver failure or a dead address each become a verdict, so one target's
//! failure never stops the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::cert::CertSummary;
use crate::config::Site;
use crate::disk::{self, DiskCert, DiskError};
use crate::probe::{ProbeError, Prober, Served, Verification};
use crate::verdict::{self, Verdict};

/// Everything learned about one site in one pass.
#[derive(Debug, Clone)]
pub struct SiteReport {
    /// The site's name.
    pub site: String,
    /// What the certificate file held.
    pub disk: Result<DiskCert, DiskError>,
    /// One entry per address probed; one entry named `host:port` when resolution failed.
    pub addresses: Vec<AddressReport>,
}

/// The verdict for one site on one address, with both sides' summaries.
#[derive(Debug, Clone, Serialize)]
pub struct AddressReport {
    /// The site's name.
    pub site: String,
    /// `IP:port` probed, or `host:port` when the host did not resolve.
    pub address: String,
    /// The SNI name sent, if any.
    pub sni: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, with serials and dates.
    pub reason: String,
    /// What to do about it.
    pub advice: &'static str,
    /// What the server presented, when the probe succeeded.
    pub served: Option<ServedReport>,
    /// What the file holds, when it could be read.
    pub disk: Option<DiskReport>,
    /// The failure, for `probe_failed` and `disk_error`.
    pub error: Option<ErrorReport>,
    /// When the probe finished.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// How long the probe took, resolution included.
    pub duration_seconds: f64,
}

/// The served side of a report.
#[derive(Debug, Clone, Serialize)]
pub struct ServedReport {
    /// The leaf's summary.
    #[serde(flatten)]
    pub leaf: CertSummary,
    /// How many certificates the server presented, leaf included.
    pub chain_length: usize,
    /// Whether the chain verifies against the trust store, for the SNI name.
    pub verification: Verification,
    /// The negotiated protocol version.
    pub tls_version: &'static str,
}

/// The disk side of a report.
#[derive(Debug, Clone, Serialize)]
pub struct DiskReport {
    /// The file read.
    pub file: String,
    /// The leaf's summary.
    #[serde(flatten)]
    pub leaf: Arc<CertSummary>,
    /// How many certificates follow the leaf in the file.
    pub chain_length: usize,
    /// Oddities found while reading.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A failure, as a stable kind and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorReport {
    /// A short stable name (`refused`, `timeout`, `not_found`, ...).
    pub kind: &'static str,
    /// The whole message.
    pub message: String,
}

/// Reads `site`'s file and probes every address of its host, each probe holding a permit
/// of `permits` and finishing within `timeout`.
pub async fn inspect_site(
    prober: &Prober,
    site: &Site,
    timeout: Duration,
    permits: &Semaphore,
) -> SiteReport {
    let disk = disk::load(&site.cert);
    let disk_report = disk.as_ref().ok().map(|cert| DiskReport {
        file: cert.path.display().to_string(),
        leaf: cert.leaf.clone(),
        chain_length: cert.chain.len(),
        notes: cert.notes.clone(),
    });
    let disk_leaf = disk.as_ref().map(|cert| &*cert.leaf);

    let started = Instant::now();
    let addresses = {
        // A permit for the lookup too: getaddrinfo runs on the blocking pool, and thousands
        // at once would queue there instead of here.
        let _permit = permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        prober
            .resolve(&site.host, site.port, started + timeout)
            .await
    };
    let addresses = match addresses {
        Ok(addresses) => addresses,
        Err(err) => {
            let report = address_report(
                site,
                format!("{}:{}", bracketed(&site.host), site.port),
                disk_leaf,
                &disk_report,
                Err(&err),
                started.elapsed(),
            );
            return SiteReport {
                site: site.name.clone(),
                disk,
                addresses: vec![report],
            };
        }
    };

    let server_name = site.server_name();
    let probes = addresses.iter().map(|&address| {
        let server_name = &server_name;
        async move {
            let _permit = permits
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let probe_started = Instant::now();
            let served = prober
                .probe(
                    address,
                    server_name,
                    site.ca_file.as_deref(),
                    probe_started + timeout,
                )
                .await;
            (address, served, probe_started.elapsed())
        }
    });
    let results = futures_util::future::join_all(probes).await;

    let addresses = results
        .into_iter()
        .map(|(address, served, took)| {
            address_report(
                site,
                address_label(address),
                disk_leaf,
                &disk_report,
                served.as_ref(),
                took,
            )
        })
        .collect();
    SiteReport {
        site: site.name.clone(),
        disk,
        addresses,
    }
}

/// `IP:port`, with brackets around IPv6 addresses: the `address` label.
pub fn address_label(address: SocketAddr) -> String {
    address.to_string()
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn address_report(
    site: &Site,
    address: String,
    disk_leaf: Result<&CertSummary, &DiskError>,
    disk_report: &Option<DiskReport>,
    served: Result<&Served, &ProbeError>,
    took: Duration,
) -> AddressReport {
    let now = OffsetDateTime::now_utc();
    let assessment = verdict::assess(disk_leaf, served.map(Served::leaf), now);
    let error = match (disk_leaf, served) {
        (Err(err), _) => Some(ErrorReport {
            kind: err.kind(),
            message: err.to_string(),
        }),
        (_, Err(err)) => Some(ErrorReport {
            kind: err.kind(),
            message: err.to_string(),
        }),
        _ => None,
    };
    AddressReport {
        site: site.name.clone(),
        address,
        sni: site.sni.clone(),
        verdict: assessment.verdict,
        reason: assessment.reason,
        advice: assessment.verdict.advice(),
        served: served.ok().map(|served| ServedReport {
            leaf: served.leaf().clone(),
            chain_length: served.chain.len(),
            verification: served.verification.clone(),
            tls_version: served.tls_version,
        }),
        disk: disk_report.clone(),
        error,
        checked_at: now,
        duration_seconds: took.as_secs_f64(),
    }
}
