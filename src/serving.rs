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
//! start time among the socket's holders tells when the server last (re)loaded, and the
//! holder whose parent holds no copy of the socket is the one to signal. It fails for
//! servers that reload in place without new processes (many Go and Rust servers, HUP-ing
//! single-process daemons): they always look started before the change, so only the
//! "reload it" hint can appear for them, and it can be wrong when the reload happened but
//! the file it reads is another one. It also fails when a proxy holds the port
//! (`docker-proxy`, a load balancer on the same host): the hint then names the proxy.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use procfs::net::TcpState;
use procfs::process::FDTarget;
use time::OffsetDateTime;

use crate::alert::rfc3339;

/// The processes holding a listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The process to signal: the holder whose parent does not hold the socket.
    pub pid: i32,
    /// Its command name (`/proc/PID/comm`).
    pub comm: String,
    /// When it started.
    pub started_at: OffsetDateTime,
    /// The newest start time among all holders: when the server last (re)loaded.
    pub loaded_at: OffsetDateTime,
    /// Every process holding the socket.
    pub pids: Vec<i32>,
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
                rfc3339(self.loaded_at),
                rfc3339(disk_changed_at)
            ))
        } else if self.loaded_at > disk_changed_at {
            Some(format!(
                "{who} was reloaded after the change and still serves the old certificate: it reads another file \
                 (a bind-mounted single file, a container, a chroot); its newest process started {}, the file changed {}",
                rfc3339(self.loaded_at),
                rfc3339(disk_changed_at)
            ))
        } else {
            None
        }
    }
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
        if holds && let Ok(stat) = process.stat() {
            holders.push(stat);
        }
    }
    let boot = boot_time()?;
    let ticks = procfs::ticks_per_second() as f64;
    let started =
        |ticks_since_boot: u64| boot + time::Duration::seconds_f64(ticks_since_boot as f64 / ticks);
    let pids: Vec<i32> = holders.iter().map(|stat| stat.pid).collect();
    let root = holders
        .iter()
        .find(|stat| !pids.contains(&stat.ppid))
        .or_else(|| holders.iter().min_by_key(|stat| stat.starttime))?;
    let newest = holders.iter().map(|stat| stat.starttime).max()?;
    Some(Listener {
        pid: root.pid,
        comm: root.comm.clone(),
        started_at: started(root.starttime),
        loaded_at: started(newest),
        pids,
    })
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

/// When the machine booted, to the hundredth of a second.
///
/// `btime` in /proc/stat has whole seconds only, too coarse to order a process start and a
/// file change a fraction of a second apart; now minus `/proc/uptime` (hundredths) is as
/// precise as the start times themselves, which count clock ticks.
fn boot_time() -> Option<OffsetDateTime> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let uptime: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(OffsetDateTime::now_utc() - time::Duration::seconds_f64(uptime))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(loaded_at: OffsetDateTime) -> Listener {
        Listener {
            pid: 41,
            comm: "nginx".to_owned(),
            started_at: loaded_at - time::Duration::hours(1),
            loaded_at,
            pids: vec![41, 42],
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

    #[test]
    fn finds_its_own_listening_socket() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("binding loopback works");
        let address = socket.local_addr().expect("a bound address");
        let found = local_listener(address).expect("this process holds the socket");
        assert_eq!(found.pid, std::process::id() as i32);
        assert!(found.started_at <= OffsetDateTime::now_utc());
        assert_eq!(local_listener("192.0.2.1:443".parse().unwrap()), None);
    }
}
