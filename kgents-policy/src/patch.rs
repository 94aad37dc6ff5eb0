//! A proposal's patch parsed for its type: a merge patch (RFC 7386) is a JSON object, a json
//! patch (RFC 6902) a list of operations, an apply patch a YAML or JSON object. A patch may not
//! rename, move or re-kind its target.

use kgents_crds::proposal::{MAX_PATCH_BYTES, PatchSpec, PatchType, TargetRef};
use serde_json::Value;

use crate::{Error, Result};

/// A patch that parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedPatch {
    /// A JSON merge patch: the object to merge.
    Merge(Value),
    /// A JSON patch: its operations.
    Json(json_patch::Patch),
    /// A server-side apply document.
    Apply(Value),
}

impl ParsedPatch {
    /// The document as JSON, for CEL rules (`patch`) and the reviewer.
    pub fn document(&self) -> Value {
        match self {
            ParsedPatch::Merge(v) | ParsedPatch::Apply(v) => v.clone(),
            ParsedPatch::Json(ops) => serde_json::to_value(ops).unwrap_or(Value::Null),
        }
    }
}

/// Identity fields a patch must not change: `(JSON pointer, what it is)`.
const IDENTITY_POINTERS: [&str; 4] = [
    "/metadata/name",
    "/metadata/namespace",
    "/kind",
    "/apiVersion",
];

fn check_identity(document: &Value, target: &TargetRef, kind: &str) -> Result<()> {
    let expect = |pointer: &str| -> Option<String> {
        match pointer {
            "/metadata/name" => Some(target.name.clone()),
            "/metadata/namespace" => target.namespace.clone(),
            "/kind" => Some(target.kind.clone()),
            "/apiVersion" => target.api_version.clone(),
            _ => None,
        }
    };
    for pointer in IDENTITY_POINTERS {
        if let Some(found) = document.pointer(pointer) {
            let matches = match (found.as_str(), expect(pointer)) {
                (Some(found), Some(expected)) => found == expected,
                // A namespace in the patch while the target names none: the proposal's own
                // namespace is meant; the server refuses a mismatch itself.
                (Some(_), None) => pointer == "/metadata/namespace",
                _ => false,
            };
            if !matches {
                return Err(Error::Patch(format!(
                    "the {kind} patch sets {pointer} to {found}, which is not the target's; a patch may not rename, move or re-kind its target"
                )));
            }
        }
    }
    Ok(())
}

/// Parses `patch` for its declared type; the error ([`Error::Patch`]) says what is wrong and how
/// to fix it. Never panics, whatever the content.
pub fn parse(patch: &PatchSpec, target: &TargetRef) -> Result<ParsedPatch> {
    if patch.content.len() > MAX_PATCH_BYTES {
        return Err(Error::Patch(format!(
            "the patch is {} bytes; at most {MAX_PATCH_BYTES} are accepted",
            patch.content.len()
        )));
    }
    match patch.kind {
        PatchType::Merge => {
            let value: Value = serde_json::from_str(&patch.content).map_err(|e| {
                Error::Patch(format!("the merge patch is not valid JSON ({e}); write a JSON object such as {{\"spec\":{{\"replicas\":2}}}}"))
            })?;
            if !value.is_object() {
                return Err(Error::Patch(
                    "a merge patch must be a JSON object (RFC 7386)".to_owned(),
                ));
            }
            check_identity(&value, target, "merge")?;
            Ok(ParsedPatch::Merge(value))
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_str(&patch.content).map_err(|e| {
                Error::Patch(format!("the json patch is not a list of RFC 6902 operations ({e}); e.g. [{{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":2}}]"))
            })?;
            if ops.0.is_empty() {
                return Err(Error::Patch("the json patch has no operation".to_owned()));
            }
            for op in &ops.0 {
                let path = op.path().to_string();
                if IDENTITY_POINTERS
                    .iter()
                    .any(|p| path == *p || path.starts_with(&format!("{p}/")))
                {
                    return Err(Error::Patch(format!(
                        "the json patch changes {path}; a patch may not rename, move or re-kind its target"
                    )));
                }
            }
            Ok(ParsedPatch::Json(ops))
        }
        PatchType::Apply => {
            let value: Value = serde_saphyr::from_str(&patch.content).map_err(|e| {
                Error::Patch(format!(
                    "the apply patch is not a valid YAML or JSON object ({e})"
                ))
            })?;
            if !value.is_object() {
                return Err(Error::Patch(
                    "an apply patch must be an object (the fields to own)".to_owned(),
                ));
            }
            check_identity(&value, target, "apply")?;
            Ok(ParsedPatch::Apply(value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> TargetRef {
        TargetRef {
            api_version: Some("kgents.io/v1".into()),
            kind: "Agent".into(),
            name: "b".into(),
            namespace: None,
        }
    }

    fn spec(kind: PatchType, content: &str) -> PatchSpec {
        PatchSpec {
            kind,
            content: content.into(),
        }
    }

    #[test]
    fn each_type_parses_its_own_shape() {
        let cases: [(PatchType, &str, bool); 12] = [
            (PatchType::Merge, r#"{"spec":{"replicas":2}}"#, true),
            (PatchType::Merge, r#"[1]"#, false),
            (PatchType::Merge, r#"{"spec":"#, false),
            (PatchType::Merge, r#"{"metadata":{"name":"other"}}"#, false),
            (
                PatchType::Merge,
                r#"{"metadata":{"name":"b"},"kind":"Agent"}"#,
                true,
            ),
            (
                PatchType::Json,
                r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
                true,
            ),
            (
                PatchType::Json,
                r#"[{"op":"frobnicate","path":"/spec"}]"#,
                false,
            ),
            (PatchType::Json, r#"[]"#, false),
            (
                PatchType::Json,
                r#"[{"op":"replace","path":"/metadata/name","value":"x"}]"#,
                false,
            ),
            (
                PatchType::Apply,
                "apiVersion: kgents.io/v1\nkind: Agent\nspec:\n  replicas: 2\n",
                true,
            ),
            (
                PatchType::Apply,
                "apiVersion: apps/v1\nkind: Deployment\n",
                false,
            ),
            (PatchType::Apply, "- a\n- b\n", false),
        ];
        for (kind, content, ok) in cases {
            let outcome = parse(&spec(kind, content), &target());
            assert_eq!(outcome.is_ok(), ok, "{kind:?} {content}: {outcome:?}");
        }
    }

    #[test]
    fn document_of_a_json_patch_lists_its_operations() {
        let parsed = parse(
            &spec(
                PatchType::Json,
                r#"[{"op":"add","path":"/spec/replicas","value":3}]"#,
            ),
            &target(),
        )
        .expect("valid");
        assert_eq!(parsed.document()[0]["op"], "add");
        assert_eq!(parsed.document()[0]["value"], 3);
    }
}
