//! `portcullis plugin invoke`: one plugin, in the real sandbox, against one request written
//! as an HTTP message, without standing up a gateway. This is how authors in any language
//! test a plugin (the SDKs' guides and templates call it), so it loads the plugin exactly as
//! a route's pipeline entry would — same checks of imports and grants, same budgets, same
//! `check-config` — and reports what the plugin did: its edits, its reply, the identity it
//! attached, its log lines, how long each phase took and the most memory it held.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

use crate::config;
use crate::plugin::bindings::Identity;
use crate::plugin::{PluginRequest, PluginResponse, RequestOutcome};
use crate::router::RequestLimits;
use crate::runtime::Runtime;

/// What to run.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// A `.wasm` component (relative to the working folder) or a built-in plugin's name.
    pub plugin: String,
    /// The entry's `config`, as JSON text.
    pub config: String,
    /// Further keys of the pipeline entry, as TOML (`grants = { http = ["api.test"] }`).
    pub entry: Option<String>,
    /// The request, as an HTTP/1.1 message.
    pub request: Vec<u8>,
    /// The upstream's response, as an HTTP/1.1 message, for the response phase.
    pub response: Option<Vec<u8>>,
    /// Where compiled components are kept between runs.
    pub cache_dir: Option<PathBuf>,
}

/// Runs `invocation` and returns the report (JSON), or why it could not run. A plugin
/// failure is part of the report, not an error.
pub async fn run(invocation: &Invocation) -> Result<Value, String> {
    let request = parse_request(&invocation.request)?;
    let response = invocation
        .response
        .as_deref()
        .map(parse_response)
        .transpose()?;
    let runtime = runtime_for(invocation)?;
    let route = runtime
        .router
        .routes()
        .first()
        .cloned()
        .ok_or("the invocation's route was not built")?;
    let pipeline = route
        .pipeline
        .clone()
        .ok_or("the invocation's pipeline was not built")?;
    let entry = pipeline.entries().first().ok_or("no plugin was loaded")?;
    let phases = entry.phases;

    // Process-wide where it can be (this is a one-shot command): a demoted entry's calls
    // run on the plugin lane's threads, whose lines a thread-local subscriber would miss.
    let logs = Logs::default();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(logs.clone()));
    let _guard = tracing::dispatcher::set_global_default(dispatch.clone())
        .is_err()
        .then(|| tracing::dispatcher::set_default(&dispatch));

    let mut report = json!({
        "plugin": invocation.plugin,
        "phases": phase_names(phases),
    });
    let original = request.clone();
    let mut plugin_request = request;
    match pipeline.request_body_cap() {
        None => plugin_request.body = None,
        Some(cap)
            if plugin_request
                .body
                .as_ref()
                .is_some_and(|b| b.len() as u64 > cap) =>
        {
            return Err(format!(
                "the request body is larger than the entry's body_bytes budget ({cap}): the gateway would answer 413"
            ));
        }
        Some(_) => {}
    }

    // From here on, what the call's instance holds (the config check's is not counted).
    entry.info.memory_peak.store(0, Ordering::Relaxed);
    let permit = pipeline
        .admit()
        .await
        .map_err(|e| format!("no instance: {e}"))?;
    let started = Instant::now();
    let (outcome, phase) = pipeline
        .on_request(&mut plugin_request, permit, |_| Ok(()))
        .await;
    let request_took = started.elapsed();
    let mut answer = match outcome {
        Ok(RequestOutcome::Continue) => {
            report["request"] = json!({
                "outcome": "continue",
                "millis": millis(request_took),
                "edits": request_edits(&original, &plugin_request),
            });
            response
        }
        Ok(RequestOutcome::Respond(reply)) => {
            report["request"] = json!({
                "outcome": "respond",
                "millis": millis(request_took),
                "reply": message_json(reply.status, &reply.headers, reply.body.as_ref()),
            });
            Some(*reply)
        }
        Err(failure) => {
            report["request"] = failed_json(&failure, request_took);
            None
        }
    };
    if let Some(identity) = &plugin_request.identity {
        report["identity"] = identity_json(identity);
    }
    if let Some(response) = answer.as_mut()
        && !phase.is_empty()
    {
        response.identity = plugin_request.identity.clone();
        if pipeline.response_body_cap().is_none() {
            response.body = None;
        }
        let before = response.clone();
        let started = Instant::now();
        let result = phase.run(response, &plugin_request.request_id).await;
        let took = started.elapsed();
        report["response"] = match result {
            Ok(()) => json!({
                "outcome": "done",
                "millis": millis(took),
                "edits": response_edits(&before, response),
            }),
            Err(failure) => failed_json(&failure, took),
        };
    } else {
        if !phase.is_empty() {
            report["response"] = json!({
                "outcome": "not run",
                "why": "the plugin has a response phase: give the upstream's answer with --response",
            });
        }
        drop(phase);
    }
    report["memory"] = json!({
        "peak_bytes": entry.info.memory_peak.load(Ordering::Relaxed),
        "cap_bytes": entry.info.budgets.memory_bytes,
    });
    report["logs"] = Value::Array(logs.take());
    Ok(report)
}

/// Whether the report says the plugin failed in a phase.
pub fn failed(report: &Value) -> bool {
    ["request", "response"]
        .iter()
        .any(|phase| report[phase]["outcome"] == "failed")
}

/// The report for a person: one section per phase.
pub fn render(report: &Value) -> String {
    let mut out = String::new();
    let line = |out: &mut String, key: &str, value: &str| {
        out.push_str(&format!("{key:<9} {value}\n"));
    };
    line(
        &mut out,
        "plugin",
        report["plugin"].as_str().unwrap_or_default(),
    );
    let phases: Vec<&str> = report["phases"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    line(&mut out, "phases", &phases.join(", "));
    for phase in ["request", "response"] {
        let part = &report[phase];
        if part.is_null() {
            continue;
        }
        let outcome = part["outcome"].as_str().unwrap_or_default();
        match part["millis"].as_f64() {
            Some(ms) => line(&mut out, phase, &format!("{outcome} in {ms:.3} ms")),
            None => line(
                &mut out,
                phase,
                &format!("{outcome}: {}", part["why"].as_str().unwrap_or_default()),
            ),
        }
        if let Some(error) = part["error"].as_str() {
            line(
                &mut out,
                "",
                &format!("{error} (the client gets {})", part["status"]),
            );
        }
        for edit in part["edits"].as_array().into_iter().flatten() {
            line(&mut out, "", edit.as_str().unwrap_or_default());
        }
        if let Some(reply) = part.get("reply") {
            line(&mut out, "", &format!("reply {}", reply["status"]));
            for header in reply["headers"].as_array().into_iter().flatten() {
                line(
                    &mut out,
                    "",
                    &format!(
                        "  {}: {}",
                        header[0].as_str().unwrap_or_default(),
                        header[1].as_str().unwrap_or_default()
                    ),
                );
            }
            if let Some(body) = reply["body"].as_str() {
                line(&mut out, "", &format!("  {body}"));
            }
        }
    }
    if let Some(identity) = report.get("identity") {
        line(&mut out, "identity", &identity.to_string());
    }
    let memory = &report["memory"];
    if let (Some(peak), Some(cap)) = (memory["peak_bytes"].as_u64(), memory["cap_bytes"].as_u64()) {
        line(
            &mut out,
            "memory",
            &format!(
                "{} of linear memory at most, of a {} budget",
                mebibytes(peak),
                mebibytes(cap)
            ),
        );
    }
    for log in report["logs"].as_array().into_iter().flatten() {
        line(
            &mut out,
            "log",
            &format!(
                "{:<5} {}",
                log["level"].as_str().unwrap_or_default(),
                log["message"].as_str().unwrap_or_default()
            ),
        );
    }
    out
}

/// A one-route gateway config holding the plugin as its only entry, built as
/// `portcullis run` builds any config (so every check of a real load applies).
fn runtime_for(invocation: &Invocation) -> Result<Runtime, String> {
    let config: Value = serde_json::from_str(&invocation.config)
        .map_err(|e| format!("--config is not JSON: {e}"))?;
    if !config.is_object() {
        return Err("--config must be a JSON object (the entry's `config` table)".into());
    }
    let config = toml::Value::try_from(&config)
        .map_err(|e| format!("--config cannot be written as TOML: {e}"))?;
    let mut entry = match &invocation.entry {
        Some(text) => text
            .parse::<toml::Table>()
            .map_err(|e| format!("--entry is not TOML: {e}"))?,
        None => toml::Table::new(),
    };
    let plugin = if invocation.plugin.ends_with(".wasm") {
        std::path::absolute(&invocation.plugin)
            .map_err(|e| format!("{}: {e}", invocation.plugin))?
            .display()
            .to_string()
    } else {
        invocation.plugin.clone()
    };
    entry.insert("plugin".into(), plugin.into());
    entry.insert("config".into(), config);
    let mut plugins = toml::Table::new();
    plugins.insert("max_instances".into(), 4.into());
    if let Some(dir) = &invocation.cache_dir {
        let dir = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        plugins.insert("cache_dir".into(), dir.display().to_string().into());
    }
    let document = json!({
        "version": 1,
        "listeners": [{ "address": "127.0.0.1:0" }],
        "plugins": plugins,
        // Never called: the report shows what would be sent.
        "upstreams": { "upstream": { "targets": ["127.0.0.1:9"] } },
        "routes": [{ "id": "invoke", "upstream": "upstream", "plugins": [entry] }],
    });
    let text = toml::to_string(&document).map_err(|e| format!("writing the config: {e}"))?;
    let path = std::env::current_dir()
        .map_err(|e| format!("the working folder: {e}"))?
        .join("plugin-invoke.toml");
    let file = config::parse(&path, text).map_err(|e| e.to_string())?;
    Runtime::build(&file).map_err(|e| e.to_string())
}

/// An HTTP/1.x request: request line, header fields, an empty line, then the body
/// ([`body_of`]).
fn parse_request(bytes: &[u8]) -> Result<PluginRequest, String> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Request::new(&mut headers);
    let head = head_length(parsed.parse(bytes), "request")?;
    let method = Method::from_bytes(parsed.method.unwrap_or_default().as_bytes())
        .map_err(|e| format!("the request's method: {e}"))?;
    let target = parsed.path.unwrap_or("/");
    let target = http::uri::PathAndQuery::try_from(target)
        .map_err(|e| format!("the request's target {target:?}: {e}"))?;
    let headers = header_map(parsed.headers)?;
    let body = body_of(&headers, &bytes[head..])?;
    Ok(PluginRequest {
        method,
        target,
        headers,
        body: Some(body),
        identity: None,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        route: Arc::from("invoke"),
        request_id: Arc::from("invoke-1"),
        limits: RequestLimits::default(),
    })
}

/// An HTTP/1.x response, read as [`parse_request`] reads a request.
fn parse_response(bytes: &[u8]) -> Result<PluginResponse, String> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Response::new(&mut headers);
    let head = head_length(parsed.parse(bytes), "response")?;
    let status = StatusCode::from_u16(parsed.code.unwrap_or_default())
        .map_err(|e| format!("the response's status: {e}"))?;
    let headers = header_map(parsed.headers)?;
    let body = body_of(&headers, &bytes[head..])?;
    Ok(PluginResponse {
        status,
        headers,
        body: Some(body),
        identity: None,
        limits: RequestLimits::default(),
    })
}

/// The length of a message's head, or why the `what` file (request, response) has none.
fn head_length(parsed: httparse::Result<usize>, what: &str) -> Result<usize, String> {
    match parsed {
        Ok(httparse::Status::Complete(n)) => Ok(n),
        Ok(httparse::Status::Partial) => Err(format!(
            "the {what} file ends inside its head: end the header fields with an empty line"
        )),
        Err(e) => Err(format!("the {what} file is not an HTTP {what}: {e}")),
    }
}

fn header_map(fields: &[httparse::Header<'_>]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for field in fields {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|e| format!("header {:?}: {e}", field.name))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|e| format!("header {}: {e}", field.name))?;
        map.append(name, value);
    }
    Ok(map)
}

/// The body as HTTP/1.1 frames it: `content-length` bytes, or none without one (what an
/// editor leaves after the head, such as a final newline, is not a body).
fn body_of(headers: &HeaderMap, rest: &[u8]) -> Result<Bytes, String> {
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        return Err(
            "transfer-encoding is not read here: give the body with a content-length".into(),
        );
    }
    let mut lengths = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let Some(length) = lengths.next() else {
        if rest.iter().all(u8::is_ascii_whitespace) {
            return Ok(Bytes::new());
        }
        return Err(format!(
            "the file has {} bytes after its head but no content-length: add `content-length: {}`",
            rest.len(),
            rest.len()
        ));
    };
    if lengths.next().is_some() {
        return Err("more than one content-length".into());
    }
    let length: usize = length
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .ok_or("content-length is not a number")?;
    rest.get(..length)
        .map(Bytes::copy_from_slice)
        .ok_or_else(|| {
            format!(
                "content-length says {length} bytes, the file holds {}",
                rest.len()
            )
        })
}

/// A phase the plugin failed: what the gateway would answer, and why.
fn failed_json(failure: &crate::error::GatewayError, took: Duration) -> Value {
    json!({
        "outcome": "failed",
        "millis": millis(took),
        "status": failure.status().as_u16(),
        "error": failure.to_string(),
    })
}

/// `bytes` in MiB, to two decimals.
fn mebibytes(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / f64::from(1u32 << 20))
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn phase_names(phases: crate::plugin::bindings::Phases) -> Vec<&'static str> {
    use crate::plugin::bindings::Phases;
    [
        (Phases::ON_REQUEST, "on-request"),
        (Phases::ON_RESPONSE, "on-response"),
        (Phases::REQUEST_BODY, "request-body"),
        (Phases::RESPONSE_BODY, "response-body"),
    ]
    .into_iter()
    .filter(|(flag, _)| phases.contains(*flag))
    .map(|(_, name)| name)
    .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn message_json(status: StatusCode, headers: &HeaderMap, body: Option<&Bytes>) -> Value {
    json!({
        "status": status.as_u16(),
        "headers": headers
            .iter()
            .map(|(k, v)| json!([k.as_str(), text(v.as_bytes())]))
            .collect::<Vec<_>>(),
        "body": body.map(|b| text(b)),
    })
}

/// Header edits, as `+ name: value` and `- name: value` lines.
fn header_edits(before: &HeaderMap, after: &HeaderMap, edits: &mut Vec<String>) {
    let fields = |map: &HeaderMap| -> Vec<(String, String)> {
        map.iter()
            .map(|(k, v)| (k.as_str().to_owned(), text(v.as_bytes())))
            .collect()
    };
    let (old, new) = (fields(before), fields(after));
    for field in old.iter().filter(|f| !new.contains(f)) {
        edits.push(format!("- {}: {}", field.0, field.1));
    }
    for field in new.iter().filter(|f| !old.contains(f)) {
        edits.push(format!("+ {}: {}", field.0, field.1));
    }
}

fn request_edits(before: &PluginRequest, after: &PluginRequest) -> Vec<String> {
    let mut edits = Vec::new();
    if before.method != after.method {
        edits.push(format!("method {} -> {}", before.method, after.method));
    }
    if before.target != after.target {
        edits.push(format!("target {} -> {}", before.target, after.target));
    }
    header_edits(&before.headers, &after.headers, &mut edits);
    if after.body.is_some() {
        body_edit(before.body.as_ref(), after.body.as_ref(), &mut edits);
    }
    edits
}

fn response_edits(before: &PluginResponse, after: &PluginResponse) -> Vec<String> {
    let mut edits = Vec::new();
    if before.status != after.status {
        edits.push(format!(
            "status {} -> {}",
            before.status.as_u16(),
            after.status.as_u16()
        ));
    }
    header_edits(&before.headers, &after.headers, &mut edits);
    body_edit(before.body.as_ref(), after.body.as_ref(), &mut edits);
    edits
}

fn body_edit(before: Option<&Bytes>, after: Option<&Bytes>, edits: &mut Vec<String>) {
    if before != after {
        edits.push(format!(
            "body -> {}",
            after.map(|b| text(b)).unwrap_or_default()
        ));
    }
}

fn identity_json(identity: &Identity) -> Value {
    json!({
        "subject": identity.subject,
        "consumer": identity.consumer,
        "scopes": identity.scopes,
        "groups": identity.groups,
        "claims": identity.claims.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
    })
}

/// The plugin's log lines (its `log` calls, stdout and stderr, and the gateway's lines
/// about it), kept for the report instead of printed as they come.
#[derive(Debug, Clone, Default)]
struct Logs(Arc<Mutex<Vec<Value>>>);

impl Logs {
    fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Logs {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if !event.metadata().target().starts_with("portcullis::plugin") {
            return;
        }
        let mut fields = FieldsJson(serde_json::Map::new());
        event.record(&mut fields);
        let mut line = fields.0;
        line.insert(
            "level".into(),
            event.metadata().level().as_str().to_owned().into(),
        );
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Value::Object(line));
    }
}

struct FieldsJson(serde_json::Map<String, Value>);

impl Visit for FieldsJson {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
}

/// Reads a file named on the command line, saying which when it cannot.
pub fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}
