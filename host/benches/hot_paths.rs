//! Hot paths of the request path, measured with criterion: route choice among many
//! routes, the HTTP/1 framing guard that follows every request head, and path
//! normalisation.
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

    // One 147 KiB read of 1-byte chunks beside one read of the same body as a single
    // chunk: the guard's cost must follow the bytes, not bytes × chunks (issue 10,
    // finding 13: ~60 ms for the first before the guard parsed elements in place).
    let mut one_byte_chunks = Vec::new();
    one_byte_chunks
        .extend_from_slice(b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunks = 147 * 1024 / 6;
    for _ in 0..chunks {
        one_byte_chunks.extend_from_slice(b"1\r\nx\r\n");
    }
    one_byte_chunks.extend_from_slice(b"0\r\n\r\n");
    let mut one_chunk = Vec::new();
    one_chunk
        .extend_from_slice(b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    let size = one_byte_chunks.len() - one_chunk.len() - 12;
    one_chunk.extend_from_slice(format!("{size:x}\r\n").as_bytes());
    one_chunk.resize(one_chunk.len() + size, b'x');
    one_chunk.extend_from_slice(b"\r\n0\r\n\r\n");
    let mut group = c.benchmark_group("framing_guard/147KiB_read");
    for (name, stream) in [
        ("1-byte-chunks", &one_byte_chunks),
        ("one-chunk", &one_chunk),
    ] {
        group.bench_function(name, |b| {
            let verdicts = Arc::new(FramingVerdicts::default());
            let mut guard = FramingGuard::new(64 * 1024, 200, Arc::clone(&verdicts));
            b.iter(|| {
                guard.feed(black_box(stream));
                black_box(verdicts.next_is_sound())
            })
        });
    }
    group.finish();
}

fn canonical(c: &mut Criterion) {
    use portcullis::canonical::{Authority, PathOptions, normalize};
    let mut group = c.benchmark_group("canonical");
    let opts = PathOptions::default();
    for (name, path) in [
        ("path/plain", "/api/v1/users/42/orders"),
        (
            "path/dots-and-escapes",
            "/api/./v1/%75sers/../users/42//orders%20x",
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(normalize(black_box(path), opts)))
        });
    }
    group.bench_function("authority", |b| {
        b.iter(|| black_box(Authority::parse(black_box(b"API.example.com:8443"))))
    });
    group.finish();
}

criterion_group!(benches, router, framing, canonical);
criterion_main!(benches);
