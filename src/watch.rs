//! Instant detection: `serve` watches every certificate, chain and key file, and re-checks a
//! site the moment one of its files changes.
//!
//! Renewals replace files in three ways, and all three show up as events in a directory, not
//! on the file: certbot re-points `live/NAME/*.pem` by unlink and symlink (four links, one
//! after another); Kubernetes swaps its `..data` directory symlink by rename; other tools
//! write a temp file and rename it over the old one. So the watcher (the `notify` crate,
//! inotify on Linux) watches directories, not files: the directory of each configured path,
//! of every symlink on the way to the file, and of the file itself, recomputed after each
//! change. Events only wake it up: it waits until the directory has been quiet for
//! [`DEBOUNCE`] (certbot's four links land as one change), then compares each site's
//! [`FileIdentity`]s with the last ones and wakes the sites whose files changed. The same
//! comparison runs every `watch_fallback` as well, because inotify misses changes on some
//! filesystems (NFS, some FUSE and overlay setups) and on bind-mounted single files.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify::{EventKind, RecursiveMode, Watcher};
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::{CertFiles, Config};

/// How long a burst of events must be quiet before the files are compared.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// The longest a burst may delay the comparison: a file rewritten in a loop still gets
/// re-checked.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(2);

/// The most symlinks followed for one path, as the kernel's own limit (`ELOOP`).
const MAX_SYMLINKS: usize = 40;

/// What identifies the content a path leads to, cheaply (no read): the resolved file, its
/// inode, size and modification time, and the modification time of every symlink on the
/// way. `None` when the path does not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIdentity {
    resolved: PathBuf,
    device: u64,
    inode: u64,
    size: u64,
    modified: Option<SystemTime>,
    links_modified: Vec<Option<SystemTime>>,
}

impl FileIdentity {
    /// The latest modification time among the file and the symlinks leading to it.
    fn changed_at(&self) -> Option<OffsetDateTime> {
        self.links_modified
            .iter()
            .copied()
            .chain([self.modified])
            .flatten()
            .max()
            .map(OffsetDateTime::from)
    }
}

/// `path` resolved one component at a time: the file, and each symlink met (its own path
/// and its modification time).
struct Resolved {
    file: PathBuf,
    links: Vec<(PathBuf, Option<SystemTime>)>,
}

/// When the content at `path` last changed, as far as the file system tells: the latest
/// modification time among the file and the symlinks leading to it (a re-pointed link is
/// newer than the old archive file it now points at). `None` when the path does not resolve.
pub fn changed_at(path: &Path) -> Option<OffsetDateTime> {
    identity(path)?.changed_at()
}

/// The identity of what `path` leads to now.
pub fn identity(path: &Path) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt;

    let resolved = resolve(path)?;
    let metadata = std::fs::metadata(&resolved.file).ok()?;
    Some(FileIdentity {
        device: metadata.dev(),
        inode: metadata.ino(),
        size: metadata.len(),
        modified: metadata.modified().ok(),
        links_modified: resolved.links.iter().map(|(_, at)| *at).collect(),
        resolved: resolved.file,
    })
}

/// Every file a site's certificate depends on: the certificate, the chain (the explicit
/// one, or certbot's `chain.pem` beside the certificate) and the key.
pub fn watched_files(certs: &[CertFiles]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for cert in certs {
        files.push(cert.cert.clone());
        match &cert.chain {
            Some(chain) => files.push(chain.clone()),
            None => {
                if let Some(dir) = cert.cert.parent() {
                    files.push(dir.join("chain.pem"));
                }
            }
        }
        files.extend(cert.key.clone());
    }
    files
}

/// Watches every site's files until `stop`, waking `wakers[i]` when site `i`'s files change.
///
/// Never fails: when the platform's watcher cannot be set up (inotify's watch limit), it
/// says so once and relies on the periodic comparison alone.
pub async fn run(config: Arc<Config>, wakers: Vec<Arc<Notify>>, mut stop: watch::Receiver<bool>) {
    let files: Vec<Vec<PathBuf>> = config
        .sites
        .iter()
        .map(|site| watched_files(&site.certs))
        .collect();
    let snapshot = |files: &[PathBuf]| files.iter().map(|f| identity(f)).collect::<Vec<_>>();
    let mut last: Vec<Vec<Option<FileIdentity>>> = files.iter().map(|f| snapshot(f)).collect();

    let (events_tx, mut events) = mpsc::channel::<()>(16);
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| {
            // Opens and reads (certdrift's own among them, at every pass) change nothing.
            if event.is_ok_and(|event| !matches!(event.kind, EventKind::Access(_))) {
                // A full channel already holds a wake-up: dropping this one loses nothing.
                let _ = events_tx.try_send(());
            }
        },
    ) {
        Ok(watcher) => Some(watcher),
        Err(err) => {
            warn!(error = %err, fallback = %humantime::format_duration(config.watch_fallback), "cannot watch the certificate files; comparing them periodically only");
            None
        }
    };
    let mut watched = HashSet::new();
    if let Some(watcher) = &mut watcher {
        rewatch(watcher, &files, &mut watched);
        info!(
            directories = watched.len(),
            "watching the certificate files"
        );
    }

    let mut fallback = tokio::time::interval(config.watch_fallback);
    fallback.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let by_event = tokio::select! {
            _ = stop.changed() => return,
            _ = fallback.tick() => false,
            event = events.recv() => {
                if event.is_none() {
                    // The watcher is gone; the fallback goes on.
                    std::future::pending::<()>().await;
                }
                true
            }
        };
        if by_event {
            let burst_end = Instant::now() + MAX_DEBOUNCE;
            loop {
                let quiet = (Instant::now() + DEBOUNCE).min(burst_end);
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep_until(quiet) => break,
                    Some(()) = events.recv() => {}
                }
            }
        }

        let mut any = false;
        for (index, site_files) in files.iter().enumerate() {
            let now = snapshot(site_files);
            if now != last[index] {
                debug!(site = %config.sites[index].name, by_event, "certificate files changed");
                last[index] = now;
                wakers[index].notify_one();
                any = true;
            }
        }
        if any && let Some(watcher) = &mut watcher {
            rewatch(watcher, &files, &mut watched);
        }
    }
}

/// Watches the directories `files` depend on now, and stops watching those they no longer
/// do.
fn rewatch(watcher: &mut impl Watcher, files: &[Vec<PathBuf>], watched: &mut HashSet<PathBuf>) {
    let wanted: HashSet<PathBuf> = files
        .iter()
        .flatten()
        .flat_map(|file| directories_of(file))
        .collect();
    for gone in watched.difference(&wanted) {
        let _ = watcher.unwatch(gone);
    }
    watched.retain(|dir| wanted.contains(dir));
    for dir in wanted {
        if watched.contains(&dir) {
            continue;
        }
        match watcher.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                watched.insert(dir);
            }
            Err(err) => debug!(directory = %dir.display(), error = %err, "cannot watch"),
        }
    }
}

/// The directories whose entries decide what `file` leads to: the configured path's, each
/// symlink's, and the resolved file's.
fn directories_of(file: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = file.parent().map(Path::to_owned).into_iter().collect();
    if let Some(resolved) = resolve(file) {
        let links = resolved.links.iter().map(|(link, _)| link);
        dirs.extend(
            links
                .chain([&resolved.file])
                .filter_map(|path| path.parent().map(Path::to_owned)),
        );
    }
    dirs.retain(|dir| dir.is_dir());
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Resolves `path` component by component, as the kernel does, noting each symlink.
fn resolve(path: &Path) -> Option<Resolved> {
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let mut pending: Vec<PathBuf> = components_reversed(&absolute);
    let mut file = PathBuf::from("/");
    let mut links = Vec::new();
    while let Some(part) = pending.pop() {
        if part.as_os_str() == ".." {
            file.pop();
            continue;
        }
        let candidate = file.join(&part);
        let metadata = std::fs::symlink_metadata(&candidate).ok()?;
        if !metadata.file_type().is_symlink() {
            file = candidate;
            continue;
        }
        if links.len() == MAX_SYMLINKS {
            return None;
        }
        let target = std::fs::read_link(&candidate).ok()?;
        links.push((candidate, metadata.modified().ok()));
        if target.is_absolute() {
            file = PathBuf::from("/");
        }
        pending.extend(components_reversed(&target));
    }
    Some(Resolved { file, links })
}

/// The normal and `..` components of `path`, last first (a stack to pop).
fn components_reversed(path: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<PathBuf> = path
        .components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(PathBuf::from(name)),
            Component::ParentDir => Some(PathBuf::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    parts.reverse();
    parts
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn resolves_a_kubernetes_style_double_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("..2026_01")).unwrap();
        std::fs::write(root.join("..2026_01/tls.crt"), "one").unwrap();
        symlink("..2026_01", root.join("..data")).unwrap();
        symlink("..data/tls.crt", root.join("tls.crt")).unwrap();

        let resolved = resolve(&root.join("tls.crt")).expect("the path resolves");
        let canonical = std::fs::canonicalize(root.join("tls.crt")).unwrap();
        assert_eq!(resolved.file, canonical);
        let links: Vec<&PathBuf> = resolved.links.iter().map(|(link, _)| link).collect();
        assert_eq!(links, [&root.join("tls.crt"), &root.join("..data")]);

        let before = identity(&root.join("tls.crt")).unwrap();
        std::fs::create_dir(root.join("..2026_02")).unwrap();
        std::fs::write(root.join("..2026_02/tls.crt"), "two").unwrap();
        symlink("..2026_02", root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        let after = identity(&root.join("tls.crt")).unwrap();
        assert_ne!(before, after);
        assert_eq!(
            after.resolved,
            std::fs::canonicalize(root.join("..2026_02/tls.crt")).unwrap()
        );
    }

    #[test]
    fn a_symlink_loop_does_not_resolve() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        assert!(resolve(&dir.path().join("a")).is_none());
        assert!(changed_at(&dir.path().join("a")).is_none());
    }
}
