//! The OpenAPI document as the plugin uses it: its dialect, the base path its paths hang
//! under, and an index of path templates to operations. Reading it is cheap (no schema is
//! compiled here); schemas are compiled per operation, when first needed (`operation.rs`).

use std::sync::Arc;

use serde_json::Value;

/// Where schemas in the document live for the JSON Schema registry: every `$ref` is
/// resolved inside the document, never fetched.
pub const DOCUMENT_URI: &str = "urn:portcullis:openapi";

/// Which JSON Schema the document's schemas are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAPI 3.0: a JSON Schema draft 4 dialect with `nullable`.
    V30,
    /// OpenAPI 3.1: JSON Schema 2020-12.
    V31,
}

impl Dialect {
    pub fn draft(self) -> jsonschema::Draft {
        match self {
            Self::V30 => jsonschema::Draft::Draft4,
            Self::V31 => jsonschema::Draft::Draft202012,
        }
    }
}

/// The HTTP methods an OpenAPI path item can hold, in its own spelling.
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[derive(Debug)]
pub struct Document {
    pub dialect: Dialect,
    /// The document, with OpenAPI 3.0's `nullable` turned into JSON Schema.
    pub root: Arc<Value>,
    /// Prefix of every path (from `servers[0].url` unless configured); no trailing `/`.
    pub base_path: String,
    pub paths: Vec<PathTemplate>,
}

/// One entry of `paths`.
#[derive(Debug)]
pub struct PathTemplate {
    /// The template as written (`/pet/{petId}`), also its key under `paths`.
    pub template: String,
    segments: Vec<Segment>,
    /// Methods (lowercase) that have an operation.
    pub methods: Vec<&'static str>,
}

#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A request path matched to a template: the path parameters' raw (still encoded) values.
#[derive(Debug)]
pub struct Matched<'d, 'p> {
    /// Index into [`Document::paths`].
    pub index: usize,
    pub path: &'d PathTemplate,
    pub params: Vec<(&'d str, &'p str)>,
}

impl Document {
    /// Reads `document`; `base_path` overrides the one from `servers`.
    pub fn read(mut document: Value, base_path: Option<&str>) -> Result<Self, String> {
        let version = document
            .get("openapi")
            .and_then(Value::as_str)
            .ok_or("the document has no `openapi` version: only OpenAPI 3.0 and 3.1 documents are read (convert Swagger 2.0 first)")?;
        let dialect = if version.starts_with("3.0.") || version == "3.0" {
            Dialect::V30
        } else if version.starts_with("3.1.") || version == "3.1" {
            Dialect::V31
        } else {
            return Err(format!(
                "OpenAPI version {version} is not supported: use 3.0.x or 3.1.x"
            ));
        };
        if dialect == Dialect::V30 {
            nullable_to_json_schema(&mut document);
        }
        let base_path = match base_path {
            Some(b) => {
                if !(b.is_empty() || b.starts_with('/')) {
                    return Err(format!("base_path `{b}` must be empty or start with `/`"));
                }
                b.trim_end_matches('/').to_owned()
            }
            None => server_path(&document),
        };
        let paths_object = document
            .get("paths")
            .and_then(Value::as_object)
            .ok_or("the document has no `paths` object")?;
        let mut paths = Vec::with_capacity(paths_object.len());
        for (template, item) in paths_object {
            let segments = parse_template(template)?;
            let item = resolve(&document, item).map_err(|e| format!("paths.{template}: {e}"))?;
            let methods = METHODS
                .iter()
                .copied()
                .filter(|m| item.get(*m).is_some_and(Value::is_object))
                .collect();
            paths.push(PathTemplate {
                template: template.clone(),
                segments,
                methods,
            });
        }
        Ok(Self {
            dialect,
            root: Arc::new(document),
            base_path,
            paths,
        })
    }

    /// The template `path` falls under, the most literal one when several match (OpenAPI:
    /// `/pets/mine` wins over `/pets/{id}`); `None` for a path outside the document.
    pub fn find<'d, 'p>(&'d self, path: &'p str) -> Option<Matched<'d, 'p>> {
        let rest = path.strip_prefix(self.base_path.as_str())?;
        if !(rest.starts_with('/') || self.base_path.is_empty() && rest.is_empty()) {
            return None;
        }
        let request: Vec<&str> = rest.split('/').skip(1).collect();
        let mut best: Option<(Vec<bool>, Matched<'d, 'p>)> = None;
        for (index, template) in self.paths.iter().enumerate() {
            if template.segments.len() != request.len() {
                continue;
            }
            let mut params = Vec::new();
            let mut rank = Vec::with_capacity(request.len());
            let fits = template
                .segments
                .iter()
                .zip(&request)
                .all(|(s, r)| match s {
                    Segment::Literal(l) => {
                        rank.push(true);
                        l == r
                    }
                    Segment::Param(name) => {
                        rank.push(false);
                        params.push((name.as_str(), *r));
                        !r.is_empty()
                    }
                });
            if fits && best.as_ref().is_none_or(|(b, _)| rank > *b) {
                best = Some((
                    rank,
                    Matched {
                        index,
                        path: template,
                        params,
                    },
                ));
            }
        }
        best.map(|(_, m)| m)
    }
}

/// `/pet/{petId}` → segments. A segment is either literal or one whole `{name}`.
fn parse_template(template: &str) -> Result<Vec<Segment>, String> {
    if !template.starts_with('/') {
        return Err(format!("path `{template}` must start with `/`"));
    }
    template
        .split('/')
        .skip(1)
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) if !name.is_empty() && !name.contains(['{', '}']) => {
                Ok(Segment::Param(name.to_owned()))
            }
            _ if s.contains(['{', '}']) => Err(format!(
                "path `{template}`: segment `{s}` mixes text and a parameter, which this plugin does not match; use one `{{name}}` per segment"
            )),
            _ => Ok(Segment::Literal(s.to_owned())),
        })
        .collect()
}

/// The path of the first server URL (`https://api.example.com/v3` → `/v3`); empty when
/// there is none or it has variables.
fn server_path(document: &Value) -> String {
    let Some(url) = document.pointer("/servers/0/url").and_then(Value::as_str) else {
        return String::new();
    };
    if url.contains('{') {
        return String::new();
    }
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => url,
    };
    path.trim_end_matches('/').to_owned()
}

/// Follows local `$ref`s (`#/components/...`) from `value`, at most 32 deep.
pub fn resolve<'v>(root: &'v Value, value: &'v Value) -> Result<&'v Value, String> {
    match value.get("$ref").and_then(Value::as_str) {
        None => Ok(value),
        Some(reference) => follow(root, target(root, reference)?).map(|(_, v)| v),
    }
}

/// The value at `pointer`, following `$ref`s at most 32 deep, and the pointer it was
/// finally found at (schemas are compiled by that pointer).
pub fn follow<'v>(root: &'v Value, pointer: &str) -> Result<(String, &'v Value), String> {
    let mut pointer = pointer.to_owned();
    for _ in 0..32 {
        let value = root
            .pointer(&pointer)
            .ok_or_else(|| format!("nothing at `#{pointer}`"))?;
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => pointer = target(root, reference)?.to_owned(),
            None => return Ok((pointer, value)),
        }
    }
    Err("`$ref`s nest more than 32 deep (a cycle?)".to_owned())
}

/// The JSON Pointer a local `$ref` names, when it names something in `root`.
fn target<'r>(root: &Value, reference: &'r str) -> Result<&'r str, String> {
    reference
        .strip_prefix('#')
        .filter(|p| root.pointer(p).is_some())
        .ok_or_else(|| {
            format!("`$ref: {reference}` does not point inside this document (only local references are followed)")
        })
}

/// OpenAPI 3.0 writes "this may be null" as `nullable: true` beside `type`; JSON Schema
/// writes it as a type list (and `null` in an `enum`).
fn nullable_to_json_schema(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(t)) = map.get("type") {
                    let t = t.clone();
                    map.insert("type".into(), serde_json::json!([t, "null"]));
                }
                if let Some(Value::Array(values)) = map.get_mut("enum")
                    && !values.contains(&Value::Null)
                {
                    values.push(Value::Null);
                }
            }
            map.values_mut().for_each(nullable_to_json_schema);
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_to_json_schema),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(paths: Value) -> Document {
        Document::read(
            json!({"openapi": "3.0.3", "servers": [{"url": "https://x.example/v3/"}], "paths": paths}),
            None,
        )
        .expect("reads")
    }

    #[test]
    fn literal_segments_win_over_parameters() {
        let d = doc(
            json!({"/pet/{id}": {"get": {}}, "/pet/findByStatus": {"get": {}}, "/pet/{id}/image": {"post": {}}}),
        );
        assert_eq!(d.base_path, "/v3");
        let m = d.find("/v3/pet/findByStatus").expect("matches");
        assert_eq!(m.path.template, "/pet/findByStatus");
        let m = d.find("/v3/pet/7").expect("matches");
        assert_eq!(
            (m.path.template.as_str(), m.params.clone()),
            ("/pet/{id}", vec![("id", "7")])
        );
        assert_eq!(
            d.find("/v3/pet/7/image").expect("matches").path.methods,
            ["post"]
        );
        assert!(
            d.find("/v3/pet/").is_none(),
            "an empty parameter matches nothing"
        );
        assert!(d.find("/pet/7").is_none(), "outside the base path");
        assert!(d.find("/v3x/pet/7").is_none());
    }

    #[test]
    fn nullable_becomes_a_type_list() {
        let d = doc(
            json!({"/a": {"get": {"parameters": [{"name": "q", "in": "query", "schema": {"type": "string", "nullable": true, "enum": ["x"]}}]}}}),
        );
        let schema = d
            .root
            .pointer("/paths/~1a/get/parameters/0/schema")
            .expect("there");
        assert_eq!(schema["type"], json!(["string", "null"]));
        assert_eq!(schema["enum"], json!(["x", null]));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let read = |d: Value| Document::read(d, None).expect_err("refused");
        assert!(read(json!({"swagger": "2.0"})).contains("OpenAPI 3.0 and 3.1"));
        assert!(read(json!({"openapi": "3.2.0", "paths": {}})).contains("3.0.x or 3.1.x"));
        assert!(read(json!({"openapi": "3.1.0"})).contains("no `paths`"));
        assert!(read(json!({"openapi": "3.1.0", "paths": {"/a/x{b}": {}}})).contains("mixes text"));
    }
}
