//! The request path, assembled in order. Each stage is a function of the module named for
//! its job, working on the one per-request context ([`Exchange`]); this file only decides
//! the order, and says why each stage sits where it does.

use bytes::Bytes;
use http::{Request, Response};
use std::sync::Arc;

use crate::body::{BoxError, ProxyBody};
use crate::edge;
use crate::error::GatewayError;
use crate::exchange::Exchange;
use crate::listener::Connection;
use crate::listener::io::OpenRequest;
use crate::policy::Charge;
use crate::runtime::Runtime;

/// Serves one request. Never fails: every error becomes a response here.
///
/// Generic over the body, so the whole path runs in process too (tests, benches), on
/// requests that no socket carried.
pub async fn handle<B>(runtime: &Runtime, conn: &Connection, req: Request<B>) -> Response<ProxyBody>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    // Held until the response body is done, so the idle timeout never cuts a request.
    let open = OpenRequest::new(Arc::clone(&conn.activity));
    let (parts, body) = req.into_parts();
    // The canonical forms every later stage uses are decided here, once; one that cannot
    // be made is refused by the first stage, and the access log shows what was sent.
    let mut ex = Exchange::new(conn, parts, &runtime.redactor);
    let response = match serve(runtime, conn, &mut ex, body).await {
        Ok(response) => response,
        Err(e) => {
            ex.record.flag = Some(e.flag());
            e.into_response(&ex.record.request_id)
        }
    };
    // Decoration applies to every answer, errors included (see `Exchange::finish`).
    ex.finish(response, conn, open)
}

async fn serve<B>(
    runtime: &Runtime,
    conn: &Connection,
    ex: &mut Exchange,
    body: B,
) -> Result<Response<ProxyBody>, GatewayError>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    // 1. Framing, canonical forms, target form and the listener's head limits, before
    //    routing spends any work on the request: a request whose length or parts could
    //    be read two ways must not reach a stage whose view could differ from the
    //    upstream's.
    edge::check_request(ex, conn)?;

    // 2. Routing: host, method, path, headers, query; no match is 404. It also fixes the
    //    target the upstream (and every plugin) sees.
    let route = runtime.router.route(ex)?;

    // 3. The route's own limits may be tighter than the listener's.
    edge::check_route_limits(ex)?;

    // 4. IP policy before anything that costs state (rate-limit buckets) or answers on
    //    the route's behalf (CORS): a denied address learns nothing more.
    route.policies.check_address(ex)?;

    // 5. CORS preflights are answered here; they never reach plugins or upstreams and do
    //    not spend rate-limit quota.
    if let Some(answer) = route.policies.answer_preflight(ex)? {
        return Ok(answer);
    }

    // 6. Rate limits: every policy of the route is charged; any refusal refuses. Those
    //    keyed by a verified identity wait for the plugin that verifies it (stage 8).
    let client_ip = ex.request.client_ip;
    ex.rate_limits
        .charge(&route, Charge::Request(&ex.request.headers), client_ip)?;

    // 7. The body: a declared length over the limit is refused before any upstream work;
    //    from here on it streams counted, cut off at the limit, with a read deadline.
    edge::take_body(ex, conn, body)?;

    // 8. The request pipeline, after the host policies have refused what they can cheaply
    //    (a plugin call costs far more than a bucket check) and before the upstream. A
    //    plugin may edit the request or answer it itself.
    if let Some(pipeline) = &route.pipeline
        && let Some(answer) = pipeline.run_request(&route, ex).await?
    {
        return Ok(answer);
    }

    // 9. The route's action: its fixed answer, or the upstream's.
    let response = route.act(ex, conn).await?;

    // 10. The response pipeline: the plugins that asked for it, in reverse order.
    match &route.pipeline {
        Some(pipeline) => pipeline.run_response(ex, response).await,
        None => Ok(response),
    }
}
