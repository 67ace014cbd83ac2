//! The access log record. It is filled in as the request moves along the path and
//! written when it is dropped — with the response body, so byte counts and the total
//! time cover the whole streamed response, whatever happened above.
//!
//! What is never written: the query string (it often carries keys and tokens) and the
//! values of secret headers (`Authorization`, `Cookie`, `Set-Cookie`,
//! `Proxy-Authorization` and any configured one), even when listed in `headers`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, Method};

/// `tracing` target of access-log events; the subscriber routes it to stdout.
pub const ACCESS_TARGET: &str = "portcullis::access";

const ALWAYS_SECRET: [&str; 4] = [
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
];

/// Chooses which request headers the access log records.
#[derive(Debug, Default)]
pub struct HeaderRedactor {
    logged: Vec<HeaderName>,
}

impl HeaderRedactor {
    pub fn new(logged: &[String], secrets: &[String]) -> Self {
        let is_secret = |name: &str| {
            ALWAYS_SECRET.contains(&name) || secrets.iter().any(|s| s.eq_ignore_ascii_case(name))
        };
        Self {
            logged: logged
                .iter()
                .filter_map(|n| HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).ok())
                .filter(|n| !is_secret(n.as_str()))
                .collect(),
        }
    }

    /// A JSON object of the logged headers present on the request, or `None`.
    fn render(&self, headers: &HeaderMap) -> Option<String> {
        let mut map = serde_json::Map::new();
        for name in &self.logged {
            if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
                map.insert(name.as_str().to_owned(), v.into());
            }
        }
        (!map.is_empty()).then(|| serde_json::Value::Object(map).to_string())
    }
}

#[derive(Debug)]
pub struct AccessRecord {
    pub start: Instant,
    pub request_id: std::sync::Arc<str>,
    pub client_ip: IpAddr,
    pub method: Method,
    pub host: String,
    /// Path only, never the query.
    pub path: String,
    pub protocol: &'static str,
    pub route: Option<std::sync::Arc<str>>,
    pub status: u16,
    pub bytes_in: Arc<AtomicU64>,
    pub bytes_out: Arc<AtomicU64>,
    pub upstream: Option<String>,
    pub upstream_latency: Option<Duration>,
    pub rate_limit: &'static str,
    pub flag: Option<&'static str>,
    pub headers: Option<String>,
    /// The verified identity an auth plugin attached: who, not how (never a token).
    pub subject: Option<String>,
    pub consumer: Option<String>,
}

impl AccessRecord {
    pub fn capture_headers(&mut self, redactor: &HeaderRedactor, headers: &HeaderMap) {
        self.headers = redactor.render(headers);
    }
}

impl Drop for AccessRecord {
    fn drop(&mut self) {
        let duration_ms = self.start.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            target: ACCESS_TARGET,
            request_id = %self.request_id,
            client_ip = %self.client_ip,
            method = %self.method,
            host = %self.host,
            path = %self.path,
            protocol = self.protocol,
            route = self.route.as_deref().unwrap_or("-"),
            status = self.status,
            bytes_in = self.bytes_in.load(Ordering::Relaxed),
            bytes_out = self.bytes_out.load(Ordering::Relaxed),
            upstream = self.upstream.as_deref().unwrap_or("-"),
            duration_ms = round3(duration_ms),
            upstream_ms = self.upstream_latency.map(|d| round3(d.as_secs_f64() * 1000.0)),
            rate_limit = self.rate_limit,
            flag = self.flag.unwrap_or("-"),
            headers = self.headers.as_deref(),
            subject = self.subject.as_deref(),
            consumer = self.consumer.as_deref(),
            "access"
        );
    }
}

/// Writes access-log events as one flat JSON object per line.
///
/// The generic JSON formatter of `tracing-subscriber` builds a map per event and was a
/// tenth of the gateway's CPU time per proxied request under load (bench/proxy.sh with
/// perf); this layer writes the fields straight into a reused buffer.
pub struct AccessJsonLayer {
    out: super::SharedOut,
}

impl AccessJsonLayer {
    pub fn new(out: super::SharedOut) -> Self {
        Self { out }
    }
}

impl std::fmt::Debug for AccessJsonLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessJsonLayer")
    }
}

impl<S> tracing_subscriber::Layer<S> for AccessJsonLayer
where
    S: tracing::Subscriber,
{
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        use std::io::Write as _;
        thread_local! {
            static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        LINE.with(|line| {
            let Ok(mut line) = line.try_borrow_mut() else {
                return;
            };
            line.clear();
            let now = humantime::format_rfc3339_micros(std::time::SystemTime::now());
            let _ = write!(line, "{{\"timestamp\":\"{now}\"");
            event.record(&mut JsonFields(&mut line));
            line.extend_from_slice(b"}\n");
            if let Ok(mut out) = self.out.lock() {
                let _ = out.write_all(&line);
            }
        });
    }
}

/// Appends `,"name":value` for each field; the `message` field is left out. Strings
/// are escaped by serde_json.
struct JsonFields<'a>(&'a mut Vec<u8>);

impl JsonFields<'_> {
    fn key(&mut self, field: &tracing::field::Field) {
        self.0.extend_from_slice(b",\"");
        self.0.extend_from_slice(field.name().as_bytes());
        self.0.extend_from_slice(b"\":");
    }

    fn value(&mut self, value: impl serde::Serialize) {
        let _ = value.serialize(&mut serde_json::Serializer::new(&mut *self.0));
    }
}

impl tracing::field::Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.key(field);
        self.value(value);
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.key(field);
        self.value(value);
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.key(field);
        self.value(value);
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        // serde_json writes non-finite floats as `null`.
        self.key(field);
        self.value(value);
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.key(field);
        self.value(value);
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            return;
        }
        self.key(field);
        self.value(format!("{value:?}"));
    }
}

fn round3(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn field_values_are_json_escaped() {
        let mut out = Vec::new();
        JsonFields(&mut out).value("a\"b\\c\nd\u{1}é");
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn secret_headers_are_never_rendered() {
        let r = HeaderRedactor::new(
            &[
                "user-agent".into(),
                "Authorization".into(),
                "cookie".into(),
                "x-api-key".into(),
            ],
            &["X-Api-Key".into()],
        );
        let mut h = HeaderMap::new();
        h.insert("user-agent", HeaderValue::from_static("curl"));
        h.insert("authorization", HeaderValue::from_static("Bearer secret"));
        h.insert("cookie", HeaderValue::from_static("s=secret"));
        h.insert("x-api-key", HeaderValue::from_static("secret"));
        let out = r.render(&h).expect("user-agent is logged");
        assert!(out.contains("curl"));
        assert!(!out.contains("secret"));
    }
}
