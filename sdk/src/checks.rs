//! Checks plugin configs share, so every plugin refuses the same bad values with the same
//! words at load time.

/// Whether `name` is a header name the gateway accepts from plugins: lowercase token
/// characters (RFC 9110), which is how HTTP/2 and the gateway spell every header.
pub fn is_header_name(name: &str) -> bool {
    portcullis_contract::edit::is_token(name) && !name.bytes().any(|b| b.is_ascii_uppercase())
}

/// Headers the gateway owns (framing, hop-by-hop, `host`): a plugin's edit of them is
/// refused with `edit-error.forbidden`.
pub use portcullis_contract::edit::GATEWAY_HEADERS;

/// Refuses a `realm` that would break out of the quoted string of a `WWW-Authenticate`
/// challenge.
pub fn realm(realm: &str) -> Result<(), String> {
    if realm.contains(['"', '\\']) || realm.chars().any(char::is_control) {
        return Err("`realm` must not contain quotes, backslashes or control characters".into());
    }
    Ok(())
}

/// A required value in a config: one accepted value, or a list of them (TOML `tenant =
/// "acme"` or `role = ["admin", "ops"]`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum Accepted {
    // `Many` first: untagged variants are tried in order, and a list is also a `Value`.
    Many(Vec<serde_json::Value>),
    One(serde_json::Value),
}

impl Accepted {
    pub fn values(&self) -> &[serde_json::Value] {
        match self {
            Self::One(v) => std::slice::from_ref(v),
            Self::Many(vs) => vs,
        }
    }

    /// Whether `value` satisfies the requirement: a list value (roles, groups) when it
    /// holds an accepted value, any other when it equals one.
    pub fn accepts(&self, value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::Array(items) => items.iter().any(|i| self.values().contains(i)),
            v => self.values().contains(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_and_realms() {
        assert!(is_header_name("x-api-key"));
        assert!(!is_header_name("X-Api-Key"));
        assert!(!is_header_name("x key"));
        assert!(!is_header_name(""));
        assert!(realm("orders api").is_ok());
        assert!(realm("a\", error=\"x").is_err());
    }

    #[test]
    fn accepted_values_match_single_and_list_claims() {
        let one: Accepted = serde_json::from_str("\"acme\"").expect("one");
        let many: Accepted = serde_json::from_str("[\"admin\", \"ops\"]").expect("many");
        assert!(one.accepts(&serde_json::json!("acme")));
        assert!(!one.accepts(&serde_json::json!("other")));
        assert!(many.accepts(&serde_json::json!(["user", "ops"])));
        assert!(!many.accepts(&serde_json::json!(["user"])));
        assert!(many.accepts(&serde_json::json!("admin")));
    }
}
