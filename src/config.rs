//! Configuration: a TOML file (or the command line's ad-hoc site) turned into validated
//! [`Site`]s.
//!
//! Two layers, as in ripgrep's low/high split: serde reads the file into `Raw*` structs that
//! mirror it key for key (unknown keys are errors), then [`Config::from_toml`] checks every
//! value and resolves defaults, so the rest of the program never sees a half-valid setting.
//! Every error names the file, the line and the key, and says what would be accepted.
//!
//! The key names are an interface: dashboards, alert rules and users' files depend on them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde::Deserialize;
use toml::Spanned;

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from; `None` for an ad-hoc site given on the command line.
    pub source: Option<PathBuf>,
    /// `serve`: time between two probes of a site.
    pub interval: Duration,
    /// One probe's whole deadline: resolving, connecting and the handshake together.
    pub timeout: Duration,
    /// `serve`: the HTTP listen address for `/metrics`, `/healthz` and the status page.
    pub listen: SocketAddr,
    /// How many probes may run at once.
    pub concurrency: usize,
    /// The sites to watch, in file order.
    pub sites: Vec<Site>,
}

/// One site: a certificate file and the server that should serve it.
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
    /// The PEM file the server loads.
    pub cert: PathBuf,
    /// Trust anchors for the served chain's verification, instead of the system store.
    pub ca_file: Option<PathBuf>,
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
/// The default number of probes in flight.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// The default TLS port.
pub const DEFAULT_PORT: u16 = 443;

impl Config {
    /// Reads and validates the TOML file at `path`.
    ///
    /// Relative `cert` and `ca_file` paths are taken relative to the file's directory.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the file, line and key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
            origin: origin.clone(),
            line: None,
            message: format!("cannot read the config file: {err}"),
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
        let at = |span: std::ops::Range<usize>, message: String| ConfigError {
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

        let interval = match raw.interval {
            Some(value) => parse_duration(&value, "interval", Duration::from_secs(1))
                .map_err(|msg| at(value.span(), msg))?,
            None => DEFAULT_INTERVAL,
        };
        let timeout = match raw.timeout {
            Some(value) => parse_duration(&value, "timeout", Duration::from_millis(10))
                .map_err(|msg| at(value.span(), msg))?,
            None => DEFAULT_TIMEOUT,
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
            None => DEFAULT_LISTEN.parse().expect("the default listen address parses"),
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
            if let Some(first) = first_seen.get(raw_site.name.get_ref()) {
                return Err(at(
                    raw_site.name.span(),
                    format!(
                        "`name`: site `{}` is already defined at line {first}; names must be unique, they become the `site` label",
                        raw_site.name.get_ref()
                    ),
                ));
            }
            first_seen.insert(raw_site.name.get_ref().clone(), name_line);
            let site = validate_site(raw_site, base, default_ca_file.as_deref())
                .map_err(|(span, msg)| at(span.unwrap_or(table_span.clone()), msg))?;
            sites.push(site);
        }

        Ok(Self {
            source: None,
            interval,
            timeout,
            listen,
            concurrency,
            sites,
        })
    }

    /// A configuration with one site given on the command line (`check --host ...`).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] from `command line` when a value is invalid.
    pub fn ad_hoc(
        host: &str,
        port: u16,
        sni: Option<&str>,
        cert: &Path,
        ca_file: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let error = |message: String| ConfigError {
            origin: "command line".to_owned(),
            line: None,
            message,
        };
        check_host(host).map_err(|msg| error(format!("--host: {msg}")))?;
        if port == 0 {
            return Err(error("--port: 0 is not a port; use 1-65535".to_owned()));
        }
        if let Some(sni) = sni {
            check_sni(sni).map_err(|msg| error(format!("--sni: {msg}")))?;
        }
        let sni = sni.map(str::to_owned).or_else(|| default_sni(host));
        let site = Site {
            name: sni.clone().unwrap_or_else(|| host.to_owned()),
            host: host.to_owned(),
            port,
            sni,
            cert: cert.to_owned(),
            ca_file: ca_file.map(Path::to_owned),
        };
        Ok(Self {
            source: None,
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            listen: DEFAULT_LISTEN
                .parse()
                .expect("the default listen address parses"),
            concurrency: DEFAULT_CONCURRENCY,
            sites: vec![site],
        })
    }

    /// Every CA file any site uses, for building the prober once.
    pub fn ca_files(&self) -> impl Iterator<Item = &Path> {
        self.sites.iter().filter_map(|site| site.ca_file.as_deref())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    concurrency: Option<Spanned<usize>>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    site: Vec<Spanned<RawSite>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: Spanned<String>,
    host: Spanned<String>,
    port: Option<Spanned<u16>>,
    sni: Option<Spanned<String>>,
    cert: Spanned<PathBuf>,
    ca_file: Option<PathBuf>,
}

type SiteError = (Option<std::ops::Range<usize>>, String);

fn validate_site(
    raw: RawSite,
    base: &Path,
    default_ca_file: Option<&Path>,
) -> Result<Site, SiteError> {
    let name = raw.name.get_ref().trim();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err((
            Some(raw.name.span()),
            "`name` must be a non-empty name without control characters".to_owned(),
        ));
    }
    let host = raw.host.get_ref();
    check_host(host).map_err(|msg| (Some(raw.host.span()), format!("`host`: {msg}")))?;
    let port = match raw.port {
        Some(port) if *port.get_ref() == 0 => {
            return Err((
                Some(port.span()),
                "`port`: 0 is not a port; use 1-65535".to_owned(),
            ));
        }
        Some(port) => port.into_inner(),
        None => DEFAULT_PORT,
    };
    let sni = match raw.sni {
        Some(sni) => {
            check_sni(sni.get_ref()).map_err(|msg| (Some(sni.span()), format!("`sni`: {msg}")))?;
            Some(sni.into_inner())
        }
        None => default_sni(host),
    };
    if raw.cert.get_ref().as_os_str().is_empty() {
        return Err((
            Some(raw.cert.span()),
            "`cert` is empty; name the PEM file the server loads".to_owned(),
        ));
    }
    Ok(Site {
        name: name.to_owned(),
        host: host.clone(),
        port,
        sni,
        cert: base.join(raw.cert.into_inner()),
        ca_file: raw
            .ca_file
            .map(|path| base.join(path))
            .or_else(|| default_ca_file.map(Path::to_owned)),
    })
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("is empty; give a DNS name or an IP address".to_owned());
    }
    crate::probe::server_name(host).map(drop)
}

fn check_sni(sni: &str) -> Result<(), String> {
    match crate::probe::server_name(sni)? {
        ServerName::DnsName(_) => Ok(()),
        _ => Err(format!(
            "`{sni}` is an IP address; SNI carries DNS names only, leave `sni` out"
        )),
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
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert_eq!(config.listen, "127.0.0.1:10159".parse().unwrap());
        let site = &config.sites[0];
        assert_eq!(site.port, 443);
        assert_eq!(site.sni.as_deref(), Some("blog.example.org"));
        assert_eq!(
            site.cert,
            Path::new("/etc/letsencrypt/live/blog.example.org/fullchain.pem")
        );
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
"#,
        )
        .unwrap();
        assert_eq!(config.interval, Duration::from_secs(300));
        assert_eq!(config.timeout, Duration::from_millis(2500));
        assert_eq!(config.listen, "[::1]:9999".parse().unwrap());
        assert_eq!(config.concurrency, 8);
        let site = &config.sites[0];
        assert_eq!(site.port, 8443);
        assert_eq!(site.sni.as_deref(), Some("mail.example.org"));
        assert_eq!(site.cert, Path::new("/etc/certdrift/certs/mail.pem"));
        assert_eq!(
            site.ca_file.as_deref(),
            Some(Path::new("/etc/certdrift/ca.pem"))
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
    fn ad_hoc_site_is_named_after_its_sni_or_host() {
        let config = Config::ad_hoc(
            "127.0.0.1",
            8443,
            Some("blog.example.org"),
            Path::new("c.pem"),
            None,
        )
        .unwrap();
        assert_eq!(config.sites[0].name, "blog.example.org");
        assert_eq!(config.sites[0].sni.as_deref(), Some("blog.example.org"));
        let config = Config::ad_hoc("127.0.0.1", 8443, None, Path::new("c.pem"), None).unwrap();
        assert_eq!(config.sites[0].name, "127.0.0.1");
        assert_eq!(config.sites[0].sni, None);
        let err = Config::ad_hoc("bad host", 443, None, Path::new("c.pem"), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "command line: --host: `bad host` is not a valid DNS name or IP address"
        );
    }
}
