//! The built-in `transform` plugin in the real gateway: every request and response edit,
//! repeated headers included, as the upstream and the client see them.

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;

use crate::support::client::{Conn, get, request};
use crate::support::upstream::TestUpstream;
use crate::support::{LISTENER, TestGateway};

const RULES: &str = r#"
[[routes.plugins]]
plugin = "transform"

[routes.plugins.config.request.headers]
remove = ["x-drop"]
rename = { x-old = "x-new" }
set = { x-set = "s" }
add = { x-multi = ["two", "three"] }

[routes.plugins.config.request.query]
remove = ["debug"]
rename = { q = "search" }
set = { page = "1" }
add = { src = "gw" }

[routes.plugins.config.request.path]
from = "/shop/{rest*}"
to = "/v2/{rest}"

[routes.plugins.config.request.body]
remove = ["/internal"]
set = { "/meta/source" = "gateway" }

[routes.plugins.config.response.headers]
rename = { x-upstream = "x-served-by" }
set = { x-frame-options = "DENY" }
add = { x-tag = ["a", "b"] }

[routes.plugins.config.response.body]
remove = ["/version"]
set = { "/via" = "portcullis" }

[routes.plugins.config.response.status]
404 = 410
"#;

#[tokio::test]
async fn every_request_and_response_edit_applies_and_repeated_headers_survive() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        "version = 1\n{LISTENER}[plugins]\nmax_instances = 16\ncache_dir = \"{{dir}}/cache\"\n\
         [upstreams.app]\ntargets = [\"{}\"]\n[[routes]]\nid = \"shop\"\nupstream = \"app\"\n{RULES}",
        up.addr
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;

    let body = json!({ "item": 7, "internal": { "debug": true } }).to_string();
    let req = request("POST", "h", "/shop/items/7?debug=1&q=shoes&page=2")
        .header("content-type", "application/json")
        .header("x-old", "1")
        .header("x-old", "2")
        .header("x-drop", "bye")
        .header("x-multi", "keep")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let reply = conn.send(req).await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    // What the client sees: response headers and JSON body edited.
    assert_eq!(reply.header("x-served-by"), Some("app"));
    assert_eq!(reply.header("x-upstream"), None);
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    let tags: Vec<&str> = reply
        .headers
        .get_all("x-tag")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(tags, ["a", "b"]);
    let echo = reply.json();
    assert_eq!(echo["via"], "portcullis");
    assert!(echo.get("version").is_none(), "{echo}");

    // What the upstream saw.
    assert_eq!(echo["path"], "/v2/items/7");
    assert_eq!(echo["query"], "search=shoes&page=1&src=gw");
    let h = &echo["headers"];
    assert_eq!(h["x-new"], json!(["1", "2"]));
    assert!(h.get("x-old").is_none() && h.get("x-drop").is_none(), "{h}");
    assert_eq!(h["x-set"], json!(["s"]));
    assert_eq!(h["x-multi"], json!(["keep", "two", "three"]));
    let sent: serde_json::Value =
        serde_json::from_str(echo["body"].as_str().unwrap_or("null")).expect("JSON body");
    assert_eq!(sent, json!({ "item": 7, "meta": { "source": "gateway" } }));
    assert_eq!(
        h["content-length"],
        json!([sent.to_string().len().to_string()])
    );

    // Status remap, and a non-JSON body left alone.
    let gone = conn.send(get("h", "/status/404")).await;
    assert_eq!(gone.status, 410);
    let text = conn
        .send(
            request("POST", "h", "/shop/x")
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from_static(b"{\"internal\": 1}")))
                .expect("request"),
        )
        .await;
    assert_eq!(text.json()["body"], "{\"internal\": 1}");
}
