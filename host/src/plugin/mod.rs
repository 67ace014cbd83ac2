//! Plugins: WebAssembly components that run per route, in order, in sandboxes.
//!
//! - [`bindings`]: the host side of the WIT contract in `wit/`;
//! - [`engine`]: the one wasmtime engine, its compilation cache and epoch ticker;
//! - [`entry`]: a pre-linked plugin with its budgets, grants and failure policy, and the
//!   instances (fresh per request, or a warm pool) it runs on;
//! - [`pipeline`]: a route's entries, run in order for requests and in reverse for
//!   responses;
//! - [`imports`] and [`services`]: what plugins may call, and the shared services behind it;
//! - [`jwks`] and [`jws`]: cached key sets, and native signature verification with them;
//! - [`failure`]: how a call fails, and the entry's failure policy;
//! - [`config`]: the `[plugins]` table and each route's `[[routes.plugins]]` entries;
//! - [`state`]: what one store holds;
//! - [`stage`]: the pipeline's two stages of the request path;
//! - `snapshot`: entries with `preinitialise`, snapshotted at load after their config check;
//! - `wasi`: the sandboxed WASI 0.2 each instance gets when its guest imports it.
//!
//! [`Loader`] turns the config's `[[routes.plugins]]` into pipelines: it compiles each
//! component once (or loads it from the on-disk cache), checks its imports against the
//! entry's grants, pre-links it, and calls its `check-config`; an entry with
//! `preinitialise` is then snapshotted after its config check, so its fresh instances start
//! with the config parsed.

pub mod bindings;
pub mod config;
pub mod cpu;
pub mod engine;
pub mod entry;
pub mod failure;
pub mod home;
pub mod imports;
pub mod info;
pub mod jwks;
pub mod jws;
pub mod pipeline;
pub mod services;
mod snapshot;
pub mod stage;
pub mod state;
mod wasi;
mod wasi_http;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::component::Component;

pub use engine::{EngineSettings, PluginEngine};
pub use entry::{
    Budgets, Entry, EntryInfo, FailurePolicy, Grants, HostGrant, InstanceMode, PluginFailure,
};
pub use pipeline::{Pipeline, PipelineSettings, RequestOutcome, ResponsePhase};
pub use services::HostServices;
pub use state::{PluginRequest, PluginResponse};

use bindings::PluginFullPre;
use state::PluginState;

/// Where a plugin comes from.
#[derive(Debug, Clone)]
pub enum PluginSource {
    /// A component file.
    File(PathBuf),
    /// A plugin shipped inside the gateway (`plugins/`).
    Builtin(&'static portcullis_builtins::Builtin),
}

/// Everything needed to build one entry.
#[derive(Debug)]
pub struct EntrySpec {
    pub source: PluginSource,
    pub info: EntryInfo,
    pub failure: FailurePolicy,
    pub mode: InstanceMode,
    /// Fresh instances start from a snapshot taken after `check-config` (`snapshot.rs`).
    pub preinitialise: bool,
}

/// Loads plugins for one config: each distinct component is compiled once, and each
/// `preinitialise` entry snapshotted after its config check.
#[derive(Debug)]
pub struct Loader {
    engine: PluginEngine,
    /// Components by file path or built-in name: one several entries use is read, parsed
    /// and compiled once.
    compiled: HashMap<String, Compiled>,
}

/// A component as loaded: compiled, its bytes (for snapshots), and the names it imports
/// (checked against each entry's grants).
#[derive(Debug)]
struct Compiled {
    component: Component,
    bytes: Arc<[u8]>,
    imports: Vec<String>,
}

/// An entry that linked, waiting for its config check.
struct Linked {
    info: Arc<EntryInfo>,
    pre: PluginFullPre<PluginState>,
    failure: FailurePolicy,
    mode: InstanceMode,
    preinitialise: bool,
    /// What a snapshot is made from and linked with.
    bytes: Arc<[u8]>,
    linker: wasmtime::component::Linker<PluginState>,
}

/// A loaded entry, or why it could not be loaded; the error text names the problem and
/// what to do, for the config diagnostics.
pub type Loaded = Result<Arc<Entry>, String>;

impl Loader {
    pub fn new(engine: PluginEngine) -> Self {
        Self {
            engine,
            compiled: HashMap::new(),
        }
    }

    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// Loads every entry, calling the config checks of all of them together.
    pub fn load_all(&mut self, specs: Vec<EntrySpec>) -> Vec<Loaded> {
        let linked: Vec<Result<Linked, String>> =
            specs.into_iter().map(|spec| self.link(spec)).collect();
        let engine = self.engine.clone();
        // `check-config` runs in a sandbox like any call: async, with its deadline. Config
        // loading is synchronous, so it gets a small runtime of its own on a helper thread
        // (which also works when the caller already runs inside tokio).
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                        .map_err(|e| format!("plugin loader runtime: {e}"));
                    let rt = match rt {
                        Ok(rt) => rt,
                        Err(e) => return linked.iter().map(|_| Err(e.clone())).collect(),
                    };
                    rt.block_on(async {
                        let checks = linked.into_iter().map(|l| {
                            let engine = engine.clone();
                            async move {
                                let l = l?;
                                let phases = Entry::check_config(&l.pre, &engine, &l.info)
                                    .await
                                    .map_err(|e| format!("plugin `{}`: {e}", l.info.plugin))?;
                                Ok((l, phases))
                            }
                        });
                        let checked = futures_util::future::join_all(checks).await;
                        // One at a time: each snapshot compiles its component twice, and
                        // in parallel those compilations would only contend for the cores.
                        let mut loaded = Vec::with_capacity(checked.len());
                        for entry in checked {
                            loaded.push(match entry {
                                Ok((mut l, phases)) => {
                                    if l.preinitialise && l.mode == InstanceMode::Fresh {
                                        l.pre = snapshot_of(&engine, &l).await;
                                    }
                                    Ok(Arc::new(Entry::new(
                                        l.info,
                                        phases,
                                        l.failure,
                                        l.mode,
                                        l.pre,
                                        engine.clone(),
                                    )))
                                }
                                Err(e) => Err(e),
                            });
                        }
                        loaded
                    })
                })
                .join()
                // A panicked loader yields nothing; the caller then refuses every entry.
                .unwrap_or_else(|_| Vec::new())
        })
    }

    /// The entry's component, compiled once per load; its imports are checked against
    /// `grants` first, from the bytes, so a component refused for what it imports is
    /// refused before it costs a compile (seconds for an interpreter's component).
    fn component(
        &mut self,
        source: &PluginSource,
        grants: &Grants,
    ) -> Result<(Component, Arc<[u8]>), String> {
        let key = match source {
            PluginSource::File(path) => path.display().to_string(),
            PluginSource::Builtin(b) => format!("built-in {}", b.name),
        };
        if let Some(c) = self.compiled.get(&key) {
            check_imports(&c.imports, grants)?;
            return Ok((c.component.clone(), Arc::clone(&c.bytes)));
        }
        let bytes: Arc<[u8]> = match source {
            PluginSource::File(path) => std::fs::read(path)
                .map_err(|e| format!("cannot be read from `{}`: {e}", path.display()))?
                .into(),
            PluginSource::Builtin(b) => Arc::from(b.component),
        };
        let imports = component_imports(&bytes)?;
        check_imports(&imports, grants)?;
        let component = self.engine.compile(&bytes).map_err(|e| match source {
            PluginSource::File(path) => {
                // componentize-qjs without `--sync` uses the component model's async ABI,
                // which the engine leaves off (it costs every call; `engine.rs`).
                let flag = if e.contains("component model async") {
                    "; a componentize-qjs build needs `--sync`"
                } else {
                    ""
                };
                format!("is not a valid component (`{}`): {e}{flag}", path.display())
            }
            PluginSource::Builtin(_) => format!("(built in) did not compile: {e}"),
        })?;
        self.compiled.insert(
            key,
            Compiled {
                component: component.clone(),
                bytes: Arc::clone(&bytes),
                imports,
            },
        );
        Ok((component, bytes))
    }

    fn link(&mut self, spec: EntrySpec) -> Result<Linked, String> {
        let plugin = spec.info.plugin.clone();
        let (component, bytes) = self
            .component(&spec.source, &spec.info.grants)
            .map_err(|e| format!("plugin `{plugin}` {e}"))?;
        let linker = imports::linker(self.engine.engine(), &spec.info.grants)
            .map_err(|e| format!("plugin `{plugin}`: {e}"))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(PluginFullPre::new)
            .map_err(|e| {
                format!(
                    "plugin `{plugin}` does not fit the portcullis:plugin@0.1.0 contract: {}",
                    failure::error_text(&e)
                )
            })?;
        Ok(Linked {
            info: Arc::new(spec.info),
            pre,
            failure: spec.failure,
            mode: spec.mode,
            preinitialise: spec.preinitialise,
            bytes,
            linker,
        })
    }
}

/// The entry's pre-linked snapshot; the entry's own pre-linked component when no snapshot
/// can be made, saying why. One per entry, never shared: what `check-config` read is in the
/// snapshot, and another entry with the same config may hold other grants and budgets.
async fn snapshot_of(engine: &PluginEngine, l: &Linked) -> PluginFullPre<PluginState> {
    let component = match Entry::snapshot(engine, &l.linker, &l.bytes, &l.info).await {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::info!(
                route = %l.info.route,
                plugin = %l.info.plugin,
                "fresh instances are not pre-initialised: {e}; each starts from the \
                 component itself (set `reuse` on the entry to keep warm instances)"
            );
            None
        }
    };
    let Some(component) = component else {
        return l.pre.clone();
    };
    match l
        .linker
        .instantiate_pre(&component)
        .and_then(PluginFullPre::new)
    {
        Ok(pre) => pre,
        Err(e) => {
            tracing::info!(
                route = %l.info.route,
                plugin = %l.info.plugin,
                "fresh instances are not pre-initialised: its snapshot did not link: {}",
                failure::error_text(&e)
            );
            l.pre.clone()
        }
    }
}

/// Refuses imports the entry was not granted, saying which grant is missing, and imports
/// the gateway never provides (`wasi:http`'s incoming handler among them; its outgoing
/// handler is served under the `http` grant), naming every one at once.
fn check_imports(imports: &[String], grants: &Grants) -> Result<(), String> {
    let mut refused = Vec::new();
    let mut grants_missing = Vec::new();
    for name in imports {
        let name = name.as_str();
        let unversioned = name.split('@').next().unwrap_or(name);
        if matches!(
            unversioned,
            "portcullis:plugin/types" | "portcullis:plugin/host"
        ) || wasi::SERVED.contains(&unversioned)
            || wasi_http::SERVED.contains(&unversioned)
        {
            continue;
        }
        let Some((_, grant, example)) = imports::CAPABILITIES
            .iter()
            .find(|(iface, _, _)| *iface == unversioned)
        else {
            refused.push(format!("`{name}`"));
            continue;
        };
        let granted = match *grant {
            "http" => !grants.http.is_empty(),
            "cache" => grants.cache.is_some(),
            _ => grants.crypto,
        };
        if !granted {
            grants_missing.push(format!(
                "imports `{name}` but this entry is not granted `{grant}`; add `{example}` to \
                 the entry if it should have it"
            ));
        }
    }
    let mut problems = grants_missing;
    if !refused.is_empty() {
        // A componentize-js build made for serving HTTP (its fetch event) imports more of
        // WASI HTTP than the outgoing handler.
        let flag = if refused.iter().any(|r| r.starts_with("`wasi:http/")) {
            "; a componentize-js build leaves it out with `-d http fetch-event`"
        } else {
            ""
        };
        problems.insert(
            0,
            format!(
                "imports {}, which Portcullis does not provide to plugins (of WASI 0.2, \
                 plugins get io, clocks, random, cli, filesystem and sockets with \
                 nothing to reach, and `wasi:http/outgoing-handler`, which like the \
                 `portcullis:plugin/outbound-http` import reaches only the hosts of the \
                 `http` grant){flag}",
                refused.join(", ")
            ),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The parser's complaint on one line (some of its messages span several).
fn invalid(e: wasmparser::BinaryReaderError) -> String {
    let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    format!(
        "is not a valid component: {message} (at byte {})",
        e.offset()
    )
}

/// The names a component imports (its own, not those of the components nested in it), read
/// from its binary without compiling it.
fn component_imports(bytes: &[u8]) -> Result<Vec<String>, String> {
    use wasmparser::{Parser, Payload};
    let mut names = Vec::new();
    // Nested modules and components each open with a header and close with an end.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(invalid)?;
        match payload {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != wasmparser::Encoding::Component {
                    return Err("is a core WebAssembly module, not a component: wrap it \
                         with `wasm-tools component new` (or build for wasm32-wasip2)"
                        .to_owned());
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(invalid)?;
                    // Names come from an unchecked binary and end up on an operator's
                    // terminal: control characters are shown escaped.
                    names.push(import.name.name.escape_debug().to_string());
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component that imports each of `names` as an empty instance, and nothing else.
    fn importing(names: &[&str]) -> Vec<u8> {
        let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
        // Type section: one instance type with no declarations.
        bytes.extend_from_slice(&[0x07, 0x03, 0x01, 0x42, 0x00]);
        let mut section = vec![names.len() as u8];
        for name in names {
            section.push(0x00);
            section.push(name.len() as u8);
            section.extend_from_slice(name.as_bytes());
            // An instance, of type 0.
            section.extend_from_slice(&[0x05, 0x00]);
        }
        bytes.push(0x0a);
        leb128(&mut bytes, section.len());
        bytes.extend_from_slice(&section);
        bytes
    }

    fn leb128(out: &mut Vec<u8>, mut n: usize) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    #[test]
    fn the_wasi_a_toolchain_imports_is_served() {
        let names = [
            "portcullis:plugin/types@0.1.0",
            "wasi:cli/stdout@0.2.9",
            "wasi:filesystem/preopens@0.2.12",
            "wasi:sockets/tcp@0.2.9",
            "wasi:random/insecure-seed@0.2.6",
            // StarlingMonkey's default build: linked, every request refused.
            "wasi:http/types@0.2.10",
            "wasi:http/outgoing-handler@0.2.10",
        ];
        let component = importing(&names);
        assert_eq!(
            component_imports(&component),
            Ok(names.map(String::from).to_vec())
        );
        let imports = component_imports(&component).expect("parsed");
        assert_eq!(check_imports(&imports, &Grants::default()), Ok(()));
    }

    #[test]
    fn every_refused_import_is_named_at_once_with_the_flag_that_drops_it() {
        let component = importing(&[
            "wasi:http/incoming-handler@0.2.10",
            "wasi:keyvalue/store@0.2.0",
            "portcullis:plugin/cache@0.1.0",
            "wasi:cli/stdout@0.2.12",
        ]);
        let imports = component_imports(&component).expect("parsed");
        let error = check_imports(&imports, &Grants::default()).expect_err("refused");
        assert!(
            error.starts_with(
                "imports `wasi:http/incoming-handler@0.2.10`, `wasi:keyvalue/store@0.2.0`, which"
            ),
            "{error}"
        );
        assert!(error.contains("-d http fetch-event"), "{error}");
        assert!(
            error.contains("not granted `cache`; add `grants.cache"),
            "{error}"
        );
        assert!(!error.contains("wasi:cli"), "{error}");
    }

    #[test]
    fn control_characters_in_an_import_name_are_shown_escaped() {
        let component = importing(&["evil:x/y\u{1b}[2K\rok\n"]);
        let imports = component_imports(&component).expect("parsed");
        let error = check_imports(&imports, &Grants::default()).expect_err("refused");
        assert!(error.contains("`evil:x/y\\u{1b}[2K\\rok\\n`"), "{error}");
        assert!(!error.chars().any(char::is_control), "{error:?}");
    }

    #[test]
    fn a_core_module_or_garbage_is_refused_before_compiling() {
        let module = b"\0asm\x01\x00\x00\x00";
        let error = component_imports(module).expect_err("a module");
        assert!(error.contains("wasm-tools component new"), "{error}");
        let error = component_imports(b"not wasm at all").expect_err("garbage");
        assert!(error.starts_with("is not a valid component: "), "{error}");
        assert!(!error.contains('\n'), "one line: {error}");
    }
}
