//! Native JWS verification for plugins, and the key sets it uses.
//!
//! Key sets given by URL are fetched by the gateway and cached per URL: refetched when their
//! TTL has passed, or when a token names a key id the cached set lacks (at most once per
//! `min_refresh_interval`, one fetch at a time however many requests are waiting: no storm
//! against the identity provider). A set past its TTL keeps serving while a background
//! refresh runs (Envoy's `async_fetch`): no request waits on the identity provider for keys
//! it already has. While a refresh fails, the last good set keeps serving. Key-set URLs
//! must be `https`, except on loopback or with `[plugins.key_sets] allow_http = true`.
//! Inline key sets are parsed once and cached by the SHA-256 of their text.
//!
//! Verified tokens are remembered for a few minutes: a client sends the same token with
//! every request until it expires, and checking its signature again (25 µs for RS256) would
//! be most of an auth plugin's cost. A remembered verification is used only for the same
//! token bytes, the same key source and allowlist, and the very key set that verified it:
//! once a set is refetched (rotation), its tokens are verified afresh. Claims are not
//! cached as checked — the plugin checks `exp` and the rest on every request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Limited};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::bindings::portcullis::plugin::crypto::Verified;
use super::services::OutboundClient;
use crate::body::{ProxyBody, empty};

/// How key sets from URLs are cached (`[plugins.key_sets]` in the config).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeySetSettings {
    /// A fetched set is refetched after this long.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// A token with an unknown key id refetches the set at most once per this interval.
    #[serde(with = "humantime_serde")]
    pub min_refresh_interval: Duration,
    /// Time allowed for one fetch.
    #[serde(with = "humantime_serde")]
    pub fetch_timeout: Duration,
    /// Accept `http://` key-set URLs on hosts other than loopback (a key set fetched in
    /// the clear can be swapped on the way, and then any token verifies).
    pub allow_http: bool,
}

impl Default for KeySetSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            min_refresh_interval: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(5),
            allow_http: false,
        }
    }
}

/// The largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 512 * 1024;
/// The longest token accepted; a JWT header plus claims rarely passes 4 KiB.
pub(super) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// One usable verification key.
pub(super) struct Key {
    kid: Option<String>,
    /// The `alg` the JWK pins, if it does.
    alg: Option<Algorithm>,
    /// Which algorithms this key can verify, from its type and curve.
    fits: fn(Algorithm) -> bool,
    pub(super) key: DecodingKey,
}

/// A parsed key set.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field(
                "kids",
                &self
                    .keys
                    .iter()
                    .map(|k| k.kid.as_deref())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl KeySet {
    /// Parses a JWKS document, keeping the keys that can verify signatures and skipping
    /// the rest (encryption keys, unknown types), as RFC 7517 §5 asks.
    pub fn parse(text: &str) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc =
            serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
        let keys = doc
            .keys
            .into_iter()
            .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
            .filter_map(|jwk| key_of(&jwk))
            .collect();
        Ok(Self { keys })
    }

    /// How many verifying keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Keys that may verify a token with this `alg` and `kid`.
    pub(super) fn candidates<'a>(
        &'a self,
        alg: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys.iter().filter(move |k| {
            (k.fits)(alg)
                && k.alg.is_none_or(|a| a == alg)
                && match kid {
                    Some(kid) => k.kid.as_deref() == Some(kid),
                    None => true,
                }
        })
    }
}

fn key_of(jwk: &Jwk) -> Option<Key> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let fits: fn(Algorithm) -> bool = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => |a| {
            matches!(
                a,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            )
        },
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => |a| a == Algorithm::ES256,
            EllipticCurve::P384 => |a| a == Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => |a| a == Algorithm::EdDSA,
            _ => return None,
        },
        AlgorithmParameters::OctetKey(_) => {
            |a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
        }
        _ => return None,
    };
    let alg = jwk
        .common
        .key_algorithm
        .and_then(|ka| ka.to_string().parse::<Algorithm>().ok());
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        fits,
        key: DecodingKey::from_jwk(jwk).ok()?,
    })
}

/// What was cached for one URL.
struct Fetched {
    set: Arc<KeySet>,
    at: Instant,
}

/// One JWKS URL's cache entry.
struct RemoteSet {
    url: String,
    current: RwLock<Option<Fetched>>,
    /// Held while fetching: later arrivals wait and then use the result.
    refreshing: tokio::sync::Mutex<()>,
    last_attempt: Mutex<Option<Instant>>,
    last_error: Mutex<Option<String>>,
    fetches: AtomicU64,
    /// A background refresh is under way.
    refreshing_in_background: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for KeySets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySets").finish_non_exhaustive()
    }
}

/// Every key set the gateway knows, for every plugin.
pub struct KeySets {
    client: OutboundClient,
    settings: KeySetSettings,
    remote: Mutex<HashMap<String, Arc<RemoteSet>>>,
    /// Inline key sets, by the SHA-256 of their text.
    inline: moka::sync::Cache<[u8; 32], Arc<KeySet>>,
    pub(super) verified: moka::sync::Cache<[u8; 32], Remembered>,
    pub(super) verified_hits: AtomicU64,
    /// URLs that entries' configs name, fetched when the gateway starts.
    configured: Mutex<Vec<String>>,
}

/// A verification kept for later requests with the same token.
#[derive(Clone)]
pub(super) struct Remembered {
    pub(super) verified: Verified,
    /// The key set that verified it (none for a secret); the memory is void once the
    /// source's current set is another one.
    pub(super) set: Option<std::sync::Weak<KeySet>>,
}

/// How long a verification is remembered, and how many are.
const VERIFIED_TTL: Duration = Duration::from_secs(300);
const VERIFIED_CAPACITY: u64 = 50_000;

impl KeySets {
    pub fn new(client: OutboundClient, settings: KeySetSettings) -> Self {
        Self {
            client,
            settings,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(VERIFIED_TTL)
                .build(),
            verified_hits: AtomicU64::new(0),
            configured: Mutex::default(),
            remote: Mutex::new(HashMap::new()),
            inline: moka::sync::Cache::builder()
                .max_capacity(256)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }

    /// Records a key-set URL that an entry's config names, to be fetched at start; refuses
    /// a URL that could never be fetched (not https off loopback without `allow_http`).
    pub fn configure(&self, url: &str) -> Result<(), String> {
        check_url(url, self.settings.allow_http)?;
        let mut configured = self
            .configured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !configured.iter().any(|u| u == url) {
            configured.push(url.to_owned());
        }
        Ok(())
    }

    /// Fetches every configured key set at once, so the first requests find their keys
    /// (as Envoy's `async_fetch`); a set that cannot be had now is logged and fetched again
    /// on first use. Returns how many were fetched.
    pub async fn fetch_configured(&self) -> usize {
        let urls = self
            .configured
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        let fetches = urls.iter().map(|url| async move {
            match self.by_url(url, None).await {
                Ok(set) => {
                    tracing::info!(url = %url, keys = set.len(), "key set fetched at start");
                    true
                }
                Err(error) => {
                    tracing::warn!(url = %url, %error, "key set not fetched at start; retried on first use");
                    false
                }
            }
        });
        futures_util::future::join_all(fetches)
            .await
            .into_iter()
            .filter(|fetched| *fetched)
            .count()
    }

    /// Whether every configured key set has been fetched (the readiness of the gateway's
    /// authentication).
    pub fn configured_fetched(&self) -> bool {
        let urls = self
            .configured
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        urls.iter().all(|url| current(&self.remote(url)).is_some())
    }

    /// How many times the set at `url` was fetched (for tests and metrics).
    pub fn fetch_count(&self, url: &str) -> u64 {
        self.remote
            .lock()
            .ok()
            .and_then(|m| m.get(url).map(|r| r.fetches.load(Ordering::Relaxed)))
            .unwrap_or(0)
    }

    /// The key set parsed from inline JWKS text, parsed once per distinct text.
    pub fn inline(&self, digest: [u8; 32], text: &str) -> Result<Arc<KeySet>, String> {
        if let Some(set) = self.inline.get(&digest) {
            return Ok(set);
        }
        let set = Arc::new(KeySet::parse(text)?);
        self.inline.insert(digest, Arc::clone(&set));
        Ok(set)
    }

    fn remote(&self, url: &str) -> Arc<RemoteSet> {
        let mut map = self
            .remote
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(map.entry(url.to_owned()).or_insert_with(|| {
            Arc::new(RemoteSet {
                url: url.to_owned(),
                current: RwLock::new(None),
                refreshing: tokio::sync::Mutex::new(()),
                last_attempt: Mutex::new(None),
                last_error: Mutex::new(None),
                fetches: AtomicU64::new(0),
                refreshing_in_background: std::sync::atomic::AtomicBool::new(false),
            })
        }))
    }

    /// The key set at `url`, fresh enough for a token naming `kid`.
    pub async fn by_url(&self, url: &str, kid: Option<&str>) -> Result<Arc<KeySet>, String> {
        check_url(url, self.settings.allow_http)?;
        let settings = self.settings;
        let remote = self.remote(url);
        if let Some(set) = usable(&remote, kid, &settings) {
            return Ok(set);
        }
        // Past its TTL but knowing the token's key: serve it, and refresh behind it.
        if let Some(set) = current(&remote).filter(|set| kid.is_none_or(|k| set.has_kid(k))) {
            self.refresh_in_background(&remote);
            return Ok(set);
        }
        // Single flight: one task fetches, the others wait here and re-check. On the
        // serving runtime even for a plugin on the lane (`home::at_home`): the lock is
        // shared with every route.
        let (client, kid) = (self.client.clone(), kid.map(str::to_owned));
        let flight = async move {
            let _guard = remote.refreshing.lock().await;
            if let Some(set) = usable(&remote, kid.as_deref(), &settings) {
                return Ok(set);
            }
            refresh(&client, &remote, &settings).await
        };
        super::home::at_home(flight)
            .await
            .unwrap_or_else(|| Err("the gateway is shutting down".to_owned()))
    }

    /// Starts one refresh of `remote` unless one is running.
    fn refresh_in_background(&self, remote: &Arc<RemoteSet>) {
        let started = remote
            .refreshing_in_background
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if !started {
            return;
        }
        let (client, remote, settings) = (self.client.clone(), Arc::clone(remote), self.settings);
        super::home::spawn_at_home(async move {
            {
                let _guard = remote.refreshing.lock().await;
                let fresh = remote
                    .current
                    .read()
                    .ok()
                    .and_then(|c| c.as_ref().map(|f| f.at.elapsed() < settings.ttl))
                    .unwrap_or(false);
                if !fresh {
                    let _ = refresh(&client, &remote, &settings).await;
                }
            }
            remote
                .refreshing_in_background
                .store(false, Ordering::Release);
        });
    }
}

/// Fetches `remote` again (unless it was tried within `min_refresh_interval`), keeps the
/// result, and answers with the newest set there is. Called with `remote.refreshing` held.
async fn refresh(
    client: &OutboundClient,
    remote: &RemoteSet,
    settings: &KeySetSettings,
) -> Result<Arc<KeySet>, String> {
    let cached = current(remote);
    let recently_tried = remote
        .last_attempt
        .lock()
        .ok()
        .and_then(|t| *t)
        .is_some_and(|t| t.elapsed() < settings.min_refresh_interval);
    if recently_tried {
        // Rate-limited: answer from what we have (stale or lacking the kid).
        return cached.ok_or_else(|| {
            remote
                .last_error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_else(|| "key set not fetched yet".to_owned())
        });
    }
    if let Ok(mut t) = remote.last_attempt.lock() {
        *t = Some(Instant::now());
    }
    remote.fetches.fetch_add(1, Ordering::Relaxed);
    match fetch(client, &remote.url, settings.fetch_timeout).await {
        Ok(set) => {
            let set = Arc::new(set);
            if let Ok(mut c) = remote.current.write() {
                *c = Some(Fetched {
                    set: Arc::clone(&set),
                    at: Instant::now(),
                });
            }
            Ok(set)
        }
        Err(e) => {
            // The origin only: a plugin may name any key-set URL of its grant, and a path or
            // query of its choosing may carry what should not be logged.
            let origin = origin(&remote.url);
            tracing::warn!(%origin, error = %e, stale = cached.is_some(), "JWKS fetch failed");
            if let Ok(mut last) = remote.last_error.lock() {
                *last = Some(e.clone());
            }
            // Serve stale: a key set that verified tokens a minute ago still does.
            cached.ok_or(e)
        }
    }
}

/// Key sets travel over TLS: a set fetched in the clear can be swapped by anyone on the
/// path, and then any token verifies. Loopback (a sidecar, tests) is exempt.
/// `scheme://host[:port]` of a URL, for log lines.
fn origin(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.host()) {
            (Some(scheme), Some(host)) => match uri.port_u16() {
                Some(port) => format!("{scheme}://{host}:{port}"),
                None => format!("{scheme}://{host}"),
            },
            _ => "(not a URL)".to_owned(),
        },
        Err(_) => "(not a URL)".to_owned(),
    }
}

fn check_url(url: &str, allow_http: bool) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if allow_http => Ok(()),
        Some("http") => {
            let host = uri.host().unwrap_or_default();
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "key-set URL `{url}` is not https; set `[plugins.key_sets] allow_http = true` to accept it"
                ))
            }
        }
        _ => Err(format!("key-set URL `{url}` must be https")),
    }
}

async fn fetch(client: &OutboundClient, url: &str, timeout: Duration) -> Result<KeySet, String> {
    let request = http::Request::get(url)
        .header(http::header::ACCEPT, "application/json")
        .body::<ProxyBody>(empty())
        .map_err(|e| format!("invalid JWKS URL: {e}"))?;
    let response = tokio::time::timeout(timeout, client.request(request))
        .await
        .map_err(|_| "JWKS fetch timed out".to_owned())?
        .map_err(|e| format!("JWKS fetch failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("JWKS fetch answered {}", response.status()));
    }
    let body = tokio::time::timeout(
        timeout,
        Limited::new(response.into_body(), MAX_JWKS_BYTES).collect(),
    )
    .await
    .map_err(|_| "JWKS body timed out".to_owned())?
    .map_err(|e| format!("JWKS body: {e}"))?
    .to_bytes();
    let text = std::str::from_utf8(&body).map_err(|_| "JWKS is not UTF-8".to_owned())?;
    KeySet::parse(text)
}

fn current(remote: &RemoteSet) -> Option<Arc<KeySet>> {
    remote
        .current
        .read()
        .ok()
        .and_then(|c| c.as_ref().map(|f| Arc::clone(&f.set)))
}

/// The cached set, if it is within its TTL and knows the token's `kid`.
fn usable(remote: &RemoteSet, kid: Option<&str>, settings: &KeySetSettings) -> Option<Arc<KeySet>> {
    let current = remote.current.read().ok()?;
    let fetched = current.as_ref()?;
    let fresh = fetched.at.elapsed() < settings.ttl;
    let knows = kid.is_none_or(|k| fetched.set.has_kid(k));
    (fresh && knows).then(|| Arc::clone(&fetched.set))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_set_urls_must_be_https_off_loopback() {
        assert!(check_url("https://idp.example.com/jwks", false).is_ok());
        assert!(check_url("http://127.0.0.1:8080/jwks", false).is_ok());
        assert!(check_url("http://[::1]:8080/jwks", false).is_ok());
        assert!(check_url("http://localhost/jwks", false).is_ok());
        let refused = check_url("http://idp.example.com/jwks", false).expect_err("refused");
        assert!(refused.contains("allow_http"), "{refused}");
        assert!(check_url("http://idp.example.com/jwks", true).is_ok());
        assert!(check_url("ftp://idp.example.com/jwks", true).is_err());
    }
}
