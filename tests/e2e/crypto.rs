//! Host crypto: tokens signed at test time (aws-lc-rs), verified through the plugin import
//! by the `verifier` test plugin, with key sets served by a JWKS server on 127.0.0.1:0.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use http_body_util::Full;
use portcullis_test_plugins as plugins;
use serde_json::json;

use crate::support::client::{Conn, request};
use crate::support::jwt::{JwksServer, SECRET, Signers, toml_inline};
use crate::support::upstream::TestUpstream;
use crate::support::{LISTENER, TestGateway};

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
    // Refreshes run behind the stale answers; they were started (each call yields to
    // the test's single-threaded runtime, which runs them).
    let started = gw
        .plugin_services
        .as_ref()
        .map_or(0, |s| s.key_sets.fetch_count(&jwks.url()));
    assert!(started >= 2, "refreshes were attempted: {started}");

    // Without a cached set there is nothing to serve.
    let cold = TestGateway::start(&gateway_config(&up, "", &routes)).await;
    let (status, error, _) = call(&cold, "r", &token).await;
    assert_eq!(
        (status, error.as_deref()),
        (401, Some("VerifyError::KeysUnavailable"))
    );
}

/// Issue 10, finding 9: past its TTL a key set is served at once while a background
/// refresh runs; before, every request waited on the fetch, here past the plugin's 1 s
/// deadline (503).
#[tokio::test]
async fn a_stale_key_set_serves_at_once_while_a_slow_refresh_runs() {
    let JwksSetup { s, jwks, up, .. } = JwksSetup::new().await;
    let routes = format!(
        "[[routes]]\nid = \"r\"\npath = {{ prefix = \"/r\" }}\nupstream = \"app\"\n\
         [[routes.plugins]]\nplugin = \"{}\"\nconfig = {{ jwks_url = \"{}\", algorithms = [\"RS256\"] }}\n\
         grants = {{ crypto = true, http = [\"{}\"] }}\nbudgets = {{ deadline = \"1s\" }}\n",
        plugins::VERIFIER,
        jwks.url(),
        jwks.addr
    );
    let gw = TestGateway::start(&gateway_config(
        &up,
        "ttl = \"1ms\"\nmin_refresh_interval = \"0s\"\nfetch_timeout = \"30s\"",
        &routes,
    ))
    .await;
    let token = s.token("RS256", Some("rsa-1"), &json!({ "sub": "dave" }));
    assert_eq!(call(&gw, "r", &token).await.0, 200);
    // The identity provider turns slow: refreshes now take far longer than the deadline.
    jwks.delay_ms.store(30_000, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(call(&gw, "r", &token).await.0, 200);
    }
}
