//! Test plugins for the gateway's tests and benches. Each example is one plugin (a
//! `cdylib`), built for wasm32 by `tests/plugins/build.rs`; misbehaving ones misbehave on
//! purpose, to prove the sandbox.

pub mod conformance;
