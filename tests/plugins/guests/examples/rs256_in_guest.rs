//! Verifies the bearer token's RS256 signature inside the component, with RustCrypto's
//! `rsa` (configured with the key's base64url `n` and `e`): 401 unless it verifies. It is the
//! alternative the host crypto import avoids; the plugins bench compares the two.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis_sdk::{Action, Plugin, Reply, Request, export_plugin};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::sha2::Sha256;
use rsa::signature::Verifier;
use rsa::{BoxedUint, PublicKey};

#[derive(serde::Deserialize)]
struct Config {
    n: String,
    e: String,
}

struct InGuest;

fn verify(config: &Config, token: &str) -> Result<(), String> {
    let number = |b64: &str| {
        B64.decode(b64)
            .map(|bytes| BoxedUint::from_be_slice_vartime(&bytes))
            .map_err(|e| e.to_string())
    };
    let key = PublicKey::new(number(&config.n)?, number(&config.e)?).map_err(|e| e.to_string())?;
    let (signed, signature) = token.rsplit_once('.').ok_or("not a JWS")?;
    let signature = B64.decode(signature).map_err(|e| e.to_string())?;
    let signature = Signature::try_from(signature.as_slice()).map_err(|e| e.to_string())?;
    VerifyingKey::<Sha256>::new(key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|e| e.to_string())
}

impl Plugin for InGuest {
    type Config = Config;

    fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        let header = request.header("authorization").unwrap_or_default();
        let token = header.strip_prefix("Bearer ").unwrap_or_default();
        Ok(match verify(config, token) {
            Ok(()) => Action::Continue,
            Err(e) => Action::Respond(Reply::new(401).text(&e)),
        })
    }
}

export_plugin!(InGuest);
