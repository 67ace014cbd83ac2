//! Per-request plugin overhead, measured with criterion: the request phase of a route's
//! pipeline as the gateway runs it (admission, instance, `on-request`, instance dropped).
//!
//! - the no-op test plugin (`tests/plugins/guests/examples/pass_through.rs`) on a fresh
//!   instance, a chain of five, and the same in reuse mode;
//! - each built-in plugin alone, fresh and in reuse mode, on a request it accepts:
//!   `key-auth` (10 consumers), `jwt-auth` (RS256 against an inline JWKS), `authz` (on an
//!   identity set before it), `transform` (header and query edits), `validate` (the
//!   Petstore document: a GET with array and integer query parameters, a POST with a nested
//!   JSON body);
//! - RS256 verified inside a component with RustCrypto's `rsa` (warm instance), and native
//!   RS256 verification with `jsonwebtoken` (aws-lc-rs), the floor under `jwt-auth`.
//!
//! - a no-op in Python and in JavaScript (QuickJS and StarlingMonkey), and the examples of
//!   `examples/plugins/`: the Python HMAC verifier (request phase) and the JavaScript
//!   redactor (both phases, on a small JSON answer);
//!
//! After criterion's runs, each case is timed call by call for the median and p99.
//!
//! Run: `cargo bench -p portcullis --bench plugins`

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http::{HeaderMap, HeaderValue, Method};
use portcullis::plugin::bindings::Identity;
use portcullis::plugin::{Pipeline, PluginRequest, PluginResponse};
use portcullis::router::RequestView;
use portcullis::runtime::Runtime;
use sha2::Digest;

#[path = "support/http_date.rs"]
mod http_date;
#[path = "support/token.rs"]
mod token;
use token::{BenchToken as Keys, bench_token as keys};

// The gateway binary runs on mimalloc; measure the plugin path under the same allocator.
#[global_allocator]
static GLOBAL: portcullis_alloc::MiMalloc = portcullis_alloc::MiMalloc;

/// One case: a route of plugin entries, and what its requests carry.
struct Case {
    name: &'static str,
    entries: String,
    headers: Vec<(&'static str, String)>,
    identity: bool,
    /// Method, path, query and body, when not the default `GET /items/42?page=2`.
    request: Option<Target>,
    /// The upstream's JSON answer, for a plugin with a response phase: then both phases
    /// are measured.
    response: Option<&'static str>,
}

#[derive(Clone)]
struct Target {
    method: Method,
    path: &'static str,
    query: Option<&'static str>,
    body: Option<Bytes>,
}

/// The Petstore document of the end-to-end tests.
fn petstore() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/petstore.json"
    )
    .to_owned()
}

const HMAC_SECRET: &str = "a bench secret of some length";

/// A `date` header for now and the signature the HMAC example expects over the default
/// request (`GET /items/42?page=2`, empty body).
fn hmac_signature() -> (String, String) {
    let date = httpdate_now();
    let body_hash = hex(&sha2::Sha256::digest(b""));
    let to_sign = format!("GET\n/items/42?page=2\n{date}\n{body_hash}");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, HMAC_SECRET.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, to_sign.as_bytes());
    (date, format!("sha256={}", hex(tag.as_ref())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn httpdate_now() -> String {
    http_date::http_date(std::time::SystemTime::now())
}

fn cases(k: &Keys) -> Vec<Case> {
    let noop = format!("plugin = \"{}\"\n", portcullis_test_plugins::PASS_THROUGH);
    let hash = |key: &str| {
        sha2::Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let consumers: Vec<String> = (0..10)
        .map(|i| {
            format!(
                "c{i} = {{ key_sha256 = \"{}\" }}",
                hash(&format!("key-{i}"))
            )
        })
        .collect();
    let key_auth = format!(
        "plugin = \"key-auth\"\nconfig = {{ consumers = {{ {} }} }}\n",
        consumers.join(", ")
    );
    let jwt_auth = format!(
        "plugin = \"jwt-auth\"\ngrants = {{ crypto = true }}\n\
         config = {{ issuers = [{{ issuer = \"https://idp.bench\", jwks = {:?}, algorithms = [\"RS256\"], audiences = [\"orders\"] }}], required_scopes = [\"orders:read\"] }}\n",
        k.jwks
    );
    let authz =
        "plugin = \"authz\"\nconfig = { scopes = [\"orders:read\"], groups = [\"gold\"] }\n"
            .to_owned();
    let transform = "plugin = \"transform\"\n\
         config = { request = { headers = { remove = [\"x-debug\"], set = { x-gateway = \"p\" } }, query = { rename = { page = \"p\" } } } }\n"
        .to_owned();
    let validate = format!(
        "plugin = \"validate\"\nfiles = {{ document = {:?} }}\n",
        petstore()
    );
    let pet = serde_json::json!({
        "id": 7, "name": "Rex", "status": "available",
        "category": { "id": 1, "name": "Dogs" },
        "photoUrls": ["https://img.test/rex-1.png", "https://img.test/rex-2.png"],
        "tags": [{ "id": 1, "name": "good" }, { "id": 2, "name": "small" }],
    });
    // The GET that validate checks: an array and an integer query parameter.
    let find_by_tags = Target {
        method: Method::GET,
        path: "/api/v3/pet/findByTags",
        query: Some("tags=good&tags=small&limit=20"),
        body: None,
    };
    let mut out = Vec::new();
    for (reuse, suffix) in [(false, "fresh"), (true, "reuse")] {
        let mode = if reuse {
            "reuse = { max_instances = 4 }\n"
        } else {
            ""
        };
        let entry = |body: &str| format!("[[routes.plugins]]\n{body}{mode}");
        // validate runs warm by default; its fresh case is an instance per request.
        let validate_mode = if reuse {
            mode
        } else {
            "reuse = { max_instances = 4, max_requests = 1 }\n"
        };
        let validate_entry = format!("[[routes.plugins]]\n{validate}{validate_mode}");
        let name = |base: &str| -> &'static str { Box::leak(format!("{suffix}-{base}").into()) };
        out.push(Case {
            name: name("noop"),
            entries: entry(&noop),
            headers: vec![],
            identity: false,
            request: None,
            response: None,
        });
        // The same no-op written in Python and in JavaScript on both engines
        // (`tests/plugins/lang-guests/`), and the examples of `examples/plugins/`.
        for (lang, probe) in [
            ("py", portcullis_test_plugins::PY_PROBE),
            ("qjs", portcullis_test_plugins::JS_PROBE_QJS),
            ("sm", portcullis_test_plugins::JS_PROBE_SM),
        ] {
            out.push(Case {
                name: name(&format!("{lang}-noop")),
                entries: entry(&format!("plugin = \"{probe}\"\n")),
                headers: vec![("x-probe", "pass".into())],
                identity: false,
                request: None,
                response: None,
            });
        }
        let (date, signature) = hmac_signature();
        out.push(Case {
            name: name("py-hmac"),
            entries: entry(&format!(
                "plugin = \"{}\"\nconfig = {{ keys = {{ \"bench\" = \"{HMAC_SECRET}\" }} }}\n",
                portcullis_test_plugins::HMAC_VERIFIER
            )),
            headers: vec![
                ("x-key-id", "bench".into()),
                ("date", date),
                ("x-signature", signature),
            ],
            identity: false,
            // The entry buffers the body: the gateway hands it an empty one for a GET.
            request: Some(Target {
                method: Method::GET,
                path: "/items/42",
                query: Some("page=2"),
                body: Some(Bytes::new()),
            }),
            response: None,
        });
        // The JavaScript example on both engines: both phases, masking one field of a
        // small JSON answer.
        for (lang, redactor) in [
            ("qjs", portcullis_test_plugins::REDACTOR_QJS),
            ("sm", portcullis_test_plugins::REDACTOR_SM),
        ] {
            out.push(Case {
                name: name(&format!("{lang}-redactor")),
                entries: entry(&format!(
                    "plugin = \"{redactor}\"\nconfig = {{ fields = [\"password\"] }}\n"
                )),
                headers: vec![],
                identity: false,
                request: None,
                response: Some(r#"{"id":42,"name":"Ann","password":"hunter2","tags":["a","b"]}"#),
            });
        }
        out.push(Case {
            name: name("chain-5"),
            entries: entry(&noop).repeat(5),
            headers: vec![],
            identity: false,
            request: None,
            response: None,
        });
        out.push(Case {
            name: name("key-auth"),
            entries: entry(&key_auth),
            headers: vec![("x-api-key", "key-7".into())],
            identity: false,
            request: None,
            response: None,
        });
        out.push(Case {
            name: name("jwt-auth-rs256"),
            entries: entry(&jwt_auth),
            headers: vec![("authorization", format!("Bearer {}", k.token))],
            identity: false,
            request: None,
            response: None,
        });
        out.push(Case {
            name: name("authz"),
            entries: entry(&authz),
            headers: vec![],
            identity: true,
            request: None,
            response: None,
        });
        out.push(Case {
            name: name("transform"),
            entries: entry(&transform),
            headers: vec![("x-debug", "1".into())],
            identity: false,
            request: None,
            response: None,
        });
        out.push(Case {
            name: name("validate-get"),
            entries: validate_entry.clone(),
            headers: vec![],
            identity: false,
            request: Some(find_by_tags.clone()),
            response: None,
        });
        out.push(Case {
            name: name("validate-post"),
            entries: validate_entry,
            headers: vec![("content-type", "application/json".into())],
            identity: false,
            request: Some(Target {
                method: Method::POST,
                path: "/api/v3/pet",
                query: None,
                body: Some(Bytes::from(pet.to_string())),
            }),
            response: None,
        });
    }
    // Fresh instances started from a snapshot taken after `check-config` (`preinitialise`):
    // the fresh mode a plugin with a costly set-up is meant to use.
    let snapshot = |body: &str| format!("[[routes.plugins]]\n{body}preinitialise = true\n");
    for (name, body, headers) in [
        ("snapshot-noop", &noop, vec![]),
        (
            "snapshot-jwt-auth-rs256",
            &jwt_auth,
            vec![("authorization", format!("Bearer {}", k.token))],
        ),
        (
            "snapshot-transform",
            &transform,
            vec![("x-debug", "1".into())],
        ),
    ] {
        out.push(Case {
            name,
            entries: snapshot(body),
            headers,
            identity: false,
            request: None,
            response: None,
        });
    }
    out.push(Case {
        name: "snapshot-validate-get",
        entries: snapshot(&validate),
        headers: vec![],
        identity: false,
        request: Some(find_by_tags),
        response: None,
    });
    // RS256 verified inside the component (RustCrypto), against jwt-auth's host crypto and
    // the native verification below: the cost host crypto saves.
    out.push(Case {
        name: "reuse-rs256-in-guest",
        entries: format!(
            "[[routes.plugins]]\nplugin = \"{}\"\nconfig = {{ n = {:?}, e = {:?} }}\nreuse = {{ max_instances = 4 }}\n",
            portcullis_test_plugins::RS256_IN_GUEST,
            k.n,
            k.e
        ),
        headers: vec![("authorization", format!("Bearer {}", k.token))],
        identity: false,
        request: None,
        response: None,
    });
    out
}

fn config(dir: &Path, cases: &[Case]) -> String {
    let mut text = format!(
        "version = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[plugins]\ncache_dir = \"{}\"\n",
        dir.display()
    );
    for case in cases {
        text.push_str(&format!(
            "[[routes]]\nid = \"{name}\"\npath = {{ exact = \"/{name}\" }}\nrespond = {{ body = \"x\" }}\n{}",
            case.entries,
            name = case.name,
        ));
    }
    text
}

struct Prepared {
    name: &'static str,
    request: Option<Target>,
    response: Option<&'static str>,
    pipeline: Arc<Pipeline>,
    headers: HeaderMap,
    identity: Option<Identity>,
}

fn prepare(k: &Keys) -> (Runtime, Vec<Prepared>) {
    portcullis::install_crypto_provider();
    let cases = cases(k);
    let dir = std::env::temp_dir().join("portcullis-bench-cache");
    let file =
        portcullis::config::parse(Path::new("bench.toml"), config(&dir, &cases)).expect("config");
    let runtime = Runtime::build(&file).expect("runtime");
    let empty = HeaderMap::new();
    let prepared = cases
        .into_iter()
        .map(|case| {
            let path = format!("/{}", case.name);
            let view = RequestView {
                host: "bench.test",
                method: &Method::GET,
                path: &path,
                headers: &empty,
                query: None,
            };
            let route = runtime.router.find(&view).expect("route").route;
            let mut headers = HeaderMap::new();
            for (k, v) in [
                ("host", "bench.test"),
                ("user-agent", "criterion"),
                ("accept", "application/json"),
            ] {
                headers.insert(k, HeaderValue::from_static(v));
            }
            for (k, v) in &case.headers {
                headers.insert(*k, HeaderValue::from_str(v).expect("header"));
            }
            Prepared {
                name: case.name,
                request: case.request,
                response: case.response,
                pipeline: route.pipeline.clone().expect("pipeline"),
                headers,
                identity: case.identity.then(|| Identity {
                    subject: Some("user-42".into()),
                    consumer: None,
                    scopes: vec!["orders:read".into()],
                    groups: vec!["gold".into()],
                    claims: vec![],
                }),
            }
        })
        .collect();
    (runtime, prepared)
}

/// One request through a pipeline's request phase, as the gateway runs it; panics unless
/// every plugin let it through.
async fn one(case: &Prepared) {
    let permit = case.pipeline.admit().await.expect("admitted");
    let target = case.request.clone().unwrap_or(Target {
        method: Method::GET,
        path: "/items/42",
        query: Some("page=2"),
        body: None,
    });
    let joined = match target.query {
        Some(q) => format!("{}?{q}", target.path),
        None => target.path.to_owned(),
    };
    let mut req = PluginRequest {
        method: target.method,
        target: http::uri::PathAndQuery::try_from(joined).expect("target"),
        body: target.body,
        headers: case.headers.clone(),
        identity: case.identity.clone(),
        request_id: Arc::from("bench-request"),
        route: Arc::from("bench"),
        ..PluginRequest::default()
    };
    let (outcome, phase) = case.pipeline.on_request(&mut req, permit, |_| Ok(())).await;
    match outcome {
        Ok(portcullis::plugin::RequestOutcome::Continue) => {}
        other => panic!(
            "{}: the plugin did not let the request through: {other:?}",
            case.name
        ),
    }
    black_box(&req);
    if let Some(body) = case.response {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let mut response = PluginResponse {
            status: http::StatusCode::OK,
            headers,
            body: Some(Bytes::from_static(body.as_bytes())),
            ..PluginResponse::default()
        };
        phase
            .run(&mut response, &req.request_id)
            .await
            .unwrap_or_else(|e| panic!("{}: the response phase failed: {e:?}", case.name));
        black_box(&response);
    } else {
        drop(phase);
    }
}

fn overhead(c: &mut Criterion) {
    let k = keys();
    let (_runtime, cases) = prepare(&k);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let mut group = c.benchmark_group("plugin-request-phase");
    for case in &cases {
        group.bench_function(case.name, |b| b.to_async(&rt).iter(|| one(case)));
    }
    group.finish();

    let key = jsonwebtoken::DecodingKey::from_rsa_components(&k.n, &k.e).expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["orders"]);
    c.bench_function("native-rs256-verify", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<serde_json::Value>(black_box(&k.token), &key, &validation)
                .expect("verifies")
        })
    });
}

/// Median and p99 of single calls, which criterion's summary does not give.
fn percentiles() {
    let k = keys();
    let (_runtime, cases) = prepare(&k);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    // The filter criterion was given (`cargo bench --bench plugins -- snapshot`) selects
    // the cases timed here too.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    println!("\nper-call latency of the request phase (20 000 calls after 2 000 warm-up):");
    for case in cases.iter().filter(|c| c.name.contains(filter.as_str())) {
        let samples: Vec<Duration> = rt.block_on(async {
            for _ in 0..2_000 {
                one(case).await;
            }
            let mut samples = Vec::with_capacity(20_000);
            for _ in 0..20_000 {
                let start = Instant::now();
                one(case).await;
                samples.push(start.elapsed());
            }
            samples
        });
        report(case.name, samples);
    }
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    println!(
        "  {name:<22} median {:>8.2} µs   p99 {:>8.2} µs",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6
    );
}

criterion_group!(benches, overhead);

fn main() {
    benches();
    percentiles();
    Criterion::default().configure_from_args().final_summary();
}
