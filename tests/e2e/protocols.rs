//! What crosses the gateway: HTTP/1.1, h2c, headers (hop-by-hop, X-Forwarded-*),
//! streamed bodies, connection reuse and WebSocket upgrades.

use bytes::Bytes;
use http::Version;
use http_body_util::Full;

use crate::support::client::{Conn, get, request};
use crate::support::upstream::TestUpstream;
use crate::support::{LISTENER, TestGateway};

fn proxy_config(upstream: std::net::SocketAddr, extra_listener: &str) -> String {
    format!(
        r#"version = 1
{LISTENER}{extra_listener}
[upstreams.svc]
targets = ["{upstream}"]

[[routes]]
id = "all"
upstream = "svc"
"#
    )
}

#[tokio::test]
async fn forwarded_headers_are_set_and_client_copies_replaced() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&proxy_config(up.addr, "")).await;
    let req = request("GET", "shop.example.com", "/p")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("connection", "x-drop-me")
        .header("x-drop-me", "hop")
        .header("keep-alive", "timeout=5")
        .header("x-keep", "1")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let reply = Conn::h1(gw.addr()).await.send(req).await;
    assert_eq!(reply.status, 200);
    let seen = &reply.json()["headers"];
    assert_eq!(seen["x-forwarded-for"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(seen["x-forwarded-proto"], serde_json::json!(["http"]));
    assert_eq!(
        seen["x-forwarded-host"],
        serde_json::json!(["shop.example.com"])
    );
    assert_eq!(seen["host"], serde_json::json!(["shop.example.com"]));
    assert!(
        seen.get("x-drop-me").is_none(),
        "Connection-named header forwarded"
    );
    assert!(seen.get("keep-alive").is_none());
    assert_eq!(seen["x-keep"], serde_json::json!(["1"]));
    assert!(
        seen["x-request-id"][0]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    // The upstream's own hop-by-hop header stays on its side.
    assert!(reply.headers.get("x-hop").is_none());
    assert_eq!(reply.header("x-upstream"), Some("svc"));
}

#[tokio::test]
async fn trusted_proxies_extend_the_chain() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&proxy_config(
        up.addr,
        "trusted_proxies = [\"127.0.0.0/8\"]\n",
    ))
    .await;
    let req = request("GET", "h", "/")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let seen = Conn::h1(gw.addr()).await.send(req).await.json();
    assert_eq!(
        seen["headers"]["x-forwarded-for"],
        serde_json::json!(["203.0.113.7, 127.0.0.1"])
    );
    assert_eq!(
        seen["headers"]["x-forwarded-proto"],
        serde_json::json!(["https"])
    );
}

#[tokio::test]
async fn h2c_with_prior_knowledge_is_served() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&proxy_config(up.addr, "")).await;
    let mut conn = Conn::h2c(gw.addr()).await;
    let reply = conn.send(get("h2.example", "/over-h2")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, Version::HTTP_2);
    let seen = reply.json();
    assert_eq!(seen["path"], "/over-h2");
    assert_eq!(seen["headers"]["host"], serde_json::json!(["h2.example"]));
}

#[tokio::test]
async fn keep_alive_connections_to_the_upstream_are_reused() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&proxy_config(up.addr, "")).await;
    let mut conn = Conn::h1(gw.addr()).await;
    for i in 0..20 {
        let reply = conn.send(get("h", &format!("/r{i}"))).await;
        assert_eq!(reply.status, 200);
    }
    assert_eq!(up.requests(), 20);
    // One client asking in turn needs one upstream connection, kept alive throughout.
    assert_eq!(up.connections(), 1, "upstream connections for 20 requests");
}

#[tokio::test]
async fn large_bodies_stream_through_both_ways() {
    let up = TestUpstream::start("svc").await;
    let config = proxy_config(up.addr, "[listeners.limits]\nmax_body_bytes = 4194304\n");
    let gw = TestGateway::start(&config).await;
    let body = vec![b'x'; 3 * 1024 * 1024];
    let req = request("POST", "h", "/upload")
        .body(Full::new(Bytes::from(body)))
        .expect("req");
    let reply = Conn::h1(gw.addr()).await.send(req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["body_len"], 3 * 1024 * 1024);
}

#[tokio::test]
async fn websocket_upgrades_pass_through() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&proxy_config(up.addr, "")).await;
    crate::support::client::open_tunnel(gw.addr()).await;
}

#[tokio::test]
async fn h2c_to_the_upstream_when_configured() {
    let up = TestUpstream::start("svc").await;
    let config = format!(
        "version = 1\n{LISTENER}\n[upstreams.svc]\ntargets = [\"{}\"]\nhttp2 = true\n\n\
         [[routes]]\nid = \"all\"\nupstream = \"svc\"\n",
        up.addr
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    for _ in 0..5 {
        let reply = conn.send(get("h", "/h2c")).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["version"], "HTTP/2.0");
    }
    assert_eq!(up.connections(), 1, "one multiplexed HTTP/2 connection");
}
