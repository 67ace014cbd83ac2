#![no_main]
//! The `framing` check of `portcullis-fuzz-checks` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_fuzz_checks::framing::check(data));
