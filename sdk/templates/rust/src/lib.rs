//! {{name}}: a Portcullis plugin in Rust.
//!
//! Answers 400 when the request lacks the configured header, and marks the requests it lets
//! through. Change it to what your plugin should do; README.md says how to build and test it.

use portcullis_sdk::{Action, Phases, Plugin, Reply, Request, export_plugin};

#[derive(serde::Deserialize)]
pub struct Config {
    #[serde(default = "default_header")]
    header: String,
}

fn default_header() -> String {
    "x-tenant".into()
}

pub struct {{type}};

impl Plugin for {{type}} {
    type Config = Config;

    fn check(config: &Config) -> Result<Phases, String> {
        if config.header.is_empty() {
            return Err("`header` must be a header name".into());
        }
        Ok(Phases::ON_REQUEST)
    }

    fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        if request.header(&config.header).is_none() {
            return Ok(Action::Respond(Reply::problem(
                400,
                "missing-header",
                &format!("the {} header is required", config.header),
                &request.request_id(),
            )));
        }
        request.set_header("x-{{name}}", "checked")?;
        Ok(Action::Continue)
    }
}

export_plugin!({{type}});

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sdk::testing::{Harness, TestRequest};

    fn harness() -> Harness<{{type}}> {
        Harness::new(serde_json::json!({ "header": "x-tenant" })).expect("config accepted")
    }

    #[test]
    fn a_request_with_the_header_goes_on_marked() {
        let mut request = TestRequest::get("/orders").with_header("x-tenant", "acme");
        assert!(matches!(harness().on_request(&mut request), Ok(Action::Continue)));
        assert_eq!(request.header_value("x-{{name}}"), Some("checked"));
    }

    #[test]
    fn a_request_without_it_is_answered_400() {
        let mut request = TestRequest::get("/orders");
        match harness().on_request(&mut request) {
            Ok(Action::Respond(reply)) => assert_eq!(reply.status, 400),
            _ => panic!("expected a 400 reply"),
        }
    }
}
