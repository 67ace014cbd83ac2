#![no_main]
//! The `paths` check of `portcullis-fuzz-checks` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_fuzz_checks::paths::check(data));
