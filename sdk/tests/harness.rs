//! The SDK's native harness, exercised the way a plugin author uses it.

use portcullis_sdk::testing::{Harness, TestRequest, TestResponse};
use portcullis_sdk::{
    Action, EditError, Identity, Level, Phases, Plugin, Reply, Request, Response, cache, host,
};

/// Authenticates by a shared header, remembers callers in the cache, reads the body.
struct Gatekeeper;

#[derive(serde::Deserialize)]
struct Config {
    key: String,
}

impl Plugin for Gatekeeper {
    type Config = Config;

    fn check(config: &Config) -> Result<Phases, String> {
        if config.key.len() < 4 {
            return Err("`key` is too short".into());
        }
        Ok(Phases::ON_REQUEST | Phases::ON_RESPONSE | Phases::REQUEST_BODY)
    }

    fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        if request.header("x-key").as_deref() != Some(config.key.as_str()) {
            host::log(Level::Warn, "refused a request without the key");
            host::count("refused", 1);
            return Ok(Action::Respond(Reply::new(401).text("no")));
        }
        request.remove_header("x-key")?;
        request.set_identity(&Identity::subject("caller"));
        cache::set("last-caller", request.client_ip().as_bytes(), 60_000);
        let size = request.body().map_or(0, |b| b.len());
        request.set_header("x-body-size", &size.to_string())?;
        Ok(Action::Continue)
    }

    fn on_response(_: &Config, response: &mut Response<'_>) -> portcullis_sdk::Result<()> {
        response.append_header("set-cookie", "a=1")?;
        response.append_header("set-cookie", "b=2")?;
        Ok(())
    }
}

fn harness() -> Harness<Gatekeeper> {
    Harness::new(serde_json::json!({ "key": "sesame" })).expect("valid config")
}

#[test]
fn config_is_checked_like_the_gateway_does_at_load() {
    assert_eq!(
        harness().phases(),
        Phases::ON_REQUEST | Phases::ON_RESPONSE | Phases::REQUEST_BODY
    );
    let short = Harness::<Gatekeeper>::new(serde_json::json!({ "key": "abc" }));
    assert_eq!(short.err().as_deref(), Some("`key` is too short"));
    let wrong_shape = Harness::<Gatekeeper>::new(serde_json::json!({ "kye": "sesame" }));
    assert!(
        wrong_shape
            .err()
            .is_some_and(|e| e.contains("invalid config"))
    );
}

#[test]
fn request_phase_edits_headers_identity_and_reads_the_body() {
    let h = harness();
    let mut req = TestRequest::post("/orders?x=1", b"12345").with_header("X-Key", "sesame");
    assert!(matches!(h.on_request(&mut req), Ok(Action::Continue)));
    assert_eq!(req.header_value("x-key"), None);
    assert_eq!(req.header_value("x-body-size"), Some("5"));
    assert_eq!(
        req.identity.and_then(|i| i.subject).as_deref(),
        Some("caller")
    );
    assert_eq!(
        h.inspect(|host| host.cache.get("last-caller").cloned())
            .flatten(),
        Some(b"127.0.0.1".to_vec())
    );
}

#[test]
fn refusals_are_replies_and_host_calls_are_recorded() {
    let h = harness();
    let mut req = TestRequest::get("/");
    match h.on_request(&mut req) {
        Ok(Action::Respond(reply)) => {
            assert_eq!(reply.status, 401);
            assert_eq!(reply.body, b"no");
        }
        other => panic!("expected a reply, got {other:?}"),
    }
    let (logs, refused) = h
        .inspect(|host| (host.logs.clone(), host.counters.get("refused").copied()))
        .expect("host");
    assert_eq!(logs.len(), 1);
    assert_eq!(refused, Some(1));
}

#[test]
fn response_phase_keeps_repeated_headers() {
    let h = harness();
    let mut resp = TestResponse::new(200).with_header("set-cookie", "z=0");
    h.on_response(&mut resp).expect("response phase");
    let cookies: Vec<_> = resp
        .headers
        .0
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies, ["z=0", "a=1", "b=2"]);
}

#[test]
fn the_gateway_edit_rules_hold_natively() {
    let mut req = TestRequest::get("/");
    assert!(matches!(
        req.set_header("content-length", "1"),
        Err(EditError::Forbidden(_))
    ));
    assert!(matches!(
        req.set_header("bad name", "1"),
        Err(EditError::InvalidName(_))
    ));
    assert!(matches!(
        req.set_header("x-a", "line\r\nbreak"),
        Err(EditError::InvalidValue(_))
    ));
    // The body was not asked for: neither readable nor replaceable.
    assert_eq!(req.body(), None);
    assert!(matches!(
        req.set_body(b"x"),
        Err(EditError::BodyNotBuffered)
    ));
    assert!(req.set_path("no-slash").is_err());
}
