//! `portcullis plugin invoke` and `portcullis plugin new`, and the JS SDK's declarations.

use std::path::Path;
use std::time::SystemTime;

use portcullis_test_plugins as plugins;

use super::http_date::http_date;
use super::{SECRET, one_compile_at_a_time, shared_cache, signed};

// --- `portcullis plugin invoke` ----------------------------------------------------------------

/// `portcullis plugin invoke --json ARGS`, compiling into the shared cache: the exit code,
/// the report and what went to stderr.
fn invoke(args: &[&str]) -> (i32, serde_json::Value, String) {
    let cache = shared_cache().display().to_string();
    let mut all = vec!["plugin", "invoke", "--json", "--cache-dir", &cache];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = one_compile_at_a_time(|| crate::support::process::run_cli(&all));
    let report = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (code, report, stderr)
}

#[test]
fn plugin_invoke_runs_each_example_in_the_sandbox() {
    let dir = tempfile::tempdir().expect("tempdir");
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
    ]);
    assert_eq!(code, 0, "{report:#}{stderr}");
    assert_eq!(report["request"]["outcome"], "continue", "{report:#}");
    let edits = report["request"]["edits"].to_string();
    assert!(edits.contains("- x-signature: sha256="), "{edits}");
    assert!(edits.contains("+ x-signed-by: partner-a"), "{edits}");
    assert_eq!(report["identity"]["consumer"], "partner-a", "{report:#}");
    // The instance's memory: a CPython holds megabytes, within the entry's budget.
    let peak = report["memory"]["peak_bytes"].as_u64().expect("a peak");
    let cap = report["memory"]["cap_bytes"].as_u64().expect("a cap");
    assert!(peak > 1 << 20 && peak <= cap, "{report:#}");
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

/// `portcullis plugin new NAME --lang LANG --dir DIR`: the exit code, stdout and stderr.
fn plugin_new(name: &str, lang: &str, dir: &Path) -> (i32, String, String) {
    let dir = dir.display().to_string();
    crate::support::process::run_cli(&["plugin", "new", name, "--lang", lang, "--dir", &dir])
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
        let (code, stdout, stderr) = plugin_new(name, lang, dir.path());
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains("./test.sh"), "{stdout}");
        let out = one_compile_at_a_time(|| run_in(&dir.path().join(name), "./test.sh", &[], &env));
        assert!(out.contains("all tests passed"), "{lang}: {out}");
    }

    // Rust: its own tests run natively, and its component runs in the sandbox.
    let (code, stdout, stderr) = plugin_new("tenant-rs", "rust", dir.path());
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
    let (code, _, stderr) = plugin_new("tenant-rs", "rust", dir.path());
    assert_eq!(code, 1);
    assert!(stderr.contains("already exists"), "{stderr}");
    let (code, _, stderr) =
        crate::support::process::run_cli(&["plugin", "new", "../x", "--lang", "js"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot name a plugin"), "{stderr}");
}
