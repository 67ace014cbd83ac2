//! The plugin host-call surface: a plugin (`tests/plugins/guests/examples/scripted.rs`)
//! runs the edit script it is given — header edits, paths, queries, methods, bodies,
//! identities, replies, logs and counters, in any order with any arguments — under
//! `failure = "open"`, where its edits up to a failure still go upstream. Whatever it
//! does, the request (or reply) that leaves the pipeline is one the edge would let
//! through from a client: within the head limits, a canonical path, a final status.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::HeaderMap;
use portcullis::canonical::{PathOptions, normalize};
use portcullis::plugin::{Pipeline, PluginRequest, PluginResponse, RequestOutcome};
use portcullis::router::{RequestLimits, RequestView, header_bytes};
use portcullis::runtime::Runtime;

use crate::panics;

struct Harness {
    tokio: tokio::runtime::Runtime,
    pipeline: Arc<Pipeline>,
    // Keeps the engine and services of the pipeline alive.
    _runtime: Runtime,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        panics::watch();
        portcullis::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let text = format!(
            r#"version = 1
[[listeners]]
address = "127.0.0.1:0"
[upstreams.app]
targets = ["127.0.0.1:9"]
[plugins]
max_instances = 4
cache_dir = "{dir}/cache"
[[routes]]
id = "scripted"
upstream = "app"
[[routes.plugins]]
plugin = "{plugin}"
failure = "open"
config = {{}}
budgets = {{ deadline = "5s", memory_mib = 64 }}
"#,
            dir = dir.display(),
            plugin = portcullis_test_plugins::SCRIPTED,
        );
        let file = portcullis::config::parse(&dir.join("gateway.toml"), text).expect("config");
        let runtime = Runtime::build(&file).expect("runtime");
        let headers = HeaderMap::new();
        let view = RequestView {
            host: "h",
            method: &http::Method::GET,
            path: "/",
            headers: &headers,
            query: None,
        };
        let pipeline = runtime
            .router
            .find(&view)
            .and_then(|m| m.route.pipeline.clone())
            .expect("the scripted route has a pipeline");
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        Harness {
            tokio,
            pipeline,
            _runtime: runtime,
        }
    })
}

fn assert_head_within(headers: &HeaderMap, limits: &RequestLimits, what: &str) {
    assert!(
        headers.len() <= limits.max_headers,
        "{what}: {} headers",
        headers.len()
    );
    assert!(
        header_bytes(headers) <= limits.max_header_bytes,
        "{what}: {} header bytes",
        header_bytes(headers)
    );
    for name in [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
    ] {
        assert!(!headers.contains_key(name), "{what}: a plugin set `{name}`");
    }
}

fn assert_reply_sound(reply: &PluginResponse, limits: &RequestLimits) {
    assert!(
        (200..=599).contains(&reply.status.as_u16()),
        "a reply with status {}",
        reply.status
    );
    assert_head_within(&reply.headers, limits, "reply");
}

/// `data` is the edit script (the request body the plugin reads).
pub fn check(data: &[u8]) {
    let h = harness();
    let before = panics::count();
    let limits = RequestLimits::default();
    let mut request = PluginRequest {
        target: http::uri::PathAndQuery::from_static("/start"),
        body: Some(Bytes::copy_from_slice(data)),
        route: Arc::from("scripted"),
        request_id: Arc::from("fuzz"),
        limits,
        ..PluginRequest::default()
    };
    let outcome = h.tokio.block_on(async {
        let permit = h.pipeline.admit().await.expect("admitted");
        let (outcome, _response_phase) = h
            .pipeline
            .on_request(&mut request, permit, |_| Ok(()))
            .await;
        outcome
    });
    assert_eq!(panics::count(), before, "the host panicked on {data:?}");
    assert_head_within(&request.headers, &limits, "request");
    let path = request.target.path();
    assert!(path.starts_with('/'), "path {path:?}");
    assert_eq!(
        normalize(path, PathOptions::default()).as_deref(),
        Ok(path),
        "a plugin-set path left unnormalised"
    );
    if let Some(query) = request.target.query() {
        assert!(
            http::uri::PathAndQuery::try_from(format!("/?{query}")).is_ok() && !query.contains('#'),
            "query {query:?}"
        );
    }
    if let Some(body) = &request.body {
        assert!(
            body.len() as u64 <= 1 << 20,
            "a body of {} bytes",
            body.len()
        );
    }
    if let Ok(RequestOutcome::Respond(reply)) = &outcome {
        assert_reply_sound(reply, &limits);
    }
}
