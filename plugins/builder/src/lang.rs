//! Python and JavaScript plugins, built by `sdk/toolchains/build` (the script the SDK guides
//! give authors, with each toolchain's default flags), so what the tests run is what an
//! author gets.
//!
//! Those builds take seconds to tens of seconds each (componentize-py snapshots a whole
//! CPython, componentize-js a SpiderMonkey), so each result is kept in
//! `target/lang-plugins/` under a hash of everything that goes into it — the plugin's
//! folder, its SDK, `wit/` and the pinned toolchain manifests — and rebuilt only when one
//! of them changes.

use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Built;

/// A toolchain of `sdk/toolchains/build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolchain {
    /// componentize-py: `app.py` with `sdk/python` on the path.
    Python,
    /// componentize-qjs (QuickJS): `plugin.js`.
    QuickJs,
    /// componentize-js (StarlingMonkey): `plugin.js`.
    StarlingMonkey,
}

impl Toolchain {
    fn arg(self) -> &'static str {
        match self {
            Toolchain::Python => "python",
            Toolchain::QuickJs => "qjs",
            Toolchain::StarlingMonkey => "sm",
        }
    }

    /// What the build reads besides the plugin's folder (relative to the workspace).
    fn inputs(self) -> &'static [&'static str] {
        match self {
            Toolchain::Python => &["sdk/python", "sdk/toolchains", "wit"],
            Toolchain::QuickJs | Toolchain::StarlingMonkey => &[
                "sdk/toolchains",
                "sdk/js/portcullis.js",
                "sdk/js/package.json",
                "sdk/js/package-lock.json",
                "wit",
            ],
        }
    }
}

/// One plugin to build: its folder (relative to the workspace) and the name of the output.
#[derive(Debug, Clone, Copy)]
pub struct Guest<'a> {
    pub name: &'a str,
    pub dir: &'a str,
    pub toolchain: Toolchain,
}

/// Builds each guest (or takes it from the cache) and writes `<name>.wasm` into the build
/// script's `OUT_DIR`. Panics with the build's own output when one fails.
pub fn build_guests(guests: &[Guest<'_>]) -> Vec<Built> {
    let workspace = crate::workspace_root();
    let out = PathBuf::from(crate::env("OUT_DIR"));
    let cache = crate::target_root(&out, &workspace).join("lang-plugins");
    std::fs::create_dir_all(&cache).expect("creating target/lang-plugins");
    let mut built = Vec::new();
    for guest in guests {
        // What the fingerprint reads is what makes the build script run again.
        for input in guest.toolchain.inputs().iter().chain([&guest.dir]) {
            println!("cargo:rerun-if-changed={}", workspace.join(input).display());
        }
        let key = fingerprint(&workspace, guest);
        let cached = cache.join(format!(
            "{}-{}-{key:016x}.wasm",
            guest.name,
            guest.toolchain.arg()
        ));
        if !cached.exists() {
            let partial = cached.with_extension("partial");
            let output = Command::new(workspace.join("sdk/toolchains/build"))
                .arg(guest.toolchain.arg())
                .arg(workspace.join(guest.dir))
                .arg(&partial)
                .output()
                .unwrap_or_else(|e| panic!("running sdk/toolchains/build: {e}"));
            assert!(
                output.status.success(),
                "building {} with {} failed:\n{}{}",
                guest.dir,
                guest.toolchain.arg(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            std::fs::rename(&partial, &cached).expect("keeping the built plugin");
        }
        built.push(crate::copy(&cached, guest.name, &out));
    }
    built
}

/// A hash of every file the build of `guest` reads, by path and content, and the
/// toolchain's name.
fn fingerprint(workspace: &Path, guest: &Guest<'_>) -> u64 {
    let mut files = Vec::new();
    for input in guest.toolchain.inputs().iter().chain([&guest.dir]) {
        collect(&workspace.join(input), &mut files);
    }
    files.sort();
    let mut hasher = DefaultHasher::new();
    hasher.write(guest.toolchain.arg().as_bytes());
    for file in files {
        let relative = file.strip_prefix(workspace).unwrap_or(&file);
        hasher.write(relative.to_string_lossy().as_bytes());
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        hasher.write_usize(bytes.len());
        hasher.write(&bytes);
    }
    hasher.finish()
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) {
    if path.is_file() {
        files.push(path.to_path_buf());
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        // Byte code and build output are not inputs.
        if name == "__pycache__"
            || name == "node_modules"
            || path.extension().is_some_and(|e| e == "wasm")
        {
            continue;
        }
        collect(&path, files);
    }
}
