//! The plugin contract's conformance test: the same edits, made by the same plugin code,
//! through the SDK's native harness and through the gateway (the plugin compiled to a
//! component), must be accepted or refused alike, with the same words, and leave the
//! same values behind. Both sides take their rules from `portcullis-contract`; this test
//! is what keeps a side from growing rules of its own.

use portcullis_sdk::testing::{Harness, TestRequest, TestResponse};
use portcullis_test_guests::conformance::{Conformance, Edit};
use serde_json::{Value, json};

use crate::{InProcess, LISTENER, PLUGINS};

fn header_cases(edits: &mut Vec<Edit>) {
    let names = [
        "X-Conformance",
        "x-conformance",
        "Host",
        "content-length",
        "Transfer-Encoding",
        "TE",
        "upgrade",
        "bad name",
        "",
        "x:y",
        "x\u{e9}",
        &"n".repeat(100),
    ];
    for name in names {
        edits.push(Edit::SetHeader {
            name: name.to_owned(),
            value: "v".to_owned(),
        });
    }
    let values = [
        "plain".to_owned(),
        "tab\there".to_owned(),
        "caf\u{e9}".to_owned(),
        "a\r\nx-injected: 1".to_owned(),
        "nul\0".to_owned(),
        "del\u{7f}".to_owned(),
        "v".repeat(16 * 1024),
        "v".repeat(16 * 1024 + 1),
    ];
    for value in values {
        edits.push(Edit::SetHeader {
            name: "x-value".to_owned(),
            value,
        });
    }
    edits.push(Edit::AppendHeader {
        name: "Set-Cookie".to_owned(),
        value: "a=1".to_owned(),
    });
    edits.push(Edit::AppendHeader {
        name: "set-cookie".to_owned(),
        value: "b=2".to_owned(),
    });
    for name in ["x-conformance", "Connection", "bad name"] {
        edits.push(Edit::RemoveHeader {
            name: name.to_owned(),
        });
    }
}

fn cases() -> Value {
    let mut request = Vec::new();
    header_cases(&mut request);
    let methods = [
        "PATCH".to_owned(),
        "M-SEARCH".to_owned(),
        "purge".to_owned(),
        String::new(),
        "GET /".to_owned(),
        "(x)".to_owned(),
        "P\u{d6}ST".to_owned(),
        "A".repeat(33),
    ];
    for value in methods {
        request.push(Edit::SetMethod { value });
    }
    let paths = [
        "/a/../b", "//x/y", "/%61dmin", "/a%2Fb", "/a%5Cb", "/a%00", "/a%252e", "/a;b", "/a b",
        "/a?b", "/a#b", "relative", "/\u{e9}", "/a\\b", "/[x]", "/a%zz", "/%c0%ae",
    ];
    for value in paths {
        request.push(Edit::SetPath {
            value: value.to_owned(),
        });
    }
    let queries = [
        Some("a=1&b=2"),
        Some(""),
        None,
        Some("a#b"),
        Some("a b"),
        Some("c[]=1|2"),
        Some("x=\u{e9}"),
        Some("?x=`y`"),
        Some("a=\n"),
    ];
    for value in queries {
        request.push(Edit::SetQuery {
            value: value.map(str::to_owned),
        });
    }
    let mut response = Vec::new();
    header_cases(&mut response);
    for value in [404, 200, 599, 600, 199, 101, 100, 999, 0] {
        response.push(Edit::SetStatus { value });
    }
    json!({ "request": request, "response": response })
}

/// The results of the cases in the SDK's harness.
fn in_the_harness(cases: &str) -> Value {
    let harness = Harness::<Conformance>::new(json!({ "cases": cases })).expect("config");
    // The request as the gateway's plugin sees it: the client's `host` is there too.
    let mut request = TestRequest::get("/start?x=1").with_header("host", "h");
    harness.on_request(&mut request).expect("request phase");
    let mut response = TestResponse::new(200);
    harness.on_response(&mut response).expect("response phase");
    serde_json::from_slice(&response.body.expect("a body")).expect("results")
}

/// The results of the cases in the gateway.
async fn in_the_gateway(cases: &str) -> Value {
    let text = toml::Value::String(cases.to_owned()).to_string();
    let gw = InProcess::new(&format!(
        "version = 1\n{LISTENER}{PLUGINS}\
         [[routes]]\nid = \"conformance\"\nrespond = {{ status = 200 }}\n\
         [[routes.plugins]]\nplugin = \"{}\"\nconfig = {{ cases = {text} }}\n",
        portcullis_test_plugins::CONFORMANCE
    ));
    // The status is whatever the last accepted `set-status` case left.
    gw.get("/start?x=1").await.json()
}

#[tokio::test]
async fn the_harness_and_the_gateway_accept_and_refuse_the_same_edits() {
    let cases = cases().to_string();
    let harness = in_the_harness(&cases);
    let gateway = in_the_gateway(&cases).await;
    for phase in ["request", "response"] {
        let (h, g) = (&harness[phase], &gateway[phase]);
        let (h, g) = (h.as_array().expect("list"), g.as_array().expect("list"));
        assert_eq!(h.len(), g.len(), "{phase}");
        for (h, g) in h.iter().zip(g) {
            assert!(
                h == g,
                "{phase}: the harness and the gateway differ:\n harness: {}\n gateway: {}",
                shorten(h),
                shorten(g)
            );
        }
    }
    // Both sides agreeing is not enough: a few rules are pinned to what the gateway did
    // before the rules were shared (a6fee73), so that a change of a rule is a decision.
    let pinned = [
        (
            "request",
            json!({ "op": "set_method", "value": "M-SEARCH" }),
            "ok",
            json!("M-SEARCH"),
        ),
        (
            "request",
            json!({ "op": "set_path", "value": "/a/../b" }),
            "ok",
            json!("/b"),
        ),
        (
            "request",
            json!({ "op": "set_path", "value": "/\u{e9}" }),
            "ok",
            json!("/\u{e9}"),
        ),
        (
            "request",
            json!({ "op": "set_path", "value": "/a%2Fb" }),
            "invalid-value",
            Value::Null,
        ),
        (
            "request",
            json!({ "op": "set_query", "value": "x=\u{e9}" }),
            "ok",
            json!("x=\u{e9}"),
        ),
        (
            "request",
            json!({ "op": "set_header", "name": "Host", "value": "v" }),
            "forbidden",
            Value::Null,
        ),
        (
            "response",
            json!({ "op": "set_status", "value": 600 }),
            "invalid-value",
            Value::Null,
        ),
    ];
    for (phase, edit, kind, after) in pinned {
        let seen = harness[phase]
            .as_array()
            .and_then(|list| list.iter().find(|r| r["edit"] == edit))
            .unwrap_or_else(|| panic!("no case {edit}"));
        let result = &seen["result"];
        let matches = if kind == "ok" {
            result == "ok"
        } else {
            result.get(kind).is_some()
        };
        assert!(matches, "{edit}: expected {kind}, got {result}");
        if !after.is_null() {
            assert_eq!(seen["after"], after, "{edit}");
        }
    }

    // And the cases did test something: both sides refused, and accepted, some edits.
    let results: Vec<&Value> = harness["request"]
        .as_array()
        .into_iter()
        .chain(harness["response"].as_array())
        .flatten()
        .map(|r| &r["result"])
        .collect();
    for kind in ["invalid-name", "forbidden", "invalid-value"] {
        assert!(
            results.iter().any(|r| r.get(kind).is_some()),
            "no {kind} case"
        );
    }
    assert!(results.iter().filter(|r| **r == "ok").count() > 10);
}

/// A result for a failure message, without 16 KiB values.
fn shorten(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 400 {
        format!("{}…", &text[..400])
    } else {
        text
    }
}
