//! Path rewrites by template: `from = "/api/{version}/{rest*}"`, `to = "/{version}/{rest}"`.
//! `{name}` matches one segment, `{name*}` (last only) the rest of the path. A path that
//! does not match `from` is left as it is.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRewrite {
    pub from: String,
    pub to: String,
}

enum Segment<'a> {
    Literal(&'a str),
    One(&'a str),
    Rest(&'a str),
}

fn segments(template: &str) -> Vec<Segment<'_>> {
    template
        .trim_start_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => match name.strip_suffix('*') {
                    Some(rest) => Segment::Rest(rest),
                    None => Segment::One(name),
                },
                None => Segment::Literal(s),
            },
        )
        .collect()
}

/// The names `template` uses, as `{name}` or `{name*}`.
fn placeholders(template: &str) -> Vec<&str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(n, _)| n.trim_end_matches('*')))
        .collect()
}

impl PathRewrite {
    pub fn check(&self) -> Result<(), String> {
        for (what, t) in [("from", &self.from), ("to", &self.to)] {
            if !t.starts_with('/') || t.contains(['?', '#', ' ']) {
                return Err(format!(
                    "request.path.{what}: `{t}` must start with `/` and hold no `?`, `#` or spaces"
                ));
            }
        }
        let from = segments(&self.from);
        for (i, s) in from.iter().enumerate() {
            match s {
                Segment::Rest(_) if i + 1 != from.len() => {
                    return Err("request.path.from: `{name*}` must be the last segment".into());
                }
                Segment::One(n) | Segment::Rest(n) if n.is_empty() => {
                    return Err("request.path.from: a placeholder needs a name".into());
                }
                _ => {}
            }
        }
        let declared = placeholders(&self.from);
        if let Some(unknown) = placeholders(&self.to)
            .into_iter()
            .find(|n| !declared.contains(n))
        {
            return Err(format!(
                "request.path.to: `{{{unknown}}}` is not captured by `from`"
            ));
        }
        Ok(())
    }

    /// The rewritten path, if `path` matches `from`.
    pub fn apply(&self, path: &str) -> Option<String> {
        let mut captured: BTreeMap<&str, String> = BTreeMap::new();
        let mut parts = path.trim_start_matches('/').split('/').peekable();
        for segment in segments(&self.from) {
            match segment {
                Segment::Literal(l) => {
                    if parts.next()? != l {
                        return None;
                    }
                }
                Segment::One(name) => {
                    let part = parts.next().filter(|p| !p.is_empty())?;
                    captured.insert(name, part.to_owned());
                }
                Segment::Rest(name) => {
                    let rest: Vec<&str> = parts.by_ref().collect();
                    captured.insert(name, rest.join("/"));
                }
            }
        }
        if parts.peek().is_some() {
            return None;
        }
        let mut out = self.to.clone();
        for (name, value) in &captured {
            out = out
                .replace(&format!("{{{name}*}}"), value)
                .replace(&format!("{{{name}}}"), value);
        }
        // An empty rest capture must not leave `//` behind.
        while out.contains("//") {
            out = out.replace("//", "/");
        }
        if out.len() > 1 && out.ends_with('/') && !path.ends_with('/') {
            out.pop();
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(from: &str, to: &str) -> PathRewrite {
        PathRewrite {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn templates_capture_segments_and_the_rest() {
        let r = rw("/api/{version}/{rest*}", "/{version}/svc/{rest}");
        r.check().expect("test input");
        assert_eq!(
            r.apply("/api/v1/orders/7").as_deref(),
            Some("/v1/svc/orders/7")
        );
        assert_eq!(r.apply("/api/v1").as_deref(), Some("/v1/svc"));
        assert_eq!(r.apply("/other/v1/x"), None);
        let exact = rw("/old/{id}", "/new/{id}");
        assert_eq!(exact.apply("/old/5").as_deref(), Some("/new/5"));
        assert_eq!(exact.apply("/old/5/extra"), None);
        assert!(rw("/a/{x*}/b", "/").check().is_err());
        assert!(rw("/a/{x}", "/{y}").check().is_err());
    }
}
