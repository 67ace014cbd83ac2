//! jwt-auth's config: issuers with their keys and algorithms, where the token comes from,
//! what a token must carry, and what reaches the upstream.

use std::collections::BTreeMap;

use portcullis_sdk::checks;
use portcullis_sdk::crypto::{Algorithm, KeySource};
use serde::Deserialize;

/// The entry's `config` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Issuers whose tokens this route accepts.
    pub issuers: Vec<Issuer>,
    /// The realm named in `WWW-Authenticate`.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Refuse tokens without `exp` (they would never expire).
    #[serde(default = "yes")]
    pub require_exp: bool,
    /// Where the token is taken from.
    #[serde(default)]
    pub token: TokenSource,
    /// Keep the token on the request to the upstream (removed by default).
    #[serde(default)]
    pub forward_token: bool,
    /// Scopes every token must carry (`scope` or `scp` claim).
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// Claims every token must carry, with an accepted value (or one of a list).
    #[serde(default)]
    pub required_claims: BTreeMap<String, checks::Accepted>,
    /// The claim naming the consumer (a client id, say), if any.
    #[serde(default)]
    pub consumer_claim: Option<String>,
    /// The claim listing the subject's groups, if any.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Claims attached to the identity for later stages and the access log.
    #[serde(default)]
    pub claims: Vec<String>,
    /// Upstream headers set from the verified token.
    #[serde(default)]
    pub forward: Forward,
}

/// One issuer: its `iss`, its keys, the algorithms it signs with, its audiences.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    /// The exact `iss` claim of its tokens.
    pub issuer: String,
    /// A JWKS URL; its host must be granted in `grants.http`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// A JWKS document given inline (JSON text or table).
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// A shared secret, for HS* only.
    #[serde(default)]
    pub secret: Option<String>,
    /// The algorithms accepted; never taken from the token.
    pub algorithms: Vec<String>,
    /// Accepted `aud` values; empty accepts any audience.
    #[serde(default)]
    pub audiences: Vec<String>,
}

/// Where a token is looked for. Only one place is read: a token anywhere else is missing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSource {
    /// A header; for `authorization` the value must start with `Bearer `.
    #[serde(default)]
    pub header: Option<String>,
    /// A cookie.
    #[serde(default)]
    pub cookie: Option<String>,
}

impl Default for TokenSource {
    fn default() -> Self {
        Self {
            header: Some("authorization".into()),
            cookie: None,
        }
    }
}

/// Upstream headers set from the token: the subject, the scopes (space-separated) and any
/// claim. Client-sent copies are always removed first.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub scopes: Option<String>,
    /// Claim name → header name.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
}

fn default_realm() -> String {
    "api".into()
}
fn default_leeway() -> u64 {
    60
}
fn yes() -> bool {
    true
}

/// An issuer ready to verify with.
#[derive(Debug)]
pub struct Keys {
    pub source: KeySource,
    pub algorithms: Vec<Algorithm>,
}

pub fn algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "HS256" => Algorithm::Hs256,
        "HS384" => Algorithm::Hs384,
        "HS512" => Algorithm::Hs512,
        "RS256" => Algorithm::Rs256,
        "RS384" => Algorithm::Rs384,
        "RS512" => Algorithm::Rs512,
        "PS256" => Algorithm::Ps256,
        "PS384" => Algorithm::Ps384,
        "PS512" => Algorithm::Ps512,
        "ES256" => Algorithm::Es256,
        "ES384" => Algorithm::Es384,
        "EdDSA" => Algorithm::Eddsa,
        _ => return None,
    })
}

fn is_hmac(a: Algorithm) -> bool {
    matches!(a, Algorithm::Hs256 | Algorithm::Hs384 | Algorithm::Hs512)
}

impl Issuer {
    /// The key source and algorithms, or why this issuer cannot work.
    pub fn keys(&self) -> Result<Keys, String> {
        let who = &self.issuer;
        let mut algorithms = Vec::new();
        for name in &self.algorithms {
            let a = algorithm(name).ok_or_else(|| {
                format!(
                    "issuer `{who}`: `{name}` is not an algorithm the gateway verifies (use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256, HS384 or HS512; `none` is never accepted)"
                )
            })?;
            algorithms.push(a);
        }
        if algorithms.is_empty() {
            return Err(format!(
                "issuer `{who}`: `algorithms` must list at least one"
            ));
        }
        let hmac = algorithms.iter().filter(|a| is_hmac(**a)).count();
        let sources = [
            self.jwks_url.is_some(),
            self.jwks.is_some(),
            self.secret.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if sources != 1 {
            return Err(format!(
                "issuer `{who}`: give exactly one of `jwks_url`, `jwks` or `secret`"
            ));
        }
        let source = if let Some(secret) = &self.secret {
            if hmac != algorithms.len() {
                return Err(format!(
                    "issuer `{who}`: a `secret` verifies HS256/384/512 only; asymmetric algorithms need `jwks_url` or `jwks`"
                ));
            }
            if secret.len() < 32 {
                return Err(format!(
                    "issuer `{who}`: the `secret` is shorter than 32 bytes; an HMAC key that short can be guessed"
                ));
            }
            KeySource::Secret(secret.as_bytes().to_vec())
        } else {
            if hmac > 0 {
                return Err(format!(
                    "issuer `{who}`: HS* algorithms need a `secret`; with a key set they would let anyone holding the public key sign tokens"
                ));
            }
            match (&self.jwks_url, &self.jwks) {
                (Some(url), _) => {
                    if !url.starts_with("https://") && !url.starts_with("http://") {
                        return Err(format!("issuer `{who}`: `jwks_url` must be an http(s) URL"));
                    }
                    KeySource::JwksUrl(url.clone())
                }
                (None, Some(serde_json::Value::String(text))) => KeySource::Jwks(text.clone()),
                (None, Some(value)) => KeySource::Jwks(value.to_string()),
                (None, None) => unreachable_source(),
            }
        };
        Ok(Keys { source, algorithms })
    }
}

#[cold]
fn unreachable_source() -> ! {
    panic!("exactly one key source was checked above")
}

impl Config {
    /// Everything `check-config` refuses, with what to do.
    pub fn check(&self) -> Result<(), String> {
        if self.issuers.is_empty() {
            return Err("`issuers` is empty: no token could ever be accepted".into());
        }
        for (i, issuer) in self.issuers.iter().enumerate() {
            issuer.keys()?;
            if self.issuers[..i].iter().any(|o| o.issuer == issuer.issuer) {
                return Err(format!("issuer `{}` is listed twice", issuer.issuer));
            }
        }
        match (&self.token.header, &self.token.cookie) {
            (Some(h), None) if checks::is_header_name(h) => {}
            (None, Some(c)) if !c.is_empty() && !c.contains([';', '=', ' ']) => {}
            (Some(_), Some(_)) | (None, None) => {
                return Err("`token` takes exactly one of `header` or `cookie`".into());
            }
            _ => return Err("`token` names an invalid header or cookie".into()),
        }
        let mut forwarded: Vec<(&str, &str)> = Vec::new();
        if let Some(h) = &self.forward.subject {
            forwarded.push(("forward.subject", h));
        }
        if let Some(h) = &self.forward.scopes {
            forwarded.push(("forward.scopes", h));
        }
        for h in self.forward.claims.values() {
            forwarded.push(("forward.claims", h));
        }
        for (what, name) in &forwarded {
            if !checks::is_header_name(name) {
                return Err(format!(
                    "`{what}`: `{name}` is not a lowercase HTTP header name"
                ));
            }
            if Some(*name) == self.token.header.as_deref() {
                return Err(format!("`{what}`: `{name}` is where the token comes from"));
            }
        }
        checks::realm(&self.realm)?;
        for scope in &self.required_scopes {
            if scope.is_empty() || scope.contains([' ', '"', '\\']) {
                return Err(format!("required scope `{scope}` is not a scope token"));
            }
        }
        Ok(())
    }

    /// Header names the plugin sets for the upstream (and removes from clients).
    pub fn forwarded_headers(&self) -> impl Iterator<Item = &str> {
        self.forward
            .subject
            .iter()
            .chain(self.forward.scopes.iter())
            .chain(self.forward.claims.values())
            .map(String::as_str)
    }
}
