//! Calls `url` (with `headers`, if any) through outbound HTTP and reports the result in the request header `x-fetch` (`status:N` or `error:...`), then continues. Pointed at a slow URL it is the slow plugin: it sleeps through a host import.

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};

#[derive(serde::Deserialize)]
struct Config {
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
}
struct Fetcher;
impl Plugin for Fetcher {
    type Config = Config;
    fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        let mut outgoing = http::OutgoingRequest::get(&config.url);
        outgoing.headers.clone_from(&config.headers);
        let outcome = match http::send(&outgoing) {
            Ok(response) => format!("status:{}", response.status),
            Err(e) => format!("error:{e:?}"),
        };
        let outcome: String = outcome
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .take(200)
            .collect();
        request.set_header("x-fetch", &outcome)?;
        Ok(Action::Continue)
    }
}
export_plugin!(Fetcher);
