//! Appends its `tag` to the request header `x-trace` and, in the response phase, to the response header `x-trace`: a chain of taggers shows the order of both phases. Also sets any `set` headers on the request and removes `remove` ones.

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};

#[derive(serde::Deserialize)]
struct Config {
    tag: String,
    #[serde(default)]
    set: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    remove: Vec<String>,
}
struct Tagger;
impl Plugin for Tagger {
    type Config = Config;
    fn check(config: &Config) -> Result<Phases, String> {
        if config.tag.is_empty() {
            return Err("`tag` must not be empty".into());
        }
        Ok(Phases::ON_REQUEST | Phases::ON_RESPONSE)
    }
    fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        request.append_header("x-trace", &config.tag)?;
        for (name, value) in &config.set {
            request.set_header(name, value)?;
        }
        for name in &config.remove {
            request.remove_header(name)?;
        }
        Ok(Action::Continue)
    }
    fn on_response(config: &Config, response: &mut Response<'_>) -> portcullis_sdk::Result<()> {
        response.append_header("x-trace", &config.tag)?;
        Ok(())
    }
}
export_plugin!(Tagger);
