//! Replies with a body of `bytes` bytes: past its `body_bytes` budget, the reply must be refused.

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};

#[derive(serde::Deserialize)]
struct Config {
    bytes: usize,
}
struct Oversized;
impl Plugin for Oversized {
    type Config = Config;
    fn on_request(config: &Config, _: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        let mut reply = Reply::new(200);
        reply.body = vec![b'x'; config.bytes];
        Ok(Action::Respond(reply))
    }
}
export_plugin!(Oversized);
