//! Applying the plan: one server-side apply per object with the installer's field manager,
//! each reported as created, configured (with the fields that changed) or unchanged.
//!
//! "Unchanged" is the API server's word, not ours: an apply that changes nothing is not
//! written, so the object's resourceVersion stays the same, and that is what is compared. A
//! dry run asks the API server the same question with `dryRun=All` (every admission step and
//! validation runs, nothing is stored) and compares what it would store with what is there.

use std::fmt;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;

use super::plan::{self, InstallSettings, Manifest, summarise_fields};
use super::{InstallError, call};

/// How long `init` waits for the CRDs it applied to be Established.
pub const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(30);

/// What an apply did to one object.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "change")]
pub enum Change {
    /// The object did not exist.
    Created,
    /// The object existed and changed; the fields that changed (empty when only the field
    /// ownership moved to the installer).
    Configured {
        /// Dotted paths of the changed fields.
        fields: Vec<String>,
    },
    /// Nothing was written.
    Unchanged,
    /// Removed because these settings no longer want it (the webhook's objects, and its
    /// registration, when the webhook is switched off: a registration left behind would make
    /// every proposal write fail closed).
    Pruned,
}

/// One object of an apply and what happened to it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// Kind of the object.
    pub kind: &'static str,
    /// Name of the object.
    pub name: String,
    /// Namespace of the object (`None`: cluster-scoped).
    pub namespace: Option<String>,
    /// What happened (or, in a dry run, would happen).
    pub change: Change,
    /// Whether this was a server-side dry run.
    pub dry_run: bool,
    /// The resourceVersion after the apply (`None` in a dry run).
    pub resource_version: Option<String>,
    /// Anything the reader should know about this object (e.g. why the server did not check it).
    pub note: Option<String>,
}

impl fmt::Display for Applied {
    /// `deployment.apps/kgents-operator configured: spec.replicas`, like `kubectl apply`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match &self.change {
            Change::Created => "created",
            Change::Configured { .. } => "configured",
            Change::Unchanged => "unchanged",
            Change::Pruned => "pruned",
        };
        write!(f, "{} {verb}", plan::display_name(self.kind, &self.name))?;
        match (self.dry_run, &self.note) {
            (true, Some(note)) => write!(f, " (server dry run; {note})")?,
            (true, None) => write!(f, " (server dry run)")?,
            (false, Some(note)) => write!(f, " ({note})")?,
            (false, None) => {}
        }
        match &self.change {
            Change::Configured { fields } if fields.is_empty() => {
                write!(f, ": field ownership only")?
            }
            Change::Configured { fields } => write!(f, ": {}", summarise_fields(fields, 6))?,
            _ => {}
        }
        Ok(())
    }
}

fn api_for(client: &Client, object: &Manifest) -> Api<DynamicObject> {
    let resource = object.api_resource();
    match object.namespace() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Applies (or, with `dry_run`, asks the API server what applying would do to) every object of
/// [`plan::plan`], in order, and reports each. After a real apply it waits until the CRDs are
/// Established ([`ESTABLISHED_TIMEOUT`]), so custom resources can be created right away.
pub async fn apply(
    client: &Client,
    settings: &InstallSettings,
    dry_run: bool,
) -> Result<Vec<Applied>, InstallError> {
    settings.validate().map_err(InstallError::Invalid)?;
    let mut params = PatchParams::apply(&settings.field_manager).force();
    params.dry_run = dry_run;
    let mut report = Vec::new();
    // In a dry run a namespace that does not exist yet is not created, so objects in it cannot
    // be checked by the server.
    let mut missing_namespace: Option<String> = None;
    for object in plan::plan(settings) {
        let shown = object.display_name();
        let api = api_for(client, &object);
        let before = call("reading", &shown, api.get_opt(object.name())).await?;
        let mut entry = Applied {
            kind: object.kind(),
            name: object.name().to_owned(),
            namespace: object.namespace().map(str::to_owned),
            change: Change::Created,
            dry_run,
            resource_version: None,
            note: None,
        };
        if dry_run
            && object.namespace().is_some()
            && object.namespace() == missing_namespace.as_deref()
        {
            entry.note =
                Some("not checked by the server: its namespace does not exist yet".to_owned());
            report.push(entry);
            continue;
        }
        if let Manifest::Namespace(_) = &object
            && before
                .as_ref()
                .is_some_and(|b| b.metadata.deletion_timestamp.is_some())
        {
            // The API server would refuse every object in it with a 403 that reads like RBAC.
            return Err(InstallError::NotReached {
                what: format!("{shown} is being deleted"),
                message: format!(
                    "nothing can be installed in it until it is gone (after `kgents infra teardown --delete-data` that takes a moment); run `kubectl get namespace {}` until it is not found, then run `kgents infra init` again",
                    object.name()
                ),
            });
        }
        let body = object.to_value();
        let after = call(
            "applying",
            &shown,
            api.patch(object.name(), &params, &Patch::Apply(&body)),
        )
        .await?;
        if let Manifest::Namespace(_) = &object
            && dry_run
            && before.is_none()
        {
            missing_namespace = Some(object.name().to_owned());
        }
        entry.change = change_between(before.as_ref(), &after, dry_run)?;
        if !dry_run {
            entry.resource_version = after.metadata.resource_version.clone();
        }
        report.push(entry);
    }
    if !settings.webhook {
        report.extend(prune_webhook(client, settings, dry_run).await?);
    }
    if !dry_run {
        wait_established(client, ESTABLISHED_TIMEOUT).await?;
    }
    Ok(report)
}

/// The objects only the webhook needs, removed when it is switched off (in a dry run: what
/// would be removed, asked with a server-side dry-run delete).
async fn prune_webhook(
    client: &Client,
    settings: &InstallSettings,
    dry_run: bool,
) -> Result<Vec<Applied>, InstallError> {
    let with_webhook = InstallSettings {
        webhook: true,
        ..settings.clone()
    };
    let mut out = Vec::new();
    let webhook_only = super::teardown::components(&with_webhook)
        .into_iter()
        .filter(|(kind, name, _)| match *kind {
            "ValidatingWebhookConfiguration" | "Role" | "RoleBinding" => true,
            "Service" => name != plan::METRICS_SERVICE,
            _ => false,
        });
    let params = kube::api::DeleteParams {
        dry_run,
        ..kube::api::DeleteParams::background()
    };
    for (kind, name, namespace) in webhook_only {
        let Some(resource) = plan::api_resource(kind) else {
            continue;
        };
        let api: Api<DynamicObject> = match &namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let shown = plan::display_name(kind, &name);
        if call("reading", &shown, api.get_opt(&name)).await?.is_none() {
            continue;
        }
        if super::call_opt("deleting", &shown, api.delete(&name, &params))
            .await?
            .is_some()
        {
            out.push(Applied {
                kind,
                name,
                namespace,
                change: Change::Pruned,
                dry_run,
                resource_version: None,
                note: None,
            });
        }
    }
    Ok(out)
}

/// What changed between the object before an apply and the one the API server returned.
fn change_between(
    before: Option<&DynamicObject>,
    after: &DynamicObject,
    dry_run: bool,
) -> Result<Change, InstallError> {
    let Some(before) = before else {
        return Ok(Change::Created);
    };
    let to_value = |o: &DynamicObject| {
        serde_json::to_value(o).map_err(|e| {
            InstallError::Invalid(format!(
                "an object the API server returned is not JSON: {e}"
            ))
        })
    };
    let fields = plan::changed_fields(&to_value(before)?, &to_value(after)?);
    let written = if dry_run {
        // A dry run stores nothing, so the resourceVersion cannot tell; the content can.
        !fields.is_empty()
    } else {
        before.metadata.resource_version != after.metadata.resource_version
    };
    Ok(if written {
        Change::Configured { fields }
    } else {
        Change::Unchanged
    })
}

/// Waits until every kgents CRD is Established.
pub async fn wait_established(client: &Client, timeout: Duration) -> Result<(), InstallError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deadline = Instant::now() + timeout;
    for crd in plan::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let shown = plan::display_name("CustomResourceDefinition", &name);
        loop {
            let live = call("reading", &shown, api.get_opt(&name)).await?;
            let established = live.as_ref().is_some_and(super::status::is_established);
            if established {
                break;
            }
            if Instant::now() >= deadline {
                let seen = live
                    .as_ref()
                    .map(super::status::crd_conditions)
                    .unwrap_or_else(|| "it does not exist".to_owned());
                return Err(InstallError::NotReached {
                    what: format!("{shown} to become Established within {timeout:?}"),
                    message: format!(
                        "last seen: {seen}; look at `kubectl describe crd {name}` (a name conflict with another CRD shows there) and run `kgents infra init` again"
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// The live object as JSON (for callers comparing versions).
pub fn as_value(object: &DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(rv: &str, replicas: i64) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "op", "namespace": "ns", "resourceVersion": rv},
            "spec": {"replicas": replicas}
        }))
        .expect("object")
    }

    #[test]
    fn changes_are_told_by_resource_version_or_content() {
        assert_eq!(
            change_between(None, &object("1", 2), false).expect("change"),
            Change::Created
        );
        assert_eq!(
            change_between(Some(&object("1", 2)), &object("1", 2), false).expect("change"),
            Change::Unchanged
        );
        assert_eq!(
            change_between(Some(&object("1", 2)), &object("2", 3), false).expect("change"),
            Change::Configured {
                fields: vec!["spec.replicas".into()]
            }
        );
        // Written without a visible change: ownership moved.
        assert_eq!(
            change_between(Some(&object("1", 2)), &object("2", 2), false).expect("change"),
            Change::Configured { fields: vec![] }
        );
        // A dry run keeps the resourceVersion: the content decides.
        assert_eq!(
            change_between(Some(&object("1", 2)), &object("1", 3), true).expect("change"),
            Change::Configured {
                fields: vec!["spec.replicas".into()]
            }
        );
        assert_eq!(
            change_between(Some(&object("1", 2)), &object("1", 2), true).expect("change"),
            Change::Unchanged
        );
    }

    #[test]
    fn lines_read_like_kubectl_apply() {
        let mut applied = Applied {
            kind: "Deployment",
            name: "kgents-operator".into(),
            namespace: Some("kgents-system".into()),
            change: Change::Unchanged,
            dry_run: false,
            resource_version: Some("7".into()),
            note: None,
        };
        assert_eq!(
            applied.to_string(),
            "deployment.apps/kgents-operator unchanged"
        );
        applied.change = Change::Configured {
            fields: vec!["spec.replicas".into()],
        };
        applied.dry_run = true;
        assert_eq!(
            applied.to_string(),
            "deployment.apps/kgents-operator configured (server dry run): spec.replicas"
        );
        // The same result, serialisable for front-ends other than a terminal.
        assert_eq!(
            serde_json::to_value(&applied).expect("json"),
            json!({
                "kind": "Deployment", "name": "kgents-operator", "namespace": "kgents-system",
                "change": {"change": "configured", "fields": ["spec.replicas"]},
                "dryRun": true, "resourceVersion": "7", "note": null
            })
        );
    }
}
