//! validate against the Petstore document in `tests/fixtures`, natively through the SDK's
//! harness: every kind of check, the answers' shape, and what is refused at load. The
//! end-to-end tests run the same checks through the gateway.

use portcullis_plugin_validate::Validate;
use portcullis_sdk::testing::{Harness, TestRequest};
use portcullis_sdk::{Action, Reply};
use serde_json::{Value, json};

fn petstore() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/petstore.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
}

fn harness(extra: Value) -> Harness<Validate> {
    let mut config = json!({ "document": petstore() });
    if let (Some(c), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    Harness::new(config).expect("config loads")
}

/// The reply, or `None` when the request went on.
fn run(h: &Harness<Validate>, mut request: TestRequest) -> Option<Reply> {
    match h.on_request(&mut request).expect("no plugin failure") {
        Action::Continue => None,
        Action::Respond(reply) => Some(reply),
    }
}

/// Status and `(pointer, reason)` pairs of a problem answer.
fn problem(reply: &Reply) -> (u16, Vec<(String, String)>) {
    let body: Value = serde_json::from_slice(&reply.body).expect("problem JSON");
    let errors = body["errors"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    (
                        e["pointer"].as_str().unwrap_or_default().to_owned(),
                        e["reason"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (reply.status, errors)
}

fn pointers(reply: &Reply) -> Vec<String> {
    problem(reply).1.into_iter().map(|(p, _)| p).collect()
}

fn json_post(target: &str, body: &Value) -> TestRequest {
    TestRequest::new("POST", target)
        .with_header("content-type", "application/json")
        .with_body(body.to_string().as_bytes())
}

#[test]
fn path_templates_and_typed_path_parameters() {
    let h = harness(json!({}));
    assert!(run(&h, TestRequest::get("/api/v3/pet/7")).is_none());
    assert!(
        run(&h, TestRequest::get("/api/v3/pet/findByStatus?status=sold")).is_none(),
        "a literal path wins over /pet/{{petId}}"
    );
    let reply = run(&h, TestRequest::get("/api/v3/pet/seven")).expect("refused");
    let (status, errors) = problem(&reply);
    assert_eq!(status, 400);
    assert_eq!(errors[0].0, "/path/petId");
    assert!(errors[0].1.contains("integer"), "{errors:?}");
    assert_eq!(
        pointers(&run(&h, TestRequest::get("/api/v3/pet/0")).expect("refused")),
        ["/path/petId"],
        "minimum 1"
    );
    assert!(run(&h, TestRequest::get("/api/v3/user/J%C3%BCrgen")).is_none());
}

#[test]
fn query_parameters_required_typed_enums_and_arrays() {
    let h = harness(json!({}));
    let reply = run(&h, TestRequest::get("/api/v3/pet/findByStatus")).expect("refused");
    assert_eq!(
        problem(&reply),
        (
            400,
            vec![(
                "/query/status".into(),
                "is required (query parameter)".into()
            )]
        )
    );
    let reply = run(&h, TestRequest::get("/api/v3/pet/findByStatus?status=lost")).expect("refused");
    let (_, errors) = problem(&reply);
    assert_eq!(errors[0].0, "/query/status");
    assert!(
        errors[0].1.contains("available"),
        "the reason lists the allowed values: {errors:?}"
    );
    assert!(
        !errors[0].1.contains("lost"),
        "values are not echoed: {errors:?}"
    );

    assert!(
        run(
            &h,
            TestRequest::get("/api/v3/pet/findByTags?tags=a&tags=b&limit=10")
        )
        .is_none()
    );
    let reply = run(&h, TestRequest::get("/api/v3/pet/findByTags?limit=ten")).expect("refused");
    assert_eq!(pointers(&reply), ["/query/limit"]);
    let reply = run(
        &h,
        TestRequest::get(
            "/api/v3/pet/findByTags?limit=500&tags=1&tags=2&tags=3&tags=4&tags=5&tags=6",
        ),
    )
    .expect("refused");
    let mut found = pointers(&reply);
    found.sort();
    assert_eq!(
        found,
        ["/query/limit", "/query/tags"],
        "every failing field is listed"
    );
    let reply = run(
        &h,
        TestRequest::get("/api/v3/pet/findByStatus?status=sold&status=pending"),
    )
    .expect("refused");
    assert!(problem(&reply).1[0].1.contains("2 times"));
    assert!(
        run(
            &h,
            TestRequest::get("/api/v3/pet/findByStatus?status=sold&other=1")
        )
        .is_none(),
        "undocumented parameters pass"
    );
}

#[test]
fn header_parameters() {
    let h = harness(json!({}));
    let order = json!({ "petId": 1, "quantity": 2 });
    let reply = run(&h, json_post("/api/v3/store/order", &order)).expect("refused");
    assert_eq!(pointers(&reply), ["/headers/idempotency-key"]);
    let reply = run(
        &h,
        json_post("/api/v3/store/order", &order).with_header("idempotency-key", "short"),
    )
    .expect("refused");
    assert_eq!(pointers(&reply), ["/headers/idempotency-key"]);
    assert!(
        run(
            &h,
            json_post("/api/v3/store/order", &order).with_header("Idempotency-Key", "a1b2c3d4e5")
        )
        .is_none()
    );
}

#[test]
fn json_bodies_nested_closed_and_nullable() {
    let h = harness(json!({}));
    let good = json!({ "name": "Rex", "photoUrls": ["https://img/1"], "category": { "id": 1, "name": "Dogs" },
                       "tags": [{ "id": 1, "name": "good" }], "status": "available" });
    assert!(run(&h, json_post("/api/v3/pet", &good)).is_none());

    let bad = json!({ "name": "Rex", "photoUrls": "not-a-list", "category": { "name": "" , "colour": "brown" },
                      "tags": [{ "id": "one" }], "status": "lost", "owner": "me" });
    let reply = run(&h, json_post("/api/v3/pet", &bad)).expect("refused");
    let (status, errors) = problem(&reply);
    assert_eq!(status, 400);
    let mut found: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
    found.sort_unstable();
    assert_eq!(
        found,
        [
            "/body",
            "/body/category",
            "/body/category/name",
            "/body/photoUrls",
            "/body/status",
            "/body/tags/0/id"
        ],
        "{errors:?}"
    );
    let extra = errors
        .iter()
        .find(|(p, _)| p == "/body")
        .expect("root error");
    assert!(
        extra.1.contains("owner"),
        "additionalProperties: false names the property: {errors:?}"
    );

    let reply = run(&h, json_post("/api/v3/pet", &json!({ "photoUrls": [] }))).expect("refused");
    assert!(
        problem(&reply).1[0].1.contains("name"),
        "a missing required property is named"
    );

    let order = |note: Value| {
        json_post(
            "/api/v3/store/order",
            &json!({ "petId": 1, "quantity": 1, "note": note, "shipDate": "2026-11-28T10:00:00Z" }),
        )
        .with_header("idempotency-key", "abcdefgh")
    };
    assert!(
        run(&h, order(Value::Null)).is_none(),
        "nullable: true takes null"
    );
    assert_eq!(
        pointers(&run(&h, order(json!(5))).expect("refused")),
        ["/body/note"]
    );
    let late = json_post(
        "/api/v3/store/order",
        &json!({ "petId": 1, "quantity": 1, "shipDate": "soon" }),
    )
    .with_header("idempotency-key", "abcdefgh");
    assert_eq!(
        pointers(&run(&h, late).expect("refused")),
        ["/body/shipDate"],
        "formats are checked"
    );
}

#[test]
fn bodies_that_are_missing_malformed_or_of_the_wrong_type() {
    let h = harness(json!({}));
    let reply = run(&h, TestRequest::new("POST", "/api/v3/pet")).expect("refused");
    assert_eq!(
        problem(&reply),
        (400, vec![("/body".into(), "is required".into())])
    );

    let text = TestRequest::new("POST", "/api/v3/pet")
        .with_header("content-type", "text/plain")
        .with_body(b"Rex");
    let reply = run(&h, text).expect("refused");
    let (status, errors) = problem(&reply);
    assert_eq!(status, 415);
    assert_eq!(errors[0].0, "/headers/content-type");
    assert!(
        errors[0].1.contains("application/json"),
        "the reason lists what is taken: {errors:?}"
    );

    let broken = TestRequest::new("POST", "/api/v3/pet")
        .with_header("content-type", "application/json; charset=utf-8")
        .with_body(b"{\"name\":");
    let reply = run(&h, broken).expect("refused");
    assert_eq!(problem(&reply).0, 400);
    assert!(problem(&reply).1[0].1.contains("not valid JSON"));

    let xml = TestRequest::new("POST", "/api/v3/pet")
        .with_header("content-type", "application/xml")
        .with_body(b"<pet/>");
    assert!(
        run(&h, xml).is_none(),
        "a documented non-JSON type passes unchecked"
    );
    let empty_xml =
        TestRequest::new("POST", "/api/v3/pet").with_header("content-type", "application/xml");
    assert_eq!(
        pointers(&run(&h, empty_xml).expect("refused")),
        ["/body"],
        "a required body is required whatever its type"
    );
    let image = TestRequest::new("POST", "/api/v3/pet/3/uploadImage")
        .with_header("content-type", "application/octet-stream")
        .with_body(&[0, 1, 2]);
    assert!(run(&h, image).is_none());
}

#[test]
fn unknown_paths_and_methods() {
    let h = harness(json!({}));
    let reply = run(&h, TestRequest::get("/api/v3/owners")).expect("refused");
    assert_eq!(reply.status, 404);
    let reply = run(&h, TestRequest::get("/elsewhere/pet/1")).expect("refused");
    assert_eq!(reply.status, 404, "outside the base path");
    let reply = run(&h, TestRequest::new("PATCH", "/api/v3/pet/1")).expect("refused");
    assert_eq!(reply.status, 405);
    assert_eq!(
        reply
            .headers
            .iter()
            .find(|(n, _)| n == "allow")
            .map(|(_, v)| v.as_str()),
        Some("GET, POST, DELETE")
    );
    assert!(
        run(&h, TestRequest::new("HEAD", "/api/v3/pet/1")).is_none(),
        "HEAD is checked as GET"
    );

    let lenient =
        harness(json!({ "unknown_path": "pass", "unknown_method": 404, "base_path": "/pets-api" }));
    assert!(run(&lenient, TestRequest::get("/pets-api/owners")).is_none());
    assert_eq!(
        run(&lenient, TestRequest::new("PATCH", "/pets-api/pet/1"))
            .expect("refused")
            .status,
        404
    );
    assert!(run(&lenient, TestRequest::get("/pets-api/pet/1")).is_none());
}

#[test]
fn documents_and_settings_that_cannot_work_are_refused_at_load() {
    let refused = |config: Value| Harness::<Validate>::new(config).expect_err("refused");
    assert!(refused(json!({})).contains("document"));
    assert!(
        refused(json!({ "document": { "swagger": "2.0", "paths": {} } }))
            .contains("OpenAPI 3.0 and 3.1")
    );
    let mut broken = petstore();
    broken["components"]["schemas"]["Pet"]["properties"]["category"] =
        json!({ "$ref": "#/components/schemas/Kategorie" });
    let e = refused(json!({ "document": broken }));
    assert!(
        e.contains(" /pet: request body") && e.contains("Kategorie"),
        "{e}"
    );
    assert!(refused(json!({ "document": petstore(), "unknown_path": 200 })).contains("4xx or 5xx"));
    assert!(
        refused(json!({ "document": petstore(), "unknown_path": "allow" }))
            .contains("expected a 4xx or 5xx status, or \"pass\"")
    );
}

#[test]
fn openapi_3_1_documents_use_json_schema_2020_12() {
    let document = json!({
        "openapi": "3.1.0",
        "info": { "title": "t", "version": "1" },
        "paths": { "/items/{id}": { "put": {
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer", "exclusiveMinimum": 0 } }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Item" } } } }
        } } },
        "components": { "schemas": { "Item": { "type": "object", "properties": { "label": { "type": ["string", "null"] } },
            "required": ["label"], "unevaluatedProperties": false } } }
    });
    let h = Harness::<Validate>::new(json!({ "document": document })).expect("loads");
    let put = |target: &str, body: Value| {
        TestRequest::new("PUT", target)
            .with_header("content-type", "application/json")
            .with_body(body.to_string().as_bytes())
    };
    assert!(run(&h, put("/items/1", json!({ "label": null }))).is_none());
    assert_eq!(
        pointers(&run(&h, put("/items/0", json!({ "label": "a" }))).expect("refused")),
        ["/path/id"]
    );
    assert_eq!(
        pointers(&run(&h, put("/items/2", json!({ "label": "a", "x": 1 }))).expect("refused")),
        ["/body"]
    );
}
