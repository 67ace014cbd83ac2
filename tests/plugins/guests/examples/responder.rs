//! Answers every request itself with `status` and `body`: a short-circuit.

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};

#[derive(serde::Deserialize)]
struct Config {
    status: u16,
    #[serde(default)]
    body: String,
}
struct Responder;
impl Plugin for Responder {
    type Config = Config;
    fn on_request(config: &Config, _: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        Ok(Action::Respond(
            Reply::new(config.status)
                .header("x-answered-by", "responder")
                .text(&config.body),
        ))
    }
}
export_plugin!(Responder);
