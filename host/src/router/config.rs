//! A route's section of the config (`[[routes]]`): its shape, defaults and checks, and
//! the live [`Route`] built from it. What a route names in other sections (its upstream,
//! its rate-limit policies) is looked up here; its plugins are loaded by the runtime.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use toml::Spanned;

use super::{
    HostMatcher, PathMatcher, Rewrite, Route, RouteAction, StaticResponse, Template, UpstreamHost,
    ValueMatch, ValueMatcher,
};
use crate::config::Diagnostics;
use crate::plugin::config::{PipelineConfig, PluginEntryConfig};
use crate::policy::config::{CorsConfig, IpPolicyConfig};
use crate::policy::{Cors, IpPolicy, RateLimitPolicy, RoutePolicies};
use crate::upstream::Upstream;

/// Per-route overrides of the listener's request limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteLimits {
    pub max_header_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub max_uri_bytes: Option<usize>,
    pub max_body_bytes: Option<u64>,
}

impl RouteLimits {
    /// Whether the route overrides a limit on the request head (not just the body).
    pub fn has_head_limits(&self) -> bool {
        self.max_header_bytes.is_some()
            || self.max_headers.is_some()
            || self.max_uri_bytes.is_some()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub id: Spanned<String>,
    /// Exact names or `*.example.com`; empty means any host.
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
    /// Empty means any method.
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    pub path: Option<Spanned<PathMatchConfig>>,
    #[serde(default)]
    pub headers: Vec<Spanned<ValueMatchConfig>>,
    #[serde(default)]
    pub query: Vec<Spanned<ValueMatchConfig>>,
    /// Higher wins before any other ordering rule.
    #[serde(default)]
    pub priority: i32,
    pub upstream: Option<Spanned<String>>,
    /// Send the upstream the host the request was routed on (default); `false` sends
    /// the target's `host:port` instead.
    pub preserve_host: Option<Spanned<bool>>,
    /// Send the upstream this `Host` instead (not with `preserve_host = true`).
    pub upstream_host: Option<Spanned<String>>,
    pub respond: Option<StaticResponseConfig>,
    pub rewrite: Option<Spanned<RewriteConfig>>,
    #[serde(default)]
    pub rate_limits: Vec<Spanned<String>>,
    pub ip: Option<IpPolicyConfig>,
    pub cors: Option<Spanned<CorsConfig>>,
    #[serde(default)]
    pub limits: RouteLimits,
    /// The route's plugins, run in order before the upstream and in reverse after it.
    #[serde(default)]
    pub plugins: Vec<Spanned<PluginEntryConfig>>,
    #[serde(default)]
    pub pipeline: PipelineConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PathMatchConfig {
    Exact(String),
    Prefix(String),
    /// `/users/{id}`: each `{name}` matches one non-empty segment.
    Template(String),
    /// Anchored at both ends.
    Regex(String),
}

/// A header or query predicate: exactly one of `exact`, `regex`, `present`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMatchConfig {
    pub name: String,
    pub exact: Option<String>,
    pub regex: Option<String>,
    pub present: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticResponseConfig {
    #[serde(default = "static_status")]
    pub status: Spanned<u16>,
    #[serde(default)]
    pub body: String,
    #[serde(default = "static_content_type")]
    pub content_type: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteConfig {
    /// Remove the route's path prefix before proxying.
    #[serde(default)]
    pub strip_prefix: bool,
    /// New path built from the template route's `{params}`, e.g. `/v2/users/{id}`.
    pub template: Option<String>,
}

fn static_status() -> Spanned<u16> {
    Spanned::new(0..0, 200)
}
fn static_content_type() -> String {
    "text/plain; charset=utf-8".to_owned()
}

impl Route {
    /// The route of one `[[routes]]` table, its upstream and rate-limit policies looked up
    /// by name (its pipeline is added by the plugin loader), or `None` after reporting why.
    pub fn build(
        spanned: &Spanned<RouteConfig>,
        upstreams: &BTreeMap<&str, Arc<Upstream>>,
        rate_limits: &BTreeMap<&str, Arc<RateLimitPolicy>>,
        d: &mut Diagnostics<'_>,
    ) -> Option<Self> {
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
                PathMatchConfig::Exact(s) => {
                    PathMatcher::Exact(must_start_with_slash(s, p.span(), d))
                }
                PathMatchConfig::Prefix(s) => {
                    PathMatcher::Prefix(must_start_with_slash(s, p.span(), d))
                }
                PathMatchConfig::Template(s) => match Template::parse(s) {
                    Ok(t) => PathMatcher::Template(t),
                    Err(e) => {
                        d.error(p.span(), e, Some("templates look like \"/users/{id}\""));
                        PathMatcher::Any
                    }
                },
                PathMatchConfig::Regex(s) => match regex::Regex::new(&format!("^(?:{s})$")) {
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
        let ip = r.ip.as_ref().map(|ip| IpPolicy::build(ip, d));
        let cors = r.cors.as_ref().and_then(|c| Cors::build(c, d));

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
}

/// The `Host` a proxy route sends upstream, from `preserve_host` and `upstream_host`.
fn upstream_host(r: &RouteConfig, d: &mut Diagnostics<'_>) -> Option<UpstreamHost> {
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

fn must_start_with_slash(s: &str, span: std::ops::Range<usize>, d: &mut Diagnostics<'_>) -> String {
    if !s.starts_with('/') {
        d.error(span, format!("path `{s}` must start with `/`"), None);
    }
    s.to_owned()
}

fn value_matchers(
    list: &[Spanned<ValueMatchConfig>],
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
    rw: &Spanned<RewriteConfig>,
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

fn build_static(resp: &StaticResponseConfig, d: &mut Diagnostics<'_>) -> Option<RouteAction> {
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
