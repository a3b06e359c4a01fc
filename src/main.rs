//! The `certdrift` binary: parse arguments, start logging, dispatch, map the result to an
//! exit status. Everything else lives in the library.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use time::OffsetDateTime;

use certdrift::check::{self, Outcome};
use certdrift::cli::{CheckArgs, Cli, Command, Format, LogFormat, ServeArgs};
use certdrift::config::{AdHoc, Config};
use certdrift::probe::Prober;
use certdrift::{demo, report, serve};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    let config = match (&args.config, &args.site.host, &args.site.cert) {
        (Some(path), _, _) => Config::load(path)?,
        (None, Some(host), Some(cert)) => Config::ad_hoc(AdHoc {
            host,
            port: args.site.port,
            sni: args.site.sni.as_deref(),
            protocol: args.site.protocol,
            cert,
            key: args.site.key.as_deref(),
            ca_file: args.site.ca_file.as_deref(),
        })?,
        _ => anyhow::bail!(
            "nothing to check: pass --config FILE, or --host HOST --cert FILE for one site \
             (or run `certdrift demo` to see what certdrift does)"
        ),
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
    let config = Config::load(&args.config)?;
    let options = serve::ServeOptions {
        listen: args.listen,
        telemetry_path: args.telemetry_path,
    };
    serve::run(config, options).await?;
    Ok(ExitCode::SUCCESS)
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
