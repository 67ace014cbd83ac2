//! What [`export_plugin!`](crate::export_plugin) expands to call: config parsing (cached for
//! the life of the instance) and the phases.
//!
//! The config `check-config` parsed is kept: the gateway snapshots the instance of an
//! entry with `preinitialise` right after its config check, so every fresh instance made
//! from that snapshot starts with the parsed config in its memory instead of parsing it
//! per request.

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;

use crate::bindings::portcullis::plugin::types;
use crate::{Action, Phases, Plugin, Request, Response};

thread_local! {
    /// The parsed config of this instance. One instance serves one entry, so it never
    /// changes once parsed.
    static CONFIG: RefCell<Option<Rc<dyn Any>>> = const { RefCell::new(None) };
}

fn parse<P: Plugin>(text: &str) -> Result<P::Config, String> {
    serde_json::from_str(text).map_err(|e| format!("invalid config: {e}"))
}

fn config<P: Plugin>() -> Result<Rc<P::Config>, String> {
    if let Some(cached) = CONFIG.with(|c| c.borrow().clone())
        && let Ok(config) = cached.downcast::<P::Config>()
    {
        return Ok(config);
    }
    Ok(keep::<P>(parse::<P>(&crate::host::config())?))
}

/// Makes `config` this instance's config for the rest of its life.
fn keep<P: Plugin>(config: P::Config) -> Rc<P::Config> {
    let config = Rc::new(config);
    CONFIG.with(|c| *c.borrow_mut() = Some(Rc::clone(&config) as Rc<dyn Any>));
    config
}

pub fn check_config<P: Plugin>(text: &str) -> Result<Phases, String> {
    let result = parse::<P>(text).and_then(|config| {
        let phases = P::check(&config)?;
        keep::<P>(config);
        Ok(phases)
    });
    flush_output();
    result
}

pub fn on_request<P: Plugin>(request: &types::Request) -> Result<Action, String> {
    let result = config::<P>()
        .and_then(|config| P::on_request(&config, &mut Request::new(request)).map_err(|e| e.0));
    flush_output();
    result
}

pub fn on_response<P: Plugin>(response: &types::Response) -> Result<(), String> {
    let result = config::<P>()
        .and_then(|config| P::on_response(&config, &mut Response::new(response)).map_err(|e| e.0));
    flush_output();
    result
}

/// Hands what `print!` left in std's buffer to the gateway before the call returns, so that
/// it is logged under the request that wrote it (and not lost when a fresh instance goes).
/// Only a `wasm32-wasip2` build has a stdout; elsewhere std's is a sink.
fn flush_output() {
    #[cfg(target_os = "wasi")]
    {
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}
