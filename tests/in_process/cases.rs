//! The host stages in process: edge checks, routing, route limits, IP, CORS and rate
//! limits, each answering with the status and problem type a client relies on.

use bytes::Bytes;
use http_body_util::Full;

use crate::{InProcess, LISTENER, request};

fn routes(extra: &str) -> String {
    format!(
        "version = 1\n{LISTENER}\
         [[routes]]\nid = \"hello\"\npath = {{ prefix = \"/hello\" }}\n\
         respond = {{ status = 200, body = \"hi\" }}\n{extra}"
    )
}

#[tokio::test]
async fn a_static_route_answers_with_its_body_and_the_clients_request_id() {
    let gw = InProcess::new(&routes(""));
    let answer = gw.get("/hello").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "hi");
    // A well-formed request id is kept; one is made for a request without.
    assert!(
        answer
            .header("x-request-id")
            .is_some_and(|id| id.len() == 32)
    );
    let kept = gw
        .send(
            request("GET", "/hello")
                .header("x-request-id", "trace-42")
                .body(Full::default())
                .expect("request"),
        )
        .await;
    assert_eq!(kept.header("x-request-id"), Some("trace-42"));
}

#[tokio::test]
async fn no_route_is_a_404_problem_whatever_the_method() {
    let gw = InProcess::new(&routes(""));
    for method in ["GET", "POST", "DELETE"] {
        let answer = gw
            .send(
                request(method, "/nowhere")
                    .body(Full::default())
                    .expect("request"),
            )
            .await;
        assert_eq!(answer.status, 404, "{method}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(answer.json()["type"], "urn:portcullis:problem:no-route");
    }
}

#[tokio::test]
async fn paths_that_cannot_be_read_one_way_are_refused_before_routing() {
    let gw = InProcess::new(&routes(""));
    for target in [
        "/hello%2Fx",
        "/hello%00",
        "/hello%zz",
        "/hello;a=b",
        "/hello%252e",
    ] {
        let answer = gw.get(target).await;
        assert_eq!(answer.status, 400, "{target}: {}", answer.text());
        assert_eq!(answer.json()["type"], "urn:portcullis:problem:bad-request");
    }
    // Dot segments are resolved, not refused: `/x/../hello` is the route's path.
    assert_eq!(gw.get("/x/../hello").await.status, 200);
}

#[tokio::test]
async fn connect_and_authority_form_targets_are_not_served() {
    let gw = InProcess::new(&routes(""));
    let connect = gw
        .send(
            request("CONNECT", "h:443")
                .body(Full::default())
                .expect("request"),
        )
        .await;
    assert_eq!(connect.status, 501);
    // What follows a CONNECT was meant for a tunnel: the connection is not kept.
    assert_eq!(connect.header("connection"), Some("close"));
    // The authority form is CONNECT's alone.
    let authority_form = gw
        .send(
            request("GET", "h:80")
                .body(Full::default())
                .expect("request"),
        )
        .await;
    assert_eq!(authority_form.status, 400, "{}", authority_form.text());
    assert!(
        authority_form.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("authority-form"))
    );
}

#[tokio::test]
async fn a_routes_limits_answer_414_431_and_413_before_its_action() {
    let gw = InProcess::new(&routes(
        "[routes.limits]\nmax_uri_bytes = 32\nmax_headers = 8\nmax_body_bytes = 4\n",
    ));
    let long = format!("/hello?{}", "q".repeat(40));
    assert_eq!(gw.get(&long).await.status, 414);

    let mut many = request("GET", "/hello");
    for i in 0..9 {
        many = many.header(format!("x-h{i}"), "v");
    }
    let answer = gw.send(many.body(Full::default()).expect("request")).await;
    assert_eq!(answer.status, 431);

    let declared = request("POST", "/hello")
        .header("content-length", "5")
        .body(Full::new(Bytes::from_static(b"12345")))
        .expect("request");
    assert_eq!(gw.send(declared).await.status, 413);
    // Within every limit the route answers.
    let small = request("POST", "/hello")
        .body(Full::new(Bytes::from_static(b"1234")))
        .expect("request");
    assert_eq!(gw.send(small).await.status, 200);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_and_the_ietf_fields() {
    let gw = InProcess::new(&routes(
        "rate_limits = [\"per-ip\"]\n[rate_limits.per-ip]\nquota = 2\nwindow = \"1m\"\n",
    ));
    let first = gw.get("/hello").await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("ratelimit-policy"),
        Some("\"per-ip\";q=2;w=60")
    );
    assert_eq!(first.header("ratelimit"), Some("\"per-ip\";r=1;t=30"));
    assert_eq!(gw.get("/hello").await.status, 200);
    let refused = gw.get("/hello").await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.json()["type"],
        "urn:portcullis:problem:rate-limited"
    );
    assert_eq!(refused.header("retry-after"), Some("30"));

    // Another client address has a quota of its own, in the same policy.
    let other = gw.get_as("198.51.100.7:1", "/hello").await;
    assert_eq!(other.status, 200);
    assert_eq!(other.header("ratelimit"), Some("\"per-ip\";r=1;t=30"));
}

#[tokio::test]
async fn an_ip_policy_refuses_before_a_rate_limit_is_spent() {
    let config = routes(
        "rate_limits = [\"per-ip\"]\nip = { deny = [\"192.0.2.0/24\"] }\n\
         [rate_limits.per-ip]\nquota = 1\nwindow = \"1m\"\n",
    );
    let gw = InProcess::new(&config);
    for _ in 0..3 {
        let answer = gw.get("/hello").await;
        assert_eq!(answer.status, 403);
        assert_eq!(answer.json()["type"], "urn:portcullis:problem:ip-denied");
        assert!(answer.header("ratelimit").is_none(), "quota was charged");
    }
    let allowed = gw.get_as("198.51.100.7:1", "/hello").await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("ratelimit"), Some("\"per-ip\";r=0;t=60"));
}

#[tokio::test]
async fn cors_preflights_are_answered_for_the_method_they_announce() {
    let gw = InProcess::new(&format!(
        "version = 1\n{LISTENER}\
         [[routes]]\nid = \"put-only\"\nmethods = [\"PUT\"]\n\
         respond = {{ status = 200 }}\nrate_limits = [\"tight\"]\n\
         [routes.cors]\nallow_origins = [\"https://app.example\"]\nallow_methods = [\"PUT\"]\n\
         [rate_limits.tight]\nquota = 1\nwindow = \"1m\"\n"
    ));
    let preflight = |origin: &'static str| {
        request("OPTIONS", "/")
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .body(Full::default())
            .expect("request")
    };
    for _ in 0..2 {
        let answer = gw.send(preflight("https://app.example")).await;
        assert_eq!(answer.status, 204);
        assert_eq!(
            answer.header("access-control-allow-origin"),
            Some("https://app.example")
        );
        assert!(
            answer.header("ratelimit").is_none(),
            "a preflight spent quota"
        );
    }
    let stranger = gw.send(preflight("https://evil.example")).await;
    assert_eq!(stranger.status, 403);
    assert_eq!(
        stranger.json()["type"],
        "urn:portcullis:problem:cors-rejected"
    );
    // The actual request, from the allowed origin, can read even its error.
    let put = |_| {
        request("PUT", "/")
            .header("origin", "https://app.example")
            .body(Full::default())
            .expect("request")
    };
    assert_eq!(gw.send(put(())).await.status, 200);
    let limited = gw.send(put(())).await;
    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.header("access-control-allow-origin"),
        Some("https://app.example")
    );
}
