//! What a plugin may set: header names and values, methods, paths, queries, statuses.
//!
//! Each check returns what the gateway stores (a header name in lower case, a path in
//! its canonical form) or the [`Refusal`] the plugin gets as its `edit-error`, with the
//! same words on both sides of the contract.

use std::borrow::Cow;
use std::ops::RangeInclusive;

use crate::path::{PathOptions, normalize};

/// Why an edit is refused; each case is the `edit-error` case of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a header name: names are RFC 9110 tokens.
    InvalidName(String),
    /// A header the gateway owns ([`GATEWAY_HEADERS`]).
    Forbidden(String),
    /// A value the gateway cannot send, and why.
    InvalidValue(String),
}

/// Headers that describe the connection or the framing, or that the gateway writes from
/// what it routed on (`host`): a plugin's edit of them is refused as `forbidden`.
pub const GATEWAY_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// The longest header value a plugin may set. Edge limits cap what clients send at 64 KiB
/// for the whole head; one value past this is a bug or an attack, not a header.
pub const MAX_HEADER_VALUE: usize = 16 * 1024;

/// The longest method a plugin may set. The longest registered method (IANA's HTTP
/// Method Registry) has 17 characters.
pub const MAX_METHOD: usize = 32;

/// Statuses a plugin may end a response with: informational statuses cannot end one, and
/// a status past 599 is no HTTP status (`600` reached clients as `HTTP/1.1 600`).
pub const FINAL_STATUSES: RangeInclusive<u16> = 200..=599;

/// Whether `s` is an RFC 9110 token (header names, methods).
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `name` (in lower case) is one of the [`GATEWAY_HEADERS`].
pub fn is_gateway_header(name: &str) -> bool {
    GATEWAY_HEADERS.contains(&name)
}

/// A header name a plugin gave, in lower case (how HTTP/2 and the gateway spell every
/// header), unless it is no token or the gateway owns it.
pub fn header_name(name: &str) -> Result<Cow<'_, str>, Refusal> {
    if !is_token(name) {
        return Err(Refusal::InvalidName(truncated(name)));
    }
    let lower = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    };
    if is_gateway_header(&lower) {
        return Err(Refusal::Forbidden(lower.into_owned()));
    }
    Ok(lower)
}

/// A header value a plugin gave: text up to [`MAX_HEADER_VALUE`] bytes, without control
/// characters (tab aside). Bytes above 0x7f (UTF-8 text) are allowed, as obs-text.
pub fn header_value(value: &str) -> Result<(), Refusal> {
    if value.len() > MAX_HEADER_VALUE {
        return Err(Refusal::InvalidValue(format!(
            "longer than {MAX_HEADER_VALUE} bytes"
        )));
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(Refusal::InvalidValue(
            "control characters are not allowed".into(),
        ));
    }
    Ok(())
}

/// A method a plugin gave: a token (RFC 9110 §9.1) of at most [`MAX_METHOD`] characters.
/// Methods are case-sensitive and kept as given.
pub fn method(method: &str) -> Result<(), Refusal> {
    if method.len() > MAX_METHOD || !is_token(method) {
        return Err(Refusal::InvalidValue(format!(
            "not an HTTP method (a token of at most {MAX_METHOD} characters)"
        )));
    }
    Ok(())
}

/// A status a plugin gave for a response or a reply: one of [`FINAL_STATUSES`].
pub fn final_status(status: u16) -> Result<(), Refusal> {
    if !FINAL_STATUSES.contains(&status) {
        return Err(Refusal::InvalidValue("a final status is 200–599".into()));
    }
    Ok(())
}

/// A path a plugin gave, in the canonical form the gateway sends upstream. It is held to
/// the rules a client's path is, under the default path settings: `/../../etc/passwd`
/// and `//evil.example/x` leave as `/etc/passwd` and `/evil.example/x`, and ambiguous
/// escapes (`%2F`, `%00`, `%252e`) are refused.
pub fn path(path: &str) -> Result<Cow<'_, str>, Refusal> {
    if !path.starts_with('/') || !path.bytes().all(is_path_byte) {
        return Err(Refusal::InvalidValue(
            "a path starts with `/` and holds no `?`, `#`, spaces or other characters a \
             request target cannot carry"
                .into(),
        ));
    }
    normalize(path, PathOptions::default()).map_err(|e| Refusal::InvalidValue(e.reason().into()))
}

/// A query a plugin gave (without the `?`): the characters a request target's query may
/// carry, so no `#` and no spaces. An empty query means none.
pub fn query(query: &str) -> Result<(), Refusal> {
    if !query.bytes().all(is_query_byte) {
        return Err(Refusal::InvalidValue("not a valid query string".into()));
    }
    Ok(())
}

/// Bytes a request target's path may carry as the gateway reads clients' targets: RFC
/// 3986's `pchar`, `/` and `%`, and the few that clients send unescaped in practice
/// (`[`, `]`, `^`, `|`, `"`, `{`, `}`), and UTF-8 text, which hyper reads in clients'
/// targets too. Never `?`, `#`, spaces or controls.
fn is_path_byte(b: u8) -> bool {
    matches!(b, b'!' | b'$'..=b';' | b'=' | b'@'..=b'_' | b'a'..=b'z' | b'|' | b'~' | b'"' | b'{' | b'}' | 0x80..=0xff)
}

/// Bytes a request target's query may carry as the gateway reads clients' targets: RFC
/// 3986's query characters and `%`, and `[`, `]`, `\`, `^`, `` ` ``, `{`, `|`, `}`. Never
/// `#`, `"`, `<`, `>`, spaces or controls. UTF-8 text is kept, as hyper reads it.
fn is_query_byte(b: u8) -> bool {
    matches!(b, b'!' | b'$'..=b';' | b'=' | b'?'..=b'~' | 0x80..=0xff)
}

/// Names in refusals are cut, so a plugin cannot make the gateway log megabytes.
fn truncated(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_headers_are_forbidden_in_any_case_and_names_come_back_lowercase() {
        for name in [
            "Host",
            "content-length",
            "Transfer-Encoding",
            "CONNECTION",
            "te",
        ] {
            assert!(
                matches!(header_name(name), Err(Refusal::Forbidden(_))),
                "{name}"
            );
        }
        assert_eq!(header_name("X-User").as_deref(), Ok("x-user"));
        assert!(matches!(
            header_name("bad name"),
            Err(Refusal::InvalidName(_))
        ));
        assert!(matches!(header_name(""), Err(Refusal::InvalidName(_))));
        let long = "é".repeat(100);
        match header_name(&long) {
            Err(Refusal::InvalidName(shown)) => assert!(shown.len() < 70, "{shown}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn values_with_controls_or_past_the_cap_are_refused_and_utf8_kept() {
        assert!(header_value("a\r\nx-injected: 1").is_err());
        assert!(header_value("nul\0").is_err());
        assert!(header_value("del\x7f").is_err());
        assert!(header_value("tab\there").is_ok());
        assert!(header_value("café").is_ok());
        assert!(header_value(&"v".repeat(MAX_HEADER_VALUE)).is_ok());
        assert!(header_value(&"v".repeat(MAX_HEADER_VALUE + 1)).is_err());
    }

    #[test]
    fn methods_are_tokens_and_statuses_final() {
        for ok in ["GET", "PATCH", "M-SEARCH", "purge"] {
            assert!(method(ok).is_ok(), "{ok}");
        }
        for bad in ["", "GET /", "G\rT", "(GET)", &"A".repeat(MAX_METHOD + 1)] {
            assert!(method(bad).is_err(), "{bad:?}");
        }
        for (status, ok) in [
            (100, false),
            (199, false),
            (200, true),
            (599, true),
            (600, false),
        ] {
            assert_eq!(final_status(status).is_ok(), ok, "{status}");
        }
    }

    #[test]
    fn paths_are_made_canonical_and_ambiguous_ones_refused() {
        assert_eq!(path("/a/./b/../c").as_deref(), Ok("/a/c"));
        assert_eq!(path("//evil.example/x").as_deref(), Ok("/evil.example/x"));
        assert_eq!(path("/%61dmin").as_deref(), Ok("/admin"));
        // Plugins hand over UTF-8 text, as clients may send it.
        assert_eq!(path("/café").as_deref(), Ok("/café"));
        for bad in [
            "relative", "/a?b", "/a#b", "/a b", "/a%2Fb", "/a%00", "/a\\b", "/a\u{7f}",
        ] {
            assert!(path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn queries_hold_no_fragment_or_spaces() {
        assert!(query("a=1&b=%20&c[]=x|y").is_ok());
        assert!(query("").is_ok());
        assert!(query("q=café").is_ok());
        for bad in ["a=1#frag", "a b", "a=\n", "a=\u{7f}"] {
            assert!(query(bad).is_err(), "{bad:?}");
        }
    }
}
