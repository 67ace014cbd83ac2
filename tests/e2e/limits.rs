//! Edge limits: 431, 414, 413 (declared and chunked), 400 for ambiguous framing,
//! header-read and idle timeouts, and the open-connection cap.

use bytes::Bytes;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::client::{Conn, closed_by_peer, get, raw, raw_status, request};
use crate::support::upstream::TestUpstream;
use crate::support::{LISTENER, TestGateway};

fn config(upstream: std::net::SocketAddr, limits: &str, route_extra: &str) -> String {
    format!(
        "version = 1\n{LISTENER}[listeners.limits]\n{limits}\n\n[upstreams.svc]\ntargets = [\"{upstream}\"]\n\n\
         [[routes]]\nid = \"all\"\nupstream = \"svc\"\n{route_extra}\n"
    )
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&config(
        up.addr,
        "max_headers = 10\nmax_header_bytes = 2048",
        "",
    ))
    .await;
    let mut many = request("GET", "h", "/");
    for i in 0..15 {
        many = many.header(format!("x-h{i}"), "v");
    }
    let reply = Conn::h1(gw.addr())
        .await
        .send(many.body(Full::new(Bytes::new())).expect("req"))
        .await;
    assert_eq!(reply.status, 431);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );

    let big = request("GET", "h", "/")
        .header("x-big", "v".repeat(3000))
        .body(Full::new(Bytes::new()))
        .expect("req");
    let reply = Conn::h1(gw.addr()).await.send(big).await;
    assert_eq!(reply.status, 431);
    assert_eq!(
        up.requests(),
        0,
        "nothing over the limits reached the upstream"
    );
}

#[tokio::test]
async fn long_uri_gets_414() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&config(up.addr, "max_uri_bytes = 1024", "")).await;
    let path = format!("/{}", "a".repeat(2000));
    let reply = Conn::h1(gw.addr()).await.send(get("h", &path)).await;
    assert_eq!(reply.status, 414);
    assert_eq!(reply.json()["status"], 414);
    let reply = Conn::h1(gw.addr()).await.send(get("h", "/short")).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_declared_or_chunked() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&config(
        up.addr,
        "max_body_bytes = 1000",
        "[routes.limits]\nmax_body_bytes = 100\n",
    ))
    .await;
    let declared = request("POST", "h", "/")
        .body(Full::new(Bytes::from(vec![b'x'; 500])))
        .expect("req");
    let reply = Conn::h1(gw.addr()).await.send(declared).await;
    assert_eq!(
        reply.status, 413,
        "route limit (100) is tighter than the listener's"
    );

    let chunk = "x".repeat(80);
    let chunked = format!(
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         50\r\n{chunk}\r\n50\r\n{chunk}\r\n0\r\n\r\n"
    );
    let response = raw(gw.addr(), chunked.as_bytes()).await;
    assert_eq!(raw_status(&response), 413, "{response}");

    let small = request("POST", "h", "/")
        .body(Full::new(Bytes::from(vec![b'x'; 50])))
        .expect("req");
    assert_eq!(Conn::h1(gw.addr()).await.send(small).await.status, 200);
}

#[tokio::test]
async fn ambiguous_framing_gets_400() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&config(up.addr, "", "")).await;
    let cl_te = raw(
        gw.addr(),
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&cl_te), 400, "{cl_te}");
    assert!(cl_te.contains("application/problem+json"), "{cl_te}");

    let te_cl = raw(
        gw.addr(),
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&te_cl), 400, "{te_cl}");

    let two_lengths = raw(
        gw.addr(),
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    )
    .await;
    assert_eq!(raw_status(&two_lengths), 400, "{two_lengths}");
    assert_eq!(up.requests(), 0);

    // A sound request on a fresh connection is unaffected.
    let ok = raw(
        gw.addr(),
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&ok), 200, "{ok}");
}

#[tokio::test]
async fn slow_request_heads_are_cut_off() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&config(up.addr, "header_read_timeout = \"300ms\"", "")).await;
    let mut slowloris = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    slowloris
        .write_all(b"GET / HTTP/1.1\r\nHost: h\r\n")
        .await
        .expect("write");
    assert!(
        closed_by_peer(&mut slowloris).await,
        "incomplete head kept open"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    // The header-read timeout is far longer than the test's patience, so only the
    // idle timeout can close this connection.
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&config(
        up.addr,
        "header_read_timeout = \"5m\"\nidle_timeout = \"300ms\"",
        "",
    ))
    .await;
    let mut idle = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    idle.write_all(b"GET /delay/600 HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).await.expect("response");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "a request slower than the idle timeout still completes"
    );
    assert!(
        closed_by_peer(&mut idle).await,
        "idle keep-alive connection kept open"
    );
}

/// The header timeout bounds how long a request head takes to arrive, not how long a
/// keep-alive connection may wait for its next request: that is `idle_timeout`, as
/// nginx's `keepalive_timeout` beside its `client_header_timeout`.
#[tokio::test]
async fn keep_alive_connections_outlast_the_header_timeout() {
    let up = TestUpstream::start("svc").await;
    let limits = "header_read_timeout = \"200ms\"\nidle_timeout = \"5m\"";
    let gw = TestGateway::start(&config(up.addr, limits, "")).await;
    for (name, mut conn) in [
        ("HTTP/1.1", Conn::h1(gw.addr()).await),
        ("h2c", Conn::h2c(gw.addr()).await),
    ] {
        assert_eq!(conn.send(get("h", "/")).await.status, 200, "{name}");
        // Idle for three header timeouts: the span under test, not a wait for an event.
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert_eq!(
            conn.send(get("h", "/")).await.status,
            200,
            "{name}: an idle keep-alive connection was cut at the header timeout"
        );
    }
}

/// A later request's head trickled a byte at a time is cut at the header timeout, counted
/// from its first byte, although the connection itself may idle far longer.
#[tokio::test]
async fn a_trickled_later_head_is_cut_off() {
    let up = TestUpstream::start("svc").await;
    let limits = "header_read_timeout = \"300ms\"\nidle_timeout = \"5m\"";
    let gw = TestGateway::start(&config(up.addr, limits, "")).await;
    let tcp = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    let (mut rd, mut wr) = tcp.into_split();
    wr.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 4096];
    let n = rd.read(&mut buf).await.expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // 20 s of trickle if nothing cuts it, as long as the patience of `closed_by_peer`.
    let trickle = tokio::spawn(async move {
        let head = [
            b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ".as_slice(),
            &[b'a'; 400],
        ]
        .concat();
        for byte in head {
            if wr.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    let closed = closed_by_peer(&mut rd).await;
    trickle.abort();
    assert!(closed, "a trickled head kept the connection open");
}

/// An HTTP/2 client that ignores the GOAWAY sent at the idle timeout (and never answers
/// the ping that comes with it) is dropped instead of keeping its connection for good.
#[tokio::test]
async fn an_h2c_client_that_ignores_goaway_is_dropped() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&config(up.addr, "idle_timeout = \"200ms\"", "")).await;
    let mut tcp = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    // The preface and an empty SETTINGS frame; then nothing, not even the SETTINGS ack.
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("write");
    assert!(
        closed_by_peer(&mut tcp).await,
        "a client deaf to GOAWAY kept its connection"
    );
}

/// A head pipelined behind a slow request, arriving in part, neither cuts the response
/// ahead of it nor outlives its own header timeout once that response is sent.
#[tokio::test]
async fn a_partial_pipelined_head_waits_for_its_turn() {
    let up = TestUpstream::start("svc").await;
    let limits = "header_read_timeout = \"300ms\"\nidle_timeout = \"5m\"";
    let gw = TestGateway::start(&config(up.addr, limits, "")).await;
    let mut tcp = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    tcp.write_all(b"GET /delay/900 HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHo")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        tcp.read_to_end(&mut answer).await
    })
    .await;
    assert!(closed.is_ok(), "the partial head kept the connection open");
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(raw_status(&answer), 200, "{answer}");
    let body_len: usize = answer
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    let body = &answer[answer.find("\r\n\r\n").expect("head end") + 4..];
    assert_eq!(body.len(), body_len, "the slow response was cut: {answer}");
}

#[tokio::test]
async fn open_connections_are_capped() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&config(up.addr, "max_connections = 1", "")).await;
    let mut first = Conn::h1(gw.addr()).await;
    assert_eq!(first.send(get("h", "/")).await.status, 200);

    let mut second = tokio::net::TcpStream::connect(gw.addr())
        .await
        .expect("connect");
    let _ = second.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert!(
        closed_by_peer(&mut second).await,
        "second connection was served"
    );

    // The first connection keeps working.
    assert_eq!(first.send(get("h", "/")).await.status, 200);
}
