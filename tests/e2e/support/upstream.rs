//! A real upstream on 127.0.0.1:0 that reports what it received.
//!
//! - any path: 200 with a JSON echo of method, path, query, headers (all values), body
//!   length (and the body itself up to 64 KiB) and HTTP version, and `x-upstream: NAME`;
//! - `/delay/MS`: the same echo after MS milliseconds (a slow service);
//! - `/status/N`: answers status N;
//! - `/bytes/N`: answers N bytes of `x` (a large download);
//! - `/ws`: accepts an `Upgrade: websocket` handshake with 101 and echoes every byte.
//!
//! It counts accepted connections and requests, and with TLS it can require a client
//! certificate (mTLS) and records whether one was presented.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub struct Counters {
    pub connections: AtomicUsize,
    pub requests: AtomicUsize,
    pub client_certs: AtomicUsize,
    /// Requests that have arrived, for tests that wait until one is in progress.
    pub arrived: tokio::sync::watch::Sender<usize>,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            connections: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            client_certs: AtomicUsize::new(0),
            arrived: tokio::sync::watch::channel(0).0,
        }
    }
}

pub struct TestUpstream {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// TLS for the upstream: its certificate, and the CA that client certificates must
/// chain to (mTLS) when set.
pub struct UpstreamTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca: Option<CertificateDer<'static>>,
}

impl TestUpstream {
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, None).await
    }

    pub async fn start_with(name: &str, tls: Option<UpstreamTls>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let counters = Arc::new(Counters::default());
        let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(server_config(t)));
        let name: Arc<str> = Arc::from(name);
        let c = Arc::clone(&counters);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                c.connections.fetch_add(1, Ordering::SeqCst);
                let c = Arc::clone(&c);
                let name = Arc::clone(&name);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        None => serve(stream, name, c).await,
                        Some(acc) => {
                            if let Ok(tls) = acc.accept(stream).await {
                                if tls.get_ref().1.peer_certificates().is_some() {
                                    c.client_certs.fetch_add(1, Ordering::SeqCst);
                                }
                                serve(tls, name, c).await;
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            counters,
            task,
        }
    }

    pub fn connections(&self) -> usize {
        self.counters.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// Resolves once `n` requests in total have arrived (not necessarily answered).
    pub async fn arrived(&self, n: usize) {
        let mut rx = self.counters.arrived.subscribe();
        tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|seen| *seen >= n))
            .await
            .expect("upstream never saw the request")
            .expect("upstream gone");
    }
}

fn server_config(t: UpstreamTls) -> Arc<rustls::ServerConfig> {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(t.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("cert pem");
    let key = PrivateKeyDer::from_pem_slice(t.key_pem.as_bytes()).expect("key pem");
    let builder = rustls::ServerConfig::builder();
    let mut config = match t.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca).expect("client ca");
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    }
    .with_single_cert(certs, key)
    .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

async fn serve<S>(stream: S, name: Arc<str>, counters: Arc<Counters>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let name = Arc::clone(&name);
        let counters = Arc::clone(&counters);
        async move {
            let n = counters.requests.fetch_add(1, Ordering::SeqCst) + 1;
            counters.arrived.send_replace(n);
            Ok::<_, std::convert::Infallible>(answer(req, &name).await)
        }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await;
}

async fn answer(mut req: Request<Incoming>, name: &str) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if path == "/ws" && req.headers().contains_key(header::UPGRADE) {
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .body(Full::new(Bytes::new()))
            .expect("101");
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let status = code.parse().unwrap_or(500);
        return Response::builder()
            .status(status)
            .header("x-upstream", name)
            .body(Full::new(Bytes::new()))
            .expect("status");
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let n: usize = n.parse().unwrap_or(0);
        return Response::builder()
            .header("x-upstream", name)
            .body(Full::new(Bytes::from(vec![b'x'; n])))
            .expect("bytes");
    }
    if path == "/broken-json" {
        // Says JSON, is not: for plugins that must not pass on what they cannot read.
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(b"{\"password\": ")))
            .expect("broken json");
    }
    if let Some(ms) = path.strip_prefix("/delay/") {
        let ms: u64 = ms.parse().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    // Validators of the answer, as a backend would send them, for tests of what edits
    // the body: `x-echo-etag: V` answers with `etag: V` and a `content-digest`.
    let etag = req.headers().get("x-echo-etag").cloned();
    let method = req.method().to_string();
    let query = req.uri().query().map(str::to_owned);
    let version = format!("{:?}", req.version());
    let body = req.into_body().collect().await.map(|c| c.to_bytes());
    let body_len = body.as_ref().map(|b| b.len()).unwrap_or(0);
    let echo = serde_json::json!({
        "upstream": name,
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body_len": body_len,
        // Small bodies as text, so tests can see what a plugin made of them.
        "body": body.as_ref().ok().filter(|b| b.len() <= 64 * 1024).map(|b| String::from_utf8_lossy(b).into_owned()),
        "body_ok": body.is_ok(),
        "version": version,
    });
    let mut answer = Response::builder()
        .header("x-upstream", name)
        .header(header::CONTENT_TYPE, "application/json")
        .header("connection", "x-hop")
        .header("x-hop", "must-not-reach-the-client");
    if let Some(etag) = etag {
        answer = answer
            .header(header::ETAG, etag)
            .header("content-digest", "sha-256=:of-the-echo-as-sent:");
    }
    answer
        .body(Full::new(Bytes::from(echo.to_string())))
        .expect("echo")
}
