//! Builds the test plugins in `guests/` for `wasm32-unknown-unknown`, wraps each module as a
//! component with `wit-component` (so they import no WASI at all), and writes their paths
//! as constants for the tests and benches.
//!
//! The guests are built by a nested cargo into a target folder of their own
//! (`target/wasm-plugins`): the outer cargo holds the lock of the main one while build
//! scripts run.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    let manifest = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let workspace = manifest
        .ancestors()
        .nth(2)
        .expect("tests/plugins sits two levels below the workspace")
        .to_path_buf();
    for watched in ["tests/plugins/guests", "sdk", "wit"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    let out = PathBuf::from(env("OUT_DIR"));
    let target_root = out
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").exists())
        .map_or_else(|| workspace.join("target"), Path::to_path_buf);
    let target_dir = target_root.join("wasm-plugins");

    ensure_target();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--locked",
            "--examples",
            "-p",
            "portcullis-test-guests",
        ])
        .args(["--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's settings are for the host, not for this nested wasm build.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let host_only =
            key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_MAKEFLAGS"
                || matches!(
                    &*key,
                    "RUSTFLAGS"
                        | "TARGET"
                        | "HOST"
                        | "PROFILE"
                        | "OPT_LEVEL"
                        | "DEBUG"
                        | "NUM_JOBS"
                        | "RUSTC_WRAPPER"
                        | "RUSTC_WORKSPACE_WRAPPER"
                );
        if host_only {
            build.env_remove(&*key);
        }
    }
    let status = build.status().expect("running cargo for the test plugins");
    assert!(status.success(), "building the test plugins failed");

    let examples = target_dir.join(TARGET).join("release").join("examples");
    let mut constants = String::new();
    let mut names: Vec<String> = std::fs::read_dir(manifest.join("guests/examples"))
        .expect("guests/examples")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    names.sort();
    for name in &names {
        let module = std::fs::read(examples.join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("test plugin {name} was not built: {e}"));
        let component = wit_component::ComponentEncoder::default()
            .module(&module)
            .and_then(|e| e.validate(true).encode())
            .unwrap_or_else(|e| panic!("making a component of {name}: {e:?}"));
        let path = out.join(format!("{name}.wasm"));
        std::fs::write(&path, component).expect("writing a component");
        constants.push_str(&format!(
            "/// The `{name}` test plugin (`tests/plugins/guests/examples/{name}.rs`).\npub const {}: &str = {:?};\n",
            name.to_ascii_uppercase(),
            path.display().to_string()
        ));
    }
    constants.push_str(&format!(
        "/// Every test plugin, by name.\npub const ALL: &[(&str, &str)] = &[{}];\n",
        names
            .iter()
            .map(|n| format!("({n:?}, {})", n.to_ascii_uppercase()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    std::fs::write(out.join("plugins.rs"), constants).expect("writing plugins.rs");
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} is set by cargo"))
}

/// A fresh machine may have the toolchain without the wasm target that
/// `rust-toolchain.toml` lists: add it, as `rustup` would on a toolchain install.
fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_owned()));
    if libdir.is_some_and(|d| {
        d.join("..").join("..").exists() && d.read_dir().is_ok_and(|mut r| r.next().is_some())
    }) {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .expect("rustup is needed to add the wasm32-unknown-unknown target");
    assert!(status.success(), "`rustup target add {TARGET}` failed");
}
