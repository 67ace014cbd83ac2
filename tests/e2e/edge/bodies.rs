//! Request bodies (findings 1 and 12): a read deadline between body reads, no plugin
//! slot held while a body is awaited, and a client's bad body answered as its fault.

use super::*;

// Finding 1: no body read timeout.

#[tokio::test]
async fn a_stalled_http1_body_gets_408_while_other_clients_are_served() {
    let up = TestUpstream::start("svc").await;
    let config = proxy_config(&up, "[listeners.limits]\nbody_read_timeout = \"300ms\"\n");
    let gw = TestGateway::start(&config).await;
    let mut stalled = stall(
        gw.addr(),
        b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nonly-a-little",
    )
    .await;
    // A second client is served while the first one stalls.
    let reply = Conn::h1(gw.addr()).await.send(get("h", "/other")).await;
    assert_eq!(reply.status, 200);
    let answer = read_response(&mut stalled).await;
    assert_eq!(raw_status(&answer), 408, "{answer}");

    // A chunked body that stops mid-way is cut the same way.
    let mut stalled = stall(
        gw.addr(),
        b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .await;
    assert_eq!(raw_status(&read_response(&mut stalled).await), 408);
}

#[tokio::test]
async fn a_steady_slow_body_is_not_cut() {
    let up = TestUpstream::start("svc").await;
    let config = proxy_config(&up, "[listeners.limits]\nbody_read_timeout = \"1s\"\n");
    let gw = TestGateway::start(&config).await;
    // Twelve pieces 100 ms apart: longer than the timeout in all, never near it between.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(1);
    tokio::spawn(async move {
        for _ in 0..12 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if tx
                .send(Ok(Frame::data(Bytes::from_static(b"piece"))))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let body = channel_body(rx);
    let tcp = TcpStream::connect(gw.addr()).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::post("/upload")
        .header("host", "h")
        .body(body)
        .expect("request");
    let response = sender.send_request(req).await.expect("response");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_stalled_http2_stream_gets_408_and_its_connection_keeps_serving() {
    let up = TestUpstream::start("svc").await;
    let config = proxy_config(&up, "[listeners.limits]\nbody_read_timeout = \"300ms\"\n");
    let gw = TestGateway::start(&config).await;
    let tcp = TcpStream::connect(gw.addr()).await.expect("connect");
    let (sender, conn) = hyper::client::conn::http2::handshake::<_, _, ChannelBody>(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    // A stream whose body never ends (the sender is kept alive, silent).
    let (_keep, rx) =
        tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(1);
    let body = channel_body(rx);
    let stalled = http::Request::post("http://h/upload")
        .body(body)
        .expect("request");
    let mut stalled_sender = sender.clone();
    let stalled = tokio::spawn(async move { stalled_sender.send_request(stalled).await });
    // Another stream on the same connection is answered meanwhile.
    let mut other = sender.clone();
    let ok = other
        .send_request(
            http::Request::get("http://h/other")
                .body(Full::new(Bytes::new()).boxed_unsync())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(ok.status(), 200);
    let response = tokio::time::timeout(PATIENCE, stalled)
        .await
        .expect("an answer to the stalled stream")
        .expect("task")
        .expect("response");
    assert_eq!(response.status(), 408);
}

#[tokio::test]
async fn a_stalled_body_holds_no_plugin_slot() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}[plugins]
max_instances = 8
cache_dir = "{{dir}}/cache"

{}
[[routes]]
id = "guarded"
upstream = "app"
pipeline = {{ max_concurrent = 1, queue_timeout = "50ms" }}

[[routes.plugins]]
plugin = "{guard}"
config = {{ forbidden = "DROP TABLE" }}
budgets = {{ body_bytes = 1024 }}
"#,
        upstream_block("app", &up),
        guard = test_plugins::BODY_GUARD,
    );
    let gw = TestGateway::start(&config).await;
    // The body never completes; the default body timeout (60 s) is far away.
    let _stalled = stall(
        gw.addr(),
        b"POST /orders HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\npartial",
    )
    .await;
    // Give the gateway the stalled request first: wait until its bytes were read.
    wait_for_open_request(&gw).await;
    let post = request("POST", "h", "/orders")
        .body(Full::new(Bytes::from_static(b"fine")))
        .expect("request");
    let reply = Conn::h1(gw.addr()).await.send(post).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// Returns once the gateway has taken in the stalled request written just before: one
/// round trip on another connection each. On the test's single-threaded runtime the
/// stalled connection, accepted first, has had its task run by then, and its head was
/// already complete on the wire.
async fn wait_for_open_request(gw: &TestGateway) {
    for _ in 0..2 {
        let _ = Conn::h1(gw.addr()).await.send(get("h", "/__probe")).await;
    }
}

// Finding 12: bad client bodies were blamed on the upstream.

#[tokio::test]
async fn an_invalid_chunk_is_the_clients_fault() {
    let up = TestUpstream::start("svc").await;
    let config = proxy_config(&up, "");
    let gw = TestGateway::start(&config).await;
    let answer = raw(
        gw.addr(),
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&answer), 400, "{answer}");
    // The upstream was not held responsible: the next request goes straight through.
    let reply = Conn::h1(gw.addr()).await.send(get("h", "/after")).await;
    assert_eq!(reply.status, 200);
}
