//! Verifies the bearer token through the host crypto import with the configured key source and algorithms; answers 401 with the error, or continues with `x-verified-sub` and `x-verified-alg`.

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};

#[derive(serde::Deserialize)]
struct Config {
    jwks_url: Option<String>,
    jwks: Option<serde_json::Value>,
    secret: Option<String>,
    algorithms: Vec<String>,
}
fn algorithm(name: &str) -> Option<crypto::Algorithm> {
    use crypto::Algorithm::*;
    Some(match name {
        "HS256" => Hs256,
        "HS384" => Hs384,
        "HS512" => Hs512,
        "RS256" => Rs256,
        "RS384" => Rs384,
        "RS512" => Rs512,
        "PS256" => Ps256,
        "PS384" => Ps384,
        "PS512" => Ps512,
        "ES256" => Es256,
        "ES384" => Es384,
        "EdDSA" => Eddsa,
        _ => return None,
    })
}
struct Verifier;
impl Plugin for Verifier {
    type Config = Config;
    fn check(config: &Config) -> Result<Phases, String> {
        for a in &config.algorithms {
            algorithm(a).ok_or_else(|| format!("unknown algorithm `{a}`"))?;
        }
        Ok(Phases::ON_REQUEST)
    }
    fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        let Some(token) = request
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
        else {
            return Ok(Action::Respond(Reply::new(401).text("missing token")));
        };
        let keys = if let Some(url) = &config.jwks_url {
            crypto::KeySource::JwksUrl(url.clone())
        } else if let Some(doc) = &config.jwks {
            crypto::KeySource::Jwks(doc.to_string())
        } else {
            crypto::KeySource::Secret(config.secret.clone().unwrap_or_default().into_bytes())
        };
        let allowed: Vec<_> = config
            .algorithms
            .iter()
            .filter_map(|a| algorithm(a))
            .collect();
        match crypto::verify_jws(&token, &keys, &allowed) {
            Ok(verified) => {
                let claims: serde_json::Value = serde_json::from_str(&verified.claims)?;
                let sub = claims["sub"].as_str().unwrap_or("-").to_owned();
                request.set_header("x-verified-sub", &sub)?;
                request.set_header("x-verified-alg", &format!("{:?}", verified.algorithm))?;
                request.set_identity(&Identity::subject(&sub));
                Ok(Action::Continue)
            }
            Err(e) => {
                let text = format!("{e:?}");
                Ok(Action::Respond(
                    Reply::new(401)
                        .header("x-verify-error", text.split('(').next().unwrap_or("error"))
                        .text(&text),
                ))
            }
        }
    }
}
export_plugin!(Verifier);
