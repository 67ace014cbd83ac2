//! Edge hardening (issue 10): each test here is a finding of the security review, tried
//! the way an attacker would, through real sockets. Each failed on the code before the
//! fix it names.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use portcullis_test_plugins as plugins;
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
        guard = plugins::BODY_GUARD,
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

// Finding 2: X-Forwarded-For can make a client look like a trusted proxy.

#[tokio::test]
async fn forwarded_for_is_walked_from_the_right_and_never_credits_the_proxy() {
    let up = TestUpstream::start("svc").await;
    // The internal route admits the proxies' own network, as real deployments do.
    let config = format!(
        r#"version = 1
{LISTENER}trusted_proxies = ["127.0.0.1/32"]

{}
[[routes]]
id = "internal"
path = {{ prefix = "/internal" }}
ip = {{ allow = ["127.0.0.0/8"] }}
respond = {{ body = "internal" }}

[[routes]]
id = "echo"
path = {{ prefix = "/echo" }}
upstream = "svc"
"#,
        upstream_block("svc", &up)
    );
    let gw = TestGateway::start(&config).await;
    let via = |xff: &str| {
        request("GET", "h", "/internal")
            .header("x-forwarded-for", xff)
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    // Garbage left of the client's real address used to make the proxy the client.
    let reply = Conn::h1(gw.addr())
        .await
        .send(via("garbage, 203.0.113.7"))
        .await;
    assert_eq!(reply.status, 403);
    // A malformed hop the trusted proxy wrote itself is refused, not credited to it.
    let reply = Conn::h1(gw.addr()).await.send(via("unknown")).await;
    assert_eq!(reply.status, 400);
    // An internal address the client claims left of its own gains nothing.
    let reply = Conn::h1(gw.addr())
        .await
        .send(via("127.0.0.9, 203.0.113.7"))
        .await;
    assert_eq!(reply.status, 403);
    // `Connection` cannot drop the chain the client's address was taken from.
    let up_req = request("GET", "h", "/echo")
        .header("x-forwarded-for", "203.0.113.7")
        .header("connection", "X-Forwarded-For")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let seen = Conn::h1(gw.addr()).await.send(up_req).await.json();
    assert_eq!(
        seen["headers"]["x-forwarded-for"],
        serde_json::json!(["203.0.113.7, 127.0.0.1"])
    );
    // The proxy's own traffic still is the proxy's.
    assert_eq!(
        Conn::h1(gw.addr())
            .await
            .send(get("h", "/internal"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn client_claims_about_itself_are_stripped_from_untrusted_peers() {
    let up = TestUpstream::start("svc").await;
    let config = proxy_config(&up, "");
    let gw = TestGateway::start(&config).await;
    let req = request("GET", "h", "/")
        .header("forwarded", "for=10.0.0.1;proto=https")
        .header("x-real-ip", "10.0.0.1")
        .header("x-forwarded-port", "443")
        .header("x-forwarded-prefix", "/admin")
        .header("x-original-url", "/admin")
        .header("x-rewrite-url", "/admin")
        .header("true-client-ip", "10.0.0.1")
        .header("x-client-ip", "10.0.0.1")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let seen = Conn::h1(gw.addr()).await.send(req).await.json();
    for name in [
        "forwarded",
        "x-real-ip",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-original-url",
        "x-rewrite-url",
        "true-client-ip",
        "x-client-ip",
    ] {
        assert!(
            seen["headers"][name].is_null(),
            "{name} reached the upstream: {seen}"
        );
    }
}

// Finding 3 and 5: the host routed on is the host sent upstream; bad hosts are 400.

fn host_config(up: &TestUpstream, routes: &str) -> String {
    format!(
        r#"version = 1
{LISTENER}
{}
[[routes]]
id = "api"
hosts = ["api.example.com"]
upstream = "svc"

[[routes]]
id = "other"
respond = {{ status = 404, body = "other" }}
{routes}
"#,
        upstream_block("svc", up)
    )
}

#[tokio::test]
async fn host_headers_that_are_missing_repeated_or_malformed_get_400() {
    let up = TestUpstream::start("svc").await;
    let config = proxy_config(&up, "");
    let gw = TestGateway::start(&config).await;
    for (what, head) in [
        ("no Host", "GET / HTTP/1.1\r\n\r\n"),
        (
            "two Hosts",
            "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
        ),
        (
            "same Host twice",
            "GET / HTTP/1.1\r\nHost: a.test\r\nHost: a.test\r\n\r\n",
        ),
        // This one panicked the request task: the client got an empty reply.
        ("unclosed bracket", "GET / HTTP/1.1\r\nHost: [abc\r\n\r\n"),
        (
            "bracket and port",
            "GET / HTTP/1.1\r\nHost: [abc:80\r\n\r\n",
        ),
        ("list", "GET / HTTP/1.1\r\nHost: a.test, b.test\r\n\r\n"),
        ("user info", "GET / HTTP/1.1\r\nHost: user@a.test\r\n\r\n"),
        (
            "port too big",
            "GET / HTTP/1.1\r\nHost: a.test:70000\r\n\r\n",
        ),
        (
            "absolute target with user info",
            "GET http://u@a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
        ),
        // One trailing dot is the same name; two are an empty label a backend may trim.
        (
            "two trailing dots",
            "GET / HTTP/1.1\r\nHost: a.test..\r\n\r\n",
        ),
        ("empty label", "GET / HTTP/1.1\r\nHost: a..test\r\n\r\n"),
        (
            "authority-form target",
            "GET a.test:80 HTTP/1.1\r\nHost: a.test\r\n\r\n",
        ),
    ] {
        let answer = raw(gw.addr(), head.as_bytes()).await;
        assert!(!answer.is_empty(), "{what}: empty reply");
        assert_eq!(raw_status(&answer), 400, "{what}: {answer}");
    }
    // Tunnels would carry anything past every route.
    let answer = raw(
        gw.addr(),
        b"CONNECT a.test:80 HTTP/1.1\r\nHost: a.test:80\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&answer), 501, "{answer}");
    assert_eq!(up.requests(), 0, "nothing malformed reached the upstream");
    // HTTP/1.0 may leave Host out.
    let answer = raw(gw.addr(), b"GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
}

#[tokio::test]
async fn the_upstream_gets_the_host_that_was_routed_on() {
    let up = TestUpstream::start("svc").await;
    let gw = TestGateway::start(&host_config(&up, "")).await;
    // An absolute-form target's authority replaces Host (RFC 9112 §3.2.2): routed on
    // api.example.com, and the upstream must hear the same.
    let answer = raw(
        gw.addr(),
        b"GET http://api.example.com/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    let body = &answer[answer.find("\r\n\r\n").expect("head end") + 4..];
    let seen: serde_json::Value = serde_json::from_str(body).expect("echo");
    assert_eq!(
        seen["headers"]["host"],
        serde_json::json!(["api.example.com"])
    );

    // Case and a trailing dot do not change the host.
    let reply = Conn::h1(gw.addr())
        .await
        .send(get("API.Example.COM.", "/y"))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json()["headers"]["host"],
        serde_json::json!(["api.example.com"])
    );

    // HTTP/2: a Host beside :authority must agree with it.
    let req = http::Request::get("http://api.example.com/z")
        .header("host", "evil.example")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let reply = Conn::h2c(gw.addr()).await.send(req).await;
    assert_eq!(reply.status, 400);
}

#[tokio::test]
async fn routes_choose_the_upstream_host() {
    let up = TestUpstream::start("svc").await;
    let routes = r#"
[[routes]]
id = "target-host"
hosts = ["target.example.com"]
upstream = "svc"
preserve_host = false

[[routes]]
id = "fixed-host"
hosts = ["fixed.example.com"]
upstream = "svc"
upstream_host = "internal.svc:8443"
"#;
    let gw = TestGateway::start(&host_config(&up, routes)).await;
    let reply = Conn::h1(gw.addr())
        .await
        .send(get("target.example.com", "/"))
        .await;
    assert_eq!(
        reply.json()["headers"]["host"],
        serde_json::json!([up.addr.to_string()])
    );
    let reply = Conn::h1(gw.addr())
        .await
        .send(get("fixed.example.com", "/"))
        .await;
    assert_eq!(
        reply.json()["headers"]["host"],
        serde_json::json!(["internal.svc:8443"])
    );
}

#[test]
fn preserve_host_and_upstream_host_together_are_refused() {
    let error = crate::support::build_error(&format!(
        "version = 1\n{LISTENER}\n[upstreams.svc]\ntargets = [\"127.0.0.1:1\"]\n\n\
         [[routes]]\nid = \"r\"\nupstream = \"svc\"\npreserve_host = true\nupstream_host = \"a.test\"\n"
    ))
    .expect("must be refused");
    assert!(error.contains("preserve_host"), "{error}");
}

// Finding 4: path normalisation could be bypassed.

/// Three upstreams behind prefix routes; `/admin` is the protected one.
fn paths_config(
    public: &TestUpstream,
    admin: &TestUpstream,
    root: &TestUpstream,
    paths: &str,
) -> String {
    format!(
        r#"version = 1
{LISTENER}{paths}
{}{}{}
[[routes]]
id = "public"
path = {{ prefix = "/public" }}
upstream = "public"

[[routes]]
id = "admin"
path = {{ prefix = "/admin" }}
upstream = "admin"

[[routes]]
id = "root"
upstream = "root"
"#,
        upstream_block("public", public),
        upstream_block("admin", admin),
        upstream_block("root", root),
    )
}

/// The route a prefix table picks for `path`, as the gateway's config above does.
fn route_for(path: &str) -> &'static str {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/public") {
        "public"
    } else if under("/admin") {
        "admin"
    } else {
        "root"
    }
}

/// What a lenient backend makes of a path: every escape decoded once (`%2F` and `%5C`
/// too), `\` read as `/`, `;` parameters dropped from each segment (servlet style),
/// slashes merged and dot segments removed.
fn backend_view(path: &str) -> String {
    let decoded = portcullis::canonical::percent_decode(path);
    let text = String::from_utf8_lossy(&decoded).replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for seg in text.split('/') {
        let seg = seg.split(';').next().unwrap_or("");
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

#[tokio::test]
async fn paths_that_spell_the_protected_prefix_another_way_reach_it_or_are_refused() {
    let (public, admin, root) = (
        TestUpstream::start("public").await,
        TestUpstream::start("admin").await,
        TestUpstream::start("root").await,
    );
    let gw = TestGateway::start(&paths_config(&public, &admin, &root, "")).await;
    let send = |path: &'static str| {
        let addr = gw.addr();
        async move {
            let head = format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
            raw(addr, head.as_bytes()).await
        }
    };
    for path in [
        "/public/.%2e/admin",
        "/public/%2e./admin",
        "/public/%2E%2E/admin",
        "/%61dmin",
        "//admin",
        "/public/../admin/x",
    ] {
        let answer = send(path).await;
        assert_eq!(raw_status(&answer), 200, "{path}: {answer}");
        assert!(
            answer.contains("x-upstream: admin"),
            "{path} was not routed as /admin: {answer}"
        );
    }
    for path in [
        "/public/..;/admin",
        "/public/%2e%2e;x/admin",
        "/;x/admin",
        "/admin;jsessionid=1",
        "/public/..%3B/admin",
        "/%2561dmin",
        "/public/%252e%252e/admin",
        "/public/%c0%ae%c0%ae/admin",
        "/public/a%2Fb",
        "/public/a%5Cb",
        "/public/%zz",
        "/public/%00",
    ] {
        let answer = send(path).await;
        assert_eq!(raw_status(&answer), 400, "{path}: {answer}");
    }
    // The upstream gets the path that was routed, not the client's spelling.
    let answer = send("/public/./a/../b//c").await;
    assert!(answer.contains("\"path\":\"/public/b/c\""), "{answer}");
}

#[tokio::test]
async fn escaped_slashes_can_be_kept_per_listener() {
    let (public, admin, root) = (
        TestUpstream::start("public").await,
        TestUpstream::start("admin").await,
        TestUpstream::start("root").await,
    );
    let paths = "[listeners.paths]\nescaped_slashes = \"keep\"\nmerge_slashes = false\n";
    let gw = TestGateway::start(&paths_config(&public, &admin, &root, paths)).await;
    let answer = raw(
        gw.addr(),
        b"GET /public/a%2fb//c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert!(answer.contains("\"path\":\"/public/a%2Fb//c\""), "{answer}");
}

/// A small deterministic generator (xorshift), so a failure names a reproducible path.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// Property: for any path, the route that served it is the route the upstream's own
/// reading of the forwarded path would choose — so no spelling reaches a route's
/// upstream past another route's policies. Paths are built from the pieces attackers
/// use; each either is refused (400) or agrees.
#[tokio::test]
async fn the_route_decision_and_the_forwarded_path_always_agree() {
    let (public, admin, root) = (
        TestUpstream::start("public").await,
        TestUpstream::start("admin").await,
        TestUpstream::start("root").await,
    );
    let gw = TestGateway::start(&paths_config(&public, &admin, &root, "")).await;
    let pieces = [
        "public", "admin", "x", "..", ".", "%2e", "%2E%2e", ".%2e", "%2e.", "%61dmin", "", "%2F",
        "%5C", ";", "..;", "%3B", "..%3B", ".%3b", "%7e", "a%20b", "%25", "%252e", "%zz", "%",
        "%ADMIN", "pub%6cic", "admin;x", ";x",
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut agreed = 0;
    let mut refused = 0;
    for _ in 0..600 {
        let n = 1 + rng.next() % 5;
        let mut path = String::new();
        for _ in 0..n {
            path.push('/');
            path.push_str(rng.pick(&pieces));
        }
        let head = format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        let answer = raw(gw.addr(), head.as_bytes()).await;
        match raw_status(&answer) {
            400 => refused += 1,
            200 => {
                let body = &answer[answer.find("\r\n\r\n").expect("head end") + 4..];
                let seen: serde_json::Value = serde_json::from_str(body).expect("echo");
                let served_by = seen["upstream"].as_str().expect("upstream name");
                let forwarded = seen["path"].as_str().expect("path");
                assert_eq!(
                    route_for(&backend_view(forwarded)),
                    served_by,
                    "{path} was served by `{served_by}` but forwarded as {forwarded}"
                );
                agreed += 1;
            }
            other => panic!("{path}: unexpected status {other}: {answer}"),
        }
    }
    assert!(
        agreed > 100 && refused > 10,
        "agreed {agreed}, refused {refused}"
    );
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

// Finding 6 (part): a plugin could answer with a status of 600-999.

const PLUGINS: &str = "[plugins]\nmax_instances = 16\ncache_dir = \"{dir}/cache\"\n";

#[tokio::test]
async fn plugins_cannot_send_statuses_past_599() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "reply"
path = {{ prefix = "/reply" }}
upstream = "app"
[[routes.plugins]]
plugin = "{responder}"
config = {{ status = 600, body = "odd" }}

[[routes]]
id = "edit"
path = {{ prefix = "/edit" }}
upstream = "app"
[[routes.plugins]]
plugin = "{editor}"
config = {{ from = 200, to = 999 }}
"#,
        upstream_block("app", &up),
        responder = plugins::RESPONDER,
        editor = plugins::RESPONSE_EDITOR,
    );
    let gw = TestGateway::start(&config).await;
    for path in ["/reply", "/edit"] {
        let answer = raw(
            gw.addr(),
            format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        // The entry fails closed: a 500 problem, never `HTTP/1.1 600`.
        assert_eq!(raw_status(&answer), 500, "{path}: {answer}");
    }
}

// Finding 11: outbound grants allowed any port without one, a plugin-set `Host`, and
// never matched IPv6.

#[tokio::test]
async fn outbound_grants_hold_to_port_host_and_ipv6() {
    let target = TestUpstream::start("target").await;
    let up = TestUpstream::start("app").await;
    // An IPv6 loopback server answering 204 to each request.
    let v6 = tokio::net::TcpListener::bind("[::1]:0")
        .await
        .expect("bind [::1]");
    let v6_addr = v6.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = v6.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "portless-grant"
path = {{ prefix = "/portless" }}
upstream = "app"
[[routes.plugins]]
plugin = "{fetcher}"
config = {{ url = "http://127.0.0.1:{port}/x" }}
grants = {{ http = ["127.0.0.1"] }}

[[routes]]
id = "host-header"
path = {{ prefix = "/host" }}
upstream = "app"
[[routes.plugins]]
plugin = "{fetcher}"
config = {{ url = "http://{target}/x", headers = [["host", "admin.internal"]] }}
grants = {{ http = ["{target}"] }}

[[routes]]
id = "ipv6"
path = {{ prefix = "/v6" }}
upstream = "app"
[[routes.plugins]]
plugin = "{fetcher}"
config = {{ url = "http://{v6_addr}/x" }}
grants = {{ http = ["{v6_addr}"] }}
"#,
        upstream_block("app", &up),
        fetcher = plugins::FETCHER,
        port = target.addr.port(),
        target = target.addr,
    );
    let gw = TestGateway::start(&config).await;
    let fetched = |echo: serde_json::Value| {
        echo["headers"]["x-fetch"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let mut conn = Conn::h1(gw.addr()).await;
    let portless = fetched(conn.send(get("h", "/portless")).await.json());
    assert!(portless.contains("HostNotGranted"), "{portless}");
    let host = fetched(conn.send(get("h", "/host")).await.json());
    assert!(host.contains("InvalidRequest"), "{host}");
    assert_eq!(target.requests(), 0, "neither request may reach the target");
    let v6 = fetched(conn.send(get("h", "/v6")).await.json());
    assert_eq!(v6, "status:204");
}

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

// Finding 7: capacity exhaustion turned into an authentication bypass.

#[tokio::test]
async fn an_auth_plugin_without_capacity_fails_closed_whatever_its_policy() {
    let up = TestUpstream::start("app").await;
    // One instance slot for the whole gateway; a response-phase plugin on a slow route
    // holds it through the upstream call.
    let config = format!(
        r#"version = 1
{LISTENER}[plugins]
max_instances = 1
cache_dir = "{{dir}}/cache"

{}
[[routes]]
id = "slow"
path = {{ prefix = "/slow" }}
rewrite = {{ strip_prefix = true }}
upstream = "app"
[[routes.plugins]]
plugin = "{editor}"
config = {{}}

[[routes]]
id = "keyed"
path = {{ prefix = "/keyed" }}
upstream = "app"
[[routes.plugins]]
plugin = "key-auth"
failure = "open"
config = {{ query = "api_key", consumers = {{ alice = {{ key_sha256 = "5f0ba1b2d4a0b3c8e1c2b6bd3e40e0d3c9b8d6a3c1f1e5a4b4c5d8e7f6a9b0c1" }} }} }}
"#,
        upstream_block("app", &up),
        editor = plugins::RESPONSE_EDITOR,
    );
    let gw = TestGateway::start(&config).await;
    let addr = gw.addr();
    let slow = tokio::spawn(async move {
        Conn::h1(addr)
            .await
            .send(get("h", "/slow/delay/3000"))
            .await
    });
    up.arrived(1).await;
    // key-auth cannot get an instance: with `failure = "open"` this request used to go
    // upstream unauthenticated.
    let reply = Conn::h1(addr).await.send(get("h", "/keyed/orders")).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(
        up.requests(),
        1,
        "only the slow request reached the upstream"
    );
    assert_eq!(slow.await.expect("slow request").status, 200);
}

// Finding 10: keyed rate limiters grew without bound, and failed credentials were never
// charged to identity-keyed policies.

#[tokio::test]
async fn refused_credentials_are_throttled_by_the_identity_policy() {
    let up = TestUpstream::start("app").await;
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[rate_limits.per-consumer]
quota = 2
window = "1m"
key = "consumer"

[[routes]]
id = "keyed"
upstream = "app"
rate_limits = ["per-consumer"]
[[routes.plugins]]
plugin = "key-auth"
config = {{ query = "api_key", consumers = {{ alice = {{ key_sha256 = "5f0ba1b2d4a0b3c8e1c2b6bd3e40e0d3c9b8d6a3c1f1e5a4b4c5d8e7f6a9b0c1" }} }} }}
"#,
        upstream_block("app", &up),
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let mut statuses = Vec::new();
    for guess in 0..4 {
        let reply = conn
            .send(get("h", &format!("/orders?api_key=guess-{guess}")))
            .await;
        statuses.push(reply.status.as_u16());
    }
    // Two wrong keys are answered 401; then the client's address is out of quota.
    assert_eq!(statuses, [401, 401, 429, 429]);
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn a_rate_limit_key_table_has_a_fixed_size() {
    let up = TestUpstream::start("svc").await;
    let config = format!(
        "version = 1\n{LISTENER}\n{}\n[rate_limits.by-header]\nquota = 1\nwindow = \"1m\"\n\
         key = \"header:x-k\"\nmax_keys = 1\n\n[[routes]]\nid = \"all\"\nupstream = \"svc\"\n\
         rate_limits = [\"by-header\"]\n",
        upstream_block("svc", &up)
    );
    let gw = TestGateway::start(&config).await;
    let mut conn = Conn::h1(gw.addr()).await;
    let with_key = |k: &str| {
        request("GET", "h", "/")
            .header("x-k", k)
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    assert_eq!(conn.send(with_key("first")).await.status, 200);
    // One slot in all: a second key shares it (stricter, never a new entry).
    assert_eq!(conn.send(with_key("second")).await.status, 429);
}

// Finding 6 (part): a plugin could build a head past every limit (and panic the request
// task past 24 576 header names).

#[tokio::test]
async fn a_plugin_cannot_build_a_head_past_the_listeners_limits() {
    let up = TestUpstream::start("app").await;
    let mut set = String::new();
    for i in 0..30_000 {
        set.push_str(&format!("x-h{i} = \"v\", "));
    }
    let config = format!(
        r#"version = 1
{LISTENER}{PLUGINS}{}
[[routes]]
id = "many"
upstream = "app"
[[routes.plugins]]
plugin = "{tagger}"
config = {{ tag = "t", set = {{ {set} }} }}
budgets = {{ deadline = "20s", memory_mib = 64 }}
"#,
        upstream_block("app", &up),
        tagger = plugins::TAGGER,
    );
    let gw = TestGateway::start(&config).await;
    let answer = raw(
        gw.addr(),
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    // The edit past the limit is refused, the plugin fails, its policy (closed) answers:
    // a problem response, not an empty reply from a panicked task.
    assert_eq!(raw_status(&answer), 500, "{answer}");
    assert!(
        answer.contains("urn:portcullis:problem:plugin-failed"),
        "{answer}"
    );
    assert_eq!(up.requests(), 0);
}
