//! WASI 0.2 for plugins whose toolchain imports it (componentize-py, componentize-js,
//! Rust's `wasm32-wasip2`): each instance gets its own sandboxed context, made the first
//! time the guest calls a WASI function, so a component that imports no WASI pays nothing.
//!
//! What a guest gets:
//! - clocks: the host's wall and monotonic clocks;
//! - random: the host's generator (a per-thread ChaCha reseeded from the operating system),
//!   and an insecure generator and seed drawn from it for each instance, so two instances
//!   never share a value; at most [`MAX_RANDOM_BYTES`] per call. While an entry with
//!   `preinitialise` is snapshotted, the snapshot's keyed stream instead (`snapshot.rs`);
//! - stdin: empty; arguments and environment: none; exit: ends the call as a trap;
//! - stdout and stderr: the plugin's log lines, one per line written, with the route, the
//!   plugin and the request id, within the entry's log quota; a line longer than
//!   [`MAX_LOG_LINE`](super::info::MAX_LOG_LINE) bytes is written in pieces of at most
//!   that, cut between characters.
//!
//! - files and the network: none. The default builds of componentize-py and
//!   componentize-qjs import `wasi:filesystem` (and Python `wasi:sockets`) whether or not
//!   the plugin uses them, so both are linked, empty: no directory is preopened, so no
//!   file can be named, and every socket address and name lookup is denied.
//!
//! `wasi:http`'s outgoing handler is served under the entry's `http` grant, with the same
//! allowlist, budget and deadline as the contract's `outbound-http` (`wasi_http.rs`).

use std::pin::Pin;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::info::{EntryInfo, MAX_LOG_LINE};
use super::snapshot::Seeded;
use super::state::PluginState;
use super::wasi_http::Http;

/// The WASI interfaces served, without their versions. Any other `wasi:` import is refused.
pub const SERVED: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/ip-name-lookup",
];

/// Links the interfaces of [`SERVED`].
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::WasiCli;
    use wasmtime_wasi::clocks::WasiClocks;
    use wasmtime_wasi::filesystem::WasiFilesystem;
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets};
    use wasmtime_wasi::random::WasiRandom;
    use wasmtime_wasi::sockets::WasiSockets;

    wasmtime_wasi_io::add_to_linker_async(linker)?;
    let l = linker;
    clocks::wall_clock::add_to_linker::<_, WasiClocks>(l, PluginState::clocks)?;
    clocks::monotonic_clock::add_to_linker::<_, WasiClocks>(l, PluginState::clocks)?;
    random::random::add_to_linker::<_, WasiRandom>(l, |s| s.ctx().ctx.random())?;
    random::insecure::add_to_linker::<_, WasiRandom>(l, |s| s.ctx().ctx.random())?;
    random::insecure_seed::add_to_linker::<_, WasiRandom>(l, |s| s.ctx().ctx.random())?;
    cli::exit::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::environment::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::stdin::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::stdout::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::stderr::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::terminal_input::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::terminal_output::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, PluginState::cli)?;
    filesystem::types::add_to_linker::<_, WasiFilesystem>(l, PluginState::filesystem)?;
    filesystem::preopens::add_to_linker::<_, WasiFilesystem>(l, PluginState::filesystem)?;
    sockets::network::add_to_linker::<_, WasiSockets>(
        l,
        &Default::default(),
        PluginState::sockets,
    )?;
    sockets::instance_network::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)?;
    sockets::tcp::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)?;
    sockets::tcp_create_socket::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)?;
    sockets::udp::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)?;
    sockets::udp_create_socket::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)?;
    sockets::ip_name_lookup::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)?;
    Ok(())
}

/// The most random bytes one call may ask for. Each call is one host step that no deadline
/// can interrupt, outside the memory budget: wasmtime-wasi's default of 64 MiB took 200 ms
/// and 64 MiB of the gateway's memory per call. Toolchains ask for 16–32 bytes at a time.
const MAX_RANDOM_BYTES: u64 = 64 << 10;

/// The WASI handles one instance may hold at once.
const MAX_HANDLES: usize = 1024;

/// One instance's WASI context, and the request its output is filed under.
pub struct Wasi {
    ctx: WasiCtx,
    table: ResourceTable,
    /// `wasi:http`'s state, on the same resource table.
    http: Http,
    request_id: Arc<Mutex<Option<Arc<str>>>>,
    /// Its stdout and stderr, whose unfinished lines belong to the request that wrote them.
    sinks: [Arc<Sink>; 2],
}

impl std::fmt::Debug for Wasi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wasi").finish_non_exhaustive()
    }
}

impl Wasi {
    /// `seeded` is the keyed stream of an instance being snapshotted: its random draws
    /// come from streams forked from it, so the snapshot is repeatable. `outbound_left`
    /// is the store's outbound-call budget, which `wasi:http` draws on too.
    pub fn new(
        entry: &Arc<EntryInfo>,
        request_id: Option<Arc<str>>,
        seeded: Option<&mut Seeded>,
        outbound_left: &Arc<AtomicU32>,
    ) -> Self {
        let request_id = Arc::new(Mutex::new(request_id));
        let sink = |stream, level| {
            Arc::new(Sink {
                entry: Arc::clone(entry),
                stream,
                level,
                request_id: Arc::clone(&request_id),
                pending: Mutex::default(),
            })
        };
        let sinks = [
            sink("stdout", tracing::Level::INFO),
            sink("stderr", tracing::Level::WARN),
        ];
        let output = |sink: &Arc<Sink>| Output {
            sink: Arc::clone(sink),
        };
        // The builder's defaults are the sandbox: no preopened directories, environment or
        // arguments, an empty stdin, the host's clocks and fresh random state, every socket
        // address denied. The network is also turned off by name, so that a change of
        // defaults in a later wasmtime-wasi cannot open it.
        let mut builder = WasiCtx::builder();
        builder
            .stdout(output(&sinks[0]))
            .stderr(output(&sinks[1]))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(MAX_RANDOM_BYTES);
        if let Some(seeded) = seeded {
            let mut seed = [0u8; 16];
            seeded.fill(&mut seed);
            builder
                .secure_random(seeded.fork())
                .insecure_random(seeded.fork())
                .insecure_random_seed(u128::from_le_bytes(seed));
        }
        let ctx = builder.build();
        // Every WASI handle (streams, pollables, wasi:http fields and bodies) is host memory
        // outside the memory budget: a guest may hold this many at once (wasmtime's default
        // is a million; toolchains' runtimes use tens).
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HANDLES);
        Self {
            ctx,
            table,
            http: Http::new(entry, &request_id, outbound_left),
            request_id,
            sinks,
        }
    }

    /// Whether the guest still holds a `wasi:http` answer or send.
    pub fn holds_http_responses(&self) -> bool {
        self.http.holds_responses()
    }

    /// Files what the guest writes from now on under `request_id`. A warm instance's line
    /// left unfinished by the request before is written first, under that request.
    pub fn serve(&self, request_id: &Arc<str>) {
        let same = self
            .request_id
            .lock()
            .is_ok_and(|current| current.as_ref() == Some(request_id));
        if same {
            return;
        }
        for sink in &self.sinks {
            sink.finish_line();
        }
        if let Ok(mut current) = self.request_id.lock() {
            *current = Some(Arc::clone(request_id));
        }
    }
}

impl PluginState {
    /// The instance's WASI context, made on the guest's first WASI call.
    fn wasi_mut(&mut self) -> &mut Wasi {
        self.wasi.get_or_insert_with(|| {
            Box::new(Wasi::new(
                &self.entry,
                self.request_id.clone(),
                self.seeded.as_mut(),
                &self.outbound_left,
            ))
        })
    }

    /// `wasi:http`'s state and the resource table it shares with the rest of WASI.
    pub(super) fn http_parts(&mut self) -> (&mut Http, &mut ResourceTable) {
        let wasi = self.wasi_mut();
        (&mut wasi.http, &mut wasi.table)
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let wasi = self.wasi_mut();
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut wasi.table,
        }
    }
}

impl wasmtime_wasi_io::IoView for PluginState {
    fn table(&mut self) -> &mut ResourceTable {
        self.ctx().table
    }
}

impl PluginState {
    fn clocks(&mut self) -> wasmtime_wasi::clocks::WasiClocksCtxView<'_> {
        wasmtime_wasi::clocks::WasiClocksView::clocks(self)
    }

    fn cli(&mut self) -> wasmtime_wasi::cli::WasiCliCtxView<'_> {
        wasmtime_wasi::cli::WasiCliView::cli(self)
    }

    fn filesystem(&mut self) -> wasmtime_wasi::filesystem::WasiFilesystemCtxView<'_> {
        wasmtime_wasi::filesystem::WasiFilesystemView::filesystem(self)
    }

    fn sockets(&mut self) -> wasmtime_wasi::sockets::WasiSocketsCtxView<'_> {
        wasmtime_wasi::sockets::WasiSocketsView::sockets(self)
    }
}

/// A guest's stdout or stderr: what it writes becomes the plugin's log lines.
struct Output {
    sink: Arc<Sink>,
}

struct Sink {
    entry: Arc<EntryInfo>,
    stream: &'static str,
    level: tracing::Level,
    request_id: Arc<Mutex<Option<Arc<str>>>>,
    /// The line being written, until its newline (or [`MAX_LOG_LINE`] bytes) comes.
    pending: Mutex<Vec<u8>>,
}

impl Sink {
    fn write(&self, mut bytes: &[u8]) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        while !bytes.is_empty() {
            let room = MAX_LOG_LINE.saturating_sub(pending.len()).max(1);
            match bytes.iter().take(room).position(|b| *b == b'\n') {
                Some(end) => {
                    pending.extend_from_slice(&bytes[..end]);
                    bytes = &bytes[end + 1..];
                }
                None => {
                    let take = bytes.len().min(room);
                    pending.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if pending.len() < MAX_LOG_LINE {
                        continue;
                    }
                    // A full line without its newline: written in two, the cut moved back
                    // to a character boundary so that no character is split between them.
                    let cut = utf8_boundary(&pending);
                    self.emit(&pending[..cut]);
                    pending.drain(..cut);
                    continue;
                }
            }
            self.emit(&pending);
            pending.clear();
        }
    }

    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.strip_suffix('\r').unwrap_or(&line);
        let request_id = self.request_id.lock().ok().and_then(|id| id.clone());
        self.entry
            .log_line(self.level, Some(self.stream), request_id.as_deref(), line);
    }
}

/// Where to cut `bytes` so that a UTF-8 character at its end is not split: before the last
/// character when it is incomplete, at the end otherwise (or when the text is not UTF-8).
fn utf8_boundary(bytes: &[u8]) -> usize {
    let start = bytes.len().saturating_sub(3);
    for at in (start..bytes.len()).rev() {
        let byte = bytes[at];
        if byte & 0xC0 != 0x80 {
            // A lead byte: the character it starts needs this many bytes.
            let needs = match byte {
                0xF0..=0xF7 => 4,
                0xE0..=0xEF => 3,
                0xC0..=0xDF => 2,
                _ => 1,
            };
            return if at + needs > bytes.len() && at > 0 {
                at
            } else {
                bytes.len()
            };
        }
    }
    bytes.len()
}

impl Sink {
    /// Writes the line being written, if any, without waiting for its newline.
    fn finish_line(&self) {
        let pending = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return,
        };
        if !pending.is_empty() {
            self.emit(&pending);
        }
    }
}

impl Drop for Sink {
    /// A last line without its newline is written when the instance goes.
    fn drop(&mut self) {
        self.finish_line();
    }
}

impl IsTerminal for Output {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Output {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(Writer(Arc::clone(&self.sink)))
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(Writer(Arc::clone(&self.sink)))
    }
}

/// A handle on a [`Sink`]: always ready, every write taken whole.
struct Writer(Arc<Sink>);

/// How much a guest may write in one call; it writes again for more.
const WRITE_PERMIT: usize = 64 << 10;

#[wasmtime_wasi::async_trait]
impl Pollable for Writer {
    async fn ready(&mut self) {}
}

impl OutputStream for Writer {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.write(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl tokio::io::AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::utf8_boundary;

    #[test]
    fn a_cut_never_splits_a_character() {
        let text = "ab\u{e9}\u{20ac}\u{1f600}".as_bytes();
        // Every prefix: the cut lands on a boundary of the text, at most 3 bytes back.
        for len in 1..=text.len() {
            let cut = utf8_boundary(&text[..len]);
            assert!(std::str::from_utf8(&text[..cut]).is_ok(), "{len} -> {cut}");
            assert!(len - cut <= 3, "{len} -> {cut}");
        }
        // Bytes that are not UTF-8 are cut where they end.
        assert_eq!(utf8_boundary(&[0xff; 10]), 10);
        assert_eq!(utf8_boundary(&[0x80; 10]), 10);
    }
}
