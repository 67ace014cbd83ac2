//! What an entry is granted and shares across its instances: budgets, capabilities, and
//! the per-entry quotas on what its plugin may log and count.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cpu::Demotion;
use super::engine::RouteShare;
use super::services::{CacheNamespace, HostServices};
use crate::telemetry::PluginEventLabels;
use prometheus_client::metrics::counter::Counter;

/// Per-request limits of one entry (`budgets` in TOML).
#[derive(Debug, Clone)]
pub struct Budgets {
    /// Wall-clock time for one call, host imports included.
    pub deadline: Duration,
    pub memory_bytes: usize,
    /// Largest body the plugin may be shown or hand back.
    pub body_bytes: u64,
    /// Outbound HTTP calls allowed per request.
    pub outbound_calls: u32,
}

/// A granted outbound host. `name` alone allows the scheme's default port only (80 for
/// `http`, 443 for `https`): a grant for `auth.example.com` must not open its admin port.
/// IPv6 hosts are kept without brackets, on both sides of the comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGrant {
    pub host: String,
    pub port: Option<u16>,
}

impl HostGrant {
    /// Whether a request to `host:port` is granted; `default_port` is the URL scheme's.
    pub fn permits(&self, host: &str, port: u16, default_port: u16) -> bool {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        self.host.eq_ignore_ascii_case(host) && self.port.unwrap_or(default_port) == port
    }
}

/// Capabilities granted to an entry. Deny by default: empty means none.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    pub http: Vec<HostGrant>,
    pub cache: Option<Arc<CacheNamespace>>,
    pub crypto: bool,
}

impl Grants {
    /// Whether an absolute `http`/`https` URL names a granted host and port. A URL with
    /// user info is never granted: `admin.internal:x@api.example.com` passes a check of
    /// its host, but a client may send the whole authority as `Host` or `:authority`,
    /// which a server behind that address can read as another virtual host.
    pub fn permits_url(&self, uri: &http::Uri) -> bool {
        let default_port = match uri.scheme_str() {
            Some("http") => 80,
            Some("https") => 443,
            _ => return false,
        };
        let Some(host) = uri.host() else {
            return false;
        };
        if has_user_info(uri) {
            return false;
        }
        let port = uri.port_u16().unwrap_or(default_port);
        self.http
            .iter()
            .any(|g| g.permits(host, port, default_port))
    }
}

/// Whether a URL's authority carries user info (`user@host`): never sent for a plugin
/// (see [`Grants::permits_url`]); the interfaces check it first to say why.
pub fn has_user_info(uri: &http::Uri) -> bool {
    uri.authority().is_some_and(|a| a.as_str().contains('@'))
}

/// What every store of an entry shares.
#[derive(Debug)]
pub struct EntryInfo {
    pub route: Arc<str>,
    /// The plugin as named in the config (built-in name or file name).
    pub plugin: Arc<str>,
    /// The entry's `config` table as JSON text.
    pub config: String,
    pub budgets: Budgets,
    pub grants: Grants,
    pub services: Arc<HostServices>,
    /// The route's share of the engine's instance slots, shared by its entries.
    pub share: RouteShare,
    /// The entry verifies who calls (a built-in auth plugin, or a plugin seen calling
    /// `set-identity`): capacity failures then answer 503 whatever its failure policy.
    pub attaches_identity: AtomicBool,
    /// The most linear memory one of its instances has held since this was last reset,
    /// in bytes (the memory budget caps it): what `plugin invoke` reports.
    pub memory_peak: AtomicUsize,
    /// `host.log` lines this entry may write: a plugin logging in a loop must not fill
    /// the disk or starve the log writer for every other route.
    pub(super) log_lines: LogQuota,
    /// Warnings about this entry's failures: a plugin failing every request must not turn
    /// each into a log line (the failure metrics still count every one).
    pub(super) failure_lines: LogQuota,
    /// Whether this entry's calls run on the slow lane (`cpu.rs`).
    pub(super) demotion: Demotion,
    /// The `host.count` names this entry has used; past [`MAX_COUNTER_NAMES`] new names
    /// are counted under [`OVERFLOW_COUNTER`], so the metrics registry stays bounded.
    /// Their counters, kept so that counting a known name is a lookup and an add: through
    /// the registry it cost two label allocations and a hash of three strings per call.
    counters: Mutex<HashMap<String, Counter>>,
}

/// Distinct `host.count` names one entry may create.
pub const MAX_COUNTER_NAMES: usize = 64;
/// The name counted instead of a new one past [`MAX_COUNTER_NAMES`].
pub const OVERFLOW_COUNTER: &str = "_overflow";

impl EntryInfo {
    pub fn new(
        route: Arc<str>,
        plugin: Arc<str>,
        config: String,
        budgets: Budgets,
        grants: Grants,
        services: Arc<HostServices>,
        share: RouteShare,
    ) -> Self {
        Self {
            route,
            plugin,
            config,
            budgets,
            grants,
            services,
            share,
            attaches_identity: AtomicBool::new(false),
            memory_peak: AtomicUsize::new(0),
            log_lines: LogQuota::default(),
            failure_lines: LogQuota::default(),
            demotion: Demotion::default(),
            counters: Mutex::default(),
        }
    }

    /// Records that an instance now holds `bytes` of linear memory. Memory grows a few
    /// times per instance at most, and the shared counter is written only on a new peak.
    pub(super) fn note_memory(&self, bytes: usize) {
        if bytes > self.memory_peak.load(Ordering::Relaxed) {
            self.memory_peak.fetch_max(bytes, Ordering::Relaxed);
        }
    }

    /// Marks the entry as one that attaches a verified identity (a built-in auth plugin).
    pub fn attaching_identity(self, verifies: bool) -> Self {
        self.attaches_identity.store(verifies, Ordering::Relaxed);
        self
    }

    /// The counter to add `name`'s counts to: its own while the entry has used fewer than
    /// [`MAX_COUNTER_NAMES`] names (or used this one before), the overflow one after.
    pub(super) fn counter(&self, name: &str) -> Counter {
        let mut counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(counter) = counters.get(name) {
            return counter.clone();
        }
        let name = if counters.len() >= MAX_COUNTER_NAMES {
            OVERFLOW_COUNTER
        } else {
            name
        };
        counters
            .entry(name.to_owned())
            .or_insert_with(|| {
                self.services
                    .metrics
                    .plugin_events
                    .get_or_create(&PluginEventLabels {
                        route: self.route.to_string(),
                        plugin: self.plugin.to_string(),
                        name: name.to_owned(),
                    })
                    .clone()
            })
            .clone()
    }

    /// An entry for unit tests: default budgets but `memory_bytes`, no grants.
    #[cfg(test)]
    pub(super) fn for_tests(services: Arc<HostServices>, memory_bytes: usize) -> Self {
        Self::new(
            Arc::from("route"),
            Arc::from("plugin"),
            "{}".to_owned(),
            Budgets {
                deadline: Duration::from_millis(100),
                memory_bytes,
                body_bytes: 1 << 20,
                outbound_calls: 0,
            },
            Grants::default(),
            services,
            RouteShare::new(1),
        )
    }
}

/// Log lines one entry may write per second, and how many it wrote beyond that.
#[derive(Debug)]
pub(super) struct LogQuota {
    limiter: governor::DefaultDirectRateLimiter,
    dropped: AtomicU64,
}

/// Lines per second one entry may log, across all its instances; bursts of twice that.
pub const LOG_LINES_PER_SECOND: u32 = 100;

impl Default for LogQuota {
    fn default() -> Self {
        let rate = NonZeroU32::new(LOG_LINES_PER_SECOND).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(2 * LOG_LINES_PER_SECOND).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: governor::RateLimiter::direct(
                governor::Quota::per_second(rate).allow_burst(burst),
            ),
            dropped: AtomicU64::new(0),
        }
    }
}

/// The longest plugin log line written; longer ones are cut at a character boundary.
pub const MAX_LOG_LINE: usize = 4096;

impl EntryInfo {
    /// Writes one of the plugin's log lines (from its `log` import or its WASI stdout and
    /// stderr, named by `stream`), within the entry's quota, with the route, the plugin
    /// and the request it served.
    pub(super) fn log_line(
        &self,
        level: tracing::Level,
        stream: Option<&'static str>,
        request_id: Option<&str>,
        message: &str,
    ) {
        let Some(dropped) = self.log_lines.admit() else {
            return;
        };
        let message = &message[..message.floor_char_boundary(MAX_LOG_LINE)];
        let route = &*self.route;
        let plugin = &*self.plugin;
        let request_id = request_id.unwrap_or("-");
        if dropped > 0 {
            tracing::warn!(
                target: "portcullis::plugin",
                route,
                plugin,
                dropped,
                "plugin log lines dropped: over {LOG_LINES_PER_SECOND} per second"
            );
        }
        macro_rules! emit {
            ($lvl:expr) => {
                tracing::event!(target: "portcullis::plugin", $lvl, route, plugin, request_id, stream, "{message}")
            };
        }
        match level {
            tracing::Level::TRACE => emit!(tracing::Level::TRACE),
            tracing::Level::DEBUG => emit!(tracing::Level::DEBUG),
            tracing::Level::INFO => emit!(tracing::Level::INFO),
            tracing::Level::WARN => emit!(tracing::Level::WARN),
            _ => emit!(tracing::Level::ERROR),
        }
    }
}

impl LogQuota {
    /// Whether one more line may be written now; when it may, the number of lines dropped
    /// since the last one written, so the log says that some are missing.
    pub(super) fn admit(&self) -> Option<u64> {
        if self.limiter.check().is_ok() {
            Some(self.dropped.swap(0, Ordering::Relaxed))
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_user_info_is_never_granted() {
        let grants = Grants {
            http: vec![HostGrant {
                host: "api.example.com".into(),
                port: None,
            }],
            ..Grants::default()
        };
        let url = |text: &str| text.parse::<http::Uri>().expect("uri");
        assert!(grants.permits_url(&url("https://api.example.com/token")));
        assert!(grants.permits_url(&url("https://API.example.com:443/token")));
        for refused in [
            "https://admin.internal:x@api.example.com/token",
            "https://user@api.example.com/token",
            "https://api.example.com:8443/token",
            "ftp://api.example.com/token",
            "/token",
        ] {
            assert!(!grants.permits_url(&url(refused)), "{refused}");
        }
    }

    #[test]
    fn log_lines_past_the_burst_are_dropped_and_reported_once_admitted() {
        let quota = LogQuota::default();
        for _ in 0..2 * LOG_LINES_PER_SECOND {
            assert_eq!(quota.admit(), Some(0));
        }
        for _ in 0..1000 {
            assert_eq!(quota.admit(), None);
        }
        // A line is admitted again within 10 ms (one per 10 ms at 100 per second); it
        // carries the count of those dropped before it.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(quota.admit(), Some(1000));
    }
}
