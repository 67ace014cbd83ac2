//! The second tier of tests (design notes §7): the whole request path driven in process,
//! with no sockets on the gateway's side. Each test builds the gateway's runtime from a
//! TOML config, as `portcullis run` does, and hands typed requests straight to
//! `gateway::handle`, so one case reads in a few lines and runs in microseconds.
//!
//! Plugins are real components from this repository (built-in and test plugins).

mod cases;
mod conformance;
mod plugins;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis::listener::Connection;
use portcullis::runtime::Runtime;

/// The listener every config here starts with (nothing binds it).
pub const LISTENER: &str = "[[listeners]]\naddress = \"127.0.0.1:0\"\n";

/// A gateway's request path over one config, with a client connection that no socket
/// carries.
#[derive(Debug)]
pub struct InProcess {
    pub runtime: Runtime,
    conn: Connection,
    _dir: tempfile::TempDir,
}

/// What a client got back.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

impl InProcess {
    /// The gateway for `toml`, its client at 192.0.2.10 (`{dir}` is a temporary folder).
    pub fn new(toml: &str) -> Self {
        let peer = "192.0.2.10:40000";
        portcullis::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let text = toml.replace("{dir}", &dir.path().display().to_string());
        let path = dir.path().join("gateway.toml");
        let file = portcullis::config::parse(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let runtime = Runtime::build(&file).unwrap_or_else(|e| panic!("{e}"));
        let peer: SocketAddr = peer.parse().expect("peer address");
        let conn = Connection::in_process(&runtime.listeners[0], peer);
        Self {
            runtime,
            conn,
            _dir: dir,
        }
    }

    /// Serves `req` through the whole request path and reads the answer whole.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Answer {
        Self::answer(portcullis::gateway::handle(&self.runtime, &self.conn, req).await).await
    }

    /// Serves `req` as from another client address, on the same runtime (same buckets).
    pub async fn send_as(&self, peer: &str, req: Request<Full<Bytes>>) -> Answer {
        let peer: SocketAddr = peer.parse().expect("peer address");
        let conn = Connection::in_process(&self.runtime.listeners[0], peer);
        Self::answer(portcullis::gateway::handle(&self.runtime, &conn, req).await).await
    }

    async fn answer(response: http::Response<portcullis::body::ProxyBody>) -> Answer {
        let (head, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Answer {
            status: head.status,
            headers: head.headers,
            body,
        }
    }

    pub async fn get(&self, target: &str) -> Answer {
        self.send(get(target)).await
    }

    /// A GET from another client address, on the same runtime.
    pub async fn get_as(&self, peer: &str, target: &str) -> Answer {
        self.send_as(peer, get(target)).await
    }
}

/// A GET of `target` on host `h`, without a body.
pub fn get(target: &str) -> Request<Full<Bytes>> {
    request("GET", target)
        .body(Full::default())
        .expect("request")
}

/// A request builder for `target` on host `h`.
pub fn request(method: &str, target: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(target)
        .header(http::header::HOST, "h")
}

/// The `[plugins]` table every plugin config here uses.
pub const PLUGINS: &str = "[plugins]\nmax_instances = 16\ncache_dir = \"{dir}/cache\"\n";
