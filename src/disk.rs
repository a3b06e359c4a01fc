//! The disk side: what certificate a site's file holds now.
//!
//! Reads the PEM file a server is configured with (usually certbot's
//! `live/NAME/fullchain.pem`), takes the first certificate as the leaf, as servers do, and
//! keeps the rest as the chain. Everything that can go wrong with the file becomes a
//! [`DiskError`] naming the path and what to do, never a panic; the error is reported per
//! site, and the probes of the site still run.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cert::CertSummary;
use crate::pem::{self, PemError};

/// The most a certificate file may weigh. A full chain is a few kilobytes; a combined PEM
/// with a key and a long chain stays well under 100 KiB. Anything larger is not a certificate
/// file, and reading it whole could exhaust memory.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A certificate file as read from disk.
#[derive(Debug, Clone)]
pub struct DiskCert {
    /// The path as configured.
    pub path: PathBuf,
    /// The first certificate in the file, the one a server presents as its own.
    pub leaf: Arc<CertSummary>,
    /// The certificates after the leaf, in file order; from the chain file when the
    /// certificate file holds the leaf alone.
    pub chain: Vec<CertSummary>,
    /// Where `chain` came from when not from `path` (certbot's `chain.pem` beside `cert.pem`).
    pub chain_file: Option<PathBuf>,
    /// Oddities worth a look that do not stop the comparison.
    pub notes: Vec<String>,
}

/// Why a certificate file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiskError {
    /// Nothing at the path.
    #[error("{}: no such file; check the certificate path (`cert` in the config, or --cert)", .path.display())]
    NotFound {
        /// The configured path.
        path: PathBuf,
    },
    /// The path is a symbolic link to something that does not exist.
    #[error("{}: the symlink points to {}, which does not exist; check the lineage's archive directory", .path.display(), .target.display())]
    DanglingSymlink {
        /// The configured path.
        path: PathBuf,
        /// Where the link points.
        target: PathBuf,
    },
    /// The file or a directory above it is not readable by this process.
    #[error("{}: permission denied; give the user certdrift runs as read access (certbot makes live/ and archive/ 0700)", .path.display())]
    PermissionDenied {
        /// The configured path.
        path: PathBuf,
    },
    /// The path is a directory.
    #[error("{}: is a directory; the certificate path (`cert` in the config, or --cert) must name a PEM file such as fullchain.pem", .path.display())]
    IsDirectory {
        /// The configured path.
        path: PathBuf,
    },
    /// The path is a FIFO, a socket or a device, not a file: reading it could block forever
    /// (a FIFO without a writer) or never end (`/dev/zero`).
    #[error("{}: not a regular file (it is {what}); the certificate path (`cert` in the config, or --cert) must name a PEM file such as fullchain.pem", .path.display())]
    NotRegularFile {
        /// The configured path.
        path: PathBuf,
        /// What it is instead: `a FIFO`, `a socket`, `a character device`, ...
        what: &'static str,
    },
    /// The file has no bytes.
    #[error("{}: the file is empty; the last write to it may have failed", .path.display())]
    Empty {
        /// The configured path.
        path: PathBuf,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{}: the file has {size} bytes, more than the {limit} a certificate file may have", .path.display())]
    TooLarge {
        /// The configured path.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file holds no `CERTIFICATE` block.
    #[error("{}: no CERTIFICATE block in the file{}", .path.display(), found_labels(.found))]
    NoCertificate {
        /// The configured path.
        path: PathBuf,
        /// Labels of the blocks it does hold.
        found: Vec<String>,
    },
    /// A PEM block is malformed.
    #[error("{}: {source}", .path.display())]
    BadPem {
        /// The configured path.
        path: PathBuf,
        /// What is wrong, with its line.
        source: PemError,
    },
    /// A `CERTIFICATE` block does not hold a certificate.
    #[error("{}: line {line}: {detail}", .path.display())]
    BadCertificate {
        /// The configured path.
        path: PathBuf,
        /// Line of the block's `BEGIN` marker.
        line: usize,
        /// The parser's complaint.
        detail: String,
    },
    /// Any other I/O error.
    #[error("{}: cannot read: {detail}", .path.display())]
    Io {
        /// The configured path.
        path: PathBuf,
        /// The system's message.
        detail: String,
    },
}

impl DiskError {
    /// The configured path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::NotFound { path }
            | Self::DanglingSymlink { path, .. }
            | Self::PermissionDenied { path }
            | Self::IsDirectory { path }
            | Self::NotRegularFile { path, .. }
            | Self::Empty { path }
            | Self::TooLarge { path, .. }
            | Self::NoCertificate { path, .. }
            | Self::BadPem { path, .. }
            | Self::BadCertificate { path, .. }
            | Self::Io { path, .. } => path,
        }
    }

    /// A short, stable name for the kind of failure, for labels and JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::DanglingSymlink { .. } => "dangling_symlink",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::IsDirectory { .. } => "is_directory",
            Self::NotRegularFile { .. } => "not_regular_file",
            Self::Empty { .. } => "empty",
            Self::TooLarge { .. } => "too_large",
            Self::NoCertificate { .. } => "no_certificate",
            Self::BadPem { .. } => "bad_pem",
            Self::BadCertificate { .. } => "bad_certificate",
            Self::Io { .. } => "io",
        }
    }
}

/// Reads and summarizes the certificate file at `path`.
///
/// # Errors
///
/// A [`DiskError`] for a file that is missing, unreadable, a directory, a FIFO or device,
/// empty, too large, not PEM, or without a parsable certificate.
pub fn load(path: &Path) -> Result<DiskCert, DiskError> {
    load_blocks(path).map(|(cert, _)| cert)
}

/// Like [`load`], also returning every PEM block of the file (keys included), for callers
/// that want more of it than the certificates: the file is read once.
///
/// # Errors
///
/// As [`load`].
pub fn load_blocks(path: &Path) -> Result<(DiskCert, Vec<pem::PemBlock>), DiskError> {
    let bytes = read_capped(path)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DiskError::Empty {
            path: path.to_owned(),
        });
    }

    let blocks = pem::parse_blocks(&bytes).map_err(|source| DiskError::BadPem {
        path: path.to_owned(),
        source,
    })?;
    let mut certs = Vec::new();
    for block in blocks.iter().filter(|block| block.is_certificate()) {
        let summary =
            CertSummary::from_der(&block.der).map_err(|err| DiskError::BadCertificate {
                path: path.to_owned(),
                line: block.line,
                detail: err.to_string(),
            })?;
        certs.push((block.line, summary));
    }
    if certs.is_empty() {
        return Err(DiskError::NoCertificate {
            path: path.to_owned(),
            found: blocks.iter().map(|block| block.label.clone()).collect(),
        });
    }

    let (certs, repeats) = drop_repeats(certs);
    let mut notes = leaf_notes(&certs);
    notes.extend(repeats);
    let mut certs = certs.into_iter().map(|(_, summary)| summary);
    let leaf = certs
        .next()
        .map(Arc::new)
        .expect("at least one certificate, checked above");
    // `serve` keeps this for every site until the next probe: collected in place, the chain
    // would keep the spare capacity of the vector it came from, four entries for one.
    let mut chain: Vec<CertSummary> = certs.collect();
    chain.shrink_to_fit();
    let cert = DiskCert {
        path: path.to_owned(),
        leaf,
        chain,
        chain_file: None,
        notes,
    };
    Ok((cert, blocks))
}

/// Reads the certificate file at `path` and, when it holds the leaf alone, the chain from
/// `chain` or, without one, from `chain.pem` beside it (certbot's layout).
///
/// # Errors
///
/// A [`DiskError`] for the certificate file, or for an explicitly given chain file. A missing
/// `chain.pem` beside the file is not an error: the chain is then unknown.
pub fn load_with_chain(path: &Path, chain: Option<&Path>) -> Result<DiskCert, DiskError> {
    let mut cert = load(path)?;
    if !cert.chain.is_empty() {
        return Ok(cert);
    }
    let (chain_path, explicit) = match chain {
        Some(chain) => (chain.to_owned(), true),
        None => match path.parent() {
            Some(dir) if path.file_name() != Some(std::ffi::OsStr::new("chain.pem")) => {
                (dir.join("chain.pem"), false)
            }
            _ => return Ok(cert),
        },
    };
    match load(&chain_path) {
        Ok(chain_cert) => {
            cert.chain = std::iter::once(CertSummary::clone(&chain_cert.leaf))
                .chain(chain_cert.chain)
                .collect();
            cert.chain_file = Some(chain_path);
        }
        Err(err) if explicit => return Err(err),
        Err(_) => {}
    }
    Ok(cert)
}

/// The certificates without the blocks that repeat an earlier one (`cat a.pem a.pem`), and a
/// note for each repeat.
///
/// A repeat is not a chain member: counting it would report the leaf as an intermediate the
/// server fails to send, when the file is what is wrong.
fn drop_repeats(certs: Vec<(usize, CertSummary)>) -> (Vec<(usize, CertSummary)>, Vec<String>) {
    let mut kept: Vec<(usize, CertSummary)> = Vec::with_capacity(certs.len());
    let mut notes = Vec::new();
    for (line, cert) in certs {
        let first = kept
            .iter()
            .find(|(_, earlier)| earlier.fingerprint_sha256 == cert.fingerprint_sha256);
        match first {
            Some((first_line, _)) => notes.push(format!(
                "line {line} repeats the certificate at line {first_line} ({}); the copy is not \
                 counted as part of the chain, but servers send it as written: remove it",
                cert.subject
            )),
            None => kept.push((line, cert)),
        }
    }
    (kept, notes)
}

/// Notes when a later block looks more like the leaf than the first one does.
///
/// Servers present the first certificate of the file as theirs, so a file that lists the
/// chain first serves the intermediate as the leaf. That is worth saying, but the first
/// block stays the leaf because that is what the server will serve.
fn leaf_notes(certs: &[(usize, CertSummary)]) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(((_, first), rest)) = certs.split_first() else {
        return notes;
    };
    for (line, cert) in rest {
        if cert.is_ca {
            continue;
        }
        if first.is_ca {
            notes.push(format!(
                "the first certificate is a CA certificate ({}), and the one at line {line} ({}) looks like the leaf: \
                 servers present the first one, so list the leaf first",
                first.subject, cert.subject
            ));
        } else {
            notes.push(format!(
                "line {line} holds a second end-entity certificate ({}); servers present only the first ({})",
                cert.subject, first.subject
            ));
        }
    }
    notes
}

/// Opens `path` for reading, refusing what is neither a regular file nor a directory (a
/// FIFO, a device, a socket) before the open can block on it, and again after it, for a
/// path swapped in between. The error for a refused path says what it is ("not a regular
/// file (it is a FIFO)").
///
/// # Errors
///
/// The stat's or the open's error, or [`std::io::ErrorKind::InvalidInput`] for a special
/// file.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    let refuse = |metadata: &std::fs::Metadata| match special_file_kind(metadata.file_type()) {
        Some(what) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a regular file (it is {what})"),
        )),
        None => Ok(()),
    };
    // Stat first, through symlinks as the open goes: opening a FIFO blocks until a writer
    // comes.
    refuse(&std::fs::metadata(path)?)?;
    let file = File::open(path)?;
    refuse(&file.metadata()?)?;
    Ok(file)
}

/// What a path that is neither a regular file nor a directory is, in words (`a FIFO`); `None`
/// for a regular file or a directory. `file_type` is of the path with symlinks followed.
pub fn special_file_kind(file_type: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_file() || file_type.is_dir() {
        None
    } else if file_type.is_fifo() {
        Some("a FIFO")
    } else if file_type.is_socket() {
        Some("a socket")
    } else if file_type.is_char_device() {
        Some("a character device")
    } else if file_type.is_block_device() {
        Some("a block device")
    } else {
        Some("not a file")
    }
}

fn read_capped(path: &Path) -> Result<Vec<u8>, DiskError> {
    // Look before opening: opening a FIFO blocks until a writer comes, so the stat (through
    // symlinks, as the open would go) must refuse it first. The open's own stat below
    // checks again, for a path swapped in between.
    let target = std::fs::metadata(path).map_err(|err| open_error(path, &err))?;
    refuse_special(path, &target)?;
    let file = File::open(path).map_err(|err| open_error(path, &err))?;
    let metadata = file.metadata().map_err(|err| open_error(path, &err))?;
    refuse_special(path, &metadata)?;
    if metadata.is_dir() {
        return Err(DiskError::IsDirectory {
            path: path.to_owned(),
        });
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(DiskError::TooLarge {
            path: path.to_owned(),
            size: metadata.len(),
            limit: MAX_FILE_BYTES,
        });
    }

    // The size can change between the stat and the read (a writer still at work, or a
    // device file), so the read is capped too.
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| open_error(path, &err))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(DiskError::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(bytes)
}

fn refuse_special(path: &Path, metadata: &std::fs::Metadata) -> Result<(), DiskError> {
    match special_file_kind(metadata.file_type()) {
        Some(what) => Err(DiskError::NotRegularFile {
            path: path.to_owned(),
            what,
        }),
        None => Ok(()),
    }
}

fn open_error(path: &Path, err: &io::Error) -> DiskError {
    let path = path.to_owned();
    match err.kind() {
        io::ErrorKind::NotFound => match std::fs::read_link(&path) {
            Ok(target) => DiskError::DanglingSymlink { path, target },
            Err(_) => DiskError::NotFound { path },
        },
        io::ErrorKind::PermissionDenied => DiskError::PermissionDenied { path },
        io::ErrorKind::IsADirectory => DiskError::IsDirectory { path },
        _ => DiskError::Io {
            path,
            detail: err.to_string(),
        },
    }
}

fn found_labels(found: &[String]) -> String {
    if found.is_empty() {
        " (no PEM block at all; is it DER? convert it with `openssl x509 -inform der`)".to_owned()
    } else {
        format!(" (found: {})", found.join(", "))
    }
}
