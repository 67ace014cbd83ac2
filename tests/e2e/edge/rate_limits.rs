//! Rate-limit keys (finding 10): a fixed-size key table, and refused credentials
//! charged to the client address.

use super::*;

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
