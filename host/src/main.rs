//! The `portcullis` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis::runtime::Runtime;
use portcullis::server::RunningGateway;
use portcullis::telemetry::{self, LogFormat};
use portcullis::{config, invoke, scaffold};

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
    /// Work on plugins: try one against a request, or start a new one.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Make a plugin project that builds and passes its own test as made: a plugin that
    /// requires a header, its build script, its tests and a README saying how to
    /// reference it from a route.
    ///
    /// Python and JavaScript projects carry a copy of the SDK and of the contract (WIT),
    /// and install their toolchain into the project on first build; a Rust project uses
    /// the SDK crate of this gateway's source tree.
    New {
        /// The plugin's name: lowercase letters, digits and dashes (`require-tenant`).
        #[arg(value_name = "NAME")]
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum)]
        lang: scaffold::Lang,
        /// Where to make the project's folder.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
    /// Run one plugin in the real sandbox against a request written as an HTTP message,
    /// and print what it did: edits, reply, identity, log lines, time per phase and the
    /// most linear memory its instance held.
    ///
    /// The plugin is loaded as a route's pipeline entry would be (imports and grants
    /// checked, `check-config` called, default budgets), with a fresh instance. Exit 0 when
    /// both phases ran, 1 when the plugin failed or the input was unusable.
    ///
    /// Example request file (`req.http`):
    ///
    ///     POST /orders?x=1 HTTP/1.1
    ///     host: api.example.com
    ///     content-type: application/json
    ///     content-length: 10
    ///
    ///     {"qty": 2}
    ///
    /// The body is `content-length` bytes: a file with bytes after the head needs one.
    /// Line ends may be CRLF or LF.
    #[command(verbatim_doc_comment)]
    Invoke {
        /// A `.wasm` component, or the name of a built-in plugin (`key-auth`).
        #[arg(value_name = "PLUGIN")]
        plugin: String,
        /// The entry's `config` table, as JSON.
        #[arg(long, value_name = "JSON", default_value = "{}")]
        config: String,
        /// The request: an HTTP/1.1 message (request line, header fields, empty line,
        /// body).
        #[arg(long, value_name = "FILE")]
        request: PathBuf,
        /// The upstream's response, as an HTTP/1.1 message, for the response phase (a
        /// plugin's own reply goes through that phase without it).
        #[arg(long, value_name = "FILE")]
        response: Option<PathBuf>,
        /// More keys of the pipeline entry, as TOML: `grants = { cache = "ns" }`,
        /// `budgets = { deadline = "50ms" }`.
        #[arg(long, value_name = "TOML")]
        entry: Option<String>,
        /// Keep compiled components here between runs (a Python or JavaScript plugin's
        /// first compile takes 20–40 s on two cores). Default: ~/.cache/portcullis/components.
        #[arg(long, value_name = "DIR", env = "PORTCULLIS_PLUGIN_CACHE")]
        cache_dir: Option<PathBuf>,
        /// Print the report as JSON (for tests).
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    portcullis::install_crypto_provider();
    match cli.command {
        Command::Validate { config } => validate(&config),
        Command::Plugin(PluginCommand::New { name, lang, dir }) => {
            match scaffold::new_project(&name, lang, &dir) {
                Ok(made) => {
                    print!("{}", scaffold::next_steps(&made, lang));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Plugin(PluginCommand::Invoke {
            plugin,
            config,
            request,
            response,
            entry,
            cache_dir,
            json,
        }) => {
            let load = || -> Result<invoke::Invocation, String> {
                Ok(invoke::Invocation {
                    plugin,
                    config,
                    entry,
                    request: invoke::read(&request, "request file")?,
                    response: response
                        .map(|p| invoke::read(&p, "response file"))
                        .transpose()?,
                    cache_dir,
                })
            };
            let invocation = match load() {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            plugin_invoke(&invocation, json)
        }
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

fn plugin_invoke(invocation: &invoke::Invocation, json: bool) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(1)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(invoke::run(invocation)) {
        Ok(report) => {
            // A closed pipe (`| head`) ends the output, not the process with a panic.
            let text = if json {
                format!("{report:#}\n")
            } else {
                invoke::render(&report)
            };
            let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
            if invoke::failed(&report) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
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
