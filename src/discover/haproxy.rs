//! haproxy: the `bind ... ssl crt ...` lines of `frontend` and `listen` sections.
//!
//! Each `crt` names a combined PEM (certificate, chain and usually the key) or a directory,
//! meaning every certificate file in it; `crt-list` names a file listing certificates with
//! their SNI filters. haproxy has no server names: it picks a certificate by the names in
//! it, so each certificate file becomes its own site, probed with a name it covers (the
//! crt-list filter when there is one). Relative paths are taken from `crt-base`, else from
//! the config file's directory. The config may be a file or a directory of `*.cfg` files,
//! as `haproxy -f` takes it.

use std::path::{Path, PathBuf};

use crate::discover::files::{self, ConfigFiles, FsFiles};
use crate::discover::{
    CertRef, CertSpec, Endpoint, KeyRef, Listen, ListenHost, Origin, Parsed, SourceKind, Warning,
    escape_path,
};
use crate::probe::Protocol;

/// Discovers the TLS binds of the haproxy whose config is `conf` (a file or a directory).
pub fn discover(conf: &Path) -> Parsed {
    let mut parsed = parse(&FsFiles, conf);
    parsed.how = "the files".to_owned();
    parsed
}

/// Parses the config at `conf` from `files`.
pub fn parse(files: &dyn ConfigFiles, conf: &Path) -> Parsed {
    let conf = files::normalize(conf);
    let config_files: Vec<PathBuf> = match files.list_dir(&conf) {
        Some(entries) => entries
            .into_iter()
            .filter(|path| path.extension().is_some_and(|ext| ext == "cfg"))
            .collect(),
        None => vec![conf.clone()],
    };
    let mut parsed = Parsed::default();
    let mut crt_base: Option<PathBuf> = None;
    for file in config_files {
        let text = match files.read(&file) {
            Ok(text) => text,
            Err(err) => {
                parsed
                    .warnings
                    .push(files::unreadable_config("haproxy", &file, &err));
                continue;
            }
        };
        parsed.files_read += 1;
        let dir = file.parent().unwrap_or(Path::new("/")).to_owned();
        let mut section = String::new();
        for (index, line) in text.lines().enumerate() {
            let origin = Origin::at(&file, index + 1);
            let words = match split_words(line) {
                Ok(words) => words,
                Err(message) => {
                    parsed.warnings.push(Warning::new(origin, message));
                    continue;
                }
            };
            let Some(keyword) = words.first() else {
                continue;
            };
            if SECTIONS.contains(&keyword.as_str()) {
                section = keyword.clone();
                continue;
            }
            match (section.as_str(), keyword.as_str()) {
                ("global", "crt-base") => {
                    crt_base = words
                        .get(1)
                        .map(|base| files::resolve(&dir, Path::new(base)));
                }
                ("frontend" | "listen", "bind") => {
                    let base = crt_base.clone().unwrap_or_else(|| dir.clone());
                    bind_endpoints(files, &words, &origin, &base, &mut parsed);
                }
                _ => {}
            }
        }
    }
    parsed
}

/// The keywords that start a section.
const SECTIONS: [&str; 15] = [
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "peers",
    "resolvers",
    "userlist",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
    "fcgi-app",
    "crt-store",
];

/// Files haproxy skips in a `crt` directory: the companions it loads beside each
/// certificate (ssl-load-extra-files).
const COMPANIONS: [&str; 4] = ["key", "ocsp", "issuer", "sctl"];

fn bind_endpoints(
    files: &dyn ConfigFiles,
    words: &[String],
    origin: &Origin,
    base: &Path,
    parsed: &mut Parsed,
) {
    let Some(addresses) = words.get(1) else {
        return;
    };
    let params = &words[2..];
    if !params.iter().any(|p| p == "ssl") {
        return;
    }
    let text = words.join(" ");
    if params.iter().any(|p| p == "accept-proxy") {
        parsed.warnings.push(Warning::new(
            origin.clone(),
            format!("`{text}` expects a PROXY protocol header before TLS, which certdrift does not send; not probed"),
        ));
        return;
    }
    let v4v6 = params.iter().any(|p| p == "v4v6");
    let mut listens = Vec::new();
    for address in addresses.split(',') {
        match parse_address(address) {
            Ok(Some(listen)) => {
                if v4v6 && listen.host == ListenHost::AnyV6 {
                    listens.push(Listen {
                        host: ListenHost::AnyV4,
                        port: listen.port,
                    });
                }
                listens.push(listen);
            }
            Ok(None) => {}
            Err(message) => parsed.warnings.push(Warning::new(
                origin.clone(),
                format!("bind {address}: {message}"),
            )),
        }
    }
    if listens.is_empty() {
        return;
    }

    // (certificate files, SNI names from a crt-list line, origin of that line)
    let mut certs: Vec<(Vec<PathBuf>, Vec<String>, Origin)> = Vec::new();
    let mut index = 0;
    while index < params.len() {
        let value = params.get(index + 1);
        match (params[index].as_str(), value) {
            ("crt" | "default-crt", Some(value)) => {
                let path = files::resolve(base, Path::new(value));
                for files_of_one in crt_files(files, &path, origin, &mut parsed.warnings) {
                    certs.push((files_of_one, Vec::new(), origin.clone()));
                }
                index += 2;
            }
            ("crt-list", Some(value)) => {
                let path = files::resolve(base, Path::new(value));
                read_crt_list(files, &path, base, origin, &mut certs, &mut parsed.warnings);
                index += 2;
            }
            _ => index += 1,
        }
    }
    if certs.is_empty() {
        parsed.warnings.push(Warning::new(
            origin.clone(),
            format!("`{text}` names no certificate file that exists; not probed"),
        ));
        return;
    }
    for (cert_files, names, cert_origin) in certs {
        let pairs = cert_files
            .iter()
            .map(|cert| CertRef {
                cert: cert.clone(),
                key: KeyRef::InCertOrDotKey,
            })
            .collect();
        let shown: Vec<String> = cert_files.iter().map(|p| p.display().to_string()).collect();
        parsed.endpoints.push(Endpoint {
            source: SourceKind::Haproxy,
            origin: cert_origin,
            what: format!(
                "haproxy `bind {addresses} ssl`, certificate {}",
                shown.join(" + ")
            ),
            listens: listens.clone(),
            names,
            certs: CertSpec::Pairs(pairs),
            chain: None,
            protocol: Protocol::Tls,
            notes: Vec::new(),
        });
    }
}

/// The certificates a `crt` value loads: a file; every certificate file of a directory; or,
/// for a missing `NAME`, the `NAME.rsa`/`NAME.ecdsa` bundle, one certificate per key type.
/// What in a directory is not a regular file (a FIFO, a device, a dangling or looping
/// symlink) is a warning at `origin`, not a certificate.
fn crt_files(
    files: &dyn ConfigFiles,
    path: &Path,
    origin: &Origin,
    warnings: &mut Vec<Warning>,
) -> Vec<Vec<PathBuf>> {
    if let Some(entries) = files.list_dir(path) {
        return entries
            .into_iter()
            .filter(|entry| {
                let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let companion = entry
                    .extension()
                    .and_then(|ext| ext.to_str())
                    .is_some_and(|ext| COMPANIONS.contains(&ext));
                if companion || name.starts_with('.') || files.list_dir(entry).is_some() {
                    return false;
                }
                if !files.is_file(entry) {
                    warnings.push(Warning::new(
                        origin.clone(),
                        format!(
                            "crt {}: {} is not a regular file (a FIFO, a device or a broken symlink?); skipped",
                            path.display(),
                            escape_path(entry)
                        ),
                    ));
                    return false;
                }
                true
            })
            .map(|entry| vec![entry])
            .collect();
    }
    if files.exists(path) {
        return vec![vec![path.to_owned()]];
    }
    let bundle: Vec<PathBuf> = ["ecdsa", "rsa", "dsa"]
        .iter()
        .map(|ext| PathBuf::from(format!("{}.{ext}", path.display())))
        .filter(|candidate| files.exists(candidate))
        .collect();
    if bundle.is_empty() {
        // Kept, so that the site reports the missing file as a disk error.
        vec![vec![path.to_owned()]]
    } else {
        vec![bundle]
    }
}

/// Reads a crt-list: `FILE [ssl options] [SNI filter ...]` per line, `#` comments.
fn read_crt_list(
    files: &dyn ConfigFiles,
    path: &Path,
    base: &Path,
    origin: &Origin,
    certs: &mut Vec<(Vec<PathBuf>, Vec<String>, Origin)>,
    warnings: &mut Vec<Warning>,
) {
    let text = match files.read(path) {
        Ok(text) => text,
        Err(err) => {
            warnings.push(Warning::new(
                origin.clone(),
                format!("crt-list {}: {err}", path.display()),
            ));
            return;
        }
    };
    for (index, line) in text.lines().enumerate() {
        let line_origin = Origin::at(path, index + 1);
        let words = match split_words(line) {
            Ok(words) => words,
            Err(message) => {
                warnings.push(Warning::new(line_origin, message));
                continue;
            }
        };
        let Some(file) = words.first() else { continue };
        let mut rest = &words[1..];
        // `[alpn h2 ...]`: options for this certificate, up to the closing bracket.
        if rest.first().is_some_and(|word| word.starts_with('[')) {
            let close = rest.iter().position(|word| word.ends_with(']'));
            rest = close.map_or(&[][..], |close| &rest[close + 1..]);
        }
        let names: Vec<String> = rest
            .iter()
            .filter(|name| !name.starts_with('!'))
            .cloned()
            .collect();
        let cert = files::resolve(base, Path::new(file));
        for files_of_one in crt_files(files, &cert, &line_origin, warnings) {
            certs.push((files_of_one, names.clone(), line_origin.clone()));
        }
    }
}

/// One `bind` address: `:443`, `*:443`, `0.0.0.0:443`, `:::443`, `[::]:443`,
/// `ipv6@:443`, `192.0.2.1:8443-8444` (the first port). `Ok(None)` for UNIX sockets, file
/// descriptors and QUIC.
fn parse_address(address: &str) -> Result<Option<Listen>, String> {
    let (family, rest) = match address.split_once('@') {
        Some((family, rest)) => (family, rest),
        None => ("", address),
    };
    match family {
        "" | "ipv4" | "tcp" | "tcp4" | "ipv6" | "tcp6" => {}
        _ => return Ok(None),
    }
    if rest.starts_with('/') {
        return Ok(None);
    }
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        match inner.split_once("]:") {
            Some((ip, port)) => (ip, port),
            None => return Err("no `]:PORT` after the IPv6 address".to_owned()),
        }
    } else {
        rest.rsplit_once(':')
            .ok_or_else(|| "no `:PORT`".to_owned())?
    };
    let first_port = port.split_once('-').map_or(port, |(first, _)| first);
    let port = match first_port.parse::<u16>() {
        Ok(port) if port > 0 => port,
        _ => return Err(format!("`{port}` is not a port")),
    };
    let host = match (host, family) {
        ("" | "*", "ipv6" | "tcp6") => ListenHost::AnyV6,
        ("" | "*", _) => ListenHost::AnyV4,
        (host, _) => ListenHost::parse(host),
    };
    Ok(Some(Listen { host, port }))
}

/// Splits a config line into words as haproxy does: white space separates, `#` starts a
/// comment, `"..."` and `'...'` quote, a backslash escapes the next character.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        match (quote, ch) {
            (Some(q), ch) if ch == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            (Some(_), ch) => word.push(ch),
            (None, '#') => break,
            (None, '"' | '\'') => {
                quote = Some(ch);
                in_word = true;
            }
            (None, ch) if ch.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, ch) => {
                word.push(ch);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q}...{q} string"));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::files::MemFiles;

    fn certs_of(endpoint: &Endpoint) -> Vec<PathBuf> {
        match &endpoint.certs {
            CertSpec::Pairs(pairs) => pairs.iter().map(|p| p.cert.clone()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_binds_with_files_directories_and_crt_lists() {
        let files = MemFiles::new()
            .with(
                "/etc/haproxy/haproxy.cfg",
                "global
    crt-base /etc/haproxy/certs
    # bind :1 ssl crt nothing.pem (a comment)

defaults
    mode http

frontend www
    bind :443,:::8443 ssl crt site.pem crt /etc/haproxy/dir/ alpn h2,http/1.1
    bind 127.0.0.1:80
    bind [::1]:9443 v4v6 ssl crt-list /etc/haproxy/list.txt

listen tarpit
    bind ipv6@:4443 ssl crt bundle.pem accept-proxy
    bind unix@/run/haproxy.sock ssl crt site.pem

backend app
    server app1 127.0.0.1:8080 ssl crt client.pem
",
            )
            .with("/etc/haproxy/certs/site.pem", "")
            .with("/etc/haproxy/dir/a.pem", "")
            .with("/etc/haproxy/dir/a.pem.key", "")
            .with("/etc/haproxy/dir/a.pem.ocsp", "")
            .with("/etc/haproxy/dir/b.pem", "")
            .with(
                "/etc/haproxy/list.txt",
                "# certificates\n/etc/haproxy/certs/site.pem [alpn h2 ocsp-update on] shop.example.org !old.example.org\nbundle.pem *.example.org\n",
            )
            .with("/etc/haproxy/certs/bundle.pem.rsa", "")
            .with("/etc/haproxy/certs/bundle.pem.ecdsa", "");
        let parsed = parse(&files, Path::new("/etc/haproxy/haproxy.cfg"));
        let messages: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].starts_with("/etc/haproxy/haproxy.cfg:14: `bind ipv6@:4443 ssl crt bundle.pem accept-proxy` expects a PROXY protocol header"));

        let found: Vec<(Vec<PathBuf>, Vec<String>, Vec<Listen>)> = parsed
            .endpoints
            .iter()
            .map(|e| (certs_of(e), e.names.clone(), e.listens.clone()))
            .collect();
        let www = vec![
            Listen {
                host: ListenHost::AnyV4,
                port: 443,
            },
            Listen {
                host: ListenHost::AnyV6,
                port: 8443,
            },
        ];
        let list = vec![Listen {
            host: ListenHost::Ip("::1".parse().unwrap()),
            port: 9443,
        }];
        assert_eq!(
            found,
            [
                (
                    vec!["/etc/haproxy/certs/site.pem".into()],
                    vec![],
                    www.clone()
                ),
                (vec!["/etc/haproxy/dir/a.pem".into()], vec![], www.clone()),
                (vec!["/etc/haproxy/dir/b.pem".into()], vec![], www),
                (
                    vec!["/etc/haproxy/certs/site.pem".into()],
                    vec!["shop.example.org".to_owned()],
                    list.clone()
                ),
                (
                    vec![
                        "/etc/haproxy/certs/bundle.pem.ecdsa".into(),
                        "/etc/haproxy/certs/bundle.pem.rsa".into()
                    ],
                    vec!["*.example.org".to_owned()],
                    list
                ),
            ]
        );
        assert_eq!(
            parsed.endpoints[3].origin,
            Origin::at(Path::new("/etc/haproxy/list.txt"), 2)
        );
        assert_eq!(
            parsed.endpoints[0].origin,
            Origin::at(Path::new("/etc/haproxy/haproxy.cfg"), 9)
        );
    }

    #[test]
    fn reads_addresses_and_words() {
        let listen = |host, port| Some(Listen { host, port });
        assert_eq!(parse_address(":443"), Ok(listen(ListenHost::AnyV4, 443)));
        assert_eq!(parse_address("*:443"), Ok(listen(ListenHost::AnyV4, 443)));
        assert_eq!(parse_address(":::443"), Ok(listen(ListenHost::AnyV6, 443)));
        assert_eq!(
            parse_address("[::]:443"),
            Ok(listen(ListenHost::AnyV6, 443))
        );
        assert_eq!(
            parse_address("ipv6@:443"),
            Ok(listen(ListenHost::AnyV6, 443))
        );
        assert_eq!(
            parse_address("192.0.2.1:8443-8444"),
            Ok(listen(ListenHost::Ip("192.0.2.1".parse().unwrap()), 8443))
        );
        assert_eq!(parse_address("fd@3"), Ok(None));
        assert_eq!(parse_address("/run/x.sock"), Ok(None));
        assert!(parse_address("127.0.0.1").is_err());
        assert!(parse_address(":http").is_err());
        assert_eq!(
            split_words(r#"bind :443 ssl crt "/etc/my certs/a.pem" # note"#).unwrap(),
            ["bind", ":443", "ssl", "crt", "/etc/my certs/a.pem"]
        );
        assert!(split_words("bind \"open").is_err());
    }

    #[test]
    fn a_config_directory_reads_its_cfg_files_and_unreadable_ones_are_named() {
        let files = MemFiles::new()
            .with(
                "/etc/haproxy/conf.d/10-www.cfg",
                "frontend www\n  bind :443 ssl crt /etc/ssl/www.pem\n",
            )
            .with("/etc/haproxy/conf.d/README", "bind :1 ssl crt /x.pem\n")
            .with_unreadable(
                "/etc/haproxy/conf.d/20-secret.cfg",
                std::io::ErrorKind::PermissionDenied,
            );
        let parsed = parse(&files, Path::new("/etc/haproxy/conf.d"));
        assert_eq!(parsed.endpoints.len(), 1);
        assert_eq!(parsed.warnings.len(), 1);
        assert!(
            parsed.warnings[0]
                .to_string()
                .starts_with("/etc/haproxy/conf.d/20-secret.cfg: cannot read the haproxy config")
        );
    }

    #[test]
    fn a_crt_directory_gives_only_its_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        std::fs::write(certs.join("a.pem"), "").unwrap();
        std::os::unix::fs::symlink("/dev/zero", certs.join("zero.pem")).unwrap();
        std::os::unix::fs::symlink(certs.join("loop.pem"), certs.join("loop.pem")).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(certs.join("fifo.pem"))
            .status()
            .unwrap();
        assert!(status.success());
        let conf = dir.path().join("haproxy.cfg");
        std::fs::write(
            &conf,
            format!("frontend web\n    bind :443 ssl crt {}\n", certs.display()),
        )
        .unwrap();
        let parsed = parse(&FsFiles, &conf);
        assert_eq!(parsed.endpoints.len(), 1, "{:?}", parsed.endpoints);
        assert_eq!(certs_of(&parsed.endpoints[0]), [certs.join("a.pem")]);
        let skipped: Vec<String> = parsed
            .warnings
            .iter()
            .filter(|w| w.message.contains("is not a regular file"))
            .map(|w| w.message.clone())
            .collect();
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        for name in ["fifo.pem", "loop.pem", "zero.pem"] {
            assert!(
                skipped.iter().any(|m| m.contains(name)),
                "{name}: {skipped:?}"
            );
        }
    }
}
