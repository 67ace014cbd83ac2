//! Upgraded connections (finding 8): the connection limit, the idle timeout and the
//! drain hold for WebSocket tunnels too.

use super::*;

// Finding 8: WebSocket tunnels escaped the connection limit, the idle timeout and the
// drain.

#[tokio::test]
async fn a_tunnel_keeps_its_connection_slot() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&proxy_config(
        &up,
        "[listeners.limits]\nmax_connections = 1\n",
    ))
    .await;
    let _tunnel = open_tunnel(gw.addr()).await;
    // The only slot is the tunnel's: a second connection is refused (closed unanswered).
    let answer = raw(gw.addr(), b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_eq!(
        answer, "",
        "served past max_connections while a tunnel was open"
    );
}

#[tokio::test]
async fn an_idle_tunnel_is_closed() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&proxy_config(
        &up,
        "[listeners.limits]\nidle_timeout = \"300ms\"\n",
    ))
    .await;
    let mut tunnel = open_tunnel(gw.addr()).await;
    assert!(
        closed_by_peer(&mut tunnel).await,
        "an idle tunnel stayed open"
    );
}

#[tokio::test]
async fn tunnels_are_waited_for_by_the_drain_and_closed_at_its_end() {
    let up = TestUpstream::start("svc").await;
    let config = proxy_config(&up, "").replacen(
        "version = 1\n",
        "version = 1\n[server]\ndrain_timeout = \"300ms\"\n",
        1,
    );
    let gw = TestGateway::start(&config).await;
    let mut tunnel = open_tunnel(gw.addr()).await;
    // The open tunnel keeps the drain from finishing early ...
    assert!(
        !gw.shutdown().await,
        "the drain did not wait for the tunnel"
    );
    // ... and is closed when it ends.
    assert!(
        closed_by_peer(&mut tunnel).await,
        "the tunnel outlived the drain"
    );
}
