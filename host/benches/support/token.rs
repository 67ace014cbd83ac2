//! An RS256 key set and a token it verifies, made fresh for a benchmark run. Shared by
//! `benches/plugins.rs` and `examples/bench_token.rs` (for `bench/pipeline.sh`).

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

/// The key set (JWKS JSON), a token (`iss` https://idp.bench, `sub` bench-user, `aud`
/// orders, scope `orders:read`, valid for a day), and the key's modulus and exponent
/// (base64url) for native verification.
pub struct BenchToken {
    pub jwks: String,
    pub token: String,
    pub n: String,
    pub e: String,
}

pub fn bench_token() -> BenchToken {
    let key = KeyPair::generate(KeySize::Rsa2048).expect("rsa key");
    let c = PublicKeyComponents::<Vec<u8>>::from(key.public_key());
    let (n, e) = (B64.encode(&c.n), B64.encode(&c.e));
    let jwks = serde_json::json!({ "keys": [{ "kty": "RSA", "kid": "bench", "use": "sig",
        "alg": "RS256", "n": n, "e": e }] })
    .to_string();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": "bench" });
    let claims = serde_json::json!({ "iss": "https://idp.bench", "sub": "bench-user",
        "aud": "orders", "exp": now + 86_400, "scope": "orders:read" });
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .expect("sign");
    BenchToken {
        jwks,
        token: format!("{input}.{}", B64.encode(sig)),
        n,
        e,
    }
}
