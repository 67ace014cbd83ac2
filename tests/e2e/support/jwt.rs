//! Tokens signed at test time (aws-lc-rs) and a JWKS endpoint on 127.0.0.1:0, for the
//! host-crypto and jwt-auth tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

/// Signing keys made for one test.
pub struct Signers {
    pub rsa: aws_lc_rs::rsa::KeyPair,
    pub rsa_next: aws_lc_rs::rsa::KeyPair,
    pub ec: signature::EcdsaKeyPair,
    pub ed: signature::Ed25519KeyPair,
}

impl Signers {
    pub fn new() -> Self {
        use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
        Self {
            rsa: RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa"),
            rsa_next: RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa"),
            ec: signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                .expect("ec"),
            ed: signature::Ed25519KeyPair::generate().expect("ed25519"),
        }
    }

    pub fn rsa_jwk(key: &aws_lc_rs::rsa::KeyPair, kid: &str) -> Value {
        let c = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(key.public_key());
        json!({ "kty": "RSA", "kid": kid, "use": "sig", "n": B64.encode(&c.n), "e": B64.encode(&c.e) })
    }

    /// The JWKS with the current keys (`rsa-1`, `ec-1`, `ed-1`), or after rotation
    /// (`rsa-2` only, `rsa-1` removed).
    pub fn jwks(&self, rotated: bool) -> Value {
        if rotated {
            return json!({ "keys": [Self::rsa_jwk(&self.rsa_next, "rsa-2")] });
        }
        let point = self.ec.public_key().as_ref();
        let ed = self.ed.public_key().as_ref();
        json!({ "keys": [
            Self::rsa_jwk(&self.rsa, "rsa-1"),
            { "kty": "EC", "kid": "ec-1", "crv": "P-256",
              "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]) },
            { "kty": "OKP", "kid": "ed-1", "crv": "Ed25519", "x": B64.encode(ed) },
            { "kty": "RSA", "kid": "enc-1", "use": "enc", "n": "AQAB", "e": "AQAB" },
        ]})
    }

    /// The signing input (`header.payload`) of a token with header `alg`/`kid`.
    fn signing_input(alg: &str, kid: Option<&str>, claims: &Value) -> String {
        let mut header = json!({ "alg": alg, "typ": "JWT" });
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        )
    }

    /// An HS256 token whose HMAC key is `key`: with an RSA public key as the secret, the
    /// classic algorithm-confusion forgery.
    pub fn hs256_with(key: &[u8], kid: Option<&str>, claims: &Value) -> String {
        let input = Self::signing_input("HS256", kid, claims);
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
        let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }

    /// A compact JWS of `claims` with header `alg`/`kid`.
    pub fn token(&self, alg: &str, kid: Option<&str>, claims: &Value) -> String {
        let input = Self::signing_input(alg, kid, claims);
        let rng = SystemRandom::new();
        let rsa = |key: &aws_lc_rs::rsa::KeyPair, pad: &'static dyn signature::RsaEncoding| {
            let mut sig = vec![0; key.public_modulus_len()];
            key.sign(pad, &rng, input.as_bytes(), &mut sig)
                .expect("sign");
            sig
        };
        let sig = match (alg, kid) {
            ("RS256", Some("rsa-2")) => rsa(&self.rsa_next, &signature::RSA_PKCS1_SHA256),
            ("RS256", _) => rsa(&self.rsa, &signature::RSA_PKCS1_SHA256),
            ("RS384", _) => rsa(&self.rsa, &signature::RSA_PKCS1_SHA384),
            ("PS256", _) => rsa(&self.rsa, &signature::RSA_PSS_SHA256),
            ("ES256", _) => self
                .ec
                .sign(&rng, input.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec(),
            ("EdDSA", _) => self.ed.sign(input.as_bytes()).as_ref().to_vec(),
            ("HS256", _) => {
                let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
                aws_lc_rs::hmac::sign(&key, input.as_bytes())
                    .as_ref()
                    .to_vec()
            }
            ("none", _) => Vec::new(),
            _ => panic!("no signer for {alg}"),
        };
        format!("{input}.{}", B64.encode(sig))
    }
}

pub const SECRET: &[u8] = b"a shared secret of at least 32 bytes!!";

/// A JWKS endpoint whose document can change, that can go down, and counts fetches.
pub struct JwksServer {
    pub addr: SocketAddr,
    pub doc: Arc<Mutex<Value>>,
    pub up: Arc<AtomicBool>,
    pub fetches: Arc<AtomicUsize>,
    /// Milliseconds each answer waits: an identity provider that has become slow.
    pub delay_ms: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    pub async fn start(doc: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let doc = Arc::new(Mutex::new(doc));
        let up = Arc::new(AtomicBool::new(true));
        let fetches = Arc::new(AtomicUsize::new(0));
        let delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (d, u, f) = (Arc::clone(&doc), Arc::clone(&up), Arc::clone(&fetches));
        let w = Arc::clone(&delay_ms);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (d, u, f) = (Arc::clone(&d), Arc::clone(&u), Arc::clone(&f));
                let w = Arc::clone(&w);
                tokio::spawn(async move {
                    let service = service_fn(move |_req| {
                        f.fetch_add(1, Ordering::SeqCst);
                        let (status, body) = if u.load(Ordering::SeqCst) {
                            (200, d.lock().expect("doc").to_string())
                        } else {
                            (503, String::new())
                        };
                        let delay = std::time::Duration::from_millis(w.load(Ordering::SeqCst));
                        async move {
                            tokio::time::sleep(delay).await;
                            http::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            doc,
            up,
            fetches,
            delay_ms,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }
}

/// A JSON value as a TOML inline value.
pub fn toml_inline(v: &Value) -> String {
    match v {
        Value::Object(map) => format!(
            "{{ {} }}",
            map.iter()
                .map(|(k, v)| format!("{k:?} = {}", toml_inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml_inline).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}
