//! Host policies of a route, checked after routing and before the upstream: who may call
//! (IP), from which browser origins (CORS), and how often (rate limits).

mod cors;
mod ip;
mod rate_limit;

use std::sync::Arc;

pub use cors::{Cors, header_names as cors_header_names};
pub use ip::{IpPolicy, parse_cidr};
pub use rate_limit::{
    RateLimitDecision, RateLimitKey, RateLimitPolicy, RateLimitVerdict,
    valid_policy_name as rate_limit_name_ok,
};

/// The policies attached to one route.
#[derive(Debug, Default)]
pub struct RoutePolicies {
    pub ip: Option<IpPolicy>,
    pub cors: Option<Cors>,
    pub rate_limits: Vec<Arc<RateLimitPolicy>>,
}
