//! `jwt-auth`: bearer tokens (JWT) verified against the route's issuers. See `README.md`
//! for the config.
//!
//! The signature is checked natively by the gateway (`crypto.verify-jws`, with key sets
//! it fetches, caches and refreshes); this plugin keeps the policy: where the token comes
//! from, which issuer and algorithms, the time window, audience, scopes and claims, what
//! the upstream is told, and the RFC 6750 answers.

mod config;
mod token;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_sdk::crypto::{self, VerifyError};
use portcullis_sdk::{
    Action, Identity, Level, Phases, Plugin, Reply, Request, export_plugin, host,
};
use serde_json::{Map, Value};

pub use config::{Config, Issuer};
use token::Found;

/// Tokens longer than this are refused before anything else is done with them.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The plugin.
#[derive(Debug)]
pub struct JwtAuth;

impl Plugin for JwtAuth {
    type Config = Config;

    fn check(config: &Config) -> Result<Phases, String> {
        config.check()?;
        Ok(Phases::ON_REQUEST)
    }

    fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        // Identity headers are the gateway's to set: drop whatever the client sent.
        for name in config.forwarded_headers() {
            request.remove_header(name)?;
        }
        let token = match token::find(&config.token, request) {
            Found::Token(t) => t,
            Found::Missing => return Ok(missing(config, request)),
            Found::Ambiguous => return Ok(invalid(config, request, "more than one token")),
        };
        if token.len() > MAX_TOKEN_BYTES {
            return Ok(invalid(config, request, "token too large"));
        }
        let issuer = match pick_issuer(config, &token) {
            Ok(issuer) => issuer,
            Err(why) => return Ok(invalid(config, request, why)),
        };
        let keys = issuer.keys().map_err(portcullis_sdk::Error)?;
        let verified = match crypto::verify_jws(&token, &keys.source, &keys.algorithms) {
            Ok(v) => v,
            Err(VerifyError::KeysUnavailable(why)) => {
                host::log(
                    Level::Warn,
                    &format!("issuer `{}`: no keys to verify with: {why}", issuer.issuer),
                );
                return Ok(unavailable(request));
            }
            // The load-time check makes this a key set gone bad (an inline JWKS the gateway
            // cannot use): a failure of this plugin, not of the client.
            Err(VerifyError::InvalidKeys(why)) => {
                return Err(format!("issuer `{}`: {why}", issuer.issuer).into());
            }
            Err(e) => {
                let short = match &e {
                    VerifyError::Malformed(_) => "malformed token",
                    VerifyError::AlgorithmNotAllowed(_) => "algorithm not allowed",
                    VerifyError::UnknownKey(_) => "unknown signing key",
                    VerifyError::InvalidSignature => "invalid signature",
                    VerifyError::UnsupportedCritical(_) => "unsupported critical header",
                    _ => "invalid token",
                };
                host::log(Level::Debug, &format!("token refused: {e:?}"));
                return Ok(invalid(config, request, short));
            }
        };
        let Ok(Value::Object(claims)) = serde_json::from_str::<Value>(&verified.claims) else {
            return Ok(invalid(config, request, "claims are not a JSON object"));
        };
        if let Err(why) = check_time(config, &claims) {
            return Ok(invalid(config, request, why));
        }
        if claims.get("iss").and_then(Value::as_str) != Some(issuer.issuer.as_str()) {
            return Ok(invalid(config, request, "unknown issuer"));
        }
        if !issuer.audiences.is_empty() && !audience_matches(&issuer.audiences, &claims) {
            return Ok(forbidden(
                config,
                request,
                "the token is not for this audience",
            ));
        }
        let scopes = scopes(&claims);
        if config
            .required_scopes
            .iter()
            .any(|required| !scopes.contains(required))
        {
            return Ok(forbidden(config, request, "a required scope is missing"));
        }
        for (name, accepted) in &config.required_claims {
            if !claims.get(name).is_some_and(|v| accepted.accepts(v)) {
                return Ok(forbidden(
                    config,
                    request,
                    &format!("claim `{name}` does not have a required value"),
                ));
            }
        }

        let subject = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
        let identity = Identity {
            subject: subject.clone(),
            consumer: config
                .consumer_claim
                .as_ref()
                .and_then(|c| claims.get(c))
                .and_then(Value::as_str)
                .map(str::to_owned),
            groups: config
                .groups_claim
                .as_ref()
                .and_then(|c| claims.get(c))
                .map(strings)
                .unwrap_or_default(),
            claims: config
                .claims
                .iter()
                .filter_map(|name| claims.get(name).map(|v| (name.clone(), v.to_string())))
                .collect(),
            scopes,
        };
        if !config.forward_token {
            token::remove(&config.token, request)?;
        }
        if let (Some(header), Some(sub)) = (&config.forward.subject, &subject) {
            request.set_header(header, sub)?;
        }
        if let Some(header) = &config.forward.scopes
            && !identity.scopes.is_empty()
        {
            request.set_header(header, &identity.scopes.join(" "))?;
        }
        for (claim, header) in &config.forward.claims {
            if let Some(value) = claims.get(claim) {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                // A claim that cannot be a header value (a newline, say) is not forwarded.
                if request.set_header(header, &text).is_err() {
                    host::log(
                        Level::Debug,
                        &format!("claim `{claim}` not forwarded: not a valid header value"),
                    );
                }
            }
        }
        request.set_identity(&identity);
        Ok(Action::Continue)
    }
}

/// The issuer whose keys verify this token: the only one, or the one its (still
/// unverified) `iss` names. The claim is checked again once the signature holds.
fn pick_issuer<'c>(config: &'c Config, token: &str) -> Result<&'c Issuer, &'static str> {
    if let [only] = config.issuers.as_slice() {
        return Ok(only);
    }
    let mut parts = token.split('.');
    let payload = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(payload), Some(_), None) => payload,
        _ => return Err("malformed token"),
    };
    let claims: Value = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or("malformed token")?;
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or("unknown issuer")?;
    config
        .issuers
        .iter()
        .find(|i| i.issuer == iss)
        .ok_or("unknown issuer")
}

/// `exp` and `nbf`, each with the leeway. Both must be numbers when present.
fn check_time(config: &Config, claims: &Map<String, Value>) -> Result<(), &'static str> {
    let now = (host::now_millis() / 1000) as f64;
    let leeway = config.leeway_secs as f64;
    match claims.get("exp") {
        Some(exp) => {
            let exp = exp.as_f64().ok_or("malformed exp")?;
            if now > exp + leeway {
                return Err("token expired");
            }
        }
        None if config.require_exp => return Err("token has no exp"),
        None => {}
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().ok_or("malformed nbf")?;
        if now + leeway < nbf {
            return Err("token not yet valid");
        }
    }
    Ok(())
}

fn audience_matches(accepted: &[String], claims: &Map<String, Value>) -> bool {
    claims
        .get("aud")
        .map(strings)
        .is_some_and(|auds| auds.iter().any(|a| accepted.contains(a)))
}

/// OAuth scopes: `scope` (space-separated, RFC 8693) or `scp` (a list or a string).
fn scopes(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("scope").or_else(|| claims.get("scp")) {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(other) => strings(other),
        None => Vec::new(),
    }
}

/// A string claim as one value, a list claim as its string items.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// RFC 6750 §3: no credentials, so no `error`.
fn missing(config: &Config, request: &Request<'_>) -> Action {
    Action::Respond(
        Reply::problem(
            401,
            "unauthorized",
            "A bearer token is required.",
            &request.request_id(),
        )
        .header(
            "www-authenticate",
            &format!("Bearer realm=\"{}\"", config.realm),
        ),
    )
}

/// RFC 6750 §3.1 `invalid_token`, with a short description; details go to the debug log.
fn invalid(config: &Config, request: &Request<'_>, why: &str) -> Action {
    Action::Respond(
        Reply::problem(
            401,
            "invalid-token",
            &format!("The bearer token is not valid: {why}."),
            &request.request_id(),
        )
        .header(
            "www-authenticate",
            &format!(
                "Bearer realm=\"{}\", error=\"invalid_token\", error_description=\"{why}\"",
                config.realm
            ),
        ),
    )
}

/// RFC 6750 §3.1 `insufficient_scope`: the token is good but not enough for this route.
fn forbidden(config: &Config, request: &Request<'_>, why: &str) -> Action {
    let mut challenge = format!(
        "Bearer realm=\"{}\", error=\"insufficient_scope\"",
        config.realm
    );
    if !config.required_scopes.is_empty() {
        challenge.push_str(&format!(", scope=\"{}\"", config.required_scopes.join(" ")));
    }
    Action::Respond(
        Reply::problem(
            403,
            "insufficient-scope",
            &format!("The bearer token does not allow this request: {why}."),
            &request.request_id(),
        )
        .header("www-authenticate", &challenge),
    )
}

/// The issuer's keys cannot be had and none are cached: not the client's fault.
fn unavailable(request: &Request<'_>) -> Action {
    Action::Respond(
        Reply::problem(
            503,
            "keys-unavailable",
            "The keys to check this token cannot be fetched right now; retry later.",
            &request.request_id(),
        )
        .header("retry-after", "5"),
    )
}

export_plugin!(JwtAuth);
