//! `certdrift discover`: a config for the TLS servers of this machine, read from their own
//! configuration and from certbot's state.
//!
//! Each source has its module: [`nginx`], [`apache`], [`haproxy`], [`postfix`], [`dovecot`]
//! read a server's config into [`Endpoint`]s (a listener, the names it answers, the
//! certificate files it loads, and the file and line it came from); [`certbot`] reads the
//! renewal confs into [`Lineage`]s. The parsers are pure functions over text, fed through
//! [`files::ConfigFiles`]; only the thin `discover` functions of each module run the server's
//! own tool (`nginx -T`, `postconf`, `doveconf`) or read the disk.
//!
//! This module turns endpoints into [`DiscoveredSite`]s: one per endpoint and port, probed
//! on loopback when the server listens on a wildcard, named `SOURCE-NAME-PORT`, with the SNI
//! name from the config, else the certificate, else the lineage. [`render`] writes them as
//! the TOML `Config::from_toml` reads. Nothing here is fatal: an unreadable or unparsable
//! config is a [`Warning`] naming the file and line, and the other sources still count.

mod apache;
mod certbot;
mod certs;
mod dovecot;
pub mod files;
mod haproxy;
mod nginx;
mod postfix;
mod render;
mod tool;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rustls::pki_types::ServerName;

use crate::config::{Config, ConfigError};
use crate::disk::DiskError;
use crate::probe::{KeyType, Protocol};
use crate::text::escape_controls;

pub use certs::CertPeek;
pub use render::render;

/// Where discovery looks by default: Debian's paths.
pub const DEFAULT_NGINX_CONF: &str = "/etc/nginx/nginx.conf";
/// apache2's main config file on Debian.
pub const DEFAULT_APACHE_CONF: &str = "/etc/apache2/apache2.conf";
/// haproxy's config file on Debian.
pub const DEFAULT_HAPROXY_CONF: &str = "/etc/haproxy/haproxy.cfg";
/// postfix's config directory (main.cf, master.cf).
pub const DEFAULT_POSTFIX_DIR: &str = "/etc/postfix";
/// dovecot's main config file.
pub const DEFAULT_DOVECOT_CONF: &str = "/etc/dovecot/dovecot.conf";
/// certbot's config directory (renewal/, live/, archive/).
pub const DEFAULT_LETSENCRYPT_DIR: &str = "/etc/letsencrypt";

/// A kind of config discovery reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    /// nginx (`nginx -T`, or its files).
    Nginx,
    /// apache2's files.
    Apache,
    /// haproxy's files.
    Haproxy,
    /// postfix (`postconf`, master.cf).
    Postfix,
    /// dovecot (`doveconf`, or its files).
    Dovecot,
    /// certbot's renewal confs.
    Certbot,
}

impl SourceKind {
    /// Every source, in the order discovery reads and reports them.
    pub const ALL: [SourceKind; 6] = [
        SourceKind::Nginx,
        SourceKind::Apache,
        SourceKind::Haproxy,
        SourceKind::Postfix,
        SourceKind::Dovecot,
        SourceKind::Certbot,
    ];

    /// The name in `--sources` and in site names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Apache => "apache",
            Self::Haproxy => "haproxy",
            Self::Postfix => "postfix",
            Self::Dovecot => "dovecot",
            Self::Certbot => "certbot",
        }
    }

    /// The command-line flag that says where this source is.
    pub fn flag(self) -> &'static str {
        match self {
            Self::Nginx => "--nginx-conf",
            Self::Apache => "--apache-conf",
            Self::Haproxy => "--haproxy-conf",
            Self::Postfix => "--postfix-dir",
            Self::Dovecot => "--dovecot-conf",
            Self::Certbot => "--letsencrypt-dir",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SourceKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .or(match text {
                "apache2" | "httpd" => Some(Self::Apache),
                "letsencrypt" => Some(Self::Certbot),
                _ => None,
            })
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|kind| kind.as_str()).collect();
                format!("`{text}` is not a source; use {}", names.join(", "))
            })
    }
}

/// Where discovery looks; `None` takes the Debian default.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// nginx's main config file.
    pub nginx_conf: Option<PathBuf>,
    /// nginx's prefix (`nginx -p`); `None` keeps nginx's compiled-in one.
    pub nginx_prefix: Option<PathBuf>,
    /// apache2's main config file.
    pub apache_conf: Option<PathBuf>,
    /// haproxy's config file, or a directory of `*.cfg` files.
    pub haproxy_conf: Option<PathBuf>,
    /// postfix's config directory.
    pub postfix_dir: Option<PathBuf>,
    /// dovecot's main config file.
    pub dovecot_conf: Option<PathBuf>,
    /// certbot's config directory.
    pub letsencrypt_dir: Option<PathBuf>,
    /// Only these sources; `None` reads all of them.
    pub only: Option<Vec<SourceKind>>,
}

impl Sources {
    /// Where `kind` is looked for, and whether that was given rather than the default.
    pub fn location(&self, kind: SourceKind) -> (PathBuf, bool) {
        let (given, default) = match kind {
            SourceKind::Nginx => (&self.nginx_conf, DEFAULT_NGINX_CONF),
            SourceKind::Apache => (&self.apache_conf, DEFAULT_APACHE_CONF),
            SourceKind::Haproxy => (&self.haproxy_conf, DEFAULT_HAPROXY_CONF),
            SourceKind::Postfix => (&self.postfix_dir, DEFAULT_POSTFIX_DIR),
            SourceKind::Dovecot => (&self.dovecot_conf, DEFAULT_DOVECOT_CONF),
            SourceKind::Certbot => (&self.letsencrypt_dir, DEFAULT_LETSENCRYPT_DIR),
        };
        match given {
            // Absolute, so that nginx -c and every relative path in the configs resolve
            // the same whatever the working directory.
            Some(path) => (std::path::absolute(path).unwrap_or(path.clone()), true),
            None => (PathBuf::from(default), false),
        }
    }

    /// Whether `kind` is read.
    pub fn reads(&self, kind: SourceKind) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(&kind))
    }

    /// Whether any location or `--sources` was given.
    pub fn any_given(&self) -> bool {
        self.only.is_some()
            || self.nginx_prefix.is_some()
            || SourceKind::ALL
                .into_iter()
                .any(|kind| self.location(kind).1)
    }
}

/// A file, and a line in it when known.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// The config file.
    pub file: PathBuf,
    /// The 1-based line.
    pub line: Option<usize>,
}

impl Origin {
    /// `file`, no line.
    pub fn file(file: &Path) -> Self {
        Self {
            file: file.to_owned(),
            line: None,
        }
    }

    /// `file:line`.
    pub fn at(file: &Path, line: usize) -> Self {
        Self {
            file: file.to_owned(),
            line: Some(line),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        Ok(())
    }
}

/// Something discovery could not read or use, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Warning {
    /// The file and line.
    pub origin: Origin,
    /// What is wrong, and what was done instead.
    pub message: String,
}

impl Warning {
    /// A warning about `origin`.
    pub fn new(origin: Origin, message: String) -> Self {
        Self { origin, message }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A message may quote a tool's output or a file name: one line, and no control
        // byte reaches the terminal.
        let text = format!("{}: {}", self.origin, self.message).replace('\n', " ");
        f.write_str(&escape_controls(&text))
    }
}

/// The address part of a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenHost {
    /// Every IPv4 address (`*`, `0.0.0.0`, no address).
    AnyV4,
    /// Every IPv6 address (`[::]`).
    AnyV6,
    /// One address.
    Ip(IpAddr),
    /// A host name, resolved by the server at start.
    Name(String),
}

impl ListenHost {
    /// `ip`, with the unspecified addresses as the wildcards they are.
    pub fn from_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) if v4.is_unspecified() => Self::AnyV4,
            IpAddr::V6(v6) if v6.is_unspecified() => Self::AnyV6,
            ip => Self::Ip(ip),
        }
    }

    /// Reads `*`, an IP address (IPv6 with or without brackets) or a name.
    pub fn parse(text: &str) -> Self {
        let bare = text.trim_start_matches('[').trim_end_matches(']');
        match bare {
            "*" | "" => Self::AnyV4,
            _ => match bare.parse::<IpAddr>() {
                Ok(ip) => Self::from_ip(ip),
                Err(_) => Self::Name(bare.to_owned()),
            },
        }
    }
}

/// A TLS listener: where, and on which port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// The address it listens on.
    pub host: ListenHost,
    /// The TCP port.
    pub port: u16,
}

/// Where a certificate's private key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// Not configured (or not known).
    None,
    /// This file.
    Path(PathBuf),
    /// In the certificate file itself, else in `CERT.key` beside it (haproxy's rule).
    InCertOrDotKey,
}

/// One certificate file a server loads, and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRef {
    /// The PEM file with the leaf (and usually the chain).
    pub cert: PathBuf,
    /// Its private key.
    pub key: KeyRef,
}

/// The certificates of an endpoint, as its config states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSpec {
    /// Certificate files, each with its key.
    Pairs(Vec<CertRef>),
    /// A list of files where each key comes before its certificate chain, or both share a
    /// file (postfix's `smtpd_tls_chain_files` and SNI map entries); which file is which is
    /// found by reading them.
    KeyThenCerts(Vec<PathBuf>),
}

/// One TLS service found in a server's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Which server's config.
    pub source: SourceKind,
    /// The block, line or entry it came from.
    pub origin: Origin,
    /// What it is, for the comment above the site ("nginx server block (listen 443 ssl)").
    pub what: String,
    /// Where it listens, TLS listeners only.
    pub listens: Vec<Listen>,
    /// The names it answers, in config order (wildcards and placeholders included).
    pub names: Vec<String>,
    /// Its certificate files.
    pub certs: CertSpec,
    /// A separate chain file (apache's `SSLCertificateChainFile`).
    pub chain: Option<PathBuf>,
    /// What is spoken before TLS.
    pub protocol: Protocol,
    /// Remarks for the comment above the site.
    pub notes: Vec<String>,
}

/// What a source's parser found.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// The TLS services.
    pub endpoints: Vec<Endpoint>,
    /// What could not be read or used.
    pub warnings: Vec<Warning>,
    /// How the config was read ("nginx -T", "the files").
    pub how: String,
    /// How many config files were read.
    pub files_read: usize,
}

impl Parsed {
    /// Keeps one copy of each endpoint (a file read twice through an include glob gives its
    /// blocks twice, at the same file and line) and of each warning, in order.
    pub fn dedupe(&mut self) {
        // Keyed by the whole endpoint's text: linear however many blocks a config has.
        let mut seen = HashSet::new();
        self.endpoints
            .retain(|endpoint| seen.insert(format!("{endpoint:?}")));
        dedupe_warnings(&mut self.warnings);
    }
}

/// Keeps the first of identical warnings (same file, line and message), in order.
pub fn dedupe_warnings(warnings: &mut Vec<Warning>) {
    let mut seen = HashSet::new();
    warnings.retain(|warning| seen.insert(warning.clone()));
}

/// A certbot lineage: `renewal/NAME.conf` and the `live/` files it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// The lineage name (the renewal conf's file name without `.conf`).
    pub name: String,
    /// The renewal conf.
    pub conf: Origin,
    /// `cert = ...`: the leaf alone.
    pub cert: Option<PathBuf>,
    /// `chain = ...`: the intermediates.
    pub chain: Option<PathBuf>,
    /// `fullchain = ...`: leaf and intermediates.
    pub fullchain: Option<PathBuf>,
    /// `privkey = ...`.
    pub privkey: Option<PathBuf>,
    /// The names the current certificate covers (empty when it cannot be read).
    pub domains: Vec<String>,
    /// The discovered sites whose files are in this lineage.
    pub used_by: Vec<String>,
}

impl Lineage {
    /// The `live/NAME` directory (the directory of `cert` or `fullchain`).
    pub fn live_dir(&self) -> Option<&Path> {
        self.fullchain
            .as_deref()
            .or(self.cert.as_deref())
            .and_then(Path::parent)
    }

    /// Whether `path` is one of this lineage's files, or in its `live/` directory.
    pub fn holds(&self, path: &Path) -> bool {
        let path = files::normalize(path);
        let named = [&self.cert, &self.chain, &self.fullchain, &self.privkey]
            .into_iter()
            .flatten()
            .any(|file| files::normalize(file) == path);
        named
            || self
                .live_dir()
                .is_some_and(|dir| path.parent() == Some(&files::normalize(dir)))
    }
}

/// The certificate files of a discovered site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteCerts {
    /// One certificate (`cert`, optional `chain` and `key`).
    One {
        /// The certificate file.
        cert: PathBuf,
        /// A separate chain file.
        chain: Option<PathBuf>,
        /// The private key.
        key: Option<PathBuf>,
    },
    /// One certificate per key type (`key_types`, `cert` and `key` tables).
    ByKeyType(Vec<(KeyType, PathBuf, Option<PathBuf>)>),
}

/// A site discovery proposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredSite {
    /// Unique and stable: `SOURCE-NAME-PORT`.
    pub name: String,
    /// Which server's config.
    pub source: SourceKind,
    /// The block, line or entry it came from.
    pub origin: Origin,
    /// What it is.
    pub what: String,
    /// What to connect to: the SNI name when there is one (with `connect_to`), else an IP.
    pub host: String,
    /// The addresses to probe instead of resolving `host`.
    pub connect_to: Vec<IpAddr>,
    /// The port.
    pub port: u16,
    /// The SNI name; `None` probes without SNI (the server's default certificate).
    pub sni: Option<String>,
    /// What is spoken before TLS.
    pub protocol: Protocol,
    /// The certificate files.
    pub certs: SiteCerts,
    /// The certbot lineage the files belong to.
    pub lineage: Option<String>,
    /// Remarks, written as comments above the site.
    pub notes: Vec<String>,
}

/// How reading one source went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceOutcome {
    /// Left out by `--sources`.
    Skipped,
    /// Nothing at the location.
    NotFound,
    /// Read: how, and how many sites (lineages, for certbot) it gave.
    Read {
        /// "nginx -T", "the files", "postconf".
        how: String,
        /// Sites (or lineages) found.
        found: usize,
    },
}

/// One source's line in the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReport {
    /// Which source.
    pub kind: SourceKind,
    /// Where it was looked for.
    pub location: PathBuf,
    /// What came of it.
    pub outcome: SourceOutcome,
}

impl fmt::Display for SourceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.kind, self.location.display())?;
        match &self.outcome {
            SourceOutcome::Skipped => write!(f, "skipped (not in --sources)"),
            SourceOutcome::NotFound => write!(f, "not found"),
            SourceOutcome::Read { how, found } => {
                let unit = match (self.kind, found) {
                    (SourceKind::Certbot, 1) => "lineage",
                    (SourceKind::Certbot, _) => "lineages",
                    (_, 1) => "TLS site",
                    (_, _) => "TLS sites",
                };
                write!(f, "{found} {unit}, read from {how}")
            }
        }
    }
}

/// Everything discovery found.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// The sites, in source order, then config order.
    pub sites: Vec<DiscoveredSite>,
    /// certbot's lineages.
    pub lineages: Vec<Lineage>,
    /// What could not be read or used.
    pub warnings: Vec<Warning>,
    /// How each source went.
    pub sources: Vec<SourceReport>,
    /// certbot's directory when `--letsencrypt-dir` gave one: written as the config's
    /// `letsencrypt_dir`, so that copies (a haproxy combined PEM, a postfix copy) are matched
    /// to lineages there and not in the default `/etc/letsencrypt`.
    pub letsencrypt_dir: Option<PathBuf>,
}

impl Discovery {
    /// The discovered sites as a [`Config`], through the same TOML `check --config` reads.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when no site was found (or, were discovery to write something the
    /// loader refuses, that error).
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::from_toml(
            &render(self),
            "the discovered configuration",
            Path::new("/"),
        )
    }

    /// "nginx /etc/nginx/nginx.conf: not found; ..." for messages.
    pub fn looked_at(&self) -> String {
        let parts: Vec<String> = self.sources.iter().map(ToString::to_string).collect();
        parts.join("; ")
    }
}

/// Reads every source in `sources` and proposes a site per TLS service found.
///
/// Never fails: what cannot be read is a warning, and a missing source is "not found".
/// Runs the servers' config tools (`nginx -T`, `postconf`, `doveconf`) when installed; each
/// is bounded in time.
pub fn discover(sources: &Sources) -> Discovery {
    /// How a source went, before its sites are counted.
    enum Pending {
        Skipped,
        NotFound,
        Read(String),
    }

    let mut discovery = Discovery::default();
    if let (location, true) = sources.location(SourceKind::Certbot) {
        discovery.letsencrypt_dir = Some(location);
    }
    let mut endpoints = Vec::new();
    let mut per_source: Vec<(SourceKind, PathBuf, Pending)> = Vec::new();

    for kind in SourceKind::ALL {
        let (location, explicit) = sources.location(kind);
        if !sources.reads(kind) {
            per_source.push((kind, location, Pending::Skipped));
            continue;
        }
        if !location.exists() {
            if explicit {
                discovery.warnings.push(Warning::new(
                    Origin::file(&location),
                    format!("not found (given with {})", kind.flag()),
                ));
            }
            per_source.push((kind, location, Pending::NotFound));
            continue;
        }
        let parsed = match kind {
            SourceKind::Nginx => nginx::discover(&location, sources.nginx_prefix.as_deref()),
            SourceKind::Apache => apache::discover(&location),
            SourceKind::Haproxy => haproxy::discover(&location),
            SourceKind::Postfix => postfix::discover(&location),
            SourceKind::Dovecot => dovecot::discover(&location),
            SourceKind::Certbot => {
                let (lineages, parsed) = certbot::discover(&location);
                discovery.lineages = lineages;
                parsed
            }
        };
        let mut parsed = parsed;
        parsed.dedupe();
        discovery.warnings.extend(parsed.warnings);
        endpoints.extend(parsed.endpoints);
        per_source.push((kind, location, Pending::Read(parsed.how)));
    }

    discovery.sites = build_sites(endpoints, &mut discovery.lineages, &mut discovery.warnings);
    dedupe_warnings(&mut discovery.warnings);
    for (kind, location, how) in per_source {
        let outcome = match how {
            Pending::Skipped => SourceOutcome::Skipped,
            Pending::NotFound => SourceOutcome::NotFound,
            Pending::Read(how) => SourceOutcome::Read {
                how,
                found: match kind {
                    SourceKind::Certbot => discovery.lineages.len(),
                    kind => discovery.sites.iter().filter(|s| s.source == kind).count(),
                },
            },
        };
        discovery.sources.push(SourceReport {
            kind,
            location,
            outcome,
        });
    }
    discovery
}

/// Turns endpoints into sites: one per endpoint and port (and per listening host name),
/// with lineages attached and names made unique.
pub fn build_sites(
    endpoints: Vec<Endpoint>,
    lineages: &mut [Lineage],
    warnings: &mut Vec<Warning>,
) -> Vec<DiscoveredSite> {
    let mut peeks = Peeks::default();
    let mut sites: Vec<DiscoveredSite> = Vec::new();
    for endpoint in endpoints {
        if let Some(path) = unwritable_path(&endpoint) {
            warnings.push(Warning::new(
                endpoint.origin.clone(),
                format!(
                    "{}: the file name {} is not UTF-8 text, so it cannot be written in the TOML config; not probed",
                    endpoint.what,
                    escape_path(path)
                ),
            ));
            continue;
        }
        let refs = resolve_certs(&endpoint, &mut peeks, warnings);
        if refs.is_empty() {
            warnings.push(Warning::new(
                endpoint.origin.clone(),
                format!("{}: no certificate file found; not probed", endpoint.what),
            ));
            continue;
        }
        let mut notes = endpoint.notes.clone();
        let lineage = lineages
            .iter()
            .position(|lineage| refs.iter().any(|r| lineage.holds(&r.cert)));
        let certs = site_certs(&refs, endpoint.chain.clone(), &mut peeks, &mut notes);
        let first_peek = peeks.get(&refs[0].cert).as_ref().ok().cloned();
        let sni = choose_sni(
            &endpoint.names,
            first_peek.as_ref(),
            lineage.map(|index| lineages[index].domains.as_slice()),
        );
        if sni.is_none() {
            notes.push("no name found for SNI: probed without SNI, which gets the server's default certificate".to_owned());
        }

        for (port, targets) in group_by_port(&endpoint.listens) {
            for target in targets {
                if let Target::Name(name) = &target
                    && crate::probe::server_name(name).is_err()
                {
                    warnings.push(Warning::new(
                        endpoint.origin.clone(),
                        format!("{}: listens on `{name}`, which is not a host name certdrift can connect to; not probed", endpoint.what),
                    ));
                    continue;
                }
                let (host, connect_to) = match (&target, &sni) {
                    (Target::Ips(ips), Some(sni)) => (sni.clone(), ips.clone()),
                    (Target::Ips(ips), None) if ips.len() == 1 => (ips[0].to_string(), Vec::new()),
                    (Target::Ips(ips), None) => (ips[0].to_string(), ips.clone()),
                    (Target::Name(name), _) => (name.clone(), Vec::new()),
                };
                let label = sni.clone().unwrap_or_else(|| host.clone());
                let name = unique_name(
                    &sites,
                    &format!("{}-{}-{port}", endpoint.source, sanitize(&label)),
                );
                if let Some(index) = lineage {
                    lineages[index].used_by.push(name.clone());
                }
                let mut certs = certs.clone();
                if let (
                    SiteCerts::One {
                        key: key @ None, ..
                    },
                    Some(Some(privkey)),
                ) = (
                    &mut certs,
                    lineage.map(|index| lineages[index].privkey.clone()),
                ) {
                    *key = Some(privkey);
                }
                sites.push(DiscoveredSite {
                    name,
                    source: endpoint.source,
                    origin: endpoint.origin.clone(),
                    what: endpoint.what.clone(),
                    host,
                    connect_to,
                    port,
                    sni: sni.clone(),
                    protocol: endpoint.protocol,
                    certs,
                    lineage: lineage.map(|index| lineages[index].name.clone()),
                    notes: notes.clone(),
                });
            }
        }
    }
    sites
}

/// The first certificate, key or chain file of `endpoint` whose name is not UTF-8 (or was
/// made so by a tool's output: `nginx -T` bytes that are not text arrive as U+FFFD), which
/// the TOML config cannot hold.
fn unwritable_path(endpoint: &Endpoint) -> Option<&Path> {
    let mut paths: Vec<&Path> = match &endpoint.certs {
        CertSpec::Pairs(pairs) => pairs
            .iter()
            .flat_map(|pair| {
                let key = match &pair.key {
                    KeyRef::Path(key) => Some(key.as_path()),
                    _ => None,
                };
                std::iter::once(pair.cert.as_path()).chain(key)
            })
            .collect(),
        CertSpec::KeyThenCerts(files) => files.iter().map(PathBuf::as_path).collect(),
    };
    paths.extend(endpoint.chain.as_deref());
    paths
        .into_iter()
        .find(|path| path.to_str().is_none_or(|text| text.contains('\u{fffd}')))
}

/// `path` for a message: bytes that are not UTF-8 as `\xNN`, controls escaped.
pub fn escape_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut text = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        text.push_str(chunk.valid());
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02x}"));
        }
    }
    escape_controls(&text)
}

/// Certificate files read once each, however many endpoints name them.
#[derive(Debug, Default)]
struct Peeks(HashMap<PathBuf, Result<CertPeek, DiskError>>);

impl Peeks {
    fn get(&mut self, path: &Path) -> &Result<CertPeek, DiskError> {
        self.0
            .entry(path.to_owned())
            .or_insert_with(|| certs::peek(path))
    }
}

/// A resolved certificate: its file and its key's path.
#[derive(Debug, Clone)]
struct Resolved {
    cert: PathBuf,
    key: Option<PathBuf>,
}

fn resolve_certs(
    endpoint: &Endpoint,
    peeks: &mut Peeks,
    warnings: &mut Vec<Warning>,
) -> Vec<Resolved> {
    match &endpoint.certs {
        CertSpec::Pairs(pairs) => pairs
            .iter()
            .map(|pair| Resolved {
                cert: pair.cert.clone(),
                key: match &pair.key {
                    KeyRef::None => None,
                    KeyRef::Path(path) => Some(path.clone()),
                    KeyRef::InCertOrDotKey => match peeks.get(&pair.cert) {
                        Ok(peek) if peek.has_private_key => Some(pair.cert.clone()),
                        _ => {
                            let beside = PathBuf::from(format!("{}.key", pair.cert.display()));
                            beside.exists().then_some(beside)
                        }
                    },
                },
            })
            .collect(),
        CertSpec::KeyThenCerts(files) => {
            let mut resolved = Vec::new();
            let mut last_key: Option<PathBuf> = None;
            for file in files {
                match peeks.get(file) {
                    Ok(peek) => {
                        let key = if peek.has_private_key {
                            Some(file.clone())
                        } else {
                            last_key.take()
                        };
                        resolved.push(Resolved {
                            cert: file.clone(),
                            key,
                        });
                    }
                    // A key alone is "no certificate" to the reader; anything else wrong
                    // with a file is said, and a file named like a key is taken as one.
                    Err(err) if err.kind() == "no_certificate" || looks_like_key(file) => {
                        last_key = Some(file.clone());
                    }
                    Err(err) => {
                        warnings.push(Warning::new(
                            endpoint.origin.clone(),
                            format!(
                                "{} cannot be read ({}); taken as a certificate file, so its site reports it",
                                file.display(),
                                err.kind()
                            ),
                        ));
                        resolved.push(Resolved {
                            cert: file.clone(),
                            key: last_key.take(),
                        });
                    }
                }
            }
            resolved
        }
    }
}

fn looks_like_key(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.ends_with(".key") || name.contains("privkey") || name.contains("private")
}

/// One certificate, or one per key type when there are several and each one's key type is
/// known and different.
fn site_certs(
    refs: &[Resolved],
    chain: Option<PathBuf>,
    peeks: &mut Peeks,
    notes: &mut Vec<String>,
) -> SiteCerts {
    let first = || SiteCerts::One {
        cert: refs[0].cert.clone(),
        chain: chain.clone(),
        key: refs[0].key.clone(),
    };
    if refs.len() == 1 {
        return first();
    }
    let mut typed: Vec<(KeyType, PathBuf, Option<PathBuf>)> = Vec::new();
    for resolved in refs {
        let key_type = peeks
            .get(&resolved.cert)
            .as_ref()
            .ok()
            .and_then(|peek| peek.key_type);
        match key_type {
            Some(key_type) if !typed.iter().any(|(seen, _, _)| *seen == key_type) => {
                typed.push((key_type, resolved.cert.clone(), resolved.key.clone()));
            }
            _ => {
                let others: Vec<String> = refs[1..]
                    .iter()
                    .map(|r| r.cert.display().to_string())
                    .collect();
                notes.push(format!(
                    "the server loads {} certificates; their key types could not be told apart (unreadable, or two of one type), so only the first is checked; also loaded: {}",
                    refs.len(),
                    others.join(", ")
                ));
                return first();
            }
        }
    }
    if chain.is_some() {
        notes.push(
            "the separate chain file is not checked: a site with one certificate per key type reads each file's own chain"
                .to_owned(),
        );
    }
    SiteCerts::ByKeyType(typed)
}

/// The SNI name for a site: the first plain name of the server's config; else a name under
/// its first wildcard; else the certificate's; else the lineage's first domain.
pub fn choose_sni(
    names: &[String],
    peek: Option<&CertPeek>,
    lineage_domains: Option<&[String]>,
) -> Option<String> {
    let plain = names.iter().find(|name| is_sni_name(name)).cloned();
    let wildcard = || {
        names
            .iter()
            .find_map(|name| name.strip_prefix("*."))
            .map(|rest| format!("certdrift-probe.{rest}"))
            .filter(|name| is_sni_name(name))
    };
    let from_cert = || {
        peek.and_then(CertPeek::sni_candidate)
            .filter(|n| is_sni_name(n))
    };
    let from_lineage = || {
        lineage_domains
            .unwrap_or_default()
            .iter()
            .find(|name| is_sni_name(name))
            .cloned()
    };
    plain
        .or_else(wildcard)
        .or_else(from_cert)
        .or_else(from_lineage)
        .map(|name| name.to_lowercase())
}

/// Whether `name` can be sent as SNI: a DNS name (not an IP address), without wildcards,
/// regexes or variables, with a dot (`_`, `localhost` and single labels are placeholders).
fn is_sni_name(name: &str) -> bool {
    !name.contains(['*', '~', '$', '/'])
        && name.contains('.')
        && !name.starts_with('.')
        && name.parse::<IpAddr>().is_err()
        && matches!(crate::probe::server_name(name), Ok(ServerName::DnsName(_)))
}

/// Where to probe one port of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// These addresses, together.
    Ips(Vec<IpAddr>),
    /// A host name the server listens on; resolved as is.
    Name(String),
}

/// The listeners' ports in first-seen order, each with where to probe it: wildcards on
/// loopback (127.0.0.1 for IPv4, ::1 for IPv6), addresses as they are.
fn group_by_port(listens: &[Listen]) -> Vec<(u16, Vec<Target>)> {
    let mut ports: Vec<(u16, Vec<Target>)> = Vec::new();
    for listen in listens {
        let index = match ports.iter().position(|(port, _)| *port == listen.port) {
            Some(index) => index,
            None => {
                ports.push((listen.port, Vec::new()));
                ports.len() - 1
            }
        };
        let targets = &mut ports[index].1;
        let ip = match &listen.host {
            ListenHost::AnyV4 => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ListenHost::AnyV6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ListenHost::Ip(ip) => *ip,
            ListenHost::Name(name) if name.eq_ignore_ascii_case("localhost") => {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
            ListenHost::Name(name) => {
                let target = Target::Name(name.clone());
                if !targets.contains(&target) {
                    targets.push(target);
                }
                continue;
            }
        };
        match targets.iter_mut().find_map(|target| match target {
            Target::Ips(ips) => Some(ips),
            Target::Name(_) => None,
        }) {
            Some(ips) if !ips.contains(&ip) => ips.push(ip),
            Some(_) => {}
            None => targets.insert(0, Target::Ips(vec![ip])),
        }
    }
    ports
}

/// `text` with every character outside `A-Z a-z 0-9 . _ -` made `_`.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-') {
                ch
            } else {
                '_'
            }
        })
        .collect()
}

/// `wanted`, or `wanted-2`, `wanted-3`, ... when taken.
fn unique_name(sites: &[DiscoveredSite], wanted: &str) -> String {
    let taken = |name: &str| sites.iter().any(|site| site.name == name);
    if !taken(wanted) {
        return wanted.to_owned();
    }
    (2..)
        .map(|n| format!("{wanted}-{n}"))
        .find(|name| !taken(name))
        .expect("some suffix is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(listens: Vec<Listen>, names: &[&str], cert: &Path) -> Endpoint {
        Endpoint {
            source: SourceKind::Nginx,
            origin: Origin::at(Path::new("/etc/nginx/sites-enabled/blog"), 3),
            what: "nginx server block".to_owned(),
            listens,
            names: names.iter().map(|name| (*name).to_owned()).collect(),
            certs: CertSpec::Pairs(vec![CertRef {
                cert: cert.to_owned(),
                key: KeyRef::None,
            }]),
            chain: None,
            protocol: Protocol::Tls,
            notes: Vec::new(),
        }
    }

    fn listen(host: ListenHost, port: u16) -> Listen {
        Listen { host, port }
    }

    #[test]
    fn wildcards_are_probed_on_loopback_with_the_server_name_as_sni() {
        let cert = Path::new("/nonexistent/fullchain.pem");
        let endpoints = vec![
            endpoint(
                vec![
                    listen(ListenHost::AnyV4, 443),
                    listen(ListenHost::AnyV6, 443),
                    listen(ListenHost::AnyV4, 8443),
                ],
                &["_", "blog.example.org"],
                cert,
            ),
            endpoint(
                vec![listen(ListenHost::Ip("192.0.2.7".parse().unwrap()), 443)],
                &["blog.example.org"],
                cert,
            ),
            endpoint(vec![listen(ListenHost::AnyV4, 443)], &["_"], cert),
        ];
        let mut warnings = Vec::new();
        let sites = build_sites(endpoints, &mut [], &mut warnings);
        let summary: Vec<(String, String, Vec<IpAddr>, Option<String>)> = sites
            .iter()
            .map(|site| {
                (
                    site.name.clone(),
                    site.host.clone(),
                    site.connect_to.clone(),
                    site.sni.clone(),
                )
            })
            .collect();
        let localhost4: IpAddr = "127.0.0.1".parse().unwrap();
        let localhost6: IpAddr = "::1".parse().unwrap();
        assert_eq!(
            summary,
            [
                (
                    "nginx-blog.example.org-443".to_owned(),
                    "blog.example.org".to_owned(),
                    vec![localhost4, localhost6],
                    Some("blog.example.org".to_owned())
                ),
                (
                    "nginx-blog.example.org-8443".to_owned(),
                    "blog.example.org".to_owned(),
                    vec![localhost4],
                    Some("blog.example.org".to_owned())
                ),
                (
                    "nginx-blog.example.org-443-2".to_owned(),
                    "blog.example.org".to_owned(),
                    vec!["192.0.2.7".parse().unwrap()],
                    Some("blog.example.org".to_owned())
                ),
                (
                    "nginx-127.0.0.1-443".to_owned(),
                    "127.0.0.1".to_owned(),
                    vec![],
                    None
                ),
            ]
        );
        assert!(
            sites[3]
                .notes
                .iter()
                .any(|note| note.contains("without SNI"))
        );
    }

    #[test]
    fn sni_comes_from_the_config_then_wildcards_then_the_certificate_then_the_lineage() {
        let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let peek = CertPeek {
            dns_names: vec!["cert.example.org".to_owned()],
            key_type: None,
            has_private_key: false,
        };
        let domains = names(&["lineage.example.org"]);
        assert_eq!(
            choose_sni(
                &names(&["_", "~^www", "Blog.Example.org"]),
                Some(&peek),
                None
            )
            .as_deref(),
            Some("blog.example.org")
        );
        assert_eq!(
            choose_sni(&names(&["*.example.org"]), Some(&peek), None).as_deref(),
            Some("certdrift-probe.example.org")
        );
        assert_eq!(
            choose_sni(&names(&["_", "localhost", "192.0.2.1"]), Some(&peek), None).as_deref(),
            Some("cert.example.org")
        );
        assert_eq!(
            choose_sni(&[], None, Some(&domains)).as_deref(),
            Some("lineage.example.org")
        );
        assert_eq!(choose_sni(&names(&["$host"]), None, None), None);
    }

    #[test]
    fn host_names_in_listen_are_kept_and_odd_characters_leave_the_site_name() {
        let cert = Path::new("/nonexistent/fullchain.pem");
        let endpoints = vec![endpoint(
            vec![
                listen(ListenHost::Name("localhost".to_owned()), 443),
                listen(ListenHost::Name("web.internal".to_owned()), 443),
                listen(ListenHost::Ip("::1".parse().unwrap()), 443),
            ],
            &[],
            cert,
        )];
        let sites = build_sites(endpoints, &mut [], &mut Vec::new());
        assert_eq!(sites.len(), 2);
        assert_eq!(sites[0].name, "nginx-127.0.0.1-443");
        assert_eq!(
            sites[0].connect_to,
            [
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(sites[1].name, "nginx-web.internal-443");
        assert_eq!(sites[1].host, "web.internal");
        assert_eq!(sanitize("a b/c:d"), "a_b_c_d");

        let mut warnings = Vec::new();
        let odd = vec![endpoint(
            vec![listen(ListenHost::Name("not a name!".to_owned()), 443)],
            &[],
            cert,
        )];
        assert!(build_sites(odd, &mut [], &mut warnings).is_empty());
        assert!(
            warnings[0].message.contains("not a host name"),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_site_in_a_lineage_names_it_and_takes_its_key() {
        let lineage = Lineage {
            name: "blog.example.org".to_owned(),
            conf: Origin::at(
                Path::new("/etc/letsencrypt/renewal/blog.example.org.conf"),
                1,
            ),
            cert: Some("/etc/letsencrypt/live/blog.example.org/cert.pem".into()),
            chain: Some("/etc/letsencrypt/live/blog.example.org/chain.pem".into()),
            fullchain: Some("/etc/letsencrypt/live/blog.example.org/fullchain.pem".into()),
            privkey: Some("/etc/letsencrypt/live/blog.example.org/privkey.pem".into()),
            domains: vec!["blog.example.org".to_owned()],
            used_by: Vec::new(),
        };
        let mut lineages = [lineage];
        let endpoints = vec![endpoint(
            vec![listen(ListenHost::AnyV4, 443)],
            &[],
            Path::new("/etc/letsencrypt/live/blog.example.org/./fullchain.pem"),
        )];
        let sites = build_sites(endpoints, &mut lineages, &mut Vec::new());
        assert_eq!(sites[0].lineage.as_deref(), Some("blog.example.org"));
        assert_eq!(sites[0].sni.as_deref(), Some("blog.example.org"));
        assert_eq!(
            sites[0].certs,
            SiteCerts::One {
                cert: "/etc/letsencrypt/live/blog.example.org/./fullchain.pem".into(),
                chain: None,
                key: Some("/etc/letsencrypt/live/blog.example.org/privkey.pem".into()),
            }
        );
        assert_eq!(lineages[0].used_by, ["nginx-blog.example.org-443"]);
        assert!(!lineages[0].holds(Path::new("/etc/letsencrypt/live/other/fullchain.pem")));
    }

    #[test]
    fn sources_parse_and_default_to_debian_paths() {
        assert_eq!("apache2".parse::<SourceKind>(), Ok(SourceKind::Apache));
        assert!(
            "iis"
                .parse::<SourceKind>()
                .unwrap_err()
                .contains("nginx, apache")
        );
        let sources = Sources::default();
        assert_eq!(
            sources.location(SourceKind::Postfix),
            (PathBuf::from("/etc/postfix"), false)
        );
        assert!(!sources.any_given());
        let only = Sources {
            only: Some(vec![SourceKind::Nginx]),
            ..Sources::default()
        };
        assert!(only.reads(SourceKind::Nginx) && !only.reads(SourceKind::Dovecot));
    }

    #[test]
    fn warnings_escape_control_bytes_from_tool_messages() {
        let warning = Warning::new(
            Origin::at(Path::new("/etc/nginx/nginx.conf"), 2),
            "nginx -T failed: bad \u{13}\u{7f}\u{9b}31m".to_owned(),
        );
        assert_eq!(
            warning.to_string(),
            "/etc/nginx/nginx.conf:2: nginx -T failed: bad \\x13\\x7f\\u{9b}31m"
        );
    }

    #[test]
    fn certificate_names_that_toml_cannot_hold_are_warned_not_mangled() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let raw = PathBuf::from(OsStr::from_bytes(b"/x/caf\xe9.pem"));
        let lossy = PathBuf::from("/x/caf\u{fffd}.pem");
        let mut warnings = Vec::new();
        let sites = build_sites(
            vec![
                endpoint(vec![listen(ListenHost::AnyV4, 443)], &["a.example"], &raw),
                endpoint(
                    vec![listen(ListenHost::AnyV4, 8443)],
                    &["b.example"],
                    &lossy,
                ),
            ],
            &mut [],
            &mut warnings,
        );
        assert!(sites.is_empty(), "{sites:?}");
        let messages: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "/etc/nginx/sites-enabled/blog:3: nginx server block: the file name /x/caf\\xe9.pem is not UTF-8 text, so it cannot be written in the TOML config; not probed",
                "/etc/nginx/sites-enabled/blog:3: nginx server block: the file name /x/caf\u{fffd}.pem is not UTF-8 text, so it cannot be written in the TOML config; not probed",
            ]
        );
    }
}
