//! Prints a fresh RS256 key set (line 1, JWKS JSON) and a token it verifies (line 2), for
//! `bench/pipeline.sh`.
//!
//! Run: `cargo run --release --example bench_token`

// The native-verification fields of the shared helper are the criterion bench's.
#[allow(dead_code)]
#[path = "../benches/support/token.rs"]
mod token;

fn main() {
    let t = token::bench_token();
    println!("{}", t.jwks);
    println!("{}", t.token);
}
