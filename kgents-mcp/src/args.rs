//! Tool arguments (pure): the typed input of each tool, its JSON Schema, and parsing that names
//! the field at fault.
//!
//! serde's own errors for a wrong type do not say which field it was; [`parse`] finds it by
//! trying each given field alone, so a model reads `field "intensity": invalid type: string
//! "high", expected f64` and can correct exactly that.

use std::str::FromStr;
use std::sync::Arc;

use kgents_core::field::PheromoneType;
use kgents_crds::ProposalSpec;
use kgents_logos::Scope;
use kgents_logos::summary::check_name;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::uri::{Detail, MAX_LIMIT};

/// Arguments that do not fit the tool's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid arguments: {}{message}", field.as_ref().map(|f| format!("field {f:?}: ")).unwrap_or_default())]
pub struct ArgError {
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// What is wrong and what is expected.
    pub message: String,
}

impl ArgError {
    /// An error about `field`.
    pub fn field(field: &str, message: impl Into<String>) -> ArgError {
        ArgError {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }
}

/// Parses tool arguments into `T`, naming the field at fault.
///
/// # Errors
/// [`ArgError`]: an unknown field (with the known ones), a missing required field, or a field
/// of the wrong type.
pub fn parse<T: DeserializeOwned + JsonSchema>(
    arguments: Option<&Map<String, Value>>,
) -> Result<T, ArgError> {
    let empty = Map::new();
    let object = arguments.unwrap_or(&empty);
    let whole = match serde_json::from_value::<T>(Value::Object(object.clone())) {
        Ok(parsed) => return Ok(parsed),
        Err(e) => e.to_string(),
    };
    let schema = schema_of::<T>();
    let top_level = |name: &str| {
        schema
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| p.contains_key(name))
    };
    let named = |message: &str| message.split('`').nth(1).map(str::to_owned);
    // serde names unknown and missing top-level fields itself.
    if let Some(name) = named(&whole) {
        let unknown = whole.starts_with("unknown field") && object.contains_key(&name);
        let missing =
            whole.starts_with("missing field") && top_level(&name) && !object.contains_key(&name);
        if unknown || missing {
            return Err(ArgError {
                field: Some(name),
                message: whole,
            });
        }
    }
    // A wrong type (or a fault nested inside a field): find the field by trying each alone,
    // ignoring the other required fields' absence.
    for (key, value) in object {
        let mut alone = Map::new();
        alone.insert(key.clone(), value.clone());
        if let Err(e) = serde_json::from_value::<T>(Value::Object(alone)) {
            let text = e.to_string();
            let others_missing = text.starts_with("missing field")
                && named(&text).is_some_and(|n| n != *key && top_level(&n));
            if !others_missing {
                return Err(ArgError::field(key, text));
            }
        }
    }
    Err(ArgError {
        field: None,
        message: whole,
    })
}

/// The JSON Schema of `T` as an MCP input or output schema object.
pub fn schema_of<T: JsonSchema>() -> Arc<Map<String, Value>> {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    match serde_json::to_value(schema) {
        Ok(Value::Object(map)) => Arc::new(map),
        _ => Arc::new(Map::new()),
    }
}

/// Where a tool reads or writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Where {
    /// One namespace (default: the server's namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Every namespace (reads only).
    #[serde(default)]
    pub all_namespaces: bool,
}

/// Resolves the scope: the named namespace, all, or the server's default.
///
/// # Errors
/// [`ArgError`] naming `namespace` when it is not a valid name or both are given.
pub fn scope(namespace: Option<&str>, all: bool, default: &Scope) -> Result<Scope, ArgError> {
    match (namespace, all) {
        (Some(_), true) => Err(ArgError::field(
            "all_namespaces",
            "name one namespace or ask for all namespaces, not both",
        )),
        (Some(ns), false) => {
            check_name("namespace", ns).map_err(|e| ArgError::field("namespace", e))?;
            Ok(Scope::Namespace(ns.to_owned()))
        }
        (None, true) => Ok(Scope::All),
        (None, false) => Ok(default.clone()),
    }
}

/// Checks a page size.
///
/// # Errors
/// [`ArgError`] naming `limit` outside 1..=1000.
pub fn limit(limit: Option<usize>) -> Result<Option<usize>, ArgError> {
    match limit {
        Some(n) if !(1..=MAX_LIMIT).contains(&n) => Err(ArgError::field(
            "limit",
            format!("{n} is not from 1 to {MAX_LIMIT}"),
        )),
        other => Ok(other),
    }
}

/// Input of `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusArgs {
    /// One namespace (default: the server's namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Every namespace.
    #[serde(default)]
    pub all_namespaces: bool,
    /// `summary` (counts, heat, the first pending proposals) or `full` (every agent, signal
    /// and pending proposal, within the byte cap).
    #[serde(default)]
    pub detail: Detail,
}

/// Input of `sense`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SenseArgs {
    /// One namespace (default: the server's namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Every namespace.
    #[serde(default)]
    pub all_namespaces: bool,
    /// Only these pheromone types (WARNING, INTENT, DREAM, STATE, ...; empty: all).
    #[serde(default)]
    pub types: Vec<String>,
    /// Only signals from this agent.
    #[serde(default)]
    pub source: Option<String>,
    /// What this agent senses: signals addressed to it, and broadcasts.
    #[serde(default)]
    pub target: Option<String>,
    /// At most this many signals on this page (1-1000; default 50).
    #[serde(default)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// `summary` rows or `full` signals.
    #[serde(default)]
    pub detail: Detail,
}

impl SenseArgs {
    /// The types, parsed.
    ///
    /// # Errors
    /// [`ArgError`] naming `types[i]`.
    pub fn pheromone_types(&self) -> Result<Vec<PheromoneType>, ArgError> {
        self.types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                PheromoneType::from_str(t)
                    .map_err(|e| ArgError::field(&format!("types[{i}]"), e.to_string()))
            })
            .collect()
    }
}

/// Input of `emit`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmitArgs {
    /// The namespace to emit in (default: the server's namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The type: METAPHOR, WARNING, INTENT, DREAM, STATE, REVIEW_REQUEST, ... (required).
    pub pheromone_type: String,
    /// The emitting agent (default: the Umwelt's agent).
    #[serde(default)]
    pub source: Option<String>,
    /// The target agent (none: a broadcast).
    #[serde(default)]
    pub target: Option<String>,
    /// Initial intensity in (0, 1] (default 1).
    #[serde(default)]
    pub intensity: Option<f64>,
    /// Base half-life in minutes, at least 0.1 (default 10).
    #[serde(default)]
    pub half_life_minutes: Option<f64>,
    /// Hard time to live in seconds (at least 1; none: decay only).
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
    /// Payload text (never echoed back).
    #[serde(default)]
    pub payload: Option<String>,
    /// Resource name (default: generated).
    #[serde(default)]
    pub name: Option<String>,
}

/// Input of `propose`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeArgs {
    /// The namespace to file in (default: the server's namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The proposal's name (default: generated by the API server).
    #[serde(default)]
    pub name: Option<String>,
    /// The proposal's spec, as in the Proposal resource (camelCase: changeType, target
    /// {kind, name, apiVersion}, patch, description, rationale, ...). `proposer` defaults to
    /// the server's identity.
    #[schemars(with = "ProposalSpec")]
    pub spec: Value,
    /// Only the preview and the server-side dry run; file nothing.
    #[serde(default)]
    pub dry_run: bool,
}

impl ProposeArgs {
    /// The spec, parsed (`proposer` may be left out: the Logos fills in the requester).
    ///
    /// # Errors
    /// [`ArgError`] naming `spec` and what inside it is wrong.
    pub fn proposal_spec(&self) -> Result<ProposalSpec, ArgError> {
        let mut spec = self.spec.clone();
        if let Value::Object(map) = &mut spec {
            map.entry("proposer")
                .or_insert_with(|| Value::String(String::new()));
        }
        serde_json::from_value(spec).map_err(|e| ArgError::field("spec", e.to_string()))
    }
}

/// Input of `invoke`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvokeArgs {
    /// The AGENTESE path, e.g. `world.cluster.umwelts.manifest` (required).
    pub path: String,
    /// One namespace (default: the server's namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Every namespace (reads only).
    #[serde(default)]
    pub all_namespaces: bool,
    /// A label selector for list reads.
    #[serde(default)]
    pub selector: Option<String>,
    /// The path's input object (e.g. for void.pheromone.sense: {"types": ["WARNING"]}).
    #[serde(default)]
    pub input: Option<Value>,
    /// At most this many list items on this page (1-1000).
    #[serde(default)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// `summary` rows or `full` objects.
    #[serde(default)]
    pub detail: Detail,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test arguments are objects"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse::<EmitArgs>(Some(&args(
            json!({"pheromone_type": "WARNING", "intensity": "high"}),
        )))
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("intensity"));
        assert!(err.to_string().contains("field \"intensity\""), "{err}");

        let err = parse::<EmitArgs>(Some(&args(json!({"intensity": 0.5})))).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("pheromone_type"), "{err}");
        assert!(err.message.contains("missing field"), "{err}");

        let err = parse::<SenseArgs>(Some(&args(json!({"colour": "red"})))).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("colour"));
        assert!(err.message.contains("expected one of"), "{err}");

        let err = parse::<SenseArgs>(Some(&args(json!({"detail": "everything"})))).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("detail"), "{err}");

        let propose =
            parse::<ProposeArgs>(Some(&args(json!({"spec": {"changeType": "AGENT_SCALE"}}))))
                .unwrap();
        let err = propose.proposal_spec().unwrap_err();
        assert_eq!(err.field.as_deref(), Some("spec"), "{err}");
        assert!(err.message.contains("target"), "{err}");
        let err = parse::<ProposeArgs>(Some(&args(json!({"namespace": "team"})))).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("spec"), "{err}");
    }

    #[test]
    fn no_arguments_are_the_defaults_where_nothing_is_required() {
        assert_eq!(parse::<SenseArgs>(None).unwrap(), SenseArgs::default());
        assert!(
            parse::<InvokeArgs>(None)
                .unwrap_err()
                .message
                .contains("path")
        );
    }

    #[test]
    fn scope_limit_and_types_are_checked() {
        let default = Scope::Namespace("team".into());
        assert_eq!(scope(None, false, &default).unwrap(), default);
        assert_eq!(scope(None, true, &default).unwrap(), Scope::All);
        assert_eq!(
            scope(Some("Bad_NS"), false, &default)
                .unwrap_err()
                .field
                .as_deref(),
            Some("namespace")
        );
        assert!(scope(Some("a"), true, &default).is_err());
        assert_eq!(limit(Some(0)).unwrap_err().field.as_deref(), Some("limit"));
        assert_eq!(
            limit(Some(1001)).unwrap_err().field.as_deref(),
            Some("limit")
        );
        let sense = SenseArgs {
            types: vec!["warning".into(), "LOUD".into()],
            ..SenseArgs::default()
        };
        assert_eq!(
            sense.pheromone_types().unwrap_err().field.as_deref(),
            Some("types[1]")
        );
    }

    #[test]
    fn schemas_are_objects_with_properties() {
        let schema = schema_of::<EmitArgs>();
        assert_eq!(schema["type"], "object");
        assert!(schema["properties"]["intensity"].is_object());
        assert_eq!(schema["required"], json!(["pheromone_type"]));
        assert!(schema_of::<ProposeArgs>()["properties"]["spec"].is_object());
    }
}
