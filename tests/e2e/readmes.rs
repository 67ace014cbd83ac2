//! Each built-in plugin's README example is a config the plugin accepts at load, so the
//! documentation cannot drift from the code.

use crate::support::{LISTENER, build_error};
use crate::validate::petstore_path;

const PLUGINS: &str = "[plugins]\nmax_instances = 32\ncache_dir = \"{dir}/cache\"\n";

/// Files the examples name, and the repository file that stands in for each.
fn stand_ins() -> [(&'static str, String); 1] {
    [(
        "\"openapi/petstore.json\"",
        format!("\"{}\"", petstore_path()),
    )]
}

#[test]
fn builtin_readme_examples_load() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let mut checked = Vec::new();
    for name in ["authz", "jwt-auth", "key-auth", "transform", "validate"] {
        let readme = std::fs::read_to_string(root.join(name).join("README.md")).expect("README");
        for block in readme
            .split("```toml\n")
            .skip(1)
            .filter_map(|r| r.split("```").next())
        {
            if !block.contains("[[routes.plugins]]") {
                continue;
            }
            let mut block = block.to_owned();
            for (file, stand_in) in stand_ins() {
                block = block.replace(file, &stand_in);
            }
            if block.contains("files =") && !block.contains(&petstore_path()) {
                // Examples of files the repository does not have (key-auth's consumers).
                continue;
            }
            let config = format!(
                "version = 1\n{LISTENER}{PLUGINS}[[routes]]\nid = \"doc\"\nrespond = {{ body = \"x\" }}\n{block}"
            );
            if let Some(e) = build_error(&config) {
                panic!("{name} README example does not load:\n{e}\n{block}");
            }
            checked.push(name);
        }
    }
    assert_eq!(
        checked,
        ["authz", "jwt-auth", "key-auth", "transform", "validate"],
        "one example per plugin"
    );
}
