//! The request path, assembled in order. Each stage is a function of its own module;
//! this file only decides the order, and says why each stage sits where it does.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::{ClientBody, ClientBodyError, Counted, ProxyBody, empty, full};
use crate::canonical::{self, Authority};
use crate::error::GatewayError;
use crate::listener::Connection;
use crate::listener::io::OpenRequest;
use crate::plugin::{PluginRequest, PluginResponse, RequestOutcome};
use crate::policy::{Cors, RateLimitKey, RateLimitVerdict};
use crate::proxy;
use crate::router::{
    RequestLimits, RequestView, RouteAction, RouteMatch, UpstreamHost, header_bytes,
};
use crate::runtime::Runtime;
use crate::telemetry::AccessRecord;

/// What the stages learn about a request, for the response and the access log.
struct Exchange {
    /// The request id as a header value, made once for the upstream and the client.
    request_id: HeaderValue,
    client_ip: std::net::IpAddr,
    /// The authority routed on, and sent upstream unless the route says otherwise.
    authority: Option<Authority>,
    /// Why the client address, authority or path could not be made canonical; the
    /// request is refused before any stage acts on it.
    malformed: Option<&'static str>,
    route: Option<RouteMatch>,
    /// Held with the response body: counts toward least-request until it is done.
    in_flight: Option<crate::upstream::InFlight>,
    rate_limits: RateLimitVerdict,
    origin: Option<HeaderValue>,
    record: AccessRecord,
}

/// Serves one request. Never fails: every error becomes a response here.
pub async fn handle(
    runtime: &Runtime,
    conn: &Connection,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    // Held until the response body is done, so the idle timeout never cuts a request.
    let open = OpenRequest::new(Arc::clone(&conn.activity));
    let request_id = proxy::request_id(req.headers());
    // The canonical forms every later stage uses (see `canonical`). A form that cannot be
    // made is refused in stage 1; the access log then shows what the client sent.
    let mut malformed = None;
    let client_ip = proxy::client_ip(conn.peer.ip(), req.headers(), &conn.trusted_proxies)
        .unwrap_or_else(|e| {
            malformed = Some(e.reason());
            conn.peer.ip().to_canonical()
        });
    let authority =
        Authority::of_request(req.version(), req.uri(), req.headers()).unwrap_or_else(|e| {
            malformed = malformed.or(Some(e.reason()));
            None
        });
    let host = authority
        .as_ref()
        .map_or_else(String::new, |a| a.host().to_owned());
    let path = match canonical::normalize(req.uri().path(), conn.paths) {
        Ok(path) => path.into_owned(),
        Err(e) => {
            malformed = malformed.or(Some(e.reason()));
            req.uri().path().to_owned()
        }
    };
    let request_id_value =
        HeaderValue::from_str(&request_id).unwrap_or_else(|_| HeaderValue::from_static("-"));
    let mut record = AccessRecord {
        start: Instant::now(),
        request_id,
        client_ip,
        method: req.method().clone(),
        host,
        path,
        protocol: protocol_name(req.version()),
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
    record.capture_headers(&runtime.redactor, req.headers());
    let mut ex = Exchange {
        request_id: request_id_value,
        client_ip,
        authority,
        malformed,
        route: None,
        in_flight: None,
        rate_limits: RateLimitVerdict::default(),
        origin: req.headers().get(header::ORIGIN).cloned(),
        record,
    };

    let mut response = match serve(runtime, conn, req, &mut ex).await {
        Ok(response) => response,
        Err(e) => {
            ex.record.flag = Some(e.flag());
            e.into_response(&ex.record.request_id)
        }
    };

    // Response decoration applies to every answer, errors included: clients read
    // rate-limit state from 429s and browsers need CORS headers to read any error.
    let headers = response.headers_mut();
    ex.rate_limits.write_headers(headers);
    if let Some(cors) = ex
        .route
        .as_ref()
        .and_then(|m| m.route.policies.cors.as_ref())
        && !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    {
        cors.decorate(ex.origin.as_ref(), headers);
    }
    headers.insert(proxy::X_REQUEST_ID, ex.request_id.clone());
    if let Some(hsts) = &conn.hsts
        && !headers.contains_key(header::STRICT_TRANSPORT_SECURITY)
    {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }

    ex.record.status = response.status().as_u16();
    ex.record.route = ex.route.as_ref().map(|m| m.route.id.clone());
    let bytes_out = Arc::clone(&ex.record.bytes_out);
    response.map(|body| {
        Counted::new(body, bytes_out)
            .with_guard((ex.record, ex.in_flight))
            .with_watch(open)
            .boxed()
    })
}

async fn serve(
    runtime: &Runtime,
    conn: &Connection,
    req: Request<Incoming>,
    ex: &mut Exchange,
) -> Result<Response<ProxyBody>, GatewayError> {
    // 1. Framing and canonical forms first: a request whose length is ambiguous, or
    //    whose client, host or path cannot be told unambiguously, must not reach any
    //    other stage, whose view of it could differ from the upstream's.
    if req.version() <= Version::HTTP_11 && !conn.framing.next_is_sound() {
        return Err(GatewayError::BadRequest(
            "both Content-Length and Transfer-Encoding are present",
        ));
    }
    if let Some(why) = ex.malformed {
        return Err(GatewayError::BadRequest(why));
    }
    // Tunnels through the gateway would carry any request past every route (Pingora
    // refuses CONNECT by default too); the authority-form target is CONNECT's alone.
    if req.method() == Method::CONNECT {
        return Err(GatewayError::MethodNotImplemented);
    }
    if req.uri().scheme().is_none() && req.uri().authority().is_some() {
        return Err(GatewayError::BadRequest(
            "an authority-form target is only for CONNECT",
        ));
    }

    // 2. Listener edge limits, before routing spends any work on the request.
    let listener_limits = RequestLimits::of_listener(&conn.limits);
    check_head_limits(&req, &listener_limits)?;

    // 3. Routing. A CORS preflight is routed as the request it announces, so that
    //    routes restricted to e.g. PUT still answer the browser's OPTIONS for it.
    let preflight = Cors::is_preflight(req.method(), req.headers());
    let announced = preflight
        .then(|| req.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD))
        .flatten()
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    let view = RequestView {
        host: &ex.record.host,
        method: announced.as_ref().unwrap_or(req.method()),
        path: &ex.record.path,
        headers: req.headers(),
        query: req.uri().query(),
    };
    let matched = runtime.router.find(&view).ok_or(GatewayError::NoRoute)?;
    let route = Arc::clone(&matched.route);
    ex.route = Some(matched);

    // 4. The route's own limits may be tighter than the listener's.
    let limits = listener_limits.overridden_by(&route.limits);
    if route.limits.has_head_limits() {
        check_head_limits(&req, &limits)?;
    }

    // 5. IP policy before anything that costs state (rate-limit buckets) or answers
    //    on the route's behalf (CORS): a denied address learns nothing more.
    if let Some(ip) = &route.policies.ip
        && !ip.permits(ex.client_ip)
    {
        return Err(GatewayError::IpDenied);
    }

    // 6. CORS preflights are answered here; they never reach plugins or upstreams and
    //    do not spend rate-limit quota.
    if preflight && let Some(cors) = &route.policies.cors {
        let headers = cors.preflight(req.headers())?;
        let mut response = Response::new(empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        *response.headers_mut() = headers;
        return Ok(response);
    }

    // 7. Rate limits: every policy of the route is charged; any refusal refuses. Policies
    //    keyed by a verified identity wait for the plugin that verifies it (step 9).
    charge_rate_limits(ex, &route, req.headers(), None, false)?;

    // 8. Body size: a declared length over the limit is refused before any upstream
    //    work; a chunked body is cut off by `ClientBody` as it streams.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_body_bytes) {
        return Err(GatewayError::BodyTooLarge);
    }

    // The body streams from here on, counted for the access log, cut off at the route's
    // limit whatever its framing, and given a deadline between reads.
    let mut req = req;
    let upgrade = proxy::wants_upgrade(req.headers()) && req.version() == Version::HTTP_11;
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let bodiless = http_body::Body::is_end_stream(req.body());
    let (mut parts, body) = req.into_parts();
    // Hop-by-hop headers are the client's business with us, not the plugins' or the
    // upstream's; removed before plugins run, so that a header a plugin sets (an identity
    // for the upstream, say) cannot be named away by the client's `Connection`.
    proxy::strip_hop_by_hop(&mut parts.headers, upgrade);
    let mut body: ProxyBody = ClientBody::new(
        body,
        Arc::clone(&ex.record.bytes_in),
        limits.max_body_bytes,
        conn.limits.body_read_timeout,
    )
    .map_err(Into::into)
    .boxed();

    // 9. The request pipeline: the route's plugins in order, after the host policies have
    //    refused what they can cheaply (a plugin call costs far more than a bucket check),
    //    and before the upstream. A plugin may edit the request or answer it itself.
    let mut target = None;
    let mut response_phase = None;
    // The identity an auth plugin attached, for the response phase.
    let mut identity = None;
    if let Some(pipeline) = &route.pipeline {
        // Plugins that read the body see all of it, so it is read here, up to the
        // smallest cap among them; otherwise it keeps streaming past the plugins. It is
        // read before a pipeline permit is taken: a client that stalls its body must
        // not hold a slot that other clients' requests need.
        let (buffered, streaming) = match pipeline.request_body_cap() {
            Some(cap) => (
                Some(buffer(body, cap.min(limits.max_body_bytes)).await?),
                None,
            ),
            None => (None, Some(body)),
        };
        let permit = pipeline.admit().await?;
        let path_and_query = upstream_target(&route, ex, &parts.uri)?;
        let mut request = PluginRequest {
            method: parts.method.clone(),
            path: path_and_query.path().to_owned(),
            query: path_and_query.query().map(str::to_owned),
            headers: std::mem::take(&mut parts.headers),
            body: buffered,
            identity: None,
            client_ip: ex.client_ip,
            route: Arc::from(route.id.as_str()),
            request_id: Arc::from(ex.record.request_id.as_str()),
            limits,
        };
        let mut identity_charged = false;
        let (outcome, phase) = pipeline
            .on_request(&mut request, permit, |id| {
                identity_charged = true;
                charge_rate_limits(ex, &route, &HeaderMap::new(), Some(id), true)
            })
            .await;

        parts.method = request.method;
        parts.headers = request.headers;
        if let Some(id) = &request.identity {
            ex.record.subject.clone_from(&id.subject);
            ex.record.consumer.clone_from(&id.consumer);
        }
        identity = request.identity;
        body = match (request.body, streaming) {
            (Some(bytes), _) => {
                set_length(&mut parts.headers, bytes.len());
                full(bytes)
            }
            (None, Some(streaming)) => streaming,
            (None, None) => empty(),
        };
        // The target is rebuilt only when a plugin changed it; the host checked every
        // edit, so the rebuilt one parses.
        let unchanged = request.path == path_and_query.path()
            && request.query.as_deref() == path_and_query.query();
        target = Some(if unchanged {
            path_and_query
        } else {
            let joined = match &request.query {
                Some(q) => format!("{}?{q}", request.path),
                None => request.path,
            };
            http::uri::PathAndQuery::try_from(joined).map_err(|_| GatewayError::PluginFailed)?
        });
        match outcome? {
            RequestOutcome::Continue => {
                if !identity_charged {
                    // No plugin verified anyone: identity-keyed policies count by client
                    // address instead.
                    charge_rate_limits(ex, &route, &HeaderMap::new(), None, true)?;
                }
                response_phase = Some(phase);
            }
            RequestOutcome::Respond(mut reply) => {
                // A refused credential is charged to the client's address in the
                // identity-keyed policies, so guessing keys or tokens is throttled like
                // any other traffic (credential stuffing gets 429, not endless 401s).
                if !identity_charged
                    && matches!(
                        reply.status,
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                    )
                {
                    charge_rate_limits(ex, &route, &HeaderMap::new(), None, true)?;
                }
                // Later plugins and the upstream are skipped; earlier plugins still see
                // the answer in their response phase.
                if !phase.is_empty() {
                    phase.run(&mut reply, &ex.record.request_id).await?;
                }
                return Ok(plugin_response(*reply));
            }
        }
    }

    // 10. The route's action.
    let response = match &route.action {
        RouteAction::Respond(fixed) => {
            let mut response = Response::new(full(fixed.body.clone()));
            *response.status_mut() = fixed.status;
            *response.headers_mut() = fixed.headers.clone();
            response
        }
        RouteAction::Proxy { upstream, host, .. } => {
            let path_and_query = match target {
                Some(t) => t,
                None => upstream_target(&route, ex, &parts.uri)?,
            };
            let idempotent = matches!(
                parts.method,
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::PUT
                    | Method::DELETE
                    | Method::TRACE
            );
            let retryable = idempotent && bodiless;

            proxy::set_forwarded(
                &mut parts.headers,
                conn.peer.ip(),
                &conn.trusted_proxies,
                conn.tls,
                &ex.record.host,
            );
            // The upstream hears of the host that was routed on, never a second `Host`
            // the client slipped beside it (HTTP/2 clients send `:authority` only).
            match (host, &ex.authority) {
                (UpstreamHost::Fixed(value), _) => {
                    parts.headers.insert(header::HOST, value.clone());
                }
                (UpstreamHost::Routed, Some(authority)) => {
                    parts.headers.insert(header::HOST, authority.to_header());
                }
                // The client named none (HTTP/1.0), or the route asks for the
                // target's own: the upstream client writes the target's authority.
                (UpstreamHost::Routed, None) | (UpstreamHost::Target, _) => {
                    parts.headers.remove(header::HOST);
                }
            }
            parts
                .headers
                .insert(proxy::X_REQUEST_ID, ex.request_id.clone());

            let started = Instant::now();
            let sent = upstream.send(parts, path_and_query, body, retryable).await;
            ex.record.upstream_latency = Some(started.elapsed());
            let mut sent = sent?;
            ex.record.upstream = Some(sent.target.to_string());
            let upstream_upgrade = (sent.response.status() == StatusCode::SWITCHING_PROTOCOLS)
                .then(|| hyper::upgrade::on(&mut sent.response));
            let (mut head, body) = sent.response.into_parts();

            if let Some(upstream_upgrade) = upstream_upgrade {
                // A 101 the client did not ask for cannot be relayed. Tunnels are not
                // shown to response plugins: there is no response to edit, only bytes.
                let client = client_upgrade.ok_or(GatewayError::UpstreamInvalid)?;
                conn.tunnels.open(client, upstream_upgrade);
                head.headers.remove(header::TRANSFER_ENCODING);
                return Ok(Response::from_parts(head, empty()));
            }
            proxy::strip_hop_by_hop(&mut head.headers, false);
            ex.in_flight = Some(sent.in_flight);
            let body = body
                .map_err(|e| Box::new(e) as crate::body::BoxError)
                .boxed();
            Response::from_parts(head, body)
        }
    };

    // 11. The response pipeline: the plugins that asked for it, in reverse order, on the
    //     upstream's (or the static responder's) answer.
    match (response_phase, &route.pipeline) {
        (Some(phase), Some(pipeline)) if !phase.is_empty() => {
            let (mut head, body) = response.into_parts();
            let (buffered, streaming) = match pipeline.response_body_cap() {
                Some(cap) => (
                    Some(
                        buffer(body, cap)
                            .await
                            .map_err(|_| GatewayError::UpstreamInvalid)?,
                    ),
                    None,
                ),
                None => (None, Some(body)),
            };
            let mut plugin_view = PluginResponse {
                status: head.status,
                headers: std::mem::take(&mut head.headers),
                body: buffered,
                identity,
                limits,
            };
            phase.run(&mut plugin_view, &ex.record.request_id).await?;
            head.status = plugin_view.status;
            head.headers = plugin_view.headers;
            let body = match (plugin_view.body, streaming) {
                (Some(bytes), _) => {
                    set_length(&mut head.headers, bytes.len());
                    full(bytes)
                }
                (None, Some(body)) => body,
                (None, None) => empty(),
            };
            Ok(Response::from_parts(head, body))
        }
        _ => Ok(response),
    }
}

/// Charges the route's rate-limit policies that are (or are not) keyed by a verified
/// identity. A request without the attribute a policy counts by is counted by its client
/// address, so leaving it out never escapes the limit.
fn charge_rate_limits(
    ex: &mut Exchange,
    route: &crate::router::Route,
    headers: &HeaderMap,
    identity: Option<&crate::plugin::bindings::Identity>,
    identity_keyed: bool,
) -> Result<(), GatewayError> {
    let policies = route
        .policies
        .rate_limits
        .iter()
        .filter(|p| p.key.needs_identity() == identity_keyed);
    for policy in policies {
        let attribute = match &policy.key {
            RateLimitKey::ClientIp => None,
            RateLimitKey::Route => Some(format!("r:{}", route.id)),
            RateLimitKey::Header(name) => headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| format!("h:{v}")),
            RateLimitKey::Consumer => identity
                .and_then(|i| i.consumer.as_deref())
                .map(|c| format!("c:{c}")),
            RateLimitKey::Subject => identity
                .and_then(|i| i.subject.as_deref())
                .map(|s| format!("s:{s}")),
        };
        let key = attribute.unwrap_or_else(|| ex.client_ip.to_string());
        let decision = policy.check(&key);
        ex.rate_limits
            .decisions
            .push((Arc::clone(policy), decision));
    }
    if !ex.rate_limits.decisions.is_empty() {
        ex.record.rate_limit = "allowed";
    }
    if let Some(retry_after) = ex.rate_limits.refused() {
        ex.record.rate_limit = "limited";
        return Err(GatewayError::RateLimited { retry_after });
    }
    Ok(())
}

/// The path and query to send upstream: the route's rewrite applied, or the normalised
/// path, or (the common case) the target as received, without a copy.
fn upstream_target(
    route: &crate::router::Route,
    ex: &Exchange,
    uri: &http::Uri,
) -> Result<http::uri::PathAndQuery, GatewayError> {
    let rewrite = match &route.action {
        RouteAction::Proxy { rewrite, .. } => rewrite.as_ref(),
        RouteAction::Respond(_) => None,
    };
    let rewritten = match (rewrite, ex.route.as_ref()) {
        (Some(rw), Some(m)) => Some(rw.apply(&ex.record.path, &m.params)),
        _ if ex.record.path != uri.path() => Some(ex.record.path.clone()),
        _ => None,
    };
    match rewritten {
        None => Ok(uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"))),
        Some(path) => {
            let joined = match uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            http::uri::PathAndQuery::try_from(joined)
                .map_err(|_| GatewayError::BadRequest("invalid request target"))
        }
    }
}

/// Reads a whole body for plugins that asked for it, refusing it past `cap` bytes.
async fn buffer(mut body: ProxyBody, cap: u64) -> Result<bytes::Bytes, GatewayError> {
    let mut collected = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                return Err(ClientBodyError::find(&*e)
                    .map_or(GatewayError::BadBody, ClientBodyError::to_gateway_error));
            }
        };
        if let Ok(data) = frame.into_data() {
            if (collected.len() + data.len()) as u64 > cap {
                return Err(GatewayError::BodyTooLarge);
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected.freeze())
}

/// A body a plugin saw (or replaced) is sent whole, with its length.
fn set_length(headers: &mut HeaderMap, len: usize) {
    headers.remove(header::TRANSFER_ENCODING);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
}

/// A plugin's answer as the client will see it.
fn plugin_response(reply: PluginResponse) -> Response<ProxyBody> {
    let body = reply.body.unwrap_or_default();
    let mut headers = reply.headers;
    set_length(&mut headers, body.len());
    let mut response = Response::new(full(body));
    *response.status_mut() = reply.status;
    *response.headers_mut() = headers;
    response
}

fn check_head_limits(req: &Request<Incoming>, limits: &RequestLimits) -> Result<(), GatewayError> {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return Err(GatewayError::UriTooLong);
    }
    if req.headers().len() > limits.max_headers {
        return Err(GatewayError::HeadersTooLarge);
    }
    if header_bytes(req.headers()) > limits.max_header_bytes {
        return Err(GatewayError::HeadersTooLarge);
    }
    Ok(())
}

fn protocol_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        _ => "other",
    }
}
