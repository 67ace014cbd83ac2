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
//! `config.panic`, it panics with that message.

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};
use std::hash::BuildHasher;
use std::io::{Read, Write};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(serde::Deserialize)]
struct Config {
    #[serde(default)]
    connect: Option<String>,
    #[serde(default)]
    exit: Option<i32>,
    #[serde(default)]
    panic: Option<String>,
}

struct WasiStd;

impl Plugin for WasiStd {
    type Config = Config;

    fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        if let Some(code) = config.exit {
            std::process::exit(code);
        }
        if let Some(message) = &config.panic {
            panic!("{message}");
        }
        println!("hello on stdout from {}", request.path());
        eprintln!("and a word on stderr");
        print!("a last line without its newline");
        let _ = std::io::stdout().flush();

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
