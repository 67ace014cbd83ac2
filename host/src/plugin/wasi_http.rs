//! `wasi:http` for guests whose toolchain imports it: StarlingMonkey (componentize-js)
//! links `wasi:http/types` and `wasi:http/outgoing-handler` into every default build, for
//! `fetch`, whether or not the plugin calls it. The interfaces are linked (with
//! wasmtime-wasi-http's types), so those builds load; every outgoing request is refused
//! with `HTTP-request-denied` before any connection is made, and the refusal is logged
//! under the request, saying what to use instead. Outbound HTTP goes through the
//! contract's `outbound-http` import, which holds the entry's `http` grant (host
//! allowlist, call budget, deadline).

use std::sync::{Arc, Mutex};

use wasmtime::component::Linker;
use wasmtime_wasi_http::{
    Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use super::info::EntryInfo;
use super::state::PluginState;

/// The `wasi:http` interfaces linked, without their versions.
pub const SERVED: &[&str] = &["wasi:http/types", "wasi:http/outgoing-handler"];

/// Links the interfaces of [`SERVED`].
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

/// One instance's `wasi:http` state: the field-size limit, and the hooks that refuse.
pub struct Http {
    ctx: WasiHttpCtx,
    hooks: Refuse,
}

impl Http {
    /// `request_id` is the instance's WASI context's: the request being served.
    pub fn new(entry: &Arc<EntryInfo>, request_id: &Arc<Mutex<Option<Arc<str>>>>) -> Self {
        let mut ctx = WasiHttpCtx::new();
        // These resources live on the host's heap, outside the memory budget: each fields
        // resource is held to 16 KiB (a guest cloning one in a loop would otherwise take
        // 128 KiB a call), and bodies (below) to one small chunk.
        ctx.set_field_size_limit(16 << 10);
        Self {
            ctx,
            hooks: Refuse {
                entry: Arc::clone(entry),
                request_id: Arc::clone(request_id),
            },
        }
    }
}

/// Refuses every outgoing request, and says so in the log.
struct Refuse {
    entry: Arc<EntryInfo>,
    request_id: Arc<Mutex<Option<Arc<str>>>>,
}

type Sent = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

impl WasiHttpHooks for Refuse {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        // The host only: a URL's path and query may carry what a plugin should not log.
        let host = request.uri().host().unwrap_or("(no host)").to_owned();
        let request_id = self.request_id.lock().ok().and_then(|id| id.clone());
        self.entry.log_line(
            tracing::Level::WARN,
            None,
            request_id.as_deref(),
            &format!(
                "wasi:http request to {host} refused: plugins reach the network only through \
                 portcullis:plugin/outbound-http, under the entry's `http` grant"
            ),
        );
        Box::new(async { Err(Error::HttpRequestDenied) })
    }

    /// An outgoing body's writes are buffered on the host until the request is handed
    /// over, which never happens: one chunk of 4 KiB (the default is 1 MiB) bounds what a
    /// guest can pin per body.
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        1
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        4 << 10
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let (http, table) = self.http_parts();
        WasiHttpCtxView {
            ctx: &mut http.ctx,
            table,
            hooks: &mut http.hooks,
        }
    }
}
