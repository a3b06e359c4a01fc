//! postfix: every `smtpd` listener of master.cf that offers TLS, with the certificate
//! files of main.cf (or the listener's `-o` overrides) and one site per name of the SNI map.
//!
//! main.cf's values come from `postconf -c DIR -x`, which applies postfix's defaults and
//! expands `$name`s as postfix does; without postconf, main.cf itself is read (a few defaults
//! filled in). master.cf is read here, for its line numbers: an `inet` service running
//! `smtpd` listens on `[HOST:]PORT`, or on `inet_interfaces` (`inet_protocols` saying which
//! families) when no host is given. `smtpd_tls_wrappermode = yes` is implicit TLS (port 465);
//! otherwise STARTTLS (`protocol = "smtp"`). TLS is on when `smtpd_tls_security_level` is
//! `may` or `encrypt` (or the legacy `smtpd_use_tls`/`smtpd_enforce_tls` say so).
//!
//! `tls_server_sni_maps` of a file type (hash, btree, lmdb, cdb, texthash, ...) is read from
//! its source file, the text `postmap` builds the map from: `NAME FILE...`, the key first,
//! then its certificates. Other map types (LDAP, SQL) cannot be read and are reported.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::discover::files::{self, ConfigFiles, FsFiles};
use crate::discover::tool::{self, ToolError};
use crate::discover::{
    CertRef, CertSpec, Endpoint, KeyRef, Listen, ListenHost, Origin, Parsed, SourceKind, Warning,
};
use crate::probe::Protocol;

/// main.cf's parameters, by name.
pub type Params = HashMap<String, String>;

/// Discovers the TLS listeners of the postfix whose config directory is `dir`.
pub fn discover(dir: &Path) -> Parsed {
    let mut warnings = Vec::new();
    let main_cf = dir.join("main.cf");
    let (params, how) = match tool::run(
        "postconf",
        &[OsStr::new("-c"), dir.as_os_str(), OsStr::new("-x")],
    ) {
        Ok(output) => (parse_postconf(&output), "postconf -x and master.cf"),
        Err(err) => {
            let how = match err {
                ToolError::NotInstalled => "main.cf and master.cf (postconf is not installed)",
                ToolError::Failed(message) => {
                    warnings.push(Warning::new(
                        Origin::file(&main_cf),
                        format!("postconf failed, so main.cf was read instead: {message}"),
                    ));
                    "main.cf and master.cf (postconf failed)"
                }
            };
            match FsFiles.read(&main_cf) {
                Ok(text) => (with_defaults(parse_main_cf(&text)), how),
                Err(err) => {
                    warnings.push(Warning::new(
                        Origin::file(&main_cf),
                        format!("cannot read main.cf: {err}"),
                    ));
                    (with_defaults(Params::new()), how)
                }
            }
        }
    };
    let mut parsed = endpoints(&FsFiles, dir, &params);
    warnings.append(&mut parsed.warnings);
    parsed.warnings = warnings;
    parsed.how = how.to_owned();
    parsed
}

/// The endpoints of master.cf in `dir`, with main.cf's `params`.
pub fn endpoints(files: &dyn ConfigFiles, dir: &Path, params: &Params) -> Parsed {
    let master_cf = dir.join("master.cf");
    let mut parsed = Parsed::default();
    let text = match files.read(&master_cf) {
        Ok(text) => text,
        Err(err) => {
            parsed.warnings.push(Warning::new(
                Origin::file(&master_cf),
                format!("cannot read master.cf: {err}"),
            ));
            return parsed;
        }
    };
    parsed.files_read = 2;
    // Each distinct SNI map value is read (and its problems reported) once.
    let mut sni_maps: HashMap<String, Vec<SniEntry>> = HashMap::new();
    for service in parse_master_cf(&text, &master_cf, &mut parsed.warnings) {
        if service.kind != "inet" || service.command != "smtpd" {
            continue;
        }
        let origin = Origin::at(&master_cf, service.line);
        let get = |name: &str| -> String {
            match service.overrides.get(name) {
                Some(value) => expand(value, params),
                None => params.get(name).cloned().unwrap_or_default(),
            }
        };
        let wrapper = is_yes(&get("smtpd_tls_wrappermode"));
        let level = match get("smtpd_tls_security_level").trim() {
            "" if is_yes(&get("smtpd_enforce_tls")) => "encrypt".to_owned(),
            "" if is_yes(&get("smtpd_use_tls")) => "may".to_owned(),
            level => level.to_owned(),
        };
        if !wrapper && !matches!(level.as_str(), "may" | "encrypt") {
            continue;
        }
        let listens = match service_listens(
            &service.name,
            &get("inet_interfaces"),
            &get("inet_protocols"),
        ) {
            Ok(listens) => listens,
            Err(message) => {
                parsed.warnings.push(Warning::new(origin, message));
                continue;
            }
        };
        let (protocol, how) = if wrapper {
            (Protocol::Tls, "implicit TLS (smtpd_tls_wrappermode)")
        } else {
            (Protocol::Smtp, "STARTTLS")
        };
        let what = format!("postfix smtpd service `{}`, {how}", service.name);

        let maps = get("tls_server_sni_maps");
        let sni_entries = sni_maps
            .entry(maps.clone())
            .or_insert_with(|| sni_map_entries(files, dir, &maps, &origin, &mut parsed.warnings))
            .clone();
        let myhostname = get("myhostname");
        match default_certs(&get) {
            Some(certs) => {
                let names = if sni_entries.iter().any(|entry| entry.name == myhostname) {
                    Vec::new()
                } else {
                    vec![myhostname.clone()]
                };
                parsed.endpoints.push(Endpoint {
                    source: SourceKind::Postfix,
                    origin: origin.clone(),
                    what: what.clone(),
                    listens: listens.clone(),
                    names,
                    certs,
                    chain: None,
                    protocol,
                    notes: Vec::new(),
                });
            }
            None if sni_entries.is_empty() => {
                parsed.warnings.push(Warning::new(
                    origin.clone(),
                    format!("smtpd service `{}` has TLS on ({level}) but no certificate (smtpd_tls_chain_files or smtpd_tls_cert_file); not probed", service.name),
                ));
            }
            None => {}
        }
        for entry in sni_entries {
            parsed.endpoints.push(Endpoint {
                source: SourceKind::Postfix,
                origin: entry.origin,
                what: format!("{what}, SNI map entry {}", entry.name),
                listens: listens.clone(),
                names: vec![entry.name],
                certs: CertSpec::KeyThenCerts(entry.files),
                chain: None,
                protocol,
                notes: Vec::new(),
            });
        }
    }
    parsed
}

/// The server's own certificates: `smtpd_tls_chain_files`, else the RSA and ECDSA
/// `*_cert_file`/`*_key_file` pairs.
fn default_certs(get: &dyn Fn(&str) -> String) -> Option<CertSpec> {
    let chain_files: Vec<PathBuf> = split_list(&get("smtpd_tls_chain_files"))
        .map(PathBuf::from)
        .collect();
    if !chain_files.is_empty() {
        return Some(CertSpec::KeyThenCerts(chain_files));
    }
    let mut pairs = Vec::new();
    for (cert, key) in [
        ("smtpd_tls_cert_file", "smtpd_tls_key_file"),
        ("smtpd_tls_eccert_file", "smtpd_tls_eckey_file"),
    ] {
        let cert = get(cert);
        if cert.trim().is_empty() {
            continue;
        }
        let key = get(key);
        let key = if key.trim().is_empty() {
            cert.clone()
        } else {
            key
        };
        pairs.push(CertRef {
            cert: PathBuf::from(cert.trim()),
            key: KeyRef::Path(PathBuf::from(key.trim())),
        });
    }
    (!pairs.is_empty()).then_some(CertSpec::Pairs(pairs))
}

/// One master.cf entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Service {
    name: String,
    kind: String,
    command: String,
    overrides: HashMap<String, String>,
    line: usize,
}

/// Reads master.cf: an entry starts at a line's first column, lines that start with white
/// space continue it, `#` lines are comments. `-o name=value` and `-o { name = value }`
/// are the entry's overrides. An entry with fewer than the 8 fields of a service is a
/// warning naming its line (file `path`).
fn parse_master_cf(text: &str, path: &Path, warnings: &mut Vec<Warning>) -> Vec<Service> {
    let mut entries: Vec<(usize, String)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            if let Some((_, entry)) = entries.last_mut() {
                entry.push(' ');
                entry.push_str(trimmed);
            }
        } else {
            entries.push((index + 1, line.to_owned()));
        }
    }
    entries
        .into_iter()
        .filter_map(|(line, entry)| {
            let words = master_words(&entry);
            if words.len() < 8 {
                warnings.push(Warning::new(
                    Origin::at(path, line),
                    format!(
                        "`{}` is not a master.cf service (it has {} of the 8 fields); ignored",
                        entry.trim(),
                        words.len()
                    ),
                ));
                return None;
            }
            let mut overrides = HashMap::new();
            let mut args = words[8..].iter();
            while let Some(arg) = args.next() {
                if arg != "-o" {
                    continue;
                }
                let Some(setting) = args.next() else { break };
                let setting = setting
                    .strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                    .unwrap_or(setting);
                if let Some((name, value)) = setting.split_once('=') {
                    overrides.insert(name.trim().to_owned(), value.trim().to_owned());
                }
            }
            Some(Service {
                name: words[0].clone(),
                kind: words[1].clone(),
                command: words[7].clone(),
                overrides,
                line,
            })
        })
        .collect()
}

/// Splits a master.cf entry on white space, keeping `{ ... }` groups whole.
fn master_words(entry: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = entry.chars().peekable();
    while let Some(&ch) = chars.peek() {
        if ch.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if ch == '{' {
            for next in chars.by_ref() {
                word.push(next);
                if next == '}' {
                    break;
                }
            }
            // `{ a = b }`: the group's inside, trimmed, between braces.
            let inner = word.trim_start_matches('{').trim_end_matches('}').trim();
            words.push(format!("{{{inner}}}"));
            continue;
        }
        while let Some(&next) = chars.peek() {
            if next.is_whitespace() {
                break;
            }
            word.push(next);
            chars.next();
        }
        words.push(word);
    }
    words
}

/// Where an smtpd service listens: its `HOST:` part, or `inet_interfaces`.
fn service_listens(name: &str, interfaces: &str, protocols: &str) -> Result<Vec<Listen>, String> {
    let (host, port_text) = match name.rsplit_once(':') {
        Some((host, port)) => (Some(host), port),
        None => (None, name),
    };
    let port = match port_text {
        "smtp" => 25,
        "submission" => 587,
        "submissions" | "smtps" => 465,
        text => match text.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                return Err(format!(
                    "smtpd service `{name}`: `{text}` is not a port number or a known service name (smtp, submission, submissions, smtps); not probed"
                ));
            }
        },
    };
    if let Some(host) = host {
        return Ok(vec![Listen {
            host: ListenHost::parse(host),
            port,
        }]);
    }
    let protocols = protocols.to_lowercase();
    let all = protocols.trim().is_empty() || protocols.contains("all");
    let v4 = all || protocols.contains("ipv4");
    let v6 = all || protocols.contains("ipv6");
    let mut listens = Vec::new();
    let interfaces = if interfaces.trim().is_empty() {
        "all"
    } else {
        interfaces
    };
    for interface in split_list(interfaces) {
        let hosts = match interface {
            "all" => vec![(v4, ListenHost::AnyV4), (v6, ListenHost::AnyV6)],
            "loopback-only" => vec![
                (
                    v4,
                    ListenHost::Ip("127.0.0.1".parse().expect("an IPv4 address")),
                ),
                (v6, ListenHost::Ip("::1".parse().expect("an IPv6 address"))),
            ],
            other => vec![(true, ListenHost::parse(other))],
        };
        listens.extend(
            hosts
                .into_iter()
                .filter(|(wanted, _)| *wanted)
                .map(|(_, host)| Listen { host, port }),
        );
    }
    Ok(listens)
}

/// One SNI map line: the name, the files (key first), where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SniEntry {
    name: String,
    files: Vec<PathBuf>,
    origin: Origin,
}

/// Map types whose source is a text file `postmap` reads.
const FILE_MAP_TYPES: [&str; 7] = ["hash", "btree", "lmdb", "cdb", "dbm", "sdbm", "texthash"];

fn sni_map_entries(
    files: &dyn ConfigFiles,
    dir: &Path,
    maps: &str,
    origin: &Origin,
    warnings: &mut Vec<Warning>,
) -> Vec<SniEntry> {
    let mut entries = Vec::new();
    for map in split_list(maps) {
        let Some((kind, name)) = map.split_once(':') else {
            continue;
        };
        if !FILE_MAP_TYPES.contains(&kind) {
            warnings.push(Warning::new(
                origin.clone(),
                format!("tls_server_sni_maps {map}: maps of type {kind} cannot be read by discovery; add a site per name by hand"),
            ));
            continue;
        }
        let source = files::resolve(dir, Path::new(name));
        match files.read(&source) {
            Ok(text) => entries.extend(parse_sni_source(&text, &source, dir)),
            Err(err) => warnings.push(Warning::new(
                origin.clone(),
                format!(
                    "tls_server_sni_maps {map}: cannot read {}: {err}",
                    source.display()
                ),
            )),
        }
    }
    entries
}

/// Parses a map source: `KEY VALUE` per line, `#` comments, white-space continuations. An
/// SNI map's value lists files, separated by commas or white space.
fn parse_sni_source(text: &str, path: &Path, dir: &Path) -> Vec<SniEntry> {
    let mut entries: Vec<SniEntry> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let words: Vec<PathBuf> = split_list(trimmed)
            .map(|word| files::resolve(dir, Path::new(word)))
            .collect();
        if line.starts_with(char::is_whitespace) {
            if let Some(entry) = entries.last_mut() {
                entry.files.extend(words);
            }
            continue;
        }
        let mut words = split_list(trimmed);
        let Some(name) = words.next() else { continue };
        entries.push(SniEntry {
            name: name.to_lowercase(),
            files: words
                .map(|word| files::resolve(dir, Path::new(word)))
                .collect(),
            origin: Origin::at(path, index + 1),
        });
    }
    entries
}

/// Reads `postconf` output: `name = value` per line.
pub fn parse_postconf(output: &str) -> Params {
    output
        .lines()
        .filter_map(|line| {
            line.split_once(" = ")
                .or_else(|| line.strip_suffix(" =").map(|name| (name, "")))
        })
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// Reads main.cf: `name = value`, continued on lines that start with white space, `#`
/// comment lines. Values are expanded against each other.
pub fn parse_main_cf(text: &str) -> Params {
    let mut raw: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            if let Some((_, value)) = raw.last_mut() {
                value.push(' ');
                value.push_str(trimmed);
            }
            continue;
        }
        if let Some((name, value)) = trimmed.split_once('=') {
            raw.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    raw.into_iter().collect()
}

/// The defaults postconf would fill in, for the parameters discovery reads.
fn with_defaults(mut params: Params) -> Params {
    for (name, value) in [
        ("inet_interfaces", "all"),
        ("inet_protocols", "all"),
        ("smtpd_tls_key_file", "$smtpd_tls_cert_file"),
        ("smtpd_tls_eckey_file", "$smtpd_tls_eccert_file"),
    ] {
        params
            .entry(name.to_owned())
            .or_insert_with(|| value.to_owned());
    }
    let names: Vec<String> = params.keys().cloned().collect();
    let snapshot = params.clone();
    for name in names {
        let expanded = expand(&snapshot[&name], &snapshot);
        params.insert(name, expanded);
    }
    params
}

/// `$name`, `${name}` and `$(name)` replaced by the parameter's value, recursively (a few
/// levels: postfix itself refuses loops). Unknown names become empty, as in postfix.
pub fn expand(value: &str, params: &Params) -> String {
    expand_depth(value, params, 0)
}

fn expand_depth(value: &str, params: &Params, depth: usize) -> String {
    if depth > 10 || !value.contains('$') {
        return value.to_owned();
    }
    let mut out = String::new();
    let mut chars = value.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch != '$' {
            out.push(ch);
            continue;
        }
        let close = match chars.peek() {
            Some('{') => Some('}'),
            Some('(') => Some(')'),
            _ => None,
        };
        let mut name = String::new();
        if let Some(close) = close {
            chars.next();
            for next in chars.by_ref() {
                if next == close {
                    break;
                }
                name.push(next);
            }
        } else {
            while let Some(&next) = chars.peek() {
                if !(next.is_ascii_alphanumeric() || next == '_') {
                    break;
                }
                name.push(next);
                chars.next();
            }
        }
        if name.is_empty() {
            out.push('$');
            continue;
        }
        let value = params.get(&name).map(String::as_str).unwrap_or("");
        out.push_str(&expand_depth(value, params, depth + 1));
    }
    out
}

fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(|ch: char| ch == ',' || ch.is_whitespace())
        .filter(|word| !word.is_empty())
}

fn is_yes(value: &str) -> bool {
    matches!(value.trim().to_lowercase().as_str(), "yes" | "true" | "1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::files::MemFiles;

    const MASTER: &str =
        "# ==========================================================================
# service type  private unpriv  chroot  wakeup  maxproc command + args
smtp      inet  n       -       y       -       -       smtpd
submission inet n       -       y       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
#  -o smtpd_sasl_auth_enable=yes
smtps     inet  n       -       y       -       -       smtpd
  -o { smtpd_tls_wrappermode = yes }
  -o smtpd_tls_cert_file=$submission_cert
[::1]:2525 inet n - n - - smtpd -o smtpd_tls_security_level=none
pickup    unix  n       -       y       60      1       pickup
";

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn reads_master_cf_entries_with_their_overrides() {
        let mut warnings = Vec::new();
        let services = parse_master_cf(MASTER, Path::new("/etc/postfix/master.cf"), &mut warnings);
        assert!(warnings.is_empty(), "{warnings:?}");
        let names: Vec<(&str, usize)> =
            services.iter().map(|s| (s.name.as_str(), s.line)).collect();
        assert_eq!(
            names,
            [
                ("smtp", 3),
                ("submission", 4),
                ("smtps", 8),
                ("[::1]:2525", 11),
                ("pickup", 12)
            ]
        );
        assert_eq!(services[1].overrides["smtpd_tls_security_level"], "encrypt");
        assert!(!services[1].overrides.contains_key("smtpd_sasl_auth_enable"));
        assert_eq!(services[2].overrides["smtpd_tls_wrappermode"], "yes");
        assert_eq!(services[3].overrides["smtpd_tls_security_level"], "none");
    }

    #[test]
    fn each_tls_listener_gets_the_default_certificate_and_each_sni_name() {
        let files = MemFiles::new()
            .with("/etc/postfix/master.cf", MASTER)
            .with(
                "/etc/postfix/sni",
                "# name  key  cert\nshop.example.org /etc/ssl/shop.key,\n    /etc/ssl/shop.pem\nMail.Example.org /etc/ssl/mail-combined.pem\n",
            );
        let params = params(&[
            ("inet_interfaces", "all"),
            ("inet_protocols", "ipv4"),
            ("myhostname", "mx.example.org"),
            ("smtpd_tls_security_level", "may"),
            ("smtpd_tls_cert_file", "/etc/ssl/mx.pem"),
            ("smtpd_tls_key_file", "/etc/ssl/mx.key"),
            ("submission_cert", "/etc/ssl/submission.pem"),
            ("tls_server_sni_maps", "hash:/etc/postfix/sni"),
        ]);
        let parsed = endpoints(&files, Path::new("/etc/postfix"), &params);
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        let found: Vec<(String, u16, Protocol, Vec<String>)> = parsed
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.origin.to_string(),
                    e.listens[0].port,
                    e.protocol,
                    e.names.clone(),
                )
            })
            .collect();
        let names = |n: &str| vec![n.to_owned()];
        assert_eq!(
            found,
            [
                (
                    "/etc/postfix/master.cf:3".to_owned(),
                    25,
                    Protocol::Smtp,
                    names("mx.example.org")
                ),
                (
                    "/etc/postfix/sni:2".to_owned(),
                    25,
                    Protocol::Smtp,
                    names("shop.example.org")
                ),
                (
                    "/etc/postfix/sni:4".to_owned(),
                    25,
                    Protocol::Smtp,
                    names("mail.example.org")
                ),
                (
                    "/etc/postfix/master.cf:4".to_owned(),
                    587,
                    Protocol::Smtp,
                    names("mx.example.org")
                ),
                (
                    "/etc/postfix/sni:2".to_owned(),
                    587,
                    Protocol::Smtp,
                    names("shop.example.org")
                ),
                (
                    "/etc/postfix/sni:4".to_owned(),
                    587,
                    Protocol::Smtp,
                    names("mail.example.org")
                ),
                (
                    "/etc/postfix/master.cf:8".to_owned(),
                    465,
                    Protocol::Tls,
                    names("mx.example.org")
                ),
                (
                    "/etc/postfix/sni:2".to_owned(),
                    465,
                    Protocol::Tls,
                    names("shop.example.org")
                ),
                (
                    "/etc/postfix/sni:4".to_owned(),
                    465,
                    Protocol::Tls,
                    names("mail.example.org")
                ),
            ]
        );
        assert_eq!(
            parsed.endpoints[0].listens,
            [Listen {
                host: ListenHost::AnyV4,
                port: 25
            }]
        );
        assert_eq!(
            parsed.endpoints[1].certs,
            CertSpec::KeyThenCerts(vec!["/etc/ssl/shop.key".into(), "/etc/ssl/shop.pem".into()])
        );
        assert_eq!(
            parsed.endpoints[6].certs,
            CertSpec::Pairs(vec![CertRef {
                cert: "/etc/ssl/submission.pem".into(),
                key: KeyRef::Path("/etc/ssl/mx.key".into()),
            }])
        );
    }

    #[test]
    fn listeners_follow_inet_interfaces_and_protocols() {
        let listen = |host: &str, port| Listen {
            host: ListenHost::parse(host),
            port,
        };
        assert_eq!(
            service_listens("submission", "loopback-only", "all").unwrap(),
            [listen("127.0.0.1", 587), listen("::1", 587)]
        );
        assert_eq!(
            service_listens("smtp", "all", "ipv6").unwrap(),
            [Listen {
                host: ListenHost::AnyV6,
                port: 25
            }]
        );
        assert_eq!(
            service_listens("2525", "192.0.2.1, localhost", "all").unwrap(),
            [listen("192.0.2.1", 2525), listen("localhost", 2525)]
        );
        assert_eq!(
            service_listens("127.0.0.1:smtps", "all", "all").unwrap(),
            [listen("127.0.0.1", 465)]
        );
        assert!(
            service_listens("lmtp", "all", "all")
                .unwrap_err()
                .contains("`lmtp` is not a port")
        );
    }

    #[test]
    fn tls_off_no_certificate_and_unreadable_maps_are_reported_or_skipped() {
        let files = MemFiles::new().with(
            "/etc/postfix/master.cf",
            "smtp inet n - y - - smtpd\n2525 inet n - y - - smtpd -o smtpd_use_tls=yes\n",
        );
        let none = endpoints(&files, Path::new("/etc/postfix"), &params(&[]));
        assert!(none.endpoints.is_empty());
        assert_eq!(none.warnings.len(), 1, "{:?}", none.warnings);
        assert!(none.warnings[0].to_string().starts_with(
            "/etc/postfix/master.cf:2: smtpd service `2525` has TLS on (may) but no certificate"
        ));

        let ldap = endpoints(
            &files,
            Path::new("/etc/postfix"),
            &params(&[
                ("smtpd_tls_security_level", "may"),
                ("smtpd_tls_chain_files", "/etc/ssl/all.pem"),
                (
                    "tls_server_sni_maps",
                    "ldap:/etc/postfix/ldap-sni.cf, hash:/etc/postfix/missing",
                ),
            ]),
        );
        assert_eq!(ldap.endpoints.len(), 2);
        let messages: Vec<String> = ldap.warnings.iter().map(ToString::to_string).collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains("maps of type ldap cannot be read")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("cannot read /etc/postfix/missing")),
            "{messages:?}"
        );
        assert!(
            endpoints(&MemFiles::new(), Path::new("/etc/postfix"), &params(&[])).warnings[0]
                .to_string()
                .contains("cannot read master.cf")
        );
    }

    #[test]
    fn expands_parameters_like_postfix() {
        let params = params(&[("a", "x"), ("b", "$a/y"), ("c", "${b}-$(a)")]);
        assert_eq!(expand("$c and $unknown$", &params), "x/y-x and $");
        let main = with_defaults(parse_main_cf(
            "# comment\nsmtpd_tls_cert_file = /etc/ssl/\n  mx.pem\nmyhostname=mx.example.org\n",
        ));
        assert_eq!(main["smtpd_tls_cert_file"], "/etc/ssl/ mx.pem");
        assert_eq!(main["smtpd_tls_key_file"], "/etc/ssl/ mx.pem");
        assert_eq!(main["inet_interfaces"], "all");
        let output = parse_postconf("myhostname = mx.example.org\nsmtpd_tls_cert_file =\n");
        assert_eq!(output["smtpd_tls_cert_file"], "");
        assert_eq!(output["myhostname"], "mx.example.org");
    }

    #[test]
    fn a_garbage_master_cf_line_is_warned_about_with_its_line() {
        let mut warnings = Vec::new();
        let text = "smtp inet n - y - - smtpd\nthis is garbage\n";
        let services = parse_master_cf(text, Path::new("/etc/postfix/master.cf"), &mut warnings);
        assert_eq!(services.len(), 1);
        let messages: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "/etc/postfix/master.cf:2: `this is garbage` is not a master.cf service (it has 3 of the 8 fields); ignored"
            ]
        );
    }
}
