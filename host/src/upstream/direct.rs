//! The lean client for plain-text HTTP/1.1 upstreams: hyper's connection API with a pool
//! of our own, each request driving its connection from its own task.
//!
//! hyper-util's pooled client runs every connection as a task of its own: a request is
//! handed to that task over a channel, and its answer comes back over another, so each
//! proxied request woke two tasks and went through the pool's checkout race, its keys
//! and its locks. A profile of the plain proxy route (bench/proxy.sh under perf, frame
//! pointers) put the pooled client's request path at 6.5 % of the gateway's CPU, beside
//! the connection task's own scheduling. Here a connection is polled by whoever holds it:
//! the request task while the head is awaited, then the response body as the client's
//! connection reads it, and nobody while it waits in the pool.
//!
//! TLS and HTTP/2 upstreams, and requests that ask for a protocol switch, stay on the
//! pooled client (`client.rs`): they need its connectors and its upgrade plumbing.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, header};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::{BoxError, ProxyBody};

type Driver = http1::Connection<TokioIo<TcpStream>, ProxyBody>;

/// One upstream connection: the handle requests are sent on, and the connection state
/// machine that reads and writes the socket when polled.
struct Conn {
    send: http1::SendRequest<ProxyBody>,
    /// The same socket, for asking the kernel what arrived while nobody polled.
    socket: socket2::Socket,
    /// `None` once it has ended: dropping it hands a request it never took back to its
    /// sender, so nothing waits on a connection that is gone. Boxed: hyper's connection
    /// state is large, and a `Conn` moves in and out of the pool and the response body
    /// about fourteen times a request (callgrind: ~1 500 instructions of copies).
    driver: Option<Box<Driver>>,
}

impl Conn {
    /// Moves the connection on without waiting: `false` once it has ended (the upstream
    /// closed it, or it failed), when it must not be used again.
    fn poll_alive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(driver) = &mut self.driver else {
            return false;
        };
        if Pin::new(&mut **driver).poll(cx).is_pending() {
            return true;
        }
        self.driver = None;
        false
    }

    /// Whether a request can be sent now: alive, done with the one before, and nothing
    /// arrived since. The kernel is asked directly: the runtime's readiness for an idle
    /// socket is only as fresh as its last reactor turn, and a response nobody asked for
    /// that slipped past it would be read as the next request's answer (found by probing
    /// with an upstream that sends an extra response 300 ms after each one: under load,
    /// answers shifted to the next request, across clients).
    fn reusable(&mut self) -> bool {
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
        let quiet = matches!(
            self.socket.peek(&mut byte),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        );
        quiet && self.poll_alive(&mut Context::from_waker(Waker::noop())) && self.send.is_ready()
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl Idle {
    /// Whether it may serve a request: not idle past `timeout`, and [`Conn::reusable`].
    fn usable(&mut self, timeout: Duration) -> bool {
        self.since.elapsed() < timeout && self.conn.reusable()
    }
}

fn connect_timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
}

/// Why a request got no response head.
#[derive(Debug)]
pub enum DirectError {
    /// No connection to the target could be made (refused, unreachable, timed out).
    Connect(std::io::Error),
    /// The exchange on a connection failed.
    Http(hyper::Error),
}

impl std::fmt::Display for DirectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::Http(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DirectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(e) => Some(e),
            Self::Http(e) => Some(e),
        }
    }
}

/// Idle connections per target, most recently used last.
pub struct DirectPool {
    idle: Vec<Mutex<Vec<Idle>>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle_per_target: usize,
}

impl std::fmt::Debug for DirectPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectPool")
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl DirectPool {
    /// A pool for `targets` targets. Idle connections past `idle_timeout` are closed by a
    /// sweep that ends with the pool (on the runtime, when there is one).
    pub fn new(
        targets: usize,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle_per_target: usize,
    ) -> Arc<Self> {
        let pool = Arc::new(Self {
            idle: (0..targets).map(|_| Mutex::new(Vec::new())).collect(),
            connect_timeout,
            idle_timeout,
            max_idle_per_target,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&pool)));
        }
        pool
    }

    /// Sends `request` (origin-form target, `Host` set or not) to `authority`, the pool's
    /// target `index`. A request that a reused connection could not take (the upstream
    /// closed it while it sat idle) is sent again on a new one; nothing that was written
    /// is ever sent twice. When no connection could be made, the request comes back
    /// with the error, unsent, for the caller to try another target with.
    pub async fn send(
        self: &Arc<Self>,
        index: usize,
        authority: &Authority,
        path_and_query: &PathAndQuery,
        mut request: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, (DirectError, Option<Request<ProxyBody>>)> {
        *request.uri_mut() = http::Uri::from(path_and_query.clone());
        let own_host = !request.headers().contains_key(header::HOST);
        if own_host {
            // As the pooled client writes it: the target's authority, without the default
            // port.
            let host = match authority.port_u16() {
                Some(80) => authority.host(),
                _ => authority.as_str(),
            };
            if let Ok(host) = http::HeaderValue::from_str(host) {
                request.headers_mut().insert(header::HOST, host);
            }
        }
        let mut request = Some(request);
        loop {
            let (mut conn, reused) = match self.checkout(index) {
                Some(conn) => (conn, true),
                // Boxed: the connect's state (name lookup, one connect per address)
                // would otherwise size this future, which every request moves into its
                // timeout and the request path's state; a new connection is rare.
                None => match Box::pin(self.connect(authority)).await {
                    Ok(conn) => (conn, false),
                    // Never written anywhere: the caller may send it to another
                    // target, which names its own `Host`.
                    Err(e) => {
                        if own_host && let Some(request) = request.as_mut() {
                            request.headers_mut().remove(header::HOST);
                        }
                        return Err((e, request));
                    }
                },
            };
            let Some(req) = request.take() else {
                unreachable!("the request is put back before every retry");
            };
            let sent = conn.send.try_send_request(req);
            match drive(&mut conn, sent).await {
                Ok(response) => return Ok(self.with_release(index, conn, response)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => request = Some(unsent),
                    _ => return Err((DirectError::Http(e.into_error()), None)),
                },
            }
        }
    }

    fn checkout(&self, index: usize) -> Option<Conn> {
        let mut stale = Vec::new();
        let found = {
            let mut list = self.idle.get(index)?.lock().ok()?;
            loop {
                let Some(mut entry) = list.pop() else {
                    break None;
                };
                if entry.usable(self.idle_timeout) {
                    break Some(entry.conn);
                }
                stale.push(entry);
            }
        };
        // Closed after the lock is let go: closing is a system call per socket.
        drop(stale);
        found
    }

    /// Connects to the first of the target's addresses that answers, each address given
    /// an equal share of the connect timeout (as the pooled client's connector does), so
    /// an address that drops packets does not use up the time of the ones after it.
    async fn connect(&self, authority: &Authority) -> Result<Conn, DirectError> {
        let started = Instant::now();
        let port = authority.port_u16().unwrap_or(80);
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let addresses: Vec<std::net::SocketAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![(ip, port).into()],
            Err(_) => {
                tokio::time::timeout(self.connect_timeout, tokio::net::lookup_host((host, port)))
                    .await
                    .map_err(|_| DirectError::Connect(connect_timed_out()))?
                    .map_err(DirectError::Connect)?
                    .collect()
            }
        };
        let share = self
            .connect_timeout
            .saturating_sub(started.elapsed())
            .checked_div(addresses.len().max(1) as u32)
            .unwrap_or_default();
        let mut last = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("`{host}` resolved to no address"),
        );
        let mut connected = None;
        for address in addresses {
            match tokio::time::timeout(share, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => {
                    connected = Some(stream);
                    break;
                }
                Ok(Err(e)) => last = e,
                Err(_) => last = connect_timed_out(),
            }
        }
        let stream = connected.ok_or(DirectError::Connect(last))?;
        stream.set_nodelay(true).map_err(DirectError::Connect)?;
        // As the pooled client does: a dead peer is noticed within minutes, not hours.
        let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
        socket2::SockRef::from(&stream)
            .set_tcp_keepalive(&keepalive)
            .map_err(DirectError::Connect)?;
        // A second descriptor of the socket (non-blocking, like the first) for `reusable`.
        let socket = std::os::fd::AsFd::as_fd(&stream)
            .try_clone_to_owned()
            .map(socket2::Socket::from)
            .map_err(DirectError::Connect)?;
        let (send, driver) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(DirectError::Http)?;
        Ok(Conn {
            send,
            socket,
            driver: Some(Box::new(driver)),
        })
    }

    /// The response with a body that drives `conn` and gives it back when it is read.
    fn with_release(
        self: &Arc<Self>,
        index: usize,
        conn: Conn,
        response: Response<Incoming>,
    ) -> Response<ProxyBody> {
        let (head, body) = response.into_parts();
        let mut body = Releasing {
            body,
            conn: Some(conn),
            pool: Arc::downgrade(self),
            index,
        };
        // A head-only answer (HEAD, 204, 304) may never be polled: release it now.
        if body.body.is_end_stream() {
            body.release(&mut Context::from_waker(Waker::noop()));
        }
        Response::from_parts(head, http_body_util::BodyExt::boxed(body))
    }

    fn put_back(&self, index: usize, conn: Conn) {
        // `pool_max_idle_per_target = 0` keeps no connection.
        if self.max_idle_per_target == 0 {
            return;
        }
        let Some(Ok(mut list)) = self.idle.get(index).map(Mutex::lock) else {
            return;
        };
        // The oldest goes: the most recently used are the likeliest to be warm.
        let evicted = (list.len() >= self.max_idle_per_target).then(|| list.remove(0));
        list.push(Idle {
            conn,
            since: Instant::now(),
        });
        drop(list);
        drop(evicted);
    }
}

/// Polls `conn` beside `sent` until the response head (or the failure) arrives. Once the
/// connection has ended it is dropped, which hands back a request it never took, so
/// `sent` always resolves: with the response, or with why there is none.
async fn drive<F, T>(conn: &mut Conn, sent: F) -> T
where
    F: Future<Output = T>,
{
    let mut sent = std::pin::pin!(sent);
    std::future::poll_fn(|cx| {
        conn.poll_alive(cx);
        sent.as_mut().poll(cx)
    })
    .await
}

/// How often idle connections are looked at: an upstream's close is noticed within this,
/// and a connection past the idle timeout closed, while nobody polls them.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// Closes idle connections that ended or are past the idle timeout, until the pool is gone.
async fn sweep(pool: Weak<DirectPool>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        for list in &pool.idle {
            let Ok(mut list) = list.lock() else {
                continue;
            };
            let mut stale = Vec::new();
            let kept = std::mem::take(&mut *list)
                .into_iter()
                .filter_map(|mut e| {
                    if e.usable(pool.idle_timeout) {
                        Some(e)
                    } else {
                        stale.push(e);
                        None
                    }
                })
                .collect();
            *list = kept;
            // Closed after the lock is let go.
            drop(list);
            drop(stale);
        }
    }
}

/// A response body that drives its connection while it is read, and puts the connection
/// back in the pool once the body has ended and the connection can take another request.
/// Dropped before its end, it closes the connection: what is left unread cannot be skipped.
struct Releasing {
    body: Incoming,
    conn: Option<Conn>,
    pool: Weak<DirectPool>,
    index: usize,
}

impl Releasing {
    fn release(&mut self, cx: &mut Context<'_>) {
        if let Some(mut conn) = self.conn.take() {
            // One more turn lets the connection see the message end and ask for the next.
            if conn.poll_alive(cx)
                && conn.send.is_ready()
                && let Some(pool) = self.pool.upgrade()
            {
                pool.put_back(self.index, conn);
            }
        }
    }
}

impl Body for Releasing {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(conn) = &mut this.conn
            && !conn.poll_alive(cx)
        {
            // Ended: the body hears why from hyper; the connection is not reused.
            this.conn = None;
        }
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        match &frame {
            Poll::Ready(None) => this.release(cx),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(cx),
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        frame.map_err(|e| Box::new(e) as BoxError)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests;
