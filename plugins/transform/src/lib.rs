//! `transform`: edits requests on their way to the upstream (headers, query parameters,
//! path, JSON body) and responses on their way back (headers, JSON body, status). See
//! `README.md` for the config.
//!
//! Edits run in a fixed order — remove, rename, set, add — so a rule list reads the same
//! whatever order the TOML gives. Repeated headers stay repeated: renaming moves every
//! value, `set` replaces all values, `add` appends.

mod json;
mod path;

use std::collections::BTreeMap;

use portcullis_sdk::{Action, Phases, Plugin, Request, Response, checks, export_plugin, query};
use serde::Deserialize;

pub use path::PathRewrite;

/// The entry's `config` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub request: RequestRules,
    #[serde(default)]
    pub response: ResponseRules,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestRules {
    #[serde(default)]
    pub headers: NameRules,
    #[serde(default)]
    pub query: NameRules,
    pub path: Option<PathRewrite>,
    #[serde(default)]
    pub body: BodyRules,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseRules {
    #[serde(default)]
    pub headers: NameRules,
    #[serde(default)]
    pub body: BodyRules,
    /// Status code → the status to send instead.
    #[serde(default)]
    pub status: BTreeMap<String, u16>,
}

/// Edits of named, possibly repeated values (headers or query parameters).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameRules {
    #[serde(default)]
    pub remove: Vec<String>,
    /// Old name → new name; every value moves.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Replace every value with these.
    #[serde(default)]
    pub set: BTreeMap<String, Values>,
    /// Append these values.
    #[serde(default)]
    pub add: BTreeMap<String, Values>,
}

/// One value or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Values {
    Many(Vec<String>),
    One(String),
}

impl Values {
    fn list(&self) -> &[String] {
        match self {
            Self::Many(v) => v,
            Self::One(v) => std::slice::from_ref(v),
        }
    }
}

/// Edits of a JSON body by JSON Pointer (RFC 6901); other bodies pass untouched.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyRules {
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub set: BTreeMap<String, serde_json::Value>,
}

impl NameRules {
    fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.rename.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
    }

    fn names(&self) -> impl Iterator<Item = &String> {
        self.remove
            .iter()
            .chain(self.rename.keys())
            .chain(self.rename.values())
            .chain(self.set.keys())
            .chain(self.add.keys())
    }

    fn values(&self) -> impl Iterator<Item = &String> {
        self.set
            .values()
            .chain(self.add.values())
            .flat_map(|v| v.list().iter())
    }

    fn check_headers(&self, side: &str) -> Result<(), String> {
        if let Some(bad) = self.names().find(|n| !checks::is_header_name(n)) {
            return Err(format!(
                "{side}.headers: `{bad}` is not a lowercase HTTP header name"
            ));
        }
        if let Some(owned) = self
            .names()
            .find(|n| checks::GATEWAY_HEADERS.contains(&n.as_str()))
        {
            return Err(format!(
                "{side}.headers: `{owned}` is set by the gateway and cannot be edited"
            ));
        }
        if let Some(bad) = self.values().find(|v| v.chars().any(char::is_control)) {
            return Err(format!(
                "{side}.headers: value `{}` has control characters",
                bad.escape_debug()
            ));
        }
        Ok(())
    }
}

impl BodyRules {
    fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty()
    }

    fn check(&self, side: &str) -> Result<(), String> {
        for pointer in self.remove.iter().chain(self.set.keys()) {
            let tokens = json::tokens(pointer).map_err(|e| format!("{side}.body: {e}"))?;
            if tokens.is_empty() {
                return Err(format!(
                    "{side}.body: the empty pointer would replace the whole body"
                ));
            }
        }
        Ok(())
    }

    /// The edited body, or `None` to leave it as it is (not JSON, or no rule applies).
    fn apply(&self, content_type: Option<&str>, body: &[u8]) -> Option<Vec<u8>> {
        let json = content_type.is_some_and(|ct| {
            let essence = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        });
        if !json || self.is_empty() {
            return None;
        }
        let mut doc: serde_json::Value = serde_json::from_slice(body).ok()?;
        for pointer in &self.remove {
            if let Ok(tokens) = json::tokens(pointer) {
                json::remove(&mut doc, &tokens);
            }
        }
        for (pointer, value) in &self.set {
            if let Ok(tokens) = json::tokens(pointer) {
                // A document whose shape blocks the pointer keeps its shape.
                let _ = json::set(&mut doc, &tokens, value.clone());
            }
        }
        serde_json::to_vec(&doc).ok()
    }
}

/// What both exchange handles offer: named, repeatable headers.
trait Headers {
    fn all(&self, name: &str) -> Vec<String>;
    fn remove(&mut self, name: &str) -> portcullis_sdk::Result<()>;
    fn append(&mut self, name: &str, value: &str) -> portcullis_sdk::Result<()>;
}

macro_rules! headers_for {
    ($t:ty) => {
        impl Headers for $t {
            fn all(&self, name: &str) -> Vec<String> {
                self.header_all(name)
            }
            fn remove(&mut self, name: &str) -> portcullis_sdk::Result<()> {
                Ok(self.remove_header(name)?)
            }
            fn append(&mut self, name: &str, value: &str) -> portcullis_sdk::Result<()> {
                Ok(self.append_header(name, value)?)
            }
        }
    };
}
headers_for!(Request<'_>);
headers_for!(Response<'_>);

fn edit_headers(rules: &NameRules, h: &mut impl Headers) -> portcullis_sdk::Result<()> {
    for name in &rules.remove {
        h.remove(name)?;
    }
    for (from, to) in &rules.rename {
        let values = h.all(from);
        if !values.is_empty() {
            h.remove(from)?;
            for v in &values {
                h.append(to, v)?;
            }
        }
    }
    for (name, values) in &rules.set {
        h.remove(name)?;
        for v in values.list() {
            h.append(name, v)?;
        }
    }
    for (name, values) in &rules.add {
        for v in values.list() {
            h.append(name, v)?;
        }
    }
    Ok(())
}

fn edit_query(rules: &NameRules, q: Option<String>) -> Option<String> {
    let mut q = q;
    for name in &rules.remove {
        q = q.and_then(|q| query::remove(&q, name));
    }
    for (from, to) in &rules.rename {
        let values = q
            .as_deref()
            .map(|q| query::get_all(q, from))
            .unwrap_or_default();
        if !values.is_empty() {
            q = q.and_then(|q| query::remove(&q, from));
            for v in &values {
                q = Some(query::append(q.as_deref(), to, v));
            }
        }
    }
    for (name, values) in &rules.set {
        q = q.and_then(|q| query::remove(&q, name));
        for v in values.list() {
            q = Some(query::append(q.as_deref(), name, v));
        }
    }
    for (name, values) in &rules.add {
        for v in values.list() {
            q = Some(query::append(q.as_deref(), name, v));
        }
    }
    q
}

/// The plugin.
#[derive(Debug)]
pub struct Transform;

impl Plugin for Transform {
    type Config = Config;

    fn check(config: &Config) -> Result<Phases, String> {
        let (req, res) = (&config.request, &config.response);
        req.headers.check_headers("request")?;
        res.headers.check_headers("response")?;
        if let Some(bad) = req.query.names().find(|n| n.is_empty()) {
            return Err(format!("request.query: `{bad}` is not a parameter name"));
        }
        req.body.check("request")?;
        res.body.check("response")?;
        if let Some(p) = &req.path {
            p.check()?;
        }
        for (from, to) in &res.status {
            let from_ok = from.parse::<u16>().is_ok_and(|s| (200..600).contains(&s));
            if !from_ok || !(200..600).contains(to) {
                return Err(format!(
                    "response.status: `{from} = {to}` must map a status 200–599 to another"
                ));
            }
        }
        let mut phases = Phases::empty();
        if !req.headers.is_empty() || !req.query.is_empty() || req.path.is_some() {
            phases |= Phases::ON_REQUEST;
        }
        if !req.body.is_empty() {
            phases |= Phases::ON_REQUEST | Phases::REQUEST_BODY;
        }
        if !res.headers.is_empty() || !res.status.is_empty() {
            phases |= Phases::ON_RESPONSE;
        }
        if !res.body.is_empty() {
            phases |= Phases::ON_RESPONSE | Phases::RESPONSE_BODY;
        }
        if phases.is_empty() {
            return Err("no rule is set: give `request` or `response` edits".into());
        }
        Ok(phases)
    }

    fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        let rules = &config.request;
        edit_headers(&rules.headers, request)?;
        if !rules.query.is_empty() {
            let q = edit_query(&rules.query, request.query());
            request.set_query(q.as_deref())?;
        }
        if let Some(rewrite) = &rules.path
            && let Some(path) = rewrite.apply(&request.path())
        {
            request.set_path(&path)?;
        }
        if let Some(body) = request.body()
            && let Some(edited) = rules
                .body
                .apply(request.header("content-type").as_deref(), &body)
        {
            request.set_body(&edited)?;
        }
        Ok(Action::Continue)
    }

    fn on_response(config: &Config, response: &mut Response<'_>) -> portcullis_sdk::Result<()> {
        let rules = &config.response;
        if let Some(to) = rules.status.get(&response.status().to_string()) {
            response.set_status(*to)?;
        }
        edit_headers(&rules.headers, response)?;
        if let Some(body) = response.body()
            && let Some(edited) = rules
                .body
                .apply(response.header("content-type").as_deref(), &body)
        {
            response.set_body(&edited)?;
        }
        Ok(())
    }
}

export_plugin!(Transform);
