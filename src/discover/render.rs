//! Writes a [`Discovery`] as a certdrift config: the TOML `Config::from_toml` reads, with
//! comments saying what was read, what went wrong, where each site came from, and which
//! certbot lineages no server uses.
//!
//! The output is stable: the same configs give the same text (no time stamps, sources and
//! sites in a fixed order), so it can be diffed and kept under version control.

use std::fmt::Write as _;
use std::path::Path;

use crate::discover::{DiscoveredSite, Discovery, Lineage, SiteCerts};

/// The config text for `discovery`.
pub fn render(discovery: &Discovery) -> String {
    let mut out = String::new();
    out.push_str("# certdrift configuration written by `certdrift discover`.\n");
    out.push_str("# Review it, save it, and run `certdrift check --config FILE`.\n#\n");
    out.push_str("# Sources:\n");
    for source in &discovery.sources {
        let _ = writeln!(out, "#   {}", one_line(&source.to_string()));
    }
    out.push_str(
        "# Listeners on a wildcard address are probed on loopback (connect_to), with the\n\
         # server's name as SNI: certdrift runs on the same machine.\n",
    );
    if !discovery.warnings.is_empty() {
        out.push_str("#\n# Warnings (these configs, or parts of them, were not used):\n");
        for warning in &discovery.warnings {
            let _ = writeln!(out, "#   {}", one_line(&warning.to_string()));
        }
    }
    if let Some(dir) = &discovery.letsencrypt_dir {
        out.push_str("\n# Where copies of certificates are matched to their certbot lineage.\n");
        key(&mut out, "letsencrypt_dir", &path(dir));
    }
    if discovery.sites.is_empty() {
        out.push_str("#\n# No TLS site was found.\n");
    }
    for site in &discovery.sites {
        out.push('\n');
        render_site(&mut out, site, discovery);
    }
    let unused: Vec<&Lineage> = discovery
        .lineages
        .iter()
        .filter(|lineage| lineage.used_by.is_empty())
        .collect();
    if !unused.is_empty() {
        out.push('\n');
        render_unused_lineages(&mut out, &unused);
    }
    out
}

fn render_site(out: &mut String, site: &DiscoveredSite, discovery: &Discovery) {
    let _ = writeln!(
        out,
        "# from {}: {}",
        one_line(&site.origin.to_string()),
        one_line(&site.what)
    );
    if let Some(name) = &site.lineage {
        let conf = discovery
            .lineages
            .iter()
            .find(|lineage| &lineage.name == name)
            .map(|lineage| format!(" ({})", lineage.conf))
            .unwrap_or_default();
        let _ = writeln!(out, "# certbot lineage {name}{conf}");
    }
    for note in &site.notes {
        let _ = writeln!(out, "# note: {}", one_line(note));
    }
    out.push_str("[[site]]\n");
    key(out, "name", &string(&site.name));
    key(out, "host", &string(&site.host));
    if !site.connect_to.is_empty() {
        let ips: Vec<String> = site
            .connect_to
            .iter()
            .map(|ip| string(&ip.to_string()))
            .collect();
        key(out, "connect_to", &format!("[{}]", ips.join(", ")));
    }
    key(out, "port", &site.port.to_string());
    if let Some(sni) = &site.sni {
        key(out, "sni", &string(sni));
    }
    key(out, "protocol", &string(site.protocol.as_str()));
    match &site.certs {
        SiteCerts::One {
            cert,
            chain,
            key: private,
        } => {
            key(out, "cert", &path(cert));
            if let Some(chain) = chain {
                key(out, "chain", &path(chain));
            }
            if let Some(private) = private {
                key(out, "key", &path(private));
            }
        }
        SiteCerts::ByKeyType(typed) => {
            let names: Vec<String> = typed
                .iter()
                .map(|(key_type, _, _)| string(key_type.as_str()))
                .collect();
            key(out, "key_types", &format!("[{}]", names.join(", ")));
            let certs: Vec<String> = typed
                .iter()
                .map(|(key_type, cert, _)| format!("{} = {}", key_type.as_str(), path(cert)))
                .collect();
            key(out, "cert", &format!("{{ {} }}", certs.join(", ")));
            let keys: Vec<String> = typed
                .iter()
                .filter_map(|(key_type, _, private)| {
                    private
                        .as_ref()
                        .map(|private| format!("{} = {}", key_type.as_str(), path(private)))
                })
                .collect();
            if !keys.is_empty() {
                key(out, "key", &format!("{{ {} }}", keys.join(", ")));
            }
        }
    }
    key(out, "origin", &string(&site.origin.to_string()));
}

fn render_unused_lineages(out: &mut String, unused: &[&Lineage]) {
    out.push_str(
        "# certbot lineages that no discovered server uses. If another server (a container, a\n\
         # copy in another path, another machine) serves one, add a site for it, like:\n",
    );
    for lineage in unused {
        let domains = if lineage.domains.is_empty() {
            "domains unknown: the certificate could not be read".to_owned()
        } else {
            format!("domains {}", lineage.domains.join(", "))
        };
        let _ = writeln!(
            out,
            "#\n# lineage {} ({}), {domains}",
            lineage.name, lineage.conf
        );
        let host = lineage
            .domains
            .iter()
            .find(|domain| !domain.contains('*'))
            .cloned()
            .unwrap_or_else(|| lineage.name.clone());
        out.push_str("# [[site]]\n");
        let _ = writeln!(
            out,
            "# name = {}",
            string(&format!("certbot-{}", lineage.name))
        );
        let _ = writeln!(out, "# host = {}", string(&host));
        if let Some(cert) = lineage.fullchain.as_ref().or(lineage.cert.as_ref()) {
            let _ = writeln!(out, "# cert = {}", path(cert));
        }
        if let Some(privkey) = &lineage.privkey {
            let _ = writeln!(out, "# key = {}", path(privkey));
        }
    }
}

fn key(out: &mut String, name: &str, value: &str) {
    let _ = writeln!(out, "{name} = {value}");
}

fn path(path: &Path) -> String {
    string(&path.display().to_string())
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
pub fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ch if ch.is_control() => {
                let _ = write!(out, "\\u{:04X}", ch as u32);
            }
            ch => out.push(ch),
        }
    }
    out.push('"');
    out
}

/// `text` on one line, for a comment: line breaks (a config can hold anything) would end the
/// comment and put the rest into the TOML.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|ch| if ch.is_control() { ' ' } else { ch })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::path::PathBuf;

    use super::*;
    use crate::discover::{Origin, SourceKind, SourceOutcome, SourceReport, Warning};
    use crate::probe::{KeyType, Protocol};

    fn site(name: &str, certs: SiteCerts) -> DiscoveredSite {
        DiscoveredSite {
            name: name.to_owned(),
            source: SourceKind::Nginx,
            origin: Origin::at(Path::new("/etc/nginx/sites-enabled/a \"b\""), 7),
            what: "nginx server block (listen 443 ssl)\nsecond line".to_owned(),
            host: "blog.example.org".to_owned(),
            connect_to: vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap(),
            ],
            port: 443,
            sni: Some("blog.example.org".to_owned()),
            protocol: Protocol::Tls,
            certs,
            lineage: None,
            notes: vec!["a note".to_owned()],
        }
    }

    #[test]
    fn the_output_is_a_config_the_loader_reads() {
        let discovery = Discovery {
            sites: vec![
                site(
                    "nginx-blog.example.org-443",
                    SiteCerts::One {
                        cert: "/etc/ssl/blog \"quoted\".pem".into(),
                        chain: Some("/etc/ssl/chain.pem".into()),
                        key: Some("/etc/ssl/blog.key".into()),
                    },
                ),
                site(
                    "nginx-shop.example.org-443",
                    SiteCerts::ByKeyType(vec![
                        (KeyType::Ecdsa, "/etc/ssl/shop-ecdsa.pem".into(), None),
                        (
                            KeyType::Rsa,
                            "/etc/ssl/shop-rsa.pem".into(),
                            Some("/etc/ssl/shop-rsa.key".into()),
                        ),
                    ]),
                ),
            ],
            lineages: vec![Lineage {
                name: "old.example.org".to_owned(),
                conf: Origin::at(
                    Path::new("/etc/letsencrypt/renewal/old.example.org.conf"),
                    1,
                ),
                cert: None,
                chain: None,
                fullchain: Some("/etc/letsencrypt/live/old.example.org/fullchain.pem".into()),
                privkey: Some("/etc/letsencrypt/live/old.example.org/privkey.pem".into()),
                domains: vec!["old.example.org".to_owned()],
                used_by: Vec::new(),
            }],
            warnings: vec![Warning::new(
                Origin::at(Path::new("/etc/apache2/sites-enabled/x.conf"), 3),
                "broken\n[[site]]".to_owned(),
            )],
            sources: vec![SourceReport {
                kind: SourceKind::Apache,
                location: PathBuf::from("/etc/apache2/apache2.conf"),
                outcome: SourceOutcome::NotFound,
            }],
            letsencrypt_dir: Some("/srv/le".into()),
        };
        let text = render(&discovery);
        let config = crate::config::Config::from_toml(&text, "discovered", Path::new("/"))
            .unwrap_or_else(|err| panic!("{err}\n{text}"));
        assert_eq!(config.sites.len(), 2, "{text}");
        // `--letsencrypt-dir` reaches the sites, for matching copies to lineages there.
        for site in &config.sites {
            assert_eq!(
                site.letsencrypt_dir,
                Some(PathBuf::from("/srv/le")),
                "{text}"
            );
        }
        let blog = &config.sites[0];
        assert_eq!(
            blog.certs[0].cert,
            PathBuf::from("/etc/ssl/blog \"quoted\".pem")
        );
        assert_eq!(
            blog.certs[0].chain,
            Some(PathBuf::from("/etc/ssl/chain.pem"))
        );
        assert_eq!(blog.connect_to.len(), 2);
        assert_eq!(
            blog.origin.as_deref(),
            Some("/etc/nginx/sites-enabled/a \"b\":7")
        );
        let shop = &config.sites[1];
        assert_eq!(shop.certs.len(), 2);
        assert_eq!(
            shop.certs[1].key,
            Some(PathBuf::from("/etc/ssl/shop-rsa.key"))
        );
        assert!(text.contains("# from /etc/nginx/sites-enabled/a \"b\":7: nginx server block (listen 443 ssl) second line\n"), "{text}");
        assert!(
            text.contains("#   /etc/apache2/sites-enabled/x.conf:3: broken [[site]]\n"),
            "{text}"
        );
        assert!(
            text.contains("#   apache /etc/apache2/apache2.conf: not found\n"),
            "{text}"
        );
        assert!(text.contains("# lineage old.example.org (/etc/letsencrypt/renewal/old.example.org.conf:1), domains old.example.org\n# [[site]]\n"), "{text}");
    }

    #[test]
    fn strings_escape_what_toml_needs() {
        assert_eq!(string("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
    }
}
