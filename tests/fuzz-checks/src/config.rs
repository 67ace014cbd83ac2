//! The config loader: any text is parsed, validated and built into a runtime (routes,
//! upstreams, TLS, limits) or refused with diagnostics, never a panic.

use std::path::Path;

/// Parses `data` as a config file; when it parses and names no plugin (compiling
/// components per input would make the target too slow to find anything), builds it.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let file = match portcullis::config::parse(Path::new("fuzz.toml"), text) {
        Ok(file) => file,
        Err(e) => {
            let shown = e.to_string();
            assert!(!shown.is_empty(), "a refusal must say why");
            return;
        }
    };
    if file
        .config
        .routes
        .iter()
        .any(|r| !r.get_ref().plugins.is_empty())
    {
        return;
    }
    if let Err(e) = portcullis::runtime::Runtime::build(&file) {
        let shown = e.to_string();
        assert!(
            shown.contains("fuzz.toml"),
            "a config error names the file: {shown}"
        );
    }
}
