//! Who and what a request is for (findings 2, 3 and 5): the client address behind
//! trusted proxies, and the host that is routed on and sent upstream.

use super::*;

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
