#![no_main]
//! The `config` check of `portcullis-fuzz-checks` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_fuzz_checks::config::check(data));
