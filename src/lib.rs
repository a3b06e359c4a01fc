//! certdrift finds servers that still serve an older certificate than the one on disk.
//!
//! ACME clients renew certificates on disk, but the process that serves them keeps what it
//! loaded until it is reloaded. certdrift reads each site's certificate file, handshakes with
//! every address of its host, and compares the two leaves by fingerprint.
//!
//! The pipeline, one module per step:
//!
//! ```text
//!  config ──► disk (pem, cert, key) ──────┐
//!         └─► probe (starttls, verify) ───┴─► verdict, chain ─► inspect ─► report (check)
//!                                                                      └─► state ─► metrics (serve)
//!                                                                                └─► alert (serve)
//! ```
//!
//! - [`config`]: the TOML file or the command line's ad-hoc site, validated.
//! - [`disk`]: the certificate file, read tolerantly ([`pem`]) and summarized ([`cert`]).
//! - [`lineage`]: the ACME lineage behind the file (certbot's `live/` → `archive/`), and
//!   the findings about it or about a stale copy of it.
//! - [`probe`]: resolve, connect, handshake with SNI, take the presented chain whatever its
//!   validity; verify it against the trust store separately.
//! - [`verdict`]: the comparison, with "now" as an input; [`chain`], [`key`]: the
//!   [`finding`]s reported beside it (chain order and links, name coverage, key match).
//! - [`inspect`]: one site end to end, for both `check` and `serve`.
//! - [`report`], [`check`]: the one-shot run. [`state`], [`metrics`], [`serve`],
//!   [`status_page`]: the daemon; [`watch`]: its file watcher, which re-checks a site when
//!   one of its files changes.
//! - [`serving`]: who listens on a local address (via /proc), for the hint on a
//!   `reload_needed` row.
//! - [`alert`]: `serve`'s alert conditions, their state file, and delivery to webhook, Slack
//!   and Alertmanager receivers.
//! - [`discover`]: a config read from this machine's nginx, apache2, haproxy, postfix and
//!   dovecot configs and certbot's renewal confs, for `discover` and for `check`/`serve`
//!   without `--config`.
//! - [`text`]: peer-quoted text escaped for printing, durations rounded for messages.
//! - [`demo`]: a throw-away CA, a certbot layout and a local TLS server, for the demo and the
//!   tests.
//!
//! certdrift does not check revocation, stapled OCSP or Certificate Transparency.

pub mod alert;
pub mod cert;
pub mod chain;
pub mod check;
pub mod cli;
pub mod config;
pub mod demo;
pub mod discover;
pub mod disk;
pub mod finding;
pub mod inspect;
pub mod key;
pub mod lineage;
pub mod metrics;
pub mod pem;
pub mod probe;
pub mod report;
pub mod serve;
pub mod serving;
pub mod state;
pub mod status_page;
pub mod text;
pub mod verdict;
pub mod watch;
