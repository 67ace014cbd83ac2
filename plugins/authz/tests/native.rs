//! authz's rules over identities, run natively through the SDK's harness.

use portcullis_plugin_authz::Authz;
use portcullis_sdk::testing::{Harness, TestRequest};
use portcullis_sdk::{Action, Identity};
use serde_json::json;

fn identity(groups: &[&str], scopes: &[&str], claims: &[(&str, &str)]) -> Identity {
    Identity {
        subject: Some("ann".into()),
        consumer: Some("shop".into()),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        groups: groups.iter().map(|s| s.to_string()).collect(),
        claims: claims
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    }
}

fn status(h: &Harness<Authz>, id: Option<Identity>) -> u16 {
    let mut req = TestRequest::get("/");
    req.identity = id;
    match h.on_request(&mut req).expect("ran") {
        Action::Continue => 200,
        Action::Respond(reply) => reply.status,
    }
}

#[test]
fn every_requirement_must_hold() {
    let h = Harness::<Authz>::new(json!({
        "scopes": ["write"],
        "groups": ["gold", "platinum"],
        "deny_groups": ["suspended"],
        "consumers": ["shop"],
        "claims": { "tenant": "acme", "roles": ["admin", "ops"] },
    }))
    .expect("config");
    let claims = [("tenant", "\"acme\""), ("roles", "[\"user\",\"ops\"]")];
    assert_eq!(
        status(&h, Some(identity(&["gold"], &["read", "write"], &claims))),
        200
    );
    assert_eq!(status(&h, None), 403);
    assert_eq!(
        status(&h, Some(identity(&["gold"], &["read"], &claims))),
        403
    );
    assert_eq!(
        status(&h, Some(identity(&["silver"], &["write"], &claims))),
        403
    );
    assert_eq!(
        status(
            &h,
            Some(identity(&["gold", "suspended"], &["write"], &claims))
        ),
        403
    );
    assert_eq!(
        status(
            &h,
            Some(identity(&["gold"], &["write"], &[("tenant", "\"other\"")]))
        ),
        403
    );
}

#[test]
fn configs_without_rules_or_with_contradictions_are_refused() {
    assert!(Harness::<Authz>::new(json!({})).is_err());
    let err = Harness::<Authz>::new(json!({ "groups": ["a"], "deny_groups": ["a"] }))
        .expect_err("refused");
    assert!(err.contains("both allowed and denied"), "{err}");
}
