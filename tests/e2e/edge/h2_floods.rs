//! HTTP/2 floods (issue 10, "defences to add and keep"): each is sent by a raw client
//! writing frames by hand while a second client is served normally.

use super::*;
use crate::support::h2raw::*;

const ENHANCE_YOUR_CALM: u32 = 0xb;

/// A second client's request, answered as usual while the flood runs.
async fn second_client_is_served(gw: &TestGateway) {
    let reply = tokio::time::timeout(PATIENCE, async {
        Conn::h1(gw.addr()).await.send(get("h", "/fine")).await
    })
    .await
    .expect("the second client waited past the patience");
    assert_eq!(reply.status, 200);
}

// CVE-2023-44487: open a stream and reset it at once, thousands of times.
#[tokio::test]
async fn rapid_reset_closes_the_connection_and_others_are_served() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&proxy_config(&up, "")).await;
    let mut raw = RawH2::connect(gw.addr(), &[]).await;
    let mut batch = Vec::new();
    let mut sent = 0u32;
    let mut open = true;
    for i in 0..20_000u32 {
        let stream = 2 * i + 1;
        batch.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            stream,
            &get_block("/x"),
        ));
        batch.extend(frame(RST_STREAM, 0, stream, &8u32.to_be_bytes()));
        if batch.len() > 16 * 1024 {
            open = raw.send(&batch).await;
            batch.clear();
            if !open {
                break;
            }
        }
        sent = i + 1;
    }
    let goaway = raw
        .until(PATIENCE, |f| f.kind == GOAWAY)
        .await
        .unwrap_or_else(|| panic!("no GOAWAY after {sent} resets (open: {open})"));
    assert_eq!(error_code(&goaway), ENHANCE_YOUR_CALM, "{goaway:?}");
    // The streams were refused before any work: nothing reached the upstream.
    assert!(up.requests() <= 20, "{} upstream requests", up.requests());
    second_client_is_served(&gw).await;
}

// CVE-2024-27316 and its kin: a header block that never ends, in CONTINUATION frames,
// full ones and empty ones.
#[tokio::test]
async fn endless_continuation_frames_end_the_connection() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&proxy_config(&up, "")).await;
    for payload_len in [1024usize, 0] {
        let mut raw = RawH2::connect(gw.addr(), &[]).await;
        let mut block = get_block("/x");
        block.extend_from_slice(&[0x00, 0x01, b'a', 0x01, b'b']);
        // HEADERS without END_HEADERS, then up to 16 MiB (or 100 000 empty frames) of
        // CONTINUATION: each a literal header `a: bbb…`.
        assert!(raw.send(&frame(HEADERS, END_STREAM, 1, &block)).await);
        let mut piece = vec![0x00, 0x01, b'a', 0x7f];
        piece.extend(std::iter::repeat_n(b'b', payload_len.saturating_sub(4)));
        piece.truncate(payload_len);
        let one = frame(CONTINUATION, 0, 1, &piece);
        let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 64).collect();
        let mut accepted = 0usize;
        while accepted < 100_000 && raw.send(&batch).await {
            accepted += 64;
            if payload_len > 0 && accepted * payload_len > 16 << 20 {
                break;
            }
        }
        // The server ends it: a GOAWAY, or the connection closed (a write failed above,
        // or the read sees the end).
        let end = raw.until(PATIENCE, |f| f.kind == GOAWAY).await;
        assert!(
            end.is_some() || !raw.send(&one).await,
            "{payload_len}-byte frames: the connection was still open after {accepted} frames"
        );
        assert_eq!(up.requests(), 0);
    }
    second_client_is_served(&gw).await;
}

// SETTINGS and PING floods from a client that never reads the acknowledgements.
#[tokio::test]
async fn settings_and_ping_floods_from_a_client_that_never_reads_are_cut() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&proxy_config(
        &up,
        "[listeners.limits]\nsend_timeout = \"1s\"\n",
    ))
    .await;
    for kind in [SETTINGS, PING] {
        let mut raw = RawH2::connect(gw.addr(), &[]).await;
        let payload = if kind == PING {
            vec![0u8; 8]
        } else {
            Vec::new()
        };
        let one = frame(kind, 0, 0, &payload);
        let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1024).collect();
        let mut sent = 0usize;
        // Up to 10 million frames, each asking for an answer this client never reads.
        // The gateway stops reading once its answers fill the socket (memory stays
        // bounded), then closes the connection at the send timeout: a write fails.
        let flood = async {
            while sent < 10_000_000 && raw.send(&batch).await {
                sent += 1024;
            }
        };
        tokio::time::timeout(PATIENCE, flood)
            .await
            .unwrap_or_else(|_| panic!("frame type {kind}: still open after {sent} frames"));
        assert!(
            sent < 10_000_000,
            "frame type {kind}: every frame was taken"
        );
        second_client_is_served(&gw).await;
    }
}

// A client that advertises a zero stream window and never opens it: the response can
// never be sent (Envoy's `stream_idle_timeout`, nginx's `send_timeout`).
#[tokio::test]
async fn a_zero_window_download_is_cut_at_the_send_timeout() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&proxy_config(
        &up,
        "[listeners.limits]\nsend_timeout = \"1s\"\n",
    ))
    .await;
    let mut raw = RawH2::connect(gw.addr(), &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]).await;
    assert!(
        raw.send(&frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &get_block("/bytes/1000000")
        ))
        .await
    );
    // The head arrives (HEADERS needs no window), then no data, then the end.
    let head = raw.until(PATIENCE, |f| f.kind == HEADERS).await;
    assert!(head.is_some(), "the response head never came");
    second_client_is_served(&gw).await;
    let started = std::time::Instant::now();
    let data = raw
        .until(PATIENCE, |f| f.kind == DATA && !f.payload.is_empty())
        .await;
    assert!(data.is_none(), "data was sent into a zero window: {data:?}");
    assert!(
        started.elapsed() < PATIENCE,
        "the connection stayed open past the patience"
    );
}

// The same on HTTP/1: a download the client stops reading.
#[tokio::test]
async fn a_client_that_stops_reading_a_download_is_cut_at_the_send_timeout() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&proxy_config(
        &up,
        "[listeners.limits]\nsend_timeout = \"1s\"\n",
    ))
    .await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    // A small receive buffer, so the gateway's writes block soon.
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut tcp = socket.connect(gw.addr()).await.expect("connect");
    tcp.write_all(b"GET /bytes/50000000 HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("request");
    second_client_is_served(&gw).await;
    // Read nothing until the gateway must have given up (50 MB cannot fit in the
    // socket buffers), then read what is there: the connection ends long before.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut total = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let read_all = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    tokio::time::timeout(PATIENCE, read_all)
        .await
        .expect("the connection stayed open");
    assert!(
        total < 50_000_000,
        "the whole download was sent: {total} bytes"
    );
}
