//! Loops forever in the request phase: must be stopped by its deadline. A request with an
//! `x-no-loop` header passes straight through (to test an instance after a loop).

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};

struct Looper;
impl Plugin for Looper {
    type Config = serde_json::Value;
    fn on_request(_: &Self::Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        if request.header("x-no-loop").is_some() {
            return Ok(Action::Continue);
        }
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
            if n == u64::MAX {
                request.set_header("x-never", "reached")?;
            }
        }
    }
}
export_plugin!(Looper);
