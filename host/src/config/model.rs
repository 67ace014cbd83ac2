//! The TOML file's top level. Each section's shape, defaults and checks live with the
//! stage it configures (`listener::config`, `upstream::config`, `policy::config`,
//! `router::config`, `plugin::config`); unknown keys are rejected everywhere and every
//! default is the safe one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::listener::config::ListenerConfig;
use crate::plugin::config::PluginsConfig;
use crate::policy::config::RateLimitConfig;
use crate::router::config::RouteConfig;
use crate::upstream::config::UpstreamConfig;

/// The whole config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Schema version; only `1` exists.
    pub version: Spanned<u32>,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub access_log: AccessLogConfig,
    #[serde(default)]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, Spanned<UpstreamConfig>>,
    #[serde(default)]
    pub rate_limits: BTreeMap<String, Spanned<RateLimitConfig>>,
    #[serde(default)]
    pub plugins: PluginsConfig,
    #[serde(default)]
    pub routes: Vec<Spanned<RouteConfig>>,
}

/// Process-wide settings.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// What the access log records beyond its fixed fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// Request headers to record (lower-cased). Secret headers are never recorded, even
    /// when listed here.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Extra header names treated as secrets, on top of Authorization, Cookie,
    /// Set-Cookie and Proxy-Authorization.
    #[serde(default)]
    pub secret_headers: Vec<String>,
}
