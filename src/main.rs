//! The `certdrift` binary: parse arguments, start logging, dispatch, map the result to an
//! exit status. Everything else lives in the library.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use time::OffsetDateTime;

use certdrift::check::{self, Outcome};
use certdrift::cli::{
    CheckArgs, Cli, Command, DiscoverArgs, DiscoveryArgs, Format, LogFormat, ServeArgs,
};
use certdrift::config::{AdHoc, Config};
use certdrift::discover::{self, Discovery};
use certdrift::probe::Prober;
use certdrift::{demo, report, serve};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return explain_parse_error(err),
    };
    init_logging(&cli.log_level, cli.log_format);

    let runtime = match serve::runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("certdrift: cannot start the async runtime: {err}");
            return ExitCode::from(Outcome::Trouble as u8);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Check(args) => run_check(args).await,
            Command::Serve(args) => run_serve(args).await,
            Command::Discover(args) => run_discover(args).await,
            Command::Demo => run_demo().await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("certdrift: {err:#}");
            ExitCode::from(Outcome::Trouble as u8)
        }
    }
}

async fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let explicit = args.config.is_some() || args.site.host.is_some();
    if explicit && args.discovery.sources().any_given() {
        anyhow::bail!(
            "the discovery flags (--nginx-conf, --letsencrypt-dir, --sources, ...) apply only \
             without --config and --host; drop one or the other"
        );
    }
    let config = match (&args.config, &args.site.host, &args.site.cert) {
        (Some(path), _, _) => Config::load(path)?,
        (None, None, _) => {
            let mut config = discovered_config(&args.discovery).await?;
            if let Some(ca_file) = &args.site.ca_file {
                config.trust_ca_file(ca_file);
            }
            config
        }
        (None, Some(host), Some(cert)) => Config::ad_hoc(AdHoc {
            host,
            port: args.site.port,
            sni: args.site.sni.as_deref(),
            protocol: args.site.protocol,
            cert,
            key: args.site.key.as_deref(),
            ca_file: args.site.ca_file.as_deref(),
        })?,
        (None, Some(_), None) => anyhow::bail!("--host needs --cert: the file the server loads"),
    };
    let prober = Prober::new(config.ca_files()).map_err(anyhow::Error::msg)?;
    let reports = check::run(&config, &prober).await;

    let now = OffsetDateTime::now_utc();
    let text = match args.format {
        Format::Table => report::render_table(&reports, now),
        Format::Json => report::render_json(&reports, now),
    };
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .context("cannot write the report")?;
    stdout.flush().context("cannot write the report")?;
    Ok(Outcome::of(&reports).into())
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => {
            if args.discovery.sources().any_given() {
                anyhow::bail!(
                    "the discovery flags (--nginx-conf, --letsencrypt-dir, --sources, ...) \
                     apply only without --config; drop one or the other"
                );
            }
            Config::load(path)?
        }
        None => discovered_config(&args.discovery).await?,
    };
    let options = serve::ServeOptions {
        listen: args.listen,
        telemetry_path: args.telemetry_path,
    };
    serve::run(config, options).await?;
    Ok(ExitCode::SUCCESS)
}

/// `discover`: the config on stdout, warnings on stderr; status 2 when nothing was found.
async fn run_discover(args: DiscoverArgs) -> anyhow::Result<ExitCode> {
    let discovery = run_discovery(&args.discovery).await?;
    let text = discover::render(&discovery);
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .context("cannot write the config")?;
    stdout.flush().context("cannot write the config")?;
    if discovery.sites.is_empty() {
        eprintln!("certdrift: {}", nothing_found(&discovery));
        return Ok(ExitCode::from(Outcome::Trouble as u8));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs discovery off the async threads (it starts `nginx -T`, `postconf`, `doveconf` and
/// reads files) and prints its warnings on stderr.
async fn run_discovery(args: &DiscoveryArgs) -> anyhow::Result<Discovery> {
    let sources = args.sources();
    let discovery = tokio::task::spawn_blocking(move || discover::discover(&sources))
        .await
        .context("discovery stopped")?;
    for warning in &discovery.warnings {
        eprintln!("certdrift: warning: {warning}");
    }
    Ok(discovery)
}

/// The config `check` and `serve` use without `--config`: what discovery finds.
async fn discovered_config(args: &DiscoveryArgs) -> anyhow::Result<Config> {
    let discovery = run_discovery(args).await?;
    if discovery.sites.is_empty() {
        anyhow::bail!("{}", nothing_found(&discovery));
    }
    let config = discovery.config()?;
    tracing::info!(
        sites = config.sites.len(),
        sources = %discovery.looked_at(),
        "no --config: using the discovered configuration"
    );
    Ok(config)
}

fn nothing_found(discovery: &Discovery) -> String {
    format!(
        "nothing to check: discovery found no TLS site ({}). Pass --config FILE, or --host HOST \
         --cert FILE for one site, or point discovery at the configs with --nginx-conf, \
         --apache-conf, --haproxy-conf, --postfix-dir, --dovecot-conf, --letsencrypt-dir \
         (`certdrift demo` shows what certdrift does)",
        discovery.looked_at()
    )
}

async fn run_demo() -> anyhow::Result<ExitCode> {
    let mut stdout = io::stdout().lock();
    let as_expected = demo::run(&mut stdout).await?;
    Ok(if as_expected {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints clap's error (or help) and exits as clap would; a conflict with `--config` that
/// only the environment set (`CERTDRIFT_CONFIG`) says so, since the command line shows none.
fn explain_parse_error(err: clap::Error) -> ExitCode {
    let from_env = std::env::var_os("CERTDRIFT_CONFIG").filter(|value| !value.is_empty());
    let on_command_line = std::env::args_os().any(|arg| {
        let arg = arg.to_string_lossy();
        arg == "-c" || arg == "--config" || arg.starts_with("--config=")
    });
    let conflict = err.kind() == clap::error::ErrorKind::ArgumentConflict
        && err.to_string().contains("--config");
    let _ = err.print();
    if let (true, Some(path), false) = (conflict, from_env, on_command_line) {
        eprintln!(
            "note: --config comes from the environment: CERTDRIFT_CONFIG={}; unset it \
             (`env -u CERTDRIFT_CONFIG certdrift check ...`) to check one site with --host and --cert",
            path.to_string_lossy()
        );
    }
    ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(Outcome::Trouble as u8))
}

/// Starts logging to stderr; `filter` was checked by [`certdrift::cli::parse_log_filter`].
fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|err| {
        eprintln!("certdrift: ignoring --log-level `{filter}` ({err}); using info");
        tracing_subscriber::EnvFilter::new("info")
    });
    let colour = wants_colour(
        io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Whether log lines get ANSI colours: only when stderr is a terminal and `NO_COLOR` is unset
/// or empty (<https://no-color.org>). A file, a pipe or journald gets plain text.
fn wants_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

/// Whether the error is a closed stdout (`certdrift check | head`), which is not a failure.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io_err| io_err.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(wants_colour(true, None));
        assert!(wants_colour(true, Some(OsStr::new(""))));
        assert!(!wants_colour(true, Some(OsStr::new("1"))));
        assert!(!wants_colour(false, None));
        assert!(!wants_colour(false, Some(OsStr::new(""))));
    }
}
