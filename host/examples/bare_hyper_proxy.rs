//! The floor for bench/proxy.sh: the smallest reverse proxy our libraries allow
//! (hyper-util's auto server and pooled legacy client, one runtime thread), with none
//! of the gateway's work — no routing, limits, policies, headers or access log.
//! bench/proxy.sh runs it beside nginx and Portcullis, so the distance between it and
//! Portcullis is what the gateway's own code costs.
//!
//! Run: `cargo run --release --example bare_hyper_proxy -- LISTEN_ADDR UPSTREAM_ADDR`

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare_hyper_proxy LISTEN_ADDR UPSTREAM_ADDR";
    let listen: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let upstream: SocketAddr = args.next().ok_or(usage)?.parse()?;
    // One runtime thread unless `WORKERS` says otherwise (bench/proxy.sh's scaling run).
    let workers = std::env::var("WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(serve(listen, upstream))
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: Client<HttpConnector, BoxBody<Bytes, hyper::Error>> =
        Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(64)
            .build(http);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let client = client.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                let client = client.clone();
                async move {
                    let (mut parts, body) = req.into_parts();
                    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                    parts.uri = format!("http://{upstream}{path}")
                        .parse()
                        .unwrap_or_default();
                    let response = match client
                        .request(hyper::Request::from_parts(parts, body.boxed()))
                        .await
                    {
                        Ok(r) => r.map(|b| b.boxed()),
                        Err(_) => hyper::Response::builder()
                            .status(502)
                            .body(http_body_util::Empty::new().map_err(|n| match n {}).boxed())
                            .unwrap_or_default(),
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}
