//! The edge checks of one request: framing, the form of its target, its canonical forms,
//! and the listener's (then the route's) limits on its head and body. They come before
//! any stage spends work on the request, so that nothing later can see it differently
//! from the upstream, or be made to do work for a request that was never acceptable.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Version, header};
use http_body_util::BodyExt;

use crate::body::{BoxError, ClientBody};
use crate::error::GatewayError;
use crate::exchange::Exchange;
use crate::listener::Connection;
use crate::proxy;
use crate::router::{RequestLimits, header_bytes};

/// Checks what must hold before routing: sound framing, canonical forms, a target form
/// the gateway serves, and the listener's head limits.
pub fn check_request(ex: &Exchange, conn: &Connection) -> Result<(), GatewayError> {
    // A request whose length is ambiguous, or whose client, host or path cannot be told
    // unambiguously, must not reach any other stage, whose view of it could differ from
    // the upstream's.
    if ex.version <= Version::HTTP_11
        && let Some(framing) = &conn.framing
        && !framing.next_is_sound()
    {
        return Err(GatewayError::BadRequest(
            "both Content-Length and Transfer-Encoding are present",
        ));
    }
    if let Some(why) = ex.malformed {
        return Err(GatewayError::BadRequest(why));
    }
    // Tunnels through the gateway would carry any request past every route (Pingora
    // refuses CONNECT by default too); the authority-form target is CONNECT's alone.
    if ex.request.method == Method::CONNECT {
        return Err(GatewayError::MethodNotImplemented);
    }
    if ex.uri.scheme().is_none() && ex.uri.authority().is_some() {
        return Err(GatewayError::BadRequest(
            "an authority-form target is only for CONNECT",
        ));
    }
    check_head(ex, &ex.request.limits)
}

/// Applies the route's limits, which may be tighter than the listener's; from here on
/// plugins' edits are held to them too.
pub fn check_route_limits(ex: &mut Exchange) -> Result<(), GatewayError> {
    let Some(route) = ex.route() else {
        return Ok(());
    };
    let limits = ex.request.limits.overridden_by(&route.limits);
    let tighter = route.limits.has_head_limits();
    ex.request.limits = limits;
    if tighter {
        check_head(ex, &limits)?;
    }
    Ok(())
}

/// Makes the client's body the exchange's: a declared length over the limit is refused
/// before any upstream work, and whatever its framing the body is counted for the access
/// log, cut off at the limit, and given a deadline between reads as it streams.
///
/// Hop-by-hop headers go here too. They are the client's business with us, not the
/// plugins' or the upstream's; removed before plugins run, so that a header a plugin sets
/// (an identity for the upstream, say) cannot be named away by the client's `Connection`.
pub fn take_body<B>(ex: &mut Exchange, conn: &Connection, body: B) -> Result<(), GatewayError>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let limit = ex.request.limits.max_body_bytes;
    if declared_length(&ex.request.headers).is_some_and(|len| len > limit) {
        return Err(GatewayError::BodyTooLarge);
    }
    proxy::strip_hop_by_hop(&mut ex.request.headers, ex.client_upgrade.is_some());
    ex.bodiless = body.is_end_stream();
    let body = ClientBody::new(
        body,
        Arc::clone(&ex.record.bytes_in),
        limit,
        conn.limits.body_read_timeout,
    );
    ex.body = Some(body.map_err(Into::into).boxed());
    Ok(())
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn check_head(ex: &Exchange, limits: &RequestLimits) -> Result<(), GatewayError> {
    let uri_len = ex.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return Err(GatewayError::UriTooLong);
    }
    let headers = &ex.request.headers;
    if headers.len() > limits.max_headers || header_bytes(headers) > limits.max_header_bytes {
        return Err(GatewayError::HeadersTooLarge);
    }
    Ok(())
}
