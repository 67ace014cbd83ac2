//! `validate`: checks requests against an OpenAPI 3.0 or 3.1 document before they reach the
//! upstream — the path and method, path, query and header parameters, and JSON request
//! bodies — and answers problem+json listing every failing field. See `README.md`.
//!
//! The document is read once per instance: the SDK parses the config once and the compiled
//! API is kept beside it, operations compiled when first requested. With fresh instances
//! (the gateway's default) that is once per request, so this plugin is meant to run with
//! `reuse`, where a warm instance keeps it for thousands of requests (BENCHMARKS.md has
//! both figures).

mod document;
mod operation;
mod params;

use std::cell::{OnceCell, RefCell};

use jsonschema::{Registry, Validator};
use percent_encoding::percent_decode_str;
use portcullis_sdk::{Action, Phases, Plugin, Reply, Request, export_plugin, query};
use serde::Deserialize;
use serde_json::{Value, json};

use document::Document;
use operation::{Body, Location, Operation, Param, escape, media_type};

/// At most this many failures are listed in one answer.
const MAX_ERRORS: usize = 20;

/// The entry's `config` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The OpenAPI document, usually from `files = { document = "openapi.json" }`. Taken
    /// (moved into the compiled API) on first use.
    document: RefCell<Value>,
    /// Prefix of the document's paths in request paths; default: the path of the first
    /// `servers` URL.
    #[serde(default)]
    base_path: Option<String>,
    /// Answer for a path the document does not describe: a status, or `"pass"`.
    #[serde(default = "not_found")]
    unknown_path: Unknown,
    /// Answer for a method the path does not have: a status, or `"pass"`.
    #[serde(default = "method_not_allowed")]
    unknown_method: Unknown,
    #[serde(skip)]
    api: OnceCell<Result<Api, String>>,
}

/// `unknown_path` / `unknown_method`: answer with a status, or let the request through.
#[derive(Debug, Clone, Copy)]
enum Unknown {
    Status(u16),
    Pass,
}

impl<'de> Deserialize<'de> for Unknown {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Unknown;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a 4xx or 5xx status, or \"pass\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Unknown, E> {
                u16::try_from(v)
                    .map(Unknown::Status)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Unknown, E> {
                u64::try_from(v)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Unknown, E> {
                match v {
                    "pass" => Ok(Unknown::Pass),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn not_found() -> Unknown {
    Unknown::Status(404)
}

fn method_not_allowed() -> Unknown {
    Unknown::Status(405)
}

/// The document with its schema registry, and each operation compiled once, when first
/// needed (`operations[path][method]`, parallel to `Document::paths`).
struct Api {
    document: Document,
    registry: Registry<'static>,
    operations: Vec<Vec<OnceCell<Result<Operation, String>>>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("paths", &self.document.paths.len())
            .finish_non_exhaustive()
    }
}

impl Config {
    fn api(&self) -> Result<&Api, String> {
        self.api
            .get_or_init(|| {
                let document = Document::read(self.document.take(), self.base_path.as_deref())?;
                let registry = operation::registry(&document)?;
                let operations = document
                    .paths
                    .iter()
                    .map(|p| p.methods.iter().map(|_| OnceCell::new()).collect())
                    .collect();
                Ok(Api {
                    document,
                    registry,
                    operations,
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl Api {
    fn operation(&self, path: usize, method: usize) -> Result<&Operation, String> {
        self.operations[path][method]
            .get_or_init(|| {
                let template = &self.document.paths[path];
                Operation::compile(
                    &self.document,
                    &self.registry,
                    &template.template,
                    template.methods[method],
                )
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// One failing field: where (a JSON Pointer into `{path, query, headers, body}`) and why.
struct Failure {
    pointer: String,
    reason: String,
}

pub struct Validate;

impl Plugin for Validate {
    type Config = Config;

    fn check(config: &Config) -> Result<Phases, String> {
        for (what, unknown) in [
            ("unknown_path", config.unknown_path),
            ("unknown_method", config.unknown_method),
        ] {
            if let Unknown::Status(s) = unknown
                && !(400..=599).contains(&s)
            {
                return Err(format!(
                    "{what} = {s}: answer with a 4xx or 5xx status, or \"pass\" to let the request through"
                ));
            }
        }
        // Compile every operation now, so a broken schema stops the load instead of
        // failing requests.
        let api = config.api()?;
        for (p, template) in api.document.paths.iter().enumerate() {
            for m in 0..template.methods.len() {
                api.operation(p, m)?;
            }
        }
        Ok(Phases::ON_REQUEST | Phases::REQUEST_BODY)
    }

    fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        let api = config.api()?;
        let path = request.path();
        let Some(matched) = api.document.find(&path) else {
            return Ok(refuse(
                config.unknown_path,
                request,
                "no-such-path",
                "The API has no such path.",
                None,
            ));
        };
        let method = request.method().to_ascii_lowercase();
        let methods = &matched.path.methods;
        let position = methods.iter().position(|m| *m == method).or_else(|| {
            // HEAD is GET without a body (RFC 9110 §9.3.2).
            (method == "head")
                .then(|| methods.iter().position(|m| *m == "get"))
                .flatten()
        });
        let Some(position) = position else {
            let allow = methods
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join(", ");
            return Ok(refuse(
                config.unknown_method,
                request,
                "method-not-allowed",
                &format!("This path allows {allow}."),
                Some(&allow),
            ));
        };
        let operation = api.operation(matched.index, position)?;

        let mut failures = Vec::new();
        let query = request.query().unwrap_or_default();
        for param in &operation.params {
            let raw: Vec<String> = match param.location {
                Location::Path => matched
                    .params
                    .iter()
                    .filter(|(name, _)| *name == param.name)
                    .map(|(_, v)| percent_decode_str(v).decode_utf8_lossy().into_owned())
                    .collect(),
                Location::Query => query::get_all(&query, &param.name),
                Location::Header => request.header_all(&param.name),
            };
            check_param(param, &raw, &mut failures);
        }
        let mut unsupported = false;
        if let Some(body) = &operation.body {
            unsupported = check_body(body, request, &mut failures);
        }
        if failures.is_empty() {
            return Ok(Action::Continue);
        }
        failures.truncate(MAX_ERRORS);
        let (status, kind) = if unsupported {
            (415, "unsupported-media-type")
        } else {
            (400, "request-invalid")
        };
        let detail = format!(
            "The request does not match the API description: {}.",
            failures
                .iter()
                .map(|f| format!("{}: {}", f.pointer, f.reason))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let errors: Vec<Value> = failures
            .into_iter()
            .map(|f| json!({ "pointer": f.pointer, "reason": f.reason }))
            .collect();
        let mut extensions = serde_json::Map::new();
        extensions.insert("errors".into(), Value::Array(errors));
        Ok(Action::Respond(Reply::problem_with(
            status,
            kind,
            &detail,
            &request.request_id(),
            extensions,
        )))
    }
}

/// The answer for an unknown path or method, or `Continue` when configured to pass.
fn refuse(
    unknown: Unknown,
    request: &Request<'_>,
    kind: &str,
    detail: &str,
    allow: Option<&str>,
) -> Action {
    match unknown {
        Unknown::Pass => Action::Continue,
        Unknown::Status(status) => {
            let reply = Reply::problem(status, kind, detail, &request.request_id());
            Action::Respond(match allow {
                Some(allow) if status == 405 => reply.header("allow", allow),
                _ => reply,
            })
        }
    }
}

fn check_param(param: &Param, raw: &[String], failures: &mut Vec<Failure>) {
    let pointer = format!("/{}/{}", param.location.as_str(), escape(&param.name));
    if raw.is_empty() {
        if param.required {
            failures.push(Failure {
                pointer,
                reason: format!("is required ({} parameter)", param.location.as_str()),
            });
        }
        return;
    }
    let value = if param.shape.is_array() {
        if param.location == Location::Query && param.explode {
            param.shape.array(raw.iter().map(String::as_str))
        } else {
            let joined = raw.join(",");
            param.shape.array(joined.split(',').map(str::trim))
        }
    } else if raw.len() > 1 {
        failures.push(Failure {
            pointer,
            reason: format!("is given {} times; it takes one value", raw.len()),
        });
        return;
    } else {
        param.shape.scalar(&raw[0])
    };
    if let Some(validator) = &param.validator {
        schema_failures(validator, &value, &pointer, failures);
    }
}

/// Checks the body against the operation's `requestBody`; true when its content type is
/// not one the operation accepts (a 415, not a 400).
fn check_body(body: &Body, request: &Request<'_>, failures: &mut Vec<Failure>) -> bool {
    let bytes = request.body().unwrap_or_default();
    let content_type = request.header("content-type").map(|c| media_type(&c));
    let missing = |failures: &mut Vec<Failure>| {
        if body.required {
            failures.push(Failure {
                pointer: "/body".into(),
                reason: "is required".into(),
            });
        }
    };
    if bytes.is_empty() && content_type.is_none() {
        missing(failures);
        return false;
    }
    if body.media.is_empty() {
        return false;
    }
    let accepted = || {
        body.media
            .iter()
            .map(|m| m.range.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(content_type) = content_type else {
        failures.push(Failure {
            pointer: "/headers/content-type".into(),
            reason: format!("is missing; this operation takes {}", accepted()),
        });
        return true;
    };
    let Some(media) = body.media_for(&content_type) else {
        failures.push(Failure {
            pointer: "/headers/content-type".into(),
            reason: format!(
                "`{content_type}` is not accepted; this operation takes {}",
                accepted()
            ),
        });
        return true;
    };
    // An empty body of an accepted type is a missing body, whatever the type.
    if bytes.is_empty() {
        missing(failures);
        return false;
    }
    let Some(validator) = &media.validator else {
        return false;
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) => schema_failures(validator, &value, "/body", failures),
        Err(e) => failures.push(Failure {
            pointer: "/body".into(),
            reason: format!("is not valid JSON ({e})"),
        }),
    }
    false
}

/// The schema's complaints about `value`, under `prefix`. Messages never quote the value
/// itself (it may be a password or a token).
fn schema_failures(
    validator: &Validator,
    value: &Value,
    prefix: &str,
    failures: &mut Vec<Failure>,
) {
    for error in validator.iter_errors(value).take(MAX_ERRORS) {
        failures.push(Failure {
            pointer: format!("{prefix}{}", error.instance_path().as_str()),
            reason: error.masked().to_string(),
        });
    }
}

export_plugin!(Validate);
