//! Configuration: a TOML file (or the command line's ad-hoc site) turned into validated
//! [`Site`]s.
//!
//! Two layers, as in ripgrep's low/high split: serde reads the file into `Raw*` structs that
//! mirror it key for key (unknown keys are errors), then [`Config::from_toml`] checks every
//! value and resolves defaults, so the rest of the program never sees a half-valid setting.
//! Every error names the file, the line and the key, and says what would be accepted.
//!
//! The key names are an interface: dashboards, alert rules and users' files depend on them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde::Deserialize;
use toml::Spanned;

use crate::alert::Severity;
use crate::probe::{AddressFamily, KeyType, Protocol, Timeouts};

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from; `None` for an ad-hoc site given on the command line.
    pub source: Option<PathBuf>,
    /// `serve`: time between two probes of a site.
    pub interval: Duration,
    /// One probe's deadline, and the limit of each of its phases.
    pub timeouts: Timeouts,
    /// `serve`: the HTTP listen address for `/metrics`, `/healthz` and the status page.
    pub listen: SocketAddr,
    /// How many handshakes may run at once.
    pub concurrency: usize,
    /// The sites to watch, in file order.
    pub sites: Vec<Site>,
    /// `serve`: alert thresholds, the state file and delivery settings (`[alerts]`).
    pub alerts: AlertSettings,
    /// `serve`: where alert notifications go (`[[receiver]]`), in file order.
    pub receivers: Vec<Receiver>,
    /// Receivers left out because an environment variable they name (`url_env`,
    /// `secret_env`) is not set. `serve` refuses to start with any; `check`, which sends no
    /// alerts, runs without them, so a cron job need not carry the daemon's secrets.
    pub unresolved_receivers: Vec<ConfigError>,
    /// `serve`: how often every watched file's identity is compared, for changes the file
    /// watcher missed.
    pub watch_fallback: Duration,
}

/// One site: the certificate files and the server that should serve them.
#[derive(Debug, Clone)]
pub struct Site {
    /// Unique name; the `site` label.
    pub name: String,
    /// DNS name or IP address to connect to.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The name sent as SNI and verified; `None` when `host` is an IP address and no `sni`
    /// is set, in which case no SNI is sent.
    pub sni: Option<String>,
    /// What the server speaks before TLS.
    pub protocol: Protocol,
    /// Which of the host's addresses to probe.
    pub addresses: AddressFamily,
    /// Addresses to probe instead of resolving `host`; the SNI stays.
    pub connect_to: Vec<IpAddr>,
    /// Handshakes per address and certificate in each pass.
    pub handshakes: u32,
    /// One entry per certificate the server holds: one, or one per key type.
    pub certs: Vec<CertFiles>,
    /// Trust anchors for the served chain's verification, instead of the system store.
    pub ca_file: Option<PathBuf>,
    /// Where the site came from (`FILE:LINE` of the server config `certdrift discover` read);
    /// carried into reports as is.
    pub origin: Option<String>,
    /// The ACME lineage (`ROOT/live/NAME`) the certificate files are copies of, when their
    /// path does not say.
    pub lineage: Option<PathBuf>,
    /// Where to look for the lineage of a file that is a copy (`letsencrypt_dir`); `None`
    /// when matching is off.
    pub letsencrypt_dir: Option<PathBuf>,
}

/// The files of one certificate a server loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The key type the handshake asks for; `None` for a site with one certificate.
    pub key_type: Option<KeyType>,
    /// The PEM file with the leaf (and usually the chain).
    pub cert: PathBuf,
    /// Where the chain is when `cert` holds the leaf only; `None` looks for `chain.pem` beside
    /// `cert`.
    pub chain: Option<PathBuf>,
    /// The private key, for the opt-in key check.
    pub key: Option<PathBuf>,
}

impl Site {
    /// The name to send as SNI and to verify the chain for: `sni`, else `host`.
    pub fn server_name(&self) -> ServerName<'static> {
        let name = self.sni.as_deref().unwrap_or(&self.host);
        // Both were checked by `crate::probe::server_name` when the config was built.
        crate::probe::server_name(name).expect("validated when the config was built")
    }
}

/// A configuration error: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", .origin, .line.map(|line| format!(":{line}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file, or `command line`.
    pub origin: String,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong and what would be accepted.
    pub message: String,
}

/// Defaults shared by the file and the command line.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// The default probe deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default HTTP listen address. Prometheus' exporter port range 9100-9999 is fully
/// allocated, so certdrift takes a port above it that no common service uses.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:10159";
/// The default number of handshakes in flight.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// The default number of handshakes per address in a pass: enough that a stale worker or a
/// second process on the port shows up within a few passes, few enough to stay cheap.
pub const DEFAULT_HANDSHAKES: u32 = 3;
/// The most handshakes per address a config may ask for.
pub const MAX_HANDSHAKES: u32 = 20;
/// certbot's default config directory, where lineages are matched unless `letsencrypt_dir`
/// says otherwise.
pub const DEFAULT_LETSENCRYPT_DIR: &str = "/etc/letsencrypt";
/// The default period of `serve`'s fallback re-read of every watched file: short enough
/// that a change the watcher misses still lands within seconds, cheap since it only stats.
pub const DEFAULT_WATCH_FALLBACK: Duration = Duration::from_secs(5);
/// The most a config file may weigh. A thousand sites take about 200 KiB; anything larger is
/// not a config file (`/dev/zero`, a log pointed at by mistake).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

impl Config {
    /// Reads and validates the TOML file at `path`.
    ///
    /// Relative paths (`cert`, `chain`, `key`, `ca_file`) are taken relative to the file's
    /// directory.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the file, line and key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = read_config_file(path).map_err(|message| ConfigError {
            origin: origin.clone(),
            line: None,
            message,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Self::from_toml(&text, &origin, base)?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Validates TOML `text`; `origin` names it in errors and `base` anchors relative paths.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `origin`, the line and the key.
    pub fn from_toml(text: &str, origin: &str, base: &Path) -> Result<Self, ConfigError> {
        let at = |span: Range<usize>, message: String| ConfigError {
            origin: origin.to_owned(),
            line: Some(line_of(text, span.start)),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|err| {
            let line = err.span().map(|span| line_of(text, span.start));
            let key = err.span().and_then(|span| key_on_line(text, span.start));
            let mut message = err.message().trim_end().to_owned();
            if let Some(key) = key.filter(|key| !message.contains(&format!("`{key}`"))) {
                message = format!("`{key}`: {message}");
            }
            ConfigError {
                origin: origin.to_owned(),
                line,
                message,
            }
        })?;

        let duration =
            |value: Option<Spanned<String>>, key: &str, minimum: Duration, default: Duration| {
                duration_or(value.as_ref(), key, minimum, default)
                    .map_err(|(span, msg)| at(span, msg))
            };
        let interval = duration(
            raw.interval,
            "interval",
            Duration::from_secs(1),
            DEFAULT_INTERVAL,
        )?;
        let total = duration(
            raw.timeout,
            "timeout",
            Duration::from_millis(10),
            DEFAULT_TIMEOUT,
        )?;
        let timeouts = Timeouts {
            total,
            connect: duration(
                raw.connect_timeout,
                "connect_timeout",
                Duration::from_millis(10),
                total,
            )?,
            preamble: duration(
                raw.preamble_timeout,
                "preamble_timeout",
                Duration::from_millis(10),
                total,
            )?,
            handshake: duration(
                raw.handshake_timeout,
                "handshake_timeout",
                Duration::from_millis(10),
                total,
            )?,
        };
        let listen = match raw.listen {
            Some(value) => value.get_ref().parse().map_err(|_| {
                at(
                    value.span(),
                    format!(
                        "`listen`: `{}` is not an address and port; write it like \"127.0.0.1:10159\" or \"[::]:10159\"",
                        value.get_ref()
                    ),
                )
            })?,
            None => default_listen(),
        };
        let concurrency = match raw.concurrency {
            Some(value) if *value.get_ref() == 0 => {
                return Err(at(
                    value.span(),
                    "`concurrency` must be at least 1".to_owned(),
                ));
            }
            Some(value) => value.into_inner(),
            None => DEFAULT_CONCURRENCY,
        };
        let default_ca_file = raw.ca_file.map(|path| base.join(path));
        let letsencrypt_dir = letsencrypt_dir(raw.letsencrypt_dir.as_deref(), base);
        let watch_fallback = duration(
            raw.watch_fallback,
            "watch_fallback",
            Duration::from_millis(100),
            DEFAULT_WATCH_FALLBACK,
        )?;

        if raw.site.is_empty() {
            return Err(ConfigError {
                origin: origin.to_owned(),
                line: None,
                message: "no [[site]] table: add one with `name`, `host` and `cert` (see the README's config reference)"
                    .to_owned(),
            });
        }
        let mut first_seen: HashMap<String, usize> = HashMap::new();
        let mut sites = Vec::with_capacity(raw.site.len());
        for spanned in raw.site {
            let table_span = spanned.span();
            let raw_site = spanned.into_inner();
            let name_line = line_of(text, raw_site.name.span().start);
            if let Some(first) = first_seen.get(raw_site.name.get_ref().trim()) {
                return Err(at(
                    raw_site.name.span(),
                    format!(
                        "`name`: site `{}` is already defined at line {first}; names must be unique, they become the `site` label",
                        raw_site.name.get_ref()
                    ),
                ));
            }
            first_seen.insert(raw_site.name.get_ref().trim().to_owned(), name_line);
            let mut site = validate_site(raw_site, base, default_ca_file.as_deref())
                .map_err(|(span, msg)| at(span.unwrap_or(table_span.clone()), msg))?;
            site.letsencrypt_dir = letsencrypt_dir.clone();
            sites.push(site);
        }

        let alerts = match raw.alerts {
            Some(table) => {
                validate_alerts(table.into_inner(), base).map_err(|(span, msg)| at(span, msg))?
            }
            None => AlertSettings::default(),
        };
        let mut receivers: Vec<Receiver> = Vec::with_capacity(raw.receiver.len());
        let mut unresolved_receivers = Vec::new();
        for spanned in raw.receiver {
            let table_span = spanned.span();
            let raw_receiver = spanned.into_inner();
            if let Some((span, msg)) = unset_environment(&raw_receiver) {
                unresolved_receivers.push(at(span, msg));
                continue;
            }
            let receiver = validate_receiver(raw_receiver, &sites, &alerts)
                .map_err(|(span, msg)| at(span.unwrap_or(table_span.clone()), msg))?;
            if receivers.iter().any(|other| other.name == receiver.name) {
                return Err(at(
                    table_span,
                    format!(
                        "`name`: receiver `{}` is defined twice; names must be unique, they become the `receiver` label",
                        receiver.name
                    ),
                ));
            }
            receivers.push(receiver);
        }

        Ok(Self {
            source: None,
            interval,
            timeouts,
            listen,
            concurrency,
            sites,
            alerts,
            receivers,
            unresolved_receivers,
            watch_fallback,
        })
    }

    /// A configuration with one site given on the command line (`check --host ...`).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] from `command line` when a value is invalid.
    pub fn ad_hoc(site: AdHoc<'_>) -> Result<Self, ConfigError> {
        let error = |message: String| ConfigError {
            origin: "command line".to_owned(),
            line: None,
            message,
        };
        check_host(site.host).map_err(|msg| error(format!("--host: {msg}")))?;
        let port = site.port.unwrap_or(site.protocol.default_port());
        if port == 0 {
            return Err(error(format!("--port: {}", not_a_port("0"))));
        }
        if let Some(sni) = site.sni {
            check_sni(sni).map_err(|msg| error(format!("--sni: {msg}")))?;
        }
        let sni = site
            .sni
            .map(str::to_owned)
            .or_else(|| default_sni(site.host));
        let site = Site {
            name: sni.clone().unwrap_or_else(|| site.host.to_owned()),
            host: site.host.to_owned(),
            port,
            sni,
            protocol: site.protocol,
            addresses: AddressFamily::All,
            connect_to: Vec::new(),
            handshakes: DEFAULT_HANDSHAKES,
            certs: vec![CertFiles {
                key_type: None,
                cert: site.cert.to_owned(),
                chain: None,
                key: site.key.map(Path::to_owned),
            }],
            ca_file: site.ca_file.map(Path::to_owned),
            origin: None,
            lineage: None,
            letsencrypt_dir: letsencrypt_dir(None, Path::new("/")),
        };
        Ok(Self {
            source: None,
            interval: DEFAULT_INTERVAL,
            timeouts: Timeouts::uniform(DEFAULT_TIMEOUT),
            listen: default_listen(),
            concurrency: DEFAULT_CONCURRENCY,
            sites: vec![site],
            alerts: AlertSettings::default(),
            receivers: Vec::new(),
            unresolved_receivers: Vec::new(),
            watch_fallback: DEFAULT_WATCH_FALLBACK,
        })
    }

    /// Makes every site verify its served chain against `ca_file` (`check --ca-file` on
    /// discovered sites).
    pub fn trust_ca_file(&mut self, ca_file: &Path) {
        for site in &mut self.sites {
            site.ca_file = Some(ca_file.to_owned());
        }
    }

    /// Every CA file any site uses, for building the prober once.
    pub fn ca_files(&self) -> impl Iterator<Item = &Path> {
        self.sites.iter().filter_map(|site| site.ca_file.as_deref())
    }
}

/// One site given on the command line.
#[derive(Debug, Clone, Copy)]
pub struct AdHoc<'a> {
    /// `--host`.
    pub host: &'a str,
    /// `--port`; `None` takes the protocol's usual port.
    pub port: Option<u16>,
    /// `--sni`.
    pub sni: Option<&'a str>,
    /// `--protocol`.
    pub protocol: Protocol,
    /// `--cert`.
    pub cert: &'a Path,
    /// `--key`.
    pub key: Option<&'a Path>,
    /// `--ca-file`.
    pub ca_file: Option<&'a Path>,
}

impl<'a> AdHoc<'a> {
    /// An implicit-TLS site at `host` on port 443 reading `cert`.
    pub fn new(host: &'a str, cert: &'a Path) -> Self {
        Self {
            host,
            port: None,
            sni: None,
            protocol: Protocol::Tls,
            cert,
            key: None,
            ca_file: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .expect("the default listen address parses")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    preamble_timeout: Option<Spanned<String>>,
    handshake_timeout: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    concurrency: Option<Spanned<usize>>,
    ca_file: Option<PathBuf>,
    letsencrypt_dir: Option<PathBuf>,
    watch_fallback: Option<Spanned<String>>,
    #[serde(default)]
    site: Vec<Spanned<RawSite>>,
    alerts: Option<Spanned<RawAlerts>>,
    #[serde(default)]
    receiver: Vec<Spanned<RawReceiver>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: Spanned<String>,
    host: Spanned<String>,
    port: Option<Spanned<i64>>,
    sni: Option<Spanned<String>>,
    protocol: Option<Spanned<String>>,
    addresses: Option<Spanned<String>>,
    connect_to: Option<Spanned<Vec<String>>>,
    handshakes: Option<Spanned<u32>>,
    cert: Spanned<PathOrByKeyType>,
    chain: Option<Spanned<PathBuf>>,
    key: Option<Spanned<PathOrByKeyType>>,
    key_types: Option<Spanned<Vec<String>>>,
    ca_file: Option<PathBuf>,
    origin: Option<String>,
    lineage: Option<PathBuf>,
}

/// A path, or a table of paths by key type (`{ ecdsa = "...", rsa = "..." }`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PathOrByKeyType {
    Path(PathBuf),
    ByKeyType(BTreeMap<String, PathBuf>),
}

type SiteError = (Option<Range<usize>>, String);

fn validate_site(
    raw: RawSite,
    base: &Path,
    default_ca_file: Option<&Path>,
) -> Result<Site, SiteError> {
    let name = raw.name.get_ref().trim();
    if name.is_empty() {
        return Err((
            Some(raw.name.span()),
            "`name` must be a non-empty name without control characters".to_owned(),
        ));
    }
    // Line separators and bidi controls are refused like other controls: in a label, a log
    // line or the status page they would break the line or reorder what reads after them.
    if let Some(control) = name.chars().find(|&c| crate::text::is_escaped(c)) {
        return Err((
            Some(raw.name.span()),
            format!(
                "`name`: `{}` holds the control character U+{:04X}; use visible characters only",
                crate::text::escape_controls(name),
                u32::from(control)
            ),
        ));
    }
    let host = raw.host.get_ref();
    check_host(host).map_err(|msg| (Some(raw.host.span()), format!("`host`: {msg}")))?;
    let certs = cert_files(&raw, base)?;
    let protocol = match &raw.protocol {
        Some(value) => value
            .get_ref()
            .parse()
            .map_err(|msg| (Some(value.span()), format!("`protocol`: {msg}")))?,
        None => Protocol::Tls,
    };
    let port = match raw.port {
        Some(port) => u16::try_from(*port.get_ref())
            .ok()
            .filter(|&number| number != 0)
            .ok_or_else(|| {
                (
                    Some(port.span()),
                    format!("`port`: {}", not_a_port(&port.get_ref().to_string())),
                )
            })?,
        None => protocol.default_port(),
    };
    let sni = match raw.sni {
        Some(sni) => {
            check_sni(sni.get_ref()).map_err(|msg| (Some(sni.span()), format!("`sni`: {msg}")))?;
            Some(sni.into_inner())
        }
        None => default_sni(host),
    };
    let addresses = match &raw.addresses {
        Some(value) => value
            .get_ref()
            .parse()
            .map_err(|msg| (Some(value.span()), format!("`addresses`: {msg}")))?,
        None => AddressFamily::All,
    };
    if let (Some(value), Ok(ip), None) = (&raw.addresses, host.parse::<IpAddr>(), &raw.connect_to)
        && !addresses.admits(&SocketAddr::new(ip, port))
    {
        let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        return Err((
            Some(value.span()),
            format!(
                "`addresses` = \"{}\" leaves nothing to probe: `host` is the {family} address \
                 {ip}; leave `addresses` out, or give a host name or an address it keeps",
                addresses.as_str()
            ),
        ));
    }
    let mut connect_to = Vec::new();
    if let Some(value) = &raw.connect_to {
        for text in value.get_ref() {
            let ip = text.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().map_err(|_| {
                (Some(value.span()), format!("`connect_to`: `{text}` is not an IP address; list addresses like [\"192.0.2.10\", \"2001:db8::10\"]"))
            })?;
            if !connect_to.contains(&ip) {
                connect_to.push(ip);
            }
        }
        if connect_to.is_empty() {
            return Err((
                Some(value.span()),
                "`connect_to` is empty; list at least one address or leave it out".to_owned(),
            ));
        }
        let kept = connect_to
            .iter()
            .filter(|ip| addresses.admits(&SocketAddr::new(**ip, port)))
            .count();
        if kept == 0 {
            return Err((
                Some(value.span()),
                format!(
                    "`connect_to` has no {} address, and `addresses` = \"{}\" keeps only those",
                    addresses.as_str(),
                    addresses.as_str()
                ),
            ));
        }
    }
    let handshakes = match raw.handshakes {
        Some(value) if !(1..=MAX_HANDSHAKES).contains(value.get_ref()) => {
            return Err((
                Some(value.span()),
                format!("`handshakes` must be between 1 and {MAX_HANDSHAKES}"),
            ));
        }
        Some(value) => value.into_inner(),
        None => DEFAULT_HANDSHAKES,
    };
    Ok(Site {
        name: name.to_owned(),
        host: host.clone(),
        port,
        sni,
        protocol,
        addresses,
        connect_to,
        handshakes,
        certs,
        ca_file: raw
            .ca_file
            .map(|path| base.join(path))
            .or_else(|| default_ca_file.map(Path::to_owned)),
        origin: raw.origin,
        lineage: raw.lineage.map(|path| base.join(path)),
        letsencrypt_dir: None,
    })
}

/// The `letsencrypt_dir` in force: the configured one (relative to `base`), none when it is
/// empty (matching off), else certbot's default.
fn letsencrypt_dir(configured: Option<&Path>, base: &Path) -> Option<PathBuf> {
    match configured {
        Some(path) if path.as_os_str().is_empty() => None,
        Some(path) => Some(base.join(path)),
        None => Some(PathBuf::from(DEFAULT_LETSENCRYPT_DIR)),
    }
}

/// Resolves `cert`, `chain`, `key` and `key_types` into one [`CertFiles`] per certificate.
///
/// One certificate: `cert` (and `key`) are paths and `key_types` is absent. Several: `cert`
/// (and `key`) are tables keyed by key type, and `key_types`, if given, must name exactly
/// their keys.
fn cert_files(raw: &RawSite, base: &Path) -> Result<Vec<CertFiles>, SiteError> {
    let cert_span = Some(raw.cert.span());
    let key_types: Option<Vec<KeyType>> = match &raw.key_types {
        Some(value) => {
            let mut parsed = Vec::new();
            for text in value.get_ref() {
                let key_type: KeyType = text
                    .parse()
                    .map_err(|msg| (Some(value.span()), format!("`key_types`: {msg}")))?;
                if parsed.contains(&key_type) {
                    return Err((
                        Some(value.span()),
                        format!("`key_types` lists \"{text}\" twice"),
                    ));
                }
                parsed.push(key_type);
            }
            if parsed.is_empty() {
                return Err((
                    Some(value.span()),
                    "`key_types` is empty; leave it out for one certificate".to_owned(),
                ));
            }
            Some(parsed)
        }
        None => None,
    };

    match raw.cert.get_ref() {
        PathOrByKeyType::Path(path) => {
            if key_types.is_some() {
                return Err((
                    cert_span,
                    "`cert` must be a table by key type when `key_types` is set, like cert = { ecdsa = \"...\", rsa = \"...\" }".to_owned(),
                ));
            }
            if path.as_os_str().is_empty() {
                return Err((
                    cert_span,
                    "`cert` is empty; name the PEM file the server loads".to_owned(),
                ));
            }
            let key = match &raw.key {
                Some(key) => match key.get_ref() {
                    PathOrByKeyType::Path(path) => Some(base.join(path)),
                    PathOrByKeyType::ByKeyType(_) => {
                        return Err((
                            Some(key.span()),
                            "`key` must be a path when `cert` is a path".to_owned(),
                        ));
                    }
                },
                None => None,
            };
            Ok(vec![CertFiles {
                key_type: None,
                cert: base.join(path),
                chain: raw.chain.as_ref().map(|chain| base.join(chain.get_ref())),
                key,
            }])
        }
        PathOrByKeyType::ByKeyType(table) => {
            if let Some(chain) = &raw.chain {
                return Err((Some(chain.span()), "`chain` goes with a single `cert`; with one cert per key type, use fullchain files".to_owned()));
            }
            let mut by_type = BTreeMap::new();
            for (text, path) in table {
                let key_type: KeyType = text
                    .parse()
                    .map_err(|msg| (cert_span.clone(), format!("`cert`: {msg}")))?;
                by_type.insert(key_type, base.join(path));
            }
            if by_type.is_empty() {
                return Err((
                    cert_span,
                    "`cert` is an empty table; give a path, or one per key type".to_owned(),
                ));
            }
            if let Some(listed) = &key_types {
                let mut listed_sorted = listed.clone();
                listed_sorted.sort();
                let keys: Vec<KeyType> = by_type.keys().copied().collect();
                if listed_sorted != keys {
                    return Err((
                        cert_span,
                        "`cert` must have exactly one path per entry of `key_types`".to_owned(),
                    ));
                }
            }
            let mut keys: BTreeMap<KeyType, PathBuf> = BTreeMap::new();
            if let Some(key) = &raw.key {
                match key.get_ref() {
                    PathOrByKeyType::ByKeyType(table) => {
                        for (text, path) in table {
                            let key_type: KeyType = text
                                .parse()
                                .map_err(|msg| (Some(key.span()), format!("`key`: {msg}")))?;
                            if !by_type.contains_key(&key_type) {
                                return Err((
                                    Some(key.span()),
                                    format!("`key` names {text}, which `cert` does not"),
                                ));
                            }
                            keys.insert(key_type, base.join(path));
                        }
                    }
                    PathOrByKeyType::Path(_) => {
                        return Err((
                            Some(key.span()),
                            "`key` must be a table by key type when `cert` is one".to_owned(),
                        ));
                    }
                }
            }
            let order = key_types.unwrap_or_else(|| by_type.keys().copied().collect());
            Ok(order
                .into_iter()
                .map(|key_type| CertFiles {
                    key_type: Some(key_type),
                    cert: by_type[&key_type].clone(),
                    chain: None,
                    key: keys.get(&key_type).cloned(),
                })
                .collect())
        }
    }
}

/// The message for a port number out of range, the same for the config and `--port`.
pub fn not_a_port(text: &str) -> String {
    format!("{text} is not a port; use 1-65535")
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("is empty; give a DNS name or an IP address".to_owned());
    }
    crate::probe::server_name(host).map(drop)
}

fn check_sni(sni: &str) -> Result<(), String> {
    // SNI carries DNS names only, so the resolver's "DNS name or IP address" would mislead.
    let name =
        crate::probe::server_name(sni).map_err(|_| format!("`{sni}` is not a valid DNS name"))?;
    match name {
        ServerName::DnsName(_) => Ok(()),
        _ => Err(format!(
            "`{sni}` is an IP address; SNI carries DNS names only, leave `sni` out"
        )),
    }
}

/// `value` parsed as a duration of at least `minimum`, or `default` when the key is absent;
/// an error carries the value's span.
fn duration_or(
    value: Option<&Spanned<String>>,
    key: &str,
    minimum: Duration,
    default: Duration,
) -> Result<Duration, SpanError> {
    match value {
        Some(value) => parse_duration(value, key, minimum).map_err(|msg| (value.span(), msg)),
        None => Ok(default),
    }
}

/// SNI defaults to the host when the host is a name; an IP address is never sent as SNI
/// (RFC 6066, section 3).
fn default_sni(host: &str) -> Option<String> {
    host.parse::<IpAddr>().is_err().then(|| host.to_owned())
}

fn parse_duration(
    value: &Spanned<String>,
    key: &str,
    minimum: Duration,
) -> Result<Duration, String> {
    let text = value.get_ref();
    let parsed = humantime::parse_duration(text)
        .map_err(|err| format!("`{key}`: `{text}` is not a duration ({err}); write it like \"60s\", \"5m\" or \"1h 30m\""))?;
    if parsed < minimum {
        return Err(format!(
            "`{key}`: {text} is too short; the least accepted is {}",
            humantime::format_duration(minimum)
        ));
    }
    Ok(parsed)
}

/// The 1-based line of byte offset `offset` in `text`.
/// The config file's text, refusing what is not a regular file (a FIFO would block the
/// read forever) and what is larger than [`MAX_CONFIG_BYTES`]; the error is the message.
fn read_config_file(path: &Path) -> Result<String, String> {
    use std::io::Read;

    let unreadable = |err: std::io::Error| format!("cannot read the config file: {err}");
    let file = crate::disk::open_regular(path).map_err(|err| {
        if err.kind() == std::io::ErrorKind::InvalidInput {
            format!("{err}; give the path of the TOML config file")
        } else {
            unreadable(err)
        }
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!(
            "the config file is larger than {MAX_CONFIG_BYTES} bytes (1 MiB); is this the \
             right file? Split a fleet that large into several configs"
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        "cannot read the config file: it is not UTF-8 text; save it as UTF-8".to_owned()
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The key assigned on the line holding `offset`, if that line is `key = value`.
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'));
    plain.then(|| key.to_owned())
}

/// The `[alerts]` table: when conditions become alerts, and how notifications are delivered.
///
/// Every duration here may be short (down to `0s` for the grace) so that tests run in seconds;
/// the defaults suit production.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// Where the alert state (firing alerts, undelivered notifications) is kept across
    /// restarts; `None` keeps it in memory only.
    pub state_file: Option<PathBuf>,
    /// How long `reload_needed` (and `mixed`) must last before it alerts. Default 10 minutes:
    /// deploy hooks reload within seconds, so a short mismatch right after a renewal is normal.
    pub reload_grace: Duration,
    /// Consecutive failed probes (or unreadable files) before `ProbeFailing` (`DiskError`)
    /// fires. Default 3.
    pub failure_count: u32,
    /// `ServedExpiringSoon` fires when the served certificate has less than this left.
    /// Default: one sixth of its lifetime.
    pub served_expiring: Threshold,
    /// `RenewalOverdue` fires when the certificate on disk has less than this left. Default:
    /// a quarter of its lifetime, a twelfth of it after the point where certbot renews.
    pub renewal_overdue: Threshold,
    /// How often a still-firing alert is sent again to webhook and Slack receivers. Default 4
    /// hours.
    pub repeat_interval: Duration,
    /// The first retry's delay after a failed delivery; each further retry doubles it, plus
    /// up to 50% random jitter. Default 1 second.
    pub retry_base: Duration,
    /// The longest delay between two retries. Default 5 minutes. Retries never stop: a
    /// notification is dropped only when delivered.
    pub retry_max: Duration,
    /// The URL of certdrift's status page, sent as the Alertmanager `generatorURL` and in the
    /// webhook payload; `None` uses `http://LISTEN/`.
    pub external_url: Option<String>,
}

/// An expiry threshold: a share of the certificate's lifetime, or a fixed time left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// This share (0 to 1) of the lifetime (`not_after - not_before`) left.
    FractionLeft(f64),
    /// This much time left, whatever the lifetime.
    Left(Duration),
}

impl Threshold {
    /// The time left under which the threshold is crossed, for a certificate valid from
    /// `not_before` to `not_after`.
    pub fn time_left(
        self,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> time::Duration {
        match self {
            Self::FractionLeft(fraction) => (not_after - not_before) * fraction,
            Self::Left(left) => time::Duration::try_from(left).unwrap_or(time::Duration::MAX),
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FractionLeft(fraction) => write!(f, "{:.0}% of its lifetime", fraction * 100.0),
            Self::Left(left) => write!(f, "{}", humantime::format_duration(*left)),
        }
    }
}

/// The default `reload_grace`.
pub const DEFAULT_RELOAD_GRACE: Duration = Duration::from_secs(600);
/// The default `failure_count`.
pub const DEFAULT_FAILURE_COUNT: u32 = 3;
/// The default `served_expiring`: a sixth of the lifetime (15 days of a 90-day certificate,
/// one day of a 6-day one).
pub const DEFAULT_SERVED_EXPIRING: Threshold = Threshold::FractionLeft(1.0 / 6.0);
/// The default `renewal_overdue`: a quarter of the lifetime left. certbot renews with a third
/// left; this leaves a twelfth of the lifetime (7.5 days of 90) for its twice-daily runs and
/// their retries before anyone is told.
pub const DEFAULT_RENEWAL_OVERDUE: Threshold = Threshold::FractionLeft(0.25);
/// The default `repeat_interval` of webhook and Slack receivers.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
/// The default `repeat_interval` of Alertmanager receivers: Alertmanager resolves an alert
/// that is not re-sent within its `resolve_timeout` (5 minutes by default), so certdrift re-sends
/// firing alerts well within it; Alertmanager itself deduplicates them.
pub const DEFAULT_ALERTMANAGER_RESEND: Duration = Duration::from_secs(60);
/// The default delay of a first retry.
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
/// The default longest delay between retries.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(300);
/// The default time one delivery attempt may take.
pub const DEFAULT_RECEIVER_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            state_file: None,
            reload_grace: DEFAULT_RELOAD_GRACE,
            failure_count: DEFAULT_FAILURE_COUNT,
            served_expiring: DEFAULT_SERVED_EXPIRING,
            renewal_overdue: DEFAULT_RENEWAL_OVERDUE,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            retry_base: DEFAULT_RETRY_BASE,
            retry_max: DEFAULT_RETRY_MAX,
            external_url: None,
        }
    }
}

/// One `[[receiver]]`: where notifications go, in which format, for which alerts.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Unique name; the `receiver` label.
    pub name: String,
    /// The format and its options.
    pub kind: ReceiverKind,
    /// Where to POST. Kept secret: Slack and many webhook URLs carry a token.
    pub url: Secret,
    /// Only alerts of these sites; `None` for every site.
    pub sites: Option<Vec<String>>,
    /// Only alerts of these severities; `None` for every severity.
    pub severities: Option<Vec<Severity>>,
    /// How often a still-firing alert is sent again.
    pub repeat_interval: Duration,
    /// How long one delivery attempt may take before it counts as failed.
    pub timeout: Duration,
}

impl Receiver {
    /// Whether an alert of `site` with `severity` goes to this receiver: true when both
    /// filters admit it (an absent filter admits everything).
    pub fn accepts(&self, site: &str, severity: Severity) -> bool {
        self.sites
            .as_ref()
            .is_none_or(|sites| sites.iter().any(|name| name == site))
            && self
                .severities
                .as_ref()
                .is_none_or(|severities| severities.contains(&severity))
    }
}

/// A receiver's payload format.
#[derive(Debug, Clone)]
pub enum ReceiverKind {
    /// certdrift's own versioned JSON, optionally signed with HMAC-SHA256.
    Webhook {
        /// The signing key; `None` sends no signature header.
        secret: Option<Secret>,
    },
    /// A Slack-compatible incoming webhook (`{"text": ...}`).
    Slack,
    /// Alertmanager's API v2; `url` is the Alertmanager's base URL.
    Alertmanager,
}

impl ReceiverKind {
    /// The `type` key's value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Webhook { .. } => "webhook",
            Self::Slack => "slack",
            Self::Alertmanager => "alertmanager",
        }
    }
}

/// A value never written to a log: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    state_file: Option<Spanned<PathBuf>>,
    reload_grace: Option<Spanned<String>>,
    failure_count: Option<Spanned<u32>>,
    served_expiring: Option<Spanned<String>>,
    renewal_overdue: Option<Spanned<String>>,
    repeat_interval: Option<Spanned<String>>,
    retry_base: Option<Spanned<String>>,
    retry_max: Option<Spanned<String>>,
    external_url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    name: Spanned<String>,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    url: Option<Spanned<String>>,
    url_env: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
    secret_env: Option<Spanned<String>>,
    sites: Option<Spanned<Vec<String>>>,
    severities: Option<Spanned<Vec<String>>>,
    repeat_interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

type SpanError = (Range<usize>, String);

fn validate_alerts(raw: RawAlerts, base: &Path) -> Result<AlertSettings, SpanError> {
    let defaults = AlertSettings::default();
    let duration = |value: &Option<Spanned<String>>, key: &str, minimum, default| {
        duration_or(value.as_ref(), key, minimum, default)
    };
    let threshold = |value: &Option<Spanned<String>>, key: &str, default: Threshold| match value {
        Some(value) => parse_threshold(value.get_ref())
            .map_err(|msg| (value.span(), format!("`{key}`: {msg}"))),
        None => Ok(default),
    };
    let failure_count = match &raw.failure_count {
        Some(value) if *value.get_ref() == 0 => {
            return Err((
                value.span(),
                "`failure_count` must be at least 1".to_owned(),
            ));
        }
        Some(value) => *value.get_ref(),
        None => defaults.failure_count,
    };
    let retry_base = duration(
        &raw.retry_base,
        "retry_base",
        Duration::from_millis(1),
        defaults.retry_base,
    )?;
    let retry_max = duration(
        &raw.retry_max,
        "retry_max",
        Duration::from_millis(1),
        defaults.retry_max,
    )?;
    if retry_max < retry_base {
        let span = raw
            .retry_max
            .as_ref()
            .or(raw.retry_base.as_ref())
            .map(Spanned::span)
            .unwrap_or_default();
        return Err((
            span,
            "`retry_max` must not be shorter than `retry_base`".to_owned(),
        ));
    }
    if let Some(path) = raw
        .state_file
        .as_ref()
        .filter(|path| path.get_ref().as_os_str().is_empty())
    {
        return Err((
            path.span(),
            "`state_file` is empty; give a file path such as \"/var/lib/certdrift/alerts.json\", \
             or leave it out to keep alert state in memory"
                .to_owned(),
        ));
    }
    let external_url = match &raw.external_url {
        Some(value) => {
            let text = value.get_ref();
            if !(text.starts_with("http://") || text.starts_with("https://")) {
                return Err((
                    value.span(),
                    format!("`external_url`: `{text}` is not an http:// or https:// URL"),
                ));
            }
            Some(text.clone())
        }
        None => None,
    };
    Ok(AlertSettings {
        state_file: raw.state_file.map(|path| base.join(path.into_inner())),
        reload_grace: duration(
            &raw.reload_grace,
            "reload_grace",
            Duration::ZERO,
            defaults.reload_grace,
        )?,
        failure_count,
        served_expiring: threshold(
            &raw.served_expiring,
            "served_expiring",
            defaults.served_expiring,
        )?,
        renewal_overdue: threshold(
            &raw.renewal_overdue,
            "renewal_overdue",
            defaults.renewal_overdue,
        )?,
        repeat_interval: duration(
            &raw.repeat_interval,
            "repeat_interval",
            Duration::from_secs(1),
            defaults.repeat_interval,
        )?,
        retry_base,
        retry_max,
        external_url,
    })
}

/// Reads `"1/6"`, `"25%"` (a share of the lifetime left) or a duration such as `"14d"`.
fn parse_threshold(text: &str) -> Result<Threshold, String> {
    let what = || {
        format!(
            "`{text}` is neither a share of the lifetime (\"1/6\", \"25%\") nor a time left (\"14d\")"
        )
    };
    let fraction = if let Some((numerator, denominator)) = text.split_once('/') {
        let numerator: f64 = numerator.trim().parse().map_err(|_| what())?;
        let denominator: f64 = denominator.trim().parse().map_err(|_| what())?;
        Some(numerator / denominator)
    } else if let Some(percent) = text.strip_suffix('%') {
        Some(percent.trim().parse::<f64>().map_err(|_| what())? / 100.0)
    } else {
        None
    };
    match fraction {
        Some(fraction) if fraction.is_finite() && fraction > 0.0 && fraction < 1.0 => {
            Ok(Threshold::FractionLeft(fraction))
        }
        Some(_) => Err(format!(
            "`{text}` must be a share between 0 and 1 of the lifetime"
        )),
        None => humantime::parse_duration(text)
            .map(Threshold::Left)
            .map_err(|_| what()),
    }
}

/// The first `url_env` or `secret_env` of `raw` that names an unset or empty environment
/// variable, with where it is and what to do.
fn unset_environment(raw: &RawReceiver) -> Option<SpanError> {
    [("url", &raw.url_env), ("secret", &raw.secret_env)]
        .into_iter()
        .find_map(|(key, env)| {
            let env = env.as_ref()?;
            let set = std::env::var_os(env.get_ref()).is_some_and(|value| !value.is_empty());
            (!set).then(|| {
                (
                    env.span(),
                    format!(
                        "receiver `{}`: `{key}_env`: the environment variable `{}` is not set or empty; \
                         set it for certdrift's process",
                        raw.name.get_ref().trim(),
                        env.get_ref()
                    ),
                )
            })
        })
}

fn validate_receiver(
    raw: RawReceiver,
    sites: &[Site],
    alerts: &AlertSettings,
) -> Result<Receiver, SiteError> {
    let name = raw.name.get_ref().trim();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err((
            Some(raw.name.span()),
            "`name` must be a non-empty name without control characters".to_owned(),
        ));
    }
    let secret_value = |value: &Option<Spanned<String>>,
                        env: &Option<Spanned<String>>,
                        key: &str|
     -> Result<Option<Secret>, SiteError> {
        match (value, env) {
            (Some(_), Some(env)) => Err((
                Some(env.span()),
                format!("give `{key}` or `{key}_env`, not both"),
            )),
            (Some(value), None) => Ok(Some(Secret::new(value.get_ref().clone()))),
            (None, Some(env)) => match std::env::var(env.get_ref()) {
                Ok(found) if !found.is_empty() => Ok(Some(Secret::new(found))),
                _ => Err((
                    Some(env.span()),
                    format!(
                        "`{key}_env`: the environment variable `{}` is not set or empty; set it for certdrift's process",
                        env.get_ref()
                    ),
                )),
            },
            (None, None) => Ok(None),
        }
    };
    let kind = match raw.kind.get_ref().as_str() {
        "webhook" => ReceiverKind::Webhook {
            secret: secret_value(&raw.secret, &raw.secret_env, "secret")?,
        },
        "slack" => ReceiverKind::Slack,
        "alertmanager" => ReceiverKind::Alertmanager,
        other => {
            return Err((
                Some(raw.kind.span()),
                format!(
                    "`type`: `{other}` is not a receiver type; use \"webhook\", \"slack\" or \"alertmanager\""
                ),
            ));
        }
    };
    if !matches!(kind, ReceiverKind::Webhook { .. })
        && let Some(value) = raw.secret.as_ref().or(raw.secret_env.as_ref())
    {
        return Err((
            Some(value.span()),
            format!(
                "`secret` signs webhook payloads only; a {} receiver takes none",
                kind.as_str()
            ),
        ));
    }
    let url = secret_value(&raw.url, &raw.url_env, "url")?.ok_or_else(|| {
        (None, format!("receiver `{name}` has no `url`; give `url`, or `url_env` naming an environment variable that holds it"))
    })?;
    // The URL itself is never quoted: it may carry a token.
    let parsed = reqwest::Url::parse(url.expose())
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some());
    if parsed.is_none() {
        let span = raw.url.as_ref().or(raw.url_env.as_ref()).map(Spanned::span);
        return Err((
            span,
            format!("receiver `{name}`: the URL is not an http:// or https:// URL with a host"),
        ));
    }
    let filter_sites = match &raw.sites {
        Some(value) => {
            for listed in value.get_ref() {
                if !sites.iter().any(|site| site.name == *listed) {
                    return Err((
                        Some(value.span()),
                        format!("`sites`: no [[site]] is named `{listed}`"),
                    ));
                }
            }
            Some(value.get_ref().clone())
        }
        None => None,
    };
    let severities = match &raw.severities {
        Some(value) => Some(
            value
                .get_ref()
                .iter()
                .map(|text| text.parse::<Severity>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|msg| (Some(value.span()), format!("`severities`: {msg}")))?,
        ),
        None => None,
    };
    let duration = |value: &Option<Spanned<String>>, key: &str, minimum, default| {
        duration_or(value.as_ref(), key, minimum, default).map_err(|(span, msg)| (Some(span), msg))
    };
    let default_repeat = match kind {
        ReceiverKind::Alertmanager => DEFAULT_ALERTMANAGER_RESEND.min(alerts.repeat_interval),
        _ => alerts.repeat_interval,
    };
    Ok(Receiver {
        name: name.to_owned(),
        kind,
        url,
        sites: filter_sites,
        severities,
        repeat_interval: duration(
            &raw.repeat_interval,
            "repeat_interval",
            Duration::from_secs(1),
            default_repeat,
        )?,
        timeout: duration(
            &raw.timeout,
            "timeout",
            Duration::from_millis(10),
            DEFAULT_RECEIVER_TIMEOUT,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, "certdrift.toml", Path::new("/etc/certdrift"))
    }

    const MINIMAL: &str = r#"
[[site]]
name = "blog"
host = "blog.example.org"
cert = "/etc/letsencrypt/live/blog.example.org/fullchain.pem"
"#;

    #[test]
    fn minimal_site_gets_defaults() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.interval, Duration::from_secs(60));
        assert_eq!(config.timeouts, Timeouts::uniform(Duration::from_secs(10)));
        assert_eq!(config.listen, "127.0.0.1:10159".parse().unwrap());
        let site = &config.sites[0];
        assert_eq!(site.port, 443);
        assert_eq!(site.sni.as_deref(), Some("blog.example.org"));
        assert_eq!(
            site.certs,
            [CertFiles {
                key_type: None,
                cert: "/etc/letsencrypt/live/blog.example.org/fullchain.pem".into(),
                chain: None,
                key: None,
            }]
        );
        assert_eq!(site.protocol, Protocol::Tls);
        assert_eq!(site.addresses, AddressFamily::All);
        assert_eq!(site.handshakes, DEFAULT_HANDSHAKES);
    }

    #[test]
    fn reads_the_lineage_and_watch_keys() {
        let config = parse(MINIMAL).unwrap();
        let site = &config.sites[0];
        assert_eq!(site.lineage, None);
        assert_eq!(
            site.letsencrypt_dir.as_deref(),
            Some(Path::new("/etc/letsencrypt"))
        );
        assert_eq!(config.watch_fallback, Duration::from_secs(5));

        let text = format!(
            "letsencrypt_dir = \"le\"\nwatch_fallback = \"30s\"\n{MINIMAL}lineage = \"/srv/le/live/blog\"\n"
        );
        let config = parse(&text).unwrap();
        let site = &config.sites[0];
        assert_eq!(
            site.lineage.as_deref(),
            Some(Path::new("/srv/le/live/blog"))
        );
        assert_eq!(
            site.letsencrypt_dir.as_deref(),
            Some(Path::new("/etc/certdrift/le"))
        );
        assert_eq!(config.watch_fallback, Duration::from_secs(30));

        let off = parse(&format!("letsencrypt_dir = \"\"\n{MINIMAL}")).unwrap();
        assert_eq!(off.sites[0].letsencrypt_dir, None);
        let err = parse(&format!("watch_fallback = \"1ms\"\n{MINIMAL}")).unwrap_err();
        assert!(err.message.contains("watch_fallback"), "{err}");
    }

    #[test]
    fn reads_every_key() {
        let config = parse(
            r#"
interval = "5m"
timeout = "2500ms"
listen = "[::1]:9999"
concurrency = 8
ca_file = "ca.pem"

[[site]]
name = "mail"
host = "192.0.2.10"
port = 8443
sni = "mail.example.org"
cert = "certs/mail.pem"
origin = "/etc/nginx/sites-enabled/mail:3"
"#,
        )
        .unwrap();
        assert_eq!(config.interval, Duration::from_secs(300));
        assert_eq!(config.timeouts.total, Duration::from_millis(2500));
        assert_eq!(config.timeouts.connect, Duration::from_millis(2500));
        assert_eq!(config.listen, "[::1]:9999".parse().unwrap());
        assert_eq!(config.concurrency, 8);
        let site = &config.sites[0];
        assert_eq!(site.port, 8443);
        assert_eq!(site.sni.as_deref(), Some("mail.example.org"));
        assert_eq!(
            site.certs[0].cert,
            Path::new("/etc/certdrift/certs/mail.pem")
        );
        assert_eq!(
            site.ca_file.as_deref(),
            Some(Path::new("/etc/certdrift/ca.pem"))
        );
        assert_eq!(
            site.origin.as_deref(),
            Some("/etc/nginx/sites-enabled/mail:3")
        );
    }

    #[test]
    fn ip_host_sends_no_sni_by_default() {
        let config =
            parse(&MINIMAL.replace("blog.example.org\"\ncert", "127.0.0.1\"\ncert")).unwrap();
        assert_eq!(config.sites[0].host, "127.0.0.1");
        assert_eq!(config.sites[0].sni, None);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse(&MINIMAL.replace("host =", "hots =")).unwrap_err();
        assert_eq!(err.origin, "certdrift.toml");
        assert_eq!(err.line, Some(4));
        assert!(err.message.contains("unknown field `hots`"), "{err}");
    }

    #[test]
    fn duplicate_names_point_at_both_lines() {
        let err = parse(&format!("{MINIMAL}{MINIMAL}")).unwrap_err();
        assert_eq!(err.line, Some(8));
        assert!(err.message.contains("already defined at line 3"), "{err}");
    }

    #[test]
    fn bad_duration_names_the_key() {
        let err = parse(&format!("interval = \"10 parsecs\"\n{MINIMAL}")).unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(
            err.message
                .starts_with("`interval`: `10 parsecs` is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn missing_cert_names_the_site_table() {
        let text = "[[site]]\nname = \"a\"\nhost = \"a.example\"\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(err.message.contains("missing field `cert`"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = parse(&MINIMAL.replace("cert =", "port = \"https\"\ncert =")).unwrap_err();
        assert_eq!(err.line, Some(5));
        assert!(err.message.starts_with("`port`:"), "{err}");
    }

    #[test]
    fn rejects_port_zero_bad_sni_and_no_sites() {
        assert!(
            parse(&MINIMAL.replace("cert =", "port = 0\ncert ="))
                .unwrap_err()
                .message
                .contains("0 is not a port")
        );
        assert!(
            parse(&MINIMAL.replace("cert =", "sni = \"a b\"\ncert ="))
                .unwrap_err()
                .message
                .contains("`sni`")
        );
        assert!(
            parse("interval = \"1m\"\n")
                .unwrap_err()
                .message
                .contains("no [[site]]")
        );
    }

    #[test]
    fn a_ca_file_given_for_every_site_is_each_sites_ca_file() {
        let mut config = parse(
            "[[site]]\nname = \"a\"\nhost = \"127.0.0.1\"\nport = 1\ncert = \"a.pem\"\n[[site]]\nname = \"b\"\nhost = \"127.0.0.1\"\nport = 2\ncert = \"b.pem\"\n",
        )
        .unwrap();
        config.trust_ca_file(Path::new("/etc/ssl/ca.pem"));
        let ca_files: Vec<&Path> = config.ca_files().collect();
        assert_eq!(ca_files, [Path::new("/etc/ssl/ca.pem"); 2]);
    }

    #[test]
    fn ad_hoc_site_is_named_after_its_sni_or_host() {
        let cert = Path::new("c.pem");
        let config = Config::ad_hoc(AdHoc {
            sni: Some("blog.example.org"),
            port: Some(8443),
            ..AdHoc::new("127.0.0.1", cert)
        })
        .unwrap();
        assert_eq!(config.sites[0].name, "blog.example.org");
        assert_eq!(config.sites[0].sni.as_deref(), Some("blog.example.org"));
        assert_eq!(config.sites[0].port, 8443);
        let config = Config::ad_hoc(AdHoc::new("127.0.0.1", cert)).unwrap();
        assert_eq!(config.sites[0].name, "127.0.0.1");
        assert_eq!(config.sites[0].sni, None);
        let err = Config::ad_hoc(AdHoc::new("bad host", cert)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "command line: --host: `bad host` is not a valid DNS name or IP address"
        );
        let smtp = Config::ad_hoc(AdHoc {
            protocol: Protocol::Smtp,
            ..AdHoc::new("mx.example.org", cert)
        })
        .unwrap();
        assert_eq!(smtp.sites[0].port, 25);
    }

    #[test]
    fn reads_the_per_address_and_protocol_keys() {
        let config = parse(&MINIMAL.replace(
            "cert =",
            "protocol = \"imap\"\naddresses = \"ipv6\"\nconnect_to = [\"2001:db8::1\", \"[2001:db8::2]\"]\nhandshakes = 5\n\
             chain = \"chain.pem\"\nkey = \"privkey.pem\"\ncert =",
        ))
        .unwrap();
        let site = &config.sites[0];
        assert_eq!(site.protocol, Protocol::Imap);
        assert_eq!(site.port, 143, "the protocol's usual port");
        assert_eq!(site.addresses, AddressFamily::Ipv6);
        assert_eq!(
            site.connect_to,
            [
                "2001:db8::1".parse::<IpAddr>().unwrap(),
                "2001:db8::2".parse().unwrap()
            ]
        );
        assert_eq!(site.handshakes, 5);
        assert_eq!(
            site.certs[0].chain.as_deref(),
            Some(Path::new("/etc/certdrift/chain.pem"))
        );
        assert_eq!(
            site.certs[0].key.as_deref(),
            Some(Path::new("/etc/certdrift/privkey.pem"))
        );
    }

    #[test]
    fn reads_one_certificate_per_key_type() {
        let text = r#"
[[site]]
name = "dual"
host = "www.example.org"
key_types = ["rsa", "ecdsa"]
cert = { ecdsa = "ec/fullchain.pem", rsa = "rsa/fullchain.pem" }
key = { rsa = "rsa/privkey.pem" }
"#;
        let site = parse(text).unwrap().sites.remove(0);
        assert_eq!(
            site.certs,
            [
                CertFiles {
                    key_type: Some(KeyType::Rsa),
                    cert: "/etc/certdrift/rsa/fullchain.pem".into(),
                    chain: None,
                    key: Some("/etc/certdrift/rsa/privkey.pem".into()),
                },
                CertFiles {
                    key_type: Some(KeyType::Ecdsa),
                    cert: "/etc/certdrift/ec/fullchain.pem".into(),
                    chain: None,
                    key: None,
                },
            ]
        );
        let mismatch = parse(&text.replace("[\"rsa\", \"ecdsa\"]", "[\"rsa\"]")).unwrap_err();
        assert!(
            mismatch
                .message
                .contains("exactly one path per entry of `key_types`"),
            "{mismatch}"
        );
        let path_with_types =
            parse(&MINIMAL.replace("cert =", "key_types = [\"rsa\"]\ncert =")).unwrap_err();
        assert!(
            path_with_types
                .message
                .contains("must be a table by key type"),
            "{path_with_types}"
        );
        let bad_type = parse(
            &text
                .replace("ecdsa = ", "dsa = ")
                .replace("\"ecdsa\"]", "\"rsa2\"]"),
        )
        .unwrap_err();
        assert!(bad_type.message.contains("is not a key type"), "{bad_type}");
    }

    #[test]
    fn rejects_bad_per_address_and_protocol_values() {
        let with =
            |line: &str| parse(&MINIMAL.replace("cert =", &format!("{line}\ncert ="))).unwrap_err();
        assert!(
            with("protocol = \"gopher\"")
                .message
                .starts_with("`protocol`: `gopher` is not a protocol")
        );
        assert!(
            with("addresses = \"ipv5\"")
                .message
                .starts_with("`addresses`: `ipv5` is not an address family")
        );
        assert!(
            with("connect_to = [\"blog\"]")
                .message
                .starts_with("`connect_to`: `blog` is not an IP address")
        );
        assert!(
            with("connect_to = []")
                .message
                .contains("`connect_to` is empty")
        );
        assert!(
            with("addresses = \"ipv4\"\nconnect_to = [\"::1\"]")
                .message
                .contains("no ipv4 address")
        );
        assert!(with("handshakes = 0").message.contains("between 1 and 20"));
        assert_eq!(with("handshakes = 0").line, Some(5));
    }

    #[test]
    fn an_address_family_that_excludes_an_ip_host_is_refused() {
        let site = |host: &str, line: &str| {
            MINIMAL
                .replace("blog.example.org\"", &format!("{host}\""))
                .replace("cert =", &format!("{line}\ncert ="))
        };
        let err = parse(&site("127.0.0.1", "addresses = \"ipv6\"")).unwrap_err();
        assert_eq!(
            err.message,
            "`addresses` = \"ipv6\" leaves nothing to probe: `host` is the IPv4 address \
             127.0.0.1; leave `addresses` out, or give a host name or an address it keeps"
        );
        assert_eq!(err.line, Some(5));
        let err = parse(&site("::1", "addresses = \"ipv4\"")).unwrap_err();
        assert!(
            err.message.contains("`host` is the IPv6 address ::1"),
            "{err:?}"
        );
        assert!(parse(&site("127.0.0.1", "addresses = \"ipv4\"")).is_ok());
    }

    #[test]
    fn an_empty_state_file_is_refused() {
        let err = parse(&format!("[alerts]\nstate_file = \"\"\n{MINIMAL}")).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(
            err.message
                .starts_with("`state_file` is empty; give a file path"),
            "{err:?}"
        );
    }
}
