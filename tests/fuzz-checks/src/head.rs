//! Request heads through the whole gateway in this process: any bytes a client can send
//! on a connection are answered with a well-formed response (or the connection is
//! closed), never a panic, a stall or a 500, and the gateway keeps serving.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::panics;

/// Far above any timeout of the gateway under test: an input that gets no answer and no
/// close within this stalled it.
const PATIENCE: Duration = Duration::from_secs(30);

struct Harness {
    runtime: tokio::runtime::Runtime,
    gateway: SocketAddr,
    // Serves for the life of the process.
    _running: portcullis::server::RunningGateway,
}

fn config(upstream: SocketAddr, dir: &std::path::Path) -> String {
    format!(
        r#"version = 1
[[listeners]]
address = "127.0.0.1:0"
trusted_proxies = ["127.0.0.0/8"]
[listeners.limits]
body_read_timeout = "2s"
header_read_timeout = "2s"
[upstreams.app]
targets = ["{upstream}"]
request_timeout = "5s"
[plugins]
max_instances = 8
cache_dir = "{dir}/cache"
[rate_limits.per-client]
quota = 1000000
window = "1s"
key = "client_ip"
[[routes]]
id = "keyed"
path = {{ prefix = "/keyed" }}
upstream = "app"
[[routes.plugins]]
plugin = "key-auth"
config = {{ consumers = {{ alice = {{ key_sha256 = "{alice}" }} }} }}
[[routes]]
id = "users"
path = {{ template = "/users/{{id}}" }}
methods = ["GET", "PUT"]
upstream = "app"
rate_limits = ["per-client"]
[[routes]]
id = "rest"
upstream = "app"
preserve_host = true
"#,
        dir = dir.display(),
        alice = "ff".repeat(32),
    )
}

/// An upstream that answers every request with 200 and a small body.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"ok"),
                    )))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        panics::watch();
        portcullis::install_crypto_provider();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let running = runtime.block_on(async {
            let dir = tempfile::tempdir().expect("tempdir").keep();
            let text = config(upstream().await, &dir);
            let path = dir.join("gateway.toml");
            std::fs::write(&path, &text).expect("write config");
            let file = portcullis::config::load(&path).expect("config");
            let built = portcullis::runtime::Runtime::build(&file).expect("runtime");
            portcullis::server::RunningGateway::start(built)
                .await
                .expect("start gateway")
        });
        Harness {
            gateway: running.addresses[0],
            runtime,
            _running: running,
        }
    })
}

/// Sends `bytes` on a fresh connection, closes the sending side, and reads everything
/// the gateway answers until it closes.
async fn exchange(gateway: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(gateway).await.expect("connect");
    // The gateway may close before reading it all (a refused head): not an error.
    let _ = tcp.write_all(bytes).await;
    let _ = tcp.shutdown().await;
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    answer
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|&b| b == b'\n').next()?;
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

pub fn check(data: &[u8]) {
    let h = harness();
    let before = panics::count();
    let answer = h.runtime.block_on(async {
        tokio::time::timeout(PATIENCE, exchange(h.gateway, data))
            .await
            .expect("the gateway neither answered nor closed the connection")
    });
    assert_eq!(panics::count(), before, "the gateway panicked on {data:?}");
    if !data.starts_with(b"PRI * HTTP/2.0") && !answer.is_empty() {
        let status = status_of(&answer).unwrap_or_else(|| {
            panic!(
                "not an HTTP/1 response: {:?}",
                String::from_utf8_lossy(&answer[..answer.len().min(200)])
            )
        });
        assert!((100..=599).contains(&status), "status {status}");
        assert_ne!(
            status,
            500,
            "an internal error for {:?}: {}",
            String::from_utf8_lossy(data),
            String::from_utf8_lossy(&answer)
        );
    }
    // Still serving.
    let probe = h.runtime.block_on(async {
        tokio::time::timeout(
            PATIENCE,
            exchange(h.gateway, b"GET /users/1 HTTP/1.1\r\nHost: h\r\n\r\n"),
        )
        .await
        .expect("the gateway stopped answering")
    });
    assert_eq!(
        status_of(&probe),
        Some(200),
        "{}",
        String::from_utf8_lossy(&probe)
    );
}
