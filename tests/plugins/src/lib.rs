//! Paths of the test plugins, built from `guests/` as WASI-free components by this crate's
//! build script. Each plugin's source says what it does.

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
