//! Plugins written in Python (componentize-py) and JavaScript (componentize-qjs for QuickJS,
//! componentize-js for StarlingMonkey), built from source by `sdk/toolchains/build` — the
//! script the SDK guides give authors — and run through the real gateway binary: the
//! examples of `examples/plugins/` accept, refuse and edit; their `print` and `console.log`
//! reach the log under the request id; fresh instances draw fresh random values and read a
//! clock that moves; and a deadline, a memory cap and an uncaught exception end one request
//! with the exception's message in the log, never the gateway.
//!
//! The components are tens of megabytes (a whole CPython or SpiderMonkey), so every test
//! here shares one compile cache in the target folder: each is compiled once per checkout.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{digest, hmac};
use bytes::Bytes;
use http_body_util::Full;
use portcullis_test_plugins as plugins;

use crate::plugins::{upstream_block, values};
#[path = "../../host/benches/support/http_date.rs"]
mod http_date;
use crate::support::client::{Conn, get, request};
use crate::support::process::GatewayProcess;
use crate::support::upstream::TestUpstream;
use http_date::http_date;

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

// --- The HMAC verifier (Python) ---------------------------------------------------------

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

#[tokio::test]
async fn the_python_hmac_verifier_accepts_refuses_and_edits() {
    let up = TestUpstream::start("app").await;
    let (gw, _dir) = gateway(
        &up,
        &route(
            "signed",
            "/",
            plugins::HMAC_VERIFIER,
            &format!(
                "config = {{ keys = {{ \"partner-a\" = \"{SECRET}\" }}, max_skew_seconds = 60 }}"
            ),
        ),
    );
    let mut conn = Conn::h1(gw.addr).await;
    let now = http_date(SystemTime::now());

    // Accepted: the upstream gets the request without its signature, with the signer.
    let ok = conn
        .send(signed("POST", "/orders?x=1", &now, "{\"qty\":2}", SECRET))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let echo = ok.json();
    assert!(values(&echo, "x-signature").is_empty(), "{echo}");
    assert_eq!(values(&echo, "x-signed-by"), ["partner-a"], "{echo}");
    assert_eq!(echo["body"], "{\"qty\":2}");
    let access = gw.next_access();
    assert_eq!(access["consumer"], "partner-a", "{access}");
    let line = gw.wait_for_ops("verified a request signed by partner-a");
    assert_eq!(line["stream"], "stdout", "{line}");
    assert_eq!(line["route"], "signed", "{line}");
    assert_eq!(line["request_id"], access["request_id"], "{line}");

    // Refused: a wrong secret, a changed body, a stale date, a missing header.
    let stale = http_date(SystemTime::now() - Duration::from_secs(600));
    let mut tampered = signed("POST", "/orders", &now, "{\"qty\":2}", SECRET);
    *tampered.body_mut() = Full::new(Bytes::from_static(b"{\"qty\":200}"));
    for (case, req, reason) in [
        (
            "wrong secret",
            signed("GET", "/orders", &now, "", "another secret, same length"),
            "the signature does not match",
        ),
        ("changed body", tampered, "the signature does not match"),
        (
            "stale date",
            signed("GET", "/orders", &stale, "", SECRET),
            "the date is too far from the gateway's clock",
        ),
        (
            "no signature",
            get("h", "/orders"),
            "the request must carry x-key-id, date and x-signature",
        ),
    ] {
        let reply = conn.send(req).await;
        assert_eq!(reply.status, 401, "{case}: {}", reply.text());
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json"),
            "{case}"
        );
        assert_eq!(reply.json()["detail"], reason, "{case}");
        assert!(reply.header("www-authenticate").is_some(), "{case}");
    }
    assert_eq!(up.requests(), 1, "no refused request reached the upstream");
}

// --- The response redactor (JavaScript, both engines) ------------------------------------

#[tokio::test]
async fn the_js_redactor_masks_passes_and_refuses_on_both_engines() {
    let up = TestUpstream::start("app").await;
    let config = "config = { fields = [\"password\", \"SSN\"], mask = \"[hidden]\" }";
    // The prefix is stripped, so the test upstream's own paths (`/bytes/5`) answer.
    let strip = |r: String| {
        r.replacen(
            "upstream = ",
            "rewrite = { strip_prefix = true }\nupstream = ",
            1,
        )
    };
    let routes = strip(route("redact-qjs", "/qjs", plugins::REDACTOR_QJS, config))
        + &strip(route("redact-sm", "/sm", plugins::REDACTOR_SM, config));
    let (gw, _dir) = gateway(&up, &routes);
    let mut conn = Conn::h1(gw.addr).await;
    for engine in ["qjs", "sm"] {
        // Edited: the echo of the request's headers carries the fields to mask.
        let req = request("GET", "h", &format!("/{engine}/me"))
            .header("password", "hunter2")
            .header("ssn", "078-05-1120")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let reply = conn.send(req).await;
        assert_eq!(reply.status, 200, "{engine}: {}", reply.text());
        let text = reply.text();
        assert!(
            !text.contains("hunter2") && !text.contains("078-05"),
            "{engine}: {text}"
        );
        let echo = reply.json();
        assert_eq!(echo["headers"]["password"], "[hidden]", "{engine}: {echo}");
        assert_eq!(echo["headers"]["ssn"], "[hidden]", "{engine}: {echo}");
        assert_eq!(echo["path"], "/me", "{engine}");
        assert_eq!(reply.header("x-redacted"), Some("2"), "{engine}");
        let access = gw.next_access();
        let line = gw.wait_for_ops("redacted 2 field(s)");
        assert_eq!(line["route"], format!("redact-{engine}"), "{line}");
        assert_eq!(line["request_id"], access["request_id"], "{line}");

        // Passed as it is: a JSON answer with nothing to mask, and one that is not JSON.
        let reply = conn.send(get("h", &format!("/{engine}/plain"))).await;
        assert_eq!(reply.status, 200, "{engine}");
        assert_eq!(reply.header("x-redacted"), None, "{engine}");
        let reply = conn.send(get("h", &format!("/{engine}/bytes/5"))).await;
        assert_eq!(reply.status, 200, "{engine}");
        assert_eq!(reply.text(), "xxxxx", "{engine}");

        // Refused: an answer that says JSON and does not parse cannot be vouched for.
        let reply = conn.send(get("h", &format!("/{engine}/broken-json"))).await;
        assert_eq!(reply.status, 502, "{engine}: {}", reply.text());
        assert!(!reply.text().contains("password"), "{engine}");
        for _ in 0..3 {
            gw.next_access();
        }
    }
}

// --- The sandbox, per language -------------------------------------------------------------

/// One gateway for the probes of every toolchain (each compiled once).
#[tokio::test]
async fn the_sandbox_per_language() {
    let up = TestUpstream::start("app").await;
    let budgets = "budgets = { deadline = \"300ms\", memory_mib = 64 }";
    let routes: String = PROBES
        .iter()
        .map(|(lang, plugin)| {
            route(
                lang,
                &format!("/{lang}/"),
                plugin,
                &format!("config = {{ tag = \"{lang}-probe\" }}\n{budgets}"),
            )
        })
        .collect();
    let (gw, _dir) = gateway(&up, &routes);
    fresh_instances_draw_fresh_random_values_and_read_a_moving_clock(&gw).await;
    print_deny_and_failures(&gw).await;
}

async fn fresh_instances_draw_fresh_random_values_and_read_a_moving_clock(gw: &GatewayProcess) {
    let mut conn = Conn::h1(gw.addr).await;
    for (lang, _) in PROBES {
        let mut randoms = Vec::new();
        let mut clocks = Vec::new();
        for _ in 0..2 {
            let before = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("now")
                .as_millis();
            let reply = conn.send(get("h", &format!("/{lang}/sample"))).await;
            assert_eq!(reply.status, 200, "{lang}: {}", reply.text());
            gw.next_access();
            let echo = reply.json();
            randoms.push(values(&echo, "x-random"));
            let wall_ms: u128 = match values(&echo, "x-wall-ns").first() {
                Some(ns) => ns.parse::<u128>().expect("ns") / 1_000_000,
                None => values(&echo, "x-wall-ms")[0].parse().expect("ms"),
            };
            assert!(
                wall_ms + 1 >= before && wall_ms <= before + 5_000,
                "{lang}: the guest's clock is the host's: {wall_ms} vs {before}"
            );
            clocks.push(wall_ms);
            if lang != "py" {
                assert_eq!(values(&echo, "x-text"), ["π ok"], "{lang}: TextEncoder");
                assert_eq!(values(&echo, "x-absent"), ["undefined"], "{lang}");
            }
        }
        assert_ne!(
            randoms[0], randoms[1],
            "{lang}: two fresh instances drew the same random value"
        );
        assert!(clocks[1] >= clocks[0], "{lang}: {clocks:?}");
    }
}

async fn print_deny_and_failures(gw: &GatewayProcess) {
    let mut conn = Conn::h1(gw.addr).await;
    let probe = |lang: &str, what: &str| {
        request("GET", "h", &format!("/{lang}/{what}"))
            .header("x-probe", what)
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    for (lang, _) in PROBES {
        let reply = conn.send(probe(lang, "print")).await;
        assert_eq!(reply.status, 200, "{lang}: {}", reply.text());
        let access = gw.next_access();
        let word = if lang == "py" { "print" } else { "console.log" };
        let line = gw.wait_for_ops(&format!("{lang}-probe: {word} from /{lang}/print"));
        assert_eq!(line["route"], lang, "{line}");
        assert_eq!(line["request_id"], access["request_id"], "{line}");

        let reply = conn.send(probe(lang, "deny")).await;
        assert_eq!(reply.status, 403, "{lang}: {}", reply.text());
        assert_eq!(
            reply.json()["detail"],
            "the probe was asked to deny",
            "{lang}"
        );
        gw.next_access();

        // An uncaught exception is a plugin error carrying its type and message (not a
        // bare trap); a loop meets the deadline, a hoard the memory cap.
        let raise = if lang == "py" { "raise" } else { "throw" };
        for (what, status, kind, text) in [
            (raise, 500, "error", "Error: the probe was asked to fail"),
            ("spin", 503, "timeout", "deadline exceeded"),
            ("grow", 500, "memory", "memory budget exhausted"),
        ] {
            let reply = conn.send(probe(lang, what)).await;
            assert_eq!(reply.status, status, "{lang} {what}: {}", reply.text());
            assert!(
                !reply.text().contains("the probe"),
                "{lang} {what}: the client is not told the plugin's reasons"
            );
            let access = gw.next_access();
            let line = gw.wait_for_ops("plugin failed");
            assert_eq!(line["route"], lang, "{line}");
            assert_eq!(line["kind"], kind, "{lang} {what}: {line}");
            assert_eq!(line["request_id"], access["request_id"], "{line}");
            let error = line["error"].as_str().unwrap_or_default();
            assert!(error.contains(text), "{lang} {what}: {line}");
        }
        // The gateway and the route still serve.
        assert_eq!(conn.send(probe(lang, "sample")).await.status, 200, "{lang}");
        gw.next_access();
    }
}

// --- The example configs --------------------------------------------------------------------

/// Every config in `examples/` loads (`portcullis validate`, which also loads each plugin
/// and runs its `check-config`), with the example plugins built where the configs' own
/// instructions put them.
#[test]
fn every_example_config_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().expect("tempdir");
    for (built, place) in [
        (
            plugins::HMAC_VERIFIER,
            "plugins/hmac-verifier/hmac-verifier.wasm",
        ),
        (plugins::REDACTOR_QJS, "plugins/redactor/redactor-qjs.wasm"),
        (plugins::REDACTOR_SM, "plugins/redactor/redactor-sm.wasm"),
    ] {
        let to = dir.path().join(place);
        std::fs::create_dir_all(to.parent().expect("folder")).expect("mkdir");
        std::fs::copy(built, &to).expect("copy the built plugin");
    }
    // Files the configs hand to plugins.
    let openapi = dir.path().join("openapi");
    std::fs::create_dir_all(&openapi).expect("mkdir");
    for entry in std::fs::read_dir(root.join("examples/openapi")).expect("examples/openapi") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, openapi.join(path.file_name().expect("name"))).expect("copy");
    }
    let mut seen = 0;
    let mut examples: Vec<PathBuf> = std::fs::read_dir(root.join("examples"))
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    examples.sort();
    for example in examples {
        let copy = dir.path().join(example.file_name().expect("name"));
        let text = std::fs::read_to_string(&example).expect("read the example");
        // Compiled once for the whole suite, as in the tests above.
        let text = text.replacen(
            "[[listeners]]",
            &format!(
                "[plugins]\ncache_dir = \"{}\"\n\n[[listeners]]",
                shared_cache().display()
            ),
            1,
        );
        std::fs::write(&copy, text).expect("write");
        let (code, stdout, stderr) = one_compile_at_a_time(|| {
            crate::support::process::run_cli(&["validate", &copy.display().to_string()])
        });
        assert_eq!(code, 0, "{}: {stdout}{stderr}", example.display());
        seen += 1;
    }
    assert!(seen >= 6, "examples/*.toml: {seen}");
}

// --- `portcullis plugin invoke` ----------------------------------------------------------------

fn invoke(args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut all = vec!["plugin", "invoke", "--json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = one_compile_at_a_time(|| crate::support::process::run_cli(&all));
    let report = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (code, report, stderr)
}

#[test]
fn plugin_invoke_runs_each_example_in_the_sandbox() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = shared_cache().display().to_string();
    let file = |name: &str, text: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };

    // The Python verifier: a signed request goes on, edited, with an identity.
    let date = http_date(SystemTime::now());
    let req = signed("POST", "/orders", &date, "{\"qty\":2}", SECRET);
    let mut text = String::from("POST /orders HTTP/1.1\r\nhost: api.test\r\n");
    for (name, value) in req.headers() {
        text.push_str(&format!("{name}: {}\r\n", value.to_str().expect("ascii")));
    }
    text.push_str("content-length: 9\r\n\r\n{\"qty\":2}");
    let signed_file = file("signed.http", text.as_bytes());
    let config = format!("{{\"keys\": {{\"partner-a\": \"{SECRET}\"}}}}");
    let (code, report, stderr) = invoke(&[
        plugins::HMAC_VERIFIER,
        "--config",
        &config,
        "--request",
        &signed_file,
        "--cache-dir",
        &cache,
    ]);
    assert_eq!(code, 0, "{report:#}{stderr}");
    assert_eq!(report["request"]["outcome"], "continue", "{report:#}");
    let edits = report["request"]["edits"].to_string();
    assert!(edits.contains("- x-signature: sha256="), "{edits}");
    assert!(edits.contains("+ x-signed-by: partner-a"), "{edits}");
    assert_eq!(report["identity"]["consumer"], "partner-a", "{report:#}");
    assert!(
        report["logs"]
            .to_string()
            .contains("verified a request signed by partner-a"),
        "{report:#}"
    );
    // An unsigned one is answered 401, and the human report says so.
    let unsigned = file(
        "unsigned.http",
        b"GET /orders HTTP/1.1\r\nhost: api.test\r\n\r\n",
    );
    let (code, report, _) = invoke(&[
        plugins::HMAC_VERIFIER,
        "--config",
        &config,
        "--request",
        &unsigned,
        "--cache-dir",
        &cache,
    ]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["request"]["outcome"], "respond", "{report:#}");
    assert_eq!(report["request"]["reply"]["status"], 401, "{report:#}");

    // The JavaScript redactor on both engines: the upstream's answer is edited.
    let request = file("me.http", b"GET /me HTTP/1.1\r\nhost: api.test\r\n\r\n");
    let response = file(
        "me.response",
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 35\r\n\r\n{\"name\":\"Ann\",\"password\":\"hunter2\"}",
    );
    for plugin in [plugins::REDACTOR_QJS, plugins::REDACTOR_SM] {
        let (code, report, stderr) = invoke(&[
            plugin,
            "--config",
            "{\"fields\": [\"password\"]}",
            "--request",
            &request,
            "--response",
            &response,
            "--cache-dir",
            &cache,
        ]);
        assert_eq!(code, 0, "{plugin}: {report:#}{stderr}");
        assert_eq!(report["response"]["outcome"], "done", "{report:#}");
        let edits = report["response"]["edits"].to_string();
        assert!(
            edits.contains("***") && !edits.contains("hunter2"),
            "{edits}"
        );
        assert!(edits.contains("+ x-redacted: 1"), "{edits}");
    }

    // Without --response, the report says the response phase did not run.
    let (code, report, _) = invoke(&[
        plugins::REDACTOR_QJS,
        "--config",
        "{\"fields\": [\"password\"]}",
        "--request",
        &request,
        "--cache-dir",
        &cache,
    ]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["response"]["outcome"], "not run", "{report:#}");

    // Bad input is refused with a reason, before anything runs.
    let unframed = file(
        "unframed.http",
        b"POST /x HTTP/1.1\r\nhost: h\r\n\r\nbody without a length",
    );
    let (code, _, stderr) = invoke(&[plugins::REDACTOR_QJS, "--request", &unframed]);
    assert_eq!(code, 1);
    assert!(stderr.contains("add `content-length: 21`"), "{stderr}");
    let (code, _, stderr) = invoke(&[
        plugins::REDACTOR_QJS,
        "--config",
        "[1]",
        "--request",
        &request,
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--config must be a JSON object"),
        "{stderr}"
    );
    let (code, _, stderr) = invoke(&[
        plugins::REDACTOR_QJS,
        "--config",
        "{\"fields\": []}",
        "--request",
        &request,
        "--cache-dir",
        &cache,
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("`fields` must be a non-empty list"),
        "{stderr}"
    );
}

/// The contract's TypeScript declarations in `sdk/js/types/` are what `sdk/js/gen-types`
/// makes of `wit/` today: a change of the WIT without them fails here.
#[test]
fn the_js_sdk_declarations_match_the_wit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().expect("tempdir");
    let status = std::process::Command::new(root.join("sdk/js/gen-types"))
        .arg(dir.path())
        .status()
        .expect("run sdk/js/gen-types");
    assert!(status.success());
    let mut generated = Vec::new();
    for sub in ["", "interfaces"] {
        for entry in std::fs::read_dir(dir.path().join(sub)).expect("generated") {
            let path = entry.expect("entry").path();
            if path.is_file() {
                generated.push(path);
            }
        }
    }
    assert!(generated.len() >= 6, "{generated:?}");
    for path in generated {
        let relative = path.strip_prefix(dir.path()).expect("inside");
        let committed = root.join("sdk/js/types").join(relative);
        assert_eq!(
            std::fs::read_to_string(&committed).unwrap_or_default(),
            std::fs::read_to_string(&path).expect("read"),
            "{} is out of date: run sdk/js/gen-types",
            committed.display()
        );
    }
}

// --- `portcullis plugin new` ---------------------------------------------------------------------

/// A command run in `dir` with the outer cargo's settings removed (they are for this test
/// crate, not for the project being built), panicking with its output when it fails.
fn run_in(dir: &Path, program: &str, args: &[&str], env: &[(&str, String)]) -> String {
    let mut command = std::process::Command::new(program);
    command.current_dir(dir).args(args);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" || key == "RUSTFLAGS" {
            command.env_remove(&key);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{program} {args:?} in {}:\n{text}",
        dir.display()
    );
    text
}

#[test]
fn plugin_new_projects_build_and_pass_their_own_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().expect("root");
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = crate::support::process::binary().to_owned();
    // The project's scripts use the repository's toolchains instead of installing their own.
    run_in(&root, "sdk/toolchains/install", &[], &[]);
    let env = [
        ("PORTCULLIS", binary.clone()),
        (
            "PORTCULLIS_PLUGIN_CACHE",
            shared_cache().display().to_string(),
        ),
        (
            "PORTCULLIS_PYTHON_TOOLS",
            root.join(".tools/python/bin").display().to_string(),
        ),
        (
            "PORTCULLIS_JS_TOOLS",
            root.join("sdk/js/node_modules/.bin").display().to_string(),
        ),
    ];
    for (lang, name) in [("python", "tenant-py"), ("js", "tenant-js")] {
        let (code, stdout, stderr) = crate::support::process::run_cli(&[
            "plugin",
            "new",
            name,
            "--lang",
            lang,
            "--dir",
            &dir.path().display().to_string(),
        ]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains("./test.sh"), "{stdout}");
        let out = one_compile_at_a_time(|| run_in(&dir.path().join(name), "./test.sh", &[], &env));
        assert!(out.contains("all tests passed"), "{lang}: {out}");
    }

    // Rust: its own tests run natively, and its component runs in the sandbox.
    let (code, stdout, stderr) = crate::support::process::run_cli(&[
        "plugin",
        "new",
        "tenant-rs",
        "--lang",
        "rust",
        "--dir",
        &dir.path().display().to_string(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let project = dir.path().join("tenant-rs");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // One target folder for every run, so the SDK's dependencies are built once.
    let target = [(
        "CARGO_TARGET_DIR",
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("scaffold-rust")
            .display()
            .to_string(),
    )];
    let out = run_in(&project, &cargo, &["test", "--quiet"], &target);
    assert!(out.contains("2 passed"), "{out}");
    run_in(
        &project,
        &cargo,
        &["build", "--quiet", "--release", "--target", "wasm32-wasip2"],
        &target,
    );
    let component = Path::new(&target[0].1).join("wasm32-wasip2/release/tenant_rs.wasm");
    let request = dir.path().join("req.http");
    std::fs::write(
        &request,
        "GET / HTTP/1.1\r\nhost: h\r\nx-tenant: acme\r\n\r\n",
    )
    .expect("write");
    let (code, report, stderr) = invoke(&[
        &component.display().to_string(),
        "--config",
        "{\"header\": \"x-tenant\"}",
        "--request",
        &request.display().to_string(),
    ]);
    assert_eq!(code, 0, "{report:#}{stderr}");
    assert!(
        report["request"]["edits"]
            .to_string()
            .contains("+ x-tenant-rs: checked"),
        "{report:#}"
    );

    // Nothing is overwritten, and a name that cannot be one is refused.
    let (code, _, stderr) = crate::support::process::run_cli(&[
        "plugin",
        "new",
        "tenant-rs",
        "--lang",
        "rust",
        "--dir",
        &dir.path().display().to_string(),
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("already exists"), "{stderr}");
    let (code, _, stderr) =
        crate::support::process::run_cli(&["plugin", "new", "../x", "--lang", "js"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot name a plugin"), "{stderr}");
}
