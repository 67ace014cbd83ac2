//! Checks plugin configs share, so every plugin refuses the same bad values with the same
//! words at load time.

/// Whether `name` is a header name the gateway accepts from plugins: lowercase token
/// characters (RFC 9110), which is how HTTP/2 and the gateway spell every header.
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b)
        })
}

/// Refuses a `realm` that would break out of the quoted string of a `WWW-Authenticate`
/// challenge.
pub fn realm(realm: &str) -> Result<(), String> {
    if realm.contains(['"', '\\']) || realm.chars().any(char::is_control) {
        return Err("`realm` must not contain quotes, backslashes or control characters".into());
    }
    Ok(())
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
}
