//! The command line, as clap reads it. Doc comments here are the `--help` text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Finds servers that still serve an older certificate than the one renewed on disk.
///
/// certdrift reads each site's certificate file, handshakes with every address of its host,
/// and says whether the server serves what is on disk: in_sync, reload_needed, disk_older
/// (do not reload), mixed, unrelated, probe_failed or disk_error.
#[derive(Debug, Parser)]
#[command(name = "certdrift", version, about, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,

    /// Log level (error, warn, info, debug, trace, off) or a tracing filter such as
    /// `certdrift=debug` or `info,certdrift::probe=trace`. Logs go to stderr, coloured only
    /// on a terminal and without NO_COLOR. Also spelled `--log.level`.
    #[arg(
        long,
        global = true,
        env = "CERTDRIFT_LOG",
        default_value = "info",
        alias = "log.level",
        value_parser = parse_log_filter
    )]
    pub log_level: String,

    /// Log format: one line of text or one JSON object per event. Also spelled
    /// `--log.format`.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "CERTDRIFT_LOG_FORMAT",
        default_value_t = LogFormat::Text,
        alias = "log.format"
    )]
    pub log_format: LogFormat,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every site once, print a report, and exit with a status for cron or Nagios.
    ///
    /// Exit status: 0 when every address serves the certificate on disk; 1 when any address
    /// drifted (reload_needed, disk_older, mixed, unrelated) or has a finding (a chain, name
    /// or key problem); 2 when a site could not be checked (probe_failed, disk_error) or the
    /// configuration is bad. 2 wins over 1.
    #[command(
        after_help = "Exit status: 0 in sync, 1 drift found, 2 could not check or bad config."
    )]
    Check(CheckArgs),

    /// Probe every site each interval and serve /metrics, /healthz and a status page.
    ///
    /// Stops cleanly on SIGINT or SIGTERM. Exit status 0 after a signal, 2 when the
    /// configuration is bad or the listen address cannot be bound.
    Serve(ServeArgs),

    /// Print a config for the TLS servers of this machine, read from their own configs.
    ///
    /// Reads nginx (`nginx -T`, or its files), apache2, haproxy, postfix (`postconf`,
    /// master.cf), dovecot (`doveconf`) and certbot's renewal confs, and prints the sites it
    /// finds as a config file, each with the file and line it came from. Configs that cannot
    /// be read are warnings, on stderr and in the output, never errors. `check` and `serve`
    /// do the same when run without `--config`. Exit status 0 when a site was found, 2 when
    /// none was.
    Discover(DiscoverArgs),

    /// Show the main job on a throw-away CA and a local TLS server; needs no config.
    ///
    /// Makes a certbot-style layout in a temporary directory, serves generation 1, renews on
    /// disk without reloading (reload_needed), reloads (in_sync), and points live/ back at
    /// the old generation (disk_older). Nothing outside the temporary directory is touched.
    Demo,
}

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The TOML config file. Without it (and without --host), the sites are discovered
    /// from this machine's server configs, as `certdrift discover` prints them.
    #[arg(
        long,
        short,
        env = "CERTDRIFT_CONFIG",
        conflicts_with_all = ["host", "cert", "port", "protocol", "key", "sni", "ca_file"]
    )]
    pub config: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// The ad-hoc site, when there is no config file.
    #[command(flatten)]
    pub site: AdHocSite,

    /// Where discovery looks, when there is neither --config nor --host.
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
}

/// Arguments of `discover`.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Where discovery looks.
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
}

/// Where discovery looks: each server's config, and which sources to read.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Discovery (without --config)")]
pub struct DiscoveryArgs {
    /// nginx's main config file; read with `nginx -T` when nginx is installed [default:
    /// /etc/nginx/nginx.conf].
    #[arg(long, value_name = "FILE")]
    pub nginx_conf: Option<PathBuf>,

    /// nginx's prefix directory, passed as `nginx -p` [default: nginx's own].
    #[arg(long, value_name = "DIR")]
    pub nginx_prefix: Option<PathBuf>,

    /// apache2's main config file [default: /etc/apache2/apache2.conf].
    #[arg(long, value_name = "FILE")]
    pub apache_conf: Option<PathBuf>,

    /// haproxy's config file, or a directory of *.cfg files [default:
    /// /etc/haproxy/haproxy.cfg].
    #[arg(long, value_name = "PATH")]
    pub haproxy_conf: Option<PathBuf>,

    /// postfix's config directory (main.cf, master.cf); read with `postconf -c DIR`
    /// [default: /etc/postfix].
    #[arg(long, value_name = "DIR")]
    pub postfix_dir: Option<PathBuf>,

    /// dovecot's main config file; read with `doveconf -c FILE` [default:
    /// /etc/dovecot/dovecot.conf].
    #[arg(long, value_name = "FILE")]
    pub dovecot_conf: Option<PathBuf>,

    /// certbot's config directory, with renewal/ and live/ [default: /etc/letsencrypt].
    #[arg(long, value_name = "DIR")]
    pub letsencrypt_dir: Option<PathBuf>,

    /// Read only these sources, comma-separated: nginx, apache, haproxy, postfix, dovecot,
    /// certbot [default: all].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub sources: Option<Vec<crate::discover::SourceKind>>,
}

impl DiscoveryArgs {
    /// The locations, as discovery takes them.
    pub fn sources(&self) -> crate::discover::Sources {
        crate::discover::Sources {
            nginx_conf: self.nginx_conf.clone(),
            nginx_prefix: self.nginx_prefix.clone(),
            apache_conf: self.apache_conf.clone(),
            haproxy_conf: self.haproxy_conf.clone(),
            postfix_dir: self.postfix_dir.clone(),
            dovecot_conf: self.dovecot_conf.clone(),
            letsencrypt_dir: self.letsencrypt_dir.clone(),
            only: self.sources.clone(),
        }
    }
}

/// One site given on the command line instead of a config file.
#[derive(Debug, Args)]
pub struct AdHocSite {
    /// Host to connect to: a DNS name or an IP address.
    #[arg(long, requires = "cert")]
    pub host: Option<String>,

    /// TCP port; defaults to the protocol's usual port (443 for tls, 25 for smtp, ...).
    #[arg(long, requires = "host", value_parser = parse_port)]
    pub port: Option<u16>,

    /// What the server speaks before TLS: tls (implicit, the default), smtp, imap, pop3,
    /// ftp, ldap, xmpp, xmpp-server, postgres, mysql.
    #[arg(long, default_value = "tls", requires = "host")]
    pub protocol: crate::probe::Protocol,

    /// The private key file, to check that it belongs to the certificate.
    #[arg(long, requires = "host")]
    pub key: Option<PathBuf>,

    /// SNI name to send and verify; defaults to --host when it is a name.
    #[arg(long, requires = "host")]
    pub sni: Option<String>,

    /// The PEM certificate file the server loads.
    #[arg(long, requires = "host")]
    pub cert: Option<PathBuf>,

    /// Verify the served chain against this PEM file instead of the system trust store;
    /// without --host, for every discovered site.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The TOML config file. Without it, the sites are discovered once, at start, from this
    /// machine's server configs, as `certdrift discover` prints them.
    #[arg(long, short, env = "CERTDRIFT_CONFIG")]
    pub config: Option<PathBuf>,

    /// HTTP listen address (`IP:PORT`); overrides `listen` in the config. Also spelled
    /// `--web.listen-address`, as other Prometheus exporters call it.
    #[arg(long, env = "CERTDRIFT_LISTEN", alias = "web.listen-address")]
    pub listen: Option<SocketAddr>,

    /// Path of the Prometheus metrics endpoint. Also spelled `--web.telemetry-path`.
    #[arg(
        long,
        env = "CERTDRIFT_TELEMETRY_PATH",
        default_value = "/metrics",
        alias = "web.telemetry-path",
        value_parser = parse_telemetry_path
    )]
    pub telemetry_path: String,

    /// Where discovery looks, when there is no --config.
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
}

/// A log level, or a tracing filter whose every directive is a level or has `=` (or a span
/// `[...]`).
///
/// tracing's filter syntax takes a bare word as a target to log at every level, so a
/// mistyped level (`warning`, `bogus`) would be accepted and silently log nothing at all;
/// such a word is refused here instead.
pub fn parse_log_filter(filter: &str) -> Result<String, String> {
    let accepted = "use a level (error, warn, info, debug, trace, off) or a filter of \
                    `target=level` directives such as `certdrift=debug` or \
                    `info,certdrift::probe=trace`";
    if filter.trim().is_empty() {
        return Err(format!("an empty value is not a log level; {accepted}"));
    }
    let bare_word = filter.split(',').map(str::trim).find(|directive| {
        !directive.is_empty()
            && !LOG_LEVELS.contains(&directive.to_ascii_lowercase().as_str())
            && !directive.contains(['=', '['])
    });
    if let Some(word) = bare_word {
        return Err(format!("`{word}` is not a log level; {accepted}"));
    }
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(|_| filter.to_owned())
        .map_err(|err| format!("`{filter}` is not a log filter ({err}); {accepted}"))
}

/// A TCP port, 1-65535, with the message the config gives for one out of range.
fn parse_port(text: &str) -> Result<u16, String> {
    text.trim()
        .parse::<u16>()
        .ok()
        .filter(|&port| port != 0)
        .ok_or_else(|| crate::config::not_a_port(text))
}

/// A metrics path that starts with `/` and is not one of `serve`'s other endpoints.
fn parse_telemetry_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        return Err(format!(
            "`{path}` is not a URL path: give one that starts with `/`, such as /metrics"
        ));
    }
    if crate::serve::RESERVED_PATHS.contains(&path) {
        return Err(format!(
            "`{path}` is already one of serve's endpoints ({}); pick another, such as /metrics",
            crate::serve::RESERVED_PATHS.join(", ")
        ));
    }
    Ok(path.to_owned())
}

/// `check`'s report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// A JSON document, one object per site and address.
    Json,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// The words `--log-level` takes on their own.
const LOG_LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_takes_a_ca_file_for_discovered_sites() {
        let cli = Cli::try_parse_from([
            "certdrift",
            "check",
            "--nginx-conf",
            "/etc/nginx/nginx.conf",
            "--ca-file",
            "ca.pem",
        ])
        .unwrap_or_else(|err| panic!("{err}"));
        let Command::Check(args) = cli.command else {
            panic!("not check: {:?}", cli.command);
        };
        assert_eq!(args.site.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(args.site.host, None);
    }
}
