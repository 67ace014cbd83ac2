//! The TOML schema, as serde types. Unknown keys are rejected everywhere and every
//! default is the safe one; semantic checks (names that must exist, regexes, CIDRs,
//! certificate files) happen when the runtime is built, with the spans kept here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

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

/// Process-wide plugin runtime settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Plugin instances alive at once, across all routes (the pooling allocator's slots).
    #[serde(default = "defaults::max_instances")]
    pub max_instances: Spanned<u32>,
    /// Instances one route's requests may hold at once, so a slow route (whose
    /// response-phase plugins hold their instances through the upstream call) cannot take
    /// every slot from the others. Three quarters of `max_instances` by default.
    pub max_instances_per_route: Option<Spanned<u32>>,
    /// Keep compiled components on disk, keyed by content hash, so restarts skip
    /// compiling them.
    #[serde(default = "defaults::yes")]
    pub compile_cache: bool,
    /// Folder of that cache; `$XDG_CACHE_HOME/portcullis` or `~/.cache/portcullis` by default.
    pub cache_dir: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub key_sets: KeySetsConfig,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            max_instances: defaults::max_instances(),
            max_instances_per_route: None,
            compile_cache: true,
            cache_dir: None,
            key_sets: KeySetsConfig::default(),
        }
    }
}

/// How the host caches key sets (JWKS) fetched for the crypto capability.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySetsConfig {
    /// A fetched key set is refetched after this long.
    #[serde(with = "humantime_serde", default = "defaults::jwks_ttl")]
    pub ttl: Duration,
    /// A token with an unknown key id refetches the set at most once per this interval.
    #[serde(with = "humantime_serde", default = "defaults::jwks_min_refresh")]
    pub min_refresh_interval: Duration,
    #[serde(with = "humantime_serde", default = "defaults::jwks_fetch_timeout")]
    pub fetch_timeout: Duration,
    /// Accept `http://` key-set URLs on hosts other than loopback (a key set fetched in
    /// the clear can be swapped on the way, and then any token verifies).
    #[serde(default)]
    pub allow_http: bool,
}

impl Default for KeySetsConfig {
    fn default() -> Self {
        Self {
            ttl: defaults::jwks_ttl(),
            min_refresh_interval: defaults::jwks_min_refresh(),
            fetch_timeout: defaults::jwks_fetch_timeout(),
            allow_http: false,
        }
    }
}

/// One entry of a route's pipeline.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEntryConfig {
    /// A built-in plugin's name (`key-auth`, ...) or a `.wasm` component file (relative
    /// to the config file).
    pub plugin: Spanned<String>,
    /// Handed to the plugin as JSON; the plugin checks it when the config is loaded.
    #[serde(default)]
    pub config: toml::Table,
    /// Files read when the config is loaded and handed to the plugin inside its config,
    /// each under its key: `.json` and `.toml` files as their parsed content, any other
    /// file as text. Plugins never read files themselves.
    #[serde(default)]
    pub files: BTreeMap<String, Spanned<String>>,
    /// `closed` (default): a failure answers 500 (503 for a deadline); `open`: go on with
    /// the request as the plugin left it; `skip`: go on as if the plugin had not run.
    #[serde(default)]
    pub failure: FailureConfig,
    #[serde(default)]
    pub budgets: BudgetsConfig,
    #[serde(default)]
    pub grants: GrantsConfig,
    /// Present: keep a pool of warm instances instead of a fresh one per request. Absent:
    /// a fresh instance per request, except for built-ins that start slowly (`validate`),
    /// which get a default pool.
    pub reuse: Option<Spanned<ReuseConfig>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureConfig {
    #[default]
    Closed,
    Open,
    Skip,
}

/// Per-request limits of one plugin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetsConfig {
    /// Wall-clock time for one call, host calls included.
    #[serde(with = "humantime_serde", default = "defaults::plugin_deadline")]
    pub deadline: Duration,
    #[serde(default = "defaults::plugin_memory_mib")]
    pub memory_mib: Spanned<u32>,
    /// Largest body the plugin may read or produce.
    #[serde(default = "defaults::plugin_body_bytes")]
    pub body_bytes: u64,
    #[serde(default = "defaults::plugin_outbound_calls")]
    pub outbound_calls: u32,
}

impl Default for BudgetsConfig {
    fn default() -> Self {
        Self {
            deadline: defaults::plugin_deadline(),
            memory_mib: defaults::plugin_memory_mib(),
            body_bytes: defaults::plugin_body_bytes(),
            outbound_calls: defaults::plugin_outbound_calls(),
        }
    }
}

/// Capabilities beyond config, clock, logs and metrics. Nothing is granted by default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsConfig {
    /// Hosts (`name` or `name:port`) the plugin may call, or fetch key sets from. A bare
    /// name allows the URL scheme's default port only (80 or 443).
    #[serde(default)]
    pub http: Vec<Spanned<String>>,
    /// Name of a cache namespace shared with every plugin granted the same name.
    pub cache: Option<Spanned<String>>,
    /// Signature verification by the gateway.
    #[serde(default)]
    pub crypto: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReuseConfig {
    /// Warm instances kept; each serves one request at a time.
    #[serde(default = "defaults::reuse_instances")]
    pub max_instances: usize,
    /// An instance is replaced after this many requests (and after any failure).
    #[serde(default = "defaults::reuse_requests")]
    pub max_requests: u32,
}

impl Default for ReuseConfig {
    fn default() -> Self {
        Self {
            max_instances: defaults::reuse_instances(),
            max_requests: defaults::reuse_requests(),
        }
    }
}

/// Route-level plugin settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Requests in the pipeline at once; more wait up to `queue_timeout`, then get 503.
    #[serde(default = "defaults::pipeline_concurrency")]
    pub max_concurrent: usize,
    #[serde(with = "humantime_serde", default = "defaults::pipeline_queue_timeout")]
    pub queue_timeout: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_concurrent: defaults::pipeline_concurrency(),
            queue_timeout: defaults::pipeline_queue_timeout(),
        }
    }
}

/// Process-wide settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    #[serde(with = "humantime_serde", default = "defaults::drain_timeout")]
    pub drain_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            drain_timeout: defaults::drain_timeout(),
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `IP:PORT`; port 0 picks a free port (its address is logged at start).
    pub address: Spanned<String>,
    pub tls: Option<Spanned<ListenerTlsConfig>>,
    /// Peers (CIDRs) whose `X-Forwarded-*` headers are trusted and extended; from anyone
    /// else those headers are replaced.
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
    #[serde(default)]
    pub limits: ListenerLimits,
    #[serde(default)]
    pub paths: PathsConfig,
}

/// How a listener puts request paths into canonical form before routing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsConfig {
    /// Read `//` as `/` (nginx's default).
    #[serde(default = "defaults::yes")]
    pub merge_slashes: bool,
    /// `reject` (400, default) or `keep` (left escaped, within their segment).
    #[serde(default)]
    pub escaped_slashes: crate::canonical::EscapedSlashes,
    /// `reject` (400, default) or `keep` (for backends with matrix parameters).
    #[serde(default)]
    pub semicolons: crate::canonical::Semicolons,
}

impl Default for PathsConfig {
    fn default() -> Self {
        Self {
            merge_slashes: true,
            escaped_slashes: crate::canonical::EscapedSlashes::default(),
            semicolons: crate::canonical::Semicolons::default(),
        }
    }
}

impl PathsConfig {
    pub fn options(&self) -> crate::canonical::PathOptions {
        crate::canonical::PathOptions {
            merge_slashes: self.merge_slashes,
            escaped_slashes: self.escaped_slashes,
            semicolons: self.semicolons,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// Certificates chosen by SNI from their subject names; the first one also answers
    /// clients that send no SNI.
    pub certificates: Vec<CertificateConfig>,
    /// `Strict-Transport-Security` on every response of this listener (unless the
    /// upstream set one).
    pub hsts: Option<HstsConfig>,
}

/// HTTP Strict Transport Security (RFC 6797).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HstsConfig {
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    #[serde(default)]
    pub include_subdomains: bool,
    #[serde(default)]
    pub preload: bool,
}

impl HstsConfig {
    pub fn header_value(&self) -> http::HeaderValue {
        let mut v = format!("max-age={}", self.max_age.as_secs());
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        http::HeaderValue::from_str(&v)
            .unwrap_or_else(|_| http::HeaderValue::from_static("max-age=0"))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// PEM chain, leaf first.
    pub cert: Spanned<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Spanned<PathBuf>,
    /// A DER OCSP response for the leaf, stapled to handshakes (read at load, so a
    /// refreshed file is picked up by the next start or reload).
    pub ocsp: Option<Spanned<PathBuf>>,
}

/// Edge limits of a listener. The defaults follow Envoy's edge hardening guide.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerLimits {
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: usize,
    #[serde(default = "defaults::max_headers")]
    pub max_headers: usize,
    #[serde(default = "defaults::max_uri_bytes")]
    pub max_uri_bytes: usize,
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: u64,
    #[serde(with = "humantime_serde", default = "defaults::header_read_timeout")]
    pub header_read_timeout: Duration,
    #[serde(with = "humantime_serde", default = "defaults::idle_timeout")]
    pub idle_timeout: Duration,
    /// Longest pause between two reads of a request body (nginx `client_body_timeout`;
    /// on HTTP/2 the request side of Envoy's `stream_idle_timeout`); then 408.
    #[serde(with = "humantime_serde", default = "defaults::body_read_timeout")]
    pub body_read_timeout: Duration,
    /// Longest time the client may leave the gateway unable to send: a response chunk
    /// it does not take (a full TCP window, or an HTTP/2 stream window left at zero) or
    /// bytes the socket does not accept. nginx `send_timeout`, the response side of
    /// Envoy's `stream_idle_timeout`. The connection is then closed.
    #[serde(with = "humantime_serde", default = "defaults::send_timeout")]
    pub send_timeout: Duration,
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: defaults::max_header_bytes(),
            max_headers: defaults::max_headers(),
            max_uri_bytes: defaults::max_uri_bytes(),
            max_body_bytes: defaults::max_body_bytes(),
            header_read_timeout: defaults::header_read_timeout(),
            idle_timeout: defaults::idle_timeout(),
            body_read_timeout: defaults::body_read_timeout(),
            send_timeout: defaults::send_timeout(),
            max_connections: defaults::max_connections(),
        }
    }
}

/// Per-route overrides of the listener's request limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteLimits {
    pub max_header_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub max_uri_bytes: Option<usize>,
    pub max_body_bytes: Option<u64>,
}

impl RouteLimits {
    /// Whether the route overrides a limit on the request head (not just the body).
    pub fn has_head_limits(&self) -> bool {
        self.max_header_bytes.is_some()
            || self.max_headers.is_some()
            || self.max_uri_bytes.is_some()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `host:port` of each target.
    pub targets: Vec<Spanned<String>>,
    #[serde(default)]
    pub balance: Balance,
    #[serde(with = "humantime_serde", default = "defaults::connect_timeout")]
    pub connect_timeout: Duration,
    /// Time allowed until the upstream's response headers arrive.
    #[serde(with = "humantime_serde", default = "defaults::request_timeout")]
    pub request_timeout: Duration,
    /// Extra attempts, on another target where there is one, when connecting fails.
    /// Only idempotent requests without a body are retried.
    #[serde(default = "defaults::retries")]
    pub retries: u32,
    /// After a connect failure a target is skipped for this long (passive health).
    #[serde(with = "humantime_serde", default = "defaults::eject_for")]
    pub eject_for: Duration,
    #[serde(with = "humantime_serde", default = "defaults::pool_idle_timeout")]
    pub pool_idle_timeout: Duration,
    #[serde(default = "defaults::pool_max_idle_per_target")]
    pub pool_max_idle_per_target: usize,
    /// Speak HTTP/2 with prior knowledge (h2c) to a plain-text upstream.
    #[serde(default)]
    pub http2: bool,
    pub tls: Option<Spanned<UpstreamTlsConfig>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastRequest,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// PEM bundle of CAs trusted for this upstream; the public web roots when absent.
    pub ca: Option<Spanned<PathBuf>>,
    /// Name to verify (and send as SNI) instead of the target's host.
    pub server_name: Option<Spanned<String>>,
    /// Client certificate chain (PEM) for mTLS; needs `client_key`.
    pub client_cert: Option<Spanned<PathBuf>>,
    pub client_key: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests allowed per window (also the burst).
    pub quota: Spanned<u32>,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// `client_ip`, `route`, `header:<name>`, or `consumer` / `subject` (the identity an
    /// auth plugin of the route verified).
    #[serde(default = "defaults::rate_limit_key")]
    pub key: Spanned<String>,
    /// Also send `X-RateLimit-Limit/Remaining/Reset` (reset in delta-seconds).
    #[serde(default)]
    pub legacy_headers: bool,
    /// Slots in the policy's key table (memory stays bounded whatever clients send;
    /// keys beyond it share slots, which only makes the limit stricter).
    #[serde(default = "defaults::rate_limit_max_keys")]
    pub max_keys: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub id: Spanned<String>,
    /// Exact names or `*.example.com`; empty means any host.
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
    /// Empty means any method.
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    pub path: Option<Spanned<PathMatchConfig>>,
    #[serde(default)]
    pub headers: Vec<Spanned<ValueMatchConfig>>,
    #[serde(default)]
    pub query: Vec<Spanned<ValueMatchConfig>>,
    /// Higher wins before any other ordering rule.
    #[serde(default)]
    pub priority: i32,
    pub upstream: Option<Spanned<String>>,
    /// Send the upstream the host the request was routed on (default); `false` sends
    /// the target's `host:port` instead.
    pub preserve_host: Option<Spanned<bool>>,
    /// Send the upstream this `Host` instead (not with `preserve_host = true`).
    pub upstream_host: Option<Spanned<String>>,
    pub respond: Option<StaticResponseConfig>,
    pub rewrite: Option<Spanned<RewriteConfig>>,
    #[serde(default)]
    pub rate_limits: Vec<Spanned<String>>,
    pub ip: Option<IpPolicyConfig>,
    pub cors: Option<Spanned<CorsConfig>>,
    #[serde(default)]
    pub limits: RouteLimits,
    /// The route's plugins, run in order before the upstream and in reverse after it.
    #[serde(default)]
    pub plugins: Vec<Spanned<PluginEntryConfig>>,
    #[serde(default)]
    pub pipeline: PipelineConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PathMatchConfig {
    Exact(String),
    Prefix(String),
    /// `/users/{id}`: each `{name}` matches one non-empty segment.
    Template(String),
    /// Anchored at both ends.
    Regex(String),
}

/// A header or query predicate: exactly one of `exact`, `regex`, `present`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMatchConfig {
    pub name: String,
    pub exact: Option<String>,
    pub regex: Option<String>,
    pub present: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticResponseConfig {
    #[serde(default = "defaults::static_status")]
    pub status: Spanned<u16>,
    #[serde(default)]
    pub body: String,
    #[serde(default = "defaults::static_content_type")]
    pub content_type: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteConfig {
    /// Remove the route's path prefix before proxying.
    #[serde(default)]
    pub strip_prefix: bool,
    /// New path built from the template route's `{params}`, e.g. `/v2/users/{id}`.
    pub template: Option<String>,
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
    #[serde(default = "defaults::cors_methods")]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    #[serde(with = "humantime_serde", default = "defaults::cors_max_age")]
    pub max_age: Duration,
}

mod defaults {
    use std::time::Duration;
    use toml::Spanned;

    pub fn drain_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn max_header_bytes() -> usize {
        64 * 1024
    }
    pub fn max_headers() -> usize {
        100
    }
    pub fn max_uri_bytes() -> usize {
        8 * 1024
    }
    pub fn max_body_bytes() -> u64 {
        1024 * 1024
    }
    pub fn header_read_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn idle_timeout() -> Duration {
        Duration::from_secs(60)
    }
    /// nginx's `client_body_timeout` default.
    pub fn body_read_timeout() -> Duration {
        Duration::from_secs(60)
    }
    /// nginx's `send_timeout` default.
    pub fn send_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn max_connections() -> usize {
        10_000
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(5)
    }
    pub fn request_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn retries() -> u32 {
        1
    }
    pub fn eject_for() -> Duration {
        Duration::from_secs(10)
    }
    pub fn pool_idle_timeout() -> Duration {
        Duration::from_secs(90)
    }
    pub fn pool_max_idle_per_target() -> usize {
        64
    }
    /// About what nginx's 10 MB `limit_req_zone` holds.
    pub fn rate_limit_max_keys() -> u64 {
        131_072
    }
    pub fn rate_limit_key() -> Spanned<String> {
        Spanned::new(0..0, "client_ip".to_owned())
    }
    pub fn static_status() -> Spanned<u16> {
        Spanned::new(0..0, 200)
    }
    pub fn static_content_type() -> String {
        "text/plain; charset=utf-8".to_owned()
    }
    pub fn cors_methods() -> Vec<String> {
        ["GET", "HEAD", "POST"].map(str::to_owned).to_vec()
    }
    pub fn cors_max_age() -> Duration {
        Duration::from_secs(600)
    }
    pub fn yes() -> bool {
        true
    }
    pub fn max_instances() -> Spanned<u32> {
        Spanned::new(0..0, 256)
    }
    pub fn jwks_ttl() -> Duration {
        Duration::from_secs(300)
    }
    pub fn jwks_min_refresh() -> Duration {
        Duration::from_secs(10)
    }
    pub fn jwks_fetch_timeout() -> Duration {
        Duration::from_secs(5)
    }
    pub fn plugin_deadline() -> Duration {
        Duration::from_millis(100)
    }
    pub fn plugin_memory_mib() -> Spanned<u32> {
        Spanned::new(0..0, 32)
    }
    pub fn plugin_body_bytes() -> u64 {
        1024 * 1024
    }
    pub fn plugin_outbound_calls() -> u32 {
        4
    }
    pub fn reuse_instances() -> usize {
        16
    }
    pub fn reuse_requests() -> u32 {
        10_000
    }
    pub fn pipeline_concurrency() -> usize {
        256
    }
    pub fn pipeline_queue_timeout() -> Duration {
        Duration::from_millis(500)
    }
}
