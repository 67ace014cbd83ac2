//! The gateway-side services behind plugin capabilities, shared by every entry: the outbound
//! HTTP client, the shared cache namespaces, the key-set cache for host crypto, and metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use moka::Expiry;
use moka::sync::Cache;

use super::jwks::{KeySetSettings, KeySets};
use crate::body::ProxyBody;
use crate::telemetry::Metrics;

/// The client plugins' outbound calls (and key-set fetches) go through.
pub type OutboundClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// Everything plugin imports reach outside their store.
pub struct HostServices {
    pub http: OutboundClient,
    pub key_sets: KeySets,
    pub metrics: Arc<Metrics>,
    caches: Mutex<HashMap<String, Arc<CacheNamespace>>>,
}

impl std::fmt::Debug for HostServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostServices").finish_non_exhaustive()
    }
}

impl HostServices {
    pub fn new(metrics: Arc<Metrics>, key_sets: KeySetSettings) -> Self {
        let http = outbound_client();
        Self {
            key_sets: KeySets::new(http.clone(), key_sets),
            http,
            metrics,
            caches: Mutex::new(HashMap::new()),
        }
    }

    /// The cache namespace of this name, made on first use: every entry granted the same
    /// name shares it.
    pub fn cache(&self, name: &str) -> Arc<CacheNamespace> {
        let mut caches = self
            .caches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(
            caches
                .entry(name.to_owned())
                .or_insert_with(|| Arc::new(CacheNamespace::new(name))),
        )
    }
}

pub(super) fn outbound_client() -> OutboundClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

/// Longest key a plugin may use.
pub const MAX_CACHE_KEY: usize = 1024;
/// Largest value a plugin may store.
pub const MAX_CACHE_VALUE: usize = 1024 * 1024;
/// Longest time a value may be kept.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Bytes (keys, values and bookkeeping) one namespace holds before evicting.
const NAMESPACE_CAPACITY: u64 = 64 * 1024 * 1024;
/// What one entry costs beyond its key and value: the key's `String`, the value's `Bytes`
/// and expiry, and moka's node, deque links and hash slot (about 150 bytes, rounded up).
/// Without it a plugin storing empty values under one-byte keys held millions of entries
/// in a "64 MiB" namespace.
const ENTRY_OVERHEAD: usize = 192;

/// The weight of one entry against [`NAMESPACE_CAPACITY`].
fn weight(key: &str, value: &Bytes) -> u32 {
    u32::try_from(ENTRY_OVERHEAD + key.len() + value.len()).unwrap_or(u32::MAX)
}

/// One shared cache namespace.
pub struct CacheNamespace {
    pub name: String,
    entries: Cache<String, CacheValue>,
}

impl std::fmt::Debug for CacheNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheNamespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct CacheValue {
    bytes: Bytes,
    expires: Instant,
}

/// Each value lives for the TTL it was stored with.
struct PerValueTtl;

impl Expiry<String, CacheValue> for PerValueTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &CacheValue,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.expires.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &CacheValue,
        updated_at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.expires.saturating_duration_since(updated_at))
    }
}

impl CacheNamespace {
    fn new(name: &str) -> Self {
        let entries = Cache::builder()
            .max_capacity(NAMESPACE_CAPACITY)
            .weigher(|k: &String, v: &CacheValue| weight(k, &v.bytes))
            .expire_after(PerValueTtl)
            .build();
        Self {
            name: name.to_owned(),
            entries,
        }
    }

    pub fn get(&self, key: &str) -> Option<Bytes> {
        let value = self.entries.get(key)?;
        // moka expires lazily; never hand out a value past its TTL.
        (value.expires > Instant::now()).then_some(value.bytes)
    }

    /// Stores a value; oversized keys or values are dropped (the cache is best effort).
    pub fn set(&self, key: &str, value: Bytes, ttl: Duration) -> bool {
        if key.len() > MAX_CACHE_KEY || value.len() > MAX_CACHE_VALUE || ttl.is_zero() {
            return false;
        }
        let expires = Instant::now() + ttl.min(MAX_CACHE_TTL);
        self.entries.insert(
            key.to_owned(),
            CacheValue {
                bytes: value,
                expires,
            },
        );
        true
    }

    pub fn delete(&self, key: &str) {
        self.entries.invalidate(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expire_after_their_ttl_and_namespaces_are_shared_by_name() {
        let services = HostServices::new(Arc::new(Metrics::default()), KeySetSettings::default());
        let a = services.cache("docs");
        let b = services.cache("docs");
        let other = services.cache("other");
        assert!(a.set("k", Bytes::from_static(b"v"), Duration::from_secs(60)));
        assert_eq!(b.get("k").as_deref(), Some(&b"v"[..]));
        assert_eq!(other.get("k"), None);
        assert!(a.set("short", Bytes::from_static(b"x"), Duration::from_millis(1)));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(a.get("short"), None);
        a.delete("k");
        assert_eq!(b.get("k"), None);
        assert!(!a.set(
            &"k".repeat(MAX_CACHE_KEY + 1),
            Bytes::new(),
            Duration::from_secs(1)
        ));
    }

    #[test]
    fn tiny_entries_are_weighed_with_their_bookkeeping() {
        let ns = CacheNamespace::new("tiny");
        for i in 0..10_000u32 {
            assert!(ns.set(&i.to_string(), Bytes::new(), Duration::from_secs(60)));
        }
        ns.entries.run_pending_tasks();
        let per_entry = ns.entries.weighted_size() / ns.entries.entry_count();
        assert!(
            per_entry >= ENTRY_OVERHEAD as u64,
            "{per_entry} bytes per entry"
        );
        assert!(NAMESPACE_CAPACITY / (ENTRY_OVERHEAD as u64) < 400_000);
    }
}
