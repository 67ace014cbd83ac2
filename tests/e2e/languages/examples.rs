//! The example plugins of `examples/plugins/` through the gateway, and every example config.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use portcullis_test_plugins as plugins;

use super::http_date::http_date;
use super::{SECRET, gateway, one_compile_at_a_time, route, shared_cache, signed};
use crate::plugins::values;
use crate::support::client::{Conn, get, request};
use crate::support::upstream::TestUpstream;

// --- The HMAC verifier (Python) ---------------------------------------------------------

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
            .header("x-echo-etag", "\"v1\"")
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
        // The upstream's validators described the unmasked bytes.
        assert_eq!(reply.header("etag"), None, "{engine}");
        assert_eq!(reply.header("content-digest"), None, "{engine}");
        let access = gw.next_access();
        let line = gw.wait_for_ops("redacted 2 field(s)");
        assert_eq!(line["route"], format!("redact-{engine}"), "{line}");
        assert_eq!(line["request_id"], access["request_id"], "{line}");

        // Passed as it is: a JSON answer with nothing to mask (its validators kept), and
        // one that is not JSON.
        let req = request("GET", "h", &format!("/{engine}/plain"))
            .header("x-echo-etag", "\"v2\"")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let reply = conn.send(req).await;
        assert_eq!(reply.status, 200, "{engine}");
        assert_eq!(reply.header("x-redacted"), None, "{engine}");
        assert_eq!(reply.header("etag"), Some("\"v2\""), "{engine}");
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
