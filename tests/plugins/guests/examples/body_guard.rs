//! Reads the request body and answers 422 when it contains `forbidden`; otherwise continues and records the body length in `x-body-length`.

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};

#[derive(serde::Deserialize)]
struct Config {
    forbidden: String,
}
struct BodyGuard;
impl Plugin for BodyGuard {
    type Config = Config;
    fn check(_: &Config) -> Result<Phases, String> {
        Ok(Phases::ON_REQUEST | Phases::REQUEST_BODY)
    }
    fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        let body = request.body().unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        if text.contains(&config.forbidden) {
            return Ok(Action::Respond(
                Reply::new(422).text("request body refused"),
            ));
        }
        request.set_header("x-body-length", &body.len().to_string())?;
        Ok(Action::Continue)
    }
}
export_plugin!(BodyGuard);
