//! The built-in `validate` plugin in the real gateway, against the Petstore document in
//! `tests/fixtures`: what is refused (status, problem+json with each failing field) never
//! reaches the upstream; what is valid arrives untouched. Run with fresh instances and with
//! warm ones, since the document is compiled per instance.

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};

use crate::support::client::{Conn, Reply, json_request, request};
use crate::support::upstream::TestUpstream;
use crate::support::{LISTENER, TestGateway};

/// The Petstore fixture, by absolute path (plugin files are relative to the config file,
/// which the tests write into a temporary folder).
pub fn petstore_path() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/petstore.json"
    )
    .to_owned()
}

fn config(up: &TestUpstream, entry_extra: &str) -> String {
    format!(
        "version = 1\n{LISTENER}[plugins]\nmax_instances = 16\ncache_dir = \"{{dir}}/cache\"\n\
         [upstreams.app]\ntargets = [\"{}\"]\n[[routes]]\nid = \"petstore\"\nupstream = \"app\"\n\
         [[routes.plugins]]\nplugin = \"validate\"\nfiles = {{ document = \"{}\" }}\n{entry_extra}",
        up.addr,
        petstore_path()
    )
}

async fn send(
    conn: &mut Conn,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    conn.send(json_request(method, target, headers, body)).await
}

/// The failing fields (pointers) of a problem answer, sorted.
fn failing(reply: &Reply) -> Vec<String> {
    let mut found: Vec<String> = reply.json()["errors"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|e| e["pointer"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Method, target, headers, body; the status and failing fields expected.
type Case = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    Option<Value>,
    u16,
    Vec<&'static str>,
);

async fn petstore_requests_are_checked(reuse: &str) {
    let up = TestUpstream::start("app").await;
    let gw = TestGateway::start(&config(&up, reuse)).await;
    let mut conn = Conn::h1(gw.addr()).await;

    // Valid requests reach the upstream as sent.
    let pet = json!({ "name": "Rex", "photoUrls": ["https://img.test/rex.png"], "category": { "id": 1, "name": "Dogs" }, "tags": [{ "name": "good" }] });
    let reply = send(&mut conn, "POST", "/api/v3/pet", &[], Some(&pet)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echo = reply.json();
    assert_eq!(echo["path"], "/api/v3/pet");
    assert_eq!(
        serde_json::from_str::<Value>(echo["body"].as_str().unwrap_or_default()).ok(),
        Some(pet.clone())
    );
    for target in [
        "/api/v3/pet/findByStatus?status=sold",
        "/api/v3/pet/42",
        "/api/v3/pet/findByTags?tags=a&tags=b&limit=5",
    ] {
        let reply = send(&mut conn, "GET", target, &[], None).await;
        assert_eq!(reply.status, 200, "{target}: {}", reply.text());
    }
    let valid = up.requests();
    assert_eq!(valid, 4);

    // Refusals: (method, target, headers, body) → status and failing fields.
    let bad_pet = json!({ "name": 7, "photoUrls": ["x"], "category": { "name": "Dogs", "legs": 4 }, "tags": [{ "id": "one" }], "status": "lost", "owner": "me" });
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/api/v3/pet/findByStatus",
            vec![],
            None,
            400,
            vec!["/query/status"],
        ),
        (
            "GET",
            "/api/v3/pet/findByStatus?status=lost",
            vec![],
            None,
            400,
            vec!["/query/status"],
        ),
        (
            "GET",
            "/api/v3/pet/findByTags?limit=none",
            vec![],
            None,
            400,
            vec!["/query/limit"],
        ),
        (
            "GET",
            "/api/v3/pet/rex",
            vec![],
            None,
            400,
            vec!["/path/petId"],
        ),
        (
            "POST",
            "/api/v3/pet",
            vec![],
            Some(bad_pet),
            400,
            vec![
                "/body",
                "/body/category",
                "/body/name",
                "/body/status",
                "/body/tags/0/id",
            ],
        ),
        (
            "POST",
            "/api/v3/store/order",
            vec![("idempotency-key", "k")],
            Some(json!({ "petId": 1, "quantity": 0 })),
            400,
            vec!["/body/quantity", "/headers/idempotency-key"],
        ),
        ("POST", "/api/v3/pet", vec![], None, 400, vec!["/body"]),
        ("GET", "/api/v3/owners", vec![], None, 404, vec![]),
        ("PATCH", "/api/v3/pet/1", vec![], None, 405, vec![]),
    ];
    for (method, target, headers, body, status, fields) in cases {
        let reply = send(&mut conn, method, target, &headers, body.as_ref()).await;
        assert_eq!(reply.status, status, "{method} {target}: {}", reply.text());
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(
            failing(&reply),
            fields,
            "{method} {target}: {}",
            reply.text()
        );
        assert!(
            reply.json()["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
        if status == 405 {
            assert_eq!(reply.header("allow"), Some("GET, POST, DELETE"));
        }
    }

    // A body of a type the operation does not take: 415.
    let req = request("PUT", "h", "/api/v3/pet")
        .header("content-type", "text/csv")
        .body(Full::new(Bytes::from_static(b"name,photoUrls\nRex,x")))
        .expect("request");
    let reply = conn.send(req).await;
    assert_eq!(reply.status, 415, "{}", reply.text());
    assert_eq!(failing(&reply), ["/headers/content-type"]);
    assert!(
        reply.json()["errors"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("application/json")
    );

    assert_eq!(
        up.requests(),
        valid,
        "no refused request reached the upstream"
    );
}

#[tokio::test]
async fn requests_are_checked_against_the_document_on_default_warm_instances() {
    petstore_requests_are_checked("").await;
}

#[tokio::test]
async fn requests_are_checked_against_the_document_with_an_instance_per_request() {
    petstore_requests_are_checked("reuse = { max_instances = 2, max_requests = 1 }\n").await;
}

/// validate compiles its document per instance (about 1 ms), so it runs warm unless its
/// entry says otherwise; other built-ins keep a fresh instance per request.
#[test]
fn validate_runs_on_warm_instances_unless_its_entry_says_otherwise() {
    use portcullis::plugin::InstanceMode;
    let toml = format!(
        "version = 1\n{LISTENER}[plugins]\ncache_dir = \"{cache}\"\n\
         [[routes]]\nid = \"default\"\npath = {{ exact = \"/a\" }}\nrespond = {{ body = \"x\" }}\n\
         [[routes.plugins]]\nplugin = \"validate\"\nfiles = {{ document = \"{doc}\" }}\n\
         [[routes.plugins]]\nplugin = \"authz\"\nconfig = {{ groups = [\"g\"] }}\n\
         [[routes]]\nid = \"own\"\npath = {{ exact = \"/b\" }}\nrespond = {{ body = \"x\" }}\n\
         [[routes.plugins]]\nplugin = \"validate\"\nfiles = {{ document = \"{doc}\" }}\nreuse = {{ max_instances = 3, max_requests = 1 }}\n",
        cache = std::env::temp_dir().join("portcullis-e2e-cache").display(),
        doc = petstore_path(),
    );
    let runtime = crate::support::runtime(&toml);
    let modes = |path: &str| -> Vec<InstanceMode> {
        let pipeline = crate::support::pipeline_at(&runtime, path);
        pipeline.entries().iter().map(|e| e.mode).collect()
    };
    assert_eq!(
        modes("/a"),
        [
            InstanceMode::Reuse {
                max_instances: 16,
                max_requests: 10_000
            },
            InstanceMode::Fresh
        ]
    );
    assert_eq!(
        modes("/b"),
        [InstanceMode::Reuse {
            max_instances: 3,
            max_requests: 1
        }]
    );
}

#[tokio::test]
async fn a_broken_document_stops_the_load_with_the_operation_and_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(petstore_path()).expect("fixture"))
            .expect("JSON");
    doc["components"]["schemas"]["Order"]["properties"]["petId"] =
        json!({ "$ref": "#/components/schemas/Animal" });
    std::fs::write(dir.path().join("broken.json"), doc.to_string()).expect("write");
    let toml = format!(
        "version = 1\n{LISTENER}[plugins]\ncache_dir = \"{{dir}}/cache\"\n[upstreams.app]\ntargets = [\"127.0.0.1:9\"]\n\
         [[routes]]\nid = \"petstore\"\nupstream = \"app\"\n[[routes.plugins]]\nplugin = \"validate\"\n\
         files = {{ document = \"{}/broken.json\" }}\n",
        dir.path().display()
    );
    let error = crate::support::build_error(&toml).expect("refused");
    assert!(
        error.contains("petstore")
            && error.contains("POST /store/order")
            && error.contains("Animal"),
        "{error}"
    );
}
