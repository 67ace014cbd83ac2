//! Counts the requests its instance has served in a global and reports it in `x-instance-count`: 1 every time with fresh instances, rising in reuse mode.

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
    fn on_request(_: &Self::Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        let n = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
        request.set_header("x-instance-count", &n.to_string())?;
        host::count("served", 1);
        Ok(Action::Continue)
    }
}
export_plugin!(Counter);
