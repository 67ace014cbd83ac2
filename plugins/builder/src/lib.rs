//! Builds plugin crates of this workspace into components, for the build scripts of
//! `portcullis-builtins` (the plugins shipped in the gateway) and `portcullis-test-plugins`
//! (the plugins the tests run).
//!
//! Plugins are built for `wasm32-unknown-unknown` by a nested cargo into a target folder
//! of their own (`target/wasm-plugins`: the outer cargo holds the lock of the main one
//! while build scripts run), then each module is wrapped with `wit-component`. The result
//! imports nothing but the `portcullis:plugin` interfaces it uses: no WASI.
//!
//! [`build_wasip2`] builds for `wasm32-wasip2` instead, as a plugin author using Rust's
//! standard library would: rustc's linker makes the component itself, importing the WASI
//! interfaces that std uses.
//!
//! [`build_guests`] builds Python and JavaScript plugins with `sdk/toolchains/build`, the
//! script the SDK guides give authors, keeping each result under a hash of its inputs.

use std::path::{Path, PathBuf};
use std::process::Command;

mod lang;
pub use lang::{Guest, Toolchain, build_guests};

const TARGET: &str = "wasm32-unknown-unknown";
const TARGET_WASIP2: &str = "wasm32-wasip2";

/// What to build from one package.
#[derive(Debug, Clone, Copy)]
pub enum Artifacts<'a> {
    /// The package's library (a `cdylib`), named `name` in the output.
    Lib { package: &'a str, name: &'a str },
    /// Every example of the package (each a `cdylib`), named after its file; `dir` is the
    /// package's folder, relative to the workspace.
    Examples { package: &'a str, dir: &'a str },
}

/// A component written by [`build`].
#[derive(Debug, Clone)]
pub struct Built {
    pub name: String,
    pub path: PathBuf,
}

/// Builds `artifacts` in release mode and writes each as `<name>.wasm` into the build
/// script's `OUT_DIR`. Also tells cargo to run the calling build script again when the
/// SDK, the WIT or any of `watched` (folders relative to the workspace) change.
///
/// Panics with the reason when anything fails: it runs inside build scripts.
pub fn build(artifacts: &[Artifacts<'_>], watched: &[&str]) -> Vec<Built> {
    build_for(TARGET, artifacts, watched)
}

/// As [`build`], for `wasm32-wasip2`: the components rustc makes are copied as they are.
pub fn build_wasip2(artifacts: &[Artifacts<'_>], watched: &[&str]) -> Vec<Built> {
    build_for(TARGET_WASIP2, artifacts, watched)
}

fn build_for(target: &str, artifacts: &[Artifacts<'_>], watched: &[&str]) -> Vec<Built> {
    let workspace = workspace_root();
    for dir in ["sdk", "wit", ".cargo"].iter().chain(watched) {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    let out = PathBuf::from(env("OUT_DIR"));
    let target_dir = target_root(&out, &workspace).join("wasm-plugins");

    ensure_target(target);
    let mut cargo = nested_cargo(&workspace, &target_dir, target);
    let (mut libs, mut examples) = (false, false);
    for artifact in artifacts {
        match artifact {
            Artifacts::Lib { package, .. } => {
                libs = true;
                cargo.args(["-p", package])
            }
            Artifacts::Examples { package, .. } => {
                examples = true;
                cargo.args(["-p", package])
            }
        };
    }
    if libs {
        cargo.arg("--lib");
    }
    if examples {
        cargo.arg("--examples");
    }
    let status = cargo.status().expect("running cargo for the plugins");
    assert!(status.success(), "building the plugins failed");

    let release = target_dir.join(target).join("release");
    let finish = |module: &Path, name: &str| {
        if target == TARGET {
            wrap(module, name, &out)
        } else {
            copy(module, name, &out)
        }
    };
    let mut built = Vec::new();
    for artifact in artifacts {
        match artifact {
            Artifacts::Lib { package, name } => {
                let module = release.join(format!("{}.wasm", package.replace('-', "_")));
                built.push(finish(&module, name));
            }
            Artifacts::Examples { dir, .. } => {
                let sources = workspace.join(dir).join("examples");
                let mut names: Vec<String> = std::fs::read_dir(&sources)
                    .unwrap_or_else(|e| panic!("{}: {e}", sources.display()))
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.strip_suffix(".rs").map(str::to_owned)
                    })
                    .collect();
                names.sort();
                for name in names {
                    let module = release.join("examples").join(format!("{name}.wasm"));
                    built.push(finish(&module, &name));
                }
            }
        }
    }
    built
}

/// The target folder the calling build runs in (where cargo wrote `CACHEDIR.TAG`).
fn target_root(out: &Path, workspace: &Path) -> PathBuf {
    out.ancestors()
        .find(|p| p.join("CACHEDIR.TAG").exists())
        .map_or_else(|| workspace.join("target"), Path::to_path_buf)
}

/// The workspace root: the nearest ancestor of the calling crate with `wit/`.
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|p| p.join("wit").is_dir() && p.join("Cargo.toml").is_file())
        .expect("the calling crate sits inside the Portcullis workspace")
        .to_path_buf()
}

fn nested_cargo(workspace: &Path, target_dir: &Path, target: &str) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(workspace)
        .args(["build", "--release", "--locked", "--target", target])
        .arg("--target-dir")
        .arg(target_dir);
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
    build
}

fn wrap(module: &Path, name: &str, out: &Path) -> Built {
    let bytes = std::fs::read(module)
        .unwrap_or_else(|e| panic!("plugin {name} was not built ({}): {e}", module.display()));
    let component = wit_component::ComponentEncoder::default()
        .module(&bytes)
        .and_then(|e| e.validate(true).encode())
        .unwrap_or_else(|e| panic!("making a component of {name}: {e:?}"));
    let path = out.join(format!("{name}.wasm"));
    std::fs::write(&path, component).expect("writing a component");
    Built {
        name: name.to_owned(),
        path,
    }
}

fn copy(component: &Path, name: &str, out: &Path) -> Built {
    let path = out.join(format!("{name}.wasm"));
    std::fs::copy(component, &path)
        .unwrap_or_else(|e| panic!("plugin {name} was not built ({}): {e}", component.display()));
    Built {
        name: name.to_owned(),
        path,
    }
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} is set by cargo"))
}

/// A fresh machine may have the toolchain without the wasm targets that
/// `rust-toolchain.toml` lists: add the one needed, as `rustup` would on a toolchain
/// install.
fn ensure_target(target: &str) {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_owned()));
    if libdir.is_some_and(|d| {
        d.join("..").join("..").exists() && d.read_dir().is_ok_and(|mut r| r.next().is_some())
    }) {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", target])
        .status()
        .unwrap_or_else(|e| panic!("rustup is needed to add the {target} target: {e}"));
    assert!(status.success(), "`rustup target add {target}` failed");
}
