//! Plugins written in Python (componentize-py) and JavaScript (componentize-qjs for QuickJS,
//! componentize-js for StarlingMonkey), built from source by `sdk/toolchains/build` — the
//! script the SDK guides give authors — and run through the real gateway binary: the
//! examples of `examples/plugins/` accept, refuse and edit; their `print` and `console.log`
//! reach the log under the request id; fresh instances draw fresh random values and read a
//! clock that moves; and a deadline, a memory cap and an uncaught exception end one request
//! with the exception's message in the log, never the gateway.
//!
//! `examples.rs`: the examples and their configs; `sandbox.rs`: one probe per toolchain;
//! `cli.rs`: `plugin invoke`, `plugin new` and the SDK's declarations.
//!
//! The components are tens of megabytes (a whole CPython or SpiderMonkey), so every test
//! here shares one compile cache in the target folder: each is compiled once per checkout.

mod cli;
mod examples;
mod sandbox;

use std::path::{Path, PathBuf};

use aws_lc_rs::{digest, hmac};
use bytes::Bytes;
use http_body_util::Full;
use portcullis_test_plugins as plugins;

use crate::plugins::upstream_block;
use crate::support::client::request;
use crate::support::process::GatewayProcess;
use crate::support::upstream::TestUpstream;

#[path = "../../../host/benches/support/http_date.rs"]
mod http_date;

/// The compile cache shared by the tests of this file (see the module's doc).
fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("language-plugins-cache")
}

/// Runs `f` while no other test of this file compiles a component. A cold compile takes
/// 30–45 s of CPU for a Python or StarlingMonkey component; run side by side, the tests
/// would compile the same one several times over, each slower for the others. One at a
/// time, each component is compiled once, into the shared cache, and every later start
/// loads it from there.
fn one_compile_at_a_time<T>(f: impl FnOnce() -> T) -> T {
    static COMPILING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = COMPILING.lock().unwrap_or_else(|p| p.into_inner());
    f()
}

/// Starts the gateway binary on `routes` (TOML) in front of `up`.
fn gateway(up: &TestUpstream, routes: &str) -> (GatewayProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "version = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[plugins]\ncache_dir = \"{}\"\n{}\n{routes}",
        shared_cache().display(),
        upstream_block(up),
    );
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, config).expect("write config");
    // Loading the config compiles its plugins into the cache; the start then finds them.
    let (code, stdout, stderr) = one_compile_at_a_time(|| {
        crate::support::process::run_cli(&["validate", &path.display().to_string()])
    });
    assert_eq!(code, 0, "{stdout}{stderr}");
    (GatewayProcess::start(&path), dir)
}

fn route(id: &str, prefix: &str, plugin: &str, extra: &str) -> String {
    format!(
        "[[routes]]\nid = \"{id}\"\npath = {{ prefix = \"{prefix}\" }}\nupstream = \"app\"\n\
         [[routes.plugins]]\nplugin = \"{plugin}\"\n{extra}\n"
    )
}

/// The three toolchains' builds of the probe (`tests/plugins/lang-guests/`).
const PROBES: [(&str, &str); 3] = [
    ("py", plugins::PY_PROBE),
    ("qjs", plugins::JS_PROBE_QJS),
    ("sm", plugins::JS_PROBE_SM),
];

// --- Signing requests for the HMAC verifier (Python) -----------------------------------

const SECRET: &str = "a shared secret of some length";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A request signed as the verifier's doc describes.
fn signed(
    method: &str,
    path_and_query: &str,
    date: &str,
    body: &str,
    secret: &str,
) -> http::Request<Full<Bytes>> {
    let to_sign = format!(
        "{method}\n{path_and_query}\n{date}\n{}",
        hex(digest::digest(&digest::SHA256, body.as_bytes()).as_ref())
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let signature = hex(hmac::sign(&key, to_sign.as_bytes()).as_ref());
    request(method, "h", path_and_query)
        .header("x-key-id", "partner-a")
        .header("date", date)
        .header("x-signature", format!("sha256={signature}"))
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request")
}
