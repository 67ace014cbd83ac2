//! Building the routes' plugin pipelines from `[[routes.plugins]]` and `[plugins]`: every
//! check reports through the same diagnostics as the rest of the config, naming the route,
//! the plugin and, for a failed config check, the plugin's own message.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use http::uri::Authority;
use toml::Spanned;

use crate::config::{self, Diagnostics, FailureConfig, PluginEntryConfig};
use crate::plugin::engine::{self, EngineSettings, MAX_MEMORY_BYTES, RouteShare};
use crate::plugin::{
    Budgets, EntryInfo, EntrySpec, FailurePolicy, Grants, HostGrant, HostServices, InstanceMode,
    Loader, Pipeline, PipelineSettings, PluginEngine, PluginSource,
};
use crate::router::Route;
use crate::telemetry::Metrics;

/// One route's entries waiting to be loaded.
struct RoutePlugins {
    route_index: usize,
    route_id: String,
    entries: Vec<(Range<usize>, EntrySpec)>,
    settings: PipelineSettings,
}

/// Collects pipeline entries route by route, then loads them all at once.
pub(super) struct PluginBuilder<'c> {
    base: &'c Path,
    metrics: Arc<Metrics>,
    /// `None` when no route has plugins (no engine is made) or the engine failed.
    loader: Option<Loader>,
    services: Option<Arc<HostServices>>,
    routes: Vec<RoutePlugins>,
    /// Instances one route may hold at once (`max_instances_per_route`).
    route_share: u32,
}

impl<'c> PluginBuilder<'c> {
    pub(super) fn new(
        cfg: &'c config::Config,
        metrics: &Arc<Metrics>,
        base: &'c Path,
        d: &mut Diagnostics<'_>,
    ) -> Self {
        let mut builder = Self {
            base,
            metrics: Arc::clone(metrics),
            loader: None,
            services: None,
            routes: Vec::new(),
            route_share: 1,
        };
        if !cfg.routes.iter().any(|r| !r.get_ref().plugins.is_empty()) {
            return builder;
        }
        let p = &cfg.plugins;
        if *p.max_instances.get_ref() == 0 {
            d.error(
                p.max_instances.span(),
                "`max_instances` must be at least 1",
                None,
            );
            return builder;
        }
        let max_instances = *p.max_instances.get_ref();
        builder.route_share = match &p.max_instances_per_route {
            None => RouteShare::default_size(max_instances),
            Some(n) if (1..=max_instances).contains(n.get_ref()) => *n.get_ref(),
            Some(n) => {
                d.error(
                    n.span(),
                    format!(
                        "`max_instances_per_route` must be between 1 and `max_instances` ({max_instances})"
                    ),
                    Some("leave it out for three quarters of `max_instances`"),
                );
                1
            }
        };
        let cache_dir = if p.compile_cache {
            p.cache_dir
                .as_ref()
                .map(|dir| crate::config::resolve(base, dir.get_ref()))
                .or_else(engine::default_cache_dir)
        } else {
            None
        };
        let settings = EngineSettings {
            max_instances: *p.max_instances.get_ref(),
            cache_dir,
        };
        match PluginEngine::new(&settings) {
            Ok(engine) => builder.loader = Some(Loader::new(engine)),
            Err(e) if e.starts_with("plugin cache") => {
                let span = p
                    .cache_dir
                    .as_ref()
                    .map_or(p.max_instances.span(), |c| c.span());
                d.error(
                    span,
                    format!("the plugin runtime could not start: {e}"),
                    Some("give `[plugins] cache_dir` a folder the gateway can write, or set `compile_cache = false`"),
                );
                return builder;
            }
            Err(e) => {
                d.error(
                    p.max_instances.span(),
                    format!("the plugin runtime could not start: {e}"),
                    Some("lower `[plugins] max_instances`, and do not run under `ulimit -v`"),
                );
                return builder;
            }
        }
        let services = HostServices::new(Arc::clone(metrics), p.key_sets);
        builder.services = Some(Arc::new(services));
        builder
    }

    /// Checks a route's entries and queues them for loading.
    pub(super) fn add_route(
        &mut self,
        route_index: usize,
        route: &config::RouteConfig,
        d: &mut Diagnostics<'_>,
    ) {
        let Some(services) = &self.services else {
            return;
        };
        if route.plugins.is_empty() {
            return;
        }
        let route_id = route.id.get_ref().clone();
        if route.pipeline.max_concurrent == 0 {
            d.error(
                route.id.span(),
                format!("route `{route_id}`: `pipeline.max_concurrent` must be at least 1"),
                None,
            );
        }
        let share = RouteShare::new(self.route_share);
        let entries = route
            .plugins
            .iter()
            .filter_map(|e| {
                entry_spec(&route_id, e, self.base, services, &share, d)
                    .map(|spec| (e.span(), spec))
            })
            .collect();
        self.routes.push(RoutePlugins {
            route_index,
            route_id,
            entries,
            settings: PipelineSettings {
                max_concurrent: route.pipeline.max_concurrent,
                queue_timeout: route.pipeline.queue_timeout,
            },
        });
    }

    /// Loads every queued entry (compiling, linking and checking configs) and gives each
    /// route its pipeline. Returns the shared services, if any route has plugins.
    pub(super) fn finish(
        mut self,
        routes: &mut [Route],
        d: &mut Diagnostics<'_>,
    ) -> Option<Arc<HostServices>> {
        let loader = self.loader.as_mut()?;
        let mut spans = Vec::new();
        let mut specs = Vec::new();
        for (i, r) in self.routes.iter_mut().enumerate() {
            for (span, spec) in r.entries.drain(..) {
                spans.push((i, span));
                specs.push(spec);
            }
        }
        let mut loaded = loader.load_all(specs);
        if loaded.len() != spans.len() {
            // Never serve a route without the plugins it lists: report every entry.
            loaded = spans
                .iter()
                .map(|_| Err("the plugin loader stopped before checking this plugin".to_owned()))
                .collect();
        }
        let mut per_route: Vec<Vec<Arc<crate::plugin::Entry>>> =
            self.routes.iter().map(|_| Vec::new()).collect();
        let mut failed = vec![false; self.routes.len()];
        for ((i, span), result) in spans.into_iter().zip(loaded) {
            match result {
                Ok(entry) => per_route[i].push(entry),
                Err(message) => {
                    failed[i] = true;
                    d.error(
                        span,
                        format!("route `{}`: {message}", self.routes[i].route_id),
                        None,
                    );
                }
            }
        }
        for ((r, entries), failed) in self.routes.iter().zip(per_route).zip(failed) {
            if failed || entries.is_empty() {
                continue;
            }
            if let Some(route) = routes.get_mut(r.route_index) {
                route.pipeline = Some(Arc::new(Pipeline::new(
                    entries,
                    r.settings,
                    Arc::clone(&self.metrics),
                )));
            }
        }
        self.services
    }
}

/// Most a single plugin call may take; beyond this a plugin is a service, not a policy.
const MAX_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

fn entry_spec(
    route_id: &str,
    spanned: &Spanned<PluginEntryConfig>,
    base: &Path,
    services: &Arc<HostServices>,
    share: &RouteShare,
    d: &mut Diagnostics<'_>,
) -> Option<EntrySpec> {
    let e = spanned.get_ref();
    let errors_before = d.len();
    let name = e.plugin.get_ref();
    let source = if let Some(builtin) = portcullis_builtins::find(name) {
        PluginSource::Builtin(builtin)
    } else if name.ends_with(".wasm") || name.contains('/') {
        let path = crate::config::resolve(base, Path::new(name));
        if !path.is_file() {
            d.error(
                e.plugin.span(),
                format!(
                    "route `{route_id}`: plugin file `{}` does not exist",
                    path.display()
                ),
                Some("paths are relative to the config file"),
            );
        }
        PluginSource::File(path)
    } else {
        d.error(
            e.plugin.span(),
            format!(
                "route `{route_id}`: `{name}` is not a plugin file, and no built-in plugin has that name (built-in: {})",
                portcullis_builtins::ALL
                    .iter()
                    .map(|b| b.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some("name a built-in plugin, or give the path of a `.wasm` component relative to the config file"),
        );
        return None;
    };

    let budgets = &e.budgets;
    let memory_bytes = (*budgets.memory_mib.get_ref() as usize).saturating_mul(1024 * 1024);
    if memory_bytes == 0 || memory_bytes > MAX_MEMORY_BYTES {
        d.error(
            budgets.memory_mib.span(),
            format!(
                "`budgets.memory_mib` must be between 1 and {}",
                MAX_MEMORY_BYTES / (1024 * 1024)
            ),
            None,
        );
    }
    if budgets.deadline.is_zero() || budgets.deadline > MAX_DEADLINE {
        d.error(
            spanned.span(),
            format!("route `{route_id}`: `budgets.deadline` must be more than 0 and at most 60s"),
            None,
        );
    }

    let mut http = Vec::new();
    for h in &e.grants.http {
        match parse_host_grant(h.get_ref()) {
            Some(g) => http.push(g),
            None => d.error(
                h.span(),
                format!("`{}` is not a host or host:port", h.get_ref()),
                Some("write hosts without scheme or path, like \"auth.example.com\" or \"127.0.0.1:8081\""),
            ),
        }
    }
    let cache = e.grants.cache.as_ref().and_then(|c| {
        let name = c.get_ref();
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Some(services.cache(name))
        } else {
            d.error(
                c.span(),
                format!("cache namespace `{name}` must be 1–64 letters, digits, `-`, `_` or `.`"),
                None,
            );
            None
        }
    });
    let preinitialise = e.preinitialise.as_ref().filter(|p| *p.get_ref());
    if let Some(p) = preinitialise
        && e.reuse.is_some()
    {
        d.error(
            p.span(),
            format!(
                "route `{route_id}`: `preinitialise` makes fresh instances start from a \
                 snapshot, and this entry keeps warm instances (`reuse`)"
            ),
            Some("remove `reuse` for fresh instances, or `preinitialise`"),
        );
    }
    let mode = match &e.reuse {
        // A snapshot is what makes a slow-starting built-in cheap to start fresh.
        None if preinitialise.is_some() => InstanceMode::Fresh,
        None => match &source {
            PluginSource::Builtin(b) if b.reuse_by_default => {
                let pool = config::ReuseConfig::default();
                InstanceMode::Reuse {
                    max_instances: pool.max_instances,
                    max_requests: pool.max_requests,
                }
            }
            _ => InstanceMode::Fresh,
        },
        Some(r) => {
            let rc = r.get_ref();
            if rc.max_instances == 0 || rc.max_requests == 0 {
                d.error(
                    r.span(),
                    "`reuse.max_instances` and `reuse.max_requests` must be at least 1",
                    None,
                );
            }
            InstanceMode::Reuse {
                max_instances: rc.max_instances,
                max_requests: rc.max_requests,
            }
        }
    };
    let config = plugin_config(route_id, e, base, spanned.span(), d);
    if matches!(&source, PluginSource::Builtin(b) if b.name == "jwt-auth") {
        for url in key_set_urls(&config) {
            if let Err(error) = services.key_sets.configure(&url) {
                d.error(
                    spanned.span(),
                    format!("route `{route_id}`: jwt-auth: {error}"),
                    Some("use an https URL, or a loopback one while testing"),
                );
            }
        }
    }
    if d.len() != errors_before {
        return None;
    }
    let plugin_name = Path::new(name)
        .file_stem()
        .map_or_else(|| name.clone(), |s| s.to_string_lossy().into_owned());
    let verifies = matches!(
        &source,
        PluginSource::Builtin(b) if portcullis_builtins::IDENTITY_PROVIDERS.contains(&b.name)
    );
    Some(EntrySpec {
        source,
        info: EntryInfo::new(
            Arc::from(route_id),
            Arc::from(plugin_name.as_str()),
            config,
            Budgets {
                deadline: budgets.deadline,
                memory_bytes,
                body_bytes: budgets.body_bytes,
                outbound_calls: budgets.outbound_calls,
            },
            Grants {
                http,
                cache,
                crypto: e.grants.crypto,
            },
            Arc::clone(services),
            share.clone(),
        )
        .attaching_identity(verifies),
        failure: match e.failure {
            FailureConfig::Closed => FailurePolicy::Closed,
            FailureConfig::Open => FailurePolicy::Open,
            FailureConfig::Skip => FailurePolicy::Skip,
        },
        mode,
        preinitialise: preinitialise.is_some(),
    })
}

/// The `issuers[].jwks_url` of a jwt-auth entry's config (JSON text): the key sets the
/// gateway fetches at start.
fn key_set_urls(config: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(config) else {
        return Vec::new();
    };
    value["issuers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|issuer| issuer["jwks_url"].as_str().map(str::to_owned))
        .collect()
}

/// `host` or `host:port`, nothing else.
fn parse_host_grant(s: &str) -> Option<HostGrant> {
    if s.contains(['/', '@', '?', '#']) || s.is_empty() {
        return None;
    }
    let authority: Authority = s.parse().ok()?;
    Some(HostGrant {
        host: authority
            .host()
            .trim_matches(['[', ']'])
            .to_ascii_lowercase(),
        port: authority.port_u16(),
    })
}

/// The entry's `config` table as JSON text, with each of its `files` read and placed under
/// its key. Reported errors leave an empty string (the entry is not loaded).
fn plugin_config(
    route_id: &str,
    e: &PluginEntryConfig,
    base: &Path,
    span: Range<usize>,
    d: &mut Diagnostics<'_>,
) -> String {
    let mut config = match serde_json::to_value(&e.config) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(_) => serde_json::Map::new(),
        Err(err) => {
            d.error(
                span,
                format!(
                    "route `{route_id}`: the plugin's `config` cannot be passed as JSON: {err}"
                ),
                Some("use strings for dates and times"),
            );
            return String::new();
        }
    };
    for (key, file) in &e.files {
        if config.contains_key(key) {
            d.error(
                file.span(),
                format!("route `{route_id}`: `{key}` is set both in `config` and in `files`"),
                Some("keep one of the two"),
            );
            continue;
        }
        let path = crate::config::resolve(base, Path::new(file.get_ref()));
        match read_config_file(&path) {
            Ok(value) => {
                config.insert(key.clone(), value);
            }
            Err(why) => d.error(
                file.span(),
                format!(
                    "route `{route_id}`: plugin file `{key}` ({}): {why}",
                    path.display()
                ),
                Some("paths are relative to the config file"),
            ),
        }
    }
    serde_json::Value::Object(config).to_string()
}

/// Files handed to plugins: `.json` and `.toml` parsed, anything else as text.
fn read_config_file(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    match path.extension().and_then(|x| x.to_str()) {
        Some("json") => serde_json::from_str(&text).map_err(|e| format!("not valid JSON: {e}")),
        Some("toml") => text
            .parse::<toml::Table>()
            .map_err(|e| format!("not valid TOML: {}", e.message()))
            .and_then(|t| serde_json::to_value(t).map_err(|e| e.to_string())),
        _ => Ok(serde_json::Value::String(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_grants_are_bare_hosts_with_optional_ports() {
        let g = parse_host_grant("Auth.Example.com").expect("host");
        assert!(g.permits("auth.example.com", 443, 443));
        assert!(g.permits("auth.example.com", 80, 80));
        // Without a port, only the scheme's own.
        assert!(!g.permits("auth.example.com", 8443, 443));
        let g = parse_host_grant("127.0.0.1:8081").expect("host:port");
        assert!(g.permits("127.0.0.1", 8081, 80));
        assert!(!g.permits("127.0.0.1", 8082, 80));
        // IPv6 grants match the bracketed host of a URL.
        let g = parse_host_grant("[::1]:8081").expect("ipv6");
        assert!(g.permits("[::1]", 8081, 80));
        assert!(!g.permits("[::1]", 8082, 80));
        for bad in ["https://a.example", "a.example/path", "", "user@a.example"] {
            assert!(parse_host_grant(bad).is_none(), "{bad}");
        }
    }
}
