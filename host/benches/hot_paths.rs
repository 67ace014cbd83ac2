//! Hot paths of the request path, measured with criterion: route choice among many
//! routes, and the HTTP/1 framing guard that follows every request head.
//!
//! Run: `cargo bench -p portcullis --bench hot_paths`

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method};
use portcullis::listener::framing::{FramingGuard, FramingVerdicts};
use portcullis::router::RequestView;
use portcullis::runtime::Runtime;

/// 100 routes of every kind, written as a user would.
fn config() -> String {
    let mut text = String::from("version = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n");
    for i in 0..25 {
        text.push_str(&format!(
            "[[routes]]\nid = \"exact-{i}\"\nhosts = [\"api{i}.example.com\"]\npath = {{ exact = \"/v1/items\" }}\nrespond = {{ body = \"x\" }}\n\
             [[routes]]\nid = \"prefix-{i}\"\nhosts = [\"*.svc{i}.example.com\"]\npath = {{ prefix = \"/static/{i}\" }}\nrespond = {{ body = \"x\" }}\n\
             [[routes]]\nid = \"template-{i}\"\npath = {{ template = \"/t{i}/users/{{id}}/orders/{{order}}\" }}\nmethods = [\"GET\"]\nrespond = {{ body = \"x\" }}\n\
             [[routes]]\nid = \"regex-{i}\"\npath = {{ regex = \"/reports/{i}/[0-9]{{4}}-[0-9]{{2}}\" }}\nrespond = {{ body = \"x\" }}\n"
        ));
    }
    text
}

fn router(c: &mut Criterion) {
    portcullis::install_crypto_provider();
    let file = portcullis::config::parse(Path::new("bench.toml"), config()).expect("config");
    let runtime = Runtime::build(&file).expect("runtime");
    let headers = HeaderMap::new();
    let mut group = c.benchmark_group("router");
    let cases = [
        ("exact-host-and-path", "api24.example.com", "/v1/items"),
        ("template-last", "anything.test", "/t24/users/42/orders/7"),
        ("regex-last", "anything.test", "/reports/24/2026-11"),
        ("miss", "nowhere.test", "/not/routed"),
    ];
    for (name, host, path) in cases {
        group.bench_function(name, |b| {
            b.iter(|| {
                let view = RequestView {
                    host,
                    method: &Method::GET,
                    path,
                    headers: &headers,
                    query: None,
                };
                black_box(runtime.router.find(black_box(&view)).is_some())
            })
        });
    }
    group.finish();
}

fn framing(c: &mut Criterion) {
    let head: &[u8] =
        b"POST /api/orders HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: bench/1.0\r\n\
        Accept: application/json\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\
        Authorization: Bearer abcdefghijklmnopqrstuvwxyz\r\n\r\n{\"item\":\"12345\"}";
    c.bench_function("framing_guard/head_and_body", |b| {
        let verdicts = Arc::new(FramingVerdicts::default());
        let mut guard = FramingGuard::new(64 * 1024, 200, Arc::clone(&verdicts));
        b.iter(|| {
            guard.feed(black_box(head));
            black_box(verdicts.next_is_sound())
        })
    });
}

criterion_group!(benches, router, framing);
criterion_main!(benches);
