//! `wasi:http/outgoing-handler` for plugins (`tests/plugins/wasi-guests/examples/
//! wasi_fetch.rs` calls it directly): served under the entry's `http` grant with the same
//! host allowlist, per-request budget, deadline and body limit as the contract's
//! `outbound-http`; refused, and logged under the request, for everything else.

use std::path::Path;

use portcullis_test_plugins as plugins;

use crate::plugins::{upstream_block, values};
use crate::support::client::{Conn, get};
use crate::support::process::GatewayProcess;
use crate::support::upstream::TestUpstream;

fn one(echo: &serde_json::Value, header: &str) -> String {
    values(echo, header).join("|")
}

#[tokio::test]
async fn wasi_http_reaches_granted_hosts_within_the_entrys_budgets_only() {
    let up = TestUpstream::start("app").await;
    let granted = TestUpstream::start("granted").await;
    let other = TestUpstream::start("other").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let route = |id: &str, config: String, extra: &str| {
        format!(
            "\n[[routes]]\nid = \"{id}\"\npath = {{ prefix = \"/{id}\" }}\nupstream = \"app\"\n\
             [[routes.plugins]]\nplugin = \"{plugin}\"\nconfig = {{ {config} }}\n{extra}\n",
            plugin = plugins::WASI_FETCH,
        )
    };
    let grant = format!("grants = {{ http = [\"{}\"] }}", granted.addr);
    let to = |path: &str| format!("url = \"http://{}{path}\"", granted.addr);
    let config = [
        format!(
            "version = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[plugins]\ncache_dir = \"{}\"\n{}",
            dir.path().join("cache").display(),
            upstream_block(&up)
        ),
        route("ungranted", to("/token"), ""),
        route("get", to("/hello?x=1"), &grant),
        route(
            "other",
            format!("url = \"http://{}/token\"", other.addr),
            &grant,
        ),
        route(
            "budget",
            format!("{}, times = 3", to("/n")),
            &format!("{grant}\nbudgets = {{ outbound_calls = 2 }}"),
        ),
        route(
            "post",
            format!("{}, method = \"POST\", body = \"{}\"", to("/upload"), "b".repeat(10_000)),
            &grant,
        ),
        route(
            "host",
            format!("{}, host = \"admin.internal\"", to("/token")),
            &grant,
        ),
        route(
            "userinfo",
            format!("url = \"http://admin.internal:x@{}/token\"", granted.addr),
            &grant,
        ),
        route(
            "keeps",
            format!("{}, keep = true", to("/kept")),
            &format!("{grant}\nreuse = {{ max_instances = 1 }}"),
        ),
        route(
            "warm",
            to("/warm"),
            &format!("{grant}\nreuse = {{ max_instances = 1 }}"),
        ),
        route(
            "big",
            to("/bytes/100000"),
            &format!("{grant}\nbudgets = {{ body_bytes = 65536 }}"),
        ),
        route(
            "impatient",
            format!("{}, first_byte_ms = 100", to("/delay/10000")),
            &format!("{grant}\nbudgets = {{ deadline = \"5s\" }}"),
        ),
        route(
            "slow",
            to("/delay/10000"),
            &format!("{grant}\nbudgets = {{ deadline = \"200ms\" }}"),
        ),
    ]
    .concat();
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, config).expect("write config");
    let gw = GatewayProcess::start(Path::new(&path));
    let mut conn = Conn::h1(gw.addr).await;

    // Granted nothing: refused before any connection, and the log says what to add.
    let reply = conn.send(get("h", "/ungranted")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(one(&reply.json(), "x-fetch"), "denied");
    let request_id = gw.next_access()["request_id"]
        .as_str()
        .expect("a request id")
        .to_owned();
    let line = gw.wait_for_ops_containing("wasi:http request to 127.0.0.1 refused");
    let text = line.to_string();
    assert!(
        text.contains(&format!(r#"grants = {{ http = [\"{}\"] }}"#, granted.addr)),
        "the grant to add, port included: {line}"
    );
    assert!(
        !text.contains("/token"),
        "the URL's path is not logged: {line}"
    );
    assert_eq!(line["request_id"], request_id.as_str(), "{line}");
    assert_eq!(line["route"], "ungranted", "{line}");
    assert_eq!(granted.connections(), 0);

    // Granted: the request arrives with the URL's authority as its host, and the whole
    // answer comes back.
    let echo = conn.send(get("h", "/get")).await.json();
    assert!(one(&echo, "x-fetch").starts_with("200:"), "{echo}");
    assert_eq!(one(&echo, "x-got-method"), "GET");
    assert_eq!(one(&echo, "x-got-path"), "/hello");
    assert_eq!(one(&echo, "x-got-host"), granted.addr.to_string());
    assert_eq!(granted.requests(), 1);

    // Another host, even on the same machine, is not granted.
    let echo = conn.send(get("h", "/other")).await.json();
    assert_eq!(one(&echo, "x-fetch"), "denied");
    assert_eq!(other.connections(), 0);

    // The per-request budget counts wasi:http calls, and comes back with the next request.
    for _ in 0..2 {
        let echo = conn.send(get("h", "/budget")).await.json();
        let results = one(&echo, "x-fetch");
        let results: Vec<&str> = results.split(',').collect();
        assert_eq!(results.len(), 3, "{results:?}");
        assert!(
            results[0].starts_with("200:") && results[1].starts_with("200:"),
            "{results:?}"
        );
        assert_eq!(results[2], "denied");
    }
    assert_eq!(granted.requests(), 5);

    // A body written after the request is handed over is sent whole.
    let echo = conn.send(get("h", "/post")).await.json();
    assert!(one(&echo, "x-fetch").starts_with("200:"), "{echo}");
    assert_eq!(one(&echo, "x-got-method"), "POST");
    assert_eq!(one(&echo, "x-got-body-len"), "10000");

    // The host comes from the URL the grant checked; the guest cannot set another, nor
    // put one in front of the granted host as user info.
    let echo = conn.send(get("h", "/host")).await.json();
    assert!(one(&echo, "x-fetch").starts_with("header:"), "{echo}");
    let echo = conn.send(get("h", "/userinfo")).await.json();
    assert_eq!(one(&echo, "x-fetch"), "denied", "{echo}");
    assert_eq!(
        granted.requests(),
        6,
        "the POST, and nothing for the refused header"
    );

    // A response body over `body_bytes` ends in an error the guest can handle.
    let echo = conn.send(get("h", "/big")).await.json();
    assert_eq!(one(&echo, "x-fetch"), "body-size", "{echo}");

    // A warm instance is reused from request to request, unless it kept an answer past
    // its call: answers piling up would be host memory outside its budget.
    for (route, calls) in [("warm", ["1", "2"]), ("keeps", ["1", "1"])] {
        for expected in calls {
            let echo = conn.send(get("h", &format!("/{route}"))).await.json();
            assert!(one(&echo, "x-fetch").starts_with("200:"), "{echo}");
            assert_eq!(one(&echo, "x-calls"), expected, "{route}: {echo}");
        }
    }

    // The guest's own first-byte timeout gives it an error it can handle...
    let echo = conn.send(get("h", "/impatient")).await.json();
    assert_eq!(one(&echo, "x-fetch"), "timeout", "{echo}");
    // ...and without one, a slow host is cut off at the plugin's deadline, like a looping
    // plugin: its failure policy (closed) answers, and the gateway serves on.
    let slow = conn.send(get("h", "/slow")).await;
    assert_eq!(slow.status, 503, "{}", slow.text());
    assert_eq!(
        slow.json()["type"],
        "urn:portcullis:problem:plugin-unavailable"
    );
    let echo = conn.send(get("h", "/get")).await.json();
    assert!(one(&echo, "x-fetch").starts_with("200:"), "{echo}");
}
