//! What misbehaving or overloaded plugins can do to the edge (findings 6, 7 and 11):
//! statuses, head sizes, capacity failures of auth plugins, and outbound grants.

use super::*;

// Finding 6 (part): a plugin could answer with a status of 600-999.

#[tokio::test]
async fn plugins_cannot_send_statuses_past_599() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "reply"
path = {{ prefix = "/reply" }}
upstream = "app"
[[routes.plugins]]
plugin = "{responder}"
config = {{ status = 600, body = "odd" }}

[[routes]]
id = "edit"
path = {{ prefix = "/edit" }}
upstream = "app"
[[routes.plugins]]
plugin = "{editor}"
config = {{ from = 200, to = 999 }}
"#,
        upstream_block("app", &up),
        responder = test_plugins::RESPONDER,
        editor = test_plugins::RESPONSE_EDITOR,
    );
    let gw = TestGateway::start(&config).await;
    for path in ["/reply", "/edit"] {
        let answer = raw(
            gw.addr(),
            format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        // The entry fails closed: a 500 problem, never `HTTP/1.1 600`.
        assert_eq!(raw_status(&answer), 500, "{path}: {answer}");
    }
}

// Finding 6 (part): `host.count` with a new name per call grew the metrics registry
// without bound (+1 GB after 50 requests).

#[tokio::test]
async fn a_plugin_cannot_grow_the_metrics_registry_without_bound() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "noisy"
upstream = "app"
[[routes.plugins]]
plugin = "{noisy}"
config = {{ lines = 0, names = 500 }}
"#,
        upstream_block("app", &up),
        noisy = test_plugins::NOISY,
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    for _ in 0..3 {
        assert_eq!(conn.send(get("h", "/")).await.status, 200);
    }
    let text = gw.metrics.encode();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("portcullis_plugin_events_total{"))
        .collect();
    // 64 names of its own, and every later name counted under `_overflow`:
    // 3 requests × (500 − 64) increments.
    assert_eq!(series.len(), 65, "{series:#?}");
    let overflow = series
        .iter()
        .find(|l| l.contains("name=\"_overflow\""))
        .expect("an overflow series");
    assert!(overflow.ends_with(" 1308"), "{overflow}");
}

// Finding 11: outbound grants allowed any port without one, a plugin-set `Host`, and
// never matched IPv6.

#[tokio::test]
async fn outbound_grants_hold_to_port_host_and_ipv6() {
    let target = TestUpstream::start("target").await;
    let up = TestUpstream::start("app").await;
    // An IPv6 loopback server answering 204 to each request.
    let v6 = tokio::net::TcpListener::bind("[::1]:0")
        .await
        .expect("bind [::1]");
    let v6_addr = v6.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = v6.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "portless-grant"
path = {{ prefix = "/portless" }}
upstream = "app"
[[routes.plugins]]
plugin = "{fetcher}"
config = {{ url = "http://127.0.0.1:{port}/x" }}
grants = {{ http = ["127.0.0.1"] }}

[[routes]]
id = "host-header"
path = {{ prefix = "/host" }}
upstream = "app"
[[routes.plugins]]
plugin = "{fetcher}"
config = {{ url = "http://{target}/x", headers = [["host", "admin.internal"]] }}
grants = {{ http = ["{target}"] }}

[[routes]]
id = "ipv6"
path = {{ prefix = "/v6" }}
upstream = "app"
[[routes.plugins]]
plugin = "{fetcher}"
config = {{ url = "http://{v6_addr}/x" }}
grants = {{ http = ["{v6_addr}"] }}
"#,
        upstream_block("app", &up),
        fetcher = test_plugins::FETCHER,
        port = target.addr.port(),
        target = target.addr,
    );
    let gw = TestGateway::start(&config).await;
    let fetched = |echo: serde_json::Value| {
        echo["headers"]["x-fetch"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let mut conn = Conn::h1(gw.addr()).await;
    let portless = fetched(conn.send(get("h", "/portless")).await.json());
    assert!(portless.contains("HostNotGranted"), "{portless}");
    let host = fetched(conn.send(get("h", "/host")).await.json());
    assert!(host.contains("InvalidRequest"), "{host}");
    assert_eq!(target.requests(), 0, "neither request may reach the target");
    let v6 = fetched(conn.send(get("h", "/v6")).await.json());
    assert_eq!(v6, "status:204");
}

/// A slow route whose response-phase plugin holds its instance through the upstream call,
/// and a key-auth route beside it (`key_auth_extra` goes into its entry), sharing a pool
/// of `max_instances` slots.
fn slow_and_keyed_config(up: &TestUpstream, max_instances: u32, key_auth_extra: &str) -> String {
    format!(
        r#"version = 1
{LISTENER}[plugins]
max_instances = {max_instances}
cache_dir = "{{dir}}/cache"

{}
[[routes]]
id = "slow"
path = {{ prefix = "/slow" }}
rewrite = {{ strip_prefix = true }}
upstream = "app"
[[routes.plugins]]
plugin = "{editor}"
config = {{}}

[[routes]]
id = "keyed"
path = {{ prefix = "/keyed" }}
upstream = "app"
[[routes.plugins]]
plugin = "key-auth"
{key_auth_extra}config = {{ query = "api_key", consumers = {{ alice = {{ key_sha256 = "{alice}" }} }} }}
"#,
        upstream_block("app", up),
        editor = test_plugins::RESPONSE_EDITOR,
        alice = crate::key_auth::hash("alice-key"),
    )
}

// Finding 7: capacity exhaustion turned into an authentication bypass.

#[tokio::test]
async fn an_auth_plugin_without_capacity_fails_closed_whatever_its_policy() {
    let up = TestUpstream::start("app").await;
    // One instance slot for the whole gateway; a response-phase plugin on a slow route
    // holds it through the upstream call.
    let config = slow_and_keyed_config(&up, 1, "failure = \"open\"\n");
    let gw = TestGateway::start(&config).await;
    let addr = gw.addr();
    let slow = tokio::spawn(async move {
        Conn::h1(addr)
            .await
            .send(get("h", "/slow/delay/3000"))
            .await
    });
    up.arrived(1).await;
    // key-auth cannot get an instance: with `failure = "open"` this request used to go
    // upstream unauthenticated.
    let reply = Conn::h1(addr).await.send(get("h", "/keyed/orders")).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(
        up.requests(),
        1,
        "only the slow request reached the upstream"
    );
    assert_eq!(slow.await.expect("slow request").status, 200);
}

// Finding 7 (review): a request took its route-share permits one entry at a time, so
// concurrent requests on a two-entry route each held one and waited for the other.

#[tokio::test]
async fn a_pipeline_takes_its_route_share_for_all_entries_at_once() {
    let up = TestUpstream::start("app").await;
    // Two response-phase entries hold their instances through the upstream call; the
    // route may hold two instances: one request's worth.
    let config = format!(
        r#"version = 1
{LISTENER}[plugins]
max_instances = 4
max_instances_per_route = 2
cache_dir = "{{dir}}/cache"

{}
[[routes]]
id = "pair"
path = {{ prefix = "/pair" }}
rewrite = {{ strip_prefix = true }}
upstream = "app"
[[routes.plugins]]
plugin = "{editor}"
config = {{}}
budgets = {{ deadline = "5s" }}
[[routes.plugins]]
plugin = "{editor}"
config = {{}}
budgets = {{ deadline = "5s" }}
"#,
        upstream_block("app", &up),
        editor = test_plugins::RESPONSE_EDITOR,
    );
    let gw = TestGateway::start(&config).await;
    let addr = gw.addr();
    let requests: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn(async move {
                Conn::h1(addr)
                    .await
                    .send(get("h", "/pair/delay/200"))
                    .await
                    .status
            })
        })
        .collect();
    // They take turns: each waits for the whole share, well within its deadline. Taken
    // an entry at a time, two of them held one permit each until both timed out (503).
    for request in requests {
        assert_eq!(request.await.expect("request"), 200);
    }
    assert_eq!(up.requests(), 3);
}

// Finding 6 (part): a 200 MB reply was copied out of the guest before the budget was
// checked, and was refused as a trap by wasmtime's own limits, not as over budget.

#[tokio::test]
async fn a_reply_over_budget_is_refused_as_such_before_it_is_copied() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "big"
upstream = "app"
[[routes.plugins]]
plugin = "{oversized}"
config = {{ bytes = 200000000 }}
budgets = {{ deadline = "10s", memory_mib = 256, body_bytes = 1048576 }}
"#,
        upstream_block("app", &up),
        oversized = test_plugins::OVERSIZED,
    );
    let gw = TestGateway::start(&config).await;
    let reply = Conn::h1(gw.addr()).await.send(get("h", "/")).await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    let plugin = std::path::Path::new(test_plugins::OVERSIZED)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        gw.metrics
            .plugin_failures("big", &plugin, "output_too_large"),
        1,
        "{}",
        gw.metrics.encode()
    );
    assert_eq!(gw.metrics.plugin_failures("big", &plugin, "trap"), 0);
}

// Finding 6 (part): a plugin computing to its deadline, or filling a large memory in one
// uninterruptible instruction, ran on the threads that serve every route and stalled them.

#[tokio::test]
async fn plugins_that_compute_for_long_run_at_a_lower_priority_after_one_call() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "loop"
path = {{ prefix = "/loop" }}
upstream = "app"
[[routes.plugins]]
plugin = "{looper}"
budgets = {{ deadline = "30ms" }}

[[routes]]
id = "fill"
path = {{ prefix = "/fill" }}
upstream = "app"
[[routes.plugins]]
plugin = "{oversized}"
config = {{ bytes = 200000000 }}
budgets = {{ deadline = "10s", memory_mib = 256, body_bytes = 1048576 }}

[[routes]]
id = "ok"
path = {{ prefix = "/ok" }}
upstream = "app"
[[routes.plugins]]
plugin = "{pass}"
"#,
        upstream_block("app", &up),
        looper = test_plugins::LOOPER,
        oversized = test_plugins::OVERSIZED,
        pass = test_plugins::PASS_THROUGH,
    );
    let gw = TestGateway::start(&config).await;
    let stem = |path: &str| {
        std::path::Path::new(path)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned()
    };
    let (looper, oversized) = (stem(test_plugins::LOOPER), stem(test_plugins::OVERSIZED));
    let mut conn = Conn::h1(gw.addr()).await;
    // The first call of each runs where requests are served, and is what demotes it: the
    // loop by the epoch ticks it computes through, the 200 MB fill (one `memory.fill`, no
    // tick can split it) by the time its poll kept the thread.
    assert_eq!(conn.send(get("h", "/loop/1")).await.status, 503);
    assert_eq!(conn.send(get("h", "/fill/1")).await.status, 500);
    assert_eq!(gw.metrics.plugin_lane_calls("loop", &looper), 0);
    assert_eq!(gw.metrics.plugin_lane_calls("fill", &oversized), 0);
    // Their next calls run on the lane, and fail as before, by their own policy.
    assert_eq!(conn.send(get("h", "/loop/2")).await.status, 503);
    assert_eq!(conn.send(get("h", "/fill/2")).await.status, 500);
    assert!(
        gw.metrics.plugin_lane_calls("loop", &looper) >= 1,
        "{}",
        gw.metrics.encode()
    );
    assert!(gw.metrics.plugin_lane_calls("fill", &oversized) >= 1);
    assert_eq!(gw.metrics.plugin_failures("loop", &looper, "timeout"), 2);
    assert_eq!(
        gw.metrics
            .plugin_failures("fill", &oversized, "output_too_large"),
        2
    );
    // A quick plugin beside them is served as ever.
    assert_eq!(conn.send(get("h", "/ok/1")).await.status, 200);
}

// Finding 7 (second half): one slow route could hold every instance slot.

#[tokio::test]
async fn a_slow_route_cannot_take_every_instance_slot_from_the_others() {
    let up = TestUpstream::start("app").await;
    // Four slots, three of them at most for one route (the default three quarters).
    let config = slow_and_keyed_config(&up, 4, "");
    let gw = TestGateway::start(&config).await;
    let addr = gw.addr();
    // Four slow requests: three hold the route's share through their upstream call, the
    // fourth waits for the share (then gets 503 past its plugin deadline).
    let slow: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(async move {
                Conn::h1(addr)
                    .await
                    .send(get("h", "/slow/delay/1500"))
                    .await
                    .status
            })
        })
        .collect();
    up.arrived(3).await;
    // The other route still finds a slot: before the share, the slow route held all four
    // and this request got 503.
    let reply = Conn::h1(addr)
        .await
        .send(get("h", "/keyed/orders?api_key=alice-key"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let mut statuses = Vec::new();
    for task in slow {
        statuses.push(task.await.expect("slow request").as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 503]);
}

#[test]
fn a_route_share_larger_than_the_pool_is_a_config_error() {
    let config = format!(
        "version = 1\n{LISTENER}[plugins]\nmax_instances = 4\nmax_instances_per_route = 5\n\n\
         [upstreams.app]\ntargets = [\"127.0.0.1:9\"]\n\
         [[routes]]\nid = \"r\"\nupstream = \"app\"\n[[routes.plugins]]\nplugin = \"key-auth\"\n\
         config = {{ consumers = {{}} }}\n"
    );
    let error = crate::support::build_error(&config).expect("a config error");
    assert!(
        error.contains("gateway.toml:") && error.contains("between 1 and `max_instances` (4)"),
        "{error}"
    );
}

// Finding 6 (part): a plugin could build a head past every limit (and panic the request
// task past 24 576 header names).

#[tokio::test]
async fn a_plugin_cannot_build_a_head_past_the_listeners_limits() {
    let up = TestUpstream::start("app").await;
    let mut set = String::new();
    for i in 0..30_000 {
        set.push_str(&format!("x-h{i} = \"v\", "));
    }
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "many"
upstream = "app"
[[routes.plugins]]
plugin = "{tagger}"
config = {{ tag = "t", set = {{ {set} }} }}
budgets = {{ deadline = "20s", memory_mib = 64 }}
"#,
        upstream_block("app", &up),
        tagger = test_plugins::TAGGER,
    );
    let gw = TestGateway::start(&config).await;
    let answer = raw(
        gw.addr(),
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    // The edit past the limit is refused, the plugin fails, its policy (closed) answers:
    // a problem response, not an empty reply from a panicked task.
    assert_eq!(raw_status(&answer), 500, "{answer}");
    assert!(
        answer.contains("urn:portcullis:problem:plugin-failed"),
        "{answer}"
    );
    assert_eq!(up.requests(), 0);
}
