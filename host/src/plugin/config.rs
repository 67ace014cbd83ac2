//! The plugins' sections of the config: the process-wide `[plugins]` table and each
//! route's `[[routes.plugins]]` entries and `[routes.pipeline]`, with their defaults.
//! The loader (`runtime/plugins.rs`) resolves them against each other and the routes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// Process-wide plugin runtime settings.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// Plugin instances alive at once, across all routes (the pooling allocator's slots).
    pub max_instances: Spanned<u32>,
    /// Instances one route's requests may hold at once, so a slow route (whose
    /// response-phase plugins hold their instances through the upstream call) cannot take
    /// every slot from the others. Three quarters of `max_instances` by default.
    pub max_instances_per_route: Option<Spanned<u32>>,
    /// Keep compiled components on disk, keyed by content hash, so restarts skip
    /// compiling them.
    pub compile_cache: bool,
    /// Folder of that cache; `$XDG_CACHE_HOME/portcullis` or `~/.cache/portcullis` by default.
    pub cache_dir: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub key_sets: KeySetsConfig,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            max_instances: Spanned::new(0..0, 256),
            max_instances_per_route: None,
            compile_cache: true,
            cache_dir: None,
            key_sets: KeySetsConfig::default(),
        }
    }
}

/// `[plugins.key_sets]`: how the host caches key sets (JWKS) fetched for the crypto
/// capability. The section is the live settings themselves, so its defaults exist once.
pub type KeySetsConfig = super::jwks::KeySetSettings;

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
    /// `true`: fresh instances start from a snapshot taken at load right after
    /// `check-config` (the config parsed, whatever the plugin built from it), at the price
    /// of one more compiled copy of the component for the entry. Fresh mode only.
    pub preinitialise: Option<Spanned<bool>>,
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
#[serde(default, deny_unknown_fields)]
pub struct BudgetsConfig {
    /// Wall-clock time for one call, host calls included.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    pub memory_mib: Spanned<u32>,
    /// Largest body the plugin may read or produce.
    pub body_bytes: u64,
    pub outbound_calls: u32,
}

impl Default for BudgetsConfig {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(100),
            memory_mib: Spanned::new(0..0, 32),
            body_bytes: 1024 * 1024,
            outbound_calls: 4,
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
#[serde(default, deny_unknown_fields)]
pub struct ReuseConfig {
    /// Warm instances kept; each serves one request at a time.
    pub max_instances: usize,
    /// An instance is replaced after this many requests (and after any failure).
    pub max_requests: u32,
}

impl Default for ReuseConfig {
    fn default() -> Self {
        Self {
            max_instances: 16,
            max_requests: 10_000,
        }
    }
}

/// Route-level plugin settings.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Requests in the pipeline at once; more wait up to `queue_timeout`, then get 503.
    pub max_concurrent: usize,
    #[serde(with = "humantime_serde")]
    pub queue_timeout: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 256,
            queue_timeout: Duration::from_millis(500),
        }
    }
}
