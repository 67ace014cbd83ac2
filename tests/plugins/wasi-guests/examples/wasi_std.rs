//! Uses Rust's std as any program would, through WASI: prints to stdout and stderr, reads
//! the clocks, seeds a `HashMap`, and tries what the sandbox must refuse (files, the
//! network, the environment, stdin). Reports what it saw in request headers:
//!
//! - `x-wall-ns`, `x-monotonic-ns`: the wall clock, and monotonic time across a short spin;
//! - `x-random`: a hash under a fresh `RandomState` (seeded through `wasi:random`);
//! - `x-env`, `x-args`, `x-stdin`: how many variables, arguments and stdin bytes it has;
//! - `x-file`: `denied` when reading `/etc/hostname` and listing `/` both fail;
//! - `x-connect`: `denied` when connecting to `config.connect` (an address) fails.
//!
//! With `config.exit`, it calls `std::process::exit` with that code instead; with
//! `config.panic`, it panics with that message; with `config.random_bytes`, it asks
//! `wasi:random` for that many bytes in one call and reports how many came (`x-drawn`).

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};
use std::hash::BuildHasher;
use std::io::Read;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(serde::Deserialize)]
struct Config {
    #[serde(default)]
    connect: Option<String>,
    #[serde(default)]
    exit: Option<i32>,
    #[serde(default)]
    panic: Option<String>,
    #[serde(default)]
    #[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
    random_bytes: Option<u64>,
}

struct WasiStd;

impl Plugin for WasiStd {
    type Config = Config;

    /// Seeds std's hash keys, as any `HashMap` built while checking a config does: drawn
    /// through `wasi:random` while a snapshot is taken.
    fn check(_: &Config) -> Result<Phases, String> {
        let _ = std::collections::hash_map::RandomState::new().hash_one(0u8);
        Ok(Phases::ON_REQUEST)
    }

    fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        if let Some(code) = config.exit {
            std::process::exit(code);
        }
        if let Some(message) = &config.panic {
            panic!("{message}");
        }
        #[cfg(target_os = "wasi")]
        if let Some(len) = config.random_bytes {
            let drawn = wasip2::random::random::get_random_bytes(len);
            request.set_header("x-drawn", &drawn.len().to_string())?;
            return Ok(Action::Continue);
        }
        println!("hello on stdout from {}", request.path());
        eprintln!("and a word on stderr");
        // Left in std's buffer: the SDK flushes it when the call returns.
        print!("a last line without its newline");

        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let start = Instant::now();
        let mut spin = 0u64;
        while start.elapsed().as_micros() < 50 {
            spin = spin.wrapping_add(1);
        }
        let random = std::collections::hash_map::RandomState::new().hash_one(42u8);
        let mut stdin = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut stdin);
        let file = std::fs::read("/etc/hostname").is_err() && std::fs::read_dir("/").is_err();
        request.set_header("x-wall-ns", &wall.to_string())?;
        request.set_header("x-monotonic-ns", &start.elapsed().as_nanos().to_string())?;
        request.set_header("x-spins", &spin.to_string())?;
        request.set_header("x-random", &random.to_string())?;
        request.set_header("x-env", &std::env::vars().count().to_string())?;
        request.set_header("x-args", &std::env::args().count().to_string())?;
        request.set_header("x-stdin", &stdin.len().to_string())?;
        request.set_header("x-file", if file { "denied" } else { "allowed" })?;
        if let Some(addr) = &config.connect {
            let connected = std::net::TcpStream::connect(addr.as_str()).is_ok();
            request.set_header("x-connect", if connected { "allowed" } else { "denied" })?;
        }
        Ok(Action::Continue)
    }
}

export_plugin!(WasiStd);
