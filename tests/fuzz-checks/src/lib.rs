//! What each fuzz target checks, in one place for both runners: the cargo-fuzz targets in
//! `fuzz/` (nightly, libFuzzer, sanitizers) call these functions with generated inputs,
//! and this crate's stable tests replay every committed corpus input through the same
//! functions, so CI keeps every finding fixed without a second build of wasmtime.
//!
//! Each function panics when a property of the gateway does not hold; a panic anywhere in
//! the gateway (a request task included) is caught by [`panics::watch`] and reported as
//! the input's failure.

pub mod config;
pub mod framing;
pub mod head;
pub mod panics;
pub mod paths;
pub mod plugin_edits;

/// A check: panics when the input breaks a property of the gateway.
pub type Check = fn(&[u8]);

/// Every fuzz target, by the name of its folder under `fuzz/corpus/`.
pub const TARGETS: &[(&str, Check)] = &[
    ("config", config::check),
    ("framing", framing::check),
    ("head", head::check),
    ("paths", paths::check),
    ("plugin_edits", plugin_edits::check),
];
