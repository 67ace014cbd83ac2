//! The built-in `key-auth` plugin in the real gateway, in front of a real upstream.

use bytes::Bytes;
use http_body_util::Full;
use sha2::{Digest, Sha256};

use crate::support::client::{Conn, get, request};
use crate::support::upstream::TestUpstream;
use crate::support::{LISTENER, TestGateway, build_error};

const PLUGINS: &str = "[plugins]\nmax_instances = 32\ncache_dir = \"{dir}/cache\"\n";

pub(crate) fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn config(up: &TestUpstream, entry: &str) -> String {
    format!(
        "version = 1\n{LISTENER}{PLUGINS}[upstreams.app]\ntargets = [\"{}\"]\n\
         [[routes]]\nid = \"keyed\"\nupstream = \"app\"\n\
         [[routes.plugins]]\nplugin = \"key-auth\"\n{entry}",
        up.addr
    )
}

#[tokio::test]
async fn a_query_string_key_never_reaches_the_upstream_and_identity_headers_are_the_gateways() {
    let up = TestUpstream::start("app").await;
    let entry = format!(
        "config = {{ query = \"api_key\", consumers = {{ alice = {{ key_sha256 = \"{}\", groups = [\"gold\"] }} }} }}\n",
        hash("s3cret-alice")
    );
    let gw = TestGateway::start(&config(&up, &entry)).await;
    let mut conn = Conn::h1(gw.addr()).await;

    let req = request("GET", "h", "/orders?page=2&api_key=s3cret-alice&sort=desc")
        .header("x-consumer", "admin")
        .header("x-consumer-groups", "root")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let reply = conn.send(req).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echo = reply.json();
    assert_eq!(echo["query"], "page=2&sort=desc", "{echo}");
    assert!(!echo.to_string().contains("s3cret-alice"), "{echo}");
    assert_eq!(echo["headers"]["x-consumer"], serde_json::json!(["alice"]));
    assert_eq!(
        echo["headers"]["x-consumer-groups"],
        serde_json::json!(["gold"])
    );

    // Without a key the request stops at the gateway: 401 with the scheme and realm.
    let missing = conn.send(get("h", "/orders")).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Key realm=\"api\"")
    );
    assert_eq!(
        missing.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(
        missing.json()["type"],
        "urn:portcullis:problem:unauthorized"
    );

    let wrong = conn.send(get("h", "/orders?api_key=guess")).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn consumers_can_live_in_a_file_the_gateway_reads_at_load() {
    let up = TestUpstream::start("app").await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("consumers.toml"),
        format!(
            "[alice]\nkey_sha256 = \"{}\"\ngroups = [\"gold\", \"beta\"]\n\n[bob]\nkey_sha256 = \"{}\"\n",
            hash("alice-key"),
            hash("bob-key")
        ),
    )
    .expect("consumers file");
    let gw = TestGateway::start_in(
        dir,
        &config(&up, "files = { consumers = \"{dir}/consumers.toml\" }\n"),
    )
    .await;
    let mut conn = Conn::h1(gw.addr()).await;
    for (key, consumer, groups) in [
        ("alice-key", "alice", Some("gold,beta")),
        ("bob-key", "bob", None),
    ] {
        let req = request("GET", "h", "/")
            .header("x-api-key", key)
            .body(Full::new(Bytes::new()))
            .expect("request");
        let reply = conn.send(req).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let echo = reply.json();
        assert_eq!(echo["headers"]["x-consumer"], serde_json::json!([consumer]));
        assert_eq!(
            echo["headers"]["x-consumer-groups"]
                .as_array()
                .map(|a| a[0].clone()),
            groups.map(|g| serde_json::json!(g))
        );
        assert!(echo["headers"].get("x-api-key").is_none(), "{echo}");
    }
}

#[test]
fn bad_key_auth_configs_fail_the_load_with_the_plugins_reason() {
    let up_addr = "127.0.0.1:9";
    let base = |entry: &str| {
        format!(
            "version = 1\n{LISTENER}{PLUGINS}[upstreams.app]\ntargets = [\"{up_addr}\"]\n\
             [[routes]]\nid = \"keyed\"\nupstream = \"app\"\n\
             [[routes.plugins]]\nplugin = \"key-auth\"\n{entry}"
        )
    };
    let pasted_key = build_error(&base(
        "config = { consumers = { alice = { key_sha256 = \"alice-key\" } } }\n",
    ))
    .expect("refused");
    assert!(pasted_key.contains("route `keyed`"), "{pasted_key}");
    assert!(pasted_key.contains("key-auth"), "{pasted_key}");
    assert!(pasted_key.contains("64 hex digits"), "{pasted_key}");

    let missing_file =
        build_error(&base("files = { consumers = \"nowhere.toml\" }\n")).expect("refused");
    assert!(missing_file.contains("nowhere.toml"), "{missing_file}");

    let unknown = build_error(&base("").replace("key-auth", "key-authh")).expect("refused");
    assert!(
        unknown.contains("built-in: authz, jwt-auth, key-auth, transform"),
        "{unknown}"
    );
}

#[tokio::test]
async fn rate_limits_keyed_by_consumer_count_each_consumer_apart() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        "version = 1\n{LISTENER}{PLUGINS}[upstreams.app]\ntargets = [\"{}\"]\n\
         [rate_limits.per-consumer]\nquota = 2\nwindow = \"1h\"\nkey = \"consumer\"\n\
         [[routes]]\nid = \"keyed\"\nupstream = \"app\"\nrate_limits = [\"per-consumer\"]\n\
         [[routes.plugins]]\nplugin = \"key-auth\"\n\
         config = {{ consumers = {{ alice = {{ key_sha256 = \"{}\" }}, bob = {{ key_sha256 = \"{}\" }} }} }}\n",
        up.addr,
        hash("alice-key"),
        hash("bob-key")
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let mut call = async |key: &str| {
        let req = request("GET", "h", "/")
            .header("x-api-key", key)
            .body(Full::new(Bytes::new()))
            .expect("request");
        conn.send(req).await
    };
    // Same client address throughout: only the consumer tells the buckets apart.
    assert_eq!(call("alice-key").await.status, 200);
    let second = call("alice-key").await;
    assert_eq!(second.status, 200);
    assert_eq!(
        second.header("ratelimit"),
        Some("\"per-consumer\";r=0;t=3600")
    );
    let third = call("alice-key").await;
    assert_eq!(third.status, 429);
    assert!(third.header("retry-after").is_some());
    assert_eq!(call("bob-key").await.status, 200);
    assert_eq!(up.requests(), 3);
}

#[test]
fn identity_keyed_limits_need_a_plugin_to_verify_an_identity() {
    let error = build_error(&format!(
        "version = 1\n{LISTENER}[upstreams.app]\ntargets = [\"127.0.0.1:9\"]\n\
         [rate_limits.per-sub]\nquota = 2\nwindow = \"1m\"\nkey = \"subject\"\n\
         [[routes]]\nid = \"open\"\nupstream = \"app\"\nrate_limits = [\"per-sub\"]\n"
    ))
    .expect("refused");
    assert!(error.contains("no plugins to verify one"), "{error}");
}

#[tokio::test]
async fn authz_after_key_auth_admits_allowed_groups_only() {
    let up = TestUpstream::start("app").await;
    let entry = format!(
        "config = {{ consumers = {{ gold = {{ key_sha256 = \"{}\", groups = [\"gold\"] }}, \
         silver = {{ key_sha256 = \"{}\", groups = [\"silver\"] }} }} }}\n\
         [[routes.plugins]]\nplugin = \"authz\"\nconfig = {{ groups = [\"gold\"] }}\n",
        hash("gold-key"),
        hash("silver-key")
    );
    let gw = TestGateway::start(&config(&up, &entry)).await;
    let mut conn = Conn::h1(gw.addr()).await;
    for (key, status) in [("gold-key", 200), ("silver-key", 403)] {
        let req = request("GET", "h", "/")
            .header("x-api-key", key)
            .body(Full::new(Bytes::new()))
            .expect("request");
        let reply = conn.send(req).await;
        assert_eq!(reply.status, status, "{key}: {}", reply.text());
        if status == 403 {
            assert_eq!(reply.json()["type"], "urn:portcullis:problem:forbidden");
        }
    }
    assert_eq!(up.requests(), 1);
}
