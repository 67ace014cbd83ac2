//! A small client for the tests: HTTP/1.1, HTTP/2 with prior knowledge (h2c), and TLS
//! with SNI and ALPN — each on a fresh connection unless a `Conn` is reused.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub enum Conn {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    pub async fn h1(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Self::handshake_h1(tcp).await
    }

    pub async fn h2c(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Self::handshake_h2(tcp).await
    }

    /// TLS with SNI `server_name`, trusting `ca`; HTTP/2 when the server picks h2.
    /// Returns the connection and the leaf certificate the server presented.
    pub async fn tls(
        addr: SocketAddr,
        server_name: &str,
        ca: CertificateDer<'static>,
        alpn: &[&[u8]],
    ) -> (Self, CertificateDer<'static>) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).expect("ca");
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from(server_name.to_owned()).expect("server name");
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        let (_, session) = tls.get_ref();
        let leaf = session.peer_certificates().expect("server cert")[0].clone();
        let h2 = session.alpn_protocol() == Some(b"h2");
        let conn = if h2 {
            Self::handshake_h2(tls).await
        } else {
            Self::handshake_h1(tls).await
        };
        (conn, leaf)
    }

    async fn handshake_h1<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: S) -> Self {
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .expect("h1 handshake");
        tokio::spawn(conn.with_upgrades());
        Self::H1(sender)
    }

    async fn handshake_h2<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: S) -> Self {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(io))
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        Self::H2(sender)
    }

    pub async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Reply {
        let response = match self {
            Self::H1(s) => {
                // HTTP/1.1 clients send origin-form targets; the host is in `Host`.
                if let Some(pq) = req.uri().path_and_query().cloned() {
                    *req.uri_mut() = pq.as_str().parse().expect("origin-form");
                }
                s.ready().await.expect("connection ready");
                s.send_request(req).await.expect("h1 request")
            }
            Self::H2(s) => {
                s.ready().await.expect("connection ready");
                s.send_request(req).await.expect("h2 request")
            }
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        }
    }
}

/// Builds a request; `host` goes in the Host header (HTTP/1) or the authority (HTTP/2).
pub fn request(method: &str, host: &str, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(format!("http://{host}{path}"))
        .header("host", host)
}

/// A request to host `h` with these headers and, if given, a JSON body with its content
/// type.
pub fn json_request(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> Request<Full<Bytes>> {
    let mut req = request(method, "h", target);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let bytes = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Bytes::from(b.to_string())
        }
        None => Bytes::new(),
    };
    req.body(Full::new(bytes)).expect("request")
}

pub fn get(host: &str, path: &str) -> Request<Full<Bytes>> {
    request("GET", host, path)
        .body(Full::new(Bytes::new()))
        .expect("request")
}

/// One GET on a fresh HTTP/1.1 connection.
pub async fn get_once(addr: SocketAddr, host: &str, path: &str) -> Reply {
    Conn::h1(addr).await.send(get(host, path)).await
}

/// Writes raw bytes and reads the raw answer until the server closes or `until`
/// appears — for requests a well-behaved client library will not send.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if response_complete(&out) {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `out` holds one whole response with a Content-Length body.
fn response_complete(out: &[u8]) -> bool {
    let text = String::from_utf8_lossy(out);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let head = text[..end].to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    out.len() >= end + 4 + len
}

/// Status code of a raw HTTP/1 response.
pub fn raw_status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

/// Reads until the peer closes; `true` when it closed (rather than the patience ran out).
pub async fn closed_by_peer(tcp: &mut (impl AsyncRead + Unpin)) -> bool {
    let mut buf = [0u8; 1024];
    let waited = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    waited.is_ok()
}

/// Opens a WebSocket tunnel through the gateway at `addr` to the test upstream's `/ws`
/// echo, and checks one round trip through it.
pub async fn open_tunnel(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.expect("read head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    // After the 101 the connection is a tunnel: bytes come back from the upstream.
    tcp.write_all(b"ping-through-the-tunnel")
        .await
        .expect("write");
    let mut echo = [0u8; 23];
    tcp.read_exact(&mut echo).await.expect("echo");
    assert_eq!(&echo, b"ping-through-the-tunnel");
    tcp
}
