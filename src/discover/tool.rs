//! Running a server's own config tool (`nginx -T`, `postconf`, `doveconf`): found on the
//! PATH or in the sbin directories, bounded in time, its output captured.
//!
//! This is the only part of discovery that starts processes. A tool that is missing, fails
//! or hangs is not an error of discovery: the caller falls back to reading the files.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::discover::files::MAX_FILE_BYTES;

/// How long a config tool may run. `nginx -T` on a large config takes well under a second.
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a tool gave no usable output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// The program is not installed (not on the PATH nor in an sbin directory).
    NotInstalled,
    /// It ran and failed; what it said on stderr (or stdout), trimmed.
    Failed(String),
}

/// Where `program` is: the PATH first, then the sbin directories, which a non-root PATH
/// often lacks although the config tools live there.
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/sbin", "/usr/local/sbin"]
                .into_iter()
                .map(PathBuf::from),
        )
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Runs `program ARGS` with no stdin and returns its stdout when it exits 0.
///
/// # Errors
///
/// [`ToolError::NotInstalled`] when the program is not found; [`ToolError::Failed`] with its
/// message when it cannot start, exits non-zero, or runs past the timeout (it is killed).
pub fn run(program: &str, args: &[&OsStr]) -> Result<String, ToolError> {
    let path = find(program).ok_or(ToolError::NotInstalled)?;
    let mut child = Command::new(&path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| ToolError::Failed(format!("cannot start {}: {err}", path.display())))?;
    // Read both pipes on their own threads: a tool that fills one pipe while we wait on the
    // other would otherwise block for ever.
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    // Each is read up to one byte past the cap: a larger output is refused, and the tool
    // stops on a closed pipe instead of filling memory.
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = (&mut stdout)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes);
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = (&mut stderr)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes);
        bytes
    });
    let deadline = Instant::now() + TOOL_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    if stdout.len() as u64 > MAX_FILE_BYTES {
        return Err(ToolError::Failed(format!(
            "{program} printed more than the {} MiB certdrift reads from a config tool",
            MAX_FILE_BYTES >> 20
        )));
    }
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    match status {
        Some(status) if status.success() => Ok(stdout),
        Some(status) => {
            let said = if stderr.trim().is_empty() {
                stdout.trim()
            } else {
                stderr.trim()
            };
            Err(ToolError::Failed(format!(
                "{program} exited with {status}: {}",
                last_lines(said)
            )))
        }
        None => Err(ToolError::Failed(format!(
            "{program} did not finish within {}s and was stopped",
            TOOL_TIMEOUT.as_secs()
        ))),
    }
}

/// The last three lines of `text`, joined: the error is at the end of a tool's output.
fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_is_not_installed_and_a_failing_one_says_why() {
        assert_eq!(
            run("certdrift-no-such-tool", &[]),
            Err(ToolError::NotInstalled)
        );
        let ok = run("sh", &[OsStr::new("-c"), OsStr::new("echo out")]).unwrap();
        assert_eq!(ok, "out\n");
        let Err(ToolError::Failed(message)) = run(
            "sh",
            &[
                OsStr::new("-c"),
                OsStr::new("echo one >&2; echo two >&2; exit 3"),
            ],
        ) else {
            panic!("sh exits 3");
        };
        assert!(message.ends_with("one / two"), "{message}");
        assert!(message.contains("exit status: 3"), "{message}");
    }

    #[test]
    fn output_over_the_size_cap_is_refused() {
        let script = format!("head -c {} /dev/zero | tr '\\0' '#'", MAX_FILE_BYTES + 10);
        let Err(ToolError::Failed(message)) = run("sh", &[OsStr::new("-c"), OsStr::new(&script)])
        else {
            panic!("the output is over the cap");
        };
        assert_eq!(
            message,
            "sh printed more than the 8 MiB certdrift reads from a config tool"
        );
    }
}
