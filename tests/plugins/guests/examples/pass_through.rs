//! Continues without looking at anything: the no-op whose cost is the plugin overhead.

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};

struct PassThrough;
impl Plugin for PassThrough {
    type Config = serde_json::Value;
}
export_plugin!(PassThrough);
