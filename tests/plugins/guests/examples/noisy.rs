//! Logs `lines` lines and counts `names` distinct counter names on every request: the host
//! must cap both, so a plugin cannot flood the log or grow the metrics registry.

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};

#[derive(serde::Deserialize)]
struct Config {
    lines: u32,
    names: u32,
}
struct Noisy;
impl Plugin for Noisy {
    type Config = Config;
    fn on_request(config: &Config, _: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        for i in 0..config.lines {
            host::log(host::Level::Info, &format!("line {i}"));
        }
        for i in 0..config.names {
            host::count(&format!("name_{i}"), 1);
        }
        Ok(Action::Continue)
    }
}
export_plugin!(Noisy);
