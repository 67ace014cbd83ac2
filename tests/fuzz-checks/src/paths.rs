//! The path normaliser and the router together: for any path a client can send, under
//! every listener setting, the route the gateway picks is the one a backend would pick
//! from the path it is forwarded (issue 10, finding 4), and normalising twice changes
//! nothing.

use std::sync::OnceLock;

use http::{HeaderMap, Method};
use portcullis::canonical::{EscapedSlashes, PathOptions, Semicolons, normalize, percent_decode};
use portcullis::router::RequestView;
use portcullis::runtime::Runtime;

const ROUTES: &str = r#"version = 1
[[listeners]]
address = "127.0.0.1:0"
[upstreams.app]
targets = ["127.0.0.1:9"]
[[routes]]
id = "admin"
path = { prefix = "/admin" }
upstream = "app"
[[routes]]
id = "public"
path = { prefix = "/public" }
upstream = "app"
[[routes]]
id = "user"
path = { template = "/users/{id}" }
upstream = "app"
[[routes]]
id = "rest"
upstream = "app"
"#;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        portcullis::install_crypto_provider();
        let file = portcullis::config::parse(std::path::Path::new("paths.toml"), ROUTES.into())
            .expect("the routes parse");
        Runtime::build(&file).expect("the routes build")
    })
}

fn route_of(path: &str) -> Option<String> {
    let headers = HeaderMap::new();
    let view = RequestView {
        host: "h",
        method: &Method::GET,
        path,
        headers: &headers,
        query: None,
    };
    runtime().router.find(&view).map(|m| m.route.id.to_string())
}

/// What a backend that decodes escapes sees, with `%2F` and `%5C` left escaped (a kept
/// escaped slash is part of its segment, on both sides).
fn backend_view(path: &str) -> String {
    let mut kept = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(at) = rest.find('%') {
        kept.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).unwrap_or(&rest[at..]);
        if escape.eq_ignore_ascii_case("%2F") || escape.eq_ignore_ascii_case("%5C") {
            kept.push_str("%2F");
        } else {
            kept.push_str(&String::from_utf8_lossy(&percent_decode(escape)));
        }
        rest = &rest[at + escape.len()..];
    }
    kept.push_str(rest);
    kept
}

fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|r| r.starts_with('/'))
}

/// Every combination of the listener's path settings.
fn all_options() -> impl Iterator<Item = PathOptions> {
    [true, false].into_iter().flat_map(|merge_slashes| {
        [EscapedSlashes::Reject, EscapedSlashes::Keep]
            .into_iter()
            .flat_map(move |escaped_slashes| {
                [Semicolons::Reject, Semicolons::Keep]
                    .into_iter()
                    .map(move |semicolons| PathOptions {
                        merge_slashes,
                        escaped_slashes,
                        semicolons,
                    })
            })
    })
}

/// Takes `data` as a request target's path, as hyper would accept it.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(target) = text.parse::<http::uri::PathAndQuery>() else {
        return;
    };
    let path = target.path();
    if !path.starts_with('/') {
        return;
    }
    for opts in all_options() {
        let Ok(forwarded) = normalize(path, opts) else {
            continue;
        };
        let forwarded = forwarded.into_owned();
        let again = normalize(&forwarded, opts);
        assert_eq!(
            again.as_deref(),
            Ok(forwarded.as_str()),
            "{path:?} under {opts:?}: normalising the forwarded path changed it"
        );
        let seen = backend_view(&forwarded);
        for segment in seen.split('/') {
            assert!(
                segment != "." && segment != "..",
                "{path:?} under {opts:?}: the backend sees a dot segment in {seen:?}"
            );
        }
        if opts.merge_slashes {
            assert!(
                !forwarded.contains("//"),
                "{path:?} under {opts:?}: {forwarded:?} kept an empty segment"
            );
        }
        let route = route_of(&forwarded);
        let expected = if under(&seen, "/admin") {
            "admin"
        } else if under(&seen, "/public") {
            "public"
        } else {
            let segments: Vec<&str> = seen.split('/').collect();
            if segments.len() == 3 && segments[1] == "users" && !segments[2].is_empty() {
                "user"
            } else {
                "rest"
            }
        };
        assert_eq!(
            route.as_deref(),
            Some(expected),
            "{path:?} under {opts:?}: routed as {forwarded:?}, a backend sees {seen:?}"
        );
    }
}
