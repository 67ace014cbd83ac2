//! Calls `wasi:http/outgoing-handler` directly (through the `wasip2` crate), as a guest
//! whose toolchain's `fetch` is built on it would, and reports what came back in request
//! headers, so tests can check the `http` grant, budget, deadline and body limits:
//!
//! - `x-fetch`: one result per call, comma-separated: `STATUS:BYTES` when a response and
//!   its whole body came back, else the error (`denied`, `timeout`, `body-size`,
//!   `body:ERROR` while reading the body, or another error code's debug form);
//! - `x-got-method`, `x-got-path`, `x-got-host`, `x-got-body-len`: what the upstream
//!   says it received, from the first response body read (the test upstream's JSON echo).
//!
//! - `x-calls`: how many requests this instance has served, this one included.
//!
//! Config: `url` (`http://host[:port]/path`), `times` (calls to make, default 1), `method`
//! (default `GET`), `body` (sent in 4 KiB writes after the request is handed over),
//! `first_byte_ms` (the request option), `host` (a `host` header to try to set), `keep`
//! (keep each answer, unread, past the call).

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};

#[derive(serde::Deserialize)]
#[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
struct Config {
    url: String,
    #[serde(default = "one")]
    times: u32,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    first_byte_ms: Option<u64>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    keep: bool,
}

static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn one() -> u32 {
    1
}

struct WasiFetch;

impl Plugin for WasiFetch {
    type Config = Config;

    fn check(_: &Config) -> Result<Phases, String> {
        Ok(Phases::ON_REQUEST)
    }

    fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        let mut results = Vec::new();
        let mut first_body = None;
        for _ in 0..config.times {
            match fetch(config) {
                Ok((status, body)) => {
                    results.push(format!("{status}:{}", body.len()));
                    first_body.get_or_insert(body);
                }
                Err(e) => results.push(e),
            }
        }
        request.set_header("x-fetch", &results.join(","))?;
        let calls = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        request.set_header("x-calls", &calls.to_string())?;
        let echo = first_body.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        if let Some(echo) = echo {
            let text = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            request.set_header("x-got-method", &text(&echo["method"]))?;
            request.set_header("x-got-path", &text(&echo["path"]))?;
            request.set_header("x-got-host", &text(&echo["headers"]["host"][0]))?;
            request.set_header("x-got-body-len", &text(&echo["body_len"]))?;
        }
        Ok(Action::Continue)
    }
}

#[cfg(not(target_os = "wasi"))]
fn fetch(_: &Config) -> Result<(u16, Vec<u8>), String> {
    Err("wasi:http needs wasm32-wasip2".to_owned())
}

#[cfg(target_os = "wasi")]
fn fetch(config: &Config) -> Result<(u16, Vec<u8>), String> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{
        ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
    };
    use wasip2::io::streams::StreamError;

    let code = |e: ErrorCode| match e {
        ErrorCode::HttpRequestDenied => "denied".to_owned(),
        ErrorCode::HttpResponseTimeout | ErrorCode::ConnectionReadTimeout => "timeout".to_owned(),
        ErrorCode::HttpResponseBodySize(_) | ErrorCode::HttpRequestBodySize(_) => {
            "body-size".to_owned()
        }
        other => format!("{other:?}"),
    };
    let rest = config
        .url
        .strip_prefix("http://")
        .ok_or("only http:// URLs here")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let headers = Fields::new();
    if let Some(host) = &config.host {
        headers
            .append("host", host.as_bytes())
            .map_err(|e| format!("header:{e:?}"))?;
    }
    let outgoing = OutgoingRequest::new(headers);
    let method = match config.method.as_deref() {
        None | Some("GET") => Method::Get,
        Some("POST") => Method::Post,
        Some(other) => Method::Other(other.to_owned()),
    };
    outgoing.set_method(&method).map_err(|()| "method")?;
    outgoing
        .set_scheme(Some(&Scheme::Http))
        .map_err(|()| "scheme")?;
    outgoing
        .set_authority(Some(authority))
        .map_err(|()| "authority")?;
    let path = if path.is_empty() { "/" } else { path };
    outgoing
        .set_path_with_query(Some(path))
        .map_err(|()| "path")?;
    let body = outgoing.body().map_err(|()| "body taken")?;
    let options = config.first_byte_ms.map(|ms| {
        let options = RequestOptions::new();
        let _ = options.set_first_byte_timeout(Some(ms * 1_000_000));
        options
    });
    let pending = outgoing_handler::handle(outgoing, options).map_err(code)?;
    if let Some(text) = &config.body {
        let stream = body.write().map_err(|()| "body stream")?;
        for chunk in text.as_bytes().chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
        drop(stream);
    }
    let _ = OutgoingBody::finish(body, None);
    let response = loop {
        match pending.get() {
            Some(result) => break result,
            None => pending.subscribe().block(),
        }
    };
    let response = response.map_err(|()| "response taken")?.map_err(code)?;
    let status = response.status();
    if config.keep {
        std::mem::forget(response);
        return Ok((status, Vec::new()));
    }
    let incoming = response.consume().map_err(|()| "body consumed")?;
    let stream = incoming.stream().map_err(|()| "body stream")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                let why = wasip2::http::types::http_error_code(&e)
                    .map_or_else(|| e.to_debug_string(), code);
                return Err(format!("body:{why}"));
            }
        }
    }
    Ok((status, bytes))
}

export_plugin!(WasiFetch);
