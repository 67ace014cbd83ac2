//! Parameters arrive as text; their schemas speak of integers, booleans and arrays. A value
//! is read as the first type of its schema it parses as, and left as a string otherwise,
//! so the schema's own `type` check reports it ("not of type integer").

use serde_json::{Number, Value};

use crate::document::resolve;

/// The JSON types a parameter's schema allows, and its items' for an array.
#[derive(Debug, Default, Clone)]
pub struct Shape {
    types: Vec<Type>,
    items: Vec<Type>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Type {
    // Tried in this order: the narrowest reading first.
    Integer,
    Number,
    Boolean,
    String,
    Array,
    Object,
}

impl Shape {
    pub fn of(root: &Value, schema: &Value) -> Result<Self, String> {
        let schema = resolve(root, schema)?;
        let items = match schema.get("items") {
            Some(items) => types(resolve(root, items)?),
            None => Vec::new(),
        };
        Ok(Self {
            types: types(schema),
            items,
        })
    }

    pub fn is_array(&self) -> bool {
        self.types.contains(&Type::Array)
    }

    pub fn is_object(&self) -> bool {
        self.types.contains(&Type::Object)
    }

    /// A single value.
    pub fn scalar(&self, raw: &str) -> Value {
        read(&self.types, raw)
    }

    /// The values of an array parameter.
    pub fn array<'a>(&self, raw: impl Iterator<Item = &'a str>) -> Value {
        Value::Array(raw.map(|r| read(&self.items, r)).collect())
    }
}

fn types(schema: &Value) -> Vec<Type> {
    let names: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut types: Vec<Type> = names
        .into_iter()
        .filter_map(|n| match n {
            "integer" => Some(Type::Integer),
            "number" => Some(Type::Number),
            "boolean" => Some(Type::Boolean),
            "string" => Some(Type::String),
            "array" => Some(Type::Array),
            "object" => Some(Type::Object),
            _ => None,
        })
        .collect();
    types.sort();
    types
}

fn read(types: &[Type], raw: &str) -> Value {
    for t in types {
        let value = match t {
            Type::Integer => raw
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| raw.parse::<u64>().map(Value::from))
                .ok(),
            Type::Number => raw
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number),
            Type::Boolean => match raw {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
            Type::String | Type::Array | Type::Object => None,
        };
        if let Some(value) = value {
            return value;
        }
    }
    Value::String(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_take_the_first_type_they_parse_as() {
        let root = json!({"components": {"schemas": {"Id": {"type": ["integer", "string"]}}}});
        let shape =
            Shape::of(&root, &json!({"$ref": "#/components/schemas/Id"})).expect("resolves");
        assert_eq!(shape.scalar("42"), json!(42));
        assert_eq!(shape.scalar("abc"), json!("abc"));
        let number = Shape::of(&root, &json!({"type": "number"})).expect("shape");
        assert_eq!(number.scalar("2.5"), json!(2.5));
        assert_eq!(
            number.scalar("NaN"),
            json!("NaN"),
            "left for the type check to refuse"
        );
        let flags = Shape::of(
            &root,
            &json!({"type": "array", "items": {"type": "boolean"}}),
        )
        .expect("shape");
        assert!(flags.is_array());
        assert_eq!(flags.array(["true", "no"].into_iter()), json!([true, "no"]));
    }
}
