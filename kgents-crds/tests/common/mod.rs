//! Helpers shared by the integration tests: the sample files and a structural schema checker.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A sample manifest from `deploy/examples/`.
#[derive(Debug, Clone)]
pub struct Sample {
    /// File name, for messages.
    pub file: String,
    /// The object, as JSON.
    pub object: Value,
    /// `# expect:` lines of the header (invalid samples only): substrings of the rejection.
    pub expected: Vec<String>,
}

impl Sample {
    /// `kind` of the object.
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    /// `metadata.name` of the object.
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }
}

fn read_samples(dir: &Path) -> Vec<Sample> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let expected = text
                .lines()
                .take_while(|line| line.starts_with('#'))
                .filter_map(|line| line.strip_prefix("# expect:"))
                .map(|expect| expect.trim().to_owned())
                .collect();
            let object: Value = serde_saphyr::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
            Sample {
                file: path
                    .file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned(),
                object,
                expected,
            }
        })
        .collect()
}

/// The valid samples in `deploy/examples/`.
pub fn valid_samples() -> Vec<Sample> {
    read_samples(&workspace_root().join("deploy/examples"))
}

/// The invalid samples in `deploy/examples/invalid/`, each with at least one `# expect:` line.
pub fn invalid_samples() -> Vec<Sample> {
    let samples = read_samples(&workspace_root().join("deploy/examples/invalid"));
    for sample in &samples {
        assert!(
            !sample.expected.is_empty(),
            "{} has no `# expect:` header line",
            sample.file
        );
    }
    samples
}

/// The openAPIV3Schema of a derived CRD, as JSON.
pub fn open_api_schema(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("derived CRDs carry an openAPIV3Schema");
    serde_json::to_value(schema).expect("schema serializes")
}

/// Checks `value` against a structural OpenAPI v3 schema the way the API server's schema
/// validation does for the keywords these CRDs use: type, nullable, enum, required, properties
/// (unknown fields are an error, as after pruning they would be silently lost),
/// additionalProperties, x-kubernetes-preserve-unknown-fields, x-kubernetes-int-or-string,
/// minLength/maxLength (in characters), maxItems, maxProperties, minimum/maximum,
/// list-type set/map uniqueness and format date-time. It does not evaluate CEL rules (use
/// `validate_cel` for those) and reports any `pattern` keyword as unchecked.
///
/// Returns every violation as `path: problem`.
pub fn structural_errors(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, "", &mut errors);
    errors
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let mut fail = |msg: String| {
        errors.push(format!(
            "{}: {msg}",
            if path.is_empty() { "<root>" } else { path }
        ))
    };
    if value.is_null() {
        if schema["nullable"] != Value::Bool(true) {
            fail("null but not nullable".into());
        }
        return;
    }
    if schema.get("pattern").is_some() {
        fail("schema uses `pattern`, which this checker does not evaluate".into());
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        fail(format!("{value} not in enum {allowed:?}"));
    }
    if schema["x-kubernetes-int-or-string"] == Value::Bool(true) {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            fail(format!("{value} is neither an integer nor a string"));
        }
        return;
    }
    let preserve_unknown = schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true);
    match schema["type"].as_str() {
        Some("string") => {
            let Some(s) = value.as_str() else {
                return fail(format!("{value} is not a string"));
            };
            let chars = s.chars().count() as u64;
            if let Some(max) = schema["maxLength"].as_u64()
                && chars > max
            {
                fail(format!("{chars} characters > maxLength {max}"));
            }
            if let Some(min) = schema["minLength"].as_u64()
                && chars < min
            {
                fail(format!("{chars} characters < minLength {min}"));
            }
            if schema["format"] == "date-time" && s.parse::<jiff::Timestamp>().is_err() {
                fail(format!("{s:?} is not an RFC 3339 date-time"));
            }
        }
        Some("integer") => {
            if !(value.is_i64() || value.is_u64()) {
                return fail(format!("{value} is not an integer"));
            }
            check_bounds(schema, value, &mut fail);
        }
        Some("number") => {
            if !value.is_number() {
                return fail(format!("{value} is not a number"));
            }
            check_bounds(schema, value, &mut fail);
        }
        Some("boolean") => {
            if !value.is_boolean() {
                fail(format!("{value} is not a boolean"));
            }
        }
        Some("array") => {
            let Some(items) = value.as_array() else {
                return fail(format!("{value} is not an array"));
            };
            if let Some(max) = schema["maxItems"].as_u64()
                && items.len() as u64 > max
            {
                fail(format!("{} items > maxItems {max}", items.len()));
            }
            match schema["x-kubernetes-list-type"].as_str() {
                Some("set") => {
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].contains(item) {
                            fail(format!("duplicate set item {item}"));
                        }
                    }
                }
                Some("map") => {
                    let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                        .as_array()
                        .map(|k| k.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let key_of =
                        |item: &Value| keys.iter().map(|k| item[*k].clone()).collect::<Vec<_>>();
                    for (i, item) in items.iter().enumerate() {
                        if items[..i]
                            .iter()
                            .any(|earlier| key_of(earlier) == key_of(item))
                        {
                            fail(format!("duplicate map-list key {:?}", key_of(item)));
                        }
                    }
                }
                _ => {}
            }
            for (i, item) in items.iter().enumerate() {
                check(&schema["items"], item, &format!("{path}[{i}]"), errors);
            }
        }
        Some("object") => {
            let Some(object) = value.as_object() else {
                return fail(format!("{value} is not an object"));
            };
            if let Some(max) = schema["maxProperties"].as_u64()
                && object.len() as u64 > max
            {
                fail(format!("{} properties > maxProperties {max}", object.len()));
            }
            for required in schema["required"].as_array().into_iter().flatten() {
                let required = required.as_str().unwrap_or_default();
                if !object.contains_key(required) {
                    fail(format!("required property {required} missing"));
                }
            }
            let properties = schema["properties"].as_object();
            for (key, child) in object {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
                    check(child_schema, child, &child_path, errors);
                } else if schema["additionalProperties"].is_object() {
                    check(&schema["additionalProperties"], child, &child_path, errors);
                } else if !preserve_unknown {
                    errors.push(format!(
                        "{child_path}: unknown field (the API server would prune it)"
                    ));
                }
            }
        }
        None if preserve_unknown => {}
        other => fail(format!("schema has unexpected type {other:?}")),
    }
}

fn check_bounds(schema: &Value, value: &Value, fail: &mut impl FnMut(String)) {
    let x = value.as_f64().unwrap_or(f64::NAN);
    if let Some(min) = schema["minimum"].as_f64()
        && x < min
    {
        fail(format!("{x} < minimum {min}"));
    }
    if let Some(max) = schema["maximum"].as_f64()
        && x > max
    {
        fail(format!("{x} > maximum {max}"));
    }
}
