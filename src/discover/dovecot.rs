//! dovecot: the IMAP, POP3 and submission listeners, with `ssl_cert` (and `ssl_alt_cert`),
//! `ssl_key`, and one site per `local_name` block.
//!
//! `doveconf -c FILE` prints the whole config with dovecot's defaults filled in (every
//! listener, its port and `ssl`), so its output decides what is served. It hides `ssl_key`
//! and drops line numbers, so the files are read too, following `!include` and
//! `!include_try` with globs: for the keys, and for the line each site came from. Without
//! doveconf the files alone are used, with dovecot 2.3's default listeners (imap 143, imaps
//! 993, pop3 110, pop3s 995, submission 587) and `listen = *, ::`.
//!
//! A listener with `ssl = yes` is implicit TLS; the others speak STARTTLS (`imap`, `pop3`,
//! `smtp` for submission). `ssl = no` turns TLS off everywhere.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::discover::files::{self, ConfigFiles, FsFiles, IncludeStack, Refused};
use crate::discover::tool::{self, ToolError};
use crate::discover::{
    CertRef, CertSpec, Endpoint, KeyRef, Listen, ListenHost, Origin, Parsed, SourceKind, Warning,
};
use crate::probe::Protocol;

/// Discovers the TLS listeners of the dovecot whose main config file is `conf`.
pub fn discover(conf: &Path) -> Parsed {
    let mut warnings = Vec::new();
    let file_nodes = read_files(&FsFiles, conf, &mut warnings);
    let files_model = Model::read(&file_nodes, true);
    let run = tool::run("doveconf", &[OsStr::new("-c"), conf.as_os_str()]);
    let (settings, how) = match run {
        Ok(output) => {
            let nodes = parse(&output, Path::new("doveconf"), &mut Vec::new());
            (Model::read(&nodes, false), "doveconf and the files")
        }
        Err(ToolError::NotInstalled) => {
            (files_model.clone(), "the files (doveconf is not installed)")
        }
        Err(ToolError::Failed(message)) => {
            warnings.push(Warning::new(
                Origin::file(conf),
                format!("doveconf failed, so the files were read instead: {message}"),
            ));
            (files_model.clone(), "the files (doveconf failed)")
        }
    };
    let mut parsed = endpoints(&settings, &files_model, conf);
    warnings.append(&mut parsed.warnings);
    parsed.warnings = warnings;
    parsed.how = how.to_owned();
    parsed
}

/// A setting or a section of dovecot's config syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// `key = value`.
    Setting {
        /// The key.
        key: String,
        /// The value, unquoted; `<FILE` kept as written.
        value: String,
        /// Where.
        origin: Origin,
    },
    /// `kind [name] { ... }`.
    Section {
        /// `service`, `inet_listener`, `local_name`, `protocol`, ...
        kind: String,
        /// The section's name (may be empty).
        name: String,
        /// What is inside.
        children: Vec<Node>,
        /// Where it opens.
        origin: Origin,
    },
}

/// Reads `conf` and its includes into nodes.
pub fn read_files(files: &dyn ConfigFiles, conf: &Path, warnings: &mut Vec<Warning>) -> Vec<Node> {
    let conf = files::normalize(conf);
    let mut stack = IncludeStack::new();
    match stack.enter(files, &conf) {
        Ok(text) => {
            let mut reader = Reader {
                files,
                warnings: Vec::new(),
                stack,
            };
            let nodes = reader.parse_file(&conf, &text, 0);
            warnings.extend(reader.warnings);
            nodes
        }
        Err(err) => {
            warnings.push(files::unreadable_config("dovecot", &conf, &err));
            Vec::new()
        }
    }
}

/// Parses one text (doveconf's output, or a file without following its includes).
pub fn parse(text: &str, path: &Path, warnings: &mut Vec<Warning>) -> Vec<Node> {
    let mut reader = Reader {
        files: &NoFiles,
        warnings: Vec::new(),
        stack: IncludeStack::new(),
    };
    let nodes = reader.parse_text(path, text, 0);
    warnings.extend(reader.warnings);
    nodes
}

/// A file source with nothing in it, for text whose includes are not to be followed.
struct NoFiles;

impl ConfigFiles for NoFiles {
    fn read(&self, _: &Path) -> std::io::Result<String> {
        Err(std::io::Error::from(std::io::ErrorKind::NotFound))
    }
    fn glob(&self, _: &Path) -> Vec<PathBuf> {
        Vec::new()
    }
    fn list_dir(&self, _: &Path) -> Option<Vec<PathBuf>> {
        None
    }
    fn exists(&self, _: &Path) -> bool {
        false
    }
}

struct Reader<'a> {
    files: &'a dyn ConfigFiles,
    warnings: Vec<Warning>,
    stack: IncludeStack,
}

impl Reader<'_> {
    /// Parses the file at `path` (entered on the include stack) and leaves it.
    fn parse_file(&mut self, path: &Path, text: &str, depth: usize) -> Vec<Node> {
        let nodes = self.parse_text(path, text, depth);
        self.stack.leave();
        nodes
    }

    fn parse_text(&mut self, path: &Path, text: &str, depth: usize) -> Vec<Node> {
        let mut stack: Vec<(String, String, Origin, Vec<Node>)> = Vec::new();
        let mut top: Vec<Node> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let origin = Origin::at(path, index + 1);
            let line = strip_comment(raw);
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let nodes = if let Some(rest) = line.strip_prefix('!') {
                let (directive, argument) =
                    rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                match directive {
                    "include" | "include_try" => self.include(
                        argument.trim(),
                        directive == "include_try",
                        path,
                        &origin,
                        depth,
                    ),
                    _ => {
                        self.warnings.push(Warning::new(
                            origin,
                            format!("unknown `!{directive}`; ignored"),
                        ));
                        Vec::new()
                    }
                }
            } else if line == "}" {
                match stack.pop() {
                    Some((kind, name, open, children)) => vec![Node::Section {
                        kind,
                        name,
                        children,
                        origin: open,
                    }],
                    None => {
                        self.warnings.push(Warning::new(
                            origin,
                            "`}` without an open section; the rest of the file is not used"
                                .to_owned(),
                        ));
                        return top;
                    }
                }
            } else if let Some(head) = line.strip_suffix('{') {
                let head = head.trim();
                let (kind, name) = head.split_once(char::is_whitespace).unwrap_or((head, ""));
                stack.push((
                    kind.to_owned(),
                    unquote(name.trim()).to_owned(),
                    origin,
                    Vec::new(),
                ));
                continue;
            } else if let Some((key, value)) = line.split_once('=') {
                vec![Node::Setting {
                    key: key.trim().to_owned(),
                    value: unquote(value.trim()).to_owned(),
                    origin,
                }]
            } else {
                self.warnings.push(Warning::new(
                    origin,
                    format!("`{line}` is neither `key = value`, a section nor an include; the rest of the file is not used"),
                ));
                return top;
            };
            match stack.last_mut() {
                Some(parent) => parent.3.extend(nodes),
                None => top.extend(nodes),
            }
        }
        if let Some((kind, _, origin, _)) = stack.first() {
            self.warnings.push(Warning::new(
                origin.clone(),
                format!("`{kind} {{` is not closed before the end of the file; not used"),
            ));
        }
        top
    }

    fn include(
        &mut self,
        argument: &str,
        optional: bool,
        from: &Path,
        origin: &Origin,
        depth: usize,
    ) -> Vec<Node> {
        let pattern = unquote(argument);
        if depth >= files::MAX_INCLUDE_DEPTH {
            self.warnings
                .push(files::too_deep("!include", pattern, origin.clone()));
            return Vec::new();
        }
        let dir = from.parent().unwrap_or(Path::new("/"));
        let path = files::resolve(dir, Path::new(pattern));
        let matched = self.files.glob(&path);
        if matched.is_empty() && !optional && !files::has_wildcard(pattern) {
            let why = files::why_missing(self.files, &path);
            self.warnings.push(Warning::new(
                origin.clone(),
                format!("!include {}: {why}", path.display()),
            ));
        }
        let mut nodes = Vec::new();
        for file in matched {
            match self.stack.enter(self.files, &file) {
                Ok(text) => nodes.extend(self.parse_file(&file, &text, depth + 1)),
                Err(Refused::BudgetAgain) => {}
                Err(err @ (Refused::Loop | Refused::Budget)) => self.warnings.push(Warning::new(
                    origin.clone(),
                    format!("!include {}: {err}", file.display()),
                )),
                Err(err) if !optional => self.warnings.push(Warning::new(
                    origin.clone(),
                    format!("!include {}: {err}", file.display()),
                )),
                Err(_) => {}
            }
        }
        nodes
    }
}

/// The line without its `#` comment: `#` at the start or after white space, outside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let mut previous_space = true;
    for (index, ch) in line.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            '#' if !quoted && previous_space => return &line[..index],
            _ => {}
        }
        previous_space = ch.is_whitespace();
    }
    line
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(value)
}

/// A value with where it was set.
type Located = (String, Option<Origin>);

/// The certificate settings of the top level or of one `local_name` block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Tls {
    cert: Option<Located>,
    key: Option<Located>,
    alt_cert: Option<Located>,
    alt_key: Option<Located>,
}

impl Tls {
    fn apply(&mut self, key: &str, value: &str, origin: &Origin) {
        let slot = match key {
            "ssl_cert" => &mut self.cert,
            "ssl_key" => &mut self.key,
            "ssl_alt_cert" => &mut self.alt_cert,
            "ssl_alt_key" => &mut self.alt_key,
            _ => return,
        };
        *slot = Some((value.to_owned(), Some(origin.clone())));
    }
}

/// One `local_name` block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LocalName {
    names: Vec<String>,
    origin: Origin,
    tls: Tls,
}

/// One `inet_listener` of a login service.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listener {
    service: String,
    name: String,
    port: Option<u16>,
    address: String,
    ssl: bool,
    origin: Option<Origin>,
}

/// What discovery reads from a dovecot config.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Model {
    protocols: Vec<String>,
    listen: String,
    ssl: String,
    tls: Tls,
    local_names: Vec<LocalName>,
    listeners: Vec<Listener>,
}

/// dovecot 2.3's built-in listeners of the login services.
const DEFAULT_LISTENERS: [(&str, &str, u16, bool); 5] = [
    ("imap-login", "imap", 143, false),
    ("imap-login", "imaps", 993, true),
    ("pop3-login", "pop3", 110, false),
    ("pop3-login", "pop3s", 995, true),
    ("submission-login", "submission", 587, false),
];

/// The login services that speak a protocol discovery can probe, with the protocol name
/// that enables them and what they speak before TLS.
const LOGIN_SERVICES: [(&str, &str, Protocol); 3] = [
    ("imap-login", "imap", Protocol::Imap),
    ("pop3-login", "pop3", Protocol::Pop3),
    ("submission-login", "submission", Protocol::Smtp),
];

impl Model {
    /// Reads `nodes`; `defaults` fills in what dovecot assumes when the files do not say
    /// (doveconf's output says everything).
    fn read(nodes: &[Node], defaults: bool) -> Self {
        let mut model = Self {
            protocols: if defaults {
                vec!["imap".to_owned(), "pop3".to_owned(), "lmtp".to_owned()]
            } else {
                Vec::new()
            },
            listen: if defaults {
                "*, ::".to_owned()
            } else {
                String::new()
            },
            ssl: if defaults {
                "yes".to_owned()
            } else {
                String::new()
            },
            tls: Tls::default(),
            local_names: Vec::new(),
            listeners: if defaults {
                DEFAULT_LISTENERS
                    .iter()
                    .map(|&(service, name, port, ssl)| Listener {
                        service: service.to_owned(),
                        name: name.to_owned(),
                        port: Some(port),
                        address: String::new(),
                        ssl,
                        origin: None,
                    })
                    .collect()
            } else {
                Vec::new()
            },
        };
        for node in nodes {
            match node {
                Node::Setting { key, value, origin } => match key.as_str() {
                    "protocols" => {
                        let expanded = value.replace("$protocols", &model.protocols.join(" "));
                        model.protocols = expanded.split_whitespace().map(str::to_owned).collect();
                    }
                    "listen" => model.listen = value.clone(),
                    "ssl" => model.ssl = value.clone(),
                    key => model.tls.apply(key, value, origin),
                },
                Node::Section {
                    kind,
                    name,
                    children,
                    origin,
                } => match kind.as_str() {
                    "local_name" => {
                        let mut tls = Tls::default();
                        for child in children {
                            if let Node::Setting { key, value, origin } = child {
                                tls.apply(key, value, origin);
                            }
                        }
                        model.local_names.push(LocalName {
                            names: name.split_whitespace().map(str::to_lowercase).collect(),
                            origin: origin.clone(),
                            tls,
                        });
                    }
                    "service" => model.read_service(name, children),
                    _ => {}
                },
            }
        }
        model
    }

    fn read_service(&mut self, service: &str, children: &[Node]) {
        for child in children {
            let Node::Section {
                kind,
                name,
                children,
                origin,
            } = child
            else {
                continue;
            };
            if kind != "inet_listener" {
                continue;
            }
            let index = match self
                .listeners
                .iter()
                .position(|l| l.service == service && &l.name == name)
            {
                Some(index) => index,
                None => {
                    self.listeners.push(Listener {
                        service: service.to_owned(),
                        name: name.clone(),
                        port: None,
                        address: String::new(),
                        ssl: false,
                        origin: None,
                    });
                    self.listeners.len() - 1
                }
            };
            let listener = &mut self.listeners[index];
            listener.origin = Some(origin.clone());
            for setting in children {
                if let Node::Setting { key, value, .. } = setting {
                    match key.as_str() {
                        "port" => listener.port = value.parse().ok(),
                        "address" => listener.address = value.clone(),
                        "ssl" => listener.ssl = value == "yes",
                        _ => {}
                    }
                }
            }
        }
    }
}

/// The endpoints `settings` describe; `files` (the files' own reading) supplies keys hidden
/// by doveconf and the lines sites came from.
fn endpoints(settings: &Model, files: &Model, conf: &Path) -> Parsed {
    let mut parsed = Parsed::default();
    if !matches!(settings.ssl.as_str(), "yes" | "required") {
        return parsed;
    }
    let default_origin = files
        .tls
        .cert
        .as_ref()
        .and_then(|(_, origin)| origin.clone())
        .unwrap_or_else(|| Origin::file(conf));
    let Some(default_certs) = cert_refs(
        &settings.tls,
        &files.tls,
        &default_origin,
        &mut parsed.warnings,
    ) else {
        parsed.warnings.push(Warning::new(
            default_origin,
            format!(
                "ssl = {} but ssl_cert is empty; no dovecot listener can be probed",
                settings.ssl
            ),
        ));
        return parsed;
    };
    for listener in &settings.listeners {
        let Some(&(_, protocol_name, starttls)) = LOGIN_SERVICES
            .iter()
            .find(|(service, _, _)| *service == listener.service)
        else {
            continue;
        };
        let enabled = settings.protocols.iter().any(|p| p == protocol_name);
        let Some(port) = listener.port.filter(|&port| port > 0) else {
            continue;
        };
        if !enabled {
            continue;
        }
        let address = if listener.address.trim().is_empty() {
            &settings.listen
        } else {
            &listener.address
        };
        let listens: Vec<Listen> = address
            .split(|ch: char| ch == ',' || ch.is_whitespace())
            .filter(|word| !word.is_empty())
            .map(|word| Listen {
                host: match word {
                    "::" | "[::]" => ListenHost::AnyV6,
                    word => ListenHost::parse(word),
                },
                port,
            })
            .collect();
        if listens.is_empty() {
            continue;
        }
        let (protocol, how) = if listener.ssl {
            (Protocol::Tls, "implicit TLS")
        } else {
            (starttls, "STARTTLS")
        };
        let origin = files
            .listeners
            .iter()
            .find(|l| l.service == listener.service && l.name == listener.name)
            .and_then(|l| l.origin.clone())
            .unwrap_or_else(|| default_origin.clone());
        let what = format!(
            "dovecot {} inet_listener {} (port {port}, {how})",
            listener.service, listener.name
        );
        parsed.endpoints.push(Endpoint {
            source: SourceKind::Dovecot,
            origin: origin.clone(),
            what: what.clone(),
            listens: listens.clone(),
            names: Vec::new(),
            certs: default_certs.clone(),
            chain: None,
            protocol,
            notes: Vec::new(),
        });
        for local in &settings.local_names {
            let file_local = files.local_names.iter().find(|l| l.names == local.names);
            let local_origin = file_local.map_or_else(|| origin.clone(), |l| l.origin.clone());
            let mut tls = local.tls.clone();
            let mut file_tls = file_local.map(|l| l.tls.clone()).unwrap_or_default();
            // A local_name without its own certificate uses the top-level one.
            if tls.cert.is_none() && file_tls.cert.is_none() {
                tls = settings.tls.clone();
                file_tls = files.tls.clone();
            }
            let Some(certs) = cert_refs(&tls, &file_tls, &local_origin, &mut parsed.warnings)
            else {
                continue;
            };
            parsed.endpoints.push(Endpoint {
                source: SourceKind::Dovecot,
                origin: local_origin,
                what: format!("{what}, local_name {}", local.names.join(" ")),
                listens: listens.clone(),
                names: local.names.clone(),
                certs,
                chain: None,
                protocol,
                notes: Vec::new(),
            });
        }
    }
    parsed
}

/// The certificate (and alternative certificate) of `tls`, with keys from `tls` or, when
/// doveconf hid them, from `file_tls`.
fn cert_refs(
    tls: &Tls,
    file_tls: &Tls,
    origin: &Origin,
    warnings: &mut Vec<Warning>,
) -> Option<CertSpec> {
    let mut pairs = Vec::new();
    for (cert, key, file_key) in [
        (&tls.cert, &tls.key, &file_tls.key),
        (&tls.alt_cert, &tls.alt_key, &file_tls.alt_key),
    ] {
        let Some((value, _)) = cert.as_ref().filter(|(value, _)| !value.trim().is_empty()) else {
            continue;
        };
        let Some(path) = value.strip_prefix('<') else {
            warnings.push(Warning::new(
                origin.clone(),
                "ssl_cert holds the certificate itself, not `<FILE`; discovery needs a file"
                    .to_owned(),
            ));
            continue;
        };
        // doveconf prints `ssl_key = # hidden`: the files say where the key is.
        let is_file = |value: &&Located| value.0.starts_with('<');
        let key = key
            .as_ref()
            .filter(is_file)
            .or(file_key.as_ref().filter(is_file))
            .and_then(|(value, _)| value.strip_prefix('<'))
            .map_or(KeyRef::None, |key| KeyRef::Path(PathBuf::from(key.trim())));
        pairs.push(CertRef {
            cert: PathBuf::from(path.trim()),
            key,
        });
    }
    (!pairs.is_empty()).then_some(CertSpec::Pairs(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::files::MemFiles;

    fn certs(endpoint: &Endpoint) -> &[CertRef] {
        match &endpoint.certs {
            CertSpec::Pairs(pairs) => pairs,
            other => panic!("{other:?}"),
        }
    }

    const DEBIAN: &str = "!include_try /usr/share/dovecot/protocols.d/*.protocol
listen = 127.0.0.1, ::1
!include conf.d/*.conf
!include_try local.conf
";

    fn debian_files() -> MemFiles {
        MemFiles::new()
            .with("/etc/dovecot/dovecot.conf", DEBIAN)
            .with(
                "/usr/share/dovecot/protocols.d/imapd.protocol",
                "protocols = $protocols imap\n",
            )
            .with(
                "/usr/share/dovecot/protocols.d/pop3d.protocol",
                "protocols = $protocols pop3\n",
            )
            .with(
                "/etc/dovecot/conf.d/10-master.conf",
                "service imap-login {
  inet_listener imap {
    #port = 143
  }
  inet_listener imaps {
    port = 10993 # implicit TLS
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3s {
    port = 0
  }
}
",
            )
            .with(
                "/etc/dovecot/conf.d/10-ssl.conf",
                "ssl = required
ssl_cert = </etc/dovecot/private/dovecot.pem
ssl_key = </etc/dovecot/private/dovecot.key
local_name mail.example.org {
  ssl_cert = </etc/letsencrypt/live/mail.example.org/fullchain.pem
  ssl_key = </etc/letsencrypt/live/mail.example.org/privkey.pem
}
",
            )
    }

    #[test]
    fn reads_the_files_with_includes_defaults_and_local_names() {
        let mut warnings = Vec::new();
        let nodes = read_files(
            &debian_files(),
            Path::new("/etc/dovecot/dovecot.conf"),
            &mut warnings,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let model = Model::read(&nodes, true);
        assert_eq!(model.protocols, ["imap", "pop3", "lmtp", "imap", "pop3"]);
        let parsed = endpoints(&model, &model, Path::new("/etc/dovecot/dovecot.conf"));
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
        let master = "/etc/dovecot/conf.d/10-master.conf";
        let ssl = "/etc/dovecot/conf.d/10-ssl.conf";
        let mail = vec!["mail.example.org".to_owned()];
        assert_eq!(
            found,
            [
                (format!("{master}:2"), 143, Protocol::Imap, vec![]),
                (format!("{ssl}:4"), 143, Protocol::Imap, mail.clone()),
                (format!("{master}:5"), 10993, Protocol::Tls, vec![]),
                (format!("{ssl}:4"), 10993, Protocol::Tls, mail.clone()),
                (format!("{ssl}:2"), 110, Protocol::Pop3, vec![]),
                (format!("{ssl}:4"), 110, Protocol::Pop3, mail),
            ]
        );
        assert_eq!(
            parsed.endpoints[0].listens,
            [
                Listen {
                    host: ListenHost::Ip("127.0.0.1".parse().unwrap()),
                    port: 143
                },
                Listen {
                    host: ListenHost::Ip("::1".parse().unwrap()),
                    port: 143
                },
            ]
        );
        assert_eq!(
            certs(&parsed.endpoints[1]),
            [CertRef {
                cert: "/etc/letsencrypt/live/mail.example.org/fullchain.pem".into(),
                key: KeyRef::Path("/etc/letsencrypt/live/mail.example.org/privkey.pem".into()),
            }]
        );
    }

    #[test]
    fn doveconf_output_decides_and_the_files_give_keys_and_lines() {
        let mut warnings = Vec::new();
        let file_nodes = read_files(
            &debian_files(),
            Path::new("/etc/dovecot/dovecot.conf"),
            &mut warnings,
        );
        let files_model = Model::read(&file_nodes, true);
        let doveconf = "# 2.3.19.1 (9b53102964): /etc/dovecot/dovecot.conf
listen = *
protocols = imap
service imap-login {
  inet_listener imap {
    address =
    port = 143
    ssl = no
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = 993
    ssl = yes
  }
}
ssl = yes
ssl_alt_cert = </etc/dovecot/private/rsa.pem
ssl_alt_key = # hidden, use -P to show it
ssl_cert = </etc/dovecot/private/dovecot.pem
ssl_key = # hidden, use -P to show it
";
        let nodes = parse(doveconf, Path::new("doveconf"), &mut warnings);
        assert!(warnings.is_empty(), "{warnings:?}");
        let settings = Model::read(&nodes, false);
        let parsed = endpoints(
            &settings,
            &files_model,
            Path::new("/etc/dovecot/dovecot.conf"),
        );
        assert_eq!(parsed.endpoints.len(), 2, "{:?}", parsed.endpoints);
        let imap = &parsed.endpoints[0];
        assert_eq!(
            imap.listens,
            [Listen {
                host: ListenHost::AnyV4,
                port: 143
            }]
        );
        assert_eq!(
            imap.origin.to_string(),
            "/etc/dovecot/conf.d/10-master.conf:2"
        );
        assert_eq!(
            certs(imap),
            [
                CertRef {
                    cert: "/etc/dovecot/private/dovecot.pem".into(),
                    key: KeyRef::Path("/etc/dovecot/private/dovecot.key".into()),
                },
                CertRef {
                    cert: "/etc/dovecot/private/rsa.pem".into(),
                    key: KeyRef::None,
                },
            ]
        );
        let imaps = &parsed.endpoints[1];
        assert_eq!(imaps.protocol, Protocol::Tls);
        assert_eq!(
            imaps.listens,
            [Listen {
                host: ListenHost::Ip("127.0.0.1".parse().unwrap()),
                port: 993
            }]
        );
    }

    #[test]
    fn ssl_off_missing_certificates_and_broken_files_are_handled() {
        let off = Model::read(
            &parse(
                "ssl = no\nssl_cert = </x.pem\n",
                Path::new("/d.conf"),
                &mut Vec::new(),
            ),
            true,
        );
        assert!(
            endpoints(&off, &off, Path::new("/d.conf"))
                .endpoints
                .is_empty()
        );

        let empty = Model::read(&[], true);
        let parsed = endpoints(&empty, &empty, Path::new("/etc/dovecot/dovecot.conf"));
        assert!(parsed.endpoints.is_empty());
        assert!(parsed.warnings[0].to_string().contains("ssl_cert is empty"));

        let files = MemFiles::new()
            .with(
                "/etc/dovecot/dovecot.conf",
                "!include missing.conf\nservice imap-login {\n  inet_listener imap {\n    port = 143\n  }\n",
            );
        let mut warnings = Vec::new();
        read_files(
            &files,
            Path::new("/etc/dovecot/dovecot.conf"),
            &mut warnings,
        );
        let messages: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert!(
            messages[0]
                .starts_with("/etc/dovecot/dovecot.conf:1: !include /etc/dovecot/missing.conf"),
            "{messages:?}"
        );
        assert!(
            messages[1].starts_with("/etc/dovecot/dovecot.conf:2: `service {` is not closed"),
            "{messages:?}"
        );
        assert_eq!(strip_comment("a = \"b # c\" # d"), "a = \"b # c\" ");
        assert_eq!(strip_comment("a = b#c"), "a = b#c");
    }

    #[test]
    fn a_dovecot_conf_including_itself_is_read_once() {
        let files = debian_files().with(
            "/etc/dovecot/dovecot.conf",
            format!(
                "{DEBIAN}!include /etc/dovecot/dovecot.conf\n!include_try /etc/dovecot/*.conf\n"
            ),
        );
        let mut warnings = Vec::new();
        let nodes = read_files(
            &files,
            Path::new("/etc/dovecot/dovecot.conf"),
            &mut warnings,
        );
        let model = Model::read(&nodes, true);
        let parsed = endpoints(&model, &model, Path::new("/etc/dovecot/dovecot.conf"));
        assert_eq!(parsed.endpoints.len(), 6, "{:?}", parsed.endpoints);
        let loops: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            loops,
            [
                "/etc/dovecot/dovecot.conf:5: !include /etc/dovecot/dovecot.conf: already being read (an include loop); not read again",
                "/etc/dovecot/dovecot.conf:6: !include /etc/dovecot/dovecot.conf: already being read (an include loop); not read again",
            ]
        );
    }
}
