//! JSON Pointer (RFC 6901) edits: set a value (creating the objects on the way) or remove
//! one.

use serde_json::Value;

/// The reference tokens of a pointer, unescaped (`~1` is `/`, `~0` is `~`).
pub fn tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| format!("JSON pointer `{pointer}` must start with `/`"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// Sets the value at `tokens`, creating missing objects on the way; `-` appends to an
/// array. Fails (leaving the document as it was) when the way is blocked by a scalar or an
/// out-of-range index.
pub fn set(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    let mut at = doc;
    for token in parents {
        at = match at {
            Value::Object(map) => map
                .entry(token.clone())
                .or_insert_with(|| Value::Object(Default::default())),
            Value::Array(items) => {
                let i = index(token, items.len())?;
                &mut items[i]
            }
            _ => {
                return Err(format!(
                    "`{token}` is inside a value that is not a container"
                ));
            }
        };
    }
    match at {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) if last == "-" => {
            items.push(value);
            Ok(())
        }
        Value::Array(items) => {
            let i = index(last, items.len())?;
            items[i] = value;
            Ok(())
        }
        _ => Err(format!(
            "`{last}` is inside a value that is not a container"
        )),
    }
}

/// Removes the value at `tokens`; nothing happens when there is none.
pub fn remove(doc: &mut Value, tokens: &[String]) {
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut at = doc;
    for token in parents {
        let next = match at {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        };
        match next {
            Some(n) => at = n,
            None => return,
        }
    }
    match at {
        Value::Object(map) => {
            map.remove(last);
        }
        Value::Array(items) => {
            if let Ok(i) = last.parse::<usize>()
                && i < items.len()
            {
                items.remove(i);
            }
        }
        _ => {}
    }
}

fn index(token: &str, len: usize) -> Result<usize, String> {
    token
        .parse::<usize>()
        .ok()
        .filter(|i| *i < len)
        .ok_or_else(|| format!("`{token}` is not an index of an array of {len}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_creates_the_way_and_remove_is_quiet_when_absent() {
        let mut doc = json!({ "a": { "b": 1 }, "list": [1, 2], "x/y": 0 });
        set(
            &mut doc,
            &tokens("/a/c/d").expect("test input"),
            json!("new"),
        )
        .expect("test input");
        set(&mut doc, &tokens("/list/-").expect("test input"), json!(3)).expect("test input");
        set(&mut doc, &tokens("/list/0").expect("test input"), json!(0)).expect("test input");
        assert!(set(&mut doc, &tokens("/list/9").expect("test input"), json!(0)).is_err());
        assert!(set(&mut doc, &tokens("/a/b/c").expect("test input"), json!(0)).is_err());
        remove(&mut doc, &tokens("/x~1y").expect("test input"));
        remove(&mut doc, &tokens("/missing/deep").expect("test input"));
        remove(&mut doc, &tokens("/list/1").expect("test input"));
        assert_eq!(
            doc,
            json!({ "a": { "b": 1, "c": { "d": "new" } }, "list": [0, 3] })
        );
        assert!(tokens("no-slash").is_err());
    }
}
