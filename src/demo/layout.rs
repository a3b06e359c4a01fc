//! certbot's on-disk layout, written the way certbot writes it.
//!
//! A lineage `NAME` keeps every generation in `archive/NAME/{cert,chain,fullchain,privkey}N.pem`
//! and points `live/NAME/<kind>.pem` at the current one with relative symlinks. A renewal writes
//! generation N+1, then re-points each link by unlink and symlink, one after another: for an
//! instant a link is missing, and for a while the four links disagree. Servers load
//! `live/NAME/fullchain.pem` (or `cert.pem` plus `chain.pem`) and keep what they loaded.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::demo::ca::IssuedCert;

/// The four files of a certbot generation.
pub const KINDS: [&str; 4] = ["cert", "chain", "fullchain", "privkey"];

/// One certbot lineage under a config directory (what certbot calls `--config-dir`).
#[derive(Debug, Clone)]
pub struct CertbotLineage {
    root: PathBuf,
    name: String,
}

impl CertbotLineage {
    /// A lineage `name` under `root`; nothing is written until a generation is.
    pub fn new(root: impl Into<PathBuf>, name: &str) -> Self {
        Self {
            root: root.into(),
            name: name.to_owned(),
        }
    }

    /// Writes generation `n` into `archive/NAME/`, with certbot's modes (0700 directories,
    /// 0600 key, 0644 the rest).
    ///
    /// # Errors
    ///
    /// Any I/O error from creating the directories or writing the files.
    pub fn write_generation(&self, n: u32, issued: &IssuedCert) -> io::Result<()> {
        let archive = self.archive_dir();
        fs::create_dir_all(&archive)?;
        fs::create_dir_all(self.live_dir())?;
        for dir in [self.root.join("archive"), self.root.join("live")] {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }

        let contents = [
            ("cert", issued.cert_pem().to_owned(), 0o644),
            ("chain", issued.chain_pem().to_owned(), 0o644),
            ("fullchain", issued.fullchain_pem(), 0o644),
            ("privkey", issued.key_pem().to_owned(), 0o600),
        ];
        for (kind, text, mode) in contents {
            let path = archive.join(format!("{kind}{n}.pem"));
            fs::write(&path, text)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        }
        Ok(())
    }

    /// Points every `live/NAME/<kind>.pem` at generation `n`, by unlink then symlink, as
    /// certbot does (not atomic).
    ///
    /// # Errors
    ///
    /// Any I/O error from removing or creating a link.
    pub fn point_live_at(&self, n: u32) -> io::Result<()> {
        fs::create_dir_all(self.live_dir())?;
        for kind in KINDS {
            let link = self.live_path(kind);
            match fs::remove_file(&link) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
            let target = Path::new("../../archive")
                .join(&self.name)
                .join(format!("{kind}{n}.pem"));
            symlink(target, &link)?;
        }
        Ok(())
    }

    /// `live/NAME/<kind>.pem`.
    pub fn live_path(&self, kind: &str) -> PathBuf {
        self.live_dir().join(format!("{kind}.pem"))
    }

    /// `live/NAME`.
    pub fn live_dir(&self) -> PathBuf {
        self.root.join("live").join(&self.name)
    }

    /// `archive/NAME`.
    pub fn archive_dir(&self) -> PathBuf {
        self.root.join("archive").join(&self.name)
    }
}
