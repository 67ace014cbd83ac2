//! Turning a parsed config into the live structures the request path uses.
//!
//! Each stage builds its own live form from its own section (`ListenerSpec::build`,
//! `Upstream::build`, `Route::build`, ...); this module keeps what resolves across
//! sections: routes that name upstreams and rate-limit policies, and the plugin
//! pipelines (`plugins.rs`) that need the process-wide `[plugins]` table and each route.
//! Every check reports through [`Diagnostics`] with the span of the offending value, so
//! `portcullis validate` (which builds and throws away) and `portcullis run` (which
//! builds and serves) can never disagree.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, ConfigFile};
use crate::plugin::HostServices;
use crate::policy::RateLimitPolicy;
use crate::router::{Route, Router};
use crate::telemetry::{HeaderRedactor, Metrics};
use crate::upstream::Upstream;
use plugins::PluginBuilder;

pub use crate::listener::config::ListenerSpec;

mod plugins;

/// Everything a running gateway needs, built from one config.
#[derive(Debug)]
pub struct Runtime {
    pub listeners: Vec<ListenerSpec>,
    pub router: Router,
    pub rate_limits: Vec<Arc<RateLimitPolicy>>,
    pub redactor: HeaderRedactor,
    pub drain_timeout: Duration,
    pub metrics: Arc<Metrics>,
    /// The services behind plugin capabilities; `None` when no route has plugins.
    pub plugin_services: Option<Arc<HostServices>>,
}

impl Runtime {
    /// Builds everything, or returns every problem found.
    pub fn build(file: &ConfigFile) -> Result<Self, ConfigError> {
        let mut d = file.diagnostics();
        let cfg = &file.config;
        let base = d.base_dir().to_path_buf();

        if cfg.listeners.is_empty() {
            d.error(
                0..0,
                "the config has no `[[listeners]]`",
                Some("add `[[listeners]]` with `address = \"127.0.0.1:8080\"`"),
            );
        }
        let listeners: Vec<_> = cfg
            .listeners
            .iter()
            .filter_map(|l| ListenerSpec::build(l, &base, &mut d))
            .collect();

        let upstreams: BTreeMap<&str, Arc<Upstream>> = cfg
            .upstreams
            .iter()
            .filter_map(|(name, u)| {
                Upstream::build(name, u, &base, &mut d).map(|u| (name.as_str(), Arc::new(u)))
            })
            .collect();

        let rate_limits = crate::policy::config::build_rate_limits(&cfg.rate_limits, &mut d);

        let metrics = Arc::new(Metrics::default());
        let mut plugins = PluginBuilder::new(cfg, &metrics, &base, &mut d);

        let mut routes = Vec::new();
        let mut seen_ids: Vec<&str> = Vec::new();
        for route in &cfg.routes {
            let id = route.get_ref().id.get_ref().as_str();
            if seen_ids.contains(&id) {
                d.error(
                    route.get_ref().id.span(),
                    format!("route id `{id}` is used twice"),
                    Some("give every route a unique `id`"),
                );
            }
            seen_ids.push(id);
            if let Some(r) = Route::build(route, &upstreams, &rate_limits, &mut d) {
                plugins.add_route(routes.len(), route.get_ref(), &mut d);
                routes.push(r);
            }
        }
        let plugin_services = plugins.finish(&mut routes, &mut d);
        let routes = routes.into_iter().map(Arc::new).collect();

        if !d.is_empty() {
            return Err(d.into_error());
        }
        Ok(Self {
            listeners,
            router: Router::new(routes),
            rate_limits: rate_limits.into_values().collect(),
            redactor: HeaderRedactor::new(&cfg.access_log.headers, &cfg.access_log.secret_headers),
            drain_timeout: cfg.server.drain_timeout,
            metrics,
            plugin_services,
        })
    }
}
