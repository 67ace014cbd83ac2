//! Host policies: rate limits with draft-10 headers, CORS, IP allow/deny.

use bytes::Bytes;
use http_body_util::Full;

use crate::support::client::{Conn, get, request};
use crate::support::upstream::TestUpstream;
use crate::support::{LISTENER, TestGateway};

#[tokio::test]
async fn rate_limit_headers_then_429_after_the_quota() {
    let config = format!(
        r#"version = 1
{LISTENER}
[rate_limits.burst]
quota = 3
window = "1m"
key = "client_ip"
legacy_headers = true

[rate_limits.by-key]
quota = 100
window = "1h"
key = "header:x-api-key"

[[routes]]
id = "limited"
rate_limits = ["burst", "by-key"]
respond = {{ body = "ok" }}
"#
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    for remaining in [2, 1, 0] {
        let reply = conn.send(get("h", "/")).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("ratelimit-policy"),
            Some("\"burst\";q=3;w=60, \"by-key\";q=100;w=3600")
        );
        let state = reply.header("ratelimit").expect("RateLimit field");
        assert!(
            state.starts_with(&format!("\"burst\";r={remaining};t=")),
            "{state}"
        );
        assert_eq!(
            reply.header("x-ratelimit-remaining"),
            Some(remaining.to_string().as_str())
        );
    }
    let reply = conn.send(get("h", "/")).await;
    assert_eq!(reply.status, 429);
    let retry_after: u64 = reply
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(
        (1..=20).contains(&retry_after),
        "GCRA: one cell is 20 s, got {retry_after}"
    );
    assert!(
        reply
            .header("ratelimit")
            .is_some_and(|s| s.starts_with("\"burst\";r=0;t="))
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(reply.json()["status"], 429);
}

#[tokio::test]
async fn header_keyed_limits_count_each_key_apart() {
    let config = format!(
        r#"version = 1
{LISTENER}
[rate_limits.per-key]
quota = 1
window = "1m"
key = "header:x-api-key"

[[routes]]
id = "limited"
rate_limits = ["per-key"]
respond = {{ body = "ok" }}
"#
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let with_key = |k: &str| {
        request("GET", "h", "/")
            .header("x-api-key", k)
            .body(Full::new(Bytes::new()))
            .expect("req")
    };
    assert_eq!(conn.send(with_key("alice")).await.status, 200);
    assert_eq!(conn.send(with_key("alice")).await.status, 429);
    assert_eq!(conn.send(with_key("bob")).await.status, 200);
}

#[tokio::test]
async fn cors_preflight_is_answered_by_the_gateway() {
    let up = TestUpstream::start("svc").await;
    let config = format!(
        r#"version = 1
{LISTENER}
[upstreams.svc]
targets = ["{}"]

[[routes]]
id = "api"
methods = ["PUT", "GET"]
upstream = "svc"
[routes.cors]
allow_origins = ["https://app.example.com"]
allow_methods = ["GET", "PUT"]
allow_headers = ["x-token", "content-type"]
expose_headers = ["x-upstream"]
allow_credentials = true
max_age = "10m"
"#,
        up.addr
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let preflight = |origin: &str, method: &str| {
        request("OPTIONS", "h", "/items/1")
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "X-Token")
            .body(Full::new(Bytes::new()))
            .expect("req")
    };
    let reply = conn.send(preflight("https://app.example.com", "PUT")).await;
    assert_eq!(reply.status, 204);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("600"));
    assert!(
        reply
            .header("access-control-allow-methods")
            .is_some_and(|m| m.contains("PUT"))
    );

    let reply = conn.send(preflight("https://evil.example", "PUT")).await;
    assert_eq!(reply.status, 403);
    assert!(reply.header("access-control-allow-origin").is_none());
    assert_eq!(up.requests(), 0, "preflights never reach the upstream");

    let actual = request("GET", "h", "/items/1")
        .header("origin", "https://app.example.com")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let reply = conn.send(actual).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        reply.header("access-control-expose-headers"),
        Some("x-upstream")
    );
    assert!(reply.headers.get_all("vary").iter().any(|v| v == "Origin"));
}

#[tokio::test]
async fn ip_policies_deny_and_allow() {
    let config = format!(
        r#"version = 1
{LISTENER}trusted_proxies = ["127.0.0.1/32"]

[[routes]]
id = "internal"
path = {{ prefix = "/internal" }}
ip = {{ allow = ["10.0.0.0/8"] }}
respond = {{ body = "internal" }}

[[routes]]
id = "public"
path = {{ prefix = "/public" }}
ip = {{ deny = ["203.0.113.0/24"] }}
respond = {{ body = "public" }}
"#
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let reply = conn.send(get("h", "/internal")).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["type"], "urn:portcullis:problem:ip-denied");

    let via_proxy = |xff: &str, path: &str| {
        request("GET", "h", path)
            .header("x-forwarded-for", xff)
            .body(Full::new(Bytes::new()))
            .expect("req")
    };
    assert_eq!(
        conn.send(via_proxy("10.1.2.3", "/internal")).await.status,
        200
    );
    assert_eq!(
        conn.send(via_proxy("203.0.113.50", "/public")).await.status,
        403
    );
    assert_eq!(
        conn.send(via_proxy("198.51.100.1", "/public")).await.status,
        200
    );
    assert_eq!(conn.send(get("h", "/public")).await.status, 200);
}
