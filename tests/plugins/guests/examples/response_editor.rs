//! In the response phase: sets `x-edited: yes` (and `x-subject` to the subject of the identity an earlier plugin attached, if any), maps status `from` to `to`, and replaces the body with `body` when given.

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};

#[derive(serde::Deserialize)]
struct Config {
    from: Option<u16>,
    to: Option<u16>,
    body: Option<String>,
}
struct ResponseEditor;
impl Plugin for ResponseEditor {
    type Config = Config;
    fn check(config: &Config) -> Result<Phases, String> {
        let mut phases = Phases::ON_RESPONSE;
        if config.body.is_some() {
            phases |= Phases::RESPONSE_BODY;
        }
        Ok(phases)
    }
    fn on_response(config: &Config, response: &mut Response<'_>) -> portcullis_sdk::Result<()> {
        response.set_header("x-edited", "yes")?;
        if let Some(subject) = response.identity().and_then(|i| i.subject) {
            response.set_header("x-subject", &subject)?;
        }
        if let (Some(from), Some(to)) = (config.from, config.to)
            && response.status() == from
        {
            response.set_status(to)?;
        }
        if let Some(body) = &config.body {
            response.set_body(body.as_bytes())?;
        }
        Ok(())
    }
}
export_plugin!(ResponseEditor);
