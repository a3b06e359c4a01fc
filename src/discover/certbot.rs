//! certbot: the lineages of `renewal/*.conf` under its config directory (`/etc/letsencrypt`).
//!
//! A renewal conf is a configobj file that certbot writes: `key = value` lines, the lineage's
//! paths at the top (`cert`, `privkey`, `chain`, `fullchain`, `archive_dir`), then
//! `[renewalparams]`. The lineage's name is the file's name without `.conf`; its domains are
//! the names of the certificate `live/` points at now, not certbot's request, so a lineage
//! whose certificate lost a name says so.

use std::path::{Path, PathBuf};

use crate::discover::certs;
use crate::discover::files::{self, ConfigFiles, FsFiles};
use crate::discover::{Lineage, Origin, Parsed, Warning};

/// Reads every lineage under the certbot config directory `dir`.
pub fn discover(dir: &Path) -> (Vec<Lineage>, Parsed) {
    let (mut lineages, mut parsed) = read(&FsFiles, dir);
    for lineage in &mut lineages {
        let Some(cert) = lineage.cert.clone().or(lineage.fullchain.clone()) else {
            continue;
        };
        match certs::peek(&cert) {
            Ok(peek) => lineage.domains = peek.dns_names,
            Err(err) => parsed.warnings.push(Warning::new(
                lineage.conf.clone(),
                format!("lineage {}: its domains are unknown: {err}", lineage.name),
            )),
        }
    }
    (lineages, parsed)
}

/// Reads the renewal confs under `dir` from `files`; domains are left empty.
pub fn read(files: &dyn ConfigFiles, dir: &Path) -> (Vec<Lineage>, Parsed) {
    let renewal = dir.join("renewal");
    let mut parsed = Parsed {
        how: format!("{}/*.conf", renewal.display()),
        ..Parsed::default()
    };
    let Some(entries) = files.list_dir(&renewal) else {
        if files.exists(&renewal) {
            parsed.warnings.push(Warning::new(
                Origin::file(&renewal),
                "cannot list the renewal directory (permission denied?)".to_owned(),
            ));
        }
        parsed.how = format!("{} (no renewal/ directory)", dir.display());
        return (Vec::new(), parsed);
    };
    let mut lineages = Vec::new();
    for path in entries {
        let Some(name) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".conf"))
        else {
            continue;
        };
        parsed.files_read += 1;
        match files.read(&path) {
            Ok(text) => match parse_renewal(name, &path, &text, dir) {
                Ok(lineage) => lineages.push(lineage),
                Err(warning) => parsed.warnings.push(warning),
            },
            Err(err) => parsed.warnings.push(Warning::new(
                Origin::file(&path),
                format!("cannot read the renewal conf: {err}"),
            )),
        }
    }
    (lineages, parsed)
}

/// Parses the renewal conf `text` of lineage `name` at `path`; relative paths are taken
/// from `dir`.
///
/// # Errors
///
/// A [`Warning`] when the conf names none of `cert` and `fullchain`, so no file can be
/// matched with a server's.
pub fn parse_renewal(name: &str, path: &Path, text: &str, dir: &Path) -> Result<Lineage, Warning> {
    let mut lineage = Lineage {
        name: name.to_owned(),
        conf: Origin::at(path, 1),
        cert: None,
        chain: None,
        fullchain: None,
        privkey: None,
        domains: Vec::new(),
        used_by: Vec::new(),
    };
    for line in text.lines() {
        let line = line.trim();
        // The lineage's paths come before the first section.
        if line.starts_with('[') {
            break;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        if value.is_empty() {
            continue;
        }
        let value: PathBuf = files::resolve(dir, Path::new(value));
        match key.trim() {
            "cert" => lineage.cert = Some(value),
            "chain" => lineage.chain = Some(value),
            "fullchain" => lineage.fullchain = Some(value),
            "privkey" => lineage.privkey = Some(value),
            _ => {}
        }
    }
    if lineage.cert.is_none() && lineage.fullchain.is_none() {
        return Err(Warning::new(
            Origin::file(path),
            format!(
                "lineage {name}: the renewal conf names no `cert` or `fullchain`; not a renewal conf?"
            ),
        ));
    }
    Ok(lineage)
}

/// A configobj value without its surrounding quotes.
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::files::MemFiles;

    const RENEWAL: &str = "# renew_before_expiry = 30 days
version = 2.1.0
archive_dir = /etc/letsencrypt/archive/blog.example.org
cert = /etc/letsencrypt/live/blog.example.org/cert.pem
privkey = /etc/letsencrypt/live/blog.example.org/privkey.pem
chain = /etc/letsencrypt/live/blog.example.org/chain.pem
fullchain = \"/etc/letsencrypt/live/blog.example.org/fullchain.pem\"

# Options used in the renewal process
[renewalparams]
account = 0123456789abcdef
authenticator = nginx
cert = /not/a/lineage/path.pem
";

    #[test]
    fn reads_the_lineage_paths_before_the_first_section() {
        let files = MemFiles::new()
            .with("/etc/letsencrypt/renewal/blog.example.org.conf", RENEWAL)
            .with("/etc/letsencrypt/renewal/README", "not a conf")
            .with(
                "/etc/letsencrypt/renewal/broken.conf",
                "[renewalparams]\nauthenticator = standalone\n",
            );
        let (lineages, parsed) = read(&files, Path::new("/etc/letsencrypt"));
        assert_eq!(lineages.len(), 1);
        let blog = &lineages[0];
        assert_eq!(blog.name, "blog.example.org");
        assert_eq!(
            blog.cert,
            Some(PathBuf::from(
                "/etc/letsencrypt/live/blog.example.org/cert.pem"
            ))
        );
        assert_eq!(
            blog.fullchain,
            Some(PathBuf::from(
                "/etc/letsencrypt/live/blog.example.org/fullchain.pem"
            ))
        );
        assert_eq!(
            blog.live_dir(),
            Some(Path::new("/etc/letsencrypt/live/blog.example.org"))
        );
        assert_eq!(parsed.files_read, 2);
        assert_eq!(parsed.warnings.len(), 1);
        assert!(
            parsed.warnings[0]
                .to_string()
                .starts_with("/etc/letsencrypt/renewal/broken.conf: lineage broken: the renewal conf names no `cert`"),
            "{}",
            parsed.warnings[0]
        );
    }

    #[test]
    fn a_missing_renewal_directory_gives_no_lineage_and_no_warning() {
        let (lineages, parsed) = read(&MemFiles::new(), Path::new("/etc/letsencrypt"));
        assert!(lineages.is_empty());
        assert!(parsed.warnings.is_empty());
        assert!(parsed.how.contains("no renewal/ directory"));
    }
}
