//! jwt-auth's config checks and token handling, run natively through the SDK's harness
//! (signatures are the gateway's job; the end-to-end tests verify real tokens).

use portcullis_plugin_jwt_auth::JwtAuth;
use portcullis_sdk::Action;
use portcullis_sdk::crypto::Verified;
use portcullis_sdk::testing::{Harness, TestRequest};
use serde_json::json;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn refused(config: serde_json::Value) -> String {
    Harness::<JwtAuth>::new(config).expect_err("config refused")
}

#[test]
fn unsafe_issuer_configs_are_refused_at_load() {
    let issuer = |v: serde_json::Value| json!({ "issuers": [v] });
    assert!(
        refused(issuer(
            json!({ "issuer": "i", "jwks_url": "https://k", "algorithms": ["none"] })
        ))
        .contains("never accepted")
    );
    assert!(
        refused(issuer(
            json!({ "issuer": "i", "jwks_url": "https://k", "algorithms": ["HS256"] })
        ))
        .contains("HS* algorithms need a `secret`")
    );
    assert!(
        refused(issuer(
            json!({ "issuer": "i", "secret": SECRET, "algorithms": ["RS256"] })
        ))
        .contains("HS256/384/512 only")
    );
    assert!(
        refused(issuer(
            json!({ "issuer": "i", "secret": "short", "algorithms": ["HS256"] })
        ))
        .contains("shorter than 32 bytes")
    );
    assert!(
        refused(issuer(json!({ "issuer": "i", "secret": SECRET, "jwks_url": "https://k", "algorithms": ["HS256"] })))
            .contains("exactly one of")
    );
    assert!(refused(json!({ "issuers": [] })).contains("empty"));
    assert!(
        refused(json!({
            "issuers": [{ "issuer": "i", "secret": SECRET, "algorithms": ["HS256"] }],
            "token": { "header": "x-a", "cookie": "b" },
        }))
        .contains("exactly one of `header` or `cookie`")
    );
}

fn cookie_harness() -> Harness<JwtAuth> {
    let h = Harness::<JwtAuth>::new(json!({
        "issuers": [{ "issuer": "i", "secret": SECRET, "algorithms": ["HS256"] }],
        "token": { "cookie": "session" },
        "require_exp": false,
        "forward": { "subject": "x-user" },
    }))
    .expect("config accepted");
    h.host(|host| {
        host.verifier = Some(Box::new(|token, _, _| {
            assert_eq!(token, "tok.en.sig");
            Ok(Verified {
                algorithm: portcullis_sdk::crypto::Algorithm::Hs256,
                key_id: None,
                header: "{}".into(),
                claims: json!({ "iss": "i", "sub": "ann", "scp": ["a", "b"] }).to_string(),
            })
        }));
    });
    h
}

#[test]
fn a_cookie_token_is_verified_and_only_that_cookie_is_removed() {
    let h = cookie_harness();
    let mut req = TestRequest::get("/")
        .with_header("cookie", "theme=dark; session=tok.en.sig; lang=en")
        .with_header("x-user", "forged");
    assert!(matches!(h.on_request(&mut req), Ok(Action::Continue)));
    assert_eq!(req.header_all("cookie"), ["theme=dark; lang=en"]);
    assert_eq!(req.header_all("x-user"), ["ann"]);
    let id = req.identity.expect("identity");
    assert_eq!(id.subject.as_deref(), Some("ann"));
    assert_eq!(id.scopes, ["a", "b"]);
}

#[test]
fn a_bearer_header_is_not_a_cookie_token() {
    let h = cookie_harness();
    let mut req = TestRequest::get("/").with_header("authorization", "Bearer tok.en.sig");
    match h.on_request(&mut req) {
        Ok(Action::Respond(reply)) => {
            assert_eq!(reply.status, 401);
            assert!(
                reply
                    .headers
                    .contains(&("www-authenticate".into(), "Bearer realm=\"api\"".into()))
            );
        }
        other => panic!("expected 401, got {other:?}"),
    }
}
