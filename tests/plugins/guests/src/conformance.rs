//! Applies the edits its config lists to the request and then to the response, and
//! answers with what each edit returned and what the gateway holds after it. The
//! contract's conformance test (`tests/in_process/conformance.rs`) runs the same cases
//! through the SDK's native harness and through this plugin in the gateway, and compares.

use std::cell::RefCell;

use portcullis_sdk::{Action, EditError, Phases, Plugin, Request, Response};
use serde_json::{Value, json};

/// One edit a plugin can make.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Edit {
    SetHeader { name: String, value: String },
    AppendHeader { name: String, value: String },
    RemoveHeader { name: String },
    SetMethod { value: String },
    SetPath { value: String },
    SetQuery { value: Option<String> },
    SetStatus { value: u16 },
}

/// The cases, as JSON text in `cases` (so that a TOML config can carry any string).
#[derive(Debug, serde::Deserialize)]
pub struct Config {
    cases: String,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Cases {
    #[serde(default)]
    request: Vec<Edit>,
    #[serde(default)]
    response: Vec<Edit>,
}

thread_local! {
    /// The request phase's results, for the response phase of the same instance.
    static SEEN: RefCell<Vec<Value>> = const { RefCell::new(Vec::new()) };
}

fn cases(config: &Config) -> Cases {
    serde_json::from_str(&config.cases).unwrap_or_default()
}

fn outcome(result: Result<(), EditError>) -> Value {
    match result {
        Ok(()) => json!("ok"),
        Err(EditError::InvalidName(n)) => json!({ "invalid-name": n }),
        Err(EditError::Forbidden(n)) => json!({ "forbidden": n }),
        Err(EditError::InvalidValue(why)) => json!({ "invalid-value": why }),
        Err(EditError::BodyTooLarge(cap)) => json!({ "body-too-large": cap }),
        Err(EditError::BodyNotBuffered) => json!("body-not-buffered"),
    }
}

/// The contract's test plugin.
#[derive(Debug)]
pub struct Conformance;

impl Plugin for Conformance {
    type Config = Config;

    fn check(config: &Config) -> Result<Phases, String> {
        serde_json::from_str::<Cases>(&config.cases).map_err(|e| format!("cases: {e}"))?;
        Ok(Phases::ON_REQUEST | Phases::ON_RESPONSE | Phases::RESPONSE_BODY)
    }

    fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        let results: Vec<Value> = cases(config)
            .request
            .iter()
            .map(|edit| {
                let (result, after) = match edit {
                    Edit::SetHeader { name, value } => (
                        request.set_header(name, value),
                        json!(request.header_all(name)),
                    ),
                    Edit::AppendHeader { name, value } => (
                        request.append_header(name, value),
                        json!(request.header_all(name)),
                    ),
                    Edit::RemoveHeader { name } => {
                        (request.remove_header(name), json!(request.header_all(name)))
                    }
                    Edit::SetMethod { value } => {
                        (request.set_method(value), json!(request.method()))
                    }
                    Edit::SetPath { value } => (request.set_path(value), json!(request.path())),
                    Edit::SetQuery { value } => {
                        (request.set_query(value.as_deref()), json!(request.query()))
                    }
                    Edit::SetStatus { .. } => (Ok(()), json!("not a request edit")),
                };
                json!({ "edit": edit, "result": outcome(result), "after": after })
            })
            .collect();
        SEEN.with(|seen| *seen.borrow_mut() = results);
        Ok(Action::Continue)
    }

    fn on_response(config: &Config, response: &mut Response<'_>) -> portcullis_sdk::Result<()> {
        let results: Vec<Value> = cases(config)
            .response
            .iter()
            .map(|edit| {
                let (result, after) = match edit {
                    Edit::SetHeader { name, value } => (
                        response.set_header(name, value),
                        json!(response.header_all(name)),
                    ),
                    Edit::AppendHeader { name, value } => (
                        response.append_header(name, value),
                        json!(response.header_all(name)),
                    ),
                    Edit::RemoveHeader { name } => (
                        response.remove_header(name),
                        json!(response.header_all(name)),
                    ),
                    Edit::SetStatus { value } => {
                        (response.set_status(*value), json!(response.status()))
                    }
                    _ => (Ok(()), json!("not a response edit")),
                };
                json!({ "edit": edit, "result": outcome(result), "after": after })
            })
            .collect();
        let request = SEEN.with(|seen| std::mem::take(&mut *seen.borrow_mut()));
        let body = json!({ "request": request, "response": results }).to_string();
        response.set_body(body.as_bytes())?;
        Ok(())
    }
}
