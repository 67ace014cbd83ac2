//! Panics in the request phase (a trap).

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};

struct Trapper;
impl Plugin for Trapper {
    type Config = serde_json::Value;
    fn on_request(_: &Self::Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        if request.path() != "/never-matches" {
            panic!("the trapper plugin traps on purpose");
        }
        Ok(Action::Continue)
    }
}
export_plugin!(Trapper);
