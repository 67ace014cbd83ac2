//! Per-request plugin overhead, measured with criterion: the request phase of a no-op
//! plugin (`tests/plugins/guests/examples/pass_through.rs`) on a fresh instance, a chain of
//! five, and the same in reuse mode. After criterion's runs, each case is timed call by call
//! to report the median and p99 as well.
//!
//! Run: `cargo bench -p portcullis --bench plugins`

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use http::{HeaderMap, HeaderValue, Method};
use portcullis::plugin::{Pipeline, PluginRequest};
use portcullis::router::RequestView;
use portcullis::runtime::Runtime;

// The gateway binary runs on mimalloc; measure the plugin path under the same allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CASES: &[(&str, usize, bool)] = &[
    ("fresh-noop", 1, false),
    ("fresh-chain-5", 5, false),
    ("reuse-noop", 1, true),
    ("reuse-chain-5", 5, true),
];

fn config(dir: &Path) -> String {
    let mut text = format!(
        "version = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[plugins]\ncache_dir = \"{}\"\n",
        dir.display()
    );
    for (name, chain, reuse) in CASES {
        text.push_str(&format!(
            "[[routes]]\nid = \"{name}\"\npath = {{ exact = \"/{name}\" }}\nrespond = {{ body = \"x\" }}\n"
        ));
        for _ in 0..*chain {
            text.push_str(&format!(
                "[[routes.plugins]]\nplugin = \"{}\"\n{}",
                portcullis_test_plugins::PASS_THROUGH,
                if *reuse {
                    "reuse = { max_instances = 4 }\n"
                } else {
                    ""
                }
            ));
        }
    }
    text
}

fn pipelines() -> (Runtime, Vec<(&'static str, Arc<Pipeline>)>) {
    portcullis::install_crypto_provider();
    let dir = std::env::temp_dir().join("portcullis-bench-cache");
    let file = portcullis::config::parse(Path::new("bench.toml"), config(&dir)).expect("config");
    let runtime = Runtime::build(&file).expect("runtime");
    let headers = HeaderMap::new();
    let found = CASES
        .iter()
        .map(|(name, _, _)| {
            let path = format!("/{name}");
            let view = RequestView {
                host: "bench.test",
                method: &Method::GET,
                path: &path,
                headers: &headers,
                query: None,
            };
            let route = runtime.router.find(&view).expect("route").route;
            (*name, route.pipeline.clone().expect("pipeline"))
        })
        .collect();
    (runtime, found)
}

fn request() -> PluginRequest {
    let mut headers = HeaderMap::new();
    for (k, v) in [
        ("host", "bench.test"),
        ("user-agent", "criterion"),
        ("accept", "application/json"),
        ("authorization", "Bearer abc.def.ghi"),
    ] {
        headers.insert(k, HeaderValue::from_static(v));
    }
    PluginRequest {
        method: Method::GET,
        path: "/items/42".into(),
        query: Some("page=2".into()),
        headers,
        body: None,
        identity: None,
        client_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        route: Arc::from("bench"),
        request_id: Arc::from("bench-request"),
    }
}

/// One request through a pipeline's request phase, as the gateway runs it.
async fn one(pipeline: &Pipeline) {
    let permit = pipeline.admit().await.expect("admitted");
    let mut req = request();
    let (outcome, phase) = pipeline.on_request(&mut req, permit, |_| Ok(())).await;
    black_box(outcome.expect("continue"));
    drop(phase);
}

fn overhead(c: &mut Criterion) {
    let (_runtime, pipelines) = pipelines();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let mut group = c.benchmark_group("plugin-request-phase");
    for (name, pipeline) in &pipelines {
        group.bench_function(*name, |b| b.to_async(&rt).iter(|| one(pipeline)));
    }
    group.finish();
}

/// Median and p99 of single calls, which criterion's summary does not give.
fn percentiles() {
    let (_runtime, pipelines) = pipelines();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    println!("\nper-call latency of the request phase (20 000 calls after 2 000 warm-up):");
    for (name, pipeline) in &pipelines {
        let mut samples: Vec<Duration> = rt.block_on(async {
            for _ in 0..2_000 {
                one(pipeline).await;
            }
            let mut samples = Vec::with_capacity(20_000);
            for _ in 0..20_000 {
                let start = Instant::now();
                one(pipeline).await;
                samples.push(start.elapsed());
            }
            samples
        });
        samples.sort();
        let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
        println!(
            "  {name:<14} median {:>8.2} µs   p99 {:>8.2} µs",
            at(0.5).as_secs_f64() * 1e6,
            at(0.99).as_secs_f64() * 1e6
        );
    }
}

criterion_group!(benches, overhead);

fn main() {
    benches();
    percentiles();
    Criterion::default().configure_from_args().final_summary();
}
