//! Route choice: hosts (exact and wildcard), methods, paths (exact, prefix, template,
//! regex), headers, query, the documented priority, and path rewrites.

use crate::support::client::{Conn, get, get_once, request};
use crate::support::upstream::TestUpstream;
use crate::support::{LISTENER, TestGateway};
use bytes::Bytes;
use http_body_util::Full;

fn responder(id: &str, extra: &str) -> String {
    format!("[[routes]]\nid = \"{id}\"\n{extra}\nrespond = {{ body = \"{id}\" }}\n")
}

#[tokio::test]
async fn priority_between_overlapping_routes_is_deterministic() {
    let config = format!(
        "version = 1\n{LISTENER}\n{}{}{}{}{}{}{}",
        responder("catch-all", "path = { prefix = \"/\" }"),
        responder(
            "wild-host",
            "hosts = [\"*.example.com\"]\npath = { prefix = \"/\" }"
        ),
        responder(
            "exact-host",
            "hosts = [\"api.example.com\"]\npath = { prefix = \"/\" }"
        ),
        responder(
            "user-template",
            "hosts = [\"*.example.com\"]\npath = { template = \"/users/{id}\" }"
        ),
        responder(
            "user-me",
            "hosts = [\"*.example.com\"]\npath = { exact = \"/users/me\" }"
        ),
        responder("report-regex", "path = { regex = \"/reports/[0-9]{4}\" }"),
        responder("forced", "path = { prefix = \"/forced\" }\npriority = 10"),
    );
    let gw = TestGateway::start(&config).await;
    let cases = [
        ("api.example.com", "/users/1", "exact-host"),
        ("www.example.com", "/users/1", "user-template"),
        ("www.example.com", "/users/me", "user-me"),
        ("a.b.example.com", "/other", "wild-host"),
        ("example.com", "/other", "catch-all"),
        ("WWW.EXAMPLE.COM:8080", "/users/7", "user-template"),
        ("other.test", "/reports/2024", "report-regex"),
        ("other.test", "/reports/20245", "catch-all"),
        ("api.example.com", "/forced/x", "forced"),
    ];
    for (host, path, want) in cases {
        let reply = get_once(gw.addr(), host, path).await;
        assert_eq!(reply.text(), want, "{host}{path}");
    }
}

#[tokio::test]
async fn methods_headers_and_query_narrow_the_match() {
    let config = format!(
        "version = 1\n{LISTENER}\n{}{}{}{}",
        responder("get-only", "path = { exact = \"/m\" }\nmethods = [\"GET\"]"),
        responder(
            "canary",
            "path = { exact = \"/h\" }\nheaders = [{ name = \"x-canary\", exact = \"1\" }]"
        ),
        responder(
            "beta",
            "path = { exact = \"/h\" }\nquery = [{ name = \"beta\", regex = \"yes|true\" }]"
        ),
        responder("plain", "path = { exact = \"/h\" }"),
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    assert_eq!(conn.send(get("h", "/m")).await.text(), "get-only");
    let delete = request("DELETE", "h", "/m")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let reply = conn.send(delete).await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );

    let canary = request("GET", "h", "/h")
        .header("x-canary", "1")
        .body(Full::new(Bytes::new()))
        .expect("req");
    assert_eq!(conn.send(canary).await.text(), "canary");
    assert_eq!(conn.send(get("h", "/h?beta=true")).await.text(), "beta");
    assert_eq!(conn.send(get("h", "/h?beta=no")).await.text(), "plain");
    assert_eq!(conn.send(get("h", "/h")).await.text(), "plain");
}

#[tokio::test]
async fn rewrites_reach_the_upstream() {
    let up = TestUpstream::start("svc").await;
    let config = format!(
        r#"version = 1
{LISTENER}
[upstreams.svc]
targets = ["{addr}"]

[[routes]]
id = "strip"
path = {{ prefix = "/api" }}
rewrite = {{ strip_prefix = true }}
upstream = "svc"

[[routes]]
id = "template"
path = {{ template = "/users/{{id}}/avatar" }}
rewrite = {{ template = "/v2/accounts/{{id}}/picture" }}
upstream = "svc"
"#,
        addr = up.addr
    );
    let gw = TestGateway::start(&config).await;
    let reply = get_once(gw.addr(), "h", "/api/things?x=1").await;
    assert_eq!(reply.json()["path"], "/things");
    assert_eq!(reply.json()["query"], "x=1");
    let reply = get_once(gw.addr(), "h", "/api").await;
    assert_eq!(reply.json()["path"], "/");
    let reply = get_once(gw.addr(), "h", "/users/42/avatar").await;
    assert_eq!(reply.json()["path"], "/v2/accounts/42/picture");
}

#[tokio::test]
async fn dot_segments_cannot_escape_a_route() {
    let config = format!(
        "version = 1\n{LISTENER}\n{}",
        responder("public", "path = { prefix = \"/public\" }"),
    );
    let gw = TestGateway::start(&config).await;
    assert_eq!(get_once(gw.addr(), "h", "/public/a").await.status, 200);
    let reply = crate::support::client::raw(
        gw.addr(),
        b"GET /public/../admin HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(crate::support::client::raw_status(&reply), 404, "{reply}");
}

#[tokio::test]
async fn no_route_is_a_problem_json_404_with_the_request_id() {
    let config = format!(
        "version = 1\n{LISTENER}\n{}",
        responder("only", "path = { exact = \"/x\" }")
    );
    let gw = TestGateway::start(&config).await;
    let req = request("GET", "h", "/nowhere")
        .header("x-request-id", "trace-abc.123")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let reply = Conn::h1(gw.addr()).await.send(req).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("x-request-id"), Some("trace-abc.123"));
    let body = reply.json();
    assert_eq!(body["status"], 404);
    assert_eq!(body["title"], "Not Found");
    assert_eq!(body["request_id"], "trace-abc.123");
    assert_eq!(body["type"], "urn:portcullis:problem:no-route");
}
