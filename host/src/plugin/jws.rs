//! Verifying one compact JWS natively for a plugin's `crypto.verify-jws`: the algorithm
//! from the plugin's allowlist only, the key from a key set ([`super::jwks`]) or a shared
//! secret, and a verified token remembered for later requests with the same bytes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};

use super::bindings::portcullis::plugin::crypto::{
    Algorithm as WitAlgorithm, Verified, VerifyError,
};
use super::jwks::{KeySet, KeySets, MAX_TOKEN_BYTES, Remembered};

/// The parts of a compact JWS, decoded.
struct Parsed<'t> {
    alg_name: String,
    kid: Option<String>,
    header: String,
    payload: String,
    signing_input: &'t str,
    signature: &'t str,
}

/// Header parameters this verifier understands; any other name listed in `crit` fails
/// the token (RFC 7515 §4.1.11).
const UNDERSTOOD_CRIT: &[&str] = &["b64"];

fn parse(token: &str) -> Result<Parsed<'_>, VerifyError> {
    let malformed = |why: &str| VerifyError::Malformed(why.to_owned());
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not three dot-separated parts"));
    };
    let decode = |seg: &str, what: &str| -> Result<String, VerifyError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(seg)
            .map_err(|_| malformed(&format!("{what} is not base64url")))?;
        String::from_utf8(bytes).map_err(|_| malformed(&format!("{what} is not UTF-8")))
    };
    let header = decode(h, "header")?;
    let payload = decode(p, "payload")?;
    let head: serde_json::Value =
        serde_json::from_str(&header).map_err(|_| malformed("header is not JSON"))?;
    let head = head
        .as_object()
        .ok_or_else(|| malformed("header is not a JSON object"))?;
    if !serde_json::from_str::<serde_json::Value>(&payload).is_ok_and(|v| v.is_object()) {
        return Err(malformed("payload is not a JSON object"));
    }
    let alg_name = head
        .get("alg")
        .and_then(|a| a.as_str())
        .ok_or_else(|| malformed("header has no `alg`"))?
        .to_owned();
    if let Some(crit) = head.get("crit") {
        let names = crit
            .as_array()
            .ok_or_else(|| malformed("`crit` is not an array"))?;
        for name in names {
            let name = name.as_str().unwrap_or("?");
            if !UNDERSTOOD_CRIT.contains(&name) {
                return Err(VerifyError::UnsupportedCritical(name.to_owned()));
            }
        }
        if head
            .get("b64")
            .is_some_and(|b| b != &serde_json::Value::Bool(true))
        {
            return Err(VerifyError::UnsupportedCritical("b64".to_owned()));
        }
    }
    let kid = head.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
    let signing_input = &token[..h.len() + 1 + p.len()];
    Ok(Parsed {
        alg_name,
        kid,
        header,
        payload,
        signing_input,
        signature: s,
    })
}

fn to_jwt_alg(a: WitAlgorithm) -> Algorithm {
    match a {
        WitAlgorithm::Hs256 => Algorithm::HS256,
        WitAlgorithm::Hs384 => Algorithm::HS384,
        WitAlgorithm::Hs512 => Algorithm::HS512,
        WitAlgorithm::Rs256 => Algorithm::RS256,
        WitAlgorithm::Rs384 => Algorithm::RS384,
        WitAlgorithm::Rs512 => Algorithm::RS512,
        WitAlgorithm::Ps256 => Algorithm::PS256,
        WitAlgorithm::Ps384 => Algorithm::PS384,
        WitAlgorithm::Ps512 => Algorithm::PS512,
        WitAlgorithm::Es256 => Algorithm::ES256,
        WitAlgorithm::Es384 => Algorithm::ES384,
        WitAlgorithm::Eddsa => Algorithm::EdDSA,
    }
}

fn is_hmac(a: Algorithm) -> bool {
    matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// Where the keys of one verification come from.
#[derive(Debug)]
pub enum Keys<'a> {
    Url(&'a str),
    Inline(&'a str),
    Secret(&'a [u8]),
}

/// A key source as one verification uses it: an inline set's text hashed once, for the
/// set's cache and for the memory of verified tokens.
enum Source<'a> {
    Url(&'a str),
    Inline { text: &'a str, digest: [u8; 32] },
    Secret(&'a [u8]),
}

impl<'a> From<Keys<'a>> for Source<'a> {
    fn from(keys: Keys<'a>) -> Self {
        match keys {
            Keys::Url(url) => Self::Url(url),
            Keys::Inline(text) => Self::Inline {
                text,
                digest: digest(text.as_bytes()),
            },
            Keys::Secret(secret) => Self::Secret(secret),
        }
    }
}

impl KeySets {
    /// Verifies `token`'s signature with one of `allowed` and a key from `keys`.
    ///
    /// A token verified before with the same key source and allowlist is answered from
    /// memory before it is even decoded: those inputs decide the outcome, and a client
    /// sends the same token with every request (decoding and parsing it was 3 µs of a
    /// remembered verification under load; bench/pipeline.sh with perf, BENCHMARKS.md).
    pub async fn verify(
        &self,
        token: &str,
        keys: Keys<'_>,
        allowed: &[WitAlgorithm],
    ) -> Result<Verified, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Malformed(
                "token longer than 16 KiB".to_owned(),
            ));
        }
        let source = Source::from(keys);
        let memory_key = remembered_key(token, &source, allowed);
        if let Some(hit) = self.verified.get(&memory_key) {
            let kid = hit.verified.key_id.as_deref();
            let set = self.current_set(&source, kid).await?;
            let same_set = match (&hit.set, &set) {
                (None, None) => true,
                // The set that verified it is still alive and still the source's current one.
                (Some(weak), Some(set)) => weak.upgrade().is_some_and(|old| Arc::ptr_eq(&old, set)),
                _ => false,
            };
            if same_set {
                self.verified_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(hit.verified);
            }
        }

        let parsed = parse(token)?;
        // The algorithm comes from the allowlist, never from the token alone: `none` and
        // anything the plugin did not allow stop here.
        let named = parsed.alg_name.parse::<Algorithm>().ok();
        let algorithm = allowed
            .iter()
            .copied()
            .find(|a| Some(to_jwt_alg(*a)) == named)
            .ok_or_else(|| VerifyError::AlgorithmNotAllowed(parsed.alg_name.clone()))?;
        let alg = to_jwt_alg(algorithm);
        let kid = parsed.kid.as_deref();
        if matches!(source, Source::Secret(_)) && !is_hmac(alg) {
            return Err(VerifyError::InvalidKeys(
                "a shared secret verifies HS256/384/512 tokens only".to_owned(),
            ));
        }
        let set = self.current_set(&source, kid).await?;

        let verifies = |key: &DecodingKey| {
            jsonwebtoken::crypto::verify(
                parsed.signature,
                parsed.signing_input.as_bytes(),
                key,
                alg,
            )
            .unwrap_or(false)
        };
        let matched = match (&source, &set) {
            (Source::Secret(secret), _) => verifies(&DecodingKey::from_secret(secret)),
            (_, Some(set)) => check_with(set, alg, kid, &verifies)?,
            (_, None) => false,
        };
        if !matched {
            return Err(VerifyError::InvalidSignature);
        }
        let verified = Verified {
            algorithm,
            key_id: parsed.kid,
            header: parsed.header,
            claims: parsed.payload,
        };
        self.verified.insert(
            memory_key,
            Remembered {
                verified: verified.clone(),
                set: set.as_ref().map(Arc::downgrade),
            },
        );
        Ok(verified)
    }

    /// The key set `source` names now (none for a secret), fetched if need be for `kid`.
    async fn current_set(
        &self,
        source: &Source<'_>,
        kid: Option<&str>,
    ) -> Result<Option<Arc<KeySet>>, VerifyError> {
        Ok(match source {
            Source::Secret(_) => None,
            Source::Inline { text, digest } => Some(
                self.inline(*digest, text)
                    .map_err(VerifyError::InvalidKeys)?,
            ),
            Source::Url(url) => Some(
                self.by_url(url, kid)
                    .await
                    .map_err(VerifyError::KeysUnavailable)?,
            ),
        })
    }

    /// Verifications answered from memory (for tests and metrics).
    pub fn remembered_hits(&self) -> u64 {
        self.verified_hits.load(Ordering::Relaxed)
    }
}

/// What a remembered verification is filed under: the token, where its keys come from,
/// and the algorithm, hashed together.
fn remembered_key(token: &str, source: &Source<'_>, allowed: &[WitAlgorithm]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    // The token's length first: no token can pass for another one followed by a source.
    h.update((token.len() as u64).to_le_bytes());
    h.update(token.as_bytes());
    match source {
        Source::Url(url) => {
            h.update(b"\0url\0");
            h.update(url.as_bytes());
        }
        Source::Inline { digest, .. } => {
            h.update(b"\0jwks\0");
            h.update(digest);
        }
        Source::Secret(secret) => {
            h.update(b"\0secret\0");
            h.update(secret);
        }
    }
    // The allowlist, not the algorithm the token names: with the token, it decides which
    // algorithm verifies, so it is known before the token is decoded.
    h.update(b"\0allowed\0");
    for a in allowed {
        h.update([*a as u8]);
    }
    h.finalize().into()
}

/// SHA-256 of `bytes`: what an inline key set is filed under.
fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}

/// Tries the candidate keys; `Err(UnknownKey)` when none fits the token at all.
fn check_with(
    set: &KeySet,
    alg: Algorithm,
    kid: Option<&str>,
    verifies: &dyn Fn(&DecodingKey) -> bool,
) -> Result<bool, VerifyError> {
    let mut any = false;
    for key in set.candidates(alg, kid) {
        any = true;
        if verifies(&key.key) {
            return Ok(true);
        }
    }
    if any {
        Ok(false)
    } else {
        Err(VerifyError::UnknownKey(kid.map(str::to_owned)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::jwks::KeySetSettings;

    fn hs256(secret: &[u8], sub: &str) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &serde_json::json!({ "sub": sub }),
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .expect("token")
    }

    #[tokio::test]
    async fn a_verified_token_is_remembered_for_its_exact_key_source_only() {
        crate::install_crypto_provider();
        let sets = KeySets::new(
            super::super::services::outbound_client(),
            KeySetSettings::default(),
        );
        let secret = b"0123456789abcdef0123456789abcdef";
        let other = b"fedcba9876543210fedcba9876543210";
        let token = hs256(secret, "ann");
        let allowed = [WitAlgorithm::Hs256];
        for _ in 0..3 {
            let v = sets
                .verify(&token, Keys::Secret(secret), &allowed)
                .await
                .expect("verifies");
            assert!(v.claims.contains("ann"));
        }
        assert_eq!(sets.remembered_hits(), 2);
        // Another secret is another key source: verified afresh, and refused.
        assert!(matches!(
            sets.verify(&token, Keys::Secret(other), &allowed).await,
            Err(VerifyError::InvalidSignature)
        ));
        // A refused token is never remembered.
        let forged = hs256(other, "ann");
        for _ in 0..2 {
            assert!(
                sets.verify(&forged, Keys::Secret(secret), &allowed)
                    .await
                    .is_err()
            );
        }
        assert_eq!(sets.remembered_hits(), 2);
        // The algorithm allowlist holds for remembered tokens too.
        assert!(matches!(
            sets.verify(&token, Keys::Secret(secret), &[WitAlgorithm::Hs384])
                .await,
            Err(VerifyError::AlgorithmNotAllowed(_))
        ));
    }

    /// An inline set is filed under its text's hash: the same text answers from memory,
    /// another text (a rotated set pasted into the config) verifies afresh.
    #[tokio::test]
    async fn an_inline_key_set_is_told_apart_by_its_text() {
        crate::install_crypto_provider();
        let sets = KeySets::new(
            super::super::services::outbound_client(),
            KeySetSettings::default(),
        );
        let jwks = |secret: &[u8]| {
            serde_json::json!({ "keys": [{ "kty": "oct", "k": URL_SAFE_NO_PAD.encode(secret) }] })
                .to_string()
        };
        let secret = b"0123456789abcdef0123456789abcdef";
        let (ours, theirs) = (jwks(secret), jwks(b"fedcba9876543210fedcba9876543210"));
        let token = hs256(secret, "ann");
        let allowed = [WitAlgorithm::Hs256];
        for _ in 0..2 {
            sets.verify(&token, Keys::Inline(&ours), &allowed)
                .await
                .expect("verifies");
        }
        assert_eq!(sets.remembered_hits(), 1);
        assert!(matches!(
            sets.verify(&token, Keys::Inline(&theirs), &allowed).await,
            Err(VerifyError::InvalidSignature)
        ));
        assert_eq!(sets.remembered_hits(), 1);
        // A remembered token still fails an allowlist that leaves its algorithm out.
        assert!(matches!(
            sets.verify(&token, Keys::Inline(&ours), &[WitAlgorithm::Hs512])
                .await,
            Err(VerifyError::AlgorithmNotAllowed(_))
        ));
    }
}
