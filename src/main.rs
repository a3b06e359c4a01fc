//! The `certdrift` binary: parse arguments, start logging, dispatch, map the result to an
//! exit status. Everything else lives in the library.

use std::io::{self, Write};
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
    let cli = Cli::parse();
    init_logging(&cli.log_level, cli.log_format);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
        (None, None, _) => discovered_config(&args.discovery).await?,
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

fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|err| {
        eprintln!("certdrift: ignoring --log-level `{filter}` ({err}); using info");
        tracing_subscriber::EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Whether the error is a closed stdout (`certdrift check | head`), which is not a failure.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io_err| io_err.kind() == io::ErrorKind::BrokenPipe)
    })
}
