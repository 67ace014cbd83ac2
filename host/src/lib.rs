//! Portcullis: an API gateway whose policies are WebAssembly components.
//!
//! The request path, stage by stage, is assembled in [`gateway`] around one per-request
//! context ([`exchange::Exchange`]); each stage lives in the module named for its job:
//!
//! - [`edge`]: framing, target form, and head and body limits of each request;
//! - [`canonical`]: the authority and path every later stage uses, decided once;
//! - [`config`]: the TOML file, parsed with positions for error messages;
//! - [`runtime`]: semantic checks, and the live structures built from a config;
//! - [`listener`]: TCP/TLS accept, HTTP/1.1 and HTTP/2 serving, connection limits;
//! - [`server`]: the listeners started with the gateway's request path, and the drain;
//! - [`router`]: host, method, path, header and query matching with a fixed priority;
//! - [`policy`]: IP allow/deny, CORS, rate limits;
//! - [`plugin`]: WebAssembly plugin pipelines: engine, sandboxes, host imports;
//! - [`upstream`]: pooled clients, balancing, retries, passive health;
//! - [`error`]: the one place where failures become problem+json responses;
//! - [`telemetry`]: the access log and operational logs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let file = portcullis::config::load(std::path::Path::new("examples/quickstart.toml"))?;
//! let runtime = portcullis::runtime::Runtime::build(&file)?;
//! let gateway = portcullis::server::RunningGateway::start(runtime).await?;
//! println!("listening on {:?}", gateway.addresses);
//! gateway.shutdown().await;
//! # Ok(()) }
//! ```

pub mod body;
pub mod canonical;
pub mod config;
pub mod edge;
pub mod error;
pub mod exchange;
pub mod gateway;
pub mod invoke;
pub mod listener;
pub mod plugin;
pub mod policy;
pub mod proxy;
pub mod router;
pub mod runtime;
pub mod scaffold;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod upstream;

/// Installs the process-wide rustls crypto provider (aws-lc-rs) once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
