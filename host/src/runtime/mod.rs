//! Turning a parsed config into the live structures the request path uses.
//!
//! Every semantic check lives here and reports through [`Diagnostics`] with the span of
//! the offending value, so `portcullis validate` (which builds and throws away) and
//! `portcullis run` (which builds and serves) can never disagree.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use ipnet::IpNet;
use toml::Spanned;

use crate::config::{self, ConfigError, ConfigFile, Diagnostics, ListenerLimits};
use crate::listener::tls;
use crate::plugin::HostServices;
use crate::policy::{Cors, IpPolicy, RateLimitKey, RateLimitPolicy, RoutePolicies};
use crate::router::{
    HostMatcher, PathMatcher, Rewrite, Route, RouteAction, Router, StaticResponse, Template,
    UpstreamHost, ValueMatch, ValueMatcher,
};
use plugins::PluginBuilder;

mod plugins;
use crate::telemetry::{HeaderRedactor, Metrics};
use crate::upstream::{self, Upstream, UpstreamSettings};

/// A listener ready to bind.
#[derive(Debug)]
pub struct ListenerSpec {
    pub address: SocketAddr,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub trusted_proxies: Vec<IpNet>,
    pub limits: ListenerLimits,
    pub paths: crate::canonical::PathOptions,
    /// `Strict-Transport-Security` for every response (TLS listeners only).
    pub hsts: Option<http::HeaderValue>,
}

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
            .filter_map(|l| build_listener(l, &base, &mut d))
            .collect();

        let upstreams: BTreeMap<&str, Arc<Upstream>> = cfg
            .upstreams
            .iter()
            .filter_map(|(name, u)| {
                build_upstream(name, u, &base, &mut d).map(|u| (name.as_str(), Arc::new(u)))
            })
            .collect();

        let mut rate_limits = BTreeMap::new();
        for (name, rl) in &cfg.rate_limits {
            if !crate::policy::rate_limit_name_ok(name) {
                d.error(
                    rl.span(),
                    format!("rate-limit name `{name}` has characters other than letters, digits, `-`, `_`, `.`"),
                    Some("rename the policy"),
                );
                continue;
            }
            let key = match RateLimitKey::parse(rl.get_ref().key.get_ref()) {
                Ok(k) => k,
                Err(e) => {
                    d.error(rl.get_ref().key.span(), e, None);
                    continue;
                }
            };
            let r = rl.get_ref();
            match RateLimitPolicy::new(
                name.clone(),
                *r.quota.get_ref(),
                r.window,
                key,
                r.legacy_headers,
                r.max_keys,
            ) {
                Ok(p) => {
                    rate_limits.insert(name.as_str(), Arc::new(p));
                }
                Err(e) => d.error(r.quota.span(), e, None),
            }
        }

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
            if let Some(r) = build_route(route, &upstreams, &rate_limits, &mut d) {
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

/// The `Host` a proxy route sends upstream, from `preserve_host` and `upstream_host`.
fn upstream_host(r: &config::RouteConfig, d: &mut Diagnostics<'_>) -> Option<UpstreamHost> {
    let preserve = r.preserve_host.as_ref().map(|p| *p.get_ref());
    match (&r.upstream_host, preserve) {
        (Some(name), Some(true)) => {
            d.error(
                name.span(),
                "`upstream_host` replaces the host, so it cannot go with `preserve_host = true`",
                Some("remove one of the two"),
            );
            None
        }
        (Some(name), _) => match crate::canonical::Authority::parse(name.get_ref().as_bytes()) {
            Some(a) => Some(UpstreamHost::Fixed(a.to_header())),
            None => {
                d.error(
                    name.span(),
                    format!("`{}` is not a host[:port]", name.get_ref()),
                    Some("write it like \"api.internal\" or \"api.internal:8443\""),
                );
                None
            }
        },
        (None, Some(false)) => Some(UpstreamHost::Target),
        (None, _) => Some(UpstreamHost::Routed),
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn build_listener(
    l: &config::ListenerConfig,
    base: &Path,
    d: &mut Diagnostics<'_>,
) -> Option<ListenerSpec> {
    let address = match l.address.get_ref().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            d.error(
                l.address.span(),
                format!("`{}` is not an IP:PORT address", l.address.get_ref()),
                Some("write it like \"127.0.0.1:8080\" or \"[::]:443\""),
            );
            None
        }
    };
    let trusted_proxies = cidrs(&l.trusted_proxies, d);
    let tls = l.tls.as_ref().and_then(|t| {
        let mut pairs = Vec::new();
        for c in &t.get_ref().certificates {
            let chain = crate::tls::load_certs(&resolve(base, c.cert.get_ref()));
            let key = crate::tls::load_key(&resolve(base, c.key.get_ref()));
            let ocsp = match &c.ocsp {
                None => None,
                Some(path) => match std::fs::read(resolve(base, path.get_ref())) {
                    Ok(bytes) if !bytes.is_empty() => Some(bytes),
                    Ok(_) => {
                        d.error(path.span(), "the OCSP response file is empty", None);
                        continue;
                    }
                    Err(e) => {
                        d.error(
                            path.span(),
                            format!("cannot read the OCSP response: {e}"),
                            Some("paths are relative to the config file; the file holds a DER OCSP response"),
                        );
                        continue;
                    }
                },
            };
            match (chain, key) {
                (Ok(chain), Ok(key)) => pairs.push(tls::ServerCertificate { chain, key, ocsp }),
                (Err(e), _) => d.error(
                    c.cert.span(),
                    e,
                    Some("paths are relative to the config file"),
                ),
                (_, Err(e)) => d.error(
                    c.key.span(),
                    e,
                    Some("paths are relative to the config file"),
                ),
            }
        }
        match tls::server_config(pairs) {
            Ok(cfg) => Some(cfg),
            Err(e) => {
                d.error(t.span(), e, None);
                None
            }
        }
    });
    let limits = l.limits.clone();
    if limits.max_connections == 0 {
        d.error(
            l.address.span(),
            "`limits.max_connections` must be at least 1",
            None,
        );
    }
    Some(ListenerSpec {
        address: address?,
        tls,
        trusted_proxies,
        limits,
        paths: l.paths.options(),
        hsts: l
            .tls
            .as_ref()
            .and_then(|t| t.get_ref().hsts.as_ref())
            .map(config::HstsConfig::header_value),
    })
}

fn cidrs(list: &[Spanned<String>], d: &mut Diagnostics<'_>) -> Vec<IpNet> {
    list.iter()
        .filter_map(|c| match crate::policy::parse_cidr(c.get_ref()) {
            Ok(net) => Some(net),
            Err(e) => {
                d.error(c.span(), e, None);
                None
            }
        })
        .collect()
}

fn build_upstream(
    name: &str,
    u: &Spanned<config::UpstreamConfig>,
    base: &Path,
    d: &mut Diagnostics<'_>,
) -> Option<Upstream> {
    let cfg = u.get_ref();
    if cfg.targets.is_empty() {
        d.error(
            u.span(),
            format!("upstream `{name}` has no targets"),
            Some("add `targets = [\"127.0.0.1:9000\"]`"),
        );
        return None;
    }
    let mut targets = Vec::new();
    for t in &cfg.targets {
        match t.get_ref().parse::<Authority>() {
            Ok(a) if a.port_u16().is_some() && !t.get_ref().contains('@') => targets.push(a),
            _ => d.error(
                t.span(),
                format!("target `{}` is not HOST:PORT", t.get_ref()),
                Some("write targets without a scheme, like \"10.0.0.5:8080\"; use `[upstreams.NAME.tls]` for HTTPS"),
            ),
        }
    }
    let tls = match &cfg.tls {
        None => None,
        Some(t) => {
            let tc = t.get_ref();
            let roots = tc.ca.as_ref().and_then(|ca| {
                crate::tls::load_certs(&resolve(base, ca.get_ref()))
                    .map_err(|e| d.error(ca.span(), e, None))
                    .ok()
            });
            let client_auth = match (&tc.client_cert, &tc.client_key) {
                (Some(c), Some(k)) => {
                    let chain = crate::tls::load_certs(&resolve(base, c.get_ref()))
                        .map_err(|e| d.error(c.span(), e, None))
                        .ok();
                    let key = crate::tls::load_key(&resolve(base, k.get_ref()))
                        .map_err(|e| d.error(k.span(), e, None))
                        .ok();
                    chain.zip(key)
                }
                (None, None) => None,
                _ => {
                    d.error(
                        t.span(),
                        "`client_cert` and `client_key` go together",
                        Some("set both for mTLS, or neither"),
                    );
                    None
                }
            };
            Some(upstream::client::ClientTls {
                roots,
                server_name: tc.server_name.as_ref().map(|s| s.get_ref().clone()),
                client_auth,
            })
        }
    };
    let is_tls = tls.is_some();
    let client = upstream::build_client(upstream::client::ClientSettings {
        connect_timeout: cfg.connect_timeout,
        pool_idle_timeout: cfg.pool_idle_timeout,
        pool_max_idle_per_target: cfg.pool_max_idle_per_target,
        http2_prior_knowledge: cfg.http2 && !is_tls,
        tls,
    })
    .map_err(|e| d.error(u.span(), e, None))
    .ok()?;
    if targets.len() != cfg.targets.len() {
        return None;
    }
    Some(Upstream::new(UpstreamSettings {
        name: name.to_owned(),
        targets,
        balance: cfg.balance,
        tls: is_tls,
        client,
        request_timeout: cfg.request_timeout,
        retries: cfg.retries,
        eject_for: cfg.eject_for,
    }))
}

fn build_route(
    spanned: &Spanned<config::RouteConfig>,
    upstreams: &BTreeMap<&str, Arc<Upstream>>,
    rate_limits: &BTreeMap<&str, Arc<RateLimitPolicy>>,
    d: &mut Diagnostics<'_>,
) -> Option<Route> {
    let r = spanned.get_ref();
    let errors_before = d.len();

    let hosts = r
        .hosts
        .iter()
        .filter_map(|h| {
            HostMatcher::parse(h.get_ref())
                .map_err(|e| d.error(h.span(), e, None))
                .ok()
        })
        .collect();
    let methods = r
        .methods
        .iter()
        .filter_map(|m| {
            Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes())
                .map_err(|_| {
                    d.error(
                        m.span(),
                        format!("`{}` is not an HTTP method", m.get_ref()),
                        None,
                    )
                })
                .ok()
        })
        .collect();

    let path = match &r.path {
        None => PathMatcher::Any,
        Some(p) => match p.get_ref() {
            config::PathMatchConfig::Exact(s) => {
                PathMatcher::Exact(must_start_with_slash(s, p.span(), d))
            }
            config::PathMatchConfig::Prefix(s) => {
                PathMatcher::Prefix(must_start_with_slash(s, p.span(), d))
            }
            config::PathMatchConfig::Template(s) => match Template::parse(s) {
                Ok(t) => PathMatcher::Template(t),
                Err(e) => {
                    d.error(p.span(), e, Some("templates look like \"/users/{id}\""));
                    PathMatcher::Any
                }
            },
            config::PathMatchConfig::Regex(s) => match regex::Regex::new(&format!("^(?:{s})$")) {
                Ok(re) => PathMatcher::Regex(re),
                Err(e) => {
                    d.error(p.span(), format!("invalid path regex: {e}"), None);
                    PathMatcher::Any
                }
            },
        },
    };

    let headers = value_matchers(&r.headers, true, d);
    let query = value_matchers(&r.query, false, d);

    let action = match (&r.upstream, &r.respond) {
        (Some(name), None) => match upstreams.get(name.get_ref().as_str()) {
            Some(u) => {
                let rewrite = r
                    .rewrite
                    .as_ref()
                    .and_then(|rw| build_rewrite(rw, &path, d));
                upstream_host(r, d).map(|host| RouteAction::Proxy {
                    upstream: Arc::clone(u),
                    rewrite,
                    host,
                })
            }
            None => {
                let known: Vec<&str> = upstreams.keys().copied().collect();
                d.error(
                    name.span(),
                    format!(
                        "route `{}` names upstream `{}`, which is not defined",
                        r.id.get_ref(),
                        name.get_ref()
                    ),
                    Some(&if known.is_empty() {
                        "define it under `[upstreams.NAME]`".to_owned()
                    } else {
                        format!("defined upstreams: {}", known.join(", "))
                    }),
                );
                None
            }
        },
        (None, Some(resp)) => build_static(resp, d),
        (Some(name), Some(_)) => {
            d.error(
                name.span(),
                "a route has either `upstream` or `respond`, not both",
                None,
            );
            None
        }
        (None, None) => {
            d.error(
                r.id.span(),
                format!(
                    "route `{}` has neither `upstream` nor `respond`",
                    r.id.get_ref()
                ),
                Some("add `upstream = \"NAME\"` or a `[routes.respond]` table"),
            );
            None
        }
    };

    let mut route_limits = Vec::new();
    for name in &r.rate_limits {
        match rate_limits.get(name.get_ref().as_str()) {
            Some(p) if p.key.needs_identity() && r.plugins.is_empty() => d.error(
                name.span(),
                format!(
                    "rate-limit policy `{}` counts by a verified identity, but route `{}` has no plugins to verify one",
                    name.get_ref(),
                    r.id.get_ref()
                ),
                Some("add an auth plugin (`jwt-auth`, `key-auth`) to the route, or key the policy by `client_ip`"),
            ),
            Some(p) => route_limits.push(Arc::clone(p)),
            None => d.error(
                name.span(),
                format!("rate-limit policy `{}` is not defined", name.get_ref()),
                Some("define it under `[rate_limits.NAME]`"),
            ),
        }
    }
    let ip = r.ip.as_ref().map(|ip| IpPolicy {
        allow: cidrs(&ip.allow, d),
        deny: cidrs(&ip.deny, d),
    });
    let cors = r.cors.as_ref().and_then(|c| build_cors(c, d));

    if d.len() != errors_before {
        return None;
    }
    Some(Route {
        id: std::sync::Arc::from(r.id.get_ref().as_str()),
        hosts,
        methods,
        path,
        headers,
        query,
        priority: r.priority,
        action: action?,
        policies: RoutePolicies {
            ip,
            cors,
            rate_limits: route_limits,
        },
        limits: r.limits.clone(),
        pipeline: None,
    })
}

fn must_start_with_slash(s: &str, span: std::ops::Range<usize>, d: &mut Diagnostics<'_>) -> String {
    if !s.starts_with('/') {
        d.error(span, format!("path `{s}` must start with `/`"), None);
    }
    s.to_owned()
}

fn value_matchers(
    list: &[Spanned<config::ValueMatchConfig>],
    is_header: bool,
    d: &mut Diagnostics<'_>,
) -> Vec<ValueMatcher> {
    let mut out = Vec::new();
    for m in list {
        let c = m.get_ref();
        let name = if is_header {
            match HeaderName::from_bytes(c.name.as_bytes()) {
                Ok(h) => h.as_str().to_owned(),
                Err(_) => {
                    d.error(
                        m.span(),
                        format!("`{}` is not a valid header name", c.name),
                        None,
                    );
                    continue;
                }
            }
        } else {
            c.name.clone()
        };
        let kind = match (&c.exact, &c.regex, c.present) {
            (Some(e), None, None) => ValueMatch::Exact(e.clone()),
            (None, Some(r), None) => match regex::Regex::new(&format!("^(?:{r})$")) {
                Ok(re) => ValueMatch::Regex(re),
                Err(e) => {
                    d.error(m.span(), format!("invalid regex: {e}"), None);
                    continue;
                }
            },
            (None, None, Some(p)) => ValueMatch::Present(p),
            _ => {
                d.error(
                    m.span(),
                    "a predicate needs exactly one of `exact`, `regex`, `present`",
                    None,
                );
                continue;
            }
        };
        out.push(ValueMatcher { name, kind });
    }
    out
}

fn build_rewrite(
    rw: &Spanned<config::RewriteConfig>,
    path: &PathMatcher,
    d: &mut Diagnostics<'_>,
) -> Option<Rewrite> {
    let c = rw.get_ref();
    match (c.strip_prefix, &c.template) {
        (true, None) => match path {
            PathMatcher::Prefix(p) => {
                Some(Rewrite::StripPrefix(p.trim_end_matches('/').to_owned()))
            }
            _ => {
                d.error(
                    rw.span(),
                    "`strip_prefix` needs a `path.prefix` route",
                    None,
                );
                None
            }
        },
        (false, Some(t)) => {
            let names = match path {
                PathMatcher::Template(tpl) => tpl.names.clone(),
                _ => Vec::new(),
            };
            Rewrite::template(t, &names)
                .map_err(|e| d.error(rw.span(), e, None))
                .ok()
        }
        _ => {
            d.error(
                rw.span(),
                "`rewrite` takes exactly one of `strip_prefix = true` or `template`",
                None,
            );
            None
        }
    }
}

fn build_static(
    resp: &config::StaticResponseConfig,
    d: &mut Diagnostics<'_>,
) -> Option<RouteAction> {
    let status = match StatusCode::from_u16(*resp.status.get_ref()) {
        Ok(s) => s,
        Err(_) => {
            d.error(resp.status.span(), "not an HTTP status code", None);
            return None;
        }
    };
    let mut headers = HeaderMap::new();
    match HeaderValue::from_str(&resp.content_type) {
        Ok(v) => {
            headers.insert(http::header::CONTENT_TYPE, v);
        }
        Err(_) => d.error(resp.status.span(), "invalid `content_type`", None),
    }
    for (k, v) in &resp.headers {
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(k), Ok(v)) => {
                headers.append(k, v);
            }
            _ => d.error(resp.status.span(), format!("invalid header `{k}`"), None),
        }
    }
    Some(RouteAction::Respond(StaticResponse {
        status,
        body: bytes::Bytes::from(resp.body.clone()),
        headers,
    }))
}

fn build_cors(c: &Spanned<config::CorsConfig>, d: &mut Diagnostics<'_>) -> Option<Cors> {
    let cfg = c.get_ref();
    let any = cfg.allow_origins.iter().any(|o| o == "*");
    if any && cfg.allow_credentials {
        d.error(
            c.span(),
            "`allow_origins = [\"*\"]` cannot be combined with `allow_credentials = true`",
            Some("list the allowed origins explicitly"),
        );
        return None;
    }
    if cfg.allow_origins.is_empty() {
        d.error(
            c.span(),
            "`allow_origins` is empty",
            Some("list origins like \"https://app.example.com\""),
        );
        return None;
    }
    let methods: Result<Vec<Method>, _> = cfg
        .allow_methods
        .iter()
        .map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()))
        .collect();
    let Ok(methods) = methods else {
        d.error(c.span(), "`allow_methods` has an invalid method", None);
        return None;
    };
    let allow_headers = crate::policy::cors_header_names(&cfg.allow_headers)
        .map_err(|e| d.error(c.span(), e, None))
        .ok()?;
    let expose = crate::policy::cors_header_names(&cfg.expose_headers)
        .map_err(|e| d.error(c.span(), e, None))
        .ok()?;
    Some(Cors {
        origins: (!any).then(|| cfg.allow_origins.clone()),
        methods,
        allow_headers,
        expose_headers: (!expose.is_empty())
            .then(|| HeaderValue::from_str(&expose.join(", ")).ok())
            .flatten(),
        credentials: cfg.allow_credentials,
        max_age_secs: cfg.max_age.as_secs(),
    })
}
