//! Finding the token in the one place the config names, and taking it off the request.

use portcullis_sdk::Request;

use crate::config::TokenSource;

/// What the request carries where the token is expected.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// Nothing (or another authentication scheme): RFC 6750's "no credentials".
    Missing,
    /// More than one token: refused rather than guessed between.
    Ambiguous,
    Token(String),
}

pub fn find(source: &TokenSource, request: &Request<'_>) -> Found {
    let mut tokens: Vec<String> = match (&source.header, &source.cookie) {
        (Some(header), _) => request
            .header_all(header)
            .into_iter()
            .filter_map(|v| {
                if header == "authorization" {
                    bearer(&v).map(str::to_owned)
                } else {
                    Some(v.trim().to_owned())
                }
            })
            .collect(),
        (None, Some(cookie)) => request
            .header_all("cookie")
            .iter()
            .flat_map(|v| cookies(v))
            .filter(|(name, _)| name == cookie)
            .map(|(_, value)| value.to_owned())
            .collect(),
        (None, None) => Vec::new(),
    };
    tokens.retain(|t| !t.is_empty());
    match tokens.len() {
        0 => Found::Missing,
        1 => Found::Token(tokens.remove(0)),
        _ => Found::Ambiguous,
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

fn cookies(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        Some((name.trim(), value.trim().trim_matches('"')))
    })
}

/// Removes the token from where it was found, leaving everything else as it was.
pub fn remove(source: &TokenSource, request: &mut Request<'_>) -> portcullis_sdk::Result<()> {
    match (&source.header, &source.cookie) {
        (Some(header), _) => request.remove_header(header)?,
        (None, Some(cookie)) => {
            let kept: Vec<String> = request
                .header_all("cookie")
                .iter()
                .flat_map(|v| v.split(';'))
                .map(str::trim)
                .filter(|pair| {
                    !pair.is_empty() && pair.split_once('=').is_none_or(|(n, _)| n.trim() != cookie)
                })
                .map(str::to_owned)
                .collect();
            if kept.is_empty() {
                request.remove_header("cookie")?;
            } else {
                request.set_header("cookie", &kept.join("; "))?;
            }
        }
        (None, None) => {}
    }
    Ok(())
}
