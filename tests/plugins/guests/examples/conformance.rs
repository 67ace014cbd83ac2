//! Applies the edits of its config to the request, then the response, and answers with each edit's result: the plugin contract's conformance test (`tests/plugins/guests/src/conformance.rs`).

portcullis_sdk::export_plugin!(portcullis_test_guests::conformance::Conformance);
