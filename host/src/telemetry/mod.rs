//! Logging: the access log (one line per request, on stdout) and operational logs
//! (start, reload, upstream failures; on stderr), both through `tracing`.

mod access_log;

pub use access_log::{ACCESS_TARGET, AccessJsonLayer, AccessRecord, HeaderRedactor};

use tracing_subscriber::filter::{EnvFilter, LevelFilter, filter_fn};
use tracing_subscriber::prelude::*;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log shippers.
    Json,
    /// Aligned, coloured text for a terminal.
    Pretty,
}

/// Keeps the access-log writer thread alive; dropping it flushes what is queued.
#[must_use = "dropping the guard stops the access-log writer"]
pub struct LogGuard(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogGuard")
    }
}

/// The access log's writer: a dedicated thread with a buffer over stdout, so request
/// tasks never block on the write and lines leave in batches under load. The queue
/// applies backpressure when full instead of dropping lines.
fn access_writer() -> (tracing_appender::non_blocking::NonBlocking, LogGuard) {
    use std::os::fd::AsFd;
    let out: Box<dyn std::io::Write + Send> = match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::fs::File::from(fd),
        )),
        Err(_) => Box::new(std::io::stdout()),
    };
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("access-log")
        .finish(out);
    (writer, LogGuard(guard))
}

/// Installs the global subscriber. `RUST_LOG` filters operational logs (default `info`);
/// the access log is always on. Keep the returned guard until the process exits.
pub fn init(format: LogFormat) -> LogGuard {
    let (access_out, guard) = access_writer();
    let ops_filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let not_access = filter_fn(|meta| meta.target() != ACCESS_TARGET);
    let only_access = filter_fn(|meta| meta.target() == ACCESS_TARGET);

    let registry = tracing_subscriber::registry();
    match format {
        LogFormat::Json => registry
            .with(AccessJsonLayer::new(access_out).with_filter(only_access))
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr)
                    .with_filter(not_access)
                    .with_filter(ops_filter),
            )
            .init(),
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_target(false)
                    .with_writer(access_out.clone())
                    .with_filter(only_access),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_writer(std::io::stderr)
                    .with_filter(not_access)
                    .with_filter(ops_filter),
            )
            .init(),
    }
    guard
}
