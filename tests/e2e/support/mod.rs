//! Shared pieces of the end-to-end tests: the gateway started in-process from a TOML
//! string, real upstreams, a small HTTP client, and rcgen certificates.

#![allow(dead_code)]

pub mod certs;
pub mod client;
pub mod h2raw;
pub mod jwt;
pub mod process;
pub mod upstream;

use std::net::SocketAddr;

use portcullis::runtime::Runtime;
use portcullis::server::RunningGateway;

/// A gateway serving a config given as TOML text. `{dir}` in the text is replaced by a
/// temporary directory that holds the config (and any files a test writes there).
pub struct TestGateway {
    pub addrs: Vec<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub metrics: std::sync::Arc<portcullis::telemetry::Metrics>,
    pub plugin_services: Option<std::sync::Arc<portcullis::plugin::HostServices>>,
    running: Option<RunningGateway>,
}

impl TestGateway {
    pub async fn start(toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, toml).await
    }

    pub async fn start_in(dir: tempfile::TempDir, toml: &str) -> Self {
        portcullis::install_crypto_provider();
        let text = toml.replace("{dir}", &dir.path().display().to_string());
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, &text).expect("write config");
        let file = portcullis::config::load(&path).unwrap_or_else(|e| panic!("config: {e}"));
        let runtime = Runtime::build(&file).unwrap_or_else(|e| panic!("config: {e}"));
        let metrics = std::sync::Arc::clone(&runtime.metrics);
        let plugin_services = runtime.plugin_services.clone();
        let running = RunningGateway::start(runtime).await.expect("start gateway");
        Self {
            addrs: running.addresses.clone(),
            dir,
            metrics,
            plugin_services,
            running: Some(running),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub async fn shutdown(mut self) -> bool {
        match self.running.take() {
            Some(r) => r.shutdown().await,
            None => true,
        }
    }
}

/// Builds a runtime from TOML text without serving it, for tests that call a route's
/// pipeline directly; panics on a config error.
pub fn runtime(toml: &str) -> Runtime {
    portcullis::install_crypto_provider();
    let file = portcullis::config::parse(std::path::Path::new("test.toml"), toml.to_owned())
        .expect("config");
    Runtime::build(&file).expect("runtime")
}

/// The plugin pipeline of the route a `GET h<path>` reaches.
pub fn pipeline_at(runtime: &Runtime, path: &str) -> std::sync::Arc<portcullis::plugin::Pipeline> {
    let headers = http::HeaderMap::new();
    let view = portcullis::router::RequestView {
        host: "h",
        method: &http::Method::GET,
        path,
        headers: &headers,
        query: None,
    };
    runtime
        .router
        .find(&view)
        .and_then(|m| m.route.pipeline.clone())
        .expect("a route with plugins")
}

/// Builds a runtime from TOML text and returns the config error it reports, if any.
pub fn build_error(toml: &str) -> Option<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = toml.replace("{dir}", &dir.path().display().to_string());
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, &text).expect("write config");
    let file = match portcullis::config::load(&path) {
        Ok(f) => f,
        Err(e) => return Some(e.to_string()),
    };
    Runtime::build(&file).err().map(|e| e.to_string())
}

/// A minimal listener block on a free port.
pub const LISTENER: &str = "[[listeners]]\naddress = \"127.0.0.1:0\"\n";
