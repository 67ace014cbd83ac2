//! The lean client against raw upstreams that keep, close and misuse their connections.

use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::body::empty;

/// A raw HTTP/1.1 upstream: answers `HEAD` with a length and no body, `/204` with
/// 204, anything else with `ok`; with `one_each`, closes every connection after its
/// first answer (without saying so), as an upstream's idle timeout does. Counts
/// accepted connections; `closed` ticks when a connection is gone.
async fn upstream(
    one_each: bool,
) -> (
    Authority,
    Arc<AtomicUsize>,
    tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let authority =
        Authority::try_from(listener.local_addr().expect("addr").to_string()).expect("authority");
    let accepted = Arc::new(AtomicUsize::new(0));
    let (closed_tx, closed) = tokio::sync::mpsc::unbounded_channel();
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let closed_tx = closed_tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    head.extend_from_slice(&buf[..n]);
                    let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let text = String::from_utf8_lossy(&head[..end]).into_owned();
                    head.drain(..end + 4);
                    let answer: &[u8] = if text.starts_with("HEAD ") {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
                    } else if text.starts_with("GET /204 ") {
                        b"HTTP/1.1 204 No Content\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                    };
                    if socket.write_all(answer).await.is_err() || one_each {
                        break;
                    }
                }
                drop(socket);
                let _ = closed_tx.send(());
            });
        }
    });
    (authority, accepted, closed)
}

fn pool() -> Arc<DirectPool> {
    DirectPool::new(1, Duration::from_secs(5), Duration::from_secs(60), 8)
}

async fn send(pool: &Arc<DirectPool>, to: &Authority, method: &str, path: &str) -> u16 {
    let mut request = Request::new(empty());
    *request.method_mut() = method.parse().expect("method");
    let path = PathAndQuery::try_from(path).expect("path");
    let response = pool.send(0, to, &path, request).await.expect("answered");
    let status = response.status().as_u16();
    // As hyper's server does: a body that says it has ended is never polled.
    if !response.body().is_end_stream() {
        response.into_body().collect().await.expect("body");
    }
    status
}

#[tokio::test]
async fn one_connection_serves_requests_in_turn_with_and_without_bodies() {
    let (to, accepted, _closed) = upstream(false).await;
    let pool = pool();
    for (method, path, status) in [
        ("GET", "/a", 200),
        ("HEAD", "/a", 200),
        ("GET", "/204", 204),
        ("GET", "/b", 200),
    ] {
        assert_eq!(send(&pool, &to, method, path).await, status);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_used() {
    let (to, accepted, mut closed) = upstream(true).await;
    let pool = pool();
    for round in 1..=3 {
        assert_eq!(send(&pool, &to, "GET", "/a").await, 200);
        closed.recv().await.expect("the upstream closed it");
        // The close reaches this runtime's reactor before the next checkout.
        tokio::task::yield_now().await;
        assert_eq!(accepted.load(Ordering::SeqCst), round);
    }
}

/// An upstream that sends a response nobody asked for while its connection is idle:
/// the connection is not used again, so the next request gets its own answer.
#[tokio::test]
async fn a_response_nobody_asked_for_retires_its_connection() {
    // The upstream runs on a thread and runtime of its own, so that this runtime's
    // reactor does not turn while it misbehaves: only the kernel knows of the bytes.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let to = Authority::try_from(std_listener.local_addr().expect("addr").to_string())
        .expect("authority");
    let (injected_tx, injected) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            std_listener.set_nonblocking(true).expect("non-blocking");
            let listener = TcpListener::from_std(std_listener).expect("listener");
            // Only the first connection misbehaves, once: an extra response racing a
            // request already on its way would fool any proxy.
            let mut first = true;
            while let Ok((mut socket, _)) = listener.accept().await {
                let injected_tx = injected_tx.clone();
                let mut first = std::mem::take(&mut first);
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let path = String::from_utf8_lossy(&buf[..n])
                            .split(' ')
                            .nth(1)
                            .unwrap_or("")
                            .to_owned();
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{path}",
                            path.len()
                        );
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            break;
                        }
                        if std::mem::take(&mut first) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            let extra = "HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\ninjected";
                            let _ = socket.write_all(extra.as_bytes()).await;
                            let _ = injected_tx.send(());
                        }
                    }
                });
            }
        });
    });
    let pool = pool();
    let get = |path: &'static str| {
        let pool = Arc::clone(&pool);
        let to = to.clone();
        async move {
            let response = pool
                .send(
                    0,
                    &to,
                    &PathAndQuery::from_static(path),
                    Request::new(empty()),
                )
                .await
                .expect("answered");
            let body = response.into_body().collect().await.expect("body");
            String::from_utf8(body.to_bytes().to_vec()).expect("text")
        }
    };
    assert_eq!(get("/first").await, "/first");
    // Blocks this runtime's only thread: no reactor turn until the next request, so
    // the kernel, not the runtime, says bytes are waiting.
    injected.recv().expect("the extra response went out");
    assert_eq!(get("/second").await, "/second");
    assert_eq!(get("/third").await, "/third");
}

#[tokio::test]
async fn a_body_dropped_unread_closes_its_connection() {
    let (to, accepted, _closed) = upstream(false).await;
    let pool = pool();
    let path = PathAndQuery::from_static("/a");
    let response = pool
        .send(0, &to, &path, Request::new(empty()))
        .await
        .expect("answered");
    drop(response);
    assert_eq!(send(&pool, &to, "GET", "/a").await, 200);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

/// A connection the upstream closed before it took the request hands the request
/// back unsent (to go out on another connection), without waiting for a timeout.
#[tokio::test]
async fn a_request_a_closed_connection_never_took_comes_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let to =
        Authority::try_from(listener.local_addr().expect("addr").to_string()).expect("authority");
    let pool = pool();
    let (connected, accepted) = tokio::join!(pool.connect(&to), listener.accept());
    let mut conn = connected.expect("connected");
    drop(accepted.expect("accepted"));
    // Let this runtime's reactor see the close.
    tokio::task::yield_now().await;
    let sent = conn.send.try_send_request(Request::new(empty()));
    let outcome = tokio::time::timeout(Duration::from_secs(10), drive(&mut conn, sent))
        .await
        .expect("the request does not wait on a closed connection");
    let mut refused = outcome.expect_err("nobody answered");
    assert!(
        refused.take_message().is_some(),
        "the request comes back unsent"
    );
}

#[tokio::test]
async fn a_refused_connect_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let to =
        Authority::try_from(listener.local_addr().expect("addr").to_string()).expect("authority");
    drop(listener);
    let path = PathAndQuery::from_static("/");
    let mut request = Request::new(empty());
    request
        .headers_mut()
        .insert("x-kept", http::HeaderValue::from_static("1"));
    let failed = pool().send(0, &to, &path, request).await;
    let Err((DirectError::Connect(_), Some(unsent))) = failed else {
        panic!("a refused connect is a connect error, and hands the request back");
    };
    // As it came: the `Host` written for this target is not left for the next one.
    assert_eq!(unsent.headers()["x-kept"], "1");
    assert!(!unsent.headers().contains_key(http::header::HOST));
}
