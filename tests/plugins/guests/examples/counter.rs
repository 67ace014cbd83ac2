//! Counts the requests its instance has served in a global and reports it in `x-instance-count`: 1 every time with fresh instances, rising in reuse mode.
//!
//! With `config.leak_kib`, each request also keeps that many KiB for the instance's life,
//! as a garbage-collected heap that only grows does, and reports the instance's memory in
//! `x-memory-pages` (64 KiB each).

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};

use std::sync::atomic::{AtomicU64, Ordering};
static SERVED: AtomicU64 = AtomicU64::new(0);
struct Counter;
impl Plugin for Counter {
    type Config = serde_json::Value;
    fn on_request(
        config: &Self::Config,
        request: &mut Request<'_>,
    ) -> portcullis_sdk::Result<Action> {
        let n = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(kib) = config.get("leak_kib").and_then(serde_json::Value::as_u64) {
            // Kept where the optimiser cannot see that nothing reads it.
            let kept = std::hint::black_box(vec![1u8; kib as usize * 1024]);
            std::mem::forget(kept);
            #[cfg(target_arch = "wasm32")]
            request.set_header(
                "x-memory-pages",
                &core::arch::wasm32::memory_size(0).to_string(),
            )?;
        }
        request.set_header("x-instance-count", &n.to_string())?;
        host::count("served", 1);
        Ok(Action::Continue)
    }
}
export_plugin!(Counter);
