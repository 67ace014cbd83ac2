//! transform's load-time checks and phases, run natively through the SDK's harness (the
//! end-to-end test runs every edit through the gateway).

use portcullis_plugin_transform::Transform;
use portcullis_sdk::Phases;
use portcullis_sdk::testing::Harness;
use serde_json::json;

fn refused(config: serde_json::Value) -> String {
    Harness::<Transform>::new(config).expect_err("refused")
}

#[test]
fn rules_that_cannot_work_are_refused_at_load() {
    assert!(refused(json!({})).contains("no rule is set"));
    assert!(
        refused(json!({ "request": { "headers": { "set": { "content-length": "1" } } } }))
            .contains("set by the gateway")
    );
    assert!(
        refused(json!({ "response": { "headers": { "add": { "X-Up": "1" } } } }))
            .contains("lowercase")
    );
    assert!(
        refused(json!({ "request": { "body": { "remove": ["internal"] } } }))
            .contains("must start with `/`")
    );
    assert!(
        refused(json!({ "request": { "path": { "from": "/a/{x}", "to": "/b/{y}" } } }))
            .contains("not captured")
    );
    assert!(refused(json!({ "response": { "status": { "404": 99 } } })).contains("200–599"));
}

#[test]
fn phases_and_body_buffering_follow_the_rules_given() {
    let phases = |config| Harness::<Transform>::new(config).expect("config").phases();
    assert_eq!(
        phases(json!({ "request": { "headers": { "remove": ["x-a"] } } })),
        Phases::ON_REQUEST
    );
    assert_eq!(
        phases(json!({ "response": { "body": { "remove": ["/a"] } } })),
        Phases::ON_RESPONSE | Phases::RESPONSE_BODY
    );
}
