#![no_main]
//! The `head` check of `portcullis-fuzz-checks` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_fuzz_checks::head::check(data));
