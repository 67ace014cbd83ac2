//! Plugin instances under the gateway: fresh and warm lifecycles, slots shared between
//! entries, the pipeline's concurrency limit, and faults that stay with the plugin that
//! caused them.

use std::collections::BTreeMap;

use portcullis_test_plugins as plugins;

use super::plugins::{PLUGINS, upstream_block, values};
use crate::support::client::{Conn, get};
use crate::support::upstream::TestUpstream;
use crate::support::{LISTENER, TestGateway, build_error};

/// Routes with misbehaving plugins next to healthy ones, all under concurrent load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_plugins_fail_alone_under_concurrent_load() {
    let up = TestUpstream::start("app").await;
    let entry = |id: &str, plugin: &str, extra: &str| {
        format!(
            "[[routes]]\nid = \"{id}\"\nupstream = \"app\"\npath = {{ prefix = \"/{id}\" }}\n\
             [[routes.plugins]]\nplugin = \"{plugin}\"\n{extra}\n"
        )
    };
    let config = format!(
        "version = 1\n{LISTENER}{PLUGINS}{}\n{}{}{}{}{}{}",
        upstream_block(&up),
        entry("loop", plugins::LOOPER, "budgets = { deadline = \"20ms\" }"),
        entry("bomb", plugins::MEMORY_BOMB, "budgets = { memory_mib = 8 }"),
        entry("trap", plugins::TRAPPER, ""),
        entry("big", plugins::OVERSIZED, "config = { bytes = 2000000 }"),
        entry("open", plugins::TRAPPER, "failure = \"open\""),
        entry(
            "skip",
            plugins::LOOPER,
            "failure = \"skip\"\nbudgets = { deadline = \"10ms\" }"
        ),
    ) + &entry("ok", plugins::PASS_THROUGH, "");
    let gw = TestGateway::start(&config).await;
    let addr = gw.addr();

    let routes = [
        ("loop", 503),
        ("bomb", 500),
        ("trap", 500),
        ("big", 500),
        ("open", 200),
        ("skip", 200),
        ("ok", 200),
    ];
    let mut tasks = Vec::new();
    for task in 0..8 {
        tasks.push(tokio::spawn(async move {
            let mut seen: BTreeMap<&str, Vec<u16>> = BTreeMap::new();
            let mut conn = Conn::h1(addr).await;
            for i in 0..42 {
                let (route, _) = routes[(task + i) % routes.len()];
                let reply = conn.send(get("h", &format!("/{route}/x"))).await;
                if reply.status.is_server_error() {
                    let problem = reply.json();
                    assert!(
                        problem["type"]
                            .as_str()
                            .is_some_and(|t| t.starts_with("urn:portcullis:problem:plugin")),
                        "{problem}"
                    );
                }
                seen.entry(route).or_default().push(reply.status.as_u16());
            }
            seen
        }));
    }
    let mut total = 0;
    for task in tasks {
        let seen = task.await.expect("client task");
        for (route, statuses) in seen {
            let expected = routes.iter().find(|(r, _)| *r == route).map(|(_, s)| *s);
            for status in statuses {
                total += 1;
                assert_eq!(Some(status), expected, "route {route}");
            }
        }
    }
    assert_eq!(total, 8 * 42);
    let m = &gw.metrics;
    assert!(m.plugin_failures("loop", "looper", "timeout") > 0);
    assert!(m.plugin_failures("bomb", "memory_bomb", "memory") > 0);
    assert!(m.plugin_failures("trap", "trapper", "trap") > 0);
    assert!(m.plugin_failures("big", "oversized", "output_too_large") > 0);
    assert!(m.plugin_failures("open", "trapper", "trap") > 0);
    assert!(m.plugin_failures("skip", "looper", "timeout") > 0);
    assert_eq!(m.plugin_failures("ok", "pass_through", "trap"), 0);
    assert!(m.encode().contains("portcullis_plugin_failures_total{"));
    // And the gateway still serves.
    let reply = Conn::h1(addr).await.send(get("h", "/ok/after")).await;
    assert_eq!(reply.status, 200);
}

/// Idle warm instances hold engine slots they do not use: when the engine runs out, one is
/// dropped for the entry that needs a slot, instead of that entry failing.
#[tokio::test]
async fn idle_warm_instances_give_their_slots_to_other_entries() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}[plugins]
max_instances = 1
cache_dir = "{{dir}}/cache"
{}
[[routes]]
id = "a"
path = {{ prefix = "/a" }}
upstream = "app"
[[routes.plugins]]
plugin = "{counter}"
budgets = {{ deadline = "200ms" }}
reuse = {{ max_instances = 1 }}

[[routes]]
id = "b"
path = {{ prefix = "/b" }}
upstream = "app"
[[routes.plugins]]
plugin = "{counter}"
budgets = {{ deadline = "200ms" }}
reuse = {{ max_instances = 1 }}
"#,
        upstream_block(&up),
        counter = plugins::COUNTER,
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let mut counts = Vec::new();
    for path in ["/a", "/a", "/b", "/b", "/a"] {
        let reply = conn.send(get("h", path)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        counts.push(values(&reply.json(), "x-instance-count").join(","));
    }
    // /a warms up; /b takes the only slot from /a's idle instance; /a starts afresh.
    assert_eq!(counts, ["1", "2", "1", "2", "1"]);
}

#[tokio::test]
async fn fresh_instances_keep_nothing_between_requests_and_reuse_mode_does() {
    let up = TestUpstream::start("app").await;
    let proxied = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "fresh"
path = {{ prefix = "/fresh" }}
upstream = "app"
[[routes.plugins]]
plugin = "{counter}"

[[routes]]
id = "warm"
path = {{ prefix = "/warm" }}
upstream = "app"
[[routes.plugins]]
plugin = "{counter}"
reuse = {{ max_instances = 1, max_requests = 3 }}
"#,
        upstream_block(&up),
        counter = plugins::COUNTER,
    );
    let gw = TestGateway::start(&proxied).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let mut fresh = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..5 {
        fresh.push(
            values(
                &conn.send(get("h", "/fresh")).await.json(),
                "x-instance-count",
            )
            .join(","),
        );
        warm.push(
            values(
                &conn.send(get("h", "/warm")).await.json(),
                "x-instance-count",
            )
            .join(","),
        );
    }
    assert_eq!(fresh, ["1", "1", "1", "1", "1"]);
    // One warm instance, replaced after 3 requests.
    assert_eq!(warm, ["1", "2", "3", "1", "2"]);
    assert!(gw.metrics.encode().contains("name=\"served\""));
}

#[tokio::test]
async fn a_warm_instance_near_its_memory_budget_is_replaced_before_it_fails() {
    let up = TestUpstream::start("app").await;
    // 256 KiB kept per request (5 pages of 64 KiB with the allocator's own) against a
    // 2 MiB budget: an instance reaches 28 of its 32 pages at its 6th request, and its 7th
    // would fail at the cap.
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "leaky"
upstream = "app"
[[routes.plugins]]
plugin = "{counter}"
config = {{ leak_kib = 256 }}
budgets = {{ memory_mib = 2 }}
reuse = {{ max_instances = 1 }}
"#,
        upstream_block(&up),
        counter = plugins::COUNTER,
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let mut counts = Vec::new();
    for _ in 0..24 {
        let reply = conn.send(get("h", "/")).await;
        assert_eq!(reply.status, 200, "{counts:?}: {}", reply.text());
        let count: u32 = values(&reply.json(), "x-instance-count")
            .join("")
            .parse()
            .expect("a count");
        counts.push(count);
    }
    let replaced = counts.windows(2).filter(|w| w[1] == 1).count();
    assert!(
        replaced >= 2,
        "instances replaced as they neared the cap: {counts:?}"
    );
    assert!(counts.iter().all(|&n| n < 8), "{counts:?}");
    assert_eq!(gw.metrics.plugin_failures("leaky", "counter", "memory"), 0);
}

#[test]
fn preinitialise_with_warm_instances_is_refused_at_load() {
    let error = build_error(&format!(
        r#"version = 1
{LISTENER}{PLUGINS}
[[routes]]
id = "both"
respond = {{ body = "ok" }}
[[routes.plugins]]
plugin = "{counter}"
reuse = {{ max_instances = 2 }}
preinitialise = true
"#,
        counter = plugins::COUNTER
    ))
    .expect("must be refused");
    assert!(error.contains("route `both`"), "{error}");
    assert!(error.contains("`preinitialise`"), "{error}");
    assert!(error.contains("remove `reuse`"), "{error}");
    assert!(error.contains("gateway.toml:"), "{error}");
}

#[tokio::test]
async fn the_pipeline_concurrency_limit_answers_503_with_retry_after() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "narrow"
upstream = "app"
pipeline = {{ max_concurrent = 1, queue_timeout = "20ms" }}
[[routes.plugins]]
plugin = "{editor}"
config = {{}}
"#,
        upstream_block(&up),
        editor = plugins::RESPONSE_EDITOR,
    );
    let gw = TestGateway::start(&config).await;
    let addr = gw.addr();
    // The response-phase plugin holds the route's only slot while the upstream is slow.
    let slow =
        tokio::spawn(async move { Conn::h1(addr).await.send(get("h", "/delay/3000")).await });
    up.arrived(1).await;
    let busy = Conn::h1(addr).await.send(get("h", "/fast")).await;
    assert_eq!(busy.status, 503);
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert_eq!(busy.json()["type"], "urn:portcullis:problem:plugins-busy");
    assert_eq!(slow.await.expect("slow request").status, 200);
}

/// A request dropped while its plugin runs (its client went away) must not leave a broken
/// warm instance behind for the next request: found by `bench/pipeline.sh`, where wrk's
/// connections closing mid-request made later requests fail with "cannot enter component
/// instance".
#[tokio::test]
async fn a_request_dropped_mid_call_does_not_break_the_warm_instance_it_used() {
    use std::sync::Arc;

    use http::{HeaderMap, HeaderValue};
    use portcullis::plugin::{PluginRequest, RequestOutcome};

    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "version = 1\n{LISTENER}[plugins]\ncache_dir = \"{}\"\n\
         [[routes]]\nid = \"warm\"\nrespond = {{ body = \"x\" }}\n\
         [[routes.plugins]]\nplugin = \"{}\"\nbudgets = {{ deadline = \"10s\" }}\n\
         reuse = {{ max_instances = 1 }}\n",
        dir.path().join("cache").display(),
        plugins::LOOPER
    );
    let runtime = crate::support::runtime(&config);
    let pipeline = crate::support::pipeline_at(&runtime, "/");
    let request = |no_loop: bool| {
        let mut headers = HeaderMap::new();
        if no_loop {
            headers.insert("x-no-loop", HeaderValue::from_static("1"));
        }
        PluginRequest {
            headers,
            request_id: Arc::from("r"),
            route: Arc::from("warm"),
            ..PluginRequest::default()
        }
    };

    // The looping call is dropped long before its 10 s deadline, as when a client leaves.
    let mut looping = request(false);
    let permit = pipeline.admit().await.expect("admitted");
    let dropped = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        pipeline.on_request(&mut looping, permit, |_| Ok(())),
    )
    .await;
    assert!(dropped.is_err(), "the call was still running when dropped");

    // The only warm slot serves the next request with a sound instance.
    let mut next = request(true);
    let permit = pipeline.admit().await.expect("admitted");
    let (outcome, _phase) = pipeline.on_request(&mut next, permit, |_| Ok(())).await;
    assert!(
        matches!(outcome, Ok(RequestOutcome::Continue)),
        "{outcome:?}"
    );
}
