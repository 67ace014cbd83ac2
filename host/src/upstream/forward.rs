//! The route's action as a stage of the request path: the static responder's answer, or
//! the request sent to the upstream with the headers the upstream is owed (forwarding
//! chain, the routed `Host`, the request id), and a protocol switch relayed as a tunnel.

use std::time::Instant;

use http::{Method, Response, StatusCode, header};

use crate::body::{ProxyBody, empty, full};
use crate::error::GatewayError;
use crate::exchange::Exchange;
use crate::listener::Connection;
use crate::proxy;
use crate::router::{Route, RouteAction, UpstreamHost};

impl Route {
    /// Answers the exchange as the route says: with its fixed response, or with what its
    /// upstream answers.
    pub async fn act(
        &self,
        ex: &mut Exchange,
        conn: &Connection,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        let (upstream, host) = match &self.action {
            RouteAction::Respond(fixed) => {
                let mut response = Response::new(full(fixed.body.clone()));
                *response.status_mut() = fixed.status;
                *response.headers_mut() = fixed.headers.clone();
                return Ok(response);
            }
            RouteAction::Proxy { upstream, host, .. } => (upstream, host),
        };
        let body = crate::plugin::stage::request_body(ex);
        let request = &mut ex.request;
        // Only a request that may be sent twice is retried on another target.
        let idempotent = matches!(
            request.method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::PUT
                | Method::DELETE
                | Method::TRACE
        );
        let retryable = idempotent && ex.bodiless;
        proxy::set_forwarded(
            &mut request.headers,
            &conn.forwarding,
            conn.tls,
            &ex.record.host,
        );
        // The upstream hears of the host that was routed on, never a second `Host` the
        // client slipped beside it (HTTP/2 clients send `:authority` only).
        match (host, &ex.authority) {
            (UpstreamHost::Fixed(value), _) => {
                request.headers.insert(header::HOST, value.clone());
            }
            (UpstreamHost::Routed, Some(authority)) => {
                request.headers.insert(header::HOST, authority.to_header());
            }
            // The client named none (HTTP/1.0), or the route asks for the target's own:
            // the upstream client writes the target's authority.
            (UpstreamHost::Routed, None) | (UpstreamHost::Target, _) => {
                request.headers.remove(header::HOST);
            }
        }
        request
            .headers
            .insert(proxy::X_REQUEST_ID, ex.request_id.clone());

        let started = Instant::now();
        let headers = std::mem::take(&mut request.headers);
        let sent = upstream
            .send(&request.method, headers, &request.target, body, retryable)
            .await;
        ex.record.upstream_latency = Some(started.elapsed());
        let mut sent = sent?;
        ex.record.upstream = Some(sent.target.to_string());
        let upstream_upgrade = (sent.response.status() == StatusCode::SWITCHING_PROTOCOLS)
            .then(|| hyper::upgrade::on(&mut sent.response));
        let (mut head, body) = sent.response.into_parts();
        if let Some(upstream_upgrade) = upstream_upgrade {
            // A 101 the client did not ask for cannot be relayed. Tunnels are not shown
            // to response plugins: there is no response to edit, only bytes.
            let client = ex
                .client_upgrade
                .take()
                .ok_or(GatewayError::UpstreamInvalid)?;
            conn.tunnels.open(client, upstream_upgrade);
            head.headers.remove(header::TRANSFER_ENCODING);
            ex.response_phase = None;
            return Ok(Response::from_parts(head, empty()));
        }
        proxy::strip_hop_by_hop(&mut head.headers, false);
        ex.in_flight = Some(sent.in_flight);
        Ok(Response::from_parts(head, body))
    }
}
