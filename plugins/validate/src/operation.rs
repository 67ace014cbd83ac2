//! One operation of the document compiled for checking requests: its parameters (merged
//! from the path item and the operation) and its request body, each with a JSON Schema
//! validator built from the document's own schema (`$ref`s resolved inside it).

use jsonschema::{Registry, Validator};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::document::{DOCUMENT_URI, Document, follow};
use crate::params::Shape;

/// Where a parameter is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Path,
    Query,
    Header,
}

impl Location {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Query => "query",
            Self::Header => "headers",
        }
    }
}

#[derive(Debug)]
pub struct Param {
    /// As written; header names lowercased.
    pub name: String,
    pub location: Location,
    pub required: bool,
    /// Query arrays: repeated parameters (`explode`, the default) or one comma-separated
    /// value. Path and header arrays are always comma-separated (style `simple`).
    pub explode: bool,
    pub shape: Shape,
    /// `None` when the parameter has no schema this plugin checks (`content`, objects).
    pub validator: Option<Validator>,
}

#[derive(Debug)]
pub struct Body {
    pub required: bool,
    pub media: Vec<Media>,
}

/// One entry of `requestBody.content`.
#[derive(Debug)]
pub struct Media {
    /// Lowercase, without parameters: `application/json`, `image/*`, `*/*`.
    pub range: String,
    /// Whether bodies of this type are parsed as JSON and checked against the schema.
    pub validator: Option<Validator>,
}

#[derive(Debug)]
pub struct Operation {
    pub params: Vec<Param>,
    pub body: Option<Body>,
}

/// Characters a JSON Pointer in a URI fragment may keep as they are.
const FRAGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'~')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

/// `a/b~c` → `a~1b~0c` (RFC 6901).
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The registry every validator of one document resolves `$ref`s in.
pub fn registry(document: &Document) -> Result<Registry<'static>, String> {
    Registry::new()
        .draft(document.dialect.draft())
        .add(DOCUMENT_URI, std::sync::Arc::clone(&document.root))
        .and_then(|r| r.prepare())
        .map_err(|e| format!("the document's schemas cannot be indexed: {e}"))
}

impl Operation {
    /// Compiles `method` (lowercase) of path `template`.
    pub fn compile(
        document: &Document,
        registry: &Registry<'static>,
        template: &str,
        method: &str,
    ) -> Result<Self, String> {
        let at = |what: &str| format!("{} {template}: {what}", method.to_uppercase());
        let item_pointer = format!("/paths/{}", escape(template));
        let (item_pointer, item) = follow(&document.root, &item_pointer).map_err(|e| at(&e))?;
        let op_pointer = format!("{item_pointer}/{method}");
        let op = item.get(method).ok_or_else(|| at("no such operation"))?;

        // Path-item parameters first; the operation's replace those of the same name and
        // location.
        let mut params: Vec<Param> = Vec::new();
        for (list_pointer, list) in [
            (format!("{item_pointer}/parameters"), item.get("parameters")),
            (format!("{op_pointer}/parameters"), op.get("parameters")),
        ] {
            let Some(list) = list else { continue };
            let list = list
                .as_array()
                .ok_or_else(|| at("`parameters` is not a list"))?;
            for i in 0..list.len() {
                let Some(param) =
                    Param::compile(document, registry, &format!("{list_pointer}/{i}"))
                        .map_err(|e| at(&e))?
                else {
                    continue;
                };
                params.retain(|p| !(p.name == param.name && p.location == param.location));
                params.push(param);
            }
        }

        let body = match op.get("requestBody") {
            None => None,
            Some(_) => Some(
                Body::compile(document, registry, &format!("{op_pointer}/requestBody"))
                    .map_err(|e| at(&e))?,
            ),
        };
        Ok(Self { params, body })
    }
}

impl Param {
    /// `None` for parameters this plugin does not check (cookies) and for the headers
    /// OpenAPI says to ignore.
    fn compile(
        document: &Document,
        registry: &Registry<'static>,
        pointer: &str,
    ) -> Result<Option<Self>, String> {
        let (pointer, param) = follow(&document.root, pointer)?;
        let name = param
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("parameter at {pointer} has no `name`"))?;
        let location = match param.get("in").and_then(Value::as_str) {
            Some("path") => Location::Path,
            Some("query") => Location::Query,
            Some("header") => Location::Header,
            Some("cookie") => return Ok(None),
            other => {
                return Err(format!(
                    "parameter `{name}`: `in` is {other:?}; expected path, query, header or cookie"
                ));
            }
        };
        let name = if location == Location::Header {
            let lower = name.to_ascii_lowercase();
            // OpenAPI: these are described elsewhere, a header parameter of that name is
            // ignored.
            if matches!(lower.as_str(), "accept" | "content-type" | "authorization") {
                return Ok(None);
            }
            lower
        } else {
            name.to_owned()
        };
        let required = location == Location::Path
            || param.get("required").and_then(Value::as_bool) == Some(true);
        let explode = param
            .get("explode")
            .and_then(Value::as_bool)
            .unwrap_or(location == Location::Query);
        let (shape, validator) = match param.get("schema") {
            Some(schema) => {
                let shape = Shape::of(&document.root, schema)?;
                let validator = if shape.is_object() {
                    None
                } else {
                    Some(
                        validator(document, registry, &format!("{pointer}/schema"))
                            .map_err(|e| format!("parameter `{name}`: {e}"))?,
                    )
                };
                (shape, validator)
            }
            None => (Shape::default(), None),
        };
        Ok(Some(Self {
            name,
            location,
            required,
            explode,
            shape,
            validator,
        }))
    }
}

impl Body {
    fn compile(
        document: &Document,
        registry: &Registry<'static>,
        pointer: &str,
    ) -> Result<Self, String> {
        let (pointer, body) = follow(&document.root, pointer)?;
        let required = body.get("required").and_then(Value::as_bool) == Some(true);
        let mut media = Vec::new();
        if let Some(content) = body.get("content").and_then(Value::as_object) {
            for (range, entry) in content {
                let range_lower = media_type(range);
                let validator = if is_json(&range_lower) && entry.get("schema").is_some() {
                    let schema_pointer = format!("{pointer}/content/{}/schema", escape(range));
                    Some(
                        validator(document, registry, &schema_pointer)
                            .map_err(|e| format!("request body `{range}`: {e}"))?,
                    )
                } else {
                    None
                };
                media.push(Media {
                    range: range_lower,
                    validator,
                });
            }
        }
        Ok(Self { required, media })
    }

    /// The entry for a request's `Content-Type` (already lowercased, parameters dropped):
    /// the exact type, else `type/*`, else `*/*`.
    pub fn media_for(&self, content_type: &str) -> Option<&Media> {
        let major = content_type.split('/').next().unwrap_or_default();
        self.media
            .iter()
            .find(|m| m.range == content_type)
            .or_else(|| {
                self.media
                    .iter()
                    .find(|m| m.range.strip_suffix("/*") == Some(major))
            })
            .or_else(|| self.media.iter().find(|m| m.range == "*/*"))
    }
}

/// `Application/JSON; charset=utf-8` → `application/json`.
pub fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// `application/json`, `application/problem+json`, `application/*+json`.
fn is_json(range: &str) -> bool {
    range
        .split_once('/')
        .is_some_and(|(_, sub)| sub == "json" || sub.ends_with("+json"))
}

fn validator(
    document: &Document,
    registry: &Registry<'static>,
    pointer: &str,
) -> Result<Validator, String> {
    let reference = format!("{DOCUMENT_URI}#{}", utf8_percent_encode(pointer, FRAGMENT));
    // Formats are checked (`date-time`, `email`, `uuid`, ...) whatever the draft's default;
    // OpenAPI's own (`int64`, `binary`) are not JSON Schema's and are ignored.
    jsonschema::options()
        .with_draft(document.dialect.draft())
        .with_registry(registry)
        .should_validate_formats(true)
        .should_ignore_unknown_formats(true)
        .build(&json!({ "$ref": reference }))
        .map_err(|e| format!("schema at `#{pointer}` does not compile: {e}"))
}
