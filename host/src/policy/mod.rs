//! Host policies of a route, checked after routing and before the upstream: who may call
//! (IP), from which browser origins (CORS), and how often (rate limits).

pub mod config;
mod cors;
mod ip;
mod rate_limit;

use std::sync::Arc;

use http::{Response, StatusCode};

use crate::body::{ProxyBody, empty};
use crate::error::GatewayError;
use crate::exchange::Exchange;

pub use config::cidrs;
pub use cors::{Cors, header_names as cors_header_names};
pub use ip::{IpPolicy, parse_cidr};
pub use rate_limit::{
    Charge, RateLimitDecision, RateLimitKey, RateLimitPolicy, RateLimitVerdict,
    valid_policy_name as rate_limit_name_ok,
};

/// The policies attached to one route.
#[derive(Debug, Default)]
pub struct RoutePolicies {
    pub ip: Option<IpPolicy>,
    pub cors: Option<Cors>,
    pub rate_limits: Vec<Arc<RateLimitPolicy>>,
}

impl RoutePolicies {
    /// The IP policy: before anything that costs state (rate-limit buckets) or answers on
    /// the route's behalf (CORS), so that a denied address learns nothing more.
    pub fn check_address(&self, ex: &Exchange) -> Result<(), GatewayError> {
        match &self.ip {
            Some(ip) if !ip.permits(ex.request.client_ip) => Err(GatewayError::IpDenied),
            _ => Ok(()),
        }
    }

    /// The gateway's own answer to a CORS preflight, on routes with a CORS policy: it
    /// never reaches plugins or upstreams and spends no rate-limit quota.
    pub fn answer_preflight(
        &self,
        ex: &Exchange,
    ) -> Result<Option<Response<ProxyBody>>, GatewayError> {
        let Some(cors) = self.cors.as_ref().filter(|_| ex.preflight) else {
            return Ok(None);
        };
        let headers = cors.preflight(&ex.request.headers)?;
        let mut response = Response::new(empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        *response.headers_mut() = headers;
        Ok(Some(response))
    }
}
