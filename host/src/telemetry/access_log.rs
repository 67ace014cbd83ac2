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
        let duration_ms = round3(self.start.elapsed().as_secs_f64() * 1000.0);
        let upstream_ms = self
            .upstream_latency
            .map(|d| round3(d.as_secs_f64() * 1000.0));
        // The JSON format (the default) is written straight from the record. Through
        // `tracing`, the event's dispatch, a visit per field and a `format!` per displayed
        // field cost ~8 000 instructions a request, an eighth of a plain proxied request
        // (bench/instructions.sh).
        if let Some(out) = JSON_OUT.get() {
            let write = |line: &mut Vec<u8>| {
                line.clear();
                self.write_json(line, duration_ms, upstream_ms);
                if let Ok(mut out) = out.lock() {
                    let _ = std::io::Write::write_all(&mut *out, line);
                }
            };
            // The thread's reused buffer, unless it is gone (a record dropped while its
            // thread exits) or in use: then a buffer of its own, the line is not lost.
            let reused = LINE.try_with(|line| match line.try_borrow_mut() {
                Ok(mut line) => {
                    write(&mut line);
                    true
                }
                Err(_) => false,
            });
            if reused != Ok(true) {
                write(&mut Vec::new());
            }
            return;
        }
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
            duration_ms,
            upstream_ms,
            rate_limit = self.rate_limit,
            flag = self.flag.unwrap_or("-"),
            headers = self.headers.as_deref(),
            subject = self.subject.as_deref(),
            consumer = self.consumer.as_deref(),
            "access"
        );
    }
}

impl AccessRecord {
    /// One JSON object and a newline: the fields of the `tracing` event above, in its
    /// order, absent options left out.
    fn write_json(&self, line: &mut Vec<u8>, duration_ms: f64, upstream_ms: Option<f64>) {
        use std::io::Write as _;
        line.extend_from_slice(b"{\"timestamp\":\"");
        timestamp(line);
        line.push(b'"');
        str_field(line, "request_id", &self.request_id);
        key(line, "client_ip");
        line.push(b'"');
        match self.client_ip {
            // Nothing to escape in an address; IPv4 by hand, as `Display` pads and
            // formats each octet through `fmt` (1 000 instructions a line).
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        line.push(b'.');
                    }
                    digits(line, u64::from(octet), 1);
                }
            }
            IpAddr::V6(v6) => {
                let _ = write!(line, "{v6}");
            }
        }
        line.push(b'"');
        str_field(line, "method", self.method.as_str());
        str_field(line, "host", &self.host);
        str_field(line, "path", &self.path);
        str_field(line, "protocol", self.protocol);
        str_field(line, "route", self.route.as_deref().unwrap_or("-"));
        num_field(line, "status", u64::from(self.status));
        num_field(line, "bytes_in", self.bytes_in.load(Ordering::Relaxed));
        num_field(line, "bytes_out", self.bytes_out.load(Ordering::Relaxed));
        str_field(line, "upstream", self.upstream.as_deref().unwrap_or("-"));
        num_field(line, "duration_ms", duration_ms);
        if let Some(ms) = upstream_ms {
            num_field(line, "upstream_ms", ms);
        }
        str_field(line, "rate_limit", self.rate_limit);
        str_field(line, "flag", self.flag.unwrap_or("-"));
        let optional = [
            ("headers", self.headers.as_deref()),
            ("subject", self.subject.as_deref()),
            ("consumer", self.consumer.as_deref()),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                str_field(line, name, value);
            }
        }
        line.extend_from_slice(b"}\n");
    }
}

/// Where JSON access-log lines go once [`write_json_to`] has been called; until then (the
/// pretty format, or a process that installed no log), records go through `tracing`.
static JSON_OUT: std::sync::OnceLock<super::SharedOut> = std::sync::OnceLock::new();

/// Sends every later access record, as one JSON line, to `out`.
pub fn write_json_to(out: super::SharedOut) {
    let _ = JSON_OUT.set(out);
}

thread_local! {
    /// The line being written, reused so that a request allocates nothing for it.
    static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The current second as RFC 3339 (`2026-12-07T23:59:59`), formatted once a second
    /// per thread, as nginx caches its time strings.
    static SECOND: std::cell::RefCell<(u64, [u8; 19])> =
        const { std::cell::RefCell::new((u64::MAX, [0; 19])) };
}

/// Appends the time as RFC 3339 UTC with microseconds (`2026-12-07T23:59:59.123456Z`).
fn timestamp(line: &mut Vec<u8>) {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let second = |cached: &mut (u64, [u8; 19])| {
        if cached.0 != since.as_secs() {
            // From the clamped seconds (a clock before 1970 reads as 1970), and through
            // `write!`: humantime panics before 1970 and fails past year 9999, and a
            // panic in a drop may abort the process.
            let whole = std::time::UNIX_EPOCH + Duration::from_secs(since.as_secs());
            let mut text = String::new();
            let _ = std::fmt::Write::write_fmt(
                &mut text,
                format_args!("{}", humantime::format_rfc3339_seconds(whole)),
            );
            if let Some(prefix) = text.as_bytes().get(..19) {
                cached.1.copy_from_slice(prefix);
                cached.0 = since.as_secs();
            }
        }
        cached.1
    };
    let prefix = SECOND
        .try_with(|cached| second(&mut cached.borrow_mut()))
        .unwrap_or_else(|_| second(&mut (u64::MAX, [0; 19])));
    line.extend_from_slice(&prefix);
    line.push(b'.');
    digits(line, u64::from(since.subsec_micros()), 6);
    line.push(b'Z');
}

/// Appends `n` in decimal, zero-padded to `width` digits at least.
fn digits(line: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut at = buf.len();
    while n > 0 || buf.len() - at < width {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    line.extend_from_slice(&buf[at..]);
}

/// Appends `,"name":"value"`, the value escaped as JSON: copied as it is when it holds
/// nothing to escape (the common case), escaped by serde_json otherwise.
fn str_field(line: &mut Vec<u8>, name: &str, value: &str) {
    key(line, name);
    // The bytes JSON must escape (serde_json escapes nothing else: not DEL, not UTF-8).
    let escapes = value.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\');
    if !escapes {
        line.push(b'"');
        line.extend_from_slice(value.as_bytes());
        line.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *line, value);
    }
}

/// Appends `,"name":value` for a number, as serde_json writes it (a non-finite float
/// as `null`).
fn num_field(line: &mut Vec<u8>, name: &str, value: impl serde::Serialize) {
    key(line, name);
    let _ = serde_json::to_writer(&mut *line, &value);
}

fn key(line: &mut Vec<u8>, name: &str) {
    line.extend_from_slice(b",\"");
    line.extend_from_slice(name.as_bytes());
    line.extend_from_slice(b"\":");
}

fn round3(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn record() -> AccessRecord {
        AccessRecord {
            start: std::time::Instant::now(),
            request_id: Arc::from("req-1"),
            client_ip: "2001:db8::1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            method: Method::GET,
            host: "api.example.com".into(),
            path: "/a\"b\\c\nd\u{1}é/\u{7f}".into(),
            protocol: "HTTP/1.1",
            route: Some(Arc::from("r")),
            status: 200,
            bytes_in: Arc::new(AtomicU64::new(3)),
            bytes_out: Arc::new(AtomicU64::new(1024)),
            upstream: None,
            upstream_latency: None,
            rate_limit: "none",
            flag: None,
            headers: Some("{\"user-agent\":\"curl\"}".into()),
            subject: None,
            consumer: Some("alice".into()),
        }
    }

    #[test]
    fn a_json_line_holds_every_field_escaped_in_order() {
        let r = record();
        let mut line = Vec::new();
        r.write_json(&mut line, 1.5, None);
        assert_eq!(line.last(), Some(&b'\n'));
        let parsed: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&line).unwrap_or_default();
        let keys: Vec<&str> = parsed.keys().map(String::as_str).collect();
        let mut expected = vec![
            "timestamp",
            "request_id",
            "client_ip",
            "method",
            "host",
            "path",
            "protocol",
            "route",
            "status",
            "bytes_in",
            "bytes_out",
            "upstream",
            "duration_ms",
            "rate_limit",
            "flag",
            "headers",
            "consumer",
        ];
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(sorted, expected, "absent options are left out: {keys:?}");
        assert_eq!(parsed["path"], "/a\"b\\c\nd\u{1}é/\u{7f}");
        assert_eq!(parsed["client_ip"], "2001:db8::1");
        assert_eq!(parsed["status"], 200);
        assert_eq!(parsed["bytes_out"], 1024);
        assert_eq!(parsed["duration_ms"], 1.5);
        assert_eq!(parsed["upstream"], "-");
        assert_eq!(parsed["headers"], "{\"user-agent\":\"curl\"}");
        assert_eq!(parsed["consumer"], "alice");
        let text = String::from_utf8_lossy(&line);
        let order: Vec<usize> = [
            "\"timestamp\"",
            "\"request_id\"",
            "\"duration_ms\"",
            "\"consumer\"",
        ]
        .iter()
        .filter_map(|k| text.find(k))
        .collect();
        assert!(order.len() == 4 && order.is_sorted(), "{text}");
        // Written and parsed back as the same instant, to the microsecond.
        let stamp = parsed["timestamp"].as_str().unwrap_or_default();
        assert_eq!(stamp.len(), "2026-12-07T23:59:59.123456Z".len(), "{stamp}");
        assert!(humantime::parse_rfc3339(stamp).is_ok(), "{stamp}");
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let cases = [
            "plain",
            "",
            "/api/v1/users",
            "café ☃ 𝄞",
            "del\u{7f}",
            "tab\there",
            "a\"b",
            "back\\slash",
            "\u{1}\u{1f}",
            "end\n",
            "{\"user-agent\":\"curl/8\"}",
        ];
        for value in cases {
            let mut line = Vec::new();
            str_field(&mut line, "k", value);
            let expected = format!(
                ",\"k\":{}",
                serde_json::to_string(value).unwrap_or_default()
            );
            assert_eq!(String::from_utf8_lossy(&line), expected, "{value:?}");
        }
    }

    #[test]
    fn digits_are_zero_padded_to_their_width() {
        let mut out = Vec::new();
        for (n, width) in [
            (0, 1),
            (7, 1),
            (255, 1),
            (42, 6),
            (999_999, 6),
            (u64::MAX, 1),
        ] {
            out.clear();
            digits(&mut out, n, width);
            assert_eq!(String::from_utf8_lossy(&out), format!("{n:0width$}"));
        }
        let mut line = Vec::new();
        let mut r = record();
        r.client_ip = IpAddr::from([10, 0, 200, 1]);
        r.write_json(&mut line, 0.0, Some(0.25));
        let parsed: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
        assert_eq!(parsed["client_ip"], "10.0.200.1");
        assert_eq!(parsed["upstream_ms"], 0.25);
    }

    #[test]
    fn the_cached_second_follows_the_clock() {
        let mut a = Vec::new();
        timestamp(&mut a);
        let parsed = humantime::parse_rfc3339(std::str::from_utf8(&a).unwrap_or_default());
        let now = std::time::SystemTime::now();
        let then = parsed.unwrap_or(std::time::UNIX_EPOCH);
        let apart = now.duration_since(then).unwrap_or_default();
        assert!(apart < std::time::Duration::from_secs(2), "{apart:?}");
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
