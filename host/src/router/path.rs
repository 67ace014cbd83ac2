//! Path predicates and rewrites.

use regex::Regex;

/// How a route matches the request path.
#[derive(Debug)]
pub enum PathMatcher {
    Any,
    Exact(String),
    /// Segment-aware: `/api` matches `/api` and `/api/x`, not `/apix`. A prefix that ends
    /// with `/` matches anything below it.
    Prefix(String),
    Template(Template),
    /// Anchored at both ends.
    Regex(Regex),
}

/// Precedence of path kinds when several routes match (higher wins), then a length or
/// literal count that makes the more specific pattern win within a kind.
impl PathMatcher {
    pub fn rank(&self) -> (u8, usize) {
        match self {
            Self::Exact(p) => (4, p.len()),
            Self::Template(t) => (3, t.literal_len),
            Self::Regex(r) => (2, r.as_str().len()),
            Self::Prefix(p) => (1, p.len()),
            Self::Any => (0, 0),
        }
    }

    /// The regex behind a template or regex matcher, for the router's prefilter set.
    pub fn pattern(&self) -> Option<&str> {
        match self {
            Self::Template(t) => Some(t.regex.as_str()),
            Self::Regex(r) => Some(r.as_str()),
            _ => None,
        }
    }

    /// Matches `path`; template parameters are pushed into `params`.
    pub fn matches(&self, path: &str, params: &mut Vec<(String, String)>) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(p) => p == path,
            Self::Prefix(p) => prefix_matches(p, path),
            Self::Template(t) => t.capture(path, params),
            Self::Regex(r) => r.is_match(path),
        }
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        && (prefix.ends_with('/')
            || path.len() == prefix.len()
            || path.as_bytes()[prefix.len()] == b'/')
}

/// `/users/{id}/posts/{post}`: each `{name}` matches one non-empty segment.
#[derive(Debug)]
pub struct Template {
    regex: Regex,
    pub names: Vec<String>,
    literal_len: usize,
}

impl Template {
    pub fn parse(template: &str) -> Result<Self, String> {
        if !template.starts_with('/') {
            return Err("a path template must start with `/`".into());
        }
        let mut pattern = String::from("^");
        let mut names: Vec<String> = Vec::new();
        let mut literal_len = 0;
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let literal = &rest[..open];
            if literal.contains('}') {
                return Err("unbalanced `}` in path template".into());
            }
            pattern.push_str(&regex::escape(literal));
            literal_len += literal.len();
            let close = rest[open..]
                .find('}')
                .ok_or("unclosed `{` in path template")?
                + open;
            let name = &rest[open + 1..close];
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || name.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(format!(
                    "`{{{name}}}` is not a valid parameter name (letters, digits, `_`)"
                ));
            }
            if names.iter().any(|n| n == name) {
                return Err(format!("parameter `{name}` appears twice"));
            }
            pattern.push_str(&format!("(?P<{name}>[^/]+)"));
            names.push(name.to_owned());
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err("unbalanced `}` in path template".into());
        }
        pattern.push_str(&regex::escape(rest));
        literal_len += rest.len();
        pattern.push('$');
        let regex = Regex::new(&pattern).map_err(|e| e.to_string())?;
        Ok(Self {
            regex,
            names,
            literal_len,
        })
    }

    fn capture(&self, path: &str, params: &mut Vec<(String, String)>) -> bool {
        let Some(caps) = self.regex.captures(path) else {
            return false;
        };
        for name in &self.names {
            if let Some(m) = caps.name(name) {
                params.push((name.clone(), m.as_str().to_owned()));
            }
        }
        true
    }
}

/// How the path is changed before the request goes upstream.
#[derive(Debug)]
pub enum Rewrite {
    StripPrefix(String),
    /// Literal pieces and parameter names, in order.
    Template(Vec<TemplatePiece>),
}

#[derive(Debug)]
pub enum TemplatePiece {
    Literal(String),
    Param(String),
}

impl Rewrite {
    /// Parses a rewrite template; every `{name}` must be one of `available`.
    pub fn template(template: &str, available: &[String]) -> Result<Self, String> {
        if !template.starts_with('/') {
            return Err("a rewrite template must start with `/`".into());
        }
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            pieces.push(TemplatePiece::Literal(rest[..open].to_owned()));
            let close = rest[open..]
                .find('}')
                .ok_or("unclosed `{` in rewrite template")?
                + open;
            let name = &rest[open + 1..close];
            if !available.iter().any(|a| a == name) {
                return Err(format!(
                    "`{{{name}}}` is not a parameter of this route's path template"
                ));
            }
            pieces.push(TemplatePiece::Param(name.to_owned()));
            rest = &rest[close + 1..];
        }
        pieces.push(TemplatePiece::Literal(rest.to_owned()));
        Ok(Self::Template(pieces))
    }

    pub fn apply(&self, path: &str, params: &[(String, String)]) -> String {
        match self {
            Self::StripPrefix(prefix) => {
                let rest = path.strip_prefix(prefix.as_str()).unwrap_or(path);
                if rest.starts_with('/') {
                    rest.to_owned()
                } else {
                    format!("/{rest}")
                }
            }
            Self::Template(pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        TemplatePiece::Literal(l) => out.push_str(l),
                        TemplatePiece::Param(name) => {
                            if let Some((_, v)) = params.iter().find(|(n, _)| n == name) {
                                out.push_str(v);
                            }
                        }
                    }
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_segment_aware() {
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/users"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(prefix_matches("/api/", "/api/x"));
        assert!(prefix_matches("/", "/anything"));
    }

    #[test]
    fn template_captures_named_segments() {
        let t = Template::parse("/users/{id}/posts/{post_id}").expect("valid");
        let mut params = Vec::new();
        assert!(t.capture("/users/42/posts/7", &mut params));
        assert_eq!(
            params,
            vec![("id".into(), "42".into()), ("post_id".into(), "7".into())]
        );
        assert!(!t.capture("/users/42/posts/", &mut Vec::new()));
        assert!(!t.capture("/users/4/2/posts/7", &mut Vec::new()));
    }

    #[test]
    fn template_rejects_bad_names() {
        assert!(Template::parse("/users/{}").is_err());
        assert!(Template::parse("/users/{a-b}").is_err());
        assert!(Template::parse("/users/{id}/{id}").is_err());
        assert!(Template::parse("/users/{id").is_err());
        assert!(Template::parse("users").is_err());
    }

    #[test]
    fn rewrites() {
        let strip = Rewrite::StripPrefix("/api".into());
        assert_eq!(strip.apply("/api/users", &[]), "/users");
        assert_eq!(strip.apply("/api", &[]), "/");
        let names = vec!["id".to_owned()];
        let t = Rewrite::template("/v2/accounts/{id}/profile", &names).expect("valid");
        assert_eq!(
            t.apply("/users/9", &[("id".into(), "9".into())]),
            "/v2/accounts/9/profile"
        );
        assert!(Rewrite::template("/v2/{nope}", &names).is_err());
    }
}
