//! Write [Portcullis](https://example.invalid/portcullis) gateway plugins in Rust.
//!
//! A plugin is a WebAssembly component that the gateway runs for each request of the routes
//! that list it, in a sandbox with a deadline, a memory cap and only the capabilities the
//! route grants it. This crate gives you:
//!
//! - the [`Plugin`] trait, whose methods are the phases (each with a no-op default);
//! - [`Request`] and [`Response`], handles on the gateway's copy of the exchange: reading a
//!   header copies that header into the plugin, nothing more;
//! - [`host`] (config, clock, logs, metrics) and the capabilities a route may grant:
//!   [`http`], [`cache`] and [`crypto`] (signature verification done natively by the gateway);
//! - [`export_plugin!`], which makes your type the component's exports;
//! - [`testing`], a native harness: unit-test a plugin with plain `cargo test`, no gateway and
//!   no wasm needed.
//!
//! # Building
//!
//! Make the crate a `cdylib`, build it for `wasm32-unknown-unknown` and wrap the module as a
//! component (`wasm-tools component new plugin.wasm -o plugin.component.wasm`, or the
//! `wit-component` crate). The result imports nothing but what it uses from the
//! `portcullis:plugin@0.1.0` package: no WASI.
//!
//! A fresh instance is set up and reset for every request, and its cost grows with the
//! guest's linear memory. Rust gives wasm guests a 1 MiB stack by default; linking with
//! `-C link-arg=-zstack-size=65536` (in `.cargo/config.toml` under
//! `[target.wasm32-unknown-unknown] rustflags`) keeps it at two pages, as the gateway's own
//! plugins do. A stack overflow traps cleanly either way.
//!
//! Crates that draw random numbers through `getrandom` 0.3 (`ahash`'s hash map seeds, pulled
//! in by `jsonschema` and others) need `--cfg getrandom_backend="custom"` in the same
//! `rustflags`: the SDK then supplies the bytes from the gateway (`host::random_bytes`).
//! Without it, `getrandom` on `wasm32-unknown-unknown` imports JavaScript glue
//! (wasm-bindgen) that no gateway provides, and making the component fails.
//!
//! # Example
//!
//! A plugin that refuses requests without an `x-api-version` header, tags the rest for the
//! upstream, and tells the client which version answered:
//!
//! ```
//! use portcullis_sdk::{export_plugin, Action, Phases, Plugin, Reply, Request, Response};
//!
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     /// Versions this route serves.
//!     versions: Vec<String>,
//! }
//!
//! struct RequireVersion;
//!
//! impl Plugin for RequireVersion {
//!     type Config = Config;
//!
//!     fn check(config: &Config) -> Result<Phases, String> {
//!         if config.versions.is_empty() {
//!             return Err("`versions` must list at least one version".into());
//!         }
//!         Ok(Phases::ON_REQUEST | Phases::ON_RESPONSE)
//!     }
//!
//!     fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
//!         match request.header("x-api-version") {
//!             Some(v) if config.versions.contains(&v) => {
//!                 request.set_header("x-routed-version", &v)?;
//!                 Ok(Action::Continue)
//!             }
//!             _ => Ok(Action::Respond(
//!                 Reply::new(400).text("send x-api-version with a supported version"),
//!             )),
//!         }
//!     }
//!
//!     fn on_response(_: &Config, response: &mut Response<'_>) -> portcullis_sdk::Result<()> {
//!         response.set_header("x-version-checked", "true")?;
//!         Ok(())
//!     }
//! }
//!
//! export_plugin!(RequireVersion);
//!
//! // The same plugin, tested natively:
//! use portcullis_sdk::testing::{Harness, TestRequest};
//!
//! let harness = Harness::<RequireVersion>::new(serde_json::json!({ "versions": ["2"] })).unwrap();
//! let mut ok = TestRequest::get("/items").with_header("x-api-version", "2");
//! assert!(matches!(harness.on_request(&mut ok), Ok(Action::Continue)));
//! assert_eq!(ok.header_value("x-routed-version"), Some("2"));
//!
//! let mut missing = TestRequest::get("/items");
//! match harness.on_request(&mut missing) {
//!     Ok(Action::Respond(reply)) => assert_eq!(reply.status, 400),
//!     other => panic!("expected a reply, got {other:?}"),
//! }
//! assert!(Harness::<RequireVersion>::new(serde_json::json!({ "versions": [] })).is_err());
//! ```

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin-full",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "portcullis_sdk::bindings",
    });
}

mod capabilities;
pub mod checks;
mod exchange;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod glue;
pub mod query;
#[cfg(target_arch = "wasm32")]
mod random;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use bindings::portcullis::plugin::host::Level;
pub use bindings::portcullis::plugin::types::{Action, EditError, Identity, Phases, Reply};
pub use capabilities::{cache, crypto, host, http};
pub use exchange::{Request, Response};

/// Why a phase failed. The gateway logs the message and applies the entry's failure
/// policy; the client never sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<EditError> for Error {
    fn from(e: EditError) -> Self {
        Self(format!("edit refused: {e:?}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self(format!("JSON: {e}"))
    }
}

/// The result of a phase.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A plugin: its config type and its phases.
///
/// Phases are associated functions, not methods: by default each request runs on a fresh
/// instance, so there is no state to keep between requests (use [`cache`] for that). The
/// same instance serves both phases of one request.
pub trait Plugin {
    /// The entry's `config` table from the gateway's TOML, deserialized from JSON. Use
    /// `serde_json::Value` to take anything, or `()`-like empty structs to take nothing.
    type Config: serde::de::DeserializeOwned + 'static;

    /// Checks the config beyond its shape, and says which phases to run. Called when the
    /// gateway loads or validates its config; an error stops the load with this message.
    /// The default runs the request phase only.
    ///
    /// This is also where set-up belongs: for an entry with `preinitialise = true` the
    /// gateway snapshots the instance right after this call, and every fresh instance
    /// starts from that snapshot, with the config parsed and whatever `check` built from
    /// it (compiled schemas, lookup tables) already in memory. Anything drawn at random here is the
    /// same in every such instance (hash-map seeds included, as for all requests of one
    /// warm instance): draw per request what must differ between requests.
    fn check(config: &Self::Config) -> std::result::Result<Phases, String> {
        let _ = config;
        Ok(Phases::ON_REQUEST)
    }

    /// Runs before the upstream is called, in pipeline order. The default continues.
    fn on_request(config: &Self::Config, request: &mut Request<'_>) -> Result<Action> {
        let _ = (config, request);
        Ok(Action::Continue)
    }

    /// Runs on the response, in reverse pipeline order, if [`Plugin::check`] asked for
    /// [`Phases::ON_RESPONSE`]. The default changes nothing.
    fn on_response(config: &Self::Config, response: &mut Response<'_>) -> Result<()> {
        let _ = (config, response);
        Ok(())
    }
}

impl Reply {
    /// An empty reply with this status.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header (repeated names are kept).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A `text/plain` body.
    pub fn text(self, body: &str) -> Self {
        let mut r = self.header("content-type", "text/plain; charset=utf-8");
        r.body = body.as_bytes().to_vec();
        r
    }

    /// An RFC 9457 problem, shaped like the gateway's own error responses (`type`
    /// `urn:portcullis:problem:<kind>`, `title`, `status`, `detail`, `request_id`), so a
    /// client handles a plugin's refusal like any other.
    pub fn problem(status: u16, kind: &str, detail: &str, request_id: &str) -> Self {
        Self::problem_with(status, kind, detail, request_id, serde_json::Map::new())
    }

    /// [`Reply::problem`] with extension members (RFC 9457 §3.2), such as a list of the
    /// fields that failed validation.
    pub fn problem_with(
        status: u16,
        kind: &str,
        detail: &str,
        request_id: &str,
        extensions: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        let mut body = serde_json::json!({
            "type": format!("urn:portcullis:problem:{kind}"),
            "title": status_title(status),
            "status": status,
            "detail": detail,
            "request_id": request_id,
        });
        if let Some(members) = body.as_object_mut() {
            for (name, value) in extensions {
                members.entry(name).or_insert(value);
            }
        }
        Self::new(status)
            .header("cache-control", "no-store")
            .json("application/problem+json", &body)
    }

    /// A JSON body with the given content type (`application/json`,
    /// `application/problem+json`).
    pub fn json(self, content_type: &str, body: &serde_json::Value) -> Self {
        let mut r = self.header("content-type", content_type);
        r.body = body.to_string().into_bytes();
        r
    }
}

/// The reason phrase of the statuses plugins usually answer with.
fn status_title(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

impl Identity {
    /// An identity for an authenticated subject.
    pub fn subject(subject: &str) -> Self {
        Self {
            subject: Some(subject.to_owned()),
            consumer: None,
            scopes: Vec::new(),
            groups: Vec::new(),
            claims: Vec::new(),
        }
    }
}

/// Makes `$plugin` (a type implementing [`Plugin`]) the exports of this component.
///
/// On targets other than wasm32 it expands to nothing, so the same crate builds natively
/// for [`testing`].
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __PortcullisExports;

            impl $crate::bindings::exports::portcullis::plugin::handler::Guest for __PortcullisExports {
                fn check_config(config: String) -> Result<$crate::Phases, String> {
                    $crate::glue::check_config::<$plugin>(&config)
                }

                fn on_request(
                    request: $crate::bindings::portcullis::plugin::types::Request,
                ) -> Result<$crate::Action, String> {
                    $crate::glue::on_request::<$plugin>(&request)
                }

                fn on_response(
                    response: $crate::bindings::portcullis::plugin::types::Response,
                ) -> Result<(), String> {
                    $crate::glue::on_response::<$plugin>(&response)
                }
            }

            $crate::bindings::__export_plugin_world!(__PortcullisExports with_types_in $crate::bindings);
        };

        // Natively the phases are reached through `testing::Harness`; name them here so a
        // plugin crate checked natively does not look like dead code.
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            let _ = <$plugin as $crate::Plugin>::check;
            let _ = <$plugin as $crate::Plugin>::on_request;
            let _ = <$plugin as $crate::Plugin>::on_response;
        };
    };
}
