//! WASI for plugins: a component built for `wasm32-wasip2` with Rust's std
//! (`tests/plugins/wasi-guests/examples/wasi_std.rs`) runs in a per-instance sandbox:
//! real clocks, fresh random state, its stdout and stderr in the gateway's log under the
//! request's id, and no files, network, environment, arguments or stdin.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_test_plugins as plugins;

use crate::plugins::{PLUGINS, upstream_block, values};
use crate::support::client::{Conn, get};
use crate::support::process::GatewayProcess;
use crate::support::upstream::TestUpstream;
use crate::support::{LISTENER, TestGateway};

fn one(echo: &serde_json::Value, header: &str) -> String {
    let all = values(echo, header);
    assert_eq!(all.len(), 1, "{header}: {all:?}");
    all.into_iter().next().unwrap_or_default()
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_std_plugin_gets_clocks_and_random_but_no_files_network_or_environment() {
    let up = TestUpstream::start("app").await;
    // A port the plugin tries to connect to: a connection would queue here.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe");
    probe.set_nonblocking(true).expect("nonblocking");
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "wasi"
upstream = "app"
[[routes.plugins]]
plugin = "{wasi_std}"
config = {{ connect = "{probe}" }}
"#,
        upstream_block(&up),
        wasi_std = plugins::WASI_STD,
        probe = probe.local_addr().expect("probe addr"),
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let before = now_ns();
    let first = conn.send(get("h", "/a")).await;
    let after = now_ns();
    assert_eq!(first.status, 200, "{}", first.text());
    let echo = first.json();

    let wall: u128 = one(&echo, "x-wall-ns").parse().expect("a number");
    assert!(
        (before..=after).contains(&wall),
        "the guest's wall clock is the host's: {before} <= {wall} <= {after}"
    );
    let monotonic: u128 = one(&echo, "x-monotonic-ns").parse().expect("a number");
    assert!(
        monotonic >= 50_000,
        "the monotonic clock moves: {monotonic} ns"
    );
    for (header, expected) in [
        ("x-env", "0"),
        ("x-args", "0"),
        ("x-stdin", "0"),
        ("x-file", "denied"),
        ("x-connect", "denied"),
    ] {
        assert_eq!(one(&echo, header), expected, "{header}");
    }
    assert!(
        matches!(probe.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the plugin reached a socket on 127.0.0.1"
    );

    // A fresh instance per request: each seeds its own random state and reads the clock
    // again. (With the seed baked into the component, every instance would hash alike.)
    let second = conn.send(get("h", "/b")).await.json();
    assert_ne!(one(&echo, "x-random"), one(&second, "x-random"));
    let later: u128 = one(&second, "x-wall-ns").parse().expect("a number");
    assert!(later > wall, "the clock moves between instances");
}

#[tokio::test]
async fn a_std_plugin_that_exits_or_panics_fails_its_request_only() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "exits"
path = {{ prefix = "/exit" }}
upstream = "app"
[[routes.plugins]]
plugin = "{wasi_std}"
config = {{ exit = 3 }}

[[routes]]
id = "fine"
upstream = "app"
[[routes.plugins]]
plugin = "{wasi_std}"
"#,
        upstream_block(&up),
        wasi_std = plugins::WASI_STD,
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    for _ in 0..2 {
        let reply = conn.send(get("h", "/exit")).await;
        assert_eq!(reply.status, 500, "{}", reply.text());
        assert_eq!(conn.send(get("h", "/ok")).await.status, 200);
    }
}

#[tokio::test]
async fn a_snapshot_that_drew_random_values_is_the_same_at_every_start() {
    let up = TestUpstream::start("app").await;
    let cache = tempfile::tempdir().expect("tempdir");
    // The plugin's config check seeds std's hash keys through `wasi:random`.
    let config = format!(
        r#"version = 1
{LISTENER}[plugins]
cache_dir = "{cache}"
{}
[[routes]]
id = "pre"
upstream = "app"
[[routes.plugins]]
plugin = "{wasi_std}"
preinitialise = true
"#,
        upstream_block(&up),
        cache = cache.path().display(),
        wasi_std = plugins::WASI_STD,
    );
    let compiled = || {
        let mut files: Vec<_> = walk(&cache.path().join("compiled"));
        files.sort();
        files
    };
    let mut seen = Vec::new();
    for _ in 0..2 {
        let gw = TestGateway::start(&config).await;
        let reply = Conn::h1(gw.addr()).await.send(get("h", "/")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        drop(gw);
        seen.push(compiled());
    }
    assert!(!seen[0].is_empty(), "nothing was compiled into the cache");
    assert_eq!(
        seen[0], seen[1],
        "the second start compiled another snapshot"
    );
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn one_random_draw_is_capped_so_no_call_outruns_its_deadline() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "small"
path = {{ prefix = "/small" }}
upstream = "app"
[[routes.plugins]]
plugin = "{wasi_std}"
config = {{ random_bytes = 32 }}

[[routes]]
id = "huge"
path = {{ prefix = "/huge" }}
upstream = "app"
[[routes.plugins]]
plugin = "{wasi_std}"
config = {{ random_bytes = 1048576 }}
"#,
        upstream_block(&up),
        wasi_std = plugins::WASI_STD,
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let small = conn.send(get("h", "/small")).await;
    assert_eq!(one(&small.json(), "x-drawn"), "32");
    // A mebibyte in one host step, outside the memory budget: refused, the request fails.
    let huge = conn.send(get("h", "/huge")).await;
    assert_eq!(huge.status, 500, "{}", huge.text());
    assert_eq!(conn.send(get("h", "/small")).await.status, 200);
}

#[tokio::test]
async fn stdout_and_stderr_are_log_lines_under_the_request_id() {
    let up = TestUpstream::start("app").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        r#"version = 1
[[listeners]]
address = "127.0.0.1:0"
[plugins]
cache_dir = "{cache}"
{}
[[routes]]
id = "wasi"
upstream = "app"
[[routes.plugins]]
plugin = "{wasi_std}"

[[routes]]
id = "warm"
path = {{ prefix = "/warm" }}
upstream = "app"
[[routes.plugins]]
plugin = "{wasi_std}"
reuse = {{ max_instances = 1 }}

[[routes]]
id = "panics"
path = {{ prefix = "/panic" }}
upstream = "app"
[[routes.plugins]]
plugin = "{wasi_std}"
config = {{ panic = "the guest gave up" }}
"#,
        upstream_block(&up),
        cache = dir.path().join("cache").display(),
        wasi_std = plugins::WASI_STD,
    );
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, config).expect("write config");
    let gw = GatewayProcess::start(Path::new(&path));
    let mut conn = Conn::h1(gw.addr).await;
    assert_eq!(conn.send(get("h", "/hello")).await.status, 200);
    let access = gw.next_access();
    let request_id = access["request_id"]
        .as_str()
        .expect("a request id")
        .to_owned();

    for (message, stream, level) in [
        ("hello on stdout from /hello", "stdout", "INFO"),
        ("and a word on stderr", "stderr", "WARN"),
        // Written without a newline: logged when the instance goes.
        ("a last line without its newline", "stdout", "INFO"),
    ] {
        let line = gw.wait_for_ops(message);
        assert_eq!(line["stream"], stream, "{line}");
        assert_eq!(line["level"], level, "{line}");
        assert_eq!(line["route"], "wasi", "{line}");
        assert_eq!(line["plugin"], "wasi_std", "{line}");
        assert_eq!(line["request_id"], request_id.as_str(), "{line}");
    }

    // A warm instance serves one request after another: each line is filed under the
    // request that wrote it, an unfinished one too.
    let mut ids = Vec::new();
    for _ in 0..2 {
        assert_eq!(conn.send(get("h", "/warm")).await.status, 200);
        ids.push(gw.next_access()["request_id"].as_str().map(str::to_owned));
    }
    let line = gw.wait_for_ops("hello on stdout from /warm");
    assert_eq!(line["request_id"].as_str(), ids[0].as_deref(), "{line}");
    let line = gw.wait_for_ops("a last line without its newline");
    assert_eq!(line["route"], "warm", "{line}");
    assert_eq!(line["request_id"].as_str(), ids[0].as_deref(), "{line}");
    let line = gw.wait_for_ops("hello on stdout from /warm");
    assert_eq!(line["request_id"].as_str(), ids[1].as_deref(), "{line}");

    // A panic is a trap, and its message reaches the log through stderr.
    let reply = conn.send(get("h", "/panic")).await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    let line = gw.wait_for_ops_containing("the guest gave up");
    assert_eq!(line["stream"], "stderr", "{line}");
    assert_eq!(line["route"], "panics", "{line}");
}
