//! Pipelines in process: the order of both phases, bodies read whole, short-circuits, rate
//! limits keyed by the identity an auth plugin verified, and fresh instances made from the
//! snapshot taken after the config check.

use bytes::Bytes;
use http_body_util::Full;
use sha2::{Digest, Sha256};

use crate::{InProcess, LISTENER, PLUGINS, request};

fn static_route(entries: &str) -> String {
    format!(
        "version = 1\n{LISTENER}{PLUGINS}\
         [[routes]]\nid = \"app\"\nrespond = {{ status = 200, body = \"fixed\" }}\n{entries}"
    )
}

fn entry(plugin: &str, config: &str) -> String {
    format!("[[routes.plugins]]\nplugin = \"{plugin}\"\nconfig = {config}\n")
}

#[tokio::test]
async fn response_phases_run_in_reverse_order_on_the_routes_answer() {
    let tagger = portcullis_test_plugins::TAGGER;
    let gw = InProcess::new(&static_route(&format!(
        "{}{}",
        entry(tagger, "{ tag = \"first\" }"),
        entry(tagger, "{ tag = \"second\" }")
    )));
    let answer = gw.get("/").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "fixed");
    let trace: Vec<_> = answer
        .headers
        .get_all("x-trace")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(trace, ["second", "first"]);
}

#[tokio::test]
async fn fresh_instances_start_from_the_snapshot_taken_after_the_config_check() {
    let plugin = portcullis_test_plugins::PREINITIALISED;
    let route = |id: &str, extra: &str| {
        format!(
            "[[routes]]\nid = \"{id}\"\npath = {{ prefix = \"/{id}\" }}\n\
             respond = {{ status = 204 }}\n{}{extra}",
            entry(plugin, "{ any = \"config\" }")
        )
    };
    let gw = InProcess::new(&format!(
        "version = 1\n{LISTENER}{PLUGINS}{}{}{}",
        route("fresh", "preinitialise = true\n"),
        route("plain", ""),
        route("warm", "reuse = { max_instances = 1 }\n")
    ));
    let mut drawn = Vec::new();
    for _ in 0..3 {
        let answer = gw.get("/fresh").await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.header("x-checked"), Some("yes"));
        drawn.push(answer.header("x-random").expect("x-random").to_owned());
    }
    // The snapshot fixes memory, not the host: each instance draws its own bytes.
    drawn.sort();
    drawn.dedup();
    assert_eq!(drawn.len(), 3, "{drawn:?}");
    // Without `preinitialise`, fresh and warm instances start from the component itself.
    assert_eq!(gw.get("/plain").await.header("x-checked"), Some("no"));
    assert_eq!(gw.get("/warm").await.header("x-checked"), Some("no"));
}

#[tokio::test]
async fn a_short_circuit_is_seen_by_the_earlier_plugins_response_phase_only() {
    let gw = InProcess::new(&static_route(&format!(
        "{}{}{}",
        entry(portcullis_test_plugins::TAGGER, "{ tag = \"before\" }"),
        entry(
            portcullis_test_plugins::RESPONDER,
            "{ status = 418, body = \"teapot\" }"
        ),
        entry(portcullis_test_plugins::TAGGER, "{ tag = \"after\" }"),
    )));
    let answer = gw.get("/").await;
    assert_eq!(answer.status, 418);
    assert_eq!(answer.text(), "teapot");
    assert_eq!(answer.header("content-length"), Some("6"));
    let trace: Vec<_> = answer.headers.get_all("x-trace").iter().collect();
    assert_eq!(trace, ["before"]);
}

#[tokio::test]
async fn a_plugin_that_reads_the_body_sees_all_of_it_within_the_routes_limit() {
    let gw = InProcess::new(&format!(
        "{}[routes.limits]\nmax_body_bytes = 16\n",
        static_route(&entry(
            portcullis_test_plugins::BODY_GUARD,
            "{ forbidden = \"evil\" }"
        ))
    ));
    let post = |body: &'static [u8]| {
        request("POST", "/")
            .body(Full::new(Bytes::from_static(body)))
            .expect("request")
    };
    assert_eq!(gw.send(post(b"all good")).await.status, 200);
    assert_eq!(gw.send(post(b"quite evil")).await.status, 422);
    // No declared length: the body is cut off as it is read, before any plugin runs.
    let oversized = gw.send(post(b"twenty bytes, evil!!")).await;
    assert_eq!(oversized.status, 413, "{}", oversized.text());
}

fn sha256(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn limits_by_consumer_count_each_consumer_and_guesses_count_by_address() {
    let config = format!(
        "{}[rate_limits.per-consumer]\nquota = 2\nwindow = \"1h\"\nkey = \"consumer\"\n",
        static_route(&format!(
            "rate_limits = [\"per-consumer\"]\n{}",
            entry(
                "key-auth",
                &format!(
                    "{{ consumers = {{ alice = {{ key_sha256 = \"{}\" }}, bob = {{ key_sha256 = \"{}\" }} }} }}",
                    sha256("alice-key"),
                    sha256("bob-key")
                )
            )
        ))
    );
    let gw = InProcess::new(&config);
    let call = |key: &str| {
        request("GET", "/")
            .header("x-api-key", key)
            .body(Full::default())
            .expect("request")
    };
    assert_eq!(gw.send(call("alice-key")).await.status, 200);
    let second = gw.send(call("alice-key")).await;
    assert_eq!(
        second.header("ratelimit"),
        Some("\"per-consumer\";r=0;t=3600")
    );
    assert_eq!(gw.send(call("alice-key")).await.status, 429);
    // Same address, another consumer: a bucket of its own.
    assert_eq!(gw.send(call("bob-key")).await.status, 200);

    // Wrong keys are charged to the address, in the same policy: after the quota,
    // guessing is throttled, not answered 401 without end.
    let guessing = InProcess::new(&config);
    let statuses: Vec<u16> = {
        let mut seen = Vec::new();
        for guess in ["a", "b", "c"] {
            seen.push(guessing.send(call(guess)).await.status.as_u16());
        }
        seen
    };
    assert_eq!(statuses, [401, 401, 429]);
}
