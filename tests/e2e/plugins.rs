//! Plugin pipelines: real components built from `tests/plugins/guests`, run by the real
//! gateway in front of a real upstream.

use bytes::Bytes;
use http_body_util::Full;
use portcullis_test_plugins as plugins;

use crate::support::client::{Conn, get, request};
use crate::support::upstream::TestUpstream;
use crate::support::{LISTENER, TestGateway, build_error};

/// The `[plugins]` table for tests: a small pool, and a compile cache inside the test's
/// own folder.
pub(crate) const PLUGINS: &str = "[plugins]\nmax_instances = 64\ncache_dir = \"{dir}/cache\"\n";

pub(crate) fn upstream_block(up: &TestUpstream) -> String {
    format!("[upstreams.app]\ntargets = [\"{}\"]\n", up.addr)
}

pub(crate) fn values(echo: &serde_json::Value, header: &str) -> Vec<String> {
    echo["headers"][header]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_three_plugin_pipeline_edits_requests_in_order_and_responses_in_reverse() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "chain"
upstream = "app"

[[routes.plugins]]
plugin = "{tagger}"
config = {{ tag = "a" }}

[[routes.plugins]]
plugin = "{tagger}"
config = {{ tag = "b", set = {{ x-added = "by-b" }} }}

[[routes.plugins]]
plugin = "{tagger}"
config = {{ tag = "c", remove = ["x-secret"] }}
"#,
        upstream_block(&up),
        tagger = plugins::TAGGER,
    );
    let gw = TestGateway::start(&config).await;
    // The component was compiled once and kept in the on-disk cache for the next start.
    let cached = std::fs::read_dir(gw.dir.path().join("cache")).map(|d| d.count());
    assert!(cached.is_ok_and(|n| n > 0), "compile cache is empty");
    let mut conn = Conn::h1(gw.addr()).await;
    let req = request("GET", "h", "/items")
        .header("x-secret", "do-not-forward")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let reply = conn.send(req).await;
    assert_eq!(reply.status, 200);
    let echo = reply.json();
    assert_eq!(values(&echo, "x-trace"), ["a", "b", "c"]);
    assert_eq!(values(&echo, "x-added"), ["by-b"]);
    assert!(values(&echo, "x-secret").is_empty());
    // The response phase runs in reverse: c first, a last.
    let trace: Vec<&str> = reply
        .headers
        .get_all("x-trace")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(trace, ["c", "b", "a"]);
}

#[tokio::test]
async fn a_short_circuit_answers_without_calling_the_upstream() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "short"
upstream = "app"

[[routes.plugins]]
plugin = "{tagger}"
config = {{ tag = "before" }}

[[routes.plugins]]
plugin = "{responder}"
config = {{ status = 418, body = "answered by a plugin" }}

[[routes.plugins]]
plugin = "{tagger}"
config = {{ tag = "after" }}
"#,
        upstream_block(&up),
        tagger = plugins::TAGGER,
        responder = plugins::RESPONDER,
    );
    let gw = TestGateway::start(&config).await;
    let reply = Conn::h1(gw.addr()).await.send(get("h", "/")).await;
    assert_eq!(reply.status, 418);
    assert_eq!(reply.text(), "answered by a plugin");
    assert_eq!(reply.header("x-answered-by"), Some("responder"));
    // Only the plugin before the responder saw the request, so only it sees the answer.
    assert_eq!(reply.header("x-trace"), Some("before"));
    assert!(reply.header("x-request-id").is_some());
    assert_eq!(up.requests(), 0);
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn a_body_inspecting_plugin_rejects_before_the_upstream_receives_anything() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "guarded"
upstream = "app"

[[routes.plugins]]
plugin = "{guard}"
config = {{ forbidden = "DROP TABLE" }}
budgets = {{ body_bytes = 1024 }}
"#,
        upstream_block(&up),
        guard = plugins::BODY_GUARD,
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let post = |body: &'static str| {
        request("POST", "h", "/orders")
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .expect("request")
    };
    let refused = conn.send(post("name=x; DROP TABLE users")).await;
    assert_eq!(refused.status, 422);
    assert_eq!(up.connections(), 0, "the upstream must see nothing");

    let accepted = conn.send(post("name=x")).await;
    assert_eq!(accepted.status, 200);
    let echo = accepted.json();
    assert_eq!(echo["body_len"], 6);
    assert_eq!(values(&echo, "x-body-length"), ["6"]);

    // Past the plugin's body budget the body is refused before any plugin runs.
    let big = "x".repeat(2048);
    let req = request("POST", "h", "/orders")
        .body(Full::new(Bytes::from(big)))
        .expect("request");
    assert_eq!(Conn::h1(gw.addr()).await.send(req).await.status, 413);
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn a_response_plugin_edits_status_headers_and_body() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "edited"
upstream = "app"

[[routes.plugins]]
plugin = "{editor}"
config = {{ from = 404, to = 410, body = "gone for good" }}
"#,
        upstream_block(&up),
        editor = plugins::RESPONSE_EDITOR,
    );
    let gw = TestGateway::start(&config).await;
    let reply = Conn::h1(gw.addr())
        .await
        .send(get("h", "/status/404"))
        .await;
    assert_eq!(reply.status, 410);
    assert_eq!(reply.header("x-edited"), Some("yes"));
    assert_eq!(reply.text(), "gone for good");
    assert_eq!(reply.header("content-length"), Some("13"));
}

#[tokio::test]
async fn outbound_http_reaches_granted_hosts_only() {
    let granted = TestUpstream::start("granted").await;
    let other = TestUpstream::start("other").await;
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "to-granted"
path = {{ prefix = "/a" }}
upstream = "app"
[[routes.plugins]]
plugin = "{fetcher}"
config = {{ url = "http://{granted}/token" }}
grants = {{ http = ["{granted}"] }}

[[routes]]
id = "to-other"
path = {{ prefix = "/b" }}
upstream = "app"
[[routes.plugins]]
plugin = "{fetcher}"
config = {{ url = "http://{other}/token" }}
grants = {{ http = ["{granted}"] }}

[[routes]]
id = "no-budget"
path = {{ prefix = "/c" }}
upstream = "app"
[[routes.plugins]]
plugin = "{fetcher}"
config = {{ url = "http://{granted}/token" }}
grants = {{ http = ["{granted}"] }}
budgets = {{ outbound_calls = 0 }}

[[routes]]
id = "slow"
path = {{ prefix = "/slow" }}
upstream = "app"
[[routes.plugins]]
plugin = "{fetcher}"
config = {{ url = "http://{granted}/delay/10000" }}
grants = {{ http = ["{granted}"] }}
budgets = {{ deadline = "50ms" }}
"#,
        upstream_block(&up),
        fetcher = plugins::FETCHER,
        granted = granted.addr,
        other = other.addr,
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let a = conn.send(get("h", "/a")).await.json();
    assert_eq!(values(&a, "x-fetch"), ["status:200"]);
    let b = conn.send(get("h", "/b")).await.json();
    let fetch = values(&b, "x-fetch").join("");
    assert!(fetch.contains("HostNotGranted"), "{fetch}");
    assert_eq!(other.requests(), 0);
    let c = conn.send(get("h", "/c")).await.json();
    assert_eq!(values(&c, "x-fetch"), ["error:HttpError::BudgetExhausted"]);
    assert_eq!(granted.requests(), 1);
    // A plugin waiting on a slow host is stopped at its deadline, like a looping one,
    // and its failure policy (closed) answers.
    let slow = conn.send(get("h", "/slow")).await;
    assert_eq!(slow.status, 503);
    assert_eq!(
        slow.json()["type"],
        "urn:portcullis:problem:plugin-unavailable"
    );
    assert_eq!(gw.metrics.plugin_failures("slow", "fetcher", "timeout"), 1);
}

#[test]
fn outbound_http_without_a_grant_is_refused_at_load() {
    let error = build_error(&format!(
        r#"version = 1
{LISTENER}{PLUGINS}
[[routes]]
id = "fetching"
respond = {{ body = "ok" }}
[[routes.plugins]]
plugin = "{fetcher}"
config = {{ url = "http://127.0.0.1:9/" }}
"#,
        fetcher = plugins::FETCHER
    ))
    .expect("must be refused");
    assert!(error.contains("route `fetching`"), "{error}");
    assert!(error.contains("plugin `fetcher`"), "{error}");
    assert!(error.contains("portcullis:plugin/outbound-http"), "{error}");
    assert!(error.contains("grants.http"), "{error}");
    assert!(error.contains("gateway.toml:"), "{error}");
}

#[test]
fn a_plugin_config_check_failure_names_route_plugin_and_message() {
    let error = build_error(&format!(
        r#"version = 1
{LISTENER}{PLUGINS}
[[routes]]
id = "tagged"
respond = {{ body = "ok" }}
[[routes.plugins]]
plugin = "{tagger}"
config = {{ tag = "" }}
"#,
        tagger = plugins::TAGGER
    ))
    .expect("must be refused");
    assert!(error.contains("route `tagged`"), "{error}");
    assert!(error.contains("plugin `tagger`"), "{error}");
    assert!(error.contains("`tag` must not be empty"), "{error}");

    let error = build_error(&format!(
        r#"version = 1
{LISTENER}{PLUGINS}
[[routes]]
id = "typo"
respond = {{ body = "ok" }}
[[routes.plugins]]
plugin = "{tagger}"
config = {{ tga = "x" }}
"#,
        tagger = plugins::TAGGER
    ))
    .expect("must be refused");
    assert!(error.contains("invalid config"), "{error}");

    let error = build_error(&format!(
        "version = 1\n{LISTENER}\n[[routes]]\nid = \"missing\"\nrespond = {{ body = \"ok\" }}\n\
         [[routes.plugins]]\nplugin = \"nope.wasm\"\n"
    ))
    .expect("must be refused");
    assert!(error.contains("does not exist"), "{error}");
}
