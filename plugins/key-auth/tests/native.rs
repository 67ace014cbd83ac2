//! key-auth's policy, run natively through the SDK's harness.

use portcullis_plugin_key_auth::KeyAuth;
use portcullis_sdk::Action;
use portcullis_sdk::testing::{Harness, TestRequest};
use serde_json::json;
use sha2::{Digest, Sha256};

fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn harness(extra: serde_json::Value) -> Harness<KeyAuth> {
    let mut config = json!({
        "query": "api_key",
        "consumers": {
            "alice": { "key_sha256": hash("alice-key"), "groups": ["gold", "beta"] },
            "bob": { "key_sha256": hash("bob-key") },
        },
    });
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    Harness::new(config).expect("config accepted")
}

fn refused(action: Action) -> (u16, String, String) {
    match action {
        Action::Respond(reply) => {
            let www = reply
                .headers
                .iter()
                .find(|(n, _)| n == "www-authenticate")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            (
                reply.status,
                www,
                String::from_utf8_lossy(&reply.body).into_owned(),
            )
        }
        Action::Continue => panic!("expected a refusal"),
    }
}

#[test]
fn a_known_key_in_the_header_identifies_its_consumer_and_is_removed() {
    let h = harness(json!({}));
    let mut req = TestRequest::get("/items")
        .with_header("x-api-key", "alice-key")
        .with_header("x-consumer", "mallory")
        .with_header("x-consumer-groups", "admin");
    assert!(matches!(h.on_request(&mut req), Ok(Action::Continue)));
    assert_eq!(req.header_value("x-api-key"), None);
    assert_eq!(req.header_all("x-consumer"), ["alice"]);
    assert_eq!(req.header_all("x-consumer-groups"), ["gold,beta"]);
    let id = req.identity.expect("identity attached");
    assert_eq!(id.consumer.as_deref(), Some("alice"));
    assert_eq!(id.groups, ["gold", "beta"]);
    assert_eq!(id.subject, None);
}

#[test]
fn a_key_in_the_query_is_removed_and_the_rest_of_the_query_kept() {
    let h = harness(json!({}));
    let mut req = TestRequest::get("/items?page=2&api_key=bob-key&sort=a%2Cb");
    assert!(matches!(h.on_request(&mut req), Ok(Action::Continue)));
    assert_eq!(req.query.as_deref(), Some("page=2&sort=a%2Cb"));
    assert_eq!(req.header_all("x-consumer"), ["bob"]);
    // bob has no groups: no groups header, and none kept from the client.
    assert_eq!(req.header_value("x-consumer-groups"), None);
}

#[test]
fn missing_unknown_and_ambiguous_keys_get_401_with_the_realm() {
    let h = harness(json!({ "realm": "shop" }));
    let (status, www, body) = refused(h.on_request(&mut TestRequest::get("/")).expect("ran"));
    assert_eq!((status, www.as_str()), (401, "Key realm=\"shop\""));
    assert!(
        body.contains("urn:portcullis:problem:unauthorized"),
        "{body}"
    );
    assert!(body.contains("test-request"), "{body}");

    let mut wrong = TestRequest::get("/").with_header("x-api-key", "alice-key ");
    let (status, _, body) = refused(h.on_request(&mut wrong).expect("ran"));
    assert_eq!(status, 401);
    assert!(body.contains("not valid"), "{body}");

    let mut two = TestRequest::get("/?api_key=bob-key").with_header("x-api-key", "alice-key");
    assert_eq!(refused(h.on_request(&mut two).expect("ran")).0, 401);
    assert!(two.identity.is_none());
}

#[test]
fn keys_stay_when_credentials_are_not_hidden() {
    let h = harness(json!({ "hide_credentials": false }));
    let mut req = TestRequest::get("/?api_key=alice-key");
    assert!(matches!(h.on_request(&mut req), Ok(Action::Continue)));
    assert_eq!(req.query.as_deref(), Some("api_key=alice-key"));
}

#[test]
fn bad_configs_are_refused_with_what_to_fix() {
    let err =
        |config: serde_json::Value| Harness::<KeyAuth>::new(config).expect_err("config refused");
    assert!(
        err(json!({ "consumers": { "a": { "key_sha256": "plain-key" } } }))
            .contains("64 hex digits")
    );
    assert!(err(json!({ "consumers": {} })).contains("empty"));
    let same = hash("k");
    assert!(
        err(json!({ "consumers": { "a": { "key_sha256": same }, "b": { "key_sha256": same } } }))
            .contains("same key")
    );
    assert!(
        err(json!({ "header": "", "consumers": { "a": { "key_sha256": hash("k") } } }))
            .contains("`header` or `query`")
    );
    assert!(
        err(json!({ "header": "X-Key", "consumers": { "a": { "key_sha256": hash("k") } } }))
            .contains("lowercase")
    );
    assert!(
        err(json!({ "keys": [], "consumers": { "a": { "key_sha256": hash("k") } } }))
            .contains("unknown field")
    );
}
