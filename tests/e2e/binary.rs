//! The `portcullis` binary itself: `validate` diagnostics, the access log it writes,
//! graceful shutdown on SIGTERM, and the bundled quickstart config.

use std::path::Path;

use bytes::Bytes;
use http_body_util::Full;

use crate::support::client::{Conn, get_once, request};
use crate::support::process::{GatewayProcess, run_cli};
use crate::support::upstream::TestUpstream;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

fn repo_file(rel: &str) -> String {
    format!("{}/../{rel}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn validate_accepts_the_quickstart_config() {
    let (code, stdout, stderr) = run_cli(&["validate", &repo_file("examples/quickstart.toml")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
}

#[test]
fn validate_reports_file_line_column_and_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "syntax.toml",
            "version = 1\n[[listeners]]\naddress = \"127.0.0.1:0\n",
            ":3:",
            "",
        ),
        (
            "unknown-key.toml",
            "version = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\nadress = \"x\"\n",
            ":4:1:",
            "unknown field `adress`",
        ),
        (
            "wrong-type.toml",
            "version = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[listeners.limits]\nmax_headers = \"many\"\n",
            ":5:15:",
            "invalid type",
        ),
        (
            "unknown-upstream.toml",
            "version = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[upstreams.api]\ntargets = [\"127.0.0.1:9\"]\n\n[[routes]]\nid = \"r\"\nupstream = \"apii\"\n",
            ":10:12:",
            "upstream `apii`, which is not defined",
        ),
    ];
    for (name, text, position, message) in cases {
        let path = write(dir.path(), name, text);
        let (code, _stdout, stderr) = run_cli(&["validate", &path]);
        assert_eq!(code, 1, "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}{position}")),
            "{name}: {stderr}"
        );
        assert!(stderr.contains(message), "{name}: {stderr}");
        assert!(stderr.contains("hint:"), "{name}: {stderr}");
    }
    let path = write(dir.path(), "unknown-upstream.toml", cases[3].1);
    let (_, _, stderr) = run_cli(&["validate", &path]);
    assert!(stderr.contains("defined upstreams: api"), "{stderr}");
}

#[test]
fn validate_reports_every_error_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "many.toml",
        "version = 1\n[[listeners]]\naddress = \"nowhere\"\n\n[[routes]]\nid = \"a\"\npath = { template = \"/u/{\" }\nupstream = \"x\"\nrate_limits = [\"nope\"]\n",
    );
    let (code, _, stderr) = run_cli(&["validate", &path]);
    assert_eq!(code, 1);
    assert!(stderr.contains("many.toml:3:11:"), "{stderr}");
    assert!(stderr.contains("not an IP:PORT"), "{stderr}");
    assert!(stderr.contains("many.toml:7:8:"), "{stderr}");
    assert!(stderr.contains("rate-limit policy `nope`"), "{stderr}");
    assert!(stderr.contains("errors"), "{stderr}");
}

#[test]
fn help_explains_each_command() {
    let (code, stdout, _) = run_cli(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("run") && stdout.contains("validate"));
    let (code, stdout, _) = run_cli(&["run", "--help"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("--config") && stdout.contains("drain_timeout"),
        "{stdout}"
    );
}

#[tokio::test]
async fn quickstart_answers_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(repo_file("examples/quickstart.toml"))
        .expect("quickstart")
        .replace("127.0.0.1:8080", "127.0.0.1:0");
    let path = write(dir.path(), "quickstart.toml", &text);
    let gw = GatewayProcess::start(Path::new(&path));
    let reply = get_once(gw.addr, "127.0.0.1", "/").await;
    assert_eq!(reply.status, 200);
    assert!(reply.text().contains("Portcullis"));

    // The tour's second route: a pipeline of built-in plugins.
    let reply = get_once(gw.addr, "127.0.0.1", "/api/hello").await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert!(reply.header("www-authenticate").is_some());
    let mut conn = Conn::h1(gw.addr).await;
    let with_key = || {
        request("GET", "127.0.0.1", "/api/hello")
            .header("x-api-key", "demo-key-alice")
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    let reply = conn.send(with_key()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-served-by"), Some("portcullis"));
    assert!(reply.header("ratelimit-policy").is_some());
    // Ten a minute for alice: the eleventh is refused.
    let mut last = reply.status;
    for _ in 0..10 {
        last = conn.send(with_key()).await.status;
    }
    assert_eq!(last, 429);
}

#[tokio::test]
async fn access_log_has_the_fields_and_never_a_secret() {
    let up = TestUpstream::start("svc").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        r#"version = 1
[access_log]
headers = ["user-agent", "authorization", "cookie", "x-api-key"]
secret_headers = ["x-api-key"]

[[listeners]]
address = "127.0.0.1:0"

[upstreams.svc]
targets = ["{}"]

[[routes]]
id = "orders"
path = {{ prefix = "/orders" }}
upstream = "svc"
"#,
        up.addr
    );
    let path = write(dir.path(), "gw.toml", &config);
    let gw = GatewayProcess::start(Path::new(&path));
    let req = request("POST", "shop.example", "/orders/17?token=SECRET-QUERY&x=1")
        .header("authorization", "Bearer SECRET-BEARER")
        .header("cookie", "session=SECRET-COOKIE")
        .header("proxy-authorization", "Basic SECRET-PROXY")
        .header("x-api-key", "SECRET-KEY")
        .header("user-agent", "e2e-test")
        .header("x-request-id", "log-test-1")
        .body(Full::new(Bytes::from_static(b"0123456789")))
        .expect("req");
    let reply = Conn::h1(gw.addr).await.send(req).await;
    assert_eq!(reply.status, 200);

    let line = gw.next_access();
    let text = line.to_string();
    for secret in [
        "SECRET-QUERY",
        "SECRET-BEARER",
        "SECRET-COOKIE",
        "SECRET-PROXY",
        "SECRET-KEY",
        "token=",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the access log: {text}"
        );
    }
    assert_eq!(line["request_id"], "log-test-1");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["host"], "shop.example");
    assert_eq!(line["path"], "/orders/17");
    assert_eq!(line["route"], "orders");
    assert_eq!(line["status"], 200);
    assert_eq!(line["client_ip"], "127.0.0.1");
    assert_eq!(line["bytes_in"], 10);
    assert_eq!(line["bytes_out"], reply.body.len());
    assert_eq!(line["upstream"], up.addr.to_string());
    assert_eq!(line["rate_limit"], "none");
    assert!(line["duration_ms"].as_f64().is_some());
    assert!(line["upstream_ms"].as_f64().is_some());
    assert!(line["timestamp"].as_str().is_some());
    assert!(
        text.contains("e2e-test"),
        "configured header is logged: {text}"
    );

    let reply = get_once(gw.addr, "shop.example", "/missing?token=SECRET-QUERY").await;
    assert_eq!(reply.status, 404);
    let line = gw.next_access();
    assert_eq!(line["status"], 404);
    assert_eq!(line["flag"], "NR");
    assert!(!line.to_string().contains("SECRET"));
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let up = TestUpstream::start("svc").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "version = 1\n[server]\ndrain_timeout = \"20s\"\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [upstreams.svc]\ntargets = [\"{}\"]\n[[routes]]\nid = \"all\"\nupstream = \"svc\"\n",
        up.addr
    );
    let path = write(dir.path(), "gw.toml", &config);
    let gw = GatewayProcess::start(Path::new(&path));
    let addr = gw.addr;
    let slow = tokio::spawn(async move { get_once(addr, "h", "/delay/1500").await });
    up.arrived(1).await;

    gw.signal("TERM");
    gw.wait_for_ops("draining");
    // No new connections once draining has begun.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    let reply = slow.await.expect("slow request");
    assert_eq!(reply.status, 200, "the in-flight request completed");
    let status = tokio::task::spawn_blocking(move || gw.wait())
        .await
        .expect("wait");
    assert!(status.success(), "exit status {status:?}");
}

/// Every configuration example in README.md must stay a valid config shape.
#[test]
fn readme_config_examples_parse() {
    let readme = std::fs::read_to_string(repo_file("README.md")).expect("README");
    let blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .collect();
    assert!(
        blocks.len() >= 2,
        "the README shows the config and the plugins"
    );
    let path = std::path::Path::new("README.md");
    for block in blocks {
        // Fragments (such as the plugin section) are shown without the version line.
        let text = if block.contains("version = ") {
            block.to_owned()
        } else {
            format!("version = 1\n{block}")
        };
        if let Err(e) = portcullis::config::parse(path, text) {
            panic!("README example does not parse:\n{e}\n{block}");
        }
    }
}

#[test]
fn validate_loads_plugins_and_reports_their_own_config_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "version = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[plugins]\ncache_dir = \"{}\"\n\
         [[routes]]\nid = \"tagged\"\nrespond = {{ body = \"x\" }}\n\
         [[routes.plugins]]\nplugin = \"{}\"\nconfig = {{ tag = \"\" }}\n",
        dir.path().join("cache").display(),
        portcullis_test_plugins::TAGGER
    );
    let path = write(dir.path(), "plugins.toml", &config);
    let (code, _, stderr) = run_cli(&["validate", &path]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("plugins.toml:9:1"), "{stderr}");
    assert!(
        stderr.contains("route `tagged`: plugin `tagger`"),
        "{stderr}"
    );
    assert!(stderr.contains("`tag` must not be empty"), "{stderr}");

    let fixed = config.replace("tag = \"\"", "tag = \"ok\"");
    let path = write(dir.path(), "plugins.toml", &fixed);
    let (code, stdout, stderr) = run_cli(&["validate", &path]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn run_refuses_a_broken_config_and_a_taken_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, stderr) = run_cli(&[
        "run",
        "-c",
        &dir.path().join("missing.toml").display().to_string(),
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read the config file"), "{stderr}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let config = format!(
        "version = 1\n[[listeners]]\naddress = \"{}\"\n[[routes]]\nid = \"r\"\nrespond = {{ body = \"x\" }}\n",
        taken.local_addr().expect("addr")
    );
    let path = write(dir.path(), "taken.toml", &config);
    let (code, _, stderr) = run_cli(&["run", "-c", &path]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

#[tokio::test]
async fn access_log_records_the_identity_a_plugin_verified_but_not_the_token() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let up = TestUpstream::start("svc").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = "an access-log test secret of 32+ bytes";
    let config = format!(
        "version = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[plugins]\ncache_dir = \"{}\"\n\
         [upstreams.svc]\ntargets = [\"{}\"]\n[[routes]]\nid = \"me\"\nupstream = \"svc\"\n\
         [[routes.plugins]]\nplugin = \"{}\"\nconfig = {{ secret = \"{secret}\", algorithms = [\"HS256\"] }}\n\
         grants = {{ crypto = true }}\n",
        dir.path().join("cache").display(),
        up.addr,
        portcullis_test_plugins::VERIFIER,
    );
    let path = write(dir.path(), "gw.toml", &config);
    let gw = GatewayProcess::start(Path::new(&path));
    let input = format!(
        "{}.{}",
        B64.encode(r#"{"alg":"HS256"}"#),
        B64.encode(r#"{"sub":"dave"}"#)
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let token = format!(
        "{input}.{}",
        B64.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes()))
    );
    let req = request("GET", "h", "/me")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .expect("req");
    assert_eq!(Conn::h1(gw.addr).await.send(req).await.status, 200);
    let line = gw.next_access();
    assert_eq!(line["subject"], "dave", "{line}");
    assert!(!line.to_string().contains(&token[..20]), "{line}");
}
