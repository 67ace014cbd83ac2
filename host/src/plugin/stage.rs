//! A route's pipeline as two stages of the request path: the request phase, after the
//! host policies and before the upstream, and the response phase, on the answer.
//!
//! Plugins work on the exchange's own request: it is moved into each plugin's store for
//! the call and back, so nothing is converted between the gateway's and the plugins' view.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;

use super::pipeline::{Pipeline, RequestOutcome};
use super::state::PluginResponse;
use crate::body::{ClientBodyError, ProxyBody, empty, full};
use crate::error::GatewayError;
use crate::exchange::Exchange;
use crate::policy::Charge;
use crate::router::Route;

impl Pipeline {
    /// The request phase. `Ok(Some(_))` is a plugin's own answer: later plugins and the
    /// upstream are skipped, and earlier plugins have seen it in their response phase.
    pub async fn run_request(
        &self,
        route: &Route,
        ex: &mut Exchange,
    ) -> Result<Option<Response<ProxyBody>>, GatewayError> {
        // Plugins that read the body see all of it, so it is read here, up to the smallest
        // cap among them; otherwise it keeps streaming past the plugins. It is read before
        // a pipeline permit is taken: a client that stalls its body must not hold a slot
        // that other clients' requests need.
        if let Some(cap) = self.request_body_cap() {
            let cap = cap.min(ex.request.limits.max_body_bytes);
            let body = ex.body.take().unwrap_or_else(empty);
            ex.request.body = Some(buffer(body, cap).await.map_err(client_fault)?);
        }
        let permit = self.admit().await?;
        let client_ip = ex.request.client_ip;
        let verdict = &mut ex.rate_limits;
        let (outcome, phase) = self
            .on_request(&mut ex.request, permit, |identity| {
                verdict.charge(route, Charge::Identity(Some(identity)), client_ip)
            })
            .await;
        if let Some(id) = &ex.request.identity {
            ex.record.subject.clone_from(&id.subject);
            ex.record.consumer.clone_from(&id.consumer);
        }
        match outcome? {
            RequestOutcome::Continue => {
                // No plugin verified anyone: identity-keyed policies count by address.
                ex.rate_limits
                    .charge(route, Charge::Identity(None), client_ip)?;
                ex.response_phase = Some(phase);
                Ok(None)
            }
            RequestOutcome::Respond(mut reply) => {
                // A refused credential is charged to the client's address in the
                // identity-keyed policies, so guessing keys or tokens is throttled like
                // any other traffic (credential stuffing gets 429, not endless 401s).
                if matches!(
                    reply.status,
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ) {
                    ex.rate_limits
                        .charge(route, Charge::Identity(None), client_ip)?;
                }
                if !phase.is_empty() {
                    phase.run(&mut reply, &ex.request.request_id).await?;
                }
                Ok(Some(plugin_response(*reply)))
            }
        }
    }

    /// The response phase: the plugins that asked for it, in reverse order, on the
    /// upstream's (or the static responder's) answer.
    pub async fn run_response(
        &self,
        ex: &mut Exchange,
        response: Response<ProxyBody>,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        let Some(phase) = ex.response_phase.take().filter(|p| !p.is_empty()) else {
            return Ok(response);
        };
        let (mut head, body) = response.into_parts();
        let (buffered, streaming) = match self.response_body_cap() {
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
        let mut view = PluginResponse {
            status: head.status,
            headers: std::mem::take(&mut head.headers),
            body: buffered,
            identity: ex.request.identity.take(),
            limits: ex.request.limits,
        };
        phase.run(&mut view, &ex.request.request_id).await?;
        head.status = view.status;
        head.headers = view.headers;
        let body = match (view.body, streaming) {
            (Some(bytes), _) => {
                set_length(&mut head.headers, bytes.len());
                full(bytes)
            }
            (None, Some(body)) => body,
            (None, None) => empty(),
        };
        Ok(Response::from_parts(head, body))
    }
}

/// The body to send on: the one the plugins saw (or replaced), sent whole with its
/// length, or the client's as it streams.
pub fn request_body(ex: &mut Exchange) -> ProxyBody {
    match (ex.request.body.take(), ex.body.take()) {
        (Some(bytes), _) => {
            set_length(&mut ex.request.headers, bytes.len());
            full(bytes)
        }
        (None, Some(streaming)) => streaming,
        (None, None) => empty(),
    }
}

/// Why a body could not be read whole: the client's fault when it is the client's body.
fn client_fault(e: crate::body::BoxError) -> GatewayError {
    ClientBodyError::find(&*e).map_or(GatewayError::BadBody, ClientBodyError::to_gateway_error)
}

/// Reads a whole body for plugins that asked for it; more than `cap` bytes is refused.
async fn buffer(mut body: ProxyBody, cap: u64) -> Result<Bytes, crate::body::BoxError> {
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if (collected.len() + data.len()) as u64 > cap {
                return Err(Box::new(ClientBodyError::TooLarge));
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
