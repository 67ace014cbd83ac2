//! Paths (finding 4): every spelling of a protected prefix reaches its route or is
//! refused, and the upstream gets the path that was routed.

use super::*;

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
