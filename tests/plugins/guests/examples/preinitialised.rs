//! Answers each request itself, saying in `x-checked` whether its instance had run
//! `check-config` before the request (`yes` for an instance made from the snapshot of an
//! entry with `preinitialise`, `no` for one made from the component itself), and in `x-random` eight bytes
//! drawn from the host for this request.

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};

use std::sync::atomic::{AtomicBool, Ordering};
static CHECKED: AtomicBool = AtomicBool::new(false);
struct Preinitialised;
impl Plugin for Preinitialised {
    type Config = serde_json::Value;
    fn check(_: &Self::Config) -> Result<Phases, String> {
        CHECKED.store(true, Ordering::Relaxed);
        Ok(Phases::ON_REQUEST)
    }
    fn on_request(_: &Self::Config, _: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        let checked = if CHECKED.load(Ordering::Relaxed) {
            "yes"
        } else {
            "no"
        };
        let random: String = host::random_bytes(8)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Action::Respond(
            Reply::new(200)
                .header("x-checked", checked)
                .header("x-random", &random)
                .text("ok"),
        ))
    }
}
export_plugin!(Preinitialised);
