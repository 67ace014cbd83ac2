//! Listeners: accepting TCP (and TLS) connections and serving HTTP/1.1 and HTTP/2 on
//! them with hyper, under the listener's edge limits.
//!
//! Connection-level limits live here (open connections, TLS handshake and header read
//! timeouts, idle timeout, hyper's hard caps); request-level limits whose answer must be
//! a problem+json body are checked by the request path, which the listener is handed as a
//! [`Handler`] (the gateway's is assembled in `server.rs`), so this module knows nothing of
//! the stages.

pub mod config;
pub mod framing;
pub mod io;
mod side;
pub mod tls;
pub mod tunnel;

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::body::ProxyBody;
use crate::config::ListenerLimits;
use crate::runtime::ListenerSpec;
use framing::{FramingGuard, FramingVerdicts};
use io::{Activity, WatchedIo};

/// What serves the requests of a connection: the request path, handed to the listener.
/// It never fails; every error has become a response by the time it returns.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        conn: &Connection,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<ProxyBody>> + Send;
}

/// What the request path knows about the connection a request came on.
#[derive(Debug)]
pub struct Connection {
    pub peer: SocketAddr,
    pub tls: bool,
    pub trusted_proxies: Arc<Vec<IpNet>>,
    /// The peer as the forwarding headers name it, worked out once per connection.
    pub forwarding: crate::proxy::ForwardingPeer,
    pub limits: Arc<ListenerLimits>,
    /// The framing guard's verdicts for HTTP/1 heads read from this connection's bytes.
    /// On a connection that negotiated h2 by ALPN no guard runs and the queue stays
    /// empty, so an HTTP/1 request there (hyper picks the protocol from the first bytes,
    /// not from ALPN) fails closed. `None` only for requests handed over already parsed,
    /// in process, which have no bytes to guard.
    pub framing: Option<Arc<FramingVerdicts>>,
    pub activity: Arc<Activity>,
    pub paths: crate::canonical::PathOptions,
    /// Where an upgraded connection goes after its 101.
    pub tunnels: tunnel::Tunnels,
    /// `Strict-Transport-Security` for every response, on TLS listeners that set it.
    pub hsts: Option<http::HeaderValue>,
}

impl Connection {
    /// A connection of `spec`'s listener from `peer` that no socket carries: for driving
    /// the request path in process (tests, benches). Its requests arrive parsed, so
    /// there is no framing to guard, and an upgrade has no connection slot to move.
    pub fn in_process(spec: &ListenerSpec, peer: SocketAddr) -> Self {
        let tls = spec.tls.is_some();
        Self {
            peer,
            tls,
            trusted_proxies: Arc::new(spec.trusted_proxies.clone()),
            forwarding: crate::proxy::ForwardingPeer::new(peer.ip(), &spec.trusted_proxies),
            limits: Arc::new(spec.limits.clone()),
            framing: None,
            activity: Arc::new(Activity::new()),
            paths: spec.paths,
            tunnels: tunnel::Tunnels::detached(spec.limits.idle_timeout),
            hsts: if tls { spec.hsts.clone() } else { None },
        }
    }
}

/// A bound listener, ready to serve.
#[derive(Debug)]
pub struct BoundListener {
    pub local_addr: SocketAddr,
    tcp: TcpListener,
    settings: Arc<ListenerSettings>,
}

/// What every connection of a listener shares. Kept apart from the socket, so that
/// closing the socket at shutdown does not wait for the connections to end.
struct ListenerSettings {
    tls: Option<tokio_rustls::TlsAcceptor>,
    trusted_proxies: Arc<Vec<IpNet>>,
    limits: Arc<ListenerLimits>,
    paths: crate::canonical::PathOptions,
    hsts: Option<http::HeaderValue>,
}

impl std::fmt::Debug for ListenerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerSettings")
            .field("tls", &self.tls.is_some())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl BoundListener {
    pub async fn bind(spec: &ListenerSpec) -> std::io::Result<Self> {
        let tcp = TcpListener::bind(spec.address).await?;
        Ok(Self {
            local_addr: tcp.local_addr()?,
            tcp,
            settings: Arc::new(ListenerSettings {
                tls: spec.tls.clone().map(tokio_rustls::TlsAcceptor::from),
                trusted_proxies: Arc::new(spec.trusted_proxies.clone()),
                limits: Arc::new(spec.limits.clone()),
                paths: spec.paths,
                hsts: spec.hsts.clone(),
            }),
        })
    }

    /// Accepts until `shutdown` turns true; connections are spawned on `tracker` so the
    /// caller can wait for them to drain.
    pub async fn serve<H: Handler>(
        self,
        handler: Arc<H>,
        mut shutdown: watch::Receiver<bool>,
        tracker: TaskTracker,
        closing: CancellationToken,
    ) {
        let permits = Arc::new(Semaphore::new(self.settings.limits.max_connections));
        loop {
            let accepted = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                accepted = self.tcp.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                tracing::debug!(%peer, "connection refused: max_connections reached");
                drop(stream);
                continue;
            };
            let listener = Arc::clone(&self.settings);
            let handler = Arc::clone(&handler);
            let shutdown = shutdown.clone();
            let ends = ConnectionEnds {
                shutdown,
                tracker: tracker.clone(),
                closing: closing.clone(),
                permit,
            };
            tracker.spawn(async move {
                listener.serve_stream(stream, peer, handler, ends).await;
            });
        }
        // Dropping the socket here refuses new connections at once.
        drop(self.tcp);
        tracing::info!(address = %self.local_addr, "listener stopped accepting");
    }
}

/// How a connection learns that it should end: the shutdown signal (finish in-flight
/// requests), and the end of the drain (for tunnels, which have no requests to finish),
/// with the tracker that a drain waits on.
struct ConnectionEnds {
    shutdown: watch::Receiver<bool>,
    tracker: TaskTracker,
    closing: CancellationToken,
    /// The connection's `max_connections` slot.
    permit: OwnedSemaphorePermit,
}

impl ListenerSettings {
    async fn serve_stream<H: Handler>(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        handler: Arc<H>,
        ends: ConnectionEnds,
    ) {
        let _ = stream.set_nodelay(true);
        // The TLS path is boxed, so that a plain connection's task does not carry its
        // state inline: a task is sized for its largest branch, and the handshake and the
        // `TlsStream` made it 10 KiB against 4 KiB for plain HTTP.
        match &self.tls {
            None => {
                let plain = self.serve_http(stream, peer, false, false, handler, ends);
                plain.await;
            }
            Some(acceptor) => {
                let tls = self.serve_tls(acceptor, stream, peer, handler, ends);
                Box::pin(tls).await;
            }
        }
    }

    async fn serve_tls<H: Handler>(
        &self,
        acceptor: &tokio_rustls::TlsAcceptor,
        stream: TcpStream,
        peer: SocketAddr,
        handler: Arc<H>,
        ends: ConnectionEnds,
    ) {
        let handshake =
            tokio::time::timeout(self.limits.header_read_timeout, acceptor.accept(stream)).await;
        match handshake {
            Ok(Ok(tls)) => {
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                self.serve_http(tls, peer, true, h2, handler, ends).await;
            }
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }

    async fn serve_http<S, H: Handler>(
        &self,
        stream: S,
        peer: SocketAddr,
        tls: bool,
        h2_by_alpn: bool,
        handler: Arc<H>,
        ends: ConnectionEnds,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut shutdown = ends.shutdown;
        let tunnels = tunnel::Tunnels::new(
            ends.permit,
            ends.tracker,
            ends.closing,
            self.limits.idle_timeout,
        );
        let limits = &self.limits;
        let activity = Arc::new(Activity::new());
        let verdicts = Arc::new(FramingVerdicts::default());
        let guard = (!h2_by_alpn).then(|| {
            FramingGuard::new(
                hard_header_cap(limits),
                limits.max_headers * 2,
                Arc::clone(&verdicts),
            )
        });
        let http1 = guard.is_some();
        if http1 {
            activity.expect_head();
        }
        let io = TokioIo::new(WatchedIo::new(stream, Arc::clone(&activity), guard));
        let connection = Arc::new(Connection {
            peer,
            tls,
            trusted_proxies: Arc::clone(&self.trusted_proxies),
            forwarding: crate::proxy::ForwardingPeer::new(peer.ip(), &self.trusted_proxies),
            limits: Arc::clone(&self.limits),
            framing: Some(verdicts),
            activity: Arc::clone(&activity),
            paths: self.paths,
            tunnels,
            hsts: if tls { self.hsts.clone() } else { None },
        });
        let service = service_fn(move |req| {
            let handler = Arc::clone(&handler);
            let connection = Arc::clone(&connection);
            // Boxed per request: hyper's HTTP/1 dispatcher keeps a slot the size of this
            // future for every connection, idle or not, and the whole request path's
            // state is ~5 KiB; boxed, an idle connection keeps a pointer instead
            // (bench/memory.sh). HTTP/2 spawns each stream, so there it costs one
            // allocation per request.
            Box::pin(async move {
                Ok::<_, std::convert::Infallible>(handler.handle(&connection, req).await)
            })
        });

        let builder = http_builder(limits);
        let conn = builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        let idle = limits.idle_timeout;
        let send_timeout = limits.send_timeout;
        // The send timeout is checked a few times within its length.
        let send_check = (send_timeout / 4).max(Duration::from_millis(50));
        let head_timeout = limits.header_read_timeout;
        let first = if http1 { head_timeout } else { idle };
        let idle_timer = tokio::time::sleep(first.min(idle).min(send_check));
        tokio::pin!(idle_timer);
        // Since when the connection has been asked to end (idle or draining): a client
        // that ignores HTTP/2's GOAWAY would otherwise keep it for good.
        let mut closing_since: Option<std::time::Instant> = None;
        let (side, side_waker) = side::SideWake::new();
        loop {
            // The side futures, made anew for each turn of the loop and polled only when
            // made or woken (`side.rs`); the connection is polled on every wake-up.
            let mut stop = std::pin::pin!(shutdown.wait_for(|stop| *stop));
            let mut head_started = std::pin::pin!(activity.head_started.notified());
            side.mark();
            let event = std::future::poll_fn(|cx| {
                // The side futures first when due: polled after a busy connection, they
                // would find tokio's per-poll budget spent (the timer and the watch then
                // answer Pending), and a client that keeps the connection busy could keep
                // the send timeout and the drain from ever being seen.
                if side.due(cx) {
                    let mut side_cx = Context::from_waker(&side_waker);
                    if closing_since.is_none() && stop.as_mut().poll(&mut side_cx).is_ready() {
                        return Poll::Ready(Event::Shutdown);
                    }
                    if head_started.as_mut().poll(&mut side_cx).is_ready() {
                        return Poll::Ready(Event::HeadStarted);
                    }
                    if idle_timer.as_mut().poll(&mut side_cx).is_ready() {
                        return Poll::Ready(Event::Timer);
                    }
                }
                match conn.as_mut().poll(cx) {
                    Poll::Ready(result) => Poll::Ready(Event::Ended(result)),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            match event {
                Event::Ended(result) => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    break;
                }
                Event::Shutdown => {
                    conn.as_mut().graceful_shutdown();
                    closing_since = Some(std::time::Instant::now());
                }
                Event::HeadStarted => {
                    if let Some(since) = activity.head_since() {
                        let due = since + head_timeout;
                        if due < idle_timer.deadline().into_std() {
                            idle_timer.as_mut().reset(due.into());
                        }
                    }
                }
                Event::Timer => {
                    let stalled = activity.send_stalled_for();
                    if stalled >= send_timeout {
                        // A client that takes nothing cannot be shut down gracefully
                        // (that needs a write too): the connection is dropped.
                        tracing::info!(%peer, stalled_ms = stalled.as_millis() as u64, "closing a connection whose client stopped reading (send_timeout)");
                        break;
                    }
                    let now = std::time::Instant::now();
                    let open = activity
                        .open_requests
                        .load(std::sync::atomic::Ordering::Relaxed);
                    // A head still arriving while no request is being served (a pipelined
                    // one waits for its turn, as with hyper's own timer).
                    let head_due = activity
                        .head_since()
                        .filter(|_| open == 0)
                        .map(|since| since + head_timeout);
                    if head_due.is_some_and(|due| due <= now) {
                        // Like hyper's header timeout: no answer, the connection is dropped.
                        tracing::debug!(%peer, "closing a connection whose request head did not arrive in time (header_read_timeout)");
                        break;
                    }
                    let deadline = activity.last() + idle;
                    if closing_since.is_none() && open == 0 && deadline <= now {
                        tracing::debug!(%peer, "closing idle connection");
                        conn.as_mut().graceful_shutdown();
                        closing_since = Some(now);
                    }
                    let close_due = closing_since.map(|since| since + CLOSE_GRACE);
                    if open == 0 && close_due.is_some_and(|due| due <= now) {
                        tracing::debug!(%peer, "dropping a connection that did not end when asked (GOAWAY ignored)");
                        break;
                    }
                    let next = if open == 0 && closing_since.is_none() {
                        deadline
                    } else {
                        now + idle
                    };
                    // The close grace counts only once no request is open: while one
                    // is, a due time already past would fire the timer at every turn.
                    let next = close_due
                        .filter(|_| open == 0)
                        .map_or(next, |due| next.min(due));
                    let next = head_due.map_or(next, |due| next.min(due));
                    idle_timer.as_mut().reset(next.min(now + send_check).into());
                }
            }
        }
    }
}

/// What ended a wait of the connection loop.
enum Event<E> {
    /// The connection is over, cleanly or not.
    Ended(Result<(), E>),
    /// The gateway is shutting down.
    Shutdown,
    /// A request head started arriving.
    HeadStarted,
    /// The connection's timer is due.
    Timer,
}

/// How long a connection asked to end (GOAWAY sent, or HTTP/1 keep-alive turned off)
/// may take to do so once no request is open, before it is dropped: Envoy's HTTP/2
/// `drain_timeout` default.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// hyper's own header cap sits above our limit, so that requests just over it get our
/// problem+json 431 from the request path; only grossly oversized heads meet hyper's
/// bare 431.
fn hard_header_cap(limits: &ListenerLimits) -> usize {
    ((limits.max_header_bytes + limits.max_uri_bytes) * 2).max(16 * 1024)
}

fn http_builder(limits: &ListenerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The header timeout is the connection loop's (`Activity::head_since`): hyper's
        // also ran between keep-alive requests and cut idle connections at it.
        .header_read_timeout(None)
        .max_headers(limits.max_headers * 2)
        .max_buf_size(hard_header_cap(limits))
        // A client that shuts its sending side after the request (`nc -N`, some health
        // checkers and scripts) still gets its answer, as from nginx; hyper's default
        // dropped the request at the FIN.
        .half_close(true)
        .keep_alive(true);
    // HTTP/2 flood limits, set explicitly rather than left to library defaults that may
    // move (tests: `tests/e2e/edge/h2_floods.rs`):
    // - streams reset by the client before they were served: past 20 the connection gets
    //   GOAWAY ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487);
    // - streams the gateway had to reset for the client's errors: past 1024, GOAWAY;
    // - a header block (CONTINUATION frames included, CVE-2024-27316) past the header
    //   cap ends the connection;
    // - control frames a client never reads the answers to (SETTINGS, PING) stop being
    //   read once the socket is full, and the send timeout closes the connection.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(1024)
        .max_header_list_size(u32::try_from(hard_header_cap(limits)).unwrap_or(u32::MAX))
        .max_frame_size(16 * 1024)
        .max_send_buf_size(1024 * 1024)
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(1024 * 1024);
    builder
}
