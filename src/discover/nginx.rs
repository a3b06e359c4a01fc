//! nginx: the TLS `server` blocks of `http {}` and `stream {}`, with their `listen`
//! addresses, `server_name`s, `ssl_certificate` and `ssl_certificate_key` files.
//!
//! nginx itself is asked first: `nginx -T` prints every file it reads, includes expanded, in
//! the order it reads them. When nginx is not installed, or `-T` fails (a certificate it
//! cannot load is enough), the files are read here, following `include` with its globs.
//! Either way the same tokenizer and parser ([`parse`]) read the text, as nginx's own
//! `ngx_conf_read_token` does: words, `"..."` and `'...'` with backslash escapes, `#`
//! comments, `;`, `{` and `}`.

use std::ffi::OsStr;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::discover::files::{self, ConfigFiles, FsFiles, IncludeStack, MemFiles, Refused};
use crate::discover::tool::{self, ToolError};
use crate::discover::{
    CertRef, CertSpec, Endpoint, KeyRef, Listen, ListenHost, Origin, Parsed, SourceKind, Warning,
};
use crate::probe::Protocol;

/// Discovers the TLS servers of the nginx whose main config file is `conf`.
pub fn discover(conf: &Path, prefix: Option<&Path>) -> Parsed {
    let mut args: Vec<&OsStr> = vec![OsStr::new("-T"), OsStr::new("-q")];
    if let Some(prefix) = prefix {
        args.extend([OsStr::new("-p"), prefix.as_os_str()]);
    }
    // `-e stderr`: the startup error log goes to the pipe, not to the packaged log file.
    args.extend([
        OsStr::new("-c"),
        conf.as_os_str(),
        OsStr::new("-e"),
        OsStr::new("stderr"),
    ]);
    match tool::run("nginx", &args) {
        Ok(dump) => {
            let files = split_dump(&dump);
            if files.is_empty() {
                let mut parsed = parse(&FsFiles, conf);
                parsed.how = "the files (nginx -T printed no file)".to_owned();
                return parsed;
            }
            let mut parsed = parse(&files, conf);
            parsed.how = "nginx -T".to_owned();
            parsed
        }
        Err(ToolError::NotInstalled) => {
            let mut parsed = parse(&FsFiles, conf);
            parsed.how = "the files (nginx is not installed)".to_owned();
            parsed
        }
        Err(ToolError::Failed(message)) => {
            let mut parsed = parse(&FsFiles, conf);
            parsed.warnings.insert(
                0,
                Warning::new(
                    Origin::file(conf),
                    format!("nginx -T failed, so the files were read instead: {message}"),
                ),
            );
            parsed.how = "the files (nginx -T failed)".to_owned();
            parsed
        }
    }
}

/// The files in `nginx -T` output, each under its `# configuration file PATH:` header.
///
/// A file name holding a newline spreads its header over several lines: up to
/// [`MAX_HEADER_LINES`] lines are joined until one ends with `:`.
pub fn split_dump(dump: &str) -> MemFiles {
    let mut files = MemFiles::new();
    let mut current: Option<(PathBuf, String)> = None;
    let lines: Vec<&str> = dump.split_inclusive('\n').collect();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index];
        index += 1;
        if let Some((path, used)) = dump_header(&lines[index - 1..]) {
            if let Some((path, text)) = current.take() {
                files.insert(path, text);
            }
            current = Some((PathBuf::from(path), String::new()));
            index += used - 1;
        } else if let Some((_, text)) = &mut current {
            text.push_str(line);
        }
    }
    if let Some((path, text)) = current {
        files.insert(path, text);
    }
    files
}

/// The most lines one `# configuration file` header of `nginx -T` may span.
const MAX_HEADER_LINES: usize = 8;

/// The file name of the header starting at `lines[0]`, and how many lines it spans.
fn dump_header(lines: &[&str]) -> Option<(String, usize)> {
    let rest = lines.first()?.strip_prefix("# configuration file ")?;
    let mut path = String::new();
    for (used, line) in std::iter::once(rest)
        .chain(lines[1..].iter().copied())
        .take(MAX_HEADER_LINES)
        .enumerate()
    {
        let bare = line.trim_end_matches(['\n', '\r']);
        if let Some(name) = bare.strip_suffix(':') {
            path.push_str(name);
            return Some((path, used + 1));
        }
        path.push_str(line);
    }
    None
}

/// Parses the config rooted at `conf` from `files`: every TLS server block becomes an
/// [`Endpoint`]; what cannot be read or parsed becomes a [`Warning`].
pub fn parse(files: &dyn ConfigFiles, conf: &Path) -> Parsed {
    let conf = files::normalize(conf);
    let conf_dir = conf.parent().unwrap_or(Path::new("/")).to_owned();
    let mut reader = Reader {
        files,
        conf_dir: &conf_dir,
        warnings: Vec::new(),
        read: Vec::new(),
        stack: IncludeStack::new(),
    };
    let directives = match reader.stack.enter(files, &conf) {
        Ok(text) => reader.parse_file(&conf, &text, 0),
        Err(err) => {
            return Parsed {
                warnings: vec![files::unreadable_config("nginx", &conf, &err)],
                ..Parsed::default()
            };
        }
    };
    let mut parsed = Parsed {
        warnings: std::mem::take(&mut reader.warnings),
        files_read: reader.read.len(),
        ..Parsed::default()
    };
    for directive in &directives {
        match (directive.name.as_str(), &directive.block) {
            ("http", Some(block)) => extract_servers(block, "http", &conf_dir, &mut parsed),
            ("stream", Some(block)) => extract_servers(block, "stream", &conf_dir, &mut parsed),
            _ => {}
        }
    }
    parsed.dedupe();
    parsed
}

/// One directive, with its block when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Directive {
    name: String,
    args: Vec<String>,
    origin: Origin,
    block: Option<Vec<Directive>>,
}

/// Reads files and splices includes, collecting warnings.
struct Reader<'a> {
    files: &'a dyn ConfigFiles,
    conf_dir: &'a Path,
    warnings: Vec<Warning>,
    read: Vec<PathBuf>,
    stack: IncludeStack,
}

impl Reader<'_> {
    fn parse_file(&mut self, path: &Path, text: &str, depth: usize) -> Vec<Directive> {
        self.read.push(path.to_owned());
        let tokens = match tokenize(text) {
            Ok(tokens) => tokens,
            Err((line, message)) => {
                self.warnings
                    .push(Warning::new(Origin::at(path, line), message));
                self.stack.leave();
                return Vec::new();
            }
        };
        let mut position = 0;
        let directives = match parse_block(&tokens, &mut position, path, false) {
            Ok(directives) => directives,
            Err((line, message, partial)) => {
                self.warnings
                    .push(Warning::new(Origin::at(path, line), message));
                partial
            }
        };
        let expanded = self.expand_includes(directives, depth);
        self.stack.leave();
        expanded
    }

    fn expand_includes(&mut self, directives: Vec<Directive>, depth: usize) -> Vec<Directive> {
        let mut out = Vec::with_capacity(directives.len());
        for mut directive in directives {
            if directive.name == "include" && directive.block.is_none() {
                out.extend(self.include(&directive, depth));
                continue;
            }
            if let Some(block) = directive.block.take() {
                directive.block = Some(self.expand_includes(block, depth));
            }
            out.push(directive);
        }
        out
    }

    fn include(&mut self, directive: &Directive, depth: usize) -> Vec<Directive> {
        let Some(pattern) = directive.args.first() else {
            self.warnings.push(Warning::new(
                directive.origin.clone(),
                "`include` without a file".to_owned(),
            ));
            return Vec::new();
        };
        if depth >= files::MAX_INCLUDE_DEPTH {
            self.warnings.push(files::too_deep(
                "include",
                pattern,
                directive.origin.clone(),
            ));
            return Vec::new();
        }
        let pattern_path = files::resolve(self.conf_dir, Path::new(pattern));
        let matched = self.files.glob(&pattern_path);
        if matched.is_empty() && !files::has_wildcard(pattern) {
            let why = files::why_missing(self.files, &pattern_path);
            self.warnings.push(Warning::new(
                directive.origin.clone(),
                format!("include {}: {why}", pattern_path.display()),
            ));
        }
        let mut out = Vec::new();
        for path in matched {
            match self.stack.enter(self.files, &path) {
                Ok(text) => out.extend(self.parse_file(&path, &text, depth + 1)),
                Err(Refused::BudgetAgain) => {}
                Err(err) => self.warnings.push(Warning::new(
                    directive.origin.clone(),
                    format!("include {}: {err}", path.display()),
                )),
            }
        }
        out
    }
}

/// A token of nginx's config syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String, usize),
    Semicolon(usize),
    Open(usize),
    Close(usize),
}

/// Splits config text into tokens with their 1-based lines.
///
/// # Errors
///
/// The line and a message for an unterminated quote.
fn tokenize(text: &str) -> Result<Vec<Token>, (usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut index = 0;
    while index < chars.len() {
        let ch = chars[index];
        match ch {
            '\n' => {
                line += 1;
                index += 1;
            }
            ch if ch.is_whitespace() => index += 1,
            '#' => {
                while index < chars.len() && chars[index] != '\n' {
                    index += 1;
                }
            }
            ';' => {
                tokens.push(Token::Semicolon(line));
                index += 1;
            }
            '{' => {
                tokens.push(Token::Open(line));
                index += 1;
            }
            '}' => {
                tokens.push(Token::Close(line));
                index += 1;
            }
            '"' | '\'' => {
                let start_line = line;
                let quote = ch;
                let mut word = String::new();
                index += 1;
                loop {
                    let Some(&next) = chars.get(index) else {
                        return Err((start_line, format!("unterminated {quote}...{quote} string")));
                    };
                    index += 1;
                    match next {
                        '\\' if index < chars.len() => {
                            let escaped = chars[index];
                            index += 1;
                            match escaped {
                                'n' => word.push('\n'),
                                't' => word.push('\t'),
                                'r' => word.push('\r'),
                                '"' | '\'' | '\\' => word.push(escaped),
                                other => {
                                    word.push('\\');
                                    word.push(other);
                                }
                            }
                            if escaped == '\n' {
                                line += 1;
                            }
                        }
                        next if next == quote => break,
                        next => {
                            if next == '\n' {
                                line += 1;
                            }
                            word.push(next);
                        }
                    }
                }
                tokens.push(Token::Word(word, start_line));
            }
            _ => {
                let start_line = line;
                let mut word = String::new();
                while let Some(&next) = chars.get(index) {
                    if next.is_whitespace() || next == ';' {
                        break;
                    }
                    // `{` ends a word, except right after `$` (`${name}`).
                    if next == '{' && !word.ends_with('$') {
                        break;
                    }
                    if next == '\\' && index + 1 < chars.len() {
                        word.push(chars[index + 1]);
                        index += 2;
                        continue;
                    }
                    word.push(next);
                    index += 1;
                }
                tokens.push(Token::Word(word, start_line));
            }
        }
    }
    Ok(tokens)
}

type BlockError = (usize, String, Vec<Directive>);

/// Parses directives from `tokens[*position..]` until a `}` (when `nested`) or the end.
fn parse_block(
    tokens: &[Token],
    position: &mut usize,
    file: &Path,
    nested: bool,
) -> Result<Vec<Directive>, BlockError> {
    let mut directives = Vec::new();
    let mut words: Vec<(String, usize)> = Vec::new();
    while let Some(token) = tokens.get(*position) {
        *position += 1;
        match token {
            Token::Word(word, line) => words.push((word.clone(), *line)),
            Token::Semicolon(line) => {
                let Some(((name, name_line), args)) = split_words(&mut words) else {
                    return Err((*line, "unexpected `;`".to_owned(), directives));
                };
                directives.push(Directive {
                    name,
                    args,
                    origin: Origin::at(file, name_line),
                    block: None,
                });
            }
            Token::Open(line) => {
                let Some(((name, name_line), args)) = split_words(&mut words) else {
                    return Err((*line, "unexpected `{`".to_owned(), directives));
                };
                match parse_block(tokens, position, file, true) {
                    Ok(block) => directives.push(Directive {
                        name,
                        args,
                        origin: Origin::at(file, name_line),
                        block: Some(block),
                    }),
                    // A block that does not parse is dropped whole: half a server block
                    // could name the wrong certificate.
                    Err((line, message, _partial)) => return Err((line, message, directives)),
                }
            }
            Token::Close(line) => {
                if let Some((word, word_line)) = words.first() {
                    return Err((
                        *word_line,
                        format!("`{word}` has no `;` before the `}}` on line {line}"),
                        directives,
                    ));
                }
                if nested {
                    return Ok(directives);
                }
                return Err((*line, "unexpected `}`".to_owned(), directives));
            }
        }
    }
    let end_line = tokens.last().map_or(1, token_line);
    if let Some((word, line)) = words.first() {
        return Err((
            *line,
            format!("`{word}` has no `;` at the end of the file"),
            directives,
        ));
    }
    if nested {
        return Err((
            end_line,
            "unexpected end of file, expecting `}`".to_owned(),
            directives,
        ));
    }
    Ok(directives)
}

fn token_line(token: &Token) -> usize {
    match token {
        Token::Word(_, line) | Token::Semicolon(line) | Token::Open(line) | Token::Close(line) => {
            *line
        }
    }
}

type NameAndArgs = ((String, usize), Vec<String>);

fn split_words(words: &mut Vec<(String, usize)>) -> Option<NameAndArgs> {
    if words.is_empty() {
        return None;
    }
    let mut all = std::mem::take(words).into_iter();
    let first = all.next()?;
    Some((first, all.map(|(word, _)| word).collect()))
}

/// TLS settings a `server` inherits from its `http {}` or `stream {}` block.
#[derive(Debug, Default)]
struct Inherited {
    certs: Vec<String>,
    keys: Vec<String>,
    ssl_on: bool,
}

impl Inherited {
    fn read(block: &[Directive]) -> Self {
        let mut inherited = Self::default();
        for directive in block {
            apply_tls_directive(directive, &mut inherited);
        }
        inherited
    }
}

fn apply_tls_directive(directive: &Directive, into: &mut Inherited) {
    let first = directive.args.first().cloned();
    match (directive.name.as_str(), first) {
        ("ssl_certificate", Some(path)) => into.certs.push(path),
        ("ssl_certificate_key", Some(path)) => into.keys.push(path),
        ("ssl", Some(value)) => into.ssl_on = value == "on",
        _ => {}
    }
}

fn extract_servers(block: &[Directive], context: &str, conf_dir: &Path, parsed: &mut Parsed) {
    let inherited = Inherited::read(block);
    for server in block {
        if server.name != "server" {
            continue;
        }
        let Some(body) = &server.block else { continue };
        if let Some(endpoint) = server_endpoint(server, body, &inherited, context, conf_dir, parsed)
        {
            parsed.endpoints.push(endpoint);
        }
    }
}

fn server_endpoint(
    server: &Directive,
    body: &[Directive],
    inherited: &Inherited,
    context: &str,
    conf_dir: &Path,
    parsed: &mut Parsed,
) -> Option<Endpoint> {
    let own = Inherited::read(body);
    let ssl_on = own.ssl_on || inherited.ssl_on;
    let mut listens = Vec::new();
    let mut listen_texts = Vec::new();
    let mut notes = Vec::new();
    let mut any_listen = false;
    for directive in body.iter().filter(|d| d.name == "listen") {
        any_listen = true;
        let Some(address) = directive.args.first() else {
            continue;
        };
        let params = &directive.args[1..];
        let has = |param: &str| params.iter().any(|p| p == param);
        if has("quic") || !(has("ssl") || ssl_on) {
            continue;
        }
        let text = format!("listen {}", directive.args.join(" "));
        if has("proxy_protocol") {
            notes.push(format!(
                "`{text}` expects a PROXY protocol header before TLS, which certdrift does not send; not probed"
            ));
            continue;
        }
        match parse_listen(address) {
            Ok(Some(listen)) => {
                listens.push(listen);
                listen_texts.push(text);
            }
            Ok(None) => parsed.warnings.push(Warning::new(
                directive.origin.clone(),
                format!(
                    "`{text}` is a UNIX socket, which certdrift does not connect to; not probed"
                ),
            )),
            Err(message) => parsed
                .warnings
                .push(Warning::new(directive.origin.clone(), message)),
        }
    }
    if !any_listen && ssl_on {
        // A server without `listen` listens on *:80; `ssl on` makes that TLS.
        listens.push(Listen {
            host: ListenHost::AnyV4,
            port: 80,
        });
        listen_texts.push("listen *:80 (the default) with ssl on".to_owned());
    }
    if listens.is_empty() {
        for note in notes {
            parsed
                .warnings
                .push(Warning::new(server.origin.clone(), note));
        }
        return None;
    }

    let (cert_texts, key_texts) = if own.certs.is_empty() {
        (&inherited.certs, &inherited.keys)
    } else {
        (&own.certs, &own.keys)
    };
    if cert_texts.is_empty() {
        parsed.warnings.push(Warning::new(
            server.origin.clone(),
            format!(
                "server block with `{}` has no ssl_certificate; not probed",
                listen_texts.join("; ")
            ),
        ));
        return None;
    }
    let mut certs = Vec::new();
    for (index, cert) in cert_texts.iter().enumerate() {
        if cert.contains('$') || cert.starts_with("data:") {
            parsed.warnings.push(Warning::new(
                server.origin.clone(),
                format!("ssl_certificate {cert} is chosen at run time (a variable or data:); discovery cannot tell which file is served"),
            ));
            continue;
        }
        let key = key_texts
            .get(index)
            .filter(|key| !key.contains('$') && !key.starts_with("data:"))
            .map_or(KeyRef::None, |key| {
                KeyRef::Path(files::resolve(conf_dir, Path::new(key)))
            });
        certs.push(CertRef {
            cert: files::resolve(conf_dir, Path::new(cert)),
            key,
        });
    }
    if certs.is_empty() {
        return None;
    }
    let names = body
        .iter()
        .filter(|d| d.name == "server_name")
        .flat_map(|d| d.args.iter().cloned())
        .map(|name| name.strip_prefix('.').map(str::to_owned).unwrap_or(name))
        .collect();
    let what = match context {
        "stream" => "nginx stream server",
        _ => "nginx server block",
    };
    Some(Endpoint {
        source: SourceKind::Nginx,
        origin: server.origin.clone(),
        what: format!("{what} ({})", listen_texts.join("; ")),
        listens,
        names,
        certs: CertSpec::Pairs(certs),
        chain: None,
        protocol: Protocol::Tls,
        notes,
    })
}

/// Reads a `listen` address: `443`, `*:443`, `127.0.0.1:443`, `[::]:443`, `[::1]`,
/// `localhost:8443`. `Ok(None)` for a UNIX socket.
///
/// # Errors
///
/// A message for a port that is not a number from 1 to 65535.
fn parse_listen(address: &str) -> Result<Option<Listen>, String> {
    if address.starts_with("unix:") {
        return Ok(None);
    }
    let bad_port = |port: &str| format!("listen {address}: `{port}` is not a port");
    let port_of = |text: &str| -> Result<u16, String> {
        match text.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad_port(text)),
            Ok(port) => Ok(port),
        }
    };
    if let Some(rest) = address.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return Err(format!("listen {address}: no `]` after the IPv6 address"));
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("listen {address}: `{ip}` is not an IPv6 address"))?;
        let port = match after.strip_prefix(':') {
            Some(port) => port_of(port)?,
            None => 80,
        };
        return Ok(Some(Listen {
            host: ListenHost::from_ip(ip),
            port,
        }));
    }
    if address.chars().all(|ch| ch.is_ascii_digit()) {
        return Ok(Some(Listen {
            host: ListenHost::AnyV4,
            port: port_of(address)?,
        }));
    }
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (host, port_of(port)?),
        None => (address, 80),
    };
    let host = match host {
        "*" => ListenHost::AnyV4,
        host => match host.parse::<IpAddr>() {
            Ok(ip) => ListenHost::from_ip(ip),
            Err(_) => ListenHost::Name(host.to_owned()),
        },
    };
    Ok(Some(Listen { host, port }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn endpoints(files: &MemFiles) -> Parsed {
        parse(files, Path::new("/etc/nginx/nginx.conf"))
    }

    fn pairs(endpoint: &Endpoint) -> &[CertRef] {
        match &endpoint.certs {
            CertSpec::Pairs(pairs) => pairs,
            other => panic!("expected cert pairs, got {other:?}"),
        }
    }

    #[test]
    fn reads_server_blocks_through_includes_with_globs() {
        let files = MemFiles::new()
            .with(
                "/etc/nginx/nginx.conf",
                "user www-data;\nevents { }\nhttp {\n    include /etc/nginx/sites-enabled/*;\n    include conf.d/*.conf;\n}\n",
            )
            .with(
                "/etc/nginx/sites-enabled/blog",
                "# the blog\nserver {\n    listen 443 ssl default_server; # IPv4\n    listen [::]:443 ssl;\n    server_name blog.example.org www.blog.example.org;\n    ssl_certificate /etc/letsencrypt/live/blog.example.org/fullchain.pem;\n    ssl_certificate_key /etc/letsencrypt/live/blog.example.org/privkey.pem;\n}\n",
            )
            .with(
                "/etc/nginx/conf.d/plain.conf",
                "server { listen 80; server_name plain.example.org; }\n",
            );
        let parsed = endpoints(&files);
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        assert_eq!(parsed.files_read, 3);
        assert_eq!(parsed.endpoints.len(), 1);
        let blog = &parsed.endpoints[0];
        assert_eq!(
            blog.origin,
            Origin::at(Path::new("/etc/nginx/sites-enabled/blog"), 2)
        );
        assert_eq!(
            blog.listens,
            [
                Listen {
                    host: ListenHost::AnyV4,
                    port: 443
                },
                Listen {
                    host: ListenHost::AnyV6,
                    port: 443
                }
            ]
        );
        assert_eq!(blog.names, ["blog.example.org", "www.blog.example.org"]);
        assert_eq!(
            pairs(blog),
            [CertRef {
                cert: "/etc/letsencrypt/live/blog.example.org/fullchain.pem".into(),
                key: KeyRef::Path("/etc/letsencrypt/live/blog.example.org/privkey.pem".into()),
            }]
        );
        assert!(
            blog.what.contains("listen 443 ssl default_server"),
            "{}",
            blog.what
        );
    }

    #[test]
    fn reads_every_listen_form() {
        let cases: [(&str, Option<Listen>); 8] = [
            (
                "443",
                Some(Listen {
                    host: ListenHost::AnyV4,
                    port: 443,
                }),
            ),
            (
                "*:8443",
                Some(Listen {
                    host: ListenHost::AnyV4,
                    port: 8443,
                }),
            ),
            (
                "127.0.0.1:443",
                Some(Listen {
                    host: ListenHost::Ip("127.0.0.1".parse().unwrap()),
                    port: 443,
                }),
            ),
            (
                "0.0.0.0:443",
                Some(Listen {
                    host: ListenHost::AnyV4,
                    port: 443,
                }),
            ),
            (
                "[::]:443",
                Some(Listen {
                    host: ListenHost::AnyV6,
                    port: 443,
                }),
            ),
            (
                "[::1]",
                Some(Listen {
                    host: ListenHost::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                    port: 80,
                }),
            ),
            (
                "localhost:8443",
                Some(Listen {
                    host: ListenHost::Name("localhost".to_owned()),
                    port: 8443,
                }),
            ),
            ("unix:/run/nginx.sock", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_listen(text), Ok(expected), "{text}");
        }
        assert!(
            parse_listen("*:https")
                .unwrap_err()
                .contains("`https` is not a port")
        );
        assert!(parse_listen("[::1:443").is_err());
    }

    #[test]
    fn tokenizes_quotes_escapes_comments_and_variables() {
        let tokens = tokenize(
            "server_name \"a.example\" 'b.example' c\\;d;# note\nmap $x ${y}z { }\nreturn 200 \"say \\\"hi\\\"\";",
        )
        .unwrap();
        let words: Vec<String> = tokens
            .iter()
            .filter_map(|token| match token {
                Token::Word(word, _) => Some(word.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            words,
            [
                "server_name",
                "a.example",
                "b.example",
                "c;d",
                "map",
                "$x",
                "${y}z",
                "return",
                "200",
                "say \"hi\""
            ]
        );
        assert!(tokens.contains(&Token::Open(2)));
        assert_eq!(tokenize("a \"open").unwrap_err().0, 1);
    }

    #[test]
    fn dual_certificates_inheritance_and_ssl_on() {
        let files = MemFiles::new().with(
            "/etc/nginx/nginx.conf",
            "http {
    ssl_certificate ssl/default.pem;
    ssl_certificate_key ssl/default.key;
    server {
        listen 127.0.0.1:443 ssl;
        listen [::1]:443 ssl;
        server_name shop.example.org;
        ssl_certificate /etc/ssl/shop-ecdsa.pem;
        ssl_certificate_key /etc/ssl/shop-ecdsa.key;
        ssl_certificate /etc/ssl/shop-rsa.pem;
        ssl_certificate_key /etc/ssl/shop-rsa.key;
    }
    server {
        listen 8443;
        ssl on;
        server_name _;
    }
    server {
        listen 9443 ssl proxy_protocol;
        listen 9444 quic;
    }
}
stream {
    server {
        listen 993 ssl;
        ssl_certificate /etc/ssl/imap.pem;
    }
}
",
        );
        let parsed = endpoints(&files);
        assert_eq!(parsed.endpoints.len(), 3, "{:?}", parsed.endpoints);
        let shop = &parsed.endpoints[0];
        assert_eq!(pairs(shop).len(), 2);
        assert_eq!(pairs(shop)[1].cert, PathBuf::from("/etc/ssl/shop-rsa.pem"));
        assert_eq!(
            pairs(shop)[1].key,
            KeyRef::Path("/etc/ssl/shop-rsa.key".into())
        );
        assert_eq!(shop.listens.len(), 2);

        let inherited = &parsed.endpoints[1];
        assert_eq!(inherited.listens[0].port, 8443);
        assert_eq!(
            pairs(inherited)[0].cert,
            PathBuf::from("/etc/nginx/ssl/default.pem")
        );
        assert_eq!(inherited.names, ["_"]);

        let stream = &parsed.endpoints[2];
        assert!(stream.what.starts_with("nginx stream server"));
        assert_eq!(pairs(stream)[0].key, KeyRef::None);

        // The PROXY-protocol listener is named, not probed.
        assert!(
            parsed
                .warnings
                .iter()
                .any(|w| w.message.contains("PROXY protocol") && w.origin.line == Some(18)),
            "{:?}",
            parsed.warnings
        );
    }

    #[test]
    fn broken_and_missing_files_are_warnings_with_file_and_line() {
        let files = MemFiles::new()
            .with(
                "/etc/nginx/nginx.conf",
                "http {\n    include sites/*.conf;\n    include missing.conf;\n    include secret.conf;\n}\n",
            )
            .with(
                "/etc/nginx/sites/good.conf",
                "server { listen 443 ssl; server_name good.example; ssl_certificate good.pem; }\n",
            )
            .with(
                "/etc/nginx/sites/broken.conf",
                "server {\n    listen 443 ssl;\n    server_name broken.example\n}\n",
            )
            .with_unreadable("/etc/nginx/secret.conf", std::io::ErrorKind::PermissionDenied);
        let parsed = endpoints(&files);
        let messages: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("/etc/nginx/sites/broken.conf:3: `server_name` has no `;`")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("/etc/nginx/nginx.conf:3: include /etc/nginx/missing.conf")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m
                .starts_with("/etc/nginx/nginx.conf:4: include /etc/nginx/secret.conf")
                && m.contains("ermission denied")),
            "{messages:?}"
        );
        // The good file still gives its server.
        assert_eq!(parsed.endpoints.len(), 1);
        assert_eq!(parsed.endpoints[0].names, ["good.example"]);
        assert_eq!(
            pairs(&parsed.endpoints[0])[0].cert,
            PathBuf::from("/etc/nginx/good.pem")
        );

        let none = parse(&MemFiles::new(), Path::new("/etc/nginx/nginx.conf"));
        assert!(none.endpoints.is_empty());
        assert!(
            none.warnings[0]
                .to_string()
                .contains("cannot read the nginx config")
        );
    }

    #[test]
    fn variables_in_certificate_paths_and_missing_certificates_are_reported() {
        let files = MemFiles::new().with(
            "/etc/nginx/nginx.conf",
            "http {\n server {\n  listen 443 ssl;\n  ssl_certificate /etc/ssl/$ssl_server_name.pem;\n }\n server {\n  listen 8443 ssl;\n }\n}\n",
        );
        let parsed = endpoints(&files);
        assert!(parsed.endpoints.is_empty());
        let messages: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
        assert!(messages[0].starts_with("/etc/nginx/nginx.conf:2: ssl_certificate /etc/ssl/$ssl_server_name.pem is chosen at run time"), "{messages:?}");
        assert!(messages[1].starts_with("/etc/nginx/nginx.conf:6: server block with `listen 8443 ssl` has no ssl_certificate"), "{messages:?}");
    }

    #[test]
    fn splits_the_dump_of_nginx_minus_big_t() {
        let dump = "# configuration file /etc/nginx/nginx.conf:\nhttp {\n    include /etc/nginx/a.conf;\n}\n\n# configuration file /etc/nginx/a.conf:\nserver {\n    listen 443 ssl;\n    ssl_certificate /x.pem;\n}\n\n";
        let files = split_dump(dump);
        let parsed = parse(&files, Path::new("/etc/nginx/nginx.conf"));
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        assert_eq!(parsed.endpoints.len(), 1);
        assert_eq!(
            parsed.endpoints[0].origin,
            Origin::at(Path::new("/etc/nginx/a.conf"), 1)
        );
    }

    #[test]
    fn include_loops_are_read_once_per_file_with_one_warning_each() {
        let server = |n: u32| {
            format!(
                "include /etc/nginx/loop*.conf;\nserver {{ listen 443 ssl; server_name s{n}; ssl_certificate /x/{n}.pem; }}\n"
            )
        };
        let files = MemFiles::new()
            .with(
                "/etc/nginx/nginx.conf",
                "events {}\nhttp {\n    include loop*.conf;\n}\n",
            )
            .with("/etc/nginx/loop1.conf", server(1))
            .with("/etc/nginx/loop2.conf", server(2))
            .with("/etc/nginx/loop3.conf", server(3));
        let parsed = endpoints(&files);
        let mut names: Vec<&str> = parsed
            .endpoints
            .iter()
            .map(|e| e.names[0].as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["s1", "s2", "s3"]);
        let loops: Vec<String> = parsed
            .warnings
            .iter()
            .filter(|w| w.message.contains("include loop"))
            .map(ToString::to_string)
            .collect();
        // Each file's include line meets each file on the stack: itself, at least.
        assert!(loops.contains(&"/etc/nginx/loop1.conf:1: include /etc/nginx/loop1.conf: already being read (an include loop); not read again".to_owned()), "{loops:?}");
        let unique: std::collections::HashSet<&String> = loops.iter().collect();
        assert_eq!(unique.len(), loops.len(), "{loops:?}");
    }

    #[test]
    fn a_server_file_including_its_own_glob_gives_one_site() {
        let dump = "# configuration file /etc/nginx/nginx.conf:\nhttp {\n    include /etc/nginx/sites/*.conf;\n}\n\n# configuration file /etc/nginx/sites/a.conf:\nserver {\n    listen 443 ssl;\n    ssl_certificate /x.pem;\n}\ninclude /etc/nginx/sites/*.conf;\n";
        let parsed = parse(&split_dump(dump), Path::new("/etc/nginx/nginx.conf"));
        assert_eq!(parsed.endpoints.len(), 1, "{:?}", parsed.endpoints);
        assert_eq!(parsed.warnings.len(), 1, "{:?}", parsed.warnings);
        assert_eq!(
            parsed.warnings[0].to_string(),
            "/etc/nginx/sites/a.conf:5: include /etc/nginx/sites/a.conf: already being read (an include loop); not read again"
        );
    }

    #[test]
    fn a_config_over_the_size_cap_is_refused_by_name() {
        let big = format!(
            "http {{\n{}}}\n",
            "#".repeat(files::MAX_FILE_BYTES as usize)
        );
        let files = MemFiles::new()
            .with(
                "/etc/nginx/nginx.conf",
                "http { include big.conf; include ok.conf; }\n",
            )
            .with("/etc/nginx/big.conf", big)
            .with(
                "/etc/nginx/ok.conf",
                "server { listen 443 ssl; ssl_certificate /x.pem; }\n",
            );
        let parsed = endpoints(&files);
        assert_eq!(parsed.endpoints.len(), 1);
        let message = parsed.warnings[0].to_string();
        assert!(
            message.starts_with("/etc/nginx/nginx.conf:1: include /etc/nginx/big.conf: ")
                && message.contains("over the 8 MiB"),
            "{message}"
        );
    }

    #[test]
    fn a_file_name_with_a_newline_keeps_its_server_in_the_dump() {
        let dump = "# configuration file /etc/nginx/nginx.conf:\nhttp {\n    include /etc/nginx/sites/*;\n}\n\n# configuration file /etc/nginx/sites/a\nb.conf:\nserver {\n    listen 443 ssl;\n    ssl_certificate /x.pem;\n}\n";
        let parsed = parse(&split_dump(dump), Path::new("/etc/nginx/nginx.conf"));
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        assert_eq!(parsed.endpoints.len(), 1);
        assert_eq!(
            parsed.endpoints[0].origin,
            Origin::at(Path::new("/etc/nginx/sites/a\nb.conf"), 1)
        );
    }

    #[test]
    fn a_unix_socket_listener_is_warned_about() {
        let files = MemFiles::new().with(
            "/etc/nginx/nginx.conf",
            "http {\n server {\n  listen unix:/run/s.sock ssl;\n  ssl_certificate /x.pem;\n }\n}\n",
        );
        let parsed = endpoints(&files);
        assert!(parsed.endpoints.is_empty());
        let messages: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "/etc/nginx/nginx.conf:3: `listen unix:/run/s.sock ssl` is a UNIX socket, which certdrift does not connect to; not probed"
            ]
        );
    }

    #[test]
    fn files_including_each_others_glob_stop_at_the_budget_with_one_warning() {
        // Eight files, each including all eight: reading each once per chain would be
        // about 8! * e files; the source's budget stops it.
        let mut files = MemFiles::new().with(
            "/etc/nginx/nginx.conf",
            "http {\n    include /etc/nginx/m*.conf;\n}\n",
        );
        for n in 1..=8 {
            files = files.with(
                format!("/etc/nginx/m{n}.conf"),
                format!("server {{ listen 443 ssl; server_name m{n}; ssl_certificate /x.pem; }}\ninclude /etc/nginx/m*.conf;\n"),
            );
        }
        let parsed = endpoints(&files);
        assert_eq!(parsed.endpoints.len(), 8);
        assert_eq!(parsed.files_read, files::MAX_FILES_PER_SOURCE);
        let budget = parsed
            .warnings
            .iter()
            .filter(|w| {
                w.message
                    .contains("the most certdrift reads from one source")
            })
            .count();
        assert_eq!(budget, 1, "{:?}", parsed.warnings);
    }
}
