//! Named rate-limit policies: GCRA per key (governor), reported with the
//! `RateLimit-Policy` and `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers-10.
//!
//! GCRA gives exact answers where fixed windows guess: `r` is the burst capacity left
//! and `t` the seconds until the quota is whole again (on a refusal: until the next
//! request would conform).
//!
//! Keys live in a fixed-size table, as nginx's `limit_req_zone` does: each key (a client
//! address, a header value, a consumer) is hashed with a per-process secret into one of
//! `max_keys` slots, so memory is bounded whatever clients send, and no key's text is
//! kept. Two keys in one slot share its quota — stricter, never looser — and since the
//! hash is keyed, a client cannot aim at another's slot. With `n` active keys a key
//! shares its slot with probability about `n / max_keys`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{Quota, RateLimiter};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{GatewayError, retry_after_secs};
use crate::plugin::bindings::Identity;
use crate::router::Route;

type KeyedLimiter = RateLimiter<
    u64,
    governor::state::keyed::DefaultKeyedStateStore<u64>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// What a policy counts by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitKey {
    ClientIp,
    Route,
    /// A request header's value; requests without it are counted by client IP.
    Header(HeaderName),
    /// The consumer of the identity an auth plugin attached; charged right after that
    /// plugin. Requests without one are counted by client IP.
    Consumer,
    /// The subject (`sub`) of the identity an auth plugin attached, likewise.
    Subject,
}

impl RateLimitKey {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "client_ip" => Ok(Self::ClientIp),
            "route" => Ok(Self::Route),
            "consumer" => Ok(Self::Consumer),
            "subject" => Ok(Self::Subject),
            _ => match s.strip_prefix("header:") {
                Some(name) => HeaderName::from_bytes(name.as_bytes())
                    .map(Self::Header)
                    .map_err(|_| format!("`{name}` is not a valid header name")),
                None => Err(format!(
                    "unknown rate-limit key `{s}`: use `client_ip`, `route`, `header:<name>`, `consumer` or `subject`"
                )),
            },
        }
    }
}

impl RateLimitKey {
    /// Keys that exist only once an auth plugin has verified who is calling.
    pub fn needs_identity(&self) -> bool {
        matches!(self, Self::Consumer | Self::Subject)
    }
}

pub struct RateLimitPolicy {
    pub name: String,
    pub quota: u32,
    pub window: Duration,
    pub key: RateLimitKey,
    pub legacy_headers: bool,
    /// Slots in the key table.
    max_keys: u64,
    /// Keyed with a per-process secret (SipHash), so slots cannot be aimed at.
    hasher: std::collections::hash_map::RandomState,
    limiter: KeyedLimiter,
}

impl std::fmt::Debug for RateLimitPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitPolicy")
            .field("name", &self.name)
            .field("quota", &self.quota)
            .field("window", &self.window)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// One policy's answer for one request.
#[derive(Debug, Clone)]
pub struct RateLimitDecision {
    pub allowed: bool,
    pub remaining: u32,
    /// Allowed: until the quota is whole again. Refused: until a request would pass.
    pub reset: Duration,
}

impl RateLimitPolicy {
    pub fn new(
        name: String,
        quota: u32,
        window: Duration,
        key: RateLimitKey,
        legacy_headers: bool,
        max_keys: u64,
    ) -> Result<Self, String> {
        let burst = NonZeroU32::new(quota).ok_or("`quota` must be at least 1")?;
        if max_keys == 0 {
            return Err("`max_keys` must be at least 1".into());
        }
        let per_cell = window / quota;
        let q = Quota::with_period(per_cell)
            .ok_or("`window` divided by `quota` must be at least 1ns")?
            .allow_burst(burst);
        Ok(Self {
            name,
            quota,
            window,
            key,
            legacy_headers,
            max_keys,
            hasher: std::collections::hash_map::RandomState::new(),
            limiter: RateLimiter::keyed(q).with_middleware::<StateInformationMiddleware>(),
        })
    }

    pub fn check(&self, key: &str) -> RateLimitDecision {
        use std::hash::BuildHasher;
        let slot = self.hasher.hash_one(key) % self.max_keys;
        match self.limiter.check_key(&slot) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = self.quota.saturating_sub(remaining);
                RateLimitDecision {
                    allowed: true,
                    remaining,
                    reset: (self.window / self.quota) * used,
                }
            }
            Err(not_until) => RateLimitDecision {
                allowed: false,
                remaining: 0,
                reset: not_until.wait_time_from(self.limiter.clock().now()),
            },
        }
    }

    /// Slots in use (at most `max_keys`).
    pub fn tracked_keys(&self) -> usize {
        self.limiter.len()
    }

    /// Drops keys whose state is back to full, so memory follows active clients only.
    pub fn forget_idle_keys(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// What a charge counts by: the request as the client sent it (policies keyed by the
/// address, the route or a header), or the identity a plugin verified (policies keyed by
/// a subject or consumer; `None` when no plugin verified anyone).
#[derive(Debug, Clone, Copy)]
pub enum Charge<'a> {
    Request(&'a HeaderMap),
    Identity(Option<&'a Identity>),
}

/// The decisions of every policy on a route, and the headers they produce.
#[derive(Debug, Default)]
pub struct RateLimitVerdict {
    pub decisions: Vec<(std::sync::Arc<RateLimitPolicy>, RateLimitDecision)>,
    /// The identity-keyed policies were charged, so they are never charged twice.
    pub identity_charged: bool,
}

impl RateLimitVerdict {
    /// Charges the route's policies of one kind (see [`Charge`]); any refusal refuses.
    /// A request without the attribute a policy counts by is counted by its client
    /// address, so leaving it out never escapes the limit.
    pub fn charge(
        &mut self,
        route: &Route,
        by: Charge<'_>,
        client_ip: IpAddr,
    ) -> Result<(), GatewayError> {
        let identity_keyed = matches!(by, Charge::Identity(_));
        if identity_keyed {
            if self.identity_charged {
                return Ok(());
            }
            self.identity_charged = true;
        }
        let policies = route
            .policies
            .rate_limits
            .iter()
            .filter(|p| p.key.needs_identity() == identity_keyed);
        for policy in policies {
            let attribute = match (&policy.key, by) {
                (RateLimitKey::Route, _) => Some(format!("r:{}", route.id)),
                (RateLimitKey::Header(name), Charge::Request(headers)) => headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| format!("h:{v}")),
                (RateLimitKey::Consumer, Charge::Identity(Some(id))) => {
                    id.consumer.as_deref().map(|c| format!("c:{c}"))
                }
                (RateLimitKey::Subject, Charge::Identity(Some(id))) => {
                    id.subject.as_deref().map(|s| format!("s:{s}"))
                }
                _ => None,
            };
            let key = attribute.unwrap_or_else(|| client_ip.to_string());
            let decision = policy.check(&key);
            self.decisions
                .push((std::sync::Arc::clone(policy), decision));
        }
        match self.refused() {
            Some(retry_after) => Err(GatewayError::RateLimited { retry_after }),
            None => Ok(()),
        }
    }

    /// What the access log says of the request's rate limits.
    pub fn outcome(&self) -> &'static str {
        if self.decisions.is_empty() {
            "none"
        } else if self.refused().is_some() {
            "limited"
        } else {
            "allowed"
        }
    }

    /// The longest wait among refusing policies, if any refused.
    pub fn refused(&self) -> Option<Duration> {
        self.decisions
            .iter()
            .filter(|(_, d)| !d.allowed)
            .map(|(_, d)| d.reset)
            .max()
    }

    /// `RateLimit-Policy` / `RateLimit` (and the opt-in legacy fields) for the response.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        if self.decisions.is_empty() {
            return;
        }
        let mut policy = Vec::new();
        let mut state = Vec::new();
        for (p, d) in &self.decisions {
            policy.push(format!(
                "\"{}\";q={};w={}",
                p.name,
                p.quota,
                p.window.as_secs().max(1)
            ));
            state.push(format!(
                "\"{}\";r={};t={}",
                p.name,
                d.remaining,
                if d.reset.is_zero() {
                    0
                } else {
                    retry_after_secs(d.reset)
                }
            ));
        }
        if let Ok(v) = HeaderValue::from_str(&policy.join(", ")) {
            headers.insert(HeaderName::from_static("ratelimit-policy"), v);
        }
        if let Ok(v) = HeaderValue::from_str(&state.join(", ")) {
            headers.insert(HeaderName::from_static("ratelimit"), v);
        }
        // Legacy fields describe the most restrictive policy that opted in.
        if let Some((p, d)) = self
            .decisions
            .iter()
            .filter(|(p, _)| p.legacy_headers)
            .min_by_key(|(_, d)| d.remaining)
        {
            headers.insert(
                HeaderName::from_static("x-ratelimit-limit"),
                HeaderValue::from(p.quota),
            );
            headers.insert(
                HeaderName::from_static("x-ratelimit-remaining"),
                HeaderValue::from(d.remaining),
            );
            headers.insert(
                HeaderName::from_static("x-ratelimit-reset"),
                HeaderValue::from(if d.reset.is_zero() {
                    0
                } else {
                    retry_after_secs(d.reset)
                }),
            );
        }
    }
}

/// Policy names go into Structured Field strings unescaped, so keep them plain.
pub fn valid_policy_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_down_then_refuses_with_a_wait() {
        let p = RateLimitPolicy::new(
            "burst".into(),
            3,
            Duration::from_secs(60),
            RateLimitKey::ClientIp,
            false,
            1 << 16,
        )
        .expect("policy");
        let remaining: Vec<u32> = (0..3).map(|_| p.check("a").remaining).collect();
        assert_eq!(remaining, vec![2, 1, 0]);
        let refused = p.check("a");
        assert!(!refused.allowed);
        assert!(
            refused.reset > Duration::from_secs(15) && refused.reset <= Duration::from_secs(20)
        );
        assert!(p.check("b").allowed, "keys are independent");
    }

    #[test]
    fn headers_follow_draft_10_syntax() {
        let p = Arc::new(
            RateLimitPolicy::new(
                "per-ip".into(),
                10,
                Duration::from_secs(60),
                RateLimitKey::ClientIp,
                true,
                1 << 16,
            )
            .expect("policy"),
        );
        let d = p.check("k");
        let verdict = RateLimitVerdict {
            decisions: vec![(p, d)],
            identity_charged: false,
        };
        let mut h = HeaderMap::new();
        verdict.write_headers(&mut h);
        assert_eq!(h["ratelimit-policy"], "\"per-ip\";q=10;w=60");
        assert_eq!(h["ratelimit"], "\"per-ip\";r=9;t=6");
        assert_eq!(h["x-ratelimit-remaining"], "9");
    }

    #[test]
    fn the_key_table_never_grows_past_max_keys() {
        let p = RateLimitPolicy::new(
            "by-header".into(),
            1,
            Duration::from_secs(60),
            RateLimitKey::ClientIp,
            false,
            64,
        )
        .expect("policy");
        for i in 0..10_000 {
            p.check(&format!("h:{i}-{}", "x".repeat(i % 300)));
        }
        assert!(p.tracked_keys() <= 64, "{} keys", p.tracked_keys());
    }

    #[test]
    fn key_parsing() {
        assert_eq!(RateLimitKey::parse("route"), Ok(RateLimitKey::Route));
        assert!(matches!(
            RateLimitKey::parse("header:x-api-key"),
            Ok(RateLimitKey::Header(_))
        ));
        assert!(RateLimitKey::parse("cookie").is_err());
    }
}
