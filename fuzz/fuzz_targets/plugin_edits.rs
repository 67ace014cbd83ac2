#![no_main]
//! The `plugin_edits` check of `portcullis-fuzz-checks` under libFuzzer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_fuzz_checks::plugin_edits::check(data));
