//! A small JSON Schema checker, pure: the subset the model paths' output schemas use
//! (`type` object / array / string, `properties`, `required`, `additionalProperties: false`,
//! `items`, `minLength`, `maxLength`, `minItems`, `maxItems`). A keyword outside the subset is
//! refused by [`supported`], so a schema cannot silently promise a check that is not made.
//! Violations name where they are (`$.examples[2]`) and what was expected.

use serde_json::Value;

/// The keywords [`validate`] checks (plus `description`, `title` and `$schema`, which only
/// document).
pub const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "description",
    "title",
    "$schema",
];

/// Where a value broke its schema, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where: `$`, `$.term`, `$.examples[2]`.
    pub at: String,
    /// What was expected there.
    pub expected: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.expected)
    }
}

/// Whether `schema` uses only the checked subset: `Err` names the first keyword that is not.
///
/// # Errors
/// The path and name of an unsupported keyword.
pub fn supported(schema: &Value) -> Result<(), String> {
    fn walk(schema: &Value, at: &str) -> Result<(), String> {
        let Some(object) = schema.as_object() else {
            return Err(format!("{at}: a schema must be an object"));
        };
        for (keyword, value) in object {
            if !KEYWORDS.contains(&keyword.as_str()) {
                return Err(format!("{at}: keyword {keyword:?} is not checked"));
            }
            match keyword.as_str() {
                "properties" => {
                    for (name, property) in value.as_object().into_iter().flatten() {
                        walk(property, &format!("{at}.{name}"))?;
                    }
                }
                "items" => walk(value, &format!("{at}[]"))?,
                "additionalProperties" if value != &Value::Bool(false) => {
                    return Err(format!("{at}: only additionalProperties: false is checked"));
                }
                _ => {}
            }
        }
        Ok(())
    }
    walk(schema, "$")
}

/// Checks `value` against `schema` (the subset in the [module docs](self)).
///
/// # Errors
/// The first [`Violation`] found.
pub fn validate(schema: &Value, value: &Value) -> Result<(), Violation> {
    check(schema, value, "$")
}

fn violation(at: &str, expected: impl Into<String>) -> Violation {
    Violation {
        at: at.to_owned(),
        expected: expected.into(),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn limit(schema: &Value, keyword: &str) -> Option<usize> {
    schema
        .get(keyword)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
}

fn check(schema: &Value, value: &Value, at: &str) -> Result<(), Violation> {
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(object) = value.as_object() else {
                return Err(violation(
                    at,
                    format!("expected an object, found {}", type_name(value)),
                ));
            };
            let properties = schema.get("properties").and_then(Value::as_object);
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !object.contains_key(required) {
                    return Err(violation(
                        at,
                        format!("the required field {required:?} is missing"),
                    ));
                }
            }
            let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
            for (name, field) in object {
                match properties.and_then(|p| p.get(name)) {
                    Some(property) => check(property, field, &format!("{at}.{name}"))?,
                    None if closed => {
                        let known: Vec<&str> = properties
                            .map(|p| p.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        return Err(violation(
                            at,
                            format!(
                                "unexpected field {name:?} (the fields are {})",
                                known.join(", ")
                            ),
                        ));
                    }
                    None => {}
                }
            }
        }
        Some("array") => {
            let Some(items) = value.as_array() else {
                return Err(violation(
                    at,
                    format!("expected an array, found {}", type_name(value)),
                ));
            };
            if let Some(min) = limit(schema, "minItems")
                && items.len() < min
            {
                return Err(violation(
                    at,
                    format!("expected at least {min} items, found {}", items.len()),
                ));
            }
            if let Some(max) = limit(schema, "maxItems")
                && items.len() > max
            {
                return Err(violation(
                    at,
                    format!("expected at most {max} items, found {}", items.len()),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{at}[{index}]"))?;
                }
            }
        }
        Some("string") => {
            let Some(text) = value.as_str() else {
                return Err(violation(
                    at,
                    format!("expected a string, found {}", type_name(value)),
                ));
            };
            let length = text.chars().count();
            if let Some(min) = limit(schema, "minLength")
                && length < min
            {
                return Err(violation(
                    at,
                    if min == 1 {
                        "expected a non-empty string".to_owned()
                    } else {
                        format!("expected at least {min} characters, found {length}")
                    },
                ));
            }
            if let Some(max) = limit(schema, "maxLength")
                && length > max
            {
                return Err(violation(
                    at,
                    format!("expected at most {max} characters, found {length}"),
                ));
            }
        }
        Some(other) => {
            return Err(violation(
                at,
                format!("the schema's type {other:?} is not checked"),
            ));
        }
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["term", "examples"],
            "additionalProperties": false,
            "properties": {
                "term": {"type": "string", "minLength": 1, "maxLength": 10},
                "examples": {"type": "array", "maxItems": 2, "items": {"type": "string", "minLength": 1}}
            }
        })
    }

    #[test]
    fn a_valid_value_passes_and_each_violation_names_its_place() {
        let s = schema();
        assert_eq!(supported(&s), Ok(()));
        assert_eq!(
            validate(&s, &json!({"term": "pod", "examples": ["a"]})),
            Ok(())
        );
        let cases = [
            (json!([1]), "$", "expected an object, found an array"),
            (
                json!({"term": "pod"}),
                "$",
                "the required field \"examples\" is missing",
            ),
            (
                json!({"term": 3, "examples": []}),
                "$.term",
                "expected a string, found a number",
            ),
            (
                json!({"term": "", "examples": []}),
                "$.term",
                "expected a non-empty string",
            ),
            (
                json!({"term": "a".repeat(11), "examples": []}),
                "$.term",
                "expected at most 10 characters, found 11",
            ),
            (
                json!({"term": "a", "examples": ["x", ""]}),
                "$.examples[1]",
                "expected a non-empty string",
            ),
            (
                json!({"term": "a", "examples": ["x", "y", "z"]}),
                "$.examples",
                "expected at most 2 items, found 3",
            ),
            (
                json!({"term": "a", "examples": [], "extra": 1}),
                "$",
                "unexpected field \"extra\" (the fields are examples, term)",
            ),
        ];
        for (value, at, expected) in cases {
            let violation = validate(&s, &value).expect_err(&value.to_string());
            assert_eq!(
                (violation.at.as_str(), violation.expected.as_str()),
                (at, expected),
                "{value}"
            );
        }
    }

    #[test]
    fn keywords_outside_the_subset_are_refused() {
        assert!(
            supported(&json!({"type": "string", "pattern": "^a"}))
                .unwrap_err()
                .contains("pattern")
        );
        assert!(
            supported(&json!({"type": "object", "properties": {"x": {"enum": [1]}}}))
                .unwrap_err()
                .contains("$.x")
        );
        assert!(supported(&json!({"type": "object", "additionalProperties": true})).is_err());
    }
}
