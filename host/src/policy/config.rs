//! The host policies' sections of the config: `[rate_limits.NAME]`, and a route's `ip`
//! and `cors` tables, with their defaults and checks, and the live policies built from
//! them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method};
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::{Cors, IpPolicy, RateLimitKey, RateLimitPolicy};
use crate::config::Diagnostics;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests allowed per window (also the burst).
    pub quota: Spanned<u32>,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// `client_ip`, `route`, `header:<name>`, or `consumer` / `subject` (the identity an
    /// auth plugin of the route verified).
    #[serde(default = "rate_limit_key")]
    pub key: Spanned<String>,
    /// Also send `X-RateLimit-Limit/Remaining/Reset` (reset in delta-seconds).
    #[serde(default)]
    pub legacy_headers: bool,
    /// Slots in the policy's key table (memory stays bounded whatever clients send;
    /// keys beyond it share slots, which only makes the limit stricter).
    #[serde(default = "rate_limit_max_keys")]
    pub max_keys: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpPolicyConfig {
    /// When not empty, only these CIDRs may use the route.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Always refused, even when also allowed.
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`), or `*` (not with credentials).
    pub allow_origins: Vec<String>,
    #[serde(default = "cors_methods")]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    #[serde(with = "humantime_serde", default = "cors_max_age")]
    pub max_age: Duration,
}

/// Counted by client address unless the policy says otherwise.
fn rate_limit_key() -> Spanned<String> {
    Spanned::new(0..0, "client_ip".to_owned())
}
/// About what nginx's 10 MB `limit_req_zone` holds.
fn rate_limit_max_keys() -> u64 {
    131_072
}
fn cors_methods() -> Vec<String> {
    ["GET", "HEAD", "POST"].map(str::to_owned).to_vec()
}
fn cors_max_age() -> Duration {
    Duration::from_secs(600)
}

/// The named policies of `[rate_limits]`, by name; a bad one is reported and left out.
pub fn build_rate_limits<'c>(
    configs: &'c BTreeMap<String, Spanned<RateLimitConfig>>,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<&'c str, Arc<RateLimitPolicy>> {
    let mut rate_limits = BTreeMap::new();
    for (name, rl) in configs {
        if !super::rate_limit_name_ok(name) {
            d.error(
                rl.span(),
                format!("rate-limit name `{name}` has characters other than letters, digits, `-`, `_`, `.`"),
                Some("rename the policy"),
            );
            continue;
        }
        let key = match RateLimitKey::parse(rl.get_ref().key.get_ref()) {
            Ok(k) => k,
            Err(e) => {
                d.error(rl.get_ref().key.span(), e, None);
                continue;
            }
        };
        let r = rl.get_ref();
        match RateLimitPolicy::new(
            name.clone(),
            *r.quota.get_ref(),
            r.window,
            key,
            r.legacy_headers,
            r.max_keys,
        ) {
            Ok(p) => {
                rate_limits.insert(name.as_str(), Arc::new(p));
            }
            Err(e) => d.error(r.quota.span(), e, None),
        }
    }
    rate_limits
}

impl IpPolicy {
    /// The IP policy of a route's `ip = { allow, deny }`.
    pub fn build(c: &IpPolicyConfig, d: &mut Diagnostics<'_>) -> Self {
        Self {
            allow: cidrs(&c.allow, d),
            deny: cidrs(&c.deny, d),
        }
    }
}

/// CIDRs from the config; a bad one is reported and left out.
pub fn cidrs(list: &[Spanned<String>], d: &mut Diagnostics<'_>) -> Vec<IpNet> {
    list.iter()
        .filter_map(|c| match super::parse_cidr(c.get_ref()) {
            Ok(net) => Some(net),
            Err(e) => {
                d.error(c.span(), e, None);
                None
            }
        })
        .collect()
}

impl Cors {
    /// The CORS policy of a route's `[routes.cors]`, or `None` after reporting why not.
    pub fn build(c: &Spanned<CorsConfig>, d: &mut Diagnostics<'_>) -> Option<Self> {
        let cfg = c.get_ref();
        let any = cfg.allow_origins.iter().any(|o| o == "*");
        if any && cfg.allow_credentials {
            d.error(
                c.span(),
                "`allow_origins = [\"*\"]` cannot be combined with `allow_credentials = true`",
                Some("list the allowed origins explicitly"),
            );
            return None;
        }
        if cfg.allow_origins.is_empty() {
            d.error(
                c.span(),
                "`allow_origins` is empty",
                Some("list origins like \"https://app.example.com\""),
            );
            return None;
        }
        let methods: Result<Vec<Method>, _> = cfg
            .allow_methods
            .iter()
            .map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()))
            .collect();
        let Ok(methods) = methods else {
            d.error(c.span(), "`allow_methods` has an invalid method", None);
            return None;
        };
        let allow_headers = super::cors_header_names(&cfg.allow_headers)
            .map_err(|e| d.error(c.span(), e, None))
            .ok()?;
        let expose = super::cors_header_names(&cfg.expose_headers)
            .map_err(|e| d.error(c.span(), e, None))
            .ok()?;
        Some(Cors {
            origins: (!any).then(|| cfg.allow_origins.clone()),
            methods,
            allow_headers,
            expose_headers: (!expose.is_empty())
                .then(|| HeaderValue::from_str(&expose.join(", ")).ok())
                .flatten(),
            credentials: cfg.allow_credentials,
            max_age_secs: cfg.max_age.as_secs(),
        })
    }
}
