//! Edge hardening (issue 10): each test here is a finding of the security review, tried
//! the way an attacker would, through real sockets. Each failed on the code before the
//! fix it names. One file per group of findings; the helpers they share are here.

mod bodies;
mod forwarding;
mod h2_floods;
mod paths;
mod plugins;
mod rate_limits;
mod tunnels;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use portcullis_test_plugins as test_plugins;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::client::{Conn, closed_by_peer, get, open_tunnel, raw, raw_status, request};
use crate::support::upstream::TestUpstream;
use crate::support::{LISTENER, TestGateway};

type ChannelBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>;

/// How long a test waits for an answer that must come; far above any timeout under test.
const PATIENCE: Duration = Duration::from_secs(20);

fn upstream_block(name: &str, up: &TestUpstream) -> String {
    format!("[upstreams.{name}]\ntargets = [\"{}\"]\n", up.addr)
}

/// One route to upstream `svc`; `listener_extra` goes under the listener.
fn proxy_config(up: &TestUpstream, listener_extra: &str) -> String {
    format!(
        "version = 1\n{LISTENER}{listener_extra}\n{}\n[[routes]]\nid = \"all\"\nupstream = \"svc\"\n",
        upstream_block("svc", up)
    )
}

/// A request body fed by a channel: it ends when the sender is dropped, and until then
/// waits, as a slow or stalled client does.
fn channel_body(
    rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::convert::Infallible>>,
) -> ChannelBody {
    StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
    .boxed_unsync()
}

/// Writes `head_and_partial_body` and returns the stream, left open and silent.
async fn stall(addr: std::net::SocketAddr, head_and_partial_body: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(head_and_partial_body).await.expect("write");
    tcp
}

/// Reads one raw HTTP/1 response head (and whatever body came with it).
async fn read_response(tcp: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(PATIENCE, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no response within {PATIENCE:?}");
    String::from_utf8_lossy(&out).into_owned()
}

/// The `[plugins]` table for tests: a small pool, and a compile cache in the test folder.
const PLUGINS: &str = "[plugins]\nmax_instances = 16\ncache_dir = \"{dir}/cache\"\n";
