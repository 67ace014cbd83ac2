//! The request path in one canonical form, decided before routing and sent upstream as
//! it was routed, so that a route's policies cannot be stepped around by spelling the
//! same path another way (`/public/.%2e/admin`, `/%61dmin`, `//admin`, `/public/..;/x`).
//!
//! In order, following RFC 3986 §6.2.2 (syntax-based normalisation):
//! 1. percent-escapes are checked (`%` and two hex digits, else 400); escapes of
//!    unreserved characters (`%61` → `a`, `%2E` → `.`) are decoded, the rest keep their
//!    escape with upper-case hex; `%00`, double-encoded escapes (`%252e`) and escapes
//!    that do not decode to UTF-8 (the overlong `%C0%AE`) are refused;
//! 2. an escaped `/` or `\` (`%2F`, `%5C`) is refused or kept escaped, by the listener's
//!    `escaped_slashes` (Envoy's `path_with_escaped_slashes_action`); a raw `\` is
//!    refused, since some backends read it as `/`;
//! 3. runs of `/` are merged when `merge_slashes` is on (nginx's default);
//! 4. `;` (raw or `%3B`) is refused by default (`semicolons`): servlet containers cut
//!    `;parameters` off each segment, so `/admin;x` and `/;x/admin` would reach their
//!    `/admin` past the gateway's `/admin` route;
//! 5. dot segments are removed (§5.2.4); where `;` is kept, a dot or empty segment
//!    carrying parameters (`..;x`, `/;x/`) is still refused.
//!
//! Not done, as in Envoy and nginx: case folding, and the trimming of trailing dots and
//! spaces that Windows file systems do (`/ADMIN`, `/admin.`); routes match paths as
//! written, and backends with such rules need routes (or regexes) that say so.
//! The query is not touched.

use std::borrow::Cow;

/// How a listener treats `%2F` and `%5C` in paths.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// Answer 400: the safe choice when backends might decode them into separators.
    #[default]
    Reject,
    /// Keep them escaped, as part of their segment, and forward them so.
    Keep,
}

/// How a listener treats `;` (raw or `%3B`) in paths.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Semicolons {
    /// Answer 400. Servlet containers and others cut `;parameters` off each segment, so
    /// `/admin;x` would be routed by the gateway as one path and served by the backend
    /// as `/admin` (Spring Security's firewall refuses them for the same reason).
    #[default]
    Reject,
    /// Keep them, for backends that use matrix parameters. Dot segments and empty
    /// segments with parameters (`..;x`, `/;x/`) are still refused.
    Keep,
}

/// A listener's path settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathOptions {
    pub merge_slashes: bool,
    pub escaped_slashes: EscapedSlashes,
    pub semicolons: Semicolons,
}

impl Default for PathOptions {
    fn default() -> Self {
        Self {
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::Reject,
            semicolons: Semicolons::Reject,
        }
    }
}

/// Why a path is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    InvalidEscape,
    EscapedNul,
    EscapedSlash,
    Backslash,
    Semicolon,
    DotSegmentParameters,
    DoubleEncoded,
    NotUtf8,
}

impl PathError {
    /// Public text for the 400's `detail`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::InvalidEscape => "a percent-escape in the path is not `%` and two hex digits",
            Self::EscapedNul => "the path contains an escaped NUL",
            Self::EscapedSlash => "the path contains an escaped `/` or `\\`",
            Self::Backslash => "the path contains a backslash",
            Self::Semicolon => "the path contains `;` (path parameters)",
            Self::DoubleEncoded => "the path contains a double-encoded escape (`%25` and hex)",
            Self::NotUtf8 => "the path's escapes do not decode to UTF-8",
            Self::DotSegmentParameters => {
                "the path contains a dot or empty segment with parameters (`..;`, `/;`)"
            }
        }
    }
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for PathError {}

/// The canonical form of `path` under `opts`. Borrows when nothing changes, which is
/// the common case and costs one scan.
pub fn normalize(path: &str, opts: PathOptions) -> Result<Cow<'_, str>, PathError> {
    if !needs_work(path.as_bytes(), opts) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path, opts)?;
    let Some(rest) = decoded.strip_prefix('/') else {
        // `*` (OPTIONS) and the like have no segments to normalise.
        return Ok(Cow::Owned(decoded));
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, seg) in segments.into_iter().enumerate() {
        match seg {
            "." | ".." => {
                if seg == ".." {
                    out.pop();
                }
                // A final dot segment leaves a directory: `/a/b/..` is `/a/`.
                if i == last {
                    out.push("");
                }
            }
            _ if is_dot_with_parameters(seg) => return Err(PathError::DotSegmentParameters),
            "" if opts.merge_slashes && i != last => {}
            _ => out.push(seg),
        }
    }
    let mut joined = String::with_capacity(decoded.len());
    for seg in &out {
        joined.push('/');
        joined.push_str(seg);
    }
    if joined.is_empty() {
        joined.push('/');
    }
    if joined == path {
        Ok(Cow::Borrowed(path))
    } else {
        Ok(Cow::Owned(joined))
    }
}

/// `.;x`, `..;x`, `;x`, and the same with `;` escaped (`..%3B`): a backend that reads `;`
/// as the start of path parameters, after decoding or before, sees a dot segment (or an
/// empty one, merged away) there.
fn is_dot_with_parameters(seg: &str) -> bool {
    let rest = seg
        .strip_prefix("..")
        .or_else(|| seg.strip_prefix('.'))
        .unwrap_or(seg);
    rest.starts_with(';') || rest.starts_with("%3B")
}

/// Whether anything in the path could change: escapes, dot segments, empty segments,
/// backslashes.
fn needs_work(path: &[u8], opts: PathOptions) -> bool {
    path.iter().any(|&b| b == b'%' || b == b'\\' || b == b';')
        || path
            .windows(2)
            .any(|w| (w[0] == b'/' && w[1] == b'.') || (opts.merge_slashes && w == b"//"))
        || path.ends_with(b"/.")
        || path == b"."
        || path == b".."
}

/// Step 1 and 2 of the module docs.
fn decode_unreserved(path: &str, opts: PathOptions) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    // Escapes of bytes past ASCII are checked as UTF-8 at the end, and only if any came.
    let mut non_ascii = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let value = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(PathError::InvalidEscape)?;
                match value {
                    0 => return Err(PathError::EscapedNul),
                    b'/' | b'\\' if opts.escaped_slashes == EscapedSlashes::Reject => {
                        return Err(PathError::EscapedSlash);
                    }
                    b';' if opts.semicolons == Semicolons::Reject => {
                        return Err(PathError::Semicolon);
                    }
                    // `%252e`: a backend that decodes twice sees `.`; no client needs it.
                    b'%' if bytes
                        .get(i + 3..i + 5)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                    {
                        return Err(PathError::DoubleEncoded);
                    }
                    v if v.is_ascii_alphanumeric() || b"-._~".contains(&v) => {
                        out.push(char::from(v));
                    }
                    v => {
                        use std::fmt::Write as _;
                        non_ascii |= !v.is_ascii();
                        let _ = write!(out, "%{v:02X}");
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            b';' if opts.semicolons == Semicolons::Reject => return Err(PathError::Semicolon),
            _ => {
                // Copy this byte and the run up to the next byte of interest in one go
                // (a kept `;` is one of those, so the search starts after it).
                let end = bytes[i + 1..]
                    .iter()
                    .position(|&b| b == b'%' || b == b'\\' || b == b';')
                    .map_or(bytes.len(), |p| i + 1 + p);
                out.push_str(&path[i..end]);
                i = end;
            }
        }
    }
    if non_ascii && !escapes_decode_to_utf8(&out) {
        return Err(PathError::NotUtf8);
    }
    // A kept `%25` may be followed by hex digits only once their own escapes are decoded
    // (`%25%32B` is `%252B`): the same double encoding, which a second pass would refuse.
    // Found by the `paths` fuzz target (normalising twice must change nothing).
    if out
        .as_bytes()
        .windows(5)
        .any(|w| w.starts_with(b"%25") && w[3].is_ascii_hexdigit() && w[4].is_ascii_hexdigit())
    {
        return Err(PathError::DoubleEncoded);
    }
    Ok(out)
}

/// Whether the escapes left in `path` decode to valid UTF-8: overlong forms such as
/// `%C0%AE` (a `.` to lenient decoders) and stray bytes are refused.
fn escapes_decode_to_utf8(path: &str) -> bool {
    std::str::from_utf8(&percent_decode(path)).is_ok()
}

/// Every well-formed escape of `text` decoded once; anything else is kept as it is.
pub fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(b) => {
                decoded.push(b);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize(p, PathOptions::default()).map(Cow::into_owned)
    }

    #[test]
    fn dot_segments_in_every_spelling_are_removed() {
        assert_eq!(norm("/public/../admin"), Ok("/admin".into()));
        assert_eq!(norm("/a/./b"), Ok("/a/b".into()));
        assert_eq!(norm("/a/%2E%2E/b"), Ok("/b".into()));
        assert_eq!(norm("/public/.%2e/admin"), Ok("/admin".into()));
        assert_eq!(norm("/public/%2e./admin"), Ok("/admin".into()));
        assert_eq!(norm("/public/%2e/admin"), Ok("/public/admin".into()));
        assert_eq!(norm("/../../x"), Ok("/x".into()));
        assert_eq!(norm("/a/b/.."), Ok("/a/".into()));
        assert_eq!(norm("/a/b/."), Ok("/a/b/".into()));
        assert_eq!(norm("/plain/path"), Ok("/plain/path".into()));
        assert_eq!(norm("/.well-known/x"), Ok("/.well-known/x".into()));
        assert_eq!(norm("/a/..b/c"), Ok("/a/..b/c".into()));
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_upper_cased() {
        assert_eq!(norm("/%61dmin"), Ok("/admin".into()));
        assert_eq!(norm("/%7Euser/%2d"), Ok("/~user/-".into()));
        assert_eq!(norm("/a%20b/%c3%a9"), Ok("/a%20b/%C3%A9".into()));
        assert_eq!(norm("/q%3fx"), Ok("/q%3Fx".into()));
    }

    #[test]
    fn slashes_are_merged_by_default() {
        assert_eq!(norm("//admin"), Ok("/admin".into()));
        assert_eq!(norm("/a//b///c/"), Ok("/a/b/c/".into()));
        assert_eq!(norm("/a//"), Ok("/a/".into()));
        let keep = PathOptions {
            merge_slashes: false,
            ..PathOptions::default()
        };
        assert_eq!(
            normalize("/a//b", keep).map(Cow::into_owned),
            Ok("/a//b".into())
        );
        assert_eq!(
            normalize("/a//../b", keep).map(Cow::into_owned),
            Ok("/a/b".into())
        );
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        assert_eq!(norm("/a%2Fb"), Err(PathError::EscapedSlash));
        assert_eq!(norm("/a%5cb"), Err(PathError::EscapedSlash));
        assert_eq!(norm("/a\\b"), Err(PathError::Backslash));
        assert_eq!(norm("/a%00"), Err(PathError::EscapedNul));
        assert_eq!(norm("/a%zz"), Err(PathError::InvalidEscape));
        assert_eq!(norm("/a%4"), Err(PathError::InvalidEscape));
        assert_eq!(norm("/a%"), Err(PathError::InvalidEscape));
        assert_eq!(norm("/%2561dmin"), Err(PathError::DoubleEncoded));
        // The hex digits after `%25` spelled as escapes themselves (fuzzing found it).
        assert_eq!(norm("/Z/p%25%32B"), Err(PathError::DoubleEncoded));
        assert_eq!(norm("/p%25%34%31x"), Err(PathError::DoubleEncoded));
        assert_eq!(
            norm("/public/%252e%252e/admin"),
            Err(PathError::DoubleEncoded)
        );
        assert_eq!(norm("/public/%c0%ae%c0%ae/admin"), Err(PathError::NotUtf8));
        assert_eq!(norm("/x/%ff"), Err(PathError::NotUtf8));
        assert_eq!(norm("/100%25"), Ok("/100%25".into()));
        assert_eq!(norm("/public/..;/admin"), Err(PathError::Semicolon));
        assert_eq!(norm("/admin;x"), Err(PathError::Semicolon));
        assert_eq!(norm("/a%3bb"), Err(PathError::Semicolon));
        let keep = PathOptions {
            semicolons: Semicolons::Keep,
            ..PathOptions::default()
        };
        let with_params = |p| normalize(p, keep).map(Cow::into_owned);
        assert_eq!(with_params("/items;v=1/x"), Ok("/items;v=1/x".into()));
        for p in [
            "/public/..;/admin",
            "/public/.;x/admin",
            "/public/%2e%2e;/admin",
            "/public/..%3b/admin",
            "/public/.%3Bx/admin",
            "/;x/admin",
            "/%3B/admin",
        ] {
            assert_eq!(with_params(p), Err(PathError::DotSegmentParameters), "{p}");
        }
    }

    #[test]
    fn escaped_slashes_can_be_kept() {
        let keep = PathOptions {
            escaped_slashes: EscapedSlashes::Keep,
            ..PathOptions::default()
        };
        assert_eq!(
            normalize("/a%2fb/../c", keep).map(Cow::into_owned),
            Ok("/c".into())
        );
        assert_eq!(
            normalize("/files/a%2Fb", keep).map(Cow::into_owned),
            Ok("/files/a%2Fb".into())
        );
    }

    /// Every option combination over generated paths: the normaliser ends, keeps a
    /// leading `/`, and a second pass changes nothing. (A kept `;` once looped forever.)
    #[test]
    fn generated_paths_normalise_to_a_fixed_point_under_every_option() {
        let pieces = [
            "a", ".", "..", "%2e", ".%2E", "%2F", "%5c", ";", ";x", "..;", "%3b", "%", "%4", "%41",
            "%c3%a9", "", "~", "%7E",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for merge_slashes in [true, false] {
            for escaped_slashes in [EscapedSlashes::Reject, EscapedSlashes::Keep] {
                for semicolons in [Semicolons::Reject, Semicolons::Keep] {
                    let opts = PathOptions {
                        merge_slashes,
                        escaped_slashes,
                        semicolons,
                    };
                    for _ in 0..2000 {
                        let mut path = String::new();
                        for _ in 0..1 + next() % 6 {
                            path.push('/');
                            path.push_str(pieces[(next() % pieces.len() as u64) as usize]);
                        }
                        if let Ok(once) = normalize(&path, opts) {
                            assert!(once.starts_with('/'), "{path} -> {once}");
                            let twice = normalize(&once, opts).map(Cow::into_owned);
                            assert_eq!(twice.as_deref(), Ok(once.as_ref()), "{path} {opts:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for p in [
            "/a/./b/../c//d/",
            "/%61/%2e%2e/b",
            "/x/%c3%a9/..",
            "//",
            "/.",
        ] {
            let once = norm(p).expect("valid");
            assert_eq!(norm(&once), Ok(once.clone()), "{p}");
        }
    }
}
