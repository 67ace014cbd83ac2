//! The plugins shipped inside the gateway: each crate under `plugins/` built as a
//! component by this crate's build script and embedded in the binary, so a route names
//! them (`plugin = "key-auth"`) without any file to deploy. Each plugin's README documents
//! its config.

/// A plugin shipped with the gateway.
#[derive(Debug)]
pub struct Builtin {
    /// The name routes use.
    pub name: &'static str,
    /// The component's bytes (compiled by the gateway, and cached like any plugin).
    pub component: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The built-in plugin of this name.
pub fn find(name: &str) -> Option<&'static Builtin> {
    ALL.iter().find(|b| b.name == name)
}
