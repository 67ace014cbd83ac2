//! CORS: preflights are answered by the gateway; actual requests get the allow headers
//! added to the upstream's response. `*` is never combined with credentials (config
//! validation refuses it, as the Fetch standard forbids it).

use http::{HeaderMap, HeaderName, HeaderValue, Method, header};

use crate::error::GatewayError;

#[derive(Debug)]
pub struct Cors {
    /// `None` means any origin (`*`).
    pub origins: Option<Vec<String>>,
    pub methods: Vec<Method>,
    /// Lower-case names; `*` allows any (only without credentials).
    pub allow_headers: Vec<String>,
    pub expose_headers: Option<HeaderValue>,
    pub credentials: bool,
    pub max_age_secs: u64,
}

impl Cors {
    /// Whether `headers` make this request a preflight (RFC: OPTIONS with Origin and
    /// Access-Control-Request-Method).
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        match &self.origins {
            None => true,
            Some(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }

    fn allow_origin_value(&self, origin: &HeaderValue) -> HeaderValue {
        if self.origins.is_none() && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }

    /// Headers of the gateway's 204 answer to a preflight, or why it is refused.
    pub fn preflight(&self, headers: &HeaderMap) -> Result<HeaderMap, GatewayError> {
        let origin = headers
            .get(header::ORIGIN)
            .ok_or(GatewayError::CorsRejected)?;
        let origin_str = origin.to_str().map_err(|_| GatewayError::CorsRejected)?;
        if !self.origin_allowed(origin_str) {
            return Err(GatewayError::CorsRejected);
        }
        let method = headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .ok_or(GatewayError::CorsRejected)?;
        if !self.methods.contains(&method) {
            return Err(GatewayError::CorsRejected);
        }
        let requested = headers
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let any_header = self.allow_headers.iter().any(|h| h == "*") && !self.credentials;
        for name in requested
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let name = name.to_ascii_lowercase();
            if !any_header && !self.allow_headers.contains(&name) {
                return Err(GatewayError::CorsRejected);
            }
        }

        let mut out = HeaderMap::new();
        out.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin_value(origin),
        );
        let methods = self
            .methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(v) = HeaderValue::from_str(&methods) {
            out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        if !requested.is_empty()
            && let Ok(v) = HeaderValue::from_str(requested)
        {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(self.max_age_secs),
        );
        if self.credentials {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        out.insert(
            header::VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        Ok(out)
    }

    /// Adds the allow headers to an actual (non-preflight) response from an allowed
    /// origin; a disallowed origin gets none, and the browser blocks the read.
    pub fn decorate(&self, request_origin: Option<&HeaderValue>, response: &mut HeaderMap) {
        let Some(origin) = request_origin else { return };
        let Ok(origin_str) = origin.to_str() else {
            return;
        };
        if !self.origin_allowed(origin_str) {
            return;
        }
        response.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin_value(origin),
        );
        if self.credentials {
            response.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose_headers {
            response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
        response.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// Checks header names given in the config.
pub fn header_names(names: &[String]) -> Result<Vec<String>, String> {
    names
        .iter()
        .map(|n| {
            if n == "*" {
                return Ok("*".to_owned());
            }
            HeaderName::from_bytes(n.as_bytes())
                .map(|h| h.as_str().to_owned())
                .map_err(|_| format!("`{n}` is not a valid header name"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors() -> Cors {
        Cors {
            origins: Some(vec!["https://app.example.com".into()]),
            methods: vec![Method::GET, Method::PUT],
            allow_headers: vec!["x-token".into()],
            expose_headers: None,
            credentials: true,
            max_age_secs: 600,
        }
    }

    fn preflight(origin: &str, method: &str, headers: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(origin).expect("v"));
        h.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_str(method).expect("v"),
        );
        if !headers.is_empty() {
            h.insert(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                HeaderValue::from_str(headers).expect("v"),
            );
        }
        h
    }

    #[test]
    fn allowed_preflight_echoes_origin_with_credentials() {
        let out = cors()
            .preflight(&preflight("https://app.example.com", "PUT", "X-Token"))
            .expect("allowed");
        assert_eq!(
            out[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    }

    #[test]
    fn refuses_unknown_origin_method_or_header() {
        let c = cors();
        assert!(
            c.preflight(&preflight("https://evil.example", "GET", ""))
                .is_err()
        );
        assert!(
            c.preflight(&preflight("https://app.example.com", "DELETE", ""))
                .is_err()
        );
        assert!(
            c.preflight(&preflight("https://app.example.com", "GET", "x-other"))
                .is_err()
        );
    }
}
