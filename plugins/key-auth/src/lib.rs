//! `key-auth`: clients present an API key; the gateway knows only its SHA-256 hash and
//! the consumer it belongs to. See `README.md` for the config.
//!
//! The presented key is hashed and compared with every consumer's hash in constant time,
//! so neither the keys nor how close a guess came can be learnt from the gateway's timing
//! or from its config. The key is removed before the upstream sees the request (unless
//! `hide_credentials = false`), and so are client-sent copies of the identity headers the
//! plugin forwards: an upstream can trust them.

use std::collections::BTreeMap;

use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, checks, export_plugin, query,
};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The entry's `config` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Header carrying the key; empty to not take keys from headers.
    #[serde(default = "default_header")]
    pub header: String,
    /// Query parameter carrying the key, if keys may come in the query string.
    #[serde(default)]
    pub query: Option<String>,
    /// Consumers by name.
    pub consumers: BTreeMap<String, Consumer>,
    /// Remove the key from the request before the upstream sees it.
    #[serde(default = "yes")]
    pub hide_credentials: bool,
    /// The realm named in `WWW-Authenticate`.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Headers that tell the upstream who called.
    #[serde(default)]
    pub forward: Forward,
}

/// One consumer: the hash of its key and the groups it belongs to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    /// SHA-256 of the key, as 64 hex digits (`printf %s "$KEY" | sha256sum`).
    #[serde(deserialize_with = "sha256_hex")]
    pub key_sha256: [u8; 32],
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Upstream headers set from the identity; empty names are not sent. Client-sent copies
/// are always removed first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    #[serde(default = "default_consumer_header")]
    pub consumer: String,
    /// The consumer's groups, comma-separated.
    #[serde(default = "default_groups_header")]
    pub groups: String,
}

impl Default for Forward {
    fn default() -> Self {
        Self {
            consumer: default_consumer_header(),
            groups: default_groups_header(),
        }
    }
}

fn default_header() -> String {
    "x-api-key".into()
}
fn default_realm() -> String {
    "api".into()
}
fn default_consumer_header() -> String {
    "x-consumer".into()
}
fn default_groups_header() -> String {
    "x-consumer-groups".into()
}
fn yes() -> bool {
    true
}

fn sha256_hex<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    let text = String::deserialize(d)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).map_err(|_| {
        serde::de::Error::custom(
            "`key_sha256` must be 64 hex digits: the SHA-256 of the key, never the key itself",
        )
    })?;
    Ok(out)
}

/// The plugin.
#[derive(Debug)]
pub struct KeyAuth;

impl Plugin for KeyAuth {
    type Config = Config;

    fn check(config: &Config) -> Result<Phases, String> {
        if config.header.is_empty() && config.query.as_deref().is_none_or(str::is_empty) {
            return Err(
                "set `header` or `query`: the plugin needs somewhere to find the key".into(),
            );
        }
        for (what, name) in [
            ("header", &config.header),
            ("forward.consumer", &config.forward.consumer),
            ("forward.groups", &config.forward.groups),
        ] {
            if !name.is_empty() && !checks::is_header_name(name) {
                return Err(format!(
                    "`{what}` = `{name}` is not a lowercase HTTP header name"
                ));
            }
        }
        if !config.header.is_empty()
            && (config.header == config.forward.consumer || config.header == config.forward.groups)
        {
            return Err("the key header cannot also be a forwarded identity header".into());
        }
        if config.consumers.is_empty() {
            return Err("`consumers` is empty: no key could ever be accepted".into());
        }
        let mut seen: BTreeMap<[u8; 32], &str> = BTreeMap::new();
        for (name, consumer) in &config.consumers {
            if let Some(other) = seen.insert(consumer.key_sha256, name) {
                return Err(format!(
                    "consumers `{other}` and `{name}` have the same key; give each its own"
                ));
            }
        }
        checks::realm(&config.realm)?;
        Ok(Phases::ON_REQUEST)
    }

    fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        // Identity headers are the gateway's to set: drop whatever the client sent.
        for name in [&config.forward.consumer, &config.forward.groups] {
            if !name.is_empty() {
                request.remove_header(name)?;
            }
        }
        let key = match presented_key(config, request) {
            Presented::One(key) => key,
            Presented::None => return Ok(refuse(config, request, "An API key is required.")),
            Presented::Ambiguous => {
                return Ok(refuse(config, request, "Send exactly one API key."));
            }
        };
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        // Every consumer is compared, each in constant time.
        let mut found = None;
        for (name, consumer) in &config.consumers {
            if bool::from(consumer.key_sha256.ct_eq(&digest)) {
                found = Some((name, consumer));
            }
        }
        let Some((name, consumer)) = found else {
            return Ok(refuse(config, request, "The API key is not valid."));
        };
        if config.hide_credentials {
            if !config.header.is_empty() {
                request.remove_header(&config.header)?;
            }
            if let (Some(param), Some(q)) = (&config.query, request.query()) {
                request.set_query(query::remove(&q, param).as_deref())?;
            }
        }
        if !config.forward.consumer.is_empty() {
            request.set_header(&config.forward.consumer, name)?;
        }
        if !config.forward.groups.is_empty() && !consumer.groups.is_empty() {
            request.set_header(&config.forward.groups, &consumer.groups.join(","))?;
        }
        request.set_identity(&Identity {
            subject: None,
            consumer: Some(name.clone()),
            scopes: Vec::new(),
            groups: consumer.groups.clone(),
            claims: Vec::new(),
        });
        Ok(Action::Continue)
    }
}

enum Presented {
    None,
    One(String),
    Ambiguous,
}

/// The key the client sent: from the header, else from the query. Two different places
/// or repeated values are refused rather than guessed between.
fn presented_key(config: &Config, request: &Request<'_>) -> Presented {
    let mut keys = Vec::new();
    if !config.header.is_empty() {
        keys.extend(request.header_all(&config.header));
    }
    if let (Some(param), Some(q)) = (&config.query, request.query()) {
        keys.extend(query::get_all(&q, param));
    }
    keys.retain(|k| !k.is_empty());
    match keys.len() {
        0 => Presented::None,
        1 => Presented::One(keys.remove(0)),
        _ => Presented::Ambiguous,
    }
}

/// 401 with the scheme and realm, as RFC 9110 asks of a 401.
fn refuse(config: &Config, request: &Request<'_>, detail: &str) -> Action {
    Action::Respond(
        Reply::problem(401, "unauthorized", detail, &request.request_id()).header(
            "www-authenticate",
            &format!("Key realm=\"{}\"", config.realm),
        ),
    )
}

export_plugin!(KeyAuth);
