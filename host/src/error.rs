//! Every failure a client can see, and the one place where it becomes a response.
//!
//! Stages return a [`GatewayError`]; [`GatewayError::into_response`] turns it into an
//! RFC 9457 `application/problem+json` body that carries the request id and a fixed,
//! public `detail` — never an error chain, an internal address or a secret. The full
//! cause goes to the access log and the operational log instead.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{ProxyBody, full};

pub type Result<T, E = GatewayError> = std::result::Result<T, E>;

/// Why a request was not answered by its upstream (or the static responder).
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("no route matches the request")]
    NoRoute,
    #[error("the client address is not allowed on this route")]
    IpDenied,
    #[error("the CORS preflight is not allowed")]
    CorsRejected,
    #[error("rate limit exceeded")]
    RateLimited { retry_after: Duration },
    #[error("request body larger than allowed")]
    BodyTooLarge,
    #[error("the client stopped sending its request body")]
    BodyTimeout,
    #[error("the request body is malformed or was cut short")]
    BadBody,
    #[error("request URI longer than allowed")]
    UriTooLong,
    #[error("request headers larger or more numerous than allowed")]
    HeadersTooLarge,
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    #[error("the request method is not supported by the gateway")]
    MethodNotImplemented,
    #[error("upstream connection failed")]
    UpstreamConnect,
    #[error("upstream response invalid")]
    UpstreamInvalid,
    #[error("upstream did not answer in time")]
    UpstreamTimeout,
    #[error("no healthy upstream target")]
    NoHealthyUpstream,
    #[error("a plugin of the route failed")]
    PluginFailed,
    #[error("a plugin of the route did not finish in time or could not run")]
    PluginUnavailable { retry_after: Duration },
    #[error("the route's plugins are at their concurrency limit")]
    PluginsBusy { retry_after: Duration },
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::IpDenied | Self::CorsRejected => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::BadBody => StatusCode::BAD_REQUEST,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::MethodNotImplemented => StatusCode::NOT_IMPLEMENTED,
            Self::UpstreamConnect | Self::UpstreamInvalid => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::NoHealthyUpstream => StatusCode::SERVICE_UNAVAILABLE,
            Self::PluginFailed => StatusCode::INTERNAL_SERVER_ERROR,
            Self::PluginUnavailable { .. } | Self::PluginsBusy { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// A short token for the access log, after Envoy's response flags.
    pub fn flag(&self) -> &'static str {
        match self {
            Self::NoRoute => "NR",
            Self::IpDenied => "IPD",
            Self::CorsRejected => "CORS",
            Self::RateLimited { .. } => "RL",
            Self::BodyTooLarge | Self::UriTooLong | Self::HeadersTooLarge => "LIM",
            Self::BadRequest(_) | Self::MethodNotImplemented => "BR",
            // Envoy's flags: stream idle timeout, downstream protocol error.
            Self::BodyTimeout => "SI",
            Self::BadBody => "DPE",
            Self::UpstreamConnect => "UF",
            Self::UpstreamInvalid => "UPE",
            Self::UpstreamTimeout => "UT",
            Self::NoHealthyUpstream => "UH",
            Self::PluginFailed => "PF",
            Self::PluginUnavailable { .. } => "PU",
            Self::PluginsBusy { .. } => "PB",
        }
    }

    /// The problem `type`: a stable URN per kind, so clients can branch on it.
    fn problem_type(&self) -> &'static str {
        match self {
            Self::NoRoute => "urn:portcullis:problem:no-route",
            Self::IpDenied => "urn:portcullis:problem:ip-denied",
            Self::CorsRejected => "urn:portcullis:problem:cors-rejected",
            Self::RateLimited { .. } => "urn:portcullis:problem:rate-limited",
            Self::BodyTooLarge => "urn:portcullis:problem:body-too-large",
            Self::UriTooLong => "urn:portcullis:problem:uri-too-long",
            Self::HeadersTooLarge => "urn:portcullis:problem:headers-too-large",
            Self::BadRequest(_) | Self::BadBody => "urn:portcullis:problem:bad-request",
            Self::BodyTimeout => "urn:portcullis:problem:body-timeout",
            Self::MethodNotImplemented => "urn:portcullis:problem:method-not-implemented",
            Self::UpstreamConnect => "urn:portcullis:problem:upstream-unavailable",
            Self::UpstreamInvalid => "urn:portcullis:problem:upstream-invalid",
            Self::UpstreamTimeout => "urn:portcullis:problem:upstream-timeout",
            Self::NoHealthyUpstream => "urn:portcullis:problem:no-healthy-upstream",
            Self::PluginFailed => "urn:portcullis:problem:plugin-failed",
            Self::PluginUnavailable { .. } => "urn:portcullis:problem:plugin-unavailable",
            Self::PluginsBusy { .. } => "urn:portcullis:problem:plugins-busy",
        }
    }

    /// Public text: says what happened and what the client can do, nothing internal.
    fn detail(&self) -> String {
        match self {
            Self::NoRoute => "No route matches this request.".into(),
            Self::IpDenied => "Your address is not allowed to use this route.".into(),
            Self::CorsRejected => "This origin, method or header is not allowed.".into(),
            Self::RateLimited { retry_after } => format!(
                "Too many requests; retry after {} s.",
                retry_after_secs(*retry_after)
            ),
            Self::BodyTooLarge => "The request body is larger than this route accepts.".into(),
            Self::UriTooLong => "The request URI is longer than this gateway accepts.".into(),
            Self::HeadersTooLarge => {
                "The request headers are larger or more numerous than allowed.".into()
            }
            Self::BadRequest(why) => format!("The request is malformed: {why}."),
            Self::BodyTimeout => {
                "The request body stopped arriving; send it without pauses.".into()
            }
            Self::BadBody => "The request body is malformed or was cut short.".into(),
            Self::MethodNotImplemented => "This gateway does not tunnel (CONNECT).".into(),
            Self::UpstreamConnect => "The upstream service could not be reached.".into(),
            Self::UpstreamInvalid => "The upstream service sent an invalid response.".into(),
            Self::UpstreamTimeout => "The upstream service did not answer in time.".into(),
            Self::NoHealthyUpstream => "No healthy upstream target is available.".into(),
            Self::PluginFailed => "A policy of this route failed to process the request.".into(),
            Self::PluginUnavailable { .. } => {
                "A policy of this route could not process the request in time; retry later.".into()
            }
            Self::PluginsBusy { .. } => {
                "This route is handling too many requests; retry later.".into()
            }
        }
    }

    /// The one place an error becomes a response.
    pub fn into_response(self, request_id: &str) -> Response<ProxyBody> {
        let status = self.status();
        let body = serde_json::json!({
            "type": self.problem_type(),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.detail(),
            "request_id": request_id,
        });
        let mut response = Response::new(full(Bytes::from(body.to_string())));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Self::RateLimited { retry_after }
        | Self::PluginUnavailable { retry_after }
        | Self::PluginsBusy { retry_after } = self
        {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(retry_after)),
            );
        }
        if matches!(
            self,
            Self::BadRequest(_) | Self::BadBody | Self::BodyTimeout | Self::MethodNotImplemented
        ) {
            // The framing of whatever follows on this connection cannot be trusted, or
            // the rest of an unread body stands between us and the next request. After a
            // CONNECT, what follows was meant for a tunnel, and the framing guard (and so
            // the header timeout) stopped following the connection there.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// `Retry-After` is whole seconds; round up so a client that obeys it is never early.
pub fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn problem_body_has_rfc9457_members_and_request_id() {
        let response = GatewayError::UpstreamTimeout.into_response("req-1");
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let bytes = response.into_body().collect().await.map(|c| c.to_bytes());
        let json: serde_json::Value =
            serde_json::from_slice(&bytes.unwrap_or_default()).unwrap_or_default();
        assert_eq!(json["status"], 504);
        assert_eq!(json["request_id"], "req-1");
        assert_eq!(json["title"], "Gateway Timeout");
        assert!(json["type"].as_str().is_some_and(|t| t.starts_with("urn:")));
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }
}
