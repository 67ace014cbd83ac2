//! Logging: the access log (one line per request, on stdout) and operational logs
//! (start, reload, upstream failures; on stderr), both through `tracing`.

mod access_log;
mod metrics;

pub use access_log::{ACCESS_TARGET, AccessRecord, HeaderRedactor};
pub use metrics::{Metrics, PluginEventLabels, PluginFailureLabels, PluginLabels};

use std::sync::{Arc, Mutex};

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

/// Flushes the access log when dropped; keep it until the process exits.
#[must_use = "dropping the guard stops the access-log flusher"]
pub struct LogGuard {
    out: SharedOut,
    stop: Option<std::sync::mpsc::Sender<()>>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogGuard")
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        flush(&self.out);
    }
}

/// A buffered stdout shared by the request threads that write access-log lines.
pub type SharedOut = Arc<Mutex<std::io::BufWriter<Box<dyn std::io::Write + Send>>>>;

/// How long an access-log line may wait in the buffer before it is written.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

fn flush(out: &SharedOut) {
    use std::io::Write;
    if let Ok(mut w) = out.lock() {
        let _ = w.flush();
    }
}

/// The access log's writer: a 64 KiB buffer over stdout, written by the request threads
/// (a memcpy under a short lock) and flushed when full or every 100 ms by a sleeping
/// thread. A writer thread fed by a channel, tried first, spun in `sched_yield` on the
/// same core as the requests it served (strace under bench/proxy.sh).
fn access_writer() -> (SharedOut, LogGuard) {
    use std::os::fd::AsFd;
    let inner: Box<dyn std::io::Write + Send> = match std::io::stdout().as_fd().try_clone_to_owned()
    {
        Ok(fd) => Box::new(std::fs::File::from(fd)),
        Err(_) => Box::new(std::io::stdout()),
    };
    let out: SharedOut = Arc::new(Mutex::new(std::io::BufWriter::with_capacity(
        64 * 1024,
        inner,
    )));
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let periodic = Arc::clone(&out);
    let flusher = std::thread::Builder::new()
        .name("access-log-flush".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(FLUSH_EVERY)
            {
                flush(&periodic);
            }
        })
        .ok();
    let guard = LogGuard {
        out: Arc::clone(&out),
        stop: Some(stop),
        flusher,
    };
    (out, guard)
}

/// Installs the global subscriber. `RUST_LOG` filters operational logs (default `info`);
/// the access log is always on. Keep the returned guard until the process exits.
pub fn init(format: LogFormat) -> LogGuard {
    let (access_out, guard) = access_writer();
    let mut ops_filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    // wasmtime-wasi-http warns of a guest's malformed request itself, before the gateway
    // sees it: a guest could write such lines in a loop, outside its log quota. Quiet
    // whatever the level, unless `RUST_LOG` names that crate.
    let named = std::env::var("RUST_LOG").is_ok_and(|v| v.contains("wasmtime_wasi_http"));
    if !named && let Ok(quiet) = "wasmtime_wasi_http=error".parse() {
        ops_filter = ops_filter.add_directive(quiet);
    }
    let not_access = filter_fn(|meta| meta.target() != ACCESS_TARGET);
    let only_access = filter_fn(|meta| meta.target() == ACCESS_TARGET);

    let registry = tracing_subscriber::registry();
    match format {
        LogFormat::Json => {
            // Access records write their own JSON lines (`AccessRecord`'s drop), not
            // through `tracing`.
            access_log::write_json_to(access_out);
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .flatten_event(true)
                        .with_writer(std::io::stderr)
                        .with_filter(not_access)
                        .with_filter(ops_filter),
                )
                .init();
        }
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_target(false)
                    .with_writer(StdoutShared(Arc::clone(&access_out)))
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

/// Lets the pretty access format write through the same shared buffer.
struct StdoutShared(SharedOut);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StdoutShared {
    type Writer = SharedLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        SharedLine(&self.0)
    }
}

struct SharedLine<'a>(&'a SharedOut);

impl std::io::Write for SharedLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut w) => w.write(buf),
            Err(_) => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
