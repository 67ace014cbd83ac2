//! Upstreams: a pooled keep-alive client per upstream, target choice (round-robin or
//! least-request), timeouts, retries on connect failure and passive health.
//!
//! A target that refuses a connection is ejected for `eject_for`; when every target is
//! ejected the gateway answers 503 at once instead of making clients wait on connects
//! that are known to fail.

pub mod client;
pub mod config;
mod direct;
mod forward;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use http_body_util::BodyExt;

pub use client::{UpstreamClient, build_client};
use direct::DirectError;
pub use direct::DirectPool;

use crate::body::{BoxError, ProxyBody, empty};
use crate::config::Balance;
use crate::error::GatewayError;

#[derive(Debug)]
pub struct Target {
    pub authority: Authority,
    in_flight: AtomicUsize,
    /// Milliseconds since `Upstream::epoch` until which the target is skipped.
    ejected_until: AtomicU64,
}

#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub targets: Vec<Target>,
    balance: Balance,
    next: AtomicUsize,
    scheme: Scheme,
    client: UpstreamClient,
    /// The lean client, for a plain-text HTTP/1.1 upstream.
    direct: Option<Arc<DirectPool>>,
    request_timeout: Duration,
    retries: u32,
    eject_for: Duration,
    epoch: Instant,
}

/// Held while a request is with a target; counts toward least-request.
#[derive(Debug)]
pub struct InFlight {
    upstream: Arc<Upstream>,
    index: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.upstream.targets[self.index]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response from a target.
#[derive(Debug)]
pub struct UpstreamResponse {
    pub response: Response<ProxyBody>,
    pub target: Authority,
    pub in_flight: InFlight,
}

#[derive(Debug)]
pub struct UpstreamSettings {
    pub name: String,
    pub targets: Vec<Authority>,
    pub balance: Balance,
    pub tls: bool,
    pub client: UpstreamClient,
    pub direct: Option<Arc<DirectPool>>,
    pub request_timeout: Duration,
    pub retries: u32,
    pub eject_for: Duration,
}

impl Upstream {
    pub fn new(s: UpstreamSettings) -> Self {
        Self {
            name: s.name,
            targets: s
                .targets
                .into_iter()
                .map(|authority| Target {
                    authority,
                    in_flight: AtomicUsize::new(0),
                    ejected_until: AtomicU64::new(0),
                })
                .collect(),
            balance: s.balance,
            next: AtomicUsize::new(0),
            scheme: if s.tls { Scheme::HTTPS } else { Scheme::HTTP },
            client: s.client,
            direct: s.direct,
            request_timeout: s.request_timeout,
            retries: s.retries,
            eject_for: s.eject_for,
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn healthy(&self, i: usize, now: u64) -> bool {
        self.targets[i].ejected_until.load(Ordering::Relaxed) <= now
    }

    fn eject(&self, i: usize) {
        let until = self.now_ms() + self.eject_for.as_millis() as u64;
        self.targets[i]
            .ejected_until
            .store(until, Ordering::Relaxed);
    }

    /// Picks a healthy target not in `tried`.
    fn pick(&self, tried: &[usize]) -> Option<usize> {
        let now = self.now_ms();
        let n = self.targets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let candidates = (0..n)
            .map(|k| (start + k) % n)
            .filter(|i| !tried.contains(i) && self.healthy(*i, now));
        match self.balance {
            Balance::RoundRobin => candidates.into_iter().next(),
            // Ties go to the round-robin order, so equal loads still spread.
            Balance::LeastRequest => {
                candidates.min_by_key(|i| self.targets[*i].in_flight.load(Ordering::Relaxed))
            }
        }
    }

    /// Sends the request to a target. Connect failures of idempotent requests without a
    /// body are retried on another target; nothing else is retried, since the upstream
    /// may already have acted on it.
    pub async fn send(
        self: &Arc<Self>,
        method: &http::Method,
        headers: http::HeaderMap,
        path_and_query: &http::uri::PathAndQuery,
        body: ProxyBody,
        retryable: bool,
    ) -> Result<UpstreamResponse, GatewayError> {
        let attempts = if retryable { 1 + self.retries } else { 1 };
        let mut tried = Vec::new();
        let mut body = Some(body);
        let mut headers = Some(headers);
        let mut last_error = GatewayError::NoHealthyUpstream;
        // A protocol switch needs the pooled client's upgrade plumbing.
        let direct = self.direct.as_ref().filter(|_| {
            !headers
                .as_ref()
                .is_some_and(|h| h.contains_key(http::header::UPGRADE))
        });
        for attempt in 0..attempts {
            let Some(index) = self.pick(&tried) else {
                break;
            };
            tried.push(index);
            let target = &self.targets[index];
            let mut request = Request::new(body.take().unwrap_or_else(empty));
            *request.method_mut() = method.clone();
            // Only a request that may be sent again on the pooled client needs its
            // headers copied: the direct client hands back a request it could not send.
            *request.headers_mut() = if attempt + 1 < attempts && direct.is_none() {
                headers.clone().unwrap_or_default()
            } else {
                // Never a retry without its headers: one that did not come back is not
                // sent again.
                let Some(headers) = headers.take() else {
                    break;
                };
                headers
            };
            *request.version_mut() = http::Version::HTTP_11;

            target.in_flight.fetch_add(1, Ordering::Relaxed);
            let in_flight = InFlight {
                upstream: Arc::clone(self),
                index,
            };
            let sent = match direct {
                Some(direct) => {
                    // Pinned where it is made, so the timeout holds a pointer: moved into
                    // it, the call's state was copied on every request (callgrind).
                    let sent = std::pin::pin!(direct.send(
                        index,
                        &target.authority,
                        path_and_query,
                        request
                    ));
                    tokio::time::timeout(self.request_timeout, sent)
                        .await
                        .map(|sent| {
                            sent.map_err(|(e, unsent)| {
                                if let Some(unsent) = unsent {
                                    headers = Some(unsent.into_parts().0.headers);
                                }
                                Failure::Direct(e)
                            })
                        })
                }
                None => {
                    let mut uri_parts = http::uri::Parts::default();
                    uri_parts.scheme = Some(self.scheme.clone());
                    uri_parts.authority = Some(target.authority.clone());
                    uri_parts.path_and_query = Some(path_and_query.clone());
                    *request.uri_mut() = Uri::from_parts(uri_parts)
                        .map_err(|_| GatewayError::BadRequest("invalid request target"))?;
                    tokio::time::timeout(self.request_timeout, self.client.request(request))
                        .await
                        .map(|sent| {
                            sent.map(|r| r.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed()))
                                .map_err(Failure::Pooled)
                        })
                }
            };
            match sent {
                Err(_elapsed) => return Err(GatewayError::UpstreamTimeout),
                Ok(Ok(response)) => {
                    return Ok(UpstreamResponse {
                        response,
                        target: target.authority.clone(),
                        in_flight,
                    });
                }
                Ok(Err(e)) if e.is_connect() => {
                    tracing::warn!(upstream = %self.name, target = %target.authority, error = %error_chain(&e), "upstream connect failed; target ejected");
                    self.eject(index);
                    last_error = if is_timeout(&e) {
                        GatewayError::UpstreamTimeout
                    } else {
                        GatewayError::UpstreamConnect
                    };
                }
                Ok(Err(e)) => {
                    // The client's body failed on its way through: the client's fault,
                    // answered as such and never held against the target.
                    if let Some(client) = crate::body::ClientBodyError::find(&e) {
                        tracing::debug!(upstream = %self.name, error = %error_chain(&e), "request body from the client failed");
                        return Err(client.to_gateway_error());
                    }
                    tracing::warn!(upstream = %self.name, target = %target.authority, error = %error_chain(&e), "upstream request failed");
                    return Err(GatewayError::UpstreamInvalid);
                }
            }
        }
        Err(last_error)
    }
}

/// Why a client got no response head from a target, from either client.
#[derive(Debug)]
enum Failure {
    Direct(DirectError),
    Pooled(hyper_util::client::legacy::Error),
}

impl Failure {
    fn is_connect(&self) -> bool {
        match self {
            Self::Direct(e) => matches!(e, DirectError::Connect(_)),
            Self::Pooled(e) => e.is_connect(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Direct(e) => e.fmt(f),
            Self::Pooled(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Direct(e) => e.source(),
            Self::Pooled(e) => e.source(),
        }
    }
}

/// `e` and its sources, outermost first.
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |err| err.source())
}

/// A connect that ran out of `connect_timeout` (hyper-util reports it as an I/O
/// `TimedOut` in the chain) is a timeout for the client too: 504, not 502.
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    chain(e).any(|err| {
        err.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

/// The whole chain on one line, for operators' logs (never for clients).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    chain(e)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
