//! The request's authority: which host it is for, decided once from the target and the
//! `Host` header by the rules of RFC 9112 §3.2 and RFC 9113 §8.3.1, then used for
//! routing, the access log and the `Host` the upstream receives — so that the router
//! and the upstream can never see two different hosts.

use http::{HeaderMap, HeaderValue, Uri, Version, header};

/// A validated authority: lower-case host (IPv6 in brackets, no trailing dot) and the
/// port the client named, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    host: String,
    port: Option<u16>,
}

/// Why a request's authority is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorityError {
    MissingHost,
    RepeatedHost,
    InvalidHost,
    InvalidTarget,
    HostMismatch,
}

impl AuthorityError {
    /// Public text for the 400's `detail`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingHost => "an HTTP/1.1 request needs a Host header",
            Self::RepeatedHost => "the request has more than one Host header",
            Self::InvalidHost => "the Host header is not a valid host[:port]",
            Self::InvalidTarget => "the request target's authority is not a valid host[:port]",
            Self::HostMismatch => "the Host header names another host than :authority",
        }
    }
}

impl std::fmt::Display for AuthorityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for AuthorityError {}

impl Authority {
    /// Parses `host[:port]`: a host name, an IPv4 address or a bracketed IPv6 address;
    /// no user info, no empty host, a port that fits in 16 bits.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(raw).ok()?;
        let (host, port) = if text.starts_with('[') {
            let close = text.find(']')?;
            let inner = &text[1..close];
            inner.parse::<std::net::Ipv6Addr>().ok()?;
            (&text[..=close], text[close + 1..].strip_prefix(':'))
        } else {
            match text.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        if !host.starts_with('[') && !host.bytes().all(is_reg_name_byte) {
            return None;
        }
        if port.is_none() && text.len() != host.len() {
            // Bytes after `]` that are not `:port`.
            return None;
        }
        let port = match port {
            // `host:` is allowed by RFC 3986 and means no port.
            Some("") | None => None,
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse::<u16>().ok()?),
            Some(_) => return None,
        };
        // `example.com.` is the same name as `example.com` (a fully qualified form). Only
        // one dot goes: a name with an empty label (`a..b`, `.a`, `a..`) is no name, and
        // a backend that trims differently would serve another host than was routed.
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() || (!host.starts_with('[') && host.split('.').any(str::is_empty)) {
            return None;
        }
        Some(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Lower-case host without port: what routes match on.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `host[:port]` as a header value: the `Host` the upstream receives.
    pub fn to_header(&self) -> HeaderValue {
        let text = match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        };
        // Every byte was checked by `parse`.
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The authority of a request, or `None` for an HTTP/1.0 request that names none.
    ///
    /// - one `Host` header at most, and a valid one (RFC 9112 §3.2: 400 otherwise);
    /// - HTTP/1.1 must send `Host`; an absolute-form target's authority replaces it
    ///   (RFC 9112 §3.2.2);
    /// - HTTP/2 takes `:authority`, and a `Host` beside it must name the same host and
    ///   port (RFC 9113 §8.3.1).
    pub fn of_request(
        version: Version,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Option<Self>, AuthorityError> {
        let mut hosts = headers.get_all(header::HOST).iter();
        let host_header = hosts.next();
        if hosts.next().is_some() {
            return Err(AuthorityError::RepeatedHost);
        }
        // An empty Host is what a client sends for a target without an authority.
        let from_header = match host_header.map(HeaderValue::as_bytes) {
            None | Some(b"") => None,
            Some(raw) => Some(Self::parse(raw).ok_or(AuthorityError::InvalidHost)?),
        };
        let from_target = match uri.authority() {
            None => None,
            Some(a) => {
                Some(Self::parse(a.as_str().as_bytes()).ok_or(AuthorityError::InvalidTarget)?)
            }
        };
        match version {
            Version::HTTP_09 | Version::HTTP_10 => Ok(from_target.or(from_header)),
            Version::HTTP_11 => {
                if host_header.is_none() {
                    return Err(AuthorityError::MissingHost);
                }
                Ok(from_target.or(from_header))
            }
            _ => match (from_target, from_header) {
                (Some(t), Some(h)) if t != h => Err(AuthorityError::HostMismatch),
                (Some(t), _) => Ok(Some(t)),
                (None, h) => Ok(h),
            },
        }
    }
}

/// The bytes of a host name: letters, digits, `-`, `.` and `_` (common in internal
/// names). RFC 3986's `reg-name` allows more (sub-delims, escapes), but no DNS name holds
/// them, and a gateway that routes on hosts is better off refusing what it cannot mean.
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(hosts: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in hosts {
            h.append(header::HOST, HeaderValue::from_static(v));
        }
        h
    }

    fn origin(path: &str) -> Uri {
        path.parse().expect("uri")
    }

    #[test]
    fn hosts_are_lower_cased_and_lose_a_trailing_dot() {
        let a = Authority::parse(b"API.Example.COM.:8443").expect("valid");
        assert_eq!(a.host(), "api.example.com");
        assert_eq!(a.to_header(), "api.example.com:8443");
        let a = Authority::parse(b"[::1]:80").expect("valid");
        assert_eq!(a.host(), "[::1]");
        assert_eq!(Authority::parse(b"10.0.0.1").expect("v").host(), "10.0.0.1");
    }

    #[test]
    fn malformed_hosts_are_refused_not_sliced() {
        for bad in [
            &b"[abc"[..],
            b"[abc",
            b"[::1",
            b"[zz::1]",
            b"a b",
            b"user@host",
            b"host:99999",
            b"host:port",
            b".",
            b"..",
            b"a.test..",
            b".a.test",
            b"a..test",
            b"",
            b"a,b",
            b"a/b",
            b"\xff",
        ] {
            assert_eq!(
                Authority::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn http11_needs_exactly_one_valid_host() {
        let of =
            |h: &[&'static str]| Authority::of_request(Version::HTTP_11, &origin("/"), &headers(h));
        assert_eq!(of(&[]), Err(AuthorityError::MissingHost));
        assert_eq!(of(&["a", "b"]), Err(AuthorityError::RepeatedHost));
        assert_eq!(of(&["a", "a"]), Err(AuthorityError::RepeatedHost));
        assert_eq!(of(&["[abc"]), Err(AuthorityError::InvalidHost));
        assert_eq!(of(&[""]), Ok(None));
        assert_eq!(
            of(&["a.test"]).map(|a| a.map(|a| a.host)),
            Ok(Some("a.test".into()))
        );
        // HTTP/1.0 may leave it out.
        assert_eq!(
            Authority::of_request(Version::HTTP_10, &origin("/"), &headers(&[])),
            Ok(None)
        );
    }

    #[test]
    fn an_absolute_target_replaces_host_and_h2_hosts_must_agree() {
        let uri: Uri = "http://routed.test/x".parse().expect("uri");
        let a = Authority::of_request(Version::HTTP_11, &uri, &headers(&["other.test"]));
        assert_eq!(a.map(|a| a.map(|a| a.host)), Ok(Some("routed.test".into())));
        let a = Authority::of_request(Version::HTTP_2, &uri, &headers(&["other.test"]));
        assert_eq!(a, Err(AuthorityError::HostMismatch));
        let a = Authority::of_request(Version::HTTP_2, &uri, &headers(&["ROUTED.test."]));
        assert_eq!(a.map(|a| a.map(|a| a.host)), Ok(Some("routed.test".into())));
        let a = Authority::of_request(Version::HTTP_2, &uri, &headers(&[]));
        assert!(a.is_ok_and(|a| a.is_some()));
    }
}
