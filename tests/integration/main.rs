//! certdrift's integration tests, one binary (see `autotests = false` in Cargo.toml).
//!
//! Index:
//! - `util`: temp dirs, free ports, child processes, running the `certdrift` binary, HTTP.
//! - `servers`: real servers from Debian packages (nginx, pebble, certbot) run on loopback.
//! - `daemons`: real mail, directory, database, FTP and XMPP servers run on loopback.
//! - `cli`: the demo and the help text a new user meets first.
//! - `verdicts`: every verdict against an in-process TLS server, through `certdrift check`.
//! - `chains`: chain findings, name coverage, the key check and dual certificates.
//! - `hostile`: tarpits, garbage, alerts, oversized chains and bad STARTTLS peers, each
//!   failing with a named reason within its timeouts.
//! - `disk_errors`: every disk error, through the library and the binary.
//! - `serve`: the daemon's endpoints, scraped over HTTP, checked by promtool.
//! - `nginx`: a certbot-style layout served by real nginx; renew, reload, roll back.
//! - `acme`: a real certbot renewal against pebble, served by nginx.
//! - `protocols`: each protocol against its real server (postfix, dovecot, PostgreSQL,
//!   MariaDB, vsftpd, slapd, prosody) through a renewal and reload; nginx with two
//!   certificates for one name.
//! - `messages`: every user-facing error message, printed for review.
//!
//! Tests that need a real component fail when it is missing (`.ci/test` installs them);
//! they never skip. Every network peer is on loopback.

mod util;

mod daemons;

mod acme;
mod addresses;
mod chains;
mod cli;
mod disk_errors;
mod hostile;
mod messages;
mod nginx;
mod protocols;
mod serve;
mod servers;
mod verdicts;
