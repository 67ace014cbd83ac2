//! The built-in `jwt-auth` plugin in the real gateway: tokens signed at test time (RS256,
//! ES256, HS256), keys from a JWKS server on 127.0.0.1:0, and the usual attacks.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::KeyPair;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};

use crate::support::client::{Conn, Reply, request};
use crate::support::jwt::{JwksServer, SECRET, Signers};
use crate::support::upstream::TestUpstream;
use crate::support::{LISTENER, TestGateway};

const IDP: &str = "https://idp.test";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Claims that pass every check of the `api` route.
fn good(sub: &str) -> Value {
    json!({
        "iss": IDP, "sub": sub, "aud": ["orders", "other"],
        "exp": now() + 600, "nbf": now() - 10,
        "scope": "orders:read profile", "email": format!("{sub}@example.com"),
    })
}

struct Setup {
    s: Signers,
    jwks: JwksServer,
    up: TestUpstream,
}

impl Setup {
    async fn new() -> Self {
        let s = Signers::new();
        let jwks = JwksServer::start(s.jwks(false)).await;
        let up = TestUpstream::start("app").await;
        Self { s, jwks, up }
    }

    fn config(&self, key_sets: &str) -> String {
        let secret = std::str::from_utf8(SECRET).expect("ascii secret");
        format!(
            r#"version = 1
{LISTENER}[upstreams.app]
targets = ["{up}"]
[plugins]
max_instances = 32
cache_dir = "{{dir}}/cache"
[plugins.key_sets]
{key_sets}

[[routes]]
id = "api"
upstream = "app"

[[routes.plugins]]
plugin = "jwt-auth"
grants = {{ crypto = true, http = ["{jwks}"] }}
budgets = {{ deadline = "5s" }}

[routes.plugins.config]
realm = "orders"
required_scopes = ["orders:read"]
claims = ["email"]
forward = {{ subject = "x-user", scopes = "x-scopes", claims = {{ email = "x-email" }} }}

[[routes.plugins.config.issuers]]
issuer = "{IDP}"
jwks_url = "{url}"
algorithms = ["RS256", "ES256"]
audiences = ["orders"]

[[routes.plugins.config.issuers]]
issuer = "internal"
secret = "{secret}"
algorithms = ["HS256"]
"#,
            up = self.up.addr,
            jwks = self.jwks.addr,
            url = self.jwks.url(),
        )
    }
}

async fn call(conn: &mut Conn, auth: Option<&str>) -> Reply {
    let mut req = request("GET", "h", "/orders").header("x-user", "forged-by-client");
    if let Some(token) = auth {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    conn.send(req.body(Full::new(Bytes::new())).expect("request"))
        .await
}

/// Status and `WWW-Authenticate` of a refused request.
fn refusal(reply: &Reply) -> (u16, String) {
    (
        reply.status.as_u16(),
        reply
            .header("www-authenticate")
            .unwrap_or_default()
            .to_owned(),
    )
}

const MISSING: &str = "Bearer realm=\"orders\"";

fn invalid(why: &str) -> String {
    format!("Bearer realm=\"orders\", error=\"invalid_token\", error_description=\"{why}\"")
}

const INSUFFICIENT: &str =
    "Bearer realm=\"orders\", error=\"insufficient_scope\", scope=\"orders:read\"";

#[tokio::test]
async fn valid_tokens_reach_the_upstream_with_the_verified_identity_only() {
    let t = Setup::new().await;
    let gw = TestGateway::start(&t.config("")).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let mut internal = good("svc");
    internal["iss"] = json!("internal");
    for (alg, kid, claims) in [
        ("RS256", Some("rsa-1"), good("alice")),
        ("ES256", Some("ec-1"), good("bob")),
        ("HS256", None, internal),
    ] {
        let sub = claims["sub"].as_str().unwrap_or_default().to_owned();
        let reply = call(&mut conn, Some(&t.s.token(alg, kid, &claims))).await;
        assert_eq!(reply.status, 200, "{alg}: {}", reply.text());
        let echo = reply.json();
        let headers = &echo["headers"];
        // The client's own `x-user` is gone; the gateway's is the token's subject.
        assert_eq!(headers["x-user"], json!([sub]), "{alg}");
        assert_eq!(headers["x-scopes"], json!(["orders:read profile"]), "{alg}");
        assert_eq!(
            headers["x-email"],
            json!([format!("{sub}@example.com")]),
            "{alg}"
        );
        // The token itself stays at the gateway.
        assert!(headers.get("authorization").is_none(), "{alg}: {echo}");
    }
    // One JWKS fetch served both asymmetric families; HS256 needed none.
    assert_eq!(t.jwks.fetches.load(Ordering::SeqCst), 1);
}

/// Issue 10, finding 9: configured key sets are fetched when the gateway starts, so the
/// first requests do not wait on the identity provider, and an identity provider that is
/// down after the start costs nothing until the TTL.
#[tokio::test]
async fn configured_key_sets_are_fetched_at_start() {
    let t = Setup::new().await;
    let gw = TestGateway::start(&t.config("")).await;
    let services = gw.plugin_services.clone().expect("plugin services");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !services.key_sets.configured_fetched() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the key set was not fetched at start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(t.jwks.fetches.load(Ordering::SeqCst), 1);
    t.jwks.up.store(false, Ordering::SeqCst);
    let mut conn = Conn::h1(gw.addr()).await;
    let reply = call(
        &mut conn,
        Some(&t.s.token("RS256", Some("rsa-1"), &good("ann"))),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(t.jwks.fetches.load(Ordering::SeqCst), 1);
}

/// A key-set URL that could never be fetched is a config error, found at load.
#[test]
fn a_plain_http_key_set_url_off_loopback_is_a_config_error() {
    let config = format!(
        r#"version = 1
{LISTENER}[upstreams.app]
targets = ["127.0.0.1:9"]
[plugins]
cache_dir = "{{dir}}/cache"

[[routes]]
id = "api"
upstream = "app"
[[routes.plugins]]
plugin = "jwt-auth"
grants = {{ crypto = true, http = ["idp.example.com"] }}
[routes.plugins.config]
[[routes.plugins.config.issuers]]
issuer = "{IDP}"
jwks_url = "http://idp.example.com/jwks.json"
algorithms = ["RS256"]
"#
    );
    let error = crate::support::build_error(&config).expect("a config error");
    assert!(error.contains("allow_http"), "{error}");
    assert!(error.contains("gateway.toml:"), "{error}");
}

#[tokio::test]
async fn the_attack_set_is_refused_with_rfc_6750_answers() {
    let t = Setup::new().await;
    let gw = TestGateway::start(&t.config("min_refresh_interval = \"0s\"")).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let s = &t.s;
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = good("mallory");
        change(&mut c);
        c
    };

    let cases: Vec<(&str, Option<String>, u16, String)> = vec![
        ("missing", None, 401, MISSING.into()),
        (
            "alg none",
            Some(s.token("none", Some("rsa-1"), &good("mallory"))),
            401,
            invalid("algorithm not allowed"),
        ),
        (
            "HS256 signed with the RSA public key",
            Some(Signers::hs256_with(
                s.rsa.public_key().as_ref(),
                Some("rsa-1"),
                &good("mallory"),
            )),
            401,
            invalid("algorithm not allowed"),
        ),
        (
            "expired",
            Some(s.token(
                "RS256",
                Some("rsa-1"),
                &with(&|c| c["exp"] = json!(now() - 3600)),
            )),
            401,
            invalid("token expired"),
        ),
        (
            "nbf in the future",
            Some(s.token(
                "RS256",
                Some("rsa-1"),
                &with(&|c| c["nbf"] = json!(now() + 3600)),
            )),
            401,
            invalid("token not yet valid"),
        ),
        (
            "wrong iss",
            Some(s.token(
                "RS256",
                Some("rsa-1"),
                &with(&|c| c["iss"] = json!("https://evil.test")),
            )),
            401,
            invalid("unknown issuer"),
        ),
        (
            "wrong aud",
            Some(s.token(
                "RS256",
                Some("rsa-1"),
                &with(&|c| c["aud"] = json!("billing")),
            )),
            403,
            INSUFFICIENT.into(),
        ),
        (
            "missing scope",
            Some(s.token(
                "RS256",
                Some("rsa-1"),
                &with(&|c| c["scope"] = json!("profile")),
            )),
            403,
            INSUFFICIENT.into(),
        ),
        (
            "malformed",
            Some("not.a-jwt".into()),
            401,
            invalid("malformed token"),
        ),
        (
            "oversized",
            Some(format!("{}.{}.sig", "e".repeat(10), "a".repeat(20_000))),
            401,
            invalid("token too large"),
        ),
        (
            "unknown kid",
            Some(s.token("RS256", Some("who-knows"), &good("mallory"))),
            401,
            invalid("unknown signing key"),
        ),
        (
            "forged signature",
            Some({
                let t = s.token("RS256", Some("rsa-1"), &good("mallory"));
                let mut chars: Vec<char> = t.chars().collect();
                let i = chars.len() - 5;
                chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
                chars.into_iter().collect()
            }),
            401,
            invalid("invalid signature"),
        ),
    ];
    for (name, token, status, challenge) in cases {
        let reply = call(&mut conn, token.as_deref()).await;
        assert_eq!(
            refusal(&reply),
            (status, challenge),
            "{name}: {}",
            reply.text()
        );
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json"),
            "{name}"
        );
    }

    // A good token in the wrong place is no token at all: no `error` in the challenge.
    let token = s.token("RS256", Some("rsa-1"), &good("alice"));
    for req in [
        request("GET", "h", &format!("/orders?access_token={token}")),
        request("GET", "h", "/orders").header("x-token", token.as_str()),
        request("GET", "h", "/orders").header("cookie", format!("token={token}")),
        request("GET", "h", "/orders").header("authorization", format!("Basic {token}")),
    ] {
        let reply = conn
            .send(req.body(Full::new(Bytes::new())).expect("request"))
            .await;
        assert_eq!(refusal(&reply), (401, MISSING.into()));
    }
    assert_eq!(
        t.up.requests(),
        0,
        "no refused request reached the upstream"
    );
}

#[tokio::test]
async fn key_rotation_adds_the_new_kid_and_drops_the_old_one() {
    let t = Setup::new().await;
    let gw = TestGateway::start(&t.config("min_refresh_interval = \"0s\"")).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let old = t.s.token("RS256", Some("rsa-1"), &good("alice"));
    assert_eq!(call(&mut conn, Some(&old)).await.status, 200);

    *t.jwks.doc.lock().expect("doc") = t.s.jwks(true);
    let new = t.s.token("RS256", Some("rsa-2"), &good("alice"));
    assert_eq!(call(&mut conn, Some(&new)).await.status, 200);
    // The refetch that found rsa-2 also dropped rsa-1.
    let reply = call(&mut conn, Some(&old)).await;
    assert_eq!(refusal(&reply), (401, invalid("unknown signing key")));
}

#[tokio::test]
async fn an_unreachable_jwks_is_503_without_cached_keys_and_harmless_with_them() {
    let t = Setup::new().await;
    let token = t.s.token("RS256", Some("rsa-1"), &good("alice"));

    t.jwks.up.store(false, Ordering::SeqCst);
    let cold = TestGateway::start(&t.config("")).await;
    let reply = call(&mut Conn::h1(cold.addr()).await, Some(&token)).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.header("retry-after"), Some("5"));
    assert_eq!(
        reply.json()["type"],
        "urn:portcullis:problem:keys-unavailable"
    );

    t.jwks.up.store(true, Ordering::SeqCst);
    let warm = TestGateway::start(&t.config("ttl = \"1ms\"\nmin_refresh_interval = \"0s\"")).await;
    let mut conn = Conn::h1(warm.addr()).await;
    assert_eq!(call(&mut conn, Some(&token)).await.status, 200);
    t.jwks.up.store(false, Ordering::SeqCst);
    // Past its TTL the set cannot be refreshed; the cached keys keep serving.
    assert_eq!(call(&mut conn, Some(&token)).await.status, 200);
}
