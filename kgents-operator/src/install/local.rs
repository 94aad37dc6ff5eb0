//! An operator running outside the cluster it serves (the embedded control plane of
//! `kgents dev up` and `examples/operator.rs --embedded`): its webhook settings, its namespace,
//! and the sample resources of `deploy/examples/`.

use std::net::SocketAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::Value;

use super::{InstallError, call};
use crate::admission::server::{Endpoint, WebhookConfig};

/// The field manager of the samples' applies.
pub const SAMPLES_FIELD_MANAGER: &str = "kgents-samples";

/// Webhook settings for an operator on the API server's own host: listening on a free port of
/// 127.0.0.1, registered by URL, and unregistered when it stops (so nothing fails closed
/// after it is gone).
pub fn embedded_webhook(namespace: &str) -> WebhookConfig {
    let mut webhook = WebhookConfig::in_cluster(namespace);
    webhook.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    webhook.endpoint = Endpoint::Url {
        host: "127.0.0.1".to_owned(),
    };
    webhook.remove_on_shutdown = true;
    webhook
}

/// Creates the namespace if it does not exist. A 403 is accepted too (the caller may not create
/// namespaces; then it must exist already, and using it will say so if not).
pub async fn ensure_namespace(client: &Client, name: &str) -> Result<(), InstallError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.to_owned());
    match call(
        "creating",
        &format!("namespace/{name}"),
        namespaces.create(&PostParams::default(), &namespace),
    )
    .await
    {
        Ok(_)
        | Err(InstallError::Api {
            code: 409 | 403, ..
        }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// One YAML file of samples: where it came from (for messages) and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleFile {
    /// The file's name or path, as messages show it.
    pub source: String,
    /// Its text: one or more YAML documents separated by `---`.
    pub text: String,
}

/// Reads `dir/*.yaml` (not sub-directories: `deploy/examples/invalid/` holds examples the API
/// server must refuse), sorted by name.
pub fn read_sample_dir(dir: &Path) -> Result<Vec<SampleFile>, InstallError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        InstallError::Invalid(format!(
            "cannot read the samples directory {}: {e} (run from the repository root, or name the directory)",
            dir.display()
        ))
    })?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                InstallError::Invalid(format!("cannot read {}: {e}", path.display()))
            })?;
            Ok(SampleFile {
                source: path.display().to_string(),
                text,
            })
        })
        .collect()
}

/// One sample object, ready to apply.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The file it came from.
    pub source: String,
    /// Its kind.
    pub kind: String,
    /// The object (namespace defaulted to `default`).
    pub object: DynamicObject,
}

/// The kinds the samples may contain.
fn sample_resource(kind: &str) -> Option<ApiResource> {
    use kgents_crds::{Agent, Memory, Pheromone, Proposal, Umwelt, Workflow};
    Some(match kind {
        "Agent" => ApiResource::erase::<Agent>(&()),
        "Pheromone" => ApiResource::erase::<Pheromone>(&()),
        "Memory" => ApiResource::erase::<Memory>(&()),
        "Umwelt" => ApiResource::erase::<Umwelt>(&()),
        "Proposal" => ApiResource::erase::<Proposal>(&()),
        "Workflow" => ApiResource::erase::<Workflow>(&()),
        _ => return None,
    })
}

/// Parses the sample files (pure). Proposals are filed in `proposer`'s name: the webhook admits
/// a proposal only when `spec.proposer` is its requester. Errors name the file and the
/// document.
pub fn parse_samples(files: &[SampleFile], proposer: &str) -> Result<Vec<Sample>, InstallError> {
    let mut samples = Vec::new();
    for file in files {
        let documents = file
            .text
            .split("\n---")
            .map(str::trim)
            .filter(|d| !d.is_empty() && *d != "---");
        for (index, document) in documents.enumerate() {
            let at = format!("{} (document {})", file.source, index + 1);
            let mut value: Value = serde_saphyr::from_str(document)
                .map_err(|e| InstallError::Invalid(format!("{at}: not valid YAML: {e}")))?;
            if value.is_null() {
                continue;
            }
            let kind = value["kind"].as_str().unwrap_or_default().to_owned();
            if sample_resource(&kind).is_none() {
                return Err(InstallError::Invalid(format!(
                    "{at}: kind {kind:?} is not a K8-gents resource (Agent, Pheromone, Memory, Umwelt, Proposal or Workflow)"
                )));
            }
            if kind == "Proposal" {
                value["spec"]["proposer"] = Value::String(proposer.to_owned());
            }
            let mut object: DynamicObject = serde_json::from_value(value).map_err(|e| {
                InstallError::Invalid(format!("{at}: not a Kubernetes object: {e}"))
            })?;
            if object.metadata.name.as_deref().is_none_or(str::is_empty) {
                return Err(InstallError::Invalid(format!(
                    "{at}: metadata.name is missing"
                )));
            }
            object
                .metadata
                .namespace
                .get_or_insert_with(|| "default".to_owned());
            samples.push(Sample {
                source: file.source.clone(),
                kind,
                object,
            });
        }
    }
    Ok(samples)
}

/// What applying the samples did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SamplesApplied {
    /// Objects applied.
    pub applied: usize,
    /// Objects the API server refused (e.g. a proposal the T-gent webhook denies), with why.
    pub refused: Vec<String>,
}

/// Applies the samples with server-side apply ([`SAMPLES_FIELD_MANAGER`]). A sample the API
/// server refuses is reported and skipped: the others are still worth having.
pub async fn apply_samples(
    client: &Client,
    files: &[SampleFile],
) -> Result<SamplesApplied, InstallError> {
    let proposer = crate::support::whoami(client).await.map_err(|e| match e {
        crate::Error::Kube(e) => {
            InstallError::from_kube("creating", "selfsubjectreview (who applies the samples)", e)
        }
        other => InstallError::Invalid(format!("asking who applies the samples: {other}")),
    })?;
    let samples = parse_samples(files, &proposer)?;
    let params = PatchParams::apply(SAMPLES_FIELD_MANAGER).force();
    let mut outcome = SamplesApplied::default();
    for sample in samples {
        let Some(resource) = sample_resource(&sample.kind) else {
            continue;
        };
        let name = sample.object.metadata.name.clone().unwrap_or_default();
        let namespace = sample
            .object
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
        let shown = format!("{} {namespace}/{name} from {}", sample.kind, sample.source);
        match call(
            "applying",
            &shown,
            api.patch(&name, &params, &Patch::Apply(&sample.object)),
        )
        .await
        {
            Ok(_) => outcome.applied += 1,
            Err(InstallError::Api { message, .. }) => {
                outcome.refused.push(format!("{shown}: {message}"));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SampleFile {
        SampleFile {
            source: "x.yaml".into(),
            text: text.into(),
        }
    }

    #[test]
    fn the_committed_samples_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples");
        let files = read_sample_dir(Path::new(dir)).expect("samples");
        assert!(files.len() >= 5, "{files:?}");
        assert!(files.iter().all(|f| !f.source.contains("invalid")));
        let samples = parse_samples(&files, "me").expect("parse");
        assert!(samples.iter().any(|s| s.kind == "Agent"));
        for sample in samples.iter().filter(|s| s.kind == "Proposal") {
            assert_eq!(sample.object.data["spec"]["proposer"], "me");
        }
    }

    #[test]
    fn bad_samples_are_named_by_file_and_document() {
        let err = parse_samples(
            &[file(
                "kind: Agent\nmetadata: {name: a}\n---\nkind: Pod\nmetadata: {name: p}\n",
            )],
            "me",
        )
        .expect_err("a Pod is not a sample");
        assert!(err.to_string().contains("x.yaml (document 2)"), "{err}");
        let err = parse_samples(&[file("kind: Agent\nmetadata: {}\n")], "me").expect_err("no name");
        assert!(err.to_string().contains("metadata.name"), "{err}");
        let err = parse_samples(&[file("kind: [\n")], "me").expect_err("bad yaml");
        assert!(err.to_string().contains("not valid YAML"), "{err}");
        let ok = parse_samples(
            &[file(
                "apiVersion: kgents.io/v1\nkind: Agent\nmetadata: {name: a}\nspec: {}\n",
            )],
            "me",
        )
        .expect("ok");
        assert_eq!(ok[0].object.metadata.namespace.as_deref(), Some("default"));
    }

    #[test]
    fn the_embedded_webhook_is_local_and_cleans_up() {
        let webhook = embedded_webhook("kgents-system");
        assert!(webhook.bind.ip().is_loopback());
        assert!(webhook.remove_on_shutdown);
        assert_eq!(webhook.namespace, "kgents-system");
        assert!(matches!(webhook.endpoint, Endpoint::Url { .. }));
    }
}
