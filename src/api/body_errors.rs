//! Naming the field when a request body does not parse.
//!
//! poem-openapi reports a missing or mistyped field as `Expected input type "string", found
//! null. (occurred while parsing "UrlCheckCreate")`, without the field. When a body fails to
//! parse, the body is read again against the operation's schema in the published spec, and
//! the first problem is named the way the rest of the API names them: `name: required`,
//! `port: must be an integer`, `timeout_ms: must be 100 to 60000`. Pure.

use poem::http::StatusCode;
use serde_json::{Map, Value};

/// What to answer for a body that did not parse.
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// One problem with a value, at a path like `settings.url` or `expected_status[1]`.
#[derive(Debug, Clone, PartialEq)]
enum Problem {
    /// Missing or null where a value is required.
    Required(String),
    /// The wrong JSON type, or a value outside a closed set: the body could not be read.
    Shape(String, String),
    /// Read, but outside the documented range or length.
    Range(String, String),
    /// A field the schema does not have.
    Unknown(String),
}

/// Explains why `body` did not parse as the schema poem named in `reason`; `None` leaves
/// poem's own message (nothing more specific was found).
pub fn explain(spec: &Value, reason: &str, body: &[u8]) -> Option<Explained> {
    let bad = |message: String| Explained {
        status: StatusCode::BAD_REQUEST,
        code: "bad_request",
        message,
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(bad(
            "the body is empty: send a JSON object with Content-Type: application/json".into(),
        ));
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Some(bad(format!("the body is not valid JSON: {e}"))),
    };
    let schemas = spec.pointer("/components/schemas")?.as_object()?;
    let name = schema_names(reason).find(|n| schemas.contains_key(*n))?;
    let problem = check_object(schemas, &schemas[name], &value, "")?;
    Some(match problem {
        Problem::Required(path) => bad(format!("{path}: required")),
        Problem::Shape(path, why) if path.is_empty() => bad(format!("the body {why}")),
        Problem::Shape(path, why) => bad(format!("{path}: {why}")),
        Problem::Unknown(path) => bad(format!("{path}: unknown field")),
        Problem::Range(path, why) => Explained {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation_failed",
            message: format!("{path}: {why}"),
        },
    })
}

/// The quoted type names in poem's message (`parsing "X"`, `parse "X"`), innermost last.
fn schema_names(reason: &str) -> impl Iterator<Item = &str> {
    reason
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// A schema with `$ref` (or a lone `allOf` of one) followed.
fn resolve<'a>(schemas: &'a Map<String, Value>, schema: &'a Value) -> &'a Value {
    let reference = schema["$ref"]
        .as_str()
        .or_else(|| schema["allOf"][0]["$ref"].as_str());
    match reference.and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => schemas.get(name).unwrap_or(schema),
        None => schema,
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn check_object(
    schemas: &Map<String, Value>,
    schema: &Value,
    value: &Value,
    path: &str,
) -> Option<Problem> {
    let schema = resolve(schemas, schema);
    let Some(object) = value.as_object() else {
        return Some(Problem::Shape(path.into(), "must be a JSON object".into()));
    };
    let properties = schema["properties"].as_object();
    for required in schema["required"].as_array().into_iter().flatten() {
        let Some(field) = required.as_str() else {
            continue;
        };
        if object.get(field).is_none_or(Value::is_null) {
            return Some(Problem::Required(join(path, field)));
        }
    }
    if let Some(properties) = properties {
        for (field, v) in object {
            if let Some(p) = properties.get(field)
                && let Some(problem) = check_value(schemas, p, v, &join(path, field))
            {
                return Some(problem);
            }
        }
        if let Some(field) = object.keys().find(|k| !properties.contains_key(*k)) {
            return Some(Problem::Unknown(join(path, field)));
        }
    } else if let Some(each) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        for (field, v) in object {
            if let Some(problem) = check_value(schemas, each, v, &join(path, field)) {
                return Some(problem);
            }
        }
    }
    None
}

fn number(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 => format!("{}", f as i64),
        Some(f) => f.to_string(),
        None => v.to_string(),
    }
}

/// Checks `minimum`/`maximum`-style bounds of the value at `path`: `value` is the number or
/// length checked.
fn bounds(
    path: &str,
    schema: &Value,
    low: &str,
    high: &str,
    value: f64,
    unit: &str,
) -> Option<Problem> {
    let (min, max) = (schema[low].as_f64(), schema[high].as_f64());
    if min.is_none_or(|m| value >= m) && max.is_none_or(|m| value <= m) {
        return None;
    }
    let (lo, hi) = (&schema[low], &schema[high]);
    let why = match (min, max) {
        (Some(_), Some(_)) => format!("must be {} to {}{unit}", number(lo), number(hi)),
        (Some(_), None) => format!("must be at least {}{unit}", number(lo)),
        _ => format!("must be at most {}{unit}", number(hi)),
    };
    Some(Problem::Range(path.into(), why))
}

fn check_value(
    schemas: &Map<String, Value>,
    schema: &Value,
    value: &Value,
    path: &str,
) -> Option<Problem> {
    let schema = resolve(schemas, schema);
    // An optional field may be null; a required one is checked by its object.
    if value.is_null() {
        return None;
    }
    let shape = |why: &str| Some(Problem::Shape(path.into(), why.into()));
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed
            .iter()
            .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_owned))
            .collect();
        return shape(&format!("must be one of {}", names.join(", ")));
    }
    match schema["type"].as_str() {
        Some("string") => {
            let Some(s) = value.as_str() else {
                return shape("must be a string");
            };
            bounds(
                path,
                schema,
                "minLength",
                "maxLength",
                s.chars().count() as f64,
                " characters",
            )
        }
        Some("integer") => {
            if !(value.is_i64() || value.is_u64()) {
                return shape("must be an integer");
            }
            let unsigned = schema["format"]
                .as_str()
                .is_some_and(|f| f.starts_with("uint"));
            if unsigned && value.as_i64().is_some_and(|n| n < 0) {
                return Some(Problem::Range(path.into(), "must be 0 or more".into()));
            }
            let n = value.as_f64().unwrap_or_default();
            bounds(path, schema, "minimum", "maximum", n, "")
        }
        Some("number") => {
            let Some(n) = value.as_f64() else {
                return shape("must be a number");
            };
            bounds(path, schema, "minimum", "maximum", n, "")
        }
        Some("boolean") => (!value.is_boolean())
            .then(|| Problem::Shape(path.into(), "must be true or false".into())),
        Some("array") => {
            let Some(items) = value.as_array() else {
                return shape("must be an array");
            };
            for (i, item) in items.iter().enumerate() {
                if let Some(problem) =
                    check_value(schemas, &schema["items"], item, &format!("{path}[{i}]"))
                {
                    return Some(problem);
                }
            }
            bounds(
                path,
                schema,
                "minItems",
                "maxItems",
                items.len() as f64,
                " items",
            )
        }
        Some("object") => check_object(schemas, schema, value, path),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Value {
        json!({"components": {"schemas": {
            "Level": {"type": "string", "enum": ["info", "warning", "critical"]},
            "Thing": {
                "type": "object",
                "required": ["name", "url"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 8},
                    "url": {"type": "string"},
                    "port": {"type": "integer", "format": "uint32", "minimum": 1.0, "maximum": 65535.0},
                    "ratio": {"type": "number", "maximum": 1.0},
                    "on": {"type": "boolean"},
                    "level": {"allOf": [{"$ref": "#/components/schemas/Level"}]},
                    "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}},
                    "settings": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            }
        }}})
    }

    fn said(body: &str) -> (u16, String) {
        let reason =
            r#"Expected input type "string", found null. (occurred while parsing "Thing")"#;
        let e = explain(&spec(), reason, body.as_bytes()).expect("explained");
        (e.status.as_u16(), e.message)
    }

    #[test]
    fn the_first_problem_is_named_by_its_field() {
        let cases = [
            (r#"{"url": "u"}"#, 400, "name: required"),
            (r#"{"name": null, "url": "u"}"#, 400, "name: required"),
            (r#"{"name": 5, "url": "u"}"#, 400, "name: must be a string"),
            (
                r#"{"name": "n", "url": "u", "port": "22"}"#,
                400,
                "port: must be an integer",
            ),
            (
                r#"{"name": "n", "url": "u", "port": 1.5}"#,
                400,
                "port: must be an integer",
            ),
            (
                r#"{"name": "n", "url": "u", "port": 0}"#,
                422,
                "port: must be 1 to 65535",
            ),
            (
                r#"{"name": "n", "url": "u", "port": -3}"#,
                422,
                "port: must be 0 or more",
            ),
            (
                r#"{"name": "", "url": "u"}"#,
                422,
                "name: must be 1 to 8 characters",
            ),
            (
                r#"{"name": "n", "url": "u", "ratio": 2}"#,
                422,
                "ratio: must be at most 1",
            ),
            (
                r#"{"name": "n", "url": "u", "on": "yes"}"#,
                400,
                "on: must be true or false",
            ),
            (
                r#"{"name": "n", "url": "u", "level": "loud"}"#,
                400,
                "level: must be one of info, warning, critical",
            ),
            (
                r#"{"name": "n", "url": "u", "tags": ["ab", 3]}"#,
                400,
                "tags[1]: must be a string",
            ),
            (
                r#"{"name": "n", "url": "u", "tags": ["abcd"]}"#,
                422,
                "tags[0]: must be at most 3 characters",
            ),
            (
                r#"{"name": "n", "url": "u", "settings": {"a": 1}}"#,
                400,
                "settings.a: must be a string",
            ),
            (
                r#"{"name": "n", "url": "u", "sudo": 1}"#,
                400,
                "sudo: unknown field",
            ),
            ("[]", 400, "the body must be a JSON object"),
            ("{\"name\": ", 400, "the body is not valid JSON"),
            ("", 400, "the body is empty"),
        ];
        for (body, status, message) in cases {
            let (s, m) = said(body);
            assert_eq!(s, status, "{body}: {m}");
            assert!(m.starts_with(message), "{body}: {m}");
        }
    }

    #[test]
    fn a_body_with_nothing_to_name_keeps_the_library_message() {
        let reason = r#"failed to parse "Thing""#;
        assert_eq!(
            explain(&spec(), reason, br#"{"name": "n", "url": "u"}"#),
            None
        );
        assert_eq!(explain(&spec(), r#"parsing "Other""#, br#"{}"#), None);
    }
}
