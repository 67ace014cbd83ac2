//! The sandbox as each toolchain's build meets it: random values, clocks, logs, and how
//! failures end.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;

use super::{PROBES, gateway, route};
use crate::plugins::values;
use crate::support::client::{Conn, get, request};
use crate::support::process::GatewayProcess;
use crate::support::upstream::TestUpstream;

/// One gateway for the probes of every toolchain (each compiled once).
#[tokio::test]
async fn the_sandbox_per_language() {
    let up = TestUpstream::start("app").await;
    // The deadline leaves a hoard time to meet the memory cap first on a loaded machine
    // (CPython filling 64 MiB took over 300 ms beside the whole suite).
    let budgets = "budgets = { deadline = \"1s\", memory_mib = 64 }";
    let routes: String = PROBES
        .iter()
        .map(|(lang, plugin)| {
            route(
                lang,
                &format!("/{lang}/"),
                plugin,
                &format!("config = {{ tag = \"{lang}-probe\" }}\n{budgets}"),
            )
        })
        .collect();
    let (gw, _dir) = gateway(&up, &routes);
    fresh_instances_draw_fresh_random_values_and_read_a_moving_clock(&gw).await;
    print_deny_and_failures(&gw).await;
}

async fn fresh_instances_draw_fresh_random_values_and_read_a_moving_clock(gw: &GatewayProcess) {
    let mut conn = Conn::h1(gw.addr).await;
    for (lang, _) in PROBES {
        let mut randoms = Vec::new();
        let mut clocks = Vec::new();
        for _ in 0..2 {
            let before = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("now")
                .as_millis();
            let reply = conn.send(get("h", &format!("/{lang}/sample"))).await;
            assert_eq!(reply.status, 200, "{lang}: {}", reply.text());
            gw.next_access();
            let echo = reply.json();
            randoms.push(values(&echo, "x-random"));
            let wall_ms: u128 = match values(&echo, "x-wall-ns").first() {
                Some(ns) => ns.parse::<u128>().expect("ns") / 1_000_000,
                None => values(&echo, "x-wall-ms")[0].parse().expect("ms"),
            };
            assert!(
                wall_ms + 1 >= before && wall_ms <= before + 5_000,
                "{lang}: the guest's clock is the host's: {wall_ms} vs {before}"
            );
            clocks.push(wall_ms);
            if lang != "py" {
                assert_eq!(values(&echo, "x-text"), ["π ok"], "{lang}: TextEncoder");
                assert_eq!(values(&echo, "x-absent"), ["undefined"], "{lang}");
            }
        }
        assert_ne!(
            randoms[0], randoms[1],
            "{lang}: two fresh instances drew the same random value"
        );
        assert!(clocks[1] >= clocks[0], "{lang}: {clocks:?}");
    }
}

async fn print_deny_and_failures(gw: &GatewayProcess) {
    let mut conn = Conn::h1(gw.addr).await;
    let probe = |lang: &str, what: &str| {
        request("GET", "h", &format!("/{lang}/{what}"))
            .header("x-probe", what)
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    for (lang, _) in PROBES {
        let reply = conn.send(probe(lang, "print")).await;
        assert_eq!(reply.status, 200, "{lang}: {}", reply.text());
        let access = gw.next_access();
        let word = if lang == "py" { "print" } else { "console.log" };
        let line = gw.wait_for_ops(&format!("{lang}-probe: {word} from /{lang}/print"));
        assert_eq!(line["route"], lang, "{line}");
        assert_eq!(line["request_id"], access["request_id"], "{line}");

        // A problem shaped like the gateway's own (the Rust SDK's too).
        let reply = conn.send(probe(lang, "deny")).await;
        assert_eq!(reply.status, 403, "{lang}: {}", reply.text());
        let problem = reply.json();
        assert_eq!(problem["detail"], "the probe was asked to deny", "{lang}");
        assert_eq!(
            problem["type"], "urn:portcullis:problem:forbidden",
            "{lang}"
        );
        assert_eq!(problem["title"], "Forbidden", "{lang}");
        assert_eq!(problem["status"], 403, "{lang}");
        assert_eq!(
            problem["request_id"],
            gw.next_access()["request_id"],
            "{lang}: {problem}"
        );
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{lang}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json"),
            "{lang}"
        );

        // An uncaught exception is a plugin error carrying its type and message (not a
        // bare trap); a loop meets the deadline, a hoard the memory cap.
        let raise = if lang == "py" { "raise" } else { "throw" };
        for (what, status, kind, text) in [
            (raise, 500, "error", "Error: the probe was asked to fail"),
            ("spin", 503, "timeout", "deadline exceeded"),
            ("grow", 500, "memory", "memory budget exhausted"),
        ] {
            let reply = conn.send(probe(lang, what)).await;
            assert_eq!(reply.status, status, "{lang} {what}: {}", reply.text());
            assert!(
                !reply.text().contains("the probe"),
                "{lang} {what}: the client is not told the plugin's reasons"
            );
            let access = gw.next_access();
            let line = gw.wait_for_ops("plugin failed");
            assert_eq!(line["route"], lang, "{line}");
            assert_eq!(line["kind"], kind, "{lang} {what}: {line}");
            assert_eq!(line["request_id"], access["request_id"], "{line}");
            let error = line["error"].as_str().unwrap_or_default();
            assert!(error.contains(text), "{lang} {what}: {line}");
        }
        // The gateway and the route still serve.
        assert_eq!(conn.send(probe(lang, "sample")).await.status, 200, "{lang}");
        gw.next_access();
    }
}
