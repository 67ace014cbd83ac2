//! A whole pipeline of built-in plugins in the real gateway: jwt-auth → rate limit keyed by
//! the verified subject → validate (Petstore) → transform → upstream, as a user composes it.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::client::{Conn, Reply, json_request};
use crate::support::jwt::{Signers, toml_inline};
use crate::support::upstream::TestUpstream;
use crate::support::{LISTENER, TestGateway};
use crate::validate::petstore_path;

fn token(s: &Signers, sub: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    s.token(
        "RS256",
        Some("rsa-1"),
        &json!({ "iss": "https://idp.test", "sub": sub, "aud": "petstore", "exp": now + 600 }),
    )
}

async fn send(
    conn: &mut Conn,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    conn.send(json_request(method, target, &headers, body.as_ref()))
        .await
}

#[tokio::test]
async fn jwt_auth_then_a_limit_by_subject_then_validate_then_transform() {
    let s = Signers::new();
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}[plugins]
max_instances = 16
cache_dir = "{{dir}}/cache"
[upstreams.app]
targets = ["{up}"]
[rate_limits.per-sub]
quota = 3
window = "1h"
key = "subject"

[[routes]]
id = "petstore"
upstream = "app"
rate_limits = ["per-sub"]

[[routes.plugins]]
plugin = "jwt-auth"
grants = {{ crypto = true }}
[routes.plugins.config]
realm = "petstore"
forward = {{ subject = "x-user" }}
[[routes.plugins.config.issuers]]
issuer = "https://idp.test"
jwks = {jwks}
algorithms = ["RS256"]
audiences = ["petstore"]

[[routes.plugins]]
plugin = "validate"
files = {{ document = "{doc}" }}
reuse = {{ max_instances = 2 }}

[[routes.plugins]]
plugin = "transform"
[routes.plugins.config.request.path]
from = "/api/v3/{{rest*}}"
to = "/v3/{{rest}}"
[routes.plugins.config.request.body]
set = {{ "/status" = "pending" }}
"#,
        up = up.addr,
        jwks = toml_inline(&s.jwks(false)),
        doc = petstore_path(),
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let alice = token(&s, "alice");
    let pet = json!({ "name": "Rex", "photoUrls": ["https://img.test/rex.png"] });

    // Valid: verified, counted, checked, rewritten.
    let reply = send(
        &mut conn,
        "POST",
        "/api/v3/pet",
        Some(&alice),
        Some(pet.clone()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echo = reply.json();
    assert_eq!(echo["path"], "/v3/pet", "transform ran after validate");
    assert_eq!(echo["headers"]["x-user"], json!(["alice"]));
    assert!(
        echo["headers"].get("authorization").is_none(),
        "the token stays at the gateway"
    );
    let body: Value =
        serde_json::from_str(echo["body"].as_str().unwrap_or_default()).expect("JSON body");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["name"], "Rex");

    // Invalid for the document: refused by validate (after the limit counted it).
    let reply = send(
        &mut conn,
        "POST",
        "/api/v3/pet",
        Some(&alice),
        Some(json!({ "name": "Rex" })),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.json()["errors"][0]["pointer"], "/body");

    let reply = send(&mut conn, "GET", "/api/v3/pet/1", Some(&alice), None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["path"], "/v3/pet/1");

    // alice has used her three; bob has his own.
    let reply = send(&mut conn, "GET", "/api/v3/pet/1", Some(&alice), None).await;
    assert_eq!(reply.status, 429, "{}", reply.text());
    let reply = send(
        &mut conn,
        "GET",
        "/api/v3/pet/1",
        Some(&token(&s, "bob")),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["headers"]["x-user"], json!(["bob"]));

    // No token: refused first, nothing else runs.
    let reply = send(&mut conn, "POST", "/api/v3/pet", None, Some(pet)).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"petstore\"")
    );

    assert_eq!(
        up.requests(),
        3,
        "only the valid, verified, admitted requests arrived"
    );
}
