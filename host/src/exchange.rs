//! The per-request context: one typed value that every stage of the request path reads
//! and fills in (Pingora's per-request `CTX`). The gateway (`gateway.rs`) hands it from
//! stage to stage; the stages live in the modules named for their jobs.
//!
//! It is made at the edge, where the canonical forms are decided once (the client
//! address, the authority, the normalised path); what cannot be made canonical is
//! remembered in `malformed` and refused by the first stage, after the access record
//! already shows what the client sent.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use http::uri::PathAndQuery;
use http::{HeaderValue, Response, Uri, Version, header};
use http_body_util::BodyExt;

use crate::body::{Counted, ProxyBody};
use crate::canonical::{self, Authority};
use crate::listener::Connection;
use crate::listener::io::OpenRequest;
use crate::plugin::{PluginRequest, ResponsePhase};
use crate::policy::RateLimitVerdict;
use crate::proxy;
use crate::router::{RequestLimits, Route, RouteMatch};
use crate::telemetry::{AccessRecord, HeaderRedactor};
use crate::upstream::InFlight;

/// One request on its way through the gateway, and what the stages learnt about it.
#[derive(Debug)]
pub struct Exchange {
    /// The request as plugins edit it and as it goes upstream. Its target is the one
    /// received until routing replaces it with the upstream target.
    pub request: PluginRequest,
    pub version: Version,
    /// The target as received, for the edge checks and the router's query.
    pub uri: Uri,
    /// The request id as a header value, made once for the upstream and the client.
    pub request_id: HeaderValue,
    /// The authority routed on, and sent upstream unless the route says otherwise.
    pub authority: Option<Authority>,
    /// Why the client address, authority or path could not be made canonical.
    pub malformed: Option<&'static str>,
    /// A CORS preflight: routed as the request it announces, answered by the gateway.
    pub preflight: bool,
    pub route: Option<RouteMatch>,
    /// The client's body as it streams (once the route's limits are known), unless a
    /// plugin asked for it whole (then it is in `request.body`).
    pub body: Option<ProxyBody>,
    /// Whether the client sent no body: only such a request may be sent twice.
    pub bodiless: bool,
    /// The client's side of a protocol switch it asked for.
    pub client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    pub rate_limits: RateLimitVerdict,
    /// Set by the request phase: the plugins that will see the response.
    pub response_phase: Option<ResponsePhase>,
    /// Held with the response body: counts toward least-request until it is done.
    pub in_flight: Option<InFlight>,
    pub origin: Option<HeaderValue>,
    pub record: AccessRecord,
}

impl Exchange {
    /// The context of a request that has just arrived on `conn`.
    pub fn new(conn: &Connection, parts: http::request::Parts, redactor: &HeaderRedactor) -> Self {
        let http::request::Parts {
            method,
            uri,
            version,
            headers,
            mut extensions,
            ..
        } = parts;
        let request_id = proxy::request_id(&headers);
        let mut malformed = None;
        let client_ip = proxy::client_ip(conn.peer.ip(), &headers, &conn.trusted_proxies)
            .unwrap_or_else(|e| {
                malformed = Some(e.reason());
                conn.peer.ip().to_canonical()
            });
        let authority = Authority::of_request(version, &uri, &headers).unwrap_or_else(|e| {
            malformed = malformed.or(Some(e.reason()));
            None
        });
        let path = match canonical::normalize(uri.path(), conn.paths) {
            Ok(path) => path.into_owned(),
            Err(e) => {
                malformed = malformed.or(Some(e.reason()));
                uri.path().to_owned()
            }
        };
        let preflight = crate::policy::Cors::is_preflight(&method, &headers);
        let client_upgrade = (proxy::wants_upgrade(&headers) && version == Version::HTTP_11)
            .then(|| extensions.remove::<hyper::upgrade::OnUpgrade>())
            .flatten();
        let mut record = AccessRecord {
            start: Instant::now(),
            request_id: Arc::clone(&request_id),
            client_ip,
            method: method.clone(),
            host: authority
                .as_ref()
                .map_or_else(String::new, |a| a.host().to_owned()),
            path,
            protocol: protocol_name(version),
            route: None,
            status: 0,
            bytes_in: Arc::new(AtomicU64::new(0)),
            bytes_out: Arc::new(AtomicU64::new(0)),
            upstream: None,
            upstream_latency: None,
            rate_limit: "none",
            flag: None,
            headers: None,
            subject: None,
            consumer: None,
        };
        record.capture_headers(redactor, &headers);
        Self {
            request_id: HeaderValue::from_str(&request_id)
                .unwrap_or_else(|_| HeaderValue::from_static("-")),
            origin: headers.get(header::ORIGIN).cloned(),
            request: PluginRequest {
                method,
                target: uri
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/")),
                headers,
                body: None,
                identity: None,
                client_ip,
                // Set by routing; no stage reads it before.
                route: crate::plugin::state::no_text(),
                request_id,
                limits: RequestLimits::of_listener(&conn.limits),
            },
            version,
            uri,
            authority,
            malformed,
            preflight,
            route: None,
            body: None,
            bodiless: true,
            client_upgrade,
            rate_limits: RateLimitVerdict::default(),
            response_phase: None,
            in_flight: None,
            record,
        }
    }

    /// The route chosen for this request. Stages after routing may rely on it.
    pub fn route(&self) -> Option<&Arc<Route>> {
        self.route.as_ref().map(|m| &m.route)
    }

    /// The answer as the client gets it: decorated whatever produced it, and holding the
    /// access record (written when the body is done) and the connection's open-request
    /// mark (so the idle timeout never cuts a response).
    pub fn finish(
        mut self,
        mut response: Response<ProxyBody>,
        conn: &Connection,
        open: OpenRequest,
    ) -> Response<ProxyBody> {
        // Errors included: clients read rate-limit state from 429s, and browsers need
        // CORS headers to read any error.
        let headers = response.headers_mut();
        self.rate_limits.write_headers(headers);
        if let Some(cors) = self.route().and_then(|r| r.policies.cors.as_ref())
            && !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        {
            cors.decorate(self.origin.as_ref(), headers);
        }
        headers.insert(proxy::X_REQUEST_ID, self.request_id);
        if let Some(hsts) = &conn.hsts
            && !headers.contains_key(header::STRICT_TRANSPORT_SECURITY)
        {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        self.record.status = response.status().as_u16();
        self.record.rate_limit = self.rate_limits.outcome();
        self.record.route = self.route.as_ref().map(|m| Arc::clone(&m.route.id));
        let bytes_out = Arc::clone(&self.record.bytes_out);
        let guard = (self.record, self.in_flight);
        response.map(|body| {
            Counted::new(body, bytes_out)
                .with_guard(guard)
                .with_watch(open)
                .boxed()
        })
    }
}

fn protocol_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names_are_those_of_the_access_log() {
        assert_eq!(protocol_name(Version::HTTP_10), "HTTP/1.0");
        assert_eq!(protocol_name(Version::HTTP_2), "HTTP/2");
        assert_eq!(protocol_name(Version::HTTP_3), "other");
    }
}
