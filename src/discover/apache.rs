//! apache2: the `<VirtualHost>`s with `SSLEngine on`, their addresses, `ServerName` and
//! `ServerAlias`, and their `SSLCertificateFile`, `SSLCertificateKeyFile` and
//! `SSLCertificateChainFile`.
//!
//! The files are read as httpd reads them: one directive per line (a trailing `\` continues
//! it), `#` comments on lines of their own, `<Section ...>` ... `</Section>`, `Include` and
//! `IncludeOptional` with globs taken from `ServerRoot`, and `Define`d `${NAME}`s.
//! Conditional sections (`<IfModule>`, `<IfDefine>`, `<IfVersion>`, ...) are read as if their
//! condition held; TLS settings outside any vhost are the defaults vhosts inherit, as
//! mod_ssl merges them. The binary is not run: Debian's `apache2` needs the environment of
//! `apache2ctl` to start at all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::discover::files::{self, ConfigFiles, FsFiles, IncludeStack, Refused};
use crate::discover::{
    CertRef, CertSpec, Endpoint, KeyRef, Listen, ListenHost, Origin, Parsed, SourceKind, Warning,
};
use crate::probe::Protocol;

/// Discovers the TLS vhosts of the apache2 whose main config file is `conf`.
pub fn discover(conf: &Path) -> Parsed {
    let mut parsed = parse(&FsFiles, conf);
    parsed.how = "the files".to_owned();
    parsed
}

/// Parses the config rooted at `conf` from `files`.
pub fn parse(files: &dyn ConfigFiles, conf: &Path) -> Parsed {
    let conf = files::normalize(conf);
    let mut reader = Reader {
        files,
        server_root: conf.parent().unwrap_or(Path::new("/")).to_owned(),
        defines: HashMap::new(),
        warnings: Vec::new(),
        files_read: 0,
        stack: IncludeStack::new(),
    };
    let items = match reader.stack.enter(files, &conf) {
        Ok(text) => reader.parse_file(&conf, &text, 0),
        Err(err) => {
            return Parsed {
                warnings: vec![files::unreadable_config("apache2", &conf, &err)],
                ..Parsed::default()
            };
        }
    };
    let mut parsed = Parsed {
        files_read: reader.files_read,
        ..Parsed::default()
    };
    let root = reader.server_root.clone();
    let global = Settings::read(&items, &root);
    let ports_of_bare_vhosts = https_listen_ports(&items);
    let mut vhosts = Vec::new();
    collect_vhosts(&items, &mut vhosts);
    for vhost in vhosts {
        if let Some(endpoint) = vhost_endpoint(
            vhost,
            &global,
            &root,
            &ports_of_bare_vhosts,
            &mut reader.warnings,
        ) {
            parsed.endpoints.push(endpoint);
        }
    }
    parsed.warnings = reader.warnings;
    parsed.dedupe();
    parsed
}

/// A directive or a section, names lower-cased (httpd's are case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Directive {
        name: String,
        args: Vec<String>,
        origin: Origin,
    },
    Section {
        name: String,
        args: Vec<String>,
        origin: Origin,
        children: Vec<Item>,
    },
}

/// A section whose closing line has not been read yet.
struct OpenSection {
    /// Lower case, for matching.
    name: String,
    /// As written, for messages.
    written: String,
    args: Vec<String>,
    origin: Origin,
    children: Vec<Item>,
}

struct Reader<'a> {
    files: &'a dyn ConfigFiles,
    server_root: PathBuf,
    defines: HashMap<String, String>,
    warnings: Vec<Warning>,
    files_read: usize,
    stack: IncludeStack,
}

/// Sections whose contents apply (or may) to the server they sit in.
const CONDITIONAL: [&str; 7] = [
    "ifmodule",
    "ifdefine",
    "ifversion",
    "iffile",
    "ifdirective",
    "ifsection",
    "else",
];

impl Reader<'_> {
    /// Parses the file at `path` (entered on the include stack) and leaves it.
    fn parse_file(&mut self, path: &Path, text: &str, depth: usize) -> Vec<Item> {
        let items = self.parse_entered(path, text, depth);
        self.stack.leave();
        items
    }

    fn parse_entered(&mut self, path: &Path, text: &str, depth: usize) -> Vec<Item> {
        self.files_read += 1;
        let mut stack: Vec<OpenSection> = Vec::new();
        let mut top: Vec<Item> = Vec::new();
        for (line_no, line) in logical_lines(text) {
            let origin = Origin::at(path, line_no);
            let (line, undefined) = self.substitute(&line);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("</") {
                let written = rest.trim_end_matches('>').trim();
                let name = written.to_lowercase();
                match stack.pop() {
                    Some(open) if open.name == name => {
                        let section = Item::Section {
                            name: open.name,
                            args: open.args,
                            origin: open.origin,
                            children: open.children,
                        };
                        match stack.last_mut() {
                            Some(parent) => parent.children.push(section),
                            None => top.push(section),
                        }
                    }
                    Some(open) => {
                        self.warnings.push(Warning::new(
                            origin,
                            format!(
                                "`</{written}>` closes `<{}>` of line {}; the rest of the file is not used",
                                open.written,
                                open.origin.line.unwrap_or(0)
                            ),
                        ));
                        return top;
                    }
                    None => {
                        self.warnings.push(Warning::new(
                            origin,
                            format!("`</{written}>` without an opening `<{written}>`; the rest of the file is not used"),
                        ));
                        return top;
                    }
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix('<') {
                let Some(inner) = rest.strip_suffix('>') else {
                    self.warnings.push(Warning::new(
                        origin,
                        format!("`{line}`: a section line must end with `>`; the rest of the file is not used"),
                    ));
                    return top;
                };
                let mut words = split_args(inner);
                if words.is_empty() {
                    continue;
                }
                let written = words.remove(0);
                stack.push(OpenSection {
                    name: written.to_lowercase(),
                    written,
                    args: words,
                    origin,
                    children: Vec::new(),
                });
                continue;
            }
            let mut words = split_args(line);
            let name = words.remove(0).to_lowercase();
            // Only where a path discovery uses is at stake: Debian's own config is full of
            // `${APACHE_LOG_DIR}`, set by envvars, which is not read.
            if name.starts_with("sslcertificate") || name.starts_with("include") {
                for variable in &undefined {
                    self.warnings.push(Warning::new(
                        origin.clone(),
                        format!("{}: `${{{variable}}}` is not defined by a `Define`; the path is used as written", words.first().map_or("", String::as_str)),
                    ));
                }
            }
            let items = match name.as_str() {
                "include" | "includeoptional" => self.include(&name, &words, &origin, depth),
                _ => {
                    match name.as_str() {
                        "serverroot" => {
                            if let Some(root) = words.first() {
                                self.server_root = files::normalize(Path::new(root));
                            }
                        }
                        "define" => {
                            if let Some(key) = words.first() {
                                let value = words.get(1).cloned().unwrap_or_default();
                                self.defines.insert(key.clone(), value);
                            }
                        }
                        "undefine" => {
                            if let Some(key) = words.first() {
                                self.defines.remove(key);
                            }
                        }
                        _ => {}
                    }
                    vec![Item::Directive {
                        name,
                        args: words,
                        origin,
                    }]
                }
            };
            match stack.last_mut() {
                Some(parent) => parent.children.extend(items),
                None => top.extend(items),
            }
        }
        // Unclosed sections are dropped whole: half a vhost could name the wrong file.
        if let Some(open) = stack.first() {
            self.warnings.push(Warning::new(
                open.origin.clone(),
                format!(
                    "`<{}>` is not closed before the end of the file; not used",
                    open.written
                ),
            ));
        }
        top
    }

    fn include(&mut self, name: &str, args: &[String], origin: &Origin, depth: usize) -> Vec<Item> {
        let Some(pattern) = args.first() else {
            return Vec::new();
        };
        if depth >= files::MAX_INCLUDE_DEPTH {
            self.warnings
                .push(files::too_deep("Include", pattern, origin.clone()));
            return Vec::new();
        }
        let optional = name == "includeoptional";
        let path = files::resolve(&self.server_root, Path::new(pattern));
        let mut matched = self.files.glob(&path);
        // A directory includes every file in it (and below), sorted.
        if matched.len() == 1
            && let Some(entries) = self.files.list_dir(&matched[0])
        {
            matched = entries;
        }
        if matched.is_empty() && !optional {
            let why = if files::has_wildcard(pattern) {
                "no file matches".to_owned()
            } else {
                files::why_missing(self.files, &path)
            };
            self.warnings.push(Warning::new(
                origin.clone(),
                format!("Include {}: {why}", path.display()),
            ));
        }
        let mut items = Vec::new();
        for file in matched {
            if let Some(entries) = self.files.list_dir(&file) {
                for entry in entries {
                    items.extend(self.include_file(&entry, origin, depth));
                }
                continue;
            }
            items.extend(self.include_file(&file, origin, depth));
        }
        items
    }

    fn include_file(&mut self, file: &Path, origin: &Origin, depth: usize) -> Vec<Item> {
        match self.stack.enter(self.files, file) {
            Ok(text) => self.parse_file(file, &text, depth + 1),
            Err(Refused::BudgetAgain) => Vec::new(),
            Err(err) => {
                self.warnings.push(Warning::new(
                    origin.clone(),
                    format!("Include {}: {err}", file.display()),
                ));
                Vec::new()
            }
        }
    }

    /// `${NAME}` replaced by what `Define` gave it; unknown names stay as they are.
    /// `line` with `${NAME}` replaced by its `Define`, and the names that have none (kept
    /// as written).
    fn substitute(&self, line: &str) -> (String, Vec<String>) {
        let mut undefined = Vec::new();
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find('}') {
                Some(end) => {
                    let name = &after[..end];
                    match self.defines.get(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            undefined.push(name.to_owned());
                            out.push_str(&rest[start..start + 3 + end]);
                        }
                    }
                    rest = &after[end + 1..];
                }
                None => {
                    out.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        (out, undefined)
    }
}

/// The logical lines of `text` (backslash continuations joined), with their first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let raw = raw.trim_end_matches('\r');
        let (start, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        match raw.strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head);
                joined.push(' ');
                pending = Some((start, joined));
            }
            None => {
                joined.push_str(raw);
                lines.push((start, joined));
            }
        }
    }
    if let Some(last) = pending {
        lines.push(last);
    }
    lines
}

/// Splits a directive's arguments as httpd's `ap_getword_conf` does: white space separates,
/// `"..."` and `'...'` quote, a backslash escapes the quote inside them.
fn split_args(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&ch) = chars.peek() {
        if ch.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if ch == '"' || ch == '\'' {
            let quote = ch;
            chars.next();
            while let Some(next) = chars.next() {
                match next {
                    '\\' if chars.peek() == Some(&quote) => {
                        chars.next();
                        word.push(quote);
                    }
                    next if next == quote => break,
                    next => word.push(next),
                }
            }
        } else {
            while let Some(&next) = chars.peek() {
                if next.is_whitespace() {
                    break;
                }
                word.push(next);
                chars.next();
            }
        }
        words.push(word);
    }
    words
}

/// TLS settings of the main server (inherited by vhosts) or of one vhost.
#[derive(Debug, Default, Clone)]
struct Settings {
    engine: Option<bool>,
    certs: Vec<PathBuf>,
    keys: Vec<PathBuf>,
    chain: Option<PathBuf>,
    server_name: Option<String>,
    aliases: Vec<String>,
}

impl Settings {
    /// Reads the settings among `items`, looking into conditional sections but not into
    /// vhosts or other sections.
    fn read(items: &[Item], root: &Path) -> Self {
        let mut settings = Self::default();
        settings.apply(items, root);
        settings
    }

    fn apply(&mut self, items: &[Item], root: &Path) {
        for item in items {
            match item {
                Item::Directive { name, args, .. } => {
                    let first = args.first().cloned();
                    let path = || first.as_ref().map(|p| files::resolve(root, Path::new(p)));
                    match name.as_str() {
                        "sslengine" => {
                            self.engine = first
                                .map(|v| matches!(v.to_lowercase().as_str(), "on" | "optional"));
                        }
                        "sslcertificatefile" => self.certs.extend(path()),
                        "sslcertificatekeyfile" => self.keys.extend(path()),
                        "sslcertificatechainfile" => self.chain = path(),
                        "servername" => self.server_name = first.map(|n| bare_name(&n)),
                        "serveralias" => self.aliases.extend(args.iter().cloned()),
                        _ => {}
                    }
                }
                Item::Section { name, children, .. } if CONDITIONAL.contains(&name.as_str()) => {
                    self.apply(children, root);
                }
                Item::Section { .. } => {}
            }
        }
    }
}

/// `https://www.example.org:443` → `www.example.org`.
fn bare_name(name: &str) -> String {
    let name = name.split_once("://").map_or(name, |(_, rest)| rest);
    let name = match name.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => name,
    };
    name.to_owned()
}

/// Every `<VirtualHost>`, including those inside conditional sections.
fn collect_vhosts<'a>(items: &'a [Item], into: &mut Vec<&'a Item>) {
    for item in items {
        if let Item::Section { name, children, .. } = item {
            if name == "virtualhost" {
                into.push(item);
            } else if CONDITIONAL.contains(&name.as_str()) {
                collect_vhosts(children, into);
            }
        }
    }
}

/// The ports of `Listen` lines that say `https`, or are 443: where a vhost without a port
/// in its address serves TLS.
fn https_listen_ports(items: &[Item]) -> Vec<u16> {
    let mut ports = Vec::new();
    visit_directives(items, &mut |name, args| {
        if name != "listen" {
            return;
        }
        let Some(address) = args.first() else { return };
        let port = address
            .rsplit_once(':')
            .map_or(address.as_str(), |(_, port)| port)
            .parse::<u16>();
        if let Ok(port) = port
            && (port == 443 || args.get(1).is_some_and(|p| p.eq_ignore_ascii_case("https")))
            && !ports.contains(&port)
        {
            ports.push(port);
        }
    });
    ports
}

fn visit_directives(items: &[Item], visit: &mut dyn FnMut(&str, &[String])) {
    for item in items {
        match item {
            Item::Directive { name, args, .. } => visit(name, args),
            Item::Section { name, children, .. } if CONDITIONAL.contains(&name.as_str()) => {
                visit_directives(children, visit);
            }
            Item::Section { .. } => {}
        }
    }
}

fn vhost_endpoint(
    vhost: &Item,
    global: &Settings,
    root: &Path,
    bare_ports: &[u16],
    warnings: &mut Vec<Warning>,
) -> Option<Endpoint> {
    let Item::Section {
        args,
        origin,
        children,
        ..
    } = vhost
    else {
        return None;
    };
    let own = Settings::read(children, root);
    if !own.engine.or(global.engine).unwrap_or(false) {
        return None;
    }
    let header = format!("<VirtualHost {}>", args.join(" "));
    let (certs, keys) = if own.certs.is_empty() {
        (&global.certs, &global.keys)
    } else {
        (&own.certs, &own.keys)
    };
    if certs.is_empty() {
        warnings.push(Warning::new(
            origin.clone(),
            format!("{header} has SSLEngine on but no SSLCertificateFile; not probed"),
        ));
        return None;
    }
    let mut listens = Vec::new();
    for address in args {
        match parse_vhost_address(address) {
            Ok((host, Some(port))) => listens.push(Listen { host, port }),
            Ok((host, None)) if !bare_ports.is_empty() => {
                listens.extend(bare_ports.iter().map(|&port| Listen {
                    host: host.clone(),
                    port,
                }));
            }
            Ok((_, None)) => warnings.push(Warning::new(
                origin.clone(),
                format!("{header}: `{address}` has no port, and no `Listen ... https` says which; not probed"),
            )),
            Err(message) => warnings.push(Warning::new(origin.clone(), message)),
        }
    }
    if listens.is_empty() {
        return None;
    }
    let pairs = certs
        .iter()
        .enumerate()
        .map(|(index, cert)| CertRef {
            cert: cert.clone(),
            key: keys
                .get(index)
                .map_or(KeyRef::None, |key| KeyRef::Path(key.clone())),
        })
        .collect();
    let mut names: Vec<String> = own
        .server_name
        .clone()
        .or_else(|| global.server_name.clone())
        .into_iter()
        .collect();
    names.extend(own.aliases.iter().cloned());
    Some(Endpoint {
        source: SourceKind::Apache,
        origin: origin.clone(),
        what: format!("apache2 {header}"),
        listens,
        names,
        certs: CertSpec::Pairs(pairs),
        chain: own.chain.clone().or_else(|| global.chain.clone()),
        protocol: Protocol::Tls,
        notes: Vec::new(),
    })
}

/// `*:443`, `_default_:443`, `192.0.2.1:443`, `[::1]:443`, `www.example.org:443`, `*`.
fn parse_vhost_address(address: &str) -> Result<(ListenHost, Option<u16>), String> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, after)) => (ip, after.strip_prefix(':')),
            None => {
                return Err(format!(
                    "<VirtualHost {address}>: no `]` after the IPv6 address"
                ));
            }
        }
    } else {
        match address.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        }
    };
    let port = match port {
        None | Some("*") => None,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => return Err(format!("<VirtualHost {address}>: `{port}` is not a port")),
        },
    };
    let host = match host {
        "_default_" => ListenHost::AnyV4,
        host => ListenHost::parse(host),
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::files::MemFiles;
    use std::net::IpAddr;

    const MAIN: &str = "# Debian's layout
ServerRoot \"/etc/apache2\"
Define SSLDIR /etc/ssl/private
Include ports.conf
IncludeOptional mods-enabled/*.load
IncludeOptional sites-enabled/*.conf
";

    fn pairs(endpoint: &Endpoint) -> &[CertRef] {
        match &endpoint.certs {
            CertSpec::Pairs(pairs) => pairs,
            other => panic!("expected pairs, got {other:?}"),
        }
    }

    #[test]
    fn reads_vhosts_through_includes_relative_to_server_root() {
        let files = MemFiles::new()
            .with("/etc/apache2/apache2.conf", MAIN)
            .with(
                "/etc/apache2/ports.conf",
                "Listen 80\n<IfModule ssl_module>\n    Listen 443\n</IfModule>\n",
            )
            .with(
                "/etc/apache2/sites-enabled/blog.conf",
                "<VirtualHost *:80>
    ServerName blog.example.org
</VirtualHost>
<IfModule mod_ssl.c>
<VirtualHost *:443 [::1]:443>
    ServerName https://blog.example.org:443
    ServerAlias www.blog.example.org \\
                *.blog.example.org
    SSLEngine on
    SSLCertificateFile      /etc/letsencrypt/live/blog.example.org/cert.pem
    SSLCertificateKeyFile   \"${SSLDIR}/blog.key\"
    SSLCertificateChainFile /etc/letsencrypt/live/blog.example.org/chain.pem
    <Directory /var/www>
        SSLCertificateFile /not/here.pem
    </Directory>
</VirtualHost>
</IfModule>
",
            );
        let parsed = parse(&files, Path::new("/etc/apache2/apache2.conf"));
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        assert_eq!(parsed.endpoints.len(), 1);
        let blog = &parsed.endpoints[0];
        assert_eq!(
            blog.origin,
            Origin::at(Path::new("/etc/apache2/sites-enabled/blog.conf"), 5)
        );
        assert_eq!(
            blog.names,
            [
                "blog.example.org",
                "www.blog.example.org",
                "*.blog.example.org"
            ]
        );
        assert_eq!(
            blog.listens,
            [
                Listen {
                    host: ListenHost::AnyV4,
                    port: 443
                },
                Listen {
                    host: ListenHost::Ip("::1".parse::<IpAddr>().unwrap()),
                    port: 443
                }
            ]
        );
        assert_eq!(
            pairs(blog),
            [CertRef {
                cert: "/etc/letsencrypt/live/blog.example.org/cert.pem".into(),
                key: KeyRef::Path("/etc/ssl/private/blog.key".into()),
            }]
        );
        assert_eq!(
            blog.chain,
            Some(PathBuf::from(
                "/etc/letsencrypt/live/blog.example.org/chain.pem"
            ))
        );
    }

    #[test]
    fn vhosts_inherit_the_main_servers_tls_settings_and_relative_paths_use_server_root() {
        let files = MemFiles::new().with(
            "/srv/httpd/httpd.conf",
            "ServerRoot /srv/httpd
ServerName main.example.org
SSLCertificateFile ssl/main.pem
SSLCertificateFile ssl/main-rsa.pem
Listen 8443 https
<VirtualHost 192.0.2.10:8443>
    SSLEngine on
</VirtualHost>
<VirtualHost *>
    SSLEngine optional
    ServerName any.example.org
</VirtualHost>
<VirtualHost *:444>
    SSLEngine off
</VirtualHost>
",
        );
        let parsed = parse(&files, Path::new("/srv/httpd/httpd.conf"));
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        assert_eq!(parsed.endpoints.len(), 2);
        let first = &parsed.endpoints[0];
        assert_eq!(first.names, ["main.example.org"]);
        assert_eq!(pairs(first).len(), 2);
        assert_eq!(
            pairs(first)[1].cert,
            PathBuf::from("/srv/httpd/ssl/main-rsa.pem")
        );
        assert_eq!(pairs(first)[0].key, KeyRef::None);
        assert_eq!(
            first.listens[0].host,
            ListenHost::Ip("192.0.2.10".parse().unwrap())
        );
        let bare = &parsed.endpoints[1];
        assert_eq!(bare.listens[0].port, 8443);
        assert_eq!(bare.names, ["any.example.org"]);
    }

    #[test]
    fn broken_sections_and_missing_includes_are_warnings() {
        let files = MemFiles::new()
            .with(
                "/etc/apache2/apache2.conf",
                "Include missing.conf\nInclude conf.d/*.conf\nIncludeOptional optional/*.conf\nInclude sites/\n",
            )
            .with(
                "/etc/apache2/sites/a.conf",
                "<VirtualHost *:443>\n  SSLEngine on\n  SSLCertificateFile /a.pem\n",
            )
            .with(
                "/etc/apache2/sites/b.conf",
                "<VirtualHost *:443>\n  SSLEngine on\n  SSLCertificateFile /b.pem\n</Location>\n",
            )
            .with(
                "/etc/apache2/sites/c.conf",
                "<VirtualHost *:https>\n  SSLEngine on\n  SSLCertificateFile /c.pem\n</VirtualHost>\n<VirtualHost *:443>\n  SSLEngine on\n</VirtualHost>\n<VirtualHost *:443>\n  SSLEngine on\n  SSLCertificateFile /d.pem\n</VirtualHost>\n",
            );
        let parsed = parse(&files, Path::new("/etc/apache2/apache2.conf"));
        let messages: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
        let expected = [
            "/etc/apache2/apache2.conf:1: Include /etc/apache2/missing.conf: ",
            "/etc/apache2/apache2.conf:2: Include /etc/apache2/conf.d/*.conf: no file matches",
            "/etc/apache2/sites/a.conf:1: `<VirtualHost>` is not closed",
            "/etc/apache2/sites/b.conf:4: `</Location>` closes `<VirtualHost>` of line 1",
            "/etc/apache2/sites/c.conf:1: <VirtualHost *:https>: `https` is not a port",
            "/etc/apache2/sites/c.conf:5: <VirtualHost *:443> has SSLEngine on but no SSLCertificateFile",
        ];
        for prefix in expected {
            assert!(
                messages.iter().any(|m| m.starts_with(prefix)),
                "{prefix} not in {messages:#?}"
            );
        }
        assert_eq!(messages.len(), expected.len(), "{messages:#?}");
        assert_eq!(parsed.endpoints.len(), 1);
        assert_eq!(pairs(&parsed.endpoints[0])[0].cert, PathBuf::from("/d.pem"));
    }

    #[test]
    fn splits_quoted_arguments() {
        assert_eq!(
            split_args(r#"SSLCertificateFile "/etc/ssl/my cert.pem" 'x\'y' z"#),
            ["SSLCertificateFile", "/etc/ssl/my cert.pem", "x'y", "z"]
        );
        assert_eq!(bare_name("https://a.example:8443"), "a.example");
        assert_eq!(bare_name("a.example"), "a.example");
    }

    #[test]
    fn vhost_files_including_their_own_glob_give_one_endpoint_each() {
        let vhost = |name: &str| {
            format!(
                "<VirtualHost *:443>\n    ServerName {name}\n    SSLEngine on\n    SSLCertificateFile /x/{name}.pem\n</VirtualHost>\nInclude sites/*.conf\n"
            )
        };
        let files = MemFiles::new()
            .with(
                "/etc/apache2/apache2.conf",
                "IncludeOptional sites/*.conf\n",
            )
            .with("/etc/apache2/sites/a.conf", vhost("a"))
            .with("/etc/apache2/sites/b.conf", vhost("b"))
            .with("/etc/apache2/sites/c.conf", vhost("c"));
        let parsed = parse(&files, Path::new("/etc/apache2/apache2.conf"));
        let mut names: Vec<&str> = parsed
            .endpoints
            .iter()
            .map(|e| e.names[0].as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(
            parsed.warnings.iter().any(|w| w.to_string()
                == "/etc/apache2/sites/a.conf:6: Include /etc/apache2/sites/a.conf: already being read (an include loop); not read again"),
            "{:?}",
            parsed.warnings
        );
        let unique: std::collections::HashSet<&Warning> = parsed.warnings.iter().collect();
        assert_eq!(unique.len(), parsed.warnings.len());
    }

    #[test]
    fn an_undefined_variable_in_a_certificate_path_is_warned_about() {
        let files = MemFiles::new().with(
            "/etc/apache2/apache2.conf",
            "ErrorLog ${APACHE_LOG_DIR}/error.log\n<VirtualHost *:443>\n    SSLEngine on\n    SSLCertificateFile ${UNDEFINED_VAR}/b.crt\n</VirtualHost>\n",
        );
        let parsed = parse(&files, Path::new("/etc/apache2/apache2.conf"));
        let messages: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "/etc/apache2/apache2.conf:4: ${UNDEFINED_VAR}/b.crt: `${UNDEFINED_VAR}` is not defined by a `Define`; the path is used as written"
            ]
        );
    }
}
