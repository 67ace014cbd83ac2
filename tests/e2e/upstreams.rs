//! Upstream behaviour: balancing, retries on connect failure, passive health, and the
//! 502/503/504 answers — none of which may leak internal addresses.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;

use crate::support::client::{Conn, get, get_once, request};
use crate::support::upstream::TestUpstream;
use crate::support::{LISTENER, TestGateway};

/// An address on which nothing listens (bound, then released).
async fn dead_addr() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr")
}

fn config(targets: &[SocketAddr], upstream_extra: &str) -> String {
    let list = targets
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "version = 1\n{LISTENER}\n[upstreams.svc]\ntargets = [{list}]\n{upstream_extra}\n\
         [[routes]]\nid = \"all\"\nupstream = \"svc\"\n"
    )
}

#[tokio::test]
async fn round_robin_spreads_requests() {
    let a = TestUpstream::start("a").await;
    let b = TestUpstream::start("b").await;
    let gw = TestGateway::start(&config(&[a.addr, b.addr], "")).await;
    let mut conn = Conn::h1(gw.addr()).await;
    for _ in 0..10 {
        assert_eq!(conn.send(get("h", "/")).await.status, 200);
    }
    assert_eq!(a.requests(), 5);
    assert_eq!(b.requests(), 5);
}

#[tokio::test]
async fn least_request_avoids_the_busy_target() {
    let a = TestUpstream::start("a").await;
    let b = TestUpstream::start("b").await;
    let gw = TestGateway::start(&config(&[a.addr, b.addr], "balance = \"least_request\"")).await;
    let addr = gw.addr();
    let slow = tokio::spawn(async move { get_once(addr, "h", "/delay/1500").await });
    // Wait until one target holds the slow request.
    tokio::select! {
        _ = a.arrived(1) => {},
        _ = b.arrived(1) => {},
    }
    let busy = if a.requests() == 1 { "a" } else { "b" };
    let mut conn = Conn::h1(addr).await;
    for _ in 0..6 {
        let reply = conn.send(get("h", "/")).await;
        assert_ne!(reply.header("x-upstream"), Some(busy));
    }
    assert_eq!(slow.await.expect("slow").status, 200);
}

#[tokio::test]
async fn idempotent_requests_retry_on_connect_failure() {
    let live = TestUpstream::start("live").await;
    let dead = dead_addr().await;
    let gw = TestGateway::start(&config(&[dead, live.addr], "retries = 1")).await;
    for _ in 0..4 {
        let reply = get_once(gw.addr(), "h", "/").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-upstream"), Some("live"));
        // The retried request is the whole request, headers and all.
        let seen = &reply.json()["headers"];
        assert_eq!(seen["host"], serde_json::json!(["h"]), "{seen}");
        assert!(seen["x-forwarded-for"].is_array(), "{seen}");
        assert!(seen["x-request-id"].is_array(), "{seen}");
    }
}

#[tokio::test]
async fn refused_then_ejected_gives_502_then_503() {
    let dead = dead_addr().await;
    let gw = TestGateway::start(&config(&[dead], "eject_for = \"1m\"")).await;
    let post = request("POST", "h", "/")
        .body(Full::new(Bytes::from_static(b"data")))
        .expect("req");
    let reply = Conn::h1(gw.addr()).await.send(post).await;
    assert_eq!(reply.status, 502);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert!(
        !reply.text().contains(&dead.port().to_string()),
        "{}",
        reply.text()
    );

    let reply = get_once(gw.addr(), "h", "/").await;
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.json()["type"],
        "urn:portcullis:problem:no-healthy-upstream"
    );
}

#[tokio::test]
async fn slow_upstream_gives_504() {
    let up = TestUpstream::start("slow").await;
    let gw = TestGateway::start(&config(&[up.addr], "request_timeout = \"200ms\"")).await;
    let reply = get_once(gw.addr(), "h", "/delay/3000").await;
    assert_eq!(reply.status, 504);
    let body = reply.json();
    assert_eq!(body["status"], 504);
    assert!(!reply.text().contains("127.0.0.1"));
    // Upstream status codes other than ours pass through untouched.
    let reply = get_once(gw.addr(), "h", "/status/418").await;
    assert_eq!(reply.status, 418);
}
