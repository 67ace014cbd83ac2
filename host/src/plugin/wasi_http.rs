//! `wasi:http` for guests whose toolchain imports it: StarlingMonkey (componentize-js)
//! links `wasi:http/types` and `wasi:http/outgoing-handler` into every default build, for
//! `fetch`, and Rust guests may call it through the `wasip2` crate.
//!
//! An outgoing request is held to the same rules as the contract's `outbound-http`
//! import: its URL's host and port must be in the entry's `http` grant, it takes one call
//! from the request's `outbound_calls` budget (the two interfaces share it), it goes
//! through the gateway's shared client, and it ends at the plugin's deadline (the
//! guest's own first-byte timeout may end it sooner); the request and response bodies
//! are held to `body_bytes`, and the answer is read whole within the deadline, so a guest
//! holds bytes, never a connection. A request outside those rules (user info in the URL
//! and `CONNECT` included) is refused with `HTTP-request-denied` before any connection is
//! made, and the refusal is logged under the request with the host only (a URL's path
//! and query may carry secrets). The URL is sent rebuilt from the host and port the grant
//! checked, and `Host` is written from it.
//!
//! A warm instance that still holds an answer's body (or a send in flight) when its call
//! ends is not reused (`Http::holds_responses`): answers kept from call to call would pile
//! up on the host, outside the instance's memory budget. A head read and kept without its
//! body is not counted; heads are held to 16 KiB, and an instance to 1 024 handles. A send
//! dropped unfinished may count a moment longer than it lives, which retires an instance
//! that could have served on: the safe side. An answer over `body_bytes` fails as a whole
//! (its status is not seen); trailers are not passed on.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use wasmtime::component::Linker;
use wasmtime_wasi_http::{
    Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use super::info::{EntryInfo, has_user_info};
use super::services::OutboundClient;
use super::state::{PluginState, take_one};

/// The `wasi:http` interfaces linked, without their versions.
pub const SERVED: &[&str] = &["wasi:http/types", "wasi:http/outgoing-handler"];

/// Links the interfaces of [`SERVED`].
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

/// The most header bytes one fields resource may hold, and an answer's head.
const MAX_FIELDS_BYTES: usize = 16 << 10;

/// One instance's `wasi:http` state: the field-size limit, and the hooks that admit or
/// refuse each request.
pub struct Http {
    ctx: WasiHttpCtx,
    hooks: Gate,
}

/// Counts the sends admitted whose answer the guest has not dropped yet (the count goes
/// down when the answer's body goes, or when the send fails).
#[derive(Default)]
struct Held(Arc<AtomicUsize>);

impl Held {
    fn one(&self) -> HeldOne {
        self.0.fetch_add(1, Ordering::Relaxed);
        HeldOne(Arc::clone(&self.0))
    }
}

/// One admitted send, counted in [`Held`] until dropped.
struct HeldOne(Arc<AtomicUsize>);

impl Drop for HeldOne {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Http {
    /// `request_id` is the instance's WASI context's: the request being served;
    /// `outbound_left` is the store's budget counter.
    pub fn new(
        entry: &Arc<EntryInfo>,
        request_id: &Arc<Mutex<Option<Arc<str>>>>,
        outbound_left: &Arc<AtomicU32>,
    ) -> Self {
        let mut ctx = WasiHttpCtx::new();
        // These resources live on the host's heap, outside the memory budget: each fields
        // resource is held to 16 KiB (a guest cloning one in a loop would otherwise take
        // 128 KiB a call), and bodies (below) to one small chunk in flight.
        ctx.set_field_size_limit(MAX_FIELDS_BYTES);
        Self {
            ctx,
            hooks: Gate {
                entry: Arc::clone(entry),
                request_id: Arc::clone(request_id),
                outbound_left: Arc::clone(outbound_left),
                deadline: Instant::now(),
                held: Held::default(),
            },
        }
    }

    /// Whether the guest still holds an answer (or a send in flight).
    pub fn holds_responses(&self) -> bool {
        self.hooks.held.0.load(Ordering::Relaxed) > 0
    }

    /// The current call's deadline, which every request sent from now on ends at.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.hooks.deadline = deadline;
    }
}

/// Admits the requests the entry's grant and budget allow, and refuses the rest.
struct Gate {
    entry: Arc<EntryInfo>,
    request_id: Arc<Mutex<Option<Arc<str>>>>,
    outbound_left: Arc<AtomicU32>,
    deadline: Instant,
    held: Held,
}

type Sent = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

impl Gate {
    /// Why this request may not be sent, if it may not; takes a call from the budget if
    /// it may.
    fn refusal(&self, method: &http::Method, uri: &http::Uri) -> Option<String> {
        if method == http::Method::CONNECT {
            return Some("`CONNECT` is not sent for plugins".to_owned());
        }
        if has_user_info(uri) {
            return Some("a URL with user info (`user@host`) is not sent".to_owned());
        }
        let grants = &self.entry.grants;
        if grants.http.is_empty() {
            let host = uri.host().unwrap_or("");
            let grant = match uri.port_u16() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            };
            return Some(format!(
                "this entry has no `http` grant; add `grants = {{ http = [\"{grant}\"] }}` \
                 to the entry if it should reach that host"
            ));
        }
        if !grants.permits_url(uri) {
            return Some(format!(
                "its host and port are not in the entry's `grants.http`{}",
                if uri.port().is_some() {
                    ""
                } else {
                    " (a grant without a port allows the scheme's default port only)"
                }
            ));
        }
        if !take_one(&self.outbound_left) {
            return Some(
                "no outbound call is left for this request (`budgets.outbound_calls`, shared \
                 with outbound-http; none while the config is checked)"
                    .to_owned(),
            );
        }
        None
    }
}

impl WasiHttpHooks for Gate {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        if let Some(why) = self.refusal(request.method(), request.uri()) {
            // The host only: a URL's path and query may carry what a plugin should not log.
            let host = request.uri().host().unwrap_or("(no host)");
            let request_id = self.request_id.lock().ok().and_then(|id| id.clone());
            self.entry.log_line(
                tracing::Level::WARN,
                None,
                request_id.as_deref(),
                &format!("wasi:http request to {host} refused: {why}"),
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let send = Outgoing {
            client: self.entry.services.http.clone(),
            body_bytes: self.entry.budgets.body_bytes,
            deadline: self.deadline,
            first_byte: options.and_then(|o| o.first_byte_timeout),
            held: self.held.one(),
        };
        // Taken now: the future runs in a task of its own, where a lane call's home
        // runtime can no longer be found.
        let home = super::home::home();
        Box::new(send.run(request, home))
    }

    /// `Host` is written by the client from the URL as the grant checked it
    /// ([`canonical`]), not from the guest's authority text.
    fn set_host_header(&mut self) -> bool {
        false
    }

    /// An outgoing body's writes are buffered on the host until the sender takes them:
    /// one chunk of 4 KiB (the default is 1 MiB) bounds what a guest can pin per body.
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        1
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        4 << 10
    }
}

/// One admitted request, with the limits it is sent under.
struct Outgoing {
    client: OutboundClient,
    body_bytes: u64,
    deadline: Instant,
    first_byte: Option<Duration>,
    /// Counted until the answer's body is dropped.
    held: HeldOne,
}

impl Outgoing {
    async fn run(
        self,
        request: http::Request<WasiBody>,
        home: Option<tokio::runtime::Handle>,
    ) -> Sent {
        let Self {
            client,
            body_bytes,
            deadline,
            first_byte,
            held,
        } = self;
        let cap = usize::try_from(body_bytes).unwrap_or(usize::MAX);
        let left = deadline.saturating_duration_since(Instant::now());
        let first_byte = first_byte.map_or(left, |t| t.min(left));
        let exchange = async move {
            // The body is taken whole, as `outbound-http` takes it: the guest may write it
            // before or after handing the request over, and this task reads it meanwhile.
            let (mut head, body) = request.into_parts();
            head.uri = canonical(&head.uri).ok_or(Error::HttpRequestUriInvalid)?;
            let send = async move {
                let body = Limited::new(body, cap)
                    .collect()
                    .await
                    .map_err(|e| {
                        if e.is::<http_body_util::LengthLimitError>() {
                            Error::HttpRequestBodySize(Some(body_bytes))
                        } else {
                            Error::InternalError(Some(e.to_string()))
                        }
                    })?
                    .to_bytes();
                let request = http::Request::from_parts(head, crate::body::full(body));
                client.request(request).await.map_err(|e| {
                    if e.is_connect() {
                        Error::ConnectionRefused
                    } else {
                        Error::HttpProtocolError
                    }
                })
            };
            // The guest's first-byte timeout ends the wait for the answer's head; the
            // deadline, the whole exchange.
            let response = tokio::time::timeout(first_byte, send)
                .await
                .map_err(|_| Error::HttpResponseTimeout)??;
            // What a guest may keep past its call is held small: an answer's head within
            // the size of the fields it may make itself.
            let head_bytes: usize = response
                .headers()
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len())
                .sum();
            if head_bytes > MAX_FIELDS_BYTES {
                return Err(Error::HttpResponseHeaderSectionSize(None));
            }
            // Read whole here, within the deadline: a guest holds bytes, never a
            // connection of the shared pool.
            let (head, body) = response.into_parts();
            let body = Limited::new(body, cap).collect().await.map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Error::HttpResponseBodySize(Some(body_bytes))
                } else {
                    Error::HttpResponseIncomplete
                }
            })?;
            Ok((head, body.to_bytes()))
        };
        // On the serving runtime even for a plugin on the lane: the client's connections
        // are shared with every route (`home::at_home`); the timer too, so that the lane's
        // timer wheel does not drive it.
        let timed = async move { tokio::time::timeout(left, exchange).await };
        let (head, bytes) = match super::home::run_at(home, timed).await {
            Some(Ok(Ok(answer))) => answer,
            Some(Ok(Err(e))) => return Err(e),
            Some(Err(_elapsed)) => return Err(Error::HttpResponseTimeout),
            None => {
                return Err(Error::InternalError(Some(
                    "the gateway is shutting down".to_owned(),
                )));
            }
        };
        // The body owns the count of this send: it goes down when the guest drops it.
        let body = Full::new(bytes)
            .map_err(move |never| {
                let _held = &held;
                match never {}
            })
            .boxed_unsync();
        let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
        Ok((http::Response::from_parts(head, body), io))
    }
}

/// `uri` rebuilt from what the grant checked: scheme, host in lower case, the port only
/// when it is not the scheme's default, path and query. Spellings of one address
/// (`0443`, upper case) then share one pooled connection and one `Host`.
fn canonical(uri: &http::Uri) -> Option<http::Uri> {
    let scheme = uri.scheme()?;
    let host = uri.host()?.to_ascii_lowercase();
    let default = if scheme == &http::uri::Scheme::HTTPS {
        443
    } else {
        80
    };
    let authority = match uri.port_u16() {
        Some(port) if port != default => format!("{host}:{port}"),
        _ => host,
    };
    http::Uri::builder()
        .scheme(scheme.clone())
        .authority(authority)
        .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .ok()
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let deadline = self.deadline;
        let (http, table) = self.http_parts();
        http.set_deadline(deadline);
        WasiHttpCtxView {
            ctx: &mut http.ctx,
            table,
            hooks: &mut http.hooks,
        }
    }
}
