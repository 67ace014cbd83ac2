//! Builds the test plugins in `guests/examples/` as WASI-free components (see
//! `portcullis-plugin-builder`), those in `wasi-guests/examples/` for `wasm32-wasip2`
//! as Rust's std makes them, the Python and JavaScript probes in `lang-guests/` and the
//! Python and JavaScript examples of `examples/plugins/` with `sdk/toolchains/build`, and
//! writes their paths as constants for the tests and benches.

use std::path::PathBuf;

use portcullis_plugin_builder::{Artifacts, Guest, Toolchain, build, build_guests, build_wasip2};

fn main() {
    let mut built = build(
        &[Artifacts::Examples {
            package: "portcullis-test-guests",
            dir: "tests/plugins/guests",
        }],
        &["tests/plugins/guests"],
    );
    built.extend(build_wasip2(
        &[Artifacts::Examples {
            package: "portcullis-test-wasi-guests",
            dir: "tests/plugins/wasi-guests",
        }],
        &["tests/plugins/wasi-guests"],
    ));
    let guest = |name, dir, toolchain| Guest {
        name,
        dir,
        toolchain,
    };
    built.extend(build_guests(&[
        guest(
            "py_probe",
            "tests/plugins/lang-guests/python-probe",
            Toolchain::Python,
        ),
        guest(
            "js_probe_qjs",
            "tests/plugins/lang-guests/js-probe",
            Toolchain::QuickJs,
        ),
        guest(
            "js_probe_sm",
            "tests/plugins/lang-guests/js-probe",
            Toolchain::StarlingMonkey,
        ),
        guest(
            "hmac_verifier",
            "examples/plugins/hmac-verifier",
            Toolchain::Python,
        ),
        guest(
            "redactor_qjs",
            "examples/plugins/redactor",
            Toolchain::QuickJs,
        ),
        guest(
            "redactor_sm",
            "examples/plugins/redactor",
            Toolchain::StarlingMonkey,
        ),
    ]));
    let mut constants = String::new();
    for plugin in &built {
        constants.push_str(&format!(
            "/// The `{name}` test plugin (its source says what it does).\npub const {}: &str = {:?};\n",
            plugin.name.to_ascii_uppercase(),
            plugin.path.display().to_string(),
            name = plugin.name,
        ));
    }
    constants.push_str(&format!(
        "/// Every test plugin, by name.\npub const ALL: &[(&str, &str)] = &[{}];\n",
        built
            .iter()
            .map(|p| format!("({:?}, {})", p.name, p.name.to_ascii_uppercase()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    std::fs::write(out.join("plugins.rs"), constants).expect("writing plugins.rs");
}
