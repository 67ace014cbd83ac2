//! Pre-initialised entries (`preinitialise = true`): the entry's component is run once at
//! load, through its `check-config`, and its memories and globals are snapshotted into a
//! new component (`wasmtime-wizer`). Fresh instances of that component start with the
//! config already parsed, so a request pays for instantiation and its own work, not for
//! the set-up a plugin does with its config; the pooling allocator maps the snapshot's
//! memory copy-on-write when its data is dense enough (wasmtime copies a sparse image in
//! at each instance instead), so a larger initial heap mostly costs pages touched.
//!
//! It is opt-in because a snapshot is a component of its own: compiled once more (twice
//! with the instrumented copy, on an empty compile cache), and resident as one more copy
//! of the plugin's machine code per entry. Measured (BENCHMARKS.md): 20 routes
//! with distinct `transform` configs took 105 MiB instead of 52, for 4 µs less per fresh
//! `transform`; the built-ins' fresh cost is mostly not their config.
//!
//! The snapshot is taken after `check-config` because that is where every guest already
//! sees its config: the Rust SDK keeps the config it parsed there for the instance's
//! life, so nothing else is needed from the guest. A guest that keeps nothing there gets a
//! snapshot identical to its component in all but bytes, and costs what it did.
//!
//! What a snapshot cannot carry is refused here rather than served wrong: components that
//! wizer cannot instrument (nested components, a module instantiated twice, mutable
//! globals of reference types); the entry then starts from the component itself, and the
//! reason is logged once at load. `check-config` is given no handle of the contract, so
//! the state that wizer snapshots, memories and globals, is all the instance has; a WASI
//! stream a guest opens there (to print) is not carried over, and a guest that kept one
//! would find it gone in its instances. What
//! `check-config` read from the host (a cache entry, a key set it verified against) is
//! frozen into the snapshot: outbound HTTP is refused in the snapshot run, and each entry
//! gets a snapshot of its own, made under its own grants and budgets, so nothing one entry
//! may read reaches another.
//!
//! Whatever a guest draws at random in `check-config` is the same in every instance made
//! from its snapshot: the SDK's guide says to draw per request instead. Those bytes come
//! from [`Seeded`], a stream keyed by a secret of the engine's and by the component and its
//! config, so that a restart makes the same snapshot and finds it in the compile cache.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use wasmtime::Store;
use wasmtime::component::{Component, Instance, Lift, Linker, WasmList};
use wasmtime_wizer::{ComponentContext, ComponentInstanceState, Wizer};

use super::bindings::PluginFull;
use super::failure::error_text;
use super::state::PluginState;

/// The random bytes of a snapshot's `check-config`: HMAC-SHA256 blocks under a key derived
/// from the engine's snapshot key, the component's bytes and the config, counter-indexed.
pub(super) struct Seeded {
    key: aws_lc_rs::hmac::Key,
    block: u64,
}

impl std::fmt::Debug for Seeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seeded")
            .field("block", &self.block)
            .finish_non_exhaustive()
    }
}

impl Seeded {
    pub(super) fn new(engine_key: &[u8; 32], bytes: &[u8], config: &str) -> Self {
        use aws_lc_rs::{digest, hmac};
        let mut input = digest::Context::new(&digest::SHA256);
        input.update(digest::digest(&digest::SHA256, bytes).as_ref());
        input.update(digest::digest(&digest::SHA256, config.as_bytes()).as_ref());
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, engine_key),
            input.finish().as_ref(),
        );
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            block: 0,
        }
    }

    /// Another keyed stream, drawn from this one: as repeatable, and independent of it.
    pub(super) fn fork(&mut self) -> Self {
        let mut key = [0u8; 32];
        self.fill(&mut key);
        Self {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key),
            block: 0,
        }
    }

    pub(super) fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(32) {
            let block = aws_lc_rs::hmac::sign(&self.key, &self.block.to_le_bytes());
            self.block += 1;
            chunk.copy_from_slice(&block.as_ref()[..chunk.len()]);
        }
    }
}

/// A component instrumented for a snapshot, compiled: what [`preinitialise`] runs.
pub(super) struct Instrumented<'a> {
    cx: ComponentContext<'a>,
    component: Component,
}

/// Instruments `bytes` and compiles the result. Compiling takes as long as compiling the
/// component itself (seconds for a large one, once per load with an empty compile cache),
/// so it happens before the config check's deadline is armed.
pub(super) fn instrument<'a>(
    engine: &wasmtime::Engine,
    bytes: &'a [u8],
) -> Result<Instrumented<'a>, String> {
    // As for the snapshot below: wizer asserts on shapes it does not expect.
    let (cx, instrumented) = std::panic::catch_unwind(AssertUnwindSafe(|| {
        Wizer::new().instrument_component(bytes)
    }))
    .map_err(|_| "it cannot be snapshotted (wizer failed on it)".to_owned())?
    .map_err(|e| format!("it cannot be snapshotted: {}", error_text(&e)))?;
    let component = Component::new(engine, &instrumented)
        .map_err(|e| format!("its instrumented copy did not compile: {}", error_text(&e)))?;
    Ok(Instrumented { cx, component })
}

/// Runs `check-config` with `config` in an instance of `instrumented` and returns the
/// component snapshotted after it. `store` carries the entry's limits and a deadline.
pub(super) async fn preinitialise(
    store: &mut Store<PluginState>,
    linker: &Linker<PluginState>,
    instrumented: Instrumented<'_>,
    config: &str,
) -> Result<Vec<u8>, String> {
    let Instrumented { cx, component } = instrumented;
    let instance = linker
        .instantiate_async(&mut *store, &component)
        .await
        .map_err(|e| format!("its instrumented copy did not start: {}", error_text(&e)))?;
    let bindings = PluginFull::new(&mut *store, &instance)
        .map_err(|e| format!("its instrumented copy lost its exports: {}", error_text(&e)))?;
    bindings
        .portcullis_plugin_handler()
        .call_check_config(&mut *store, config)
        .await
        .map_err(|e| format!("its config check trapped: {}", error_text(&e)))?
        .map_err(|e| format!("its config check failed: {e}"))?;
    // The accessors hand whole memories to the host: more than a request's hostcall fuel.
    store.set_hostcall_fuel(usize::MAX);
    let mut state = Access {
        store,
        instance,
        failed: None,
    };
    // wizer asserts on state it could not read; a snapshot that fails must cost this entry
    // its snapshot, not the loader (and with it every entry of the config).
    let snapshot = AssertUnwindSafe(Wizer::new().snapshot_component(&cx, &mut state))
        .catch_unwind()
        .await;
    match (snapshot, state.failed) {
        (_, Some(e)) => Err(format!("its state could not be read: {e}")),
        (Err(_), None) => Err("its snapshot failed".into()),
        (Ok(Err(e)), None) => Err(format!("its snapshot failed: {}", error_text(&e))),
        (Ok(Ok(snapshot)), None) => Ok(snapshot),
    }
}

/// Reads an instrumented instance's memories and globals through the accessor functions
/// wizer added to it. The trait cannot fail, so the first error is kept and the snapshot
/// refused after the fact.
struct Access<'a> {
    store: &'a mut Store<PluginState>,
    instance: Instance,
    failed: Option<String>,
}

impl Access<'_> {
    async fn call<R: Lift + Send + Sync + 'static>(
        &mut self,
        instance: &str,
        func: &str,
    ) -> Option<R> {
        if self.failed.is_some() {
            return None;
        }
        let result = async {
            let (_, exported) = self
                .instance
                .get_export(&mut *self.store, None, instance)
                .ok_or_else(|| format!("no `{instance}` export"))?;
            let (_, index) = self
                .instance
                .get_export(&mut *self.store, Some(&exported), func)
                .ok_or_else(|| format!("no `{instance}#{func}` export"))?;
            let typed = self
                .instance
                .get_typed_func::<(), (R,)>(&mut *self.store, index)
                .map_err(|e| error_text(&e))?;
            typed
                .call_async(&mut *self.store, ())
                .await
                .map(|(r,)| r)
                .map_err(|e| error_text(&e))
        }
        .await;
        result.map_err(|e| self.failed = Some(e)).ok()
    }
}

impl ComponentInstanceState for Access<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        match self.call::<WasmList<u8>>(instance, func).await {
            Some(list) => contents(list.as_le_slice(&*self.store)),
            None => contents(&[]),
        }
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func).await.unwrap_or_default()
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func).await.unwrap_or_default()
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call::<f32>(instance, func)
            .await
            .map_or(0, f32::to_bits)
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call::<f64>(instance, func)
            .await
            .map_or(0, f64::to_bits)
    }
}

/// A snapshot's WASI random (`wasi.rs`): the guest's draws during `check-config` come from
/// the keyed stream too, so that the snapshot is the same at every start.
impl rand_core::TryRng for Seeded {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0u8; 4];
        self.fill(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0u8; 8];
        self.fill(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.fill(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(component (core module $m) (core instance (instantiate $m)) (core instance
    /// (instantiate $m)))`: valid, and a shape wizer does not snapshot.
    const TWICE: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, // component preamble
        0x01, 0x08, 0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // an empty core module
        0x02, 0x07, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // two instances of it
    ];

    #[test]
    fn snapshot_bytes_repeat_for_the_same_key_component_and_config_only() {
        let draw = |key: &[u8; 32], bytes: &[u8], config: &str| {
            let mut seeded = Seeded::new(key, bytes, config);
            let mut out = [0; 40];
            seeded.fill(&mut out);
            let mut more = [0; 8];
            seeded.fill(&mut more);
            (out, more)
        };
        let first = draw(&[1; 32], b"component", "{}");
        assert_eq!(first, draw(&[1; 32], b"component", "{}"));
        assert_ne!(first.0[..8], first.1, "each draw moves the stream on");
        assert_ne!(first, draw(&[2; 32], b"component", "{}"));
        assert_ne!(first, draw(&[1; 32], b"other", "{}"));
        assert_ne!(first, draw(&[1; 32], b"component", "{\"a\":1}"));
    }

    #[test]
    fn a_component_wizer_cannot_snapshot_is_refused_with_its_reason() {
        let engine = wasmtime::Engine::default();
        Component::new(&engine, TWICE).expect("a valid component");
        let refused = instrument(&engine, TWICE).err().expect("refused");
        assert!(
            refused.starts_with("it cannot be snapshotted") && refused.contains("at most once"),
            "{refused}"
        );
    }
}
