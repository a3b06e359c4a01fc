//! certdrift's integration tests, one binary (see `autotests = false` in Cargo.toml).
//!
//! Index:
//! - `util`: temp dirs, free ports, child processes, running the `certdrift` binary, HTTP.
//! - `servers`: real servers from Debian packages (nginx, apache2, haproxy, pebble,
//!   certbot) run on loopback.
//! - `daemons`: real mail, directory, database, FTP and XMPP servers run on loopback.
//! - `cli`: the demo, the help text and the logging flags a new user meets first.
//! - `verdicts`: every verdict against an in-process TLS server, through `certdrift check`.
//! - `chains`: chain findings, name coverage, the key check and dual certificates.
//! - `hostile`: tarpits, garbage, alerts, oversized chains and bad STARTTLS peers, each
//!   failing with a named reason within its timeouts.
//! - `disk_errors`: every disk error, through the library and the binary.
//! - `lineages`: ACME lineage findings (a stale copy, `NAME-0001`, `live/` behind the
//!   archive or made of plain files) through `certdrift check`.
//! - `serve`: the daemon's endpoints, scraped over HTTP, checked by promtool.
//! - `watch`: `serve` sees a certbot symlink swap, an atomic rename and a Kubernetes
//!   `..data` swap at once, with an hour-long interval.
//! - `nginx`: a certbot-style layout served by real nginx; renew, reload, roll back; the
//!   who-is-serving hints (nginx and its pid; reloaded but reading another file; haproxy -W
//!   named by its master across reloads).
//! - `acme`: a real certbot renewal against pebble, served by nginx.
//! - `discovery`: `certdrift discover` against real nginx, apache2, haproxy, postfix and
//!   dovecot configs and a real certbot's renewal confs, the discovered config checked
//!   through a renewal; `check` and `serve` without `--config`; broken configs reported.
//! - `protocols`: each protocol against its real server (postfix, dovecot, PostgreSQL,
//!   MariaDB, vsftpd, slapd, prosody) through a renewal and reload; nginx with two
//!   certificates for one name.
//! - `alerts`: notifications to webhook receivers that fail on demand and to a real
//!   Alertmanager, restarts with a state file, and the shipped Prometheus rules.
//! - `messages`: every user-facing error message, printed for review.
//! - `fleet`: four sites, one per kind of row (in sync, drifted, down, unreadable), under
//!   a running `serve`, for the next three.
//! - `dashboard`: the Grafana dashboard's queries through promtool and a real Prometheus
//!   that scrapes `serve` from the scrape example.
//! - `deploy`: the systemd unit (systemd-analyze, its capability via setpriv), the certbot
//!   hook (run by a real certbot renewal against pebble), the Kubernetes manifests (offline schema validation), the Dockerfile.
//! - `status_page`: the page at `/` rendered by headless Chromium, screenshots; serve's
//!   exporter-style flags.
//!
//! Tests that need a real component fail when it is missing (`.ci/test` installs them);
//! they never skip. Every network peer is on loopback.

mod fleet;
mod util;

mod daemons;

mod acme;
mod addresses;
mod alerts;
mod chains;
mod cli;
mod dashboard;
mod deploy;
mod discovery;
mod disk_errors;
mod hostile;
mod lineages;
mod messages;
mod nginx;
mod protocols;
mod serve;
mod servers;
mod status_page;
mod verdicts;
mod watch;
