//! Host crypto: tokens signed at test time (aws-lc-rs), verified through the plugin import
//! by the `verifier` test plugin, with key sets served by a JWKS server on 127.0.0.1:0.

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
use portcullis_test_plugins as plugins;
use serde_json::{Value, json};

use crate::support::client::{Conn, request};
use crate::support::upstream::TestUpstream;
use crate::support::{LISTENER, TestGateway};

/// Signing keys made for one test.
struct Signers {
    rsa: aws_lc_rs::rsa::KeyPair,
    rsa_next: aws_lc_rs::rsa::KeyPair,
    ec: signature::EcdsaKeyPair,
    ed: signature::Ed25519KeyPair,
}

impl Signers {
    fn new() -> Self {
        use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
        Self {
            rsa: RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa"),
            rsa_next: RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa"),
            ec: signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                .expect("ec"),
            ed: signature::Ed25519KeyPair::generate().expect("ed25519"),
        }
    }

    fn rsa_jwk(key: &aws_lc_rs::rsa::KeyPair, kid: &str) -> Value {
        let c = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(key.public_key());
        json!({ "kty": "RSA", "kid": kid, "use": "sig", "n": B64.encode(&c.n), "e": B64.encode(&c.e) })
    }

    /// The JWKS with the current keys (`rsa-1`, `ec-1`, `ed-1`), or after rotation
    /// (`rsa-2` only, `rsa-1` removed).
    fn jwks(&self, rotated: bool) -> Value {
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

    /// A compact JWS of `claims` with header `alg`/`kid`.
    fn token(&self, alg: &str, kid: Option<&str>, claims: &Value) -> String {
        let mut header = json!({ "alg": alg, "typ": "JWT" });
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
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

const SECRET: &[u8] = b"a shared secret of at least 32 bytes!!";

/// A JWKS endpoint whose document can change, that can go down, and counts fetches.
struct JwksServer {
    addr: SocketAddr,
    doc: Arc<Mutex<Value>>,
    up: Arc<AtomicBool>,
    fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    async fn start(doc: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let doc = Arc::new(Mutex::new(doc));
        let up = Arc::new(AtomicBool::new(true));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (d, u, f) = (Arc::clone(&doc), Arc::clone(&up), Arc::clone(&fetches));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (d, u, f) = (Arc::clone(&d), Arc::clone(&u), Arc::clone(&f));
                tokio::spawn(async move {
                    let service = service_fn(move |_req| {
                        f.fetch_add(1, Ordering::SeqCst);
                        let (status, body) = if u.load(Ordering::SeqCst) {
                            (200, d.lock().expect("doc").to_string())
                        } else {
                            (503, String::new())
                        };
                        async move {
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
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }
}

fn verifier_route(id: &str, keys: &str, algorithms: &str, grant: &str) -> String {
    format!(
        "[[routes]]\nid = \"{id}\"\npath = {{ prefix = \"/{id}\" }}\nupstream = \"app\"\n\
         [[routes.plugins]]\nplugin = \"{}\"\nconfig = {{ {keys}, algorithms = [{algorithms}] }}\n\
         grants = {{ crypto = true{grant} }}\nbudgets = {{ deadline = \"10s\" }}\n",
        plugins::VERIFIER
    )
}

async fn call(gw: &TestGateway, route: &str, token: &str) -> (u16, Option<String>, Option<String>) {
    let req = request("GET", "h", &format!("/{route}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let reply = Conn::h1(gw.addr()).await.send(req).await;
    // Verified requests reach the echo upstream, which shows what the plugin added.
    let verified = (reply.status == 200)
        .then(|| {
            reply.json()["headers"]["x-verified-alg"][0]
                .as_str()
                .map(str::to_owned)
        })
        .flatten();
    (
        reply.status.as_u16(),
        reply.header("x-verify-error").map(str::to_owned),
        verified,
    )
}

fn gateway_config(up: &TestUpstream, key_sets: &str, routes: &str) -> String {
    format!(
        "version = 1\n{LISTENER}[upstreams.app]\ntargets = [\"{}\"]\n[plugins]\nmax_instances = 16\ncache_dir = \"{{dir}}/cache\"\n\
         [plugins.key_sets]\n{key_sets}\n{routes}",
        up.addr
    )
}

#[tokio::test]
async fn every_algorithm_family_verifies_natively_and_forgeries_fail() {
    let s = Signers::new();
    let up = TestUpstream::start("app").await;
    let jwks = JwksServer::start(s.jwks(false)).await;
    let claims = json!({ "sub": "alice", "iss": "test" });
    let routes = verifier_route(
        "jwks",
        &format!("jwks_url = \"{}\"", jwks.url()),
        "\"RS256\", \"RS384\", \"PS256\", \"ES256\", \"EdDSA\"",
        &format!(", http = [\"{}\"]", jwks.addr),
    ) + &verifier_route(
        "inline",
        &format!("jwks = {}", toml_inline(&s.jwks(false))),
        "\"ES256\"",
        "",
    ) + &verifier_route(
        "who",
        &format!(
            "secret = \"{}\"",
            std::str::from_utf8(SECRET).expect("utf-8")
        ),
        "\"HS256\"",
        "",
    )
    .replace(
        "[[routes.plugins]]\n",
        &format!(
            "[[routes.plugins]]\nplugin = \"{}\"\nconfig = {{}}\n[[routes.plugins]]\n",
            plugins::RESPONSE_EDITOR
        ),
    ) + &verifier_route(
        "secret",
        &format!(
            "secret = \"{}\"",
            std::str::from_utf8(SECRET).expect("utf-8")
        ),
        "\"HS256\"",
        "",
    );
    let gw = TestGateway::start(&gateway_config(&up, "", &routes)).await;

    for (alg, kid) in [
        ("RS256", "rsa-1"),
        ("RS384", "rsa-1"),
        ("PS256", "rsa-1"),
        ("ES256", "ec-1"),
        ("EdDSA", "ed-1"),
    ] {
        let (status, error, verified) = call(&gw, "jwks", &s.token(alg, Some(kid), &claims)).await;
        assert_eq!((status, error), (200, None), "{alg}");
        assert!(
            verified.is_some_and(|v| v.eq_ignore_ascii_case(&format!("Algorithm::{alg}"))),
            "{alg}"
        );
    }
    assert_eq!(
        call(&gw, "inline", &s.token("ES256", Some("ec-1"), &claims))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&gw, "secret", &s.token("HS256", None, &claims))
            .await
            .0,
        200
    );
    // The identity the verifier attached reaches a response-phase plugin before it.
    let req = request("GET", "h", "/who")
        .header(
            "authorization",
            format!("Bearer {}", s.token("HS256", None, &claims)),
        )
        .body(Full::new(Bytes::new()))
        .expect("request");
    let reply = Conn::h1(gw.addr()).await.send(req).await;
    assert_eq!(reply.header("x-subject"), Some("alice"));
    // All of that from one fetch of the key set.
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);

    let error = |r: (u16, Option<String>, Option<String>)| (r.0, r.1.unwrap_or_default());
    // A flipped signature byte.
    let good = s.token("RS256", Some("rsa-1"), &claims);
    let (head, sig) = good.rsplit_once('.').expect("jws");
    let mut raw = B64.decode(sig).expect("b64");
    raw[0] ^= 1;
    let forged = format!("{head}.{}", B64.encode(raw));
    assert_eq!(
        error(call(&gw, "jwks", &forged).await),
        (401, "VerifyError::InvalidSignature".into())
    );
    // `alg: none`, and HS256 "signed" with the RSA public key: neither is allowed.
    assert_eq!(
        error(call(&gw, "jwks", &s.token("none", Some("rsa-1"), &claims)).await),
        (401, "VerifyError::AlgorithmNotAllowed".into())
    );
    assert_eq!(
        error(call(&gw, "jwks", &s.token("HS256", Some("rsa-1"), &claims)).await),
        (401, "VerifyError::AlgorithmNotAllowed".into())
    );
    // Garbage, and an RS256 token on a route that only allows ES256.
    assert_eq!(
        error(call(&gw, "jwks", "not.a-token").await),
        (401, "VerifyError::Malformed".into())
    );
    assert_eq!(
        error(call(&gw, "inline", &good).await),
        (401, "VerifyError::AlgorithmNotAllowed".into())
    );
    // A `crit` parameter nobody understands.
    let crit = format!(
        "{}.{}.{}",
        B64.encode(json!({"alg": "HS256", "crit": ["exp-magic"], "exp-magic": 1}).to_string()),
        B64.encode(claims.to_string()),
        "c2ln"
    );
    assert_eq!(
        error(call(&gw, "secret", &crit).await),
        (401, "VerifyError::UnsupportedCritical".into())
    );
}

/// A gateway with one verifier route `r` on the JWKS of a fresh server.
struct JwksSetup {
    s: Signers,
    jwks: JwksServer,
    up: TestUpstream,
    routes: String,
}

impl JwksSetup {
    async fn new() -> Self {
        let s = Signers::new();
        let up = TestUpstream::start("app").await;
        let jwks = JwksServer::start(s.jwks(false)).await;
        let routes = verifier_route(
            "r",
            &format!("jwks_url = \"{}\"", jwks.url()),
            "\"RS256\"",
            &format!(", http = [\"{}\"]", jwks.addr),
        );
        Self {
            s,
            jwks,
            up,
            routes,
        }
    }
}

#[tokio::test]
async fn rotation_is_picked_up_on_an_unknown_kid() {
    let JwksSetup {
        s,
        jwks,
        up,
        routes,
    } = JwksSetup::new().await;
    let gw = TestGateway::start(&gateway_config(
        &up,
        "min_refresh_interval = \"0s\"",
        &routes,
    ))
    .await;
    let claims = json!({ "sub": "bob" });
    assert_eq!(
        call(&gw, "r", &s.token("RS256", Some("rsa-1"), &claims))
            .await
            .0,
        200
    );
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);

    *jwks.doc.lock().expect("doc") = s.jwks(true);
    assert_eq!(
        call(&gw, "r", &s.token("RS256", Some("rsa-2"), &claims))
            .await
            .0,
        200
    );
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_cause_no_refetch_storm() {
    let JwksSetup {
        s,
        jwks,
        up,
        routes,
    } = JwksSetup::new().await;
    let gw = Arc::new(
        TestGateway::start(&gateway_config(
            &up,
            "min_refresh_interval = \"1h\"",
            &routes,
        ))
        .await,
    );
    let ghost = s.token("RS256", Some("ghost"), &json!({ "sub": "eve" }));
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (gw, ghost) = (Arc::clone(&gw), ghost.clone());
        tasks.push(tokio::spawn(async move { call(&gw, "r", &ghost).await }));
    }
    for t in tasks {
        let (status, error, _) = t.await.expect("task");
        assert_eq!(
            (status, error.as_deref()),
            (401, Some("VerifyError::UnknownKey"))
        );
    }
    // One fetch for all 40 concurrent requests (which also waited for the 16 instance
    // slots rather than failing), and none more within the interval.
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);
    assert_eq!(call(&gw, "r", &ghost).await.0, 401);
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);
    let fetched = gw
        .plugin_services
        .as_ref()
        .map(|s| s.key_sets.fetch_count(&jwks.url()));
    assert_eq!(fetched, Some(1));
}

#[tokio::test]
async fn stale_keys_serve_while_the_jwks_server_is_down() {
    let JwksSetup {
        s,
        jwks,
        up,
        routes,
    } = JwksSetup::new().await;
    let gw = TestGateway::start(&gateway_config(
        &up,
        "ttl = \"1ms\"\nmin_refresh_interval = \"0s\"",
        &routes,
    ))
    .await;
    let token = s.token("RS256", Some("rsa-1"), &json!({ "sub": "carol" }));
    assert_eq!(call(&gw, "r", &token).await.0, 200);
    jwks.up.store(false, Ordering::SeqCst);
    // Each call finds the set past its 1 ms TTL, tries a refresh, fails, serves stale.
    for _ in 0..3 {
        assert_eq!(call(&gw, "r", &token).await.0, 200);
    }
    assert!(
        jwks.fetches.load(Ordering::SeqCst) >= 2,
        "refreshes were attempted"
    );

    // Without a cached set there is nothing to serve.
    let cold = TestGateway::start(&gateway_config(&up, "", &routes)).await;
    let (status, error, _) = call(&cold, "r", &token).await;
    assert_eq!(
        (status, error.as_deref()),
        (401, Some("VerifyError::KeysUnavailable"))
    );
}

/// A JSON value as a TOML inline value.
fn toml_inline(v: &Value) -> String {
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
