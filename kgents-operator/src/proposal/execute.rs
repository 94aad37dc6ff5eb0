//! Execution of an approved proposal: resolve the target through discovery, run a server-side
//! dry run, then apply the patch under a field manager of its own. Every write stamps the target
//! with [`APPLIED_ANNOTATION`] = the proposal's uid in the same request, so a reconcile that
//! crashed after applying but before recording it sees the stamp and never applies again.

use kgents_crds::proposal::{PatchType, TargetRef};
use kube::api::{Patch, PatchParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::Scope;
use kube::{Api, Client};
use serde_json::{Value, json};

use kgents_policy::ParsedPatch;

/// The field manager the executor applies patches with (never the controller's own).
pub const EXECUTOR_FIELD_MANAGER: &str = "kgents-proposal-executor";
/// Annotation on a changed target: the uid of the last proposal applied to it.
pub const APPLIED_ANNOTATION: &str = "kgents.io/applied-proposal";
/// Longest previous state kept in status (larger targets keep their first bytes and a mark).
const MAX_PREVIOUS: usize = 64 * 1024;

/// The target's API and name.
pub struct Target {
    /// The dynamic API of the target's kind, in its namespace when it is namespaced.
    pub api: Api<DynamicObject>,
    /// The target's name.
    pub name: String,
    /// `apiVersion` of the target.
    pub api_version: String,
    /// `kind` of the target.
    pub kind: String,
}

/// Finds the target's API through discovery; the error says what to fix.
pub async fn resolve(
    client: &Client,
    target: &TargetRef,
    default_namespace: &str,
) -> Result<Target, String> {
    let api_version = target.api_version.clone().ok_or_else(|| {
        "target.apiVersion is not set, so the target's API cannot be found".to_owned()
    })?;
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group.to_owned(), version.to_owned()),
        None => (String::new(), api_version.clone()),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, &target.kind);
    let (resource, capabilities) =
        kube::discovery::pinned_kind(client, &gvk)
            .await
            .map_err(|e| {
                format!(
                    "the API server does not serve {}/{} ({e})",
                    api_version, target.kind
                )
            })?;
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| default_namespace.to_owned());
    let api = match capabilities.scope {
        Scope::Namespaced => Api::namespaced_with(client.clone(), &namespace, &resource),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    Ok(Target {
        api,
        name: target.name.clone(),
        api_version,
        kind: target.kind.clone(),
    })
}

/// The target as JSON without server bookkeeping (managed fields), for the reviewer and the
/// rollback record.
pub fn clean(object: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    value
}

/// `previous` as stored in status, bounded.
pub fn previous_record(object: &DynamicObject) -> String {
    let mut text = clean(object).to_string();
    if text.len() > MAX_PREVIOUS {
        let mut cut = MAX_PREVIOUS;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("…(truncated)");
    }
    text
}

/// Whether `object` already carries the change of proposal `uid`.
pub fn already_applied(object: &DynamicObject, uid: &str) -> bool {
    object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(APPLIED_ANNOTATION))
        .is_some_and(|applied| applied == uid)
}

/// The request body for `patch`, stamped with `uid`: `(patch, params)`.
pub fn stamped(
    patch: &ParsedPatch,
    target: &Target,
    live: Option<&DynamicObject>,
    uid: &str,
    dry_run: bool,
) -> (Patch<Value>, PatchParams) {
    let mut params = PatchParams {
        field_manager: Some(EXECUTOR_FIELD_MANAGER.to_owned()),
        dry_run,
        ..PatchParams::default()
    };
    let annotation = json!({"metadata": {"annotations": {APPLIED_ANNOTATION: uid}}});
    let patch = match patch {
        ParsedPatch::Merge(document) => {
            let mut document = document.clone();
            json_patch::merge(&mut document, &annotation);
            Patch::Merge(document)
        }
        ParsedPatch::Apply(document) => {
            let mut document = document.clone();
            json_patch::merge(&mut document, &annotation);
            json_patch::merge(
                &mut document,
                &json!({"apiVersion": target.api_version, "kind": target.kind, "metadata": {"name": target.name}}),
            );
            params = PatchParams {
                dry_run,
                ..PatchParams::apply(EXECUTOR_FIELD_MANAGER)
            };
            Patch::Apply(document)
        }
        ParsedPatch::Json(ops) => {
            let mut ops = serde_json::to_value(ops).unwrap_or_else(|_| json!([]));
            let has_annotations = live.and_then(|l| l.metadata.annotations.as_ref()).is_some();
            if let Some(list) = ops.as_array_mut() {
                if !has_annotations {
                    list.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
                }
                list.push(json!({"op": "add", "path": format!("/metadata/annotations/{}", APPLIED_ANNOTATION.replace('~', "~0").replace('/', "~1")), "value": uid}));
            }
            Patch::Json::<Value>(
                serde_json::from_value(ops).unwrap_or_else(|_| json_patch::Patch(Vec::new())),
            )
        }
    };
    (patch, params)
}

/// The patch type's name, for messages.
pub fn type_name(kind: PatchType) -> &'static str {
    match kind {
        PatchType::Merge => "merge",
        PatchType::Json => "json",
        PatchType::Apply => "apply",
    }
}

/// Sends `patch` to the target (as a dry run or for real); the error is the API server's answer.
pub async fn send(
    target: &Target,
    patch: &ParsedPatch,
    live: Option<&DynamicObject>,
    uid: &str,
    dry_run: bool,
) -> Result<DynamicObject, String> {
    let (body, params) = stamped(patch, target, live, uid, dry_run);
    target
        .api
        .patch(&target.name, &params, &body)
        .await
        .map_err(|e| match e {
            kube::Error::Api(status) => format!(
                "the API server refused the patch: {} ({})",
                status.message, status.reason
            ),
            other => format!("the patch could not be sent: {other}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_apply_bodies_carry_the_stamp() {
        let merged = {
            let mut doc = json!({"spec": {"replicas": 2}});
            json_patch::merge(
                &mut doc,
                &json!({"metadata": {"annotations": {APPLIED_ANNOTATION: "u"}}}),
            );
            doc
        };
        assert_eq!(merged["metadata"]["annotations"][APPLIED_ANNOTATION], "u");
        assert_eq!(merged["spec"]["replicas"], 2);
    }

    #[test]
    fn already_applied_reads_the_stamp() {
        let mut object = DynamicObject::new(
            "t",
            &kube::core::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
        );
        assert!(!already_applied(&object, "u"));
        object.metadata.annotations =
            Some([(APPLIED_ANNOTATION.to_owned(), "u".to_owned())].into());
        assert!(already_applied(&object, "u"));
        assert!(!already_applied(&object, "v"));
    }
}
