//! Logging: the access log (one line per request, on stdout) and operational logs
//! (start, reload, upstream failures; on stderr), both through `tracing`.

mod access_log;

pub use access_log::{ACCESS_TARGET, AccessRecord, HeaderRedactor};

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

/// Installs the global subscriber. `RUST_LOG` filters operational logs (default `info`);
/// the access log is always on.
pub fn init(format: LogFormat) {
    let ops_filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let not_access = filter_fn(|meta| meta.target() != ACCESS_TARGET);
    let only_access = filter_fn(|meta| meta.target() == ACCESS_TARGET);

    let registry = tracing_subscriber::registry();
    match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_target(false)
                    .with_writer(std::io::stdout)
                    .with_filter(only_access),
            )
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
                    .with_writer(std::io::stdout)
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
}
