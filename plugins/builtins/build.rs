//! Builds every built-in plugin as a WASI-free component and embeds it (see `src/lib.rs`).

use std::path::PathBuf;

use portcullis_plugin_builder::{Artifacts, build};

/// Built-in name, package, folder under `plugins/`, and whether it runs on warm instances
/// unless its entry says otherwise (see `Builtin::reuse_by_default`).
const BUILTINS: &[(&str, &str, &str, bool)] = &[
    ("authz", "portcullis-plugin-authz", "authz", false),
    ("jwt-auth", "portcullis-plugin-jwt-auth", "jwt-auth", false),
    ("key-auth", "portcullis-plugin-key-auth", "key-auth", false),
    (
        "transform",
        "portcullis-plugin-transform",
        "transform",
        false,
    ),
    ("validate", "portcullis-plugin-validate", "validate", true),
];

fn main() {
    let artifacts: Vec<Artifacts<'_>> = BUILTINS
        .iter()
        .map(|(name, package, _, _)| Artifacts::Lib { package, name })
        .collect();
    let watched: Vec<String> = BUILTINS
        .iter()
        .map(|(_, _, dir, _)| format!("plugins/{dir}"))
        .collect();
    let watched: Vec<&str> = watched.iter().map(String::as_str).collect();
    let built = build(&artifacts, &watched);
    let entries: Vec<String> = built
        .iter()
        .zip(BUILTINS)
        .map(|(b, (_, _, _, reuse_by_default))| {
            format!(
                "    Builtin {{ name: {:?}, component: include_bytes!({:?}), reuse_by_default: {reuse_by_default} }},\n",
                b.name,
                b.path.display().to_string()
            )
        })
        .collect();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    std::fs::write(
        out.join("builtins.rs"),
        format!(
            "/// Every built-in plugin, by name.\npub static ALL: &[Builtin] = &[\n{}];\n",
            entries.concat()
        ),
    )
    .expect("writing builtins.rs");
}
