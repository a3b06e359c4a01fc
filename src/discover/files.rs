//! Where the config parsers get their text: the file system, or a set of files in memory.
//!
//! The parsers never touch the disk themselves. They ask a [`ConfigFiles`] for a file's text
//! and for the files an include pattern matches, so the same parser reads the real files,
//! the files `nginx -T` printed, or the unit tests' fixtures. Patterns follow glob(3) as the
//! servers use it (`*`, `?` and `[...]` within one path component, sorted results, no match
//! for a leading dot unless the pattern has one).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use crate::discover::{Origin, Warning};

/// A source of configuration files.
pub trait ConfigFiles {
    /// The text of the file at `path`.
    ///
    /// # Errors
    ///
    /// The I/O error (not found, permission denied, a directory, not UTF-8).
    fn read(&self, path: &Path) -> io::Result<String>;

    /// The files matching `pattern`, sorted; the pattern itself when it has no wildcard and
    /// the file exists; nothing when nothing matches.
    fn glob(&self, pattern: &Path) -> Vec<PathBuf>;

    /// The entries of the directory `dir`, sorted, when it is one.
    fn list_dir(&self, dir: &Path) -> Option<Vec<PathBuf>>;

    /// Whether something is at `path`.
    fn exists(&self, path: &Path) -> bool;

    /// Whether `path` is a regular file (following symlinks): not a directory, FIFO,
    /// device, or a symlink that is broken or loops.
    fn is_file(&self, path: &Path) -> bool {
        self.exists(path)
    }

    /// The path that identifies the file at `path` however it is reached (symlinks
    /// resolved on a real file system), for include-loop detection.
    fn canonical(&self, path: &Path) -> PathBuf {
        normalize(path)
    }
}

/// The largest config file (or config tool output) read: 8 MiB. A larger one is refused
/// with a warning; no server config is that big, and reading one cost seconds and GBs.
pub const MAX_FILE_BYTES: u64 = 8 << 20;

/// The most files one source reads, includes included.
pub const MAX_FILES_PER_SOURCE: usize = 10_000;

/// The most bytes one source reads, includes included: 64 MiB.
pub const MAX_BYTES_PER_SOURCE: u64 = 64 << 20;

/// The files one parser is reading: the include stack (a file on it is a loop, not read
/// again) and what the source has read so far, against [`MAX_FILES_PER_SOURCE`] and
/// [`MAX_BYTES_PER_SOURCE`].
#[derive(Debug, Default)]
pub struct IncludeStack {
    open: Vec<PathBuf>,
    files: usize,
    bytes: u64,
    /// Whether [`Refused::Budget`] was given once already.
    budget_told: bool,
}

/// Why [`IncludeStack::enter`] did not give a file's text.
#[derive(Debug)]
pub enum Refused {
    /// The file is already being read further up the include chain.
    Loop,
    /// The source has read its [`MAX_FILES_PER_SOURCE`] files or [`MAX_BYTES_PER_SOURCE`].
    Budget,
    /// The budget is spent and [`Refused::Budget`] was said already: nothing more to warn.
    BudgetAgain,
    /// The file cannot be read.
    Io(io::Error),
}

impl IncludeStack {
    /// Nothing read yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `path` and puts it on the stack; the caller calls [`IncludeStack::leave`]
    /// when done with it.
    ///
    /// # Errors
    ///
    /// [`Refused`]: a loop, the source's budget spent, or the read error.
    pub fn enter(&mut self, files: &dyn ConfigFiles, path: &Path) -> Result<String, Refused> {
        let canonical = files.canonical(path);
        if self.open.contains(&canonical) {
            return Err(Refused::Loop);
        }
        if self.files >= MAX_FILES_PER_SOURCE || self.bytes >= MAX_BYTES_PER_SOURCE {
            if std::mem::replace(&mut self.budget_told, true) {
                return Err(Refused::BudgetAgain);
            }
            return Err(Refused::Budget);
        }
        let text = files.read(path).map_err(Refused::Io)?;
        self.files += 1;
        self.bytes += text.len() as u64;
        self.open.push(canonical);
        Ok(text)
    }

    /// Takes the file last entered off the stack.
    pub fn leave(&mut self) {
        self.open.pop();
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Loop => f.write_str("already being read (an include loop); not read again"),
            Self::Budget | Self::BudgetAgain => write!(
                f,
                "not read: this source already read {MAX_FILES_PER_SOURCE} files or {} MiB, the most certdrift reads from one source (an include loop?)",
                MAX_BYTES_PER_SOURCE >> 20
            ),
            Self::Io(err) => err.fmt(f),
        }
    }
}

/// The error for a file (or tool output) of `size` bytes, over [`MAX_FILE_BYTES`].
pub fn too_big(size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{size} bytes, over the {} MiB certdrift reads from one config file; not read",
            MAX_FILE_BYTES >> 20
        ),
    )
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsFiles;

impl ConfigFiles for FsFiles {
    fn read(&self, path: &Path) -> io::Result<String> {
        let file = crate::disk::open_regular(path)?;
        // Read one byte past the cap, so a file that grows while read is refused too.
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            let size = std::fs::metadata(path).map_or(bytes.len() as u64, |meta| meta.len());
            return Err(too_big(size));
        }
        String::from_utf8(bytes).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "not UTF-8 text; a config file must be text",
            )
        })
    }

    fn glob(&self, pattern: &Path) -> Vec<PathBuf> {
        glob_with(pattern, |dir| {
            let entries = std::fs::read_dir(dir).ok()?;
            // Names that are not UTF-8 are kept: the file is read all the same, and a
            // certificate under such a name is refused with a warning when sites are built.
            let mut names: Vec<OsString> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name())
                .collect();
            names.sort();
            Some(names)
        })
    }

    fn list_dir(&self, dir: &Path) -> Option<Vec<PathBuf>> {
        let entries = std::fs::read_dir(dir).ok()?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .collect();
        paths.sort();
        Some(paths)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn is_file(&self, path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|meta| meta.is_file())
    }

    fn canonical(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| normalize(path))
    }
}

/// Files held in memory, by absolute path: the unit tests' fixtures, and what `nginx -T`
/// printed.
#[derive(Debug, Clone, Default)]
pub struct MemFiles {
    files: BTreeMap<PathBuf, Result<String, io::ErrorKind>>,
}

impl MemFiles {
    /// No files.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the file at `path` with `text`.
    pub fn with(mut self, path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        self.files.insert(path.into(), Ok(text.into()));
        self
    }

    /// Adds a file that exists but cannot be read, failing with `kind`.
    pub fn with_unreadable(mut self, path: impl Into<PathBuf>, kind: io::ErrorKind) -> Self {
        self.files.insert(path.into(), Err(kind));
        self
    }

    /// Adds the file at `path` with `text`.
    pub fn insert(&mut self, path: PathBuf, text: String) {
        self.files.insert(path, Ok(text));
    }

    /// Whether no file is held.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

impl ConfigFiles for MemFiles {
    fn read(&self, path: &Path) -> io::Result<String> {
        match self.files.get(&normalize(path)) {
            Some(Ok(text)) if text.len() as u64 > MAX_FILE_BYTES => Err(too_big(text.len() as u64)),
            Some(Ok(text)) => Ok(text.clone()),
            Some(Err(kind)) => Err(io::Error::from(*kind)),
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }

    fn glob(&self, pattern: &Path) -> Vec<PathBuf> {
        glob_with(pattern, |dir| {
            let mut names: Vec<OsString> = self
                .files
                .keys()
                .filter_map(|path| child_name(dir, path))
                .collect();
            names.sort();
            names.dedup();
            (!names.is_empty()).then_some(names)
        })
    }

    fn list_dir(&self, dir: &Path) -> Option<Vec<PathBuf>> {
        let dir = normalize(dir);
        let paths: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|path| path.parent() == Some(dir.as_path()))
            .cloned()
            .collect();
        (!paths.is_empty()).then_some(paths)
    }

    fn exists(&self, path: &Path) -> bool {
        let path = normalize(path);
        self.files.contains_key(&path) || self.files.keys().any(|file| file.starts_with(&path))
    }
}

/// The name of the entry of `dir` that `path` is in or under, if it is under `dir`.
fn child_name(dir: &Path, path: &Path) -> Option<OsString> {
    let rest = path.strip_prefix(dir).ok()?;
    let first = rest.components().next()?;
    Some(first.as_os_str().to_owned())
}

/// Expands `pattern` component by component, listing directories with `list` (sorted names,
/// `None` when not a directory).
fn glob_with(pattern: &Path, list: impl Fn(&Path) -> Option<Vec<OsString>>) -> Vec<PathBuf> {
    let pattern = normalize(pattern);
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    let components: Vec<Component<'_>> = pattern.components().collect();
    for (index, component) in components.iter().enumerate() {
        let last = index + 1 == components.len();
        let text = component.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        if !has_wildcard(&text) {
            for base in &current {
                next.push(base.join(component.as_os_str()));
            }
        } else {
            for base in &current {
                let dir = if base.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    base.as_path()
                };
                for name in list(dir).unwrap_or_default() {
                    if wildcard_match(&text, &name.to_string_lossy()) {
                        next.push(base.join(&name));
                    }
                }
            }
        }
        if !last {
            next.retain(|path| list(path).is_some());
        }
        current = next;
    }
    // A literal pattern names one file; keep it only when it is there.
    current.retain(|path| {
        let parent = path.parent().unwrap_or(Path::new("/"));
        match path.file_name() {
            Some(name) => list(parent).is_some_and(|names| names.iter().any(|n| n == name)),
            None => false,
        }
    });
    current
}

/// Why an include of `path`, which matched nothing, failed: the read error, or "not found".
pub fn why_missing(files: &dyn ConfigFiles, path: &Path) -> String {
    match files.read(path) {
        Err(err) => err.to_string(),
        Ok(_) => "not found".to_owned(),
    }
}

/// Whether `text` holds a glob wildcard.
pub fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// Matches one path component against a glob(3) pattern: `*` any run, `?` one character,
/// `[abc]`, `[a-z]` and `[!a]` (or `[^a]`) one of a set. A leading dot must be matched by a
/// literal dot.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    match_from(&pattern, &name)
}

fn match_from(pattern: &[char], name: &[char]) -> bool {
    match pattern.first() {
        None => name.is_empty(),
        Some('*') => (0..=name.len()).any(|skip| match_from(&pattern[1..], &name[skip..])),
        Some('?') => !name.is_empty() && match_from(&pattern[1..], &name[1..]),
        Some('[') => match (name.first(), class_end(pattern)) {
            (Some(&ch), Some(end)) => {
                class_matches(&pattern[1..end], ch) && match_from(&pattern[end + 1..], &name[1..])
            }
            // An unclosed `[` is a literal.
            (Some(&ch), None) => ch == '[' && match_from(&pattern[1..], &name[1..]),
            (None, _) => false,
        },
        Some(&literal) => name.first() == Some(&literal) && match_from(&pattern[1..], &name[1..]),
    }
}

/// The index of the `]` closing the class that opens at `pattern[0]`.
fn class_end(pattern: &[char]) -> Option<usize> {
    let mut index = 1;
    if matches!(pattern.get(index), Some('!' | '^')) {
        index += 1;
    }
    // A `]` right after the opening (or the negation) is part of the set.
    if pattern.get(index) == Some(&']') {
        index += 1;
    }
    pattern[index..]
        .iter()
        .position(|&ch| ch == ']')
        .map(|at| at + index)
}

fn class_matches(set: &[char], ch: char) -> bool {
    let (negated, set) = match set.first() {
        Some('!' | '^') => (true, &set[1..]),
        _ => (false, set),
    };
    let mut found = false;
    let mut index = 0;
    while index < set.len() {
        if index + 2 < set.len() && set[index + 1] == '-' {
            found |= (set[index]..=set[index + 2]).contains(&ch);
            index += 3;
        } else {
            found |= set[index] == ch;
            index += 1;
        }
    }
    found != negated
}

/// `path` with `.` and `..` resolved lexically (symlinks are not followed: a certbot
/// `live/` path must stay a `live/` path).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `path` taken relative to `base` when it is relative, normalized.
pub fn resolve(base: &Path, path: &Path) -> PathBuf {
    normalize(&base.join(path))
}

/// How deep includes may nest before a chain is taken for a loop that the stack of open
/// files did not catch (the same file reached under different names).
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// The warning for an include (`keyword` as the server spells it) nested past
/// [`MAX_INCLUDE_DEPTH`].
pub fn too_deep(keyword: &str, pattern: &str, origin: Origin) -> Warning {
    Warning::new(
        origin,
        format!(
            "{keyword} {pattern}: includes nested more than {MAX_INCLUDE_DEPTH} deep (a loop?); not followed"
        ),
    )
}

/// The warning for a server's main config that cannot be read.
pub fn unreadable_config(server: &str, path: &Path, err: &dyn fmt::Display) -> Warning {
    Warning::new(
        Origin::file(path),
        format!("cannot read the {server} config: {err}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_or_fifo_is_refused_before_it_is_read() {
        // /dev/zero used to be read to the cap ("0 bytes, over the 8 MiB ..."), and a FIFO
        // blocked discovery for good.
        let err = FsFiles.read(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a regular file (it is a character device)"
        );
    }

    #[test]
    fn wildcards_match_within_one_component() {
        assert!(wildcard_match("*.conf", "blog.conf"));
        assert!(!wildcard_match("*.conf", "blog.conf.bak"));
        assert!(!wildcard_match("*.conf", ".hidden.conf"));
        assert!(wildcard_match(".*", ".hidden"));
        assert!(wildcard_match("site?.pem", "site1.pem"));
        assert!(wildcard_match("[a-c]*", "blog"));
        assert!(!wildcard_match("[!a-c]*", "blog"));
        assert!(wildcard_match("[^a-c]*", "mail"));
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("a[", "a["));
    }

    #[test]
    fn globs_expand_sorted_and_skip_what_is_missing() {
        let files = MemFiles::new()
            .with("/etc/nginx/sites-enabled/b.conf", "")
            .with("/etc/nginx/sites-enabled/a.conf", "")
            .with("/etc/nginx/sites-enabled/readme", "")
            .with("/etc/nginx/conf.d/x/y.conf", "");
        assert_eq!(
            files.glob(Path::new("/etc/nginx/sites-enabled/*.conf")),
            [
                PathBuf::from("/etc/nginx/sites-enabled/a.conf"),
                PathBuf::from("/etc/nginx/sites-enabled/b.conf")
            ]
        );
        assert_eq!(
            files.glob(Path::new("/etc/nginx/*/x/*.conf")),
            [PathBuf::from("/etc/nginx/conf.d/x/y.conf")]
        );
        assert!(files.glob(Path::new("/etc/nginx/none/*.conf")).is_empty());
        assert_eq!(
            files.glob(Path::new("/etc/nginx/sites-enabled/readme")),
            [PathBuf::from("/etc/nginx/sites-enabled/readme")]
        );
        assert!(files.glob(Path::new("/etc/nginx/missing.conf")).is_empty());
    }

    #[test]
    fn the_file_system_globs_like_memory() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.conf", "a.conf", ".c.conf", "d.txt"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let found = FsFiles.glob(&dir.path().join("*.conf"));
        assert_eq!(
            found,
            [dir.path().join("a.conf"), dir.path().join("b.conf")]
        );
        assert!(FsFiles.glob(&dir.path().join("nothing-*")).is_empty());
    }

    #[test]
    fn paths_normalize_lexically() {
        assert_eq!(
            normalize(Path::new("/etc/nginx/./sites/../ssl/a.pem")),
            PathBuf::from("/etc/nginx/ssl/a.pem")
        );
        assert_eq!(
            resolve(Path::new("/etc/apache2"), Path::new("ssl/a.pem")),
            PathBuf::from("/etc/apache2/ssl/a.pem")
        );
        assert_eq!(
            resolve(Path::new("/etc/apache2"), Path::new("/abs/a.pem")),
            PathBuf::from("/abs/a.pem")
        );
    }

    #[test]
    fn the_include_stack_refuses_loops_and_a_spent_budget() {
        let files = MemFiles::new()
            .with("/etc/a.conf", "x")
            .with("/etc/b.conf", "y");
        let mut stack = IncludeStack::new();
        assert_eq!(stack.enter(&files, Path::new("/etc/a.conf")).unwrap(), "x");
        assert!(matches!(
            stack.enter(&files, Path::new("/etc/./a.conf")),
            Err(Refused::Loop)
        ));
        stack.leave();
        for _ in 1..MAX_FILES_PER_SOURCE {
            stack.enter(&files, Path::new("/etc/b.conf")).unwrap();
            stack.leave();
        }
        let refused = stack.enter(&files, Path::new("/etc/a.conf")).unwrap_err();
        assert!(matches!(refused, Refused::Budget));
        assert!(
            refused.to_string().contains("10000 files or 64 MiB"),
            "{refused}"
        );
    }

    #[test]
    fn a_file_over_the_size_cap_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.conf");
        std::fs::write(&path, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        let err = FsFiles.read(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "8388609 bytes, over the 8 MiB certdrift reads from one config file; not read"
        );
        std::fs::write(&path, "ok").unwrap();
        assert_eq!(FsFiles.read(&path).unwrap(), "ok");
    }

    #[test]
    fn names_that_are_not_utf8_still_match_a_glob() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join(OsStr::from_bytes(b"caf\xe9.conf"));
        std::fs::write(&odd, "").unwrap();
        assert_eq!(FsFiles.glob(&dir.path().join("*.conf")), [odd]);
    }
}
