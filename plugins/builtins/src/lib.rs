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
    /// Runs on a pool of warm instances when its entry sets no `reuse` of its own: its
    /// per-instance start is costly (`validate` compiles its OpenAPI document, about 1 ms,
    /// against ~10 µs for a fresh no-op instance), and it keeps nothing of a request. An
    /// entry that wants an instance per request sets `reuse = { max_requests = 1 }`.
    pub reuse_by_default: bool,
}

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The built-in plugin of this name.
pub fn find(name: &str) -> Option<&'static Builtin> {
    ALL.iter().find(|b| b.name == name)
}

/// The built-ins that attach a verified identity (`set-identity`). When such an entry
/// cannot run for want of capacity, the gateway answers 503 whatever its failure policy:
/// an overloaded gateway must never let requests through unauthenticated. Entries of
/// other plugins are recognised the first time they attach an identity.
pub const IDENTITY_PROVIDERS: &[&str] = &["jwt-auth", "key-auth"];
