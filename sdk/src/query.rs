//! Query-string parameters: read, remove and add them without disturbing the rest.
//!
//! Parameters other than the ones edited keep their exact bytes (their encoding, order and
//! repeats), so an upstream that signs or caches on the query sees what the client sent.

use std::borrow::Cow;

/// The decoded name and value of one `name=value` pair.
fn decode(pair: &str) -> (Cow<'_, str>, Cow<'_, str>) {
    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
    (decode_part(name), decode_part(value))
}

fn decode_part(part: &str) -> Cow<'_, str> {
    if !part.contains(['%', '+']) {
        return Cow::Borrowed(part);
    }
    let bytes: Vec<u8> = form_urlencoded::parse(format!("x={part}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    Cow::Owned(String::from_utf8_lossy(&bytes).into_owned())
}

fn pairs(query: &str) -> impl Iterator<Item = &str> {
    query.split('&').filter(|p| !p.is_empty())
}

/// The first value of parameter `name`, decoded.
pub fn get(query: &str, name: &str) -> Option<String> {
    pairs(query)
        .map(decode)
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// Every value of parameter `name`, decoded, in order.
pub fn get_all(query: &str, name: &str) -> Vec<String> {
    pairs(query)
        .map(decode)
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// The query without any `name` parameter; `None` when nothing is left.
pub fn remove(query: &str, name: &str) -> Option<String> {
    let kept: Vec<&str> = pairs(query).filter(|p| decode(p).0 != name).collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// The query with `name=value` added at the end (encoded as a form would).
pub fn append(query: Option<&str>, name: &str, value: &str) -> String {
    let pair = form_urlencoded::Serializer::new(String::new())
        .append_pair(name, value)
        .finish();
    match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{q}&{pair}"),
        None => pair,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_decoded_values_and_removes_without_reencoding_the_rest() {
        let q = "a=1&api_key=s%3Dcret&b=x+y&api_key=two&c=%7E";
        assert_eq!(get(q, "api_key").as_deref(), Some("s=cret"));
        assert_eq!(get_all(q, "api_key"), ["s=cret", "two"]);
        assert_eq!(get(q, "b").as_deref(), Some("x y"));
        assert_eq!(get(q, "missing"), None);
        assert_eq!(remove(q, "api_key").as_deref(), Some("a=1&b=x+y&c=%7E"));
        assert_eq!(remove("api_key=1", "api_key"), None);
        assert_eq!(append(Some("a=1"), "k", "v w"), "a=1&k=v+w");
        assert_eq!(append(None, "k", "&"), "k=%26");
    }
}
