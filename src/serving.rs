//! Who is serving: the process listening on a local address, found through /proc, and the
//! hint its start time gives on a `reload_needed` row.
//!
//! The listening socket comes from `/proc/net/tcp` and `tcp6` (state LISTEN, the address or
//! the wildcard, the port), its inode leads to every process holding it (`/proc/PID/fd`
//! links `socket:[INODE]`), and each process's start time is `/proc/PID/stat` field 22
//! (clock ticks since boot) turned into wall time. Not finding the process is normal (the
//! address is not local, the process is in another network namespace, /proc is not
//! readable for other users' processes): there is then no hint, and never an error.
//!
//! The heuristic: a master process keeps its start time across reloads, but the processes
//! it forks after a reload are new, and they inherit the listening socket. So the newest
//! start time among the socket's holders tells when the server last (re)loaded. The one to
//! signal is the master: from the holder whose parent holds no copy of the socket, up its
//! ancestors while they run the same program (the same `/proc/PID/exe`, or the same `comm`
//! when either link is unreadable), stopping below the first that does not (a shell,
//! systemd). That finds haproxy's `-W` master, which holds no listening socket itself
//! while its worker, whose pid changes at every reload, does. It fails for
//! servers that reload in place without new processes (many Go and Rust servers, HUP-ing
//! single-process daemons): they always look started before the change, so only the
//! "reload it" hint can appear for them, and it can be wrong when the reload happened but
//! the file it reads is another one. It also fails when a proxy holds the port
//! (`docker-proxy`, a load balancer on the same host): the hint then names the proxy.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::OnceLock;

use procfs::net::TcpState;
use procfs::process::FDTarget;
use time::OffsetDateTime;

use crate::alert::rfc3339;

/// The processes holding a listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The process to signal: the topmost ancestor of the holders running the same
    /// program ([`master_of`]).
    pub pid: i32,
    /// Its command name (`/proc/PID/comm`).
    pub comm: String,
    /// When it started.
    pub started_at: OffsetDateTime,
    /// The newest start time among all holders: when the server last (re)loaded.
    pub loaded_at: OffsetDateTime,
}

impl Listener {
    /// The hint for a server that serves an older certificate than its file, which changed
    /// at `disk_changed_at`; `None` when start times cannot tell (they are equal to the
    /// clock tick).
    pub fn hint(&self, disk_changed_at: OffsetDateTime) -> Option<String> {
        let who = format!("{} (pid {})", self.comm, self.pid);
        if self.loaded_at < disk_changed_at {
            Some(format!(
                "{who} started before the disk changed: reload it (its newest process started {}, the file changed {})",
                millis(self.loaded_at),
                millis(disk_changed_at)
            ))
        } else if self.loaded_at > disk_changed_at {
            Some(format!(
                "{who} was reloaded after the change and still serves the old certificate: it reads another file \
                 (a bind-mounted single file, a container, a chroot); its newest process started {}, the file changed {}",
                millis(self.loaded_at),
                millis(disk_changed_at)
            ))
        } else {
            None
        }
    }
}

/// The hint for `address`, whose certificate file changed at `disk_changed_at` while it still
/// serves the old one: who listens there, and what its start time says. `None` when the
/// address is not on this machine, /proc does not tell, or the listener is certdrift itself
/// (the demo's server runs inside it, and "reload certdrift" would help nobody).
pub fn hint(address: SocketAddr, disk_changed_at: OffsetDateTime) -> Option<String> {
    local_listener(address)
        .filter(|listener| u32::try_from(listener.pid).ok() != Some(std::process::id()))
        .and_then(|listener| listener.hint(disk_changed_at))
}

/// The process listening on `address`, when the address is on this machine and /proc
/// shows it.
pub fn local_listener(address: SocketAddr) -> Option<Listener> {
    if !is_local(address.ip()) {
        return None;
    }
    let inodes = listening_inodes(address);
    if inodes.is_empty() {
        return None;
    }

    let mut holders = Vec::new();
    for process in procfs::process::all_processes().ok()?.flatten() {
        let Ok(fds) = process.fd() else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| matches!(fd.target, FDTarget::Socket(inode) if inodes.contains(&inode)));
        if holds && let Some(node) = node_of(&process) {
            holders.push(node);
        }
    }
    let boot = boot_time()?;
    let ticks = procfs::ticks_per_second() as f64;
    let started =
        |ticks_since_boot: u64| boot + time::Duration::seconds_f64(ticks_since_boot as f64 / ticks);
    let pids: Vec<i32> = holders.iter().map(|node| node.pid).collect();
    let root = holders
        .iter()
        .find(|node| !pids.contains(&node.ppid))
        .or_else(|| holders.iter().min_by_key(|node| node.starttime))?;
    let master = master_of(root, |pid| {
        procfs::process::Process::new(pid)
            .ok()
            .as_ref()
            .and_then(node_of)
    });
    let newest = holders.iter().map(|node| node.starttime).max()?;
    Some(Listener {
        pid: master.pid,
        comm: master.comm,
        started_at: started(master.starttime),
        loaded_at: started(newest),
    })
}

/// A process, as far as finding the master needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    pid: i32,
    ppid: i32,
    comm: String,
    /// `/proc/PID/exe`, when readable.
    exe: Option<PathBuf>,
    /// Clock ticks since boot.
    starttime: u64,
}

impl Node {
    /// Whether both run the same program: the same executable, or the same command name
    /// when either executable is unknown.
    fn same_program(&self, other: &Node) -> bool {
        match (&self.exe, &other.exe) {
            (Some(a), Some(b)) => a == b,
            _ => self.comm == other.comm,
        }
    }
}

fn node_of(process: &procfs::process::Process) -> Option<Node> {
    let stat = process.stat().ok()?;
    Some(Node {
        pid: stat.pid,
        ppid: stat.ppid,
        comm: stat.comm,
        exe: process.exe().ok(),
        starttime: stat.starttime,
    })
}

/// The process to signal for `holder`: its topmost ancestor running the same program,
/// found through `parent` (a /proc lookup), or `holder` itself.
///
/// The walk stops at a parent running another program (the shell or systemd that started
/// the server), one `parent` cannot read, pid 0 above pid 1, and after [`MAX_ANCESTORS`]
/// steps, so a loop in a changing process table cannot hold it.
fn master_of(holder: &Node, parent: impl Fn(i32) -> Option<Node>) -> Node {
    let mut master = holder.clone();
    for _ in 0..MAX_ANCESTORS {
        if master.ppid <= 0 {
            break;
        }
        match parent(master.ppid) {
            Some(up) if up.same_program(&master) => master = up,
            _ => break,
        }
    }
    master
}

/// Whether `ip` is an address of this machine: loopback, or one a socket can bind to.
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Inodes of the LISTEN sockets on `address`'s port bound to its IP or to the wildcard.
fn listening_inodes(address: SocketAddr) -> Vec<u64> {
    let tables = [procfs::net::tcp(), procfs::net::tcp6()];
    tables
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.state == TcpState::Listen)
        .filter(|entry| entry.local_address.port() == address.port())
        .filter(|entry| {
            let bound = entry.local_address.ip();
            bound == address.ip() || bound.is_unspecified() || mapped(bound) == Some(address.ip())
        })
        .map(|entry| entry.inode)
        .collect()
}

/// The IPv4 address inside an IPv4-mapped IPv6 one (`::ffff:127.0.0.1`).
fn mapped(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
        IpAddr::V4(_) => None,
    }
}

/// When the machine booted, to the hundredth of a second, read once per run.
///
/// `btime` in /proc/stat has whole seconds only, too coarse to order a process start and a
/// file change a fraction of a second apart; now minus `/proc/uptime` (hundredths) is as
/// precise as the start times themselves, which count clock ticks. Each reading lands
/// somewhere else within that hundredth, so it is read once: every row and pass then
/// places the same process at the same time.
fn boot_time() -> Option<OffsetDateTime> {
    static BOOT: OnceLock<Option<OffsetDateTime>> = OnceLock::new();
    *BOOT.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/uptime").ok()?;
        let uptime: f64 = text.split_whitespace().next()?.parse().ok()?;
        Some(OffsetDateTime::now_utc() - time::Duration::seconds_f64(uptime))
    })
}

/// `at` in RFC 3339 UTC to the millisecond: start times are exact to a clock tick (10 ms),
/// and more digits would only show noise.
fn millis(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    at.format(MILLIS).unwrap_or_else(|_| rfc3339(at))
}

/// The most ancestors [`master_of`] walks up.
const MAX_ANCESTORS: usize = 64;

/// RFC 3339 in UTC with three fractional digits.
const MILLIS: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(loaded_at: OffsetDateTime) -> Listener {
        Listener {
            pid: 41,
            comm: "nginx".to_owned(),
            started_at: loaded_at - time::Duration::hours(1),
            loaded_at,
        }
    }

    #[test]
    fn a_server_loaded_before_the_change_should_be_reloaded() {
        let changed = time::macros::datetime!(2026-03-01 12:00 UTC);
        let hint = listener(changed - time::Duration::minutes(5))
            .hint(changed)
            .expect("a hint");
        assert!(
            hint.starts_with("nginx (pid 41) started before the disk changed: reload it"),
            "{hint}"
        );
        let hint = listener(changed + time::Duration::minutes(5))
            .hint(changed)
            .expect("a hint");
        assert!(
            hint.starts_with(
                "nginx (pid 41) was reloaded after the change and still serves the old certificate: it reads another file"
            ),
            "{hint}"
        );
        assert_eq!(listener(changed).hint(changed), None);
    }

    fn node(pid: i32, ppid: i32, comm: &str, exe: Option<&str>) -> Node {
        Node {
            pid,
            ppid,
            comm: comm.to_owned(),
            exe: exe.map(PathBuf::from),
            starttime: 100,
        }
    }

    /// A /proc-like table: the parent lookup [`master_of`] takes.
    fn table(nodes: &[Node]) -> impl Fn(i32) -> Option<Node> + '_ {
        |pid| nodes.iter().find(|node| node.pid == pid).cloned()
    }

    #[test]
    fn the_master_is_the_topmost_ancestor_running_the_same_program() {
        const HAPROXY: Option<&str> = Some("/usr/sbin/haproxy");
        // haproxy -W: the worker holds the socket, its master does not; a shell started it
        // under systemd.
        let worker = node(10783, 10780, "haproxy", HAPROXY);
        let processes = [
            node(1, 0, "systemd", Some("/usr/lib/systemd/systemd")),
            node(500, 1, "bash", Some("/usr/bin/bash")),
            node(10780, 500, "haproxy", HAPROXY),
        ];
        assert_eq!(master_of(&worker, table(&processes)).pid, 10780);

        // Without readable exe links the command names decide.
        let worker = node(10783, 10780, "haproxy", None);
        let processes = [
            node(10780, 500, "haproxy", None),
            node(500, 1, "bash", None),
        ];
        assert_eq!(master_of(&worker, table(&processes)).pid, 10780);

        // Another program of the same name is another service: the walk stops below it.
        let worker = node(10783, 10780, "haproxy", HAPROXY);
        let processes = [node(10780, 1, "haproxy", Some("/opt/wrapper/haproxy"))];
        assert_eq!(master_of(&worker, table(&processes)).pid, 10783);

        // A server that is pid 1 (a container's) is its own master; an unreadable parent
        // and a loop in the table end the walk.
        let processes = [node(1, 0, "haproxy", HAPROXY)];
        assert_eq!(
            master_of(&node(7, 1, "haproxy", HAPROXY), table(&processes)).pid,
            1
        );
        assert_eq!(master_of(&node(7, 6, "nginx", None), table(&[])).pid, 7);
        let looping = [node(8, 9, "nginx", None), node(9, 8, "nginx", None)];
        let found = master_of(&node(7, 8, "nginx", None), table(&looping));
        assert!([8, 9].contains(&found.pid), "{found:?}");
    }

    #[test]
    fn hint_times_are_to_the_millisecond() {
        let changed = time::macros::datetime!(2026-03-01 04:21:40.5 UTC);
        let loaded = time::macros::datetime!(2026-03-01 04:21:36.157138539 UTC);
        let hint = listener(loaded).hint(changed).expect("a hint");
        assert!(
            hint.ends_with(
                "(its newest process started 2026-03-01T04:21:36.157Z, the file changed 2026-03-01T04:21:40.500Z)"
            ),
            "{hint}"
        );
    }

    #[test]
    fn finds_its_own_listening_socket() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("binding loopback works");
        let address = socket.local_addr().expect("a bound address");
        let found = local_listener(address).expect("this process holds the socket");
        assert_eq!(found.pid, std::process::id() as i32);
        assert!(found.started_at <= OffsetDateTime::now_utc());
        // Every lookup places the process at the same time, so rows agree.
        assert_eq!(local_listener(address), Some(found));
        assert_eq!(local_listener("192.0.2.1:443".parse().unwrap()), None);
    }
}
