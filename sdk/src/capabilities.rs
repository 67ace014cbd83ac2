//! The gateway's imports: always there ([`host`]) or granted per entry ([`http`],
//! [`cache`], [`crypto`]). Calling a capability the route does not grant is impossible: the
//! gateway refuses to load a component that imports it.
//!
//! Natively (in `cargo test`), each call goes to the [`testing`](crate::testing) harness
//! that is running the plugin.

#[cfg(target_arch = "wasm32")]
use crate::bindings::portcullis::plugin as wit;

/// Config, clock, logs and metrics: available to every plugin.
pub mod host {
    pub use crate::Level;

    /// This entry's config as JSON text (the SDK parses it into `Plugin::Config`).
    pub fn config() -> String {
        #[cfg(target_arch = "wasm32")]
        return super::wit::host::config();
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| h.config.clone());
    }

    /// Milliseconds since the Unix epoch: the only clock a plugin has.
    pub fn now_millis() -> u64 {
        #[cfg(target_arch = "wasm32")]
        return super::wit::host::now_millis();
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| h.now_millis);
    }

    /// `len` random bytes (at most 256 per call) from the gateway's cryptographic
    /// generator. Crates that use `getrandom` 0.3 get theirs from here (see the crate
    /// docs, "Building", for the one build setting this needs).
    pub fn random_bytes(len: u32) -> Vec<u8> {
        #[cfg(target_arch = "wasm32")]
        return super::wit::host::random_bytes(len);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| h.random_bytes(len));
    }

    /// A line in the gateway's log, tagged with route, plugin and request id. Never log
    /// secrets.
    pub fn log(level: Level, message: &str) {
        #[cfg(target_arch = "wasm32")]
        super::wit::host::log(level, message);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|h| h.logs.push((level, message.to_owned())));
    }

    /// Adds to the counter `portcullis_plugin_events_total{name}` (`[a-z0-9_]`, ≤ 64).
    pub fn count(name: &str, delta: u64) {
        #[cfg(target_arch = "wasm32")]
        super::wit::host::count(name, delta);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|h| *h.counters.entry(name.to_owned()).or_default() += delta);
    }
}

/// Outbound HTTP to the hosts listed in the entry's `grants.http`.
pub mod http {
    pub use crate::bindings::portcullis::plugin::outbound_http::{
        HttpError, IncomingResponse, OutgoingRequest,
    };

    /// Sends a request and waits for the whole response (bounded by the plugin's deadline
    /// and `budgets.outbound_calls`).
    pub fn send(request: &OutgoingRequest) -> Result<IncomingResponse, HttpError> {
        #[cfg(target_arch = "wasm32")]
        return super::wit::outbound_http::send(request);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::outbound(request);
    }

    impl OutgoingRequest {
        /// A `GET` without headers or body.
        pub fn get(url: &str) -> Self {
            Self {
                method: "GET".into(),
                url: url.into(),
                headers: Vec::new(),
                body: Vec::new(),
                timeout_millis: None,
            }
        }
    }
}

/// The shared cache namespace of `grants.cache`: values survive the fresh instance that
/// stored them, until their TTL.
pub mod cache {
    pub fn get(key: &str) -> Option<Vec<u8>> {
        #[cfg(target_arch = "wasm32")]
        return super::wit::cache::get(key);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| h.cache.get(key).cloned());
    }

    pub fn set(key: &str, value: &[u8], ttl_millis: u32) {
        #[cfg(target_arch = "wasm32")]
        super::wit::cache::set(key, value, ttl_millis);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|h| {
            let _ = ttl_millis;
            h.cache.insert(key.to_owned(), value.to_vec());
        });
    }

    pub fn delete(key: &str) {
        #[cfg(target_arch = "wasm32")]
        super::wit::cache::delete(key);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|h| {
            h.cache.remove(key);
        });
    }
}

/// Signature verification by the gateway (`grants.crypto = true`).
pub mod crypto {
    pub use crate::bindings::portcullis::plugin::crypto::{
        Algorithm, KeySource, Verified, VerifyError,
    };

    /// Verifies a compact JWS against `keys`, accepting only `allowed` algorithms. The
    /// claims come back unchecked: `exp`, `iss`, `aud` and scopes are the plugin's policy.
    pub fn verify_jws(
        token: &str,
        keys: &KeySource,
        allowed: &[Algorithm],
    ) -> Result<Verified, VerifyError> {
        #[cfg(target_arch = "wasm32")]
        return super::wit::crypto::verify_jws(token, keys, allowed);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::verify(token, keys, allowed);
    }
}
