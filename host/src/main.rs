//! The `portcullis` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis::config;
use portcullis::runtime::Runtime;
use portcullis::server::RunningGateway;
use portcullis::telemetry::{self, LogFormat};

/// mimalloc, for the reasons in `portcullis_alloc`.
#[global_allocator]
static ALLOCATOR: portcullis_alloc::MiMalloc = portcullis_alloc::MiMalloc;

/// Portcullis: an API gateway whose policies are WebAssembly components.
///
/// Logs: the access log (one line per request) goes to stdout, operational logs to
/// stderr; RUST_LOG filters the latter (e.g. RUST_LOG=debug).
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve traffic with the given config until SIGTERM or SIGINT.
    ///
    /// On a signal the gateway stops accepting connections, lets in-flight requests
    /// finish for up to `server.drain_timeout` (default 30s), then exits 0.
    Run {
        /// The TOML config file (see examples/quickstart.toml).
        #[arg(short, long, value_name = "FILE", env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
        /// Log line format.
        #[arg(long, value_enum, default_value_t = LogFormat::Json)]
        log_format: LogFormat,
    },
    /// Check a config file without serving: syntax, types, unknown keys, names,
    /// certificates, regexes. Exit 0 when valid; otherwise exit 1 and print every error
    /// as FILE:LINE:COLUMN with a hint.
    Validate {
        /// The TOML config file to check.
        #[arg(value_name = "FILE")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    portcullis::install_crypto_provider();
    match cli.command {
        Command::Validate { config } => validate(&config),
        Command::Run { config, log_format } => {
            let _log_guard = telemetry::init(log_format);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .worker_threads(worker_threads())
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(run(&config))
        }
    }
}

/// `PORTCULLIS_WORKERS` sets the number of runtime threads (default: one per core).
fn worker_threads() -> usize {
    std::env::var("PORTCULLIS_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn validate(path: &std::path::Path) -> ExitCode {
    let result = config::load(path).and_then(|file| Runtime::build(&file).map(|rt| (file, rt)));
    match result {
        Ok((file, rt)) => {
            println!(
                "{}: ok ({} listeners, {} upstreams, {} routes)",
                path.display(),
                rt.listeners.len(),
                file.config.upstreams.len(),
                rt.router.routes().len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "{}: {} error{}",
                path.display(),
                e.diagnostics.len(),
                if e.diagnostics.len() == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(path: &std::path::Path) -> ExitCode {
    let runtime = match config::load(path).and_then(|file| Runtime::build(&file)) {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("config rejected:\n{e}");
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let routes = runtime.router.routes().len();
    let gateway = match RunningGateway::start(runtime).await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    for address in &gateway.addresses {
        tracing::info!(%address, routes, "listening");
    }
    // What loading freed is given back now: an idle gateway would otherwise keep it.
    portcullis_alloc::release_free_memory();
    wait_for_signal().await;
    tracing::info!("shutdown requested");
    if gateway.shutdown().await {
        tracing::info!("stopped");
    }
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
