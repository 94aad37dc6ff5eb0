//! An Agent's model client, built from `spec.model` and the API key in the Secret its
//! `secretRef` names — or the reason it cannot be, naming the field to fix.
//!
//! [`model_config`] is pure: it takes the Secret as it was read ([`SecretRead`]) and returns a
//! validated [`ModelConfig`] or a [`ConfigProblem`]. [`read_secret`] does the one API call.
//! The key is held as a [`SecretString`] and never appears in a problem, a log or an Event.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kgents_crds::agent::{AgentSpec, ModelSpec};
use kgents_llm::{LlmClient, ModelConfig, RetryPolicy, RuntimeOptions, SharedTransport};
use kube::Api;
use secrecy::SecretString;

use crate::{Context, Error};

/// Why an agent cannot be probed as configured: a reason for the `CognitiveReady` condition,
/// the field that is wrong, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// PascalCase reason, e.g. `SecretKeyNotFound`.
    pub reason: &'static str,
    /// The field to fix, e.g. `spec.model.secretRef.key`.
    pub field: String,
    /// What is wrong and what to do, starting with the field.
    pub message: String,
}

impl ConfigProblem {
    fn new(reason: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self {
            reason,
            field: field.to_owned(),
            message: format!("{field}: {}", message.into()),
        }
    }
}

/// The Secret an Agent's `spec.model.secretRef` names, as read from the API server.
///
/// `Debug` names the Secret and its keys but never prints its values.
#[derive(Clone)]
pub enum SecretRead {
    /// `spec.model` names no Secret.
    NotReferenced,
    /// The Secret does not exist.
    NotFound,
    /// The operator may not read it.
    Forbidden,
    /// The Secret's `data`.
    Found(Box<Secret>),
}

impl std::fmt::Debug for SecretRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRead::NotReferenced => f.write_str("NotReferenced"),
            SecretRead::NotFound => f.write_str("NotFound"),
            SecretRead::Forbidden => f.write_str("Forbidden"),
            SecretRead::Found(secret) => {
                let keys: Vec<&str> = secret
                    .data
                    .iter()
                    .flat_map(|d| d.keys())
                    .chain(secret.string_data.iter().flat_map(|d| d.keys()))
                    .map(String::as_str)
                    .collect();
                f.debug_struct("Found")
                    .field("name", &secret.metadata.name)
                    .field("namespace", &secret.metadata.namespace)
                    .field("keys", &keys)
                    .field("values", &"<redacted>")
                    .finish()
            }
        }
    }
}

/// The Secret reference of `spec.model`, if any: (name, key).
pub fn secret_ref(spec: &AgentSpec) -> Option<(&str, &str)> {
    let reference = spec.model.as_ref()?.secret_ref.as_ref()?;
    Some((reference.name.as_str(), reference.key.as_str()))
}

fn provider_name(model: &ModelSpec) -> String {
    // The CRD spelling (`openai`, `claude-cli`, ...) is what `ModelConfig` parses.
    serde_json::to_value(model.provider)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Validates `spec.model` with the key found in `secret`. Pure.
pub fn model_config(
    spec: &AgentSpec,
    namespace: &str,
    secret: &SecretRead,
) -> Result<ModelConfig, ConfigProblem> {
    let Some(model) = spec.model.as_ref() else {
        return Err(ConfigProblem::new(
            "NoModel",
            "spec.model",
            "a COGNITIVE_PROBE agent needs a model to probe; set spec.model (provider, name, endpoint, secretRef) or use health.type HTTP",
        ));
    };
    let api_key = match (&model.secret_ref, secret) {
        (None, _) | (_, SecretRead::NotReferenced) => None,
        (Some(r), SecretRead::NotFound) => {
            return Err(ConfigProblem::new(
                "SecretNotFound",
                "spec.model.secretRef.name",
                format!(
                    "Secret {namespace}/{} does not exist; create it with the API key under key '{}', or point secretRef at the Secret that holds it",
                    r.name, r.key
                ),
            ));
        }
        (Some(r), SecretRead::Forbidden) => {
            return Err(ConfigProblem::new(
                "SecretForbidden",
                "spec.model.secretRef.name",
                format!(
                    "the operator may not read Secret {namespace}/{}; grant it get on secrets (deploy/operator/rbac.yaml)",
                    r.name
                ),
            ));
        }
        (Some(r), SecretRead::Found(found)) => {
            let data = found.data.as_ref();
            let Some(value) = data.and_then(|d| d.get(&r.key)) else {
                let mut keys: Vec<&str> = data
                    .map(|d| d.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                keys.sort_unstable();
                return Err(ConfigProblem::new(
                    "SecretKeyNotFound",
                    "spec.model.secretRef.key",
                    format!(
                        "Secret {namespace}/{} has no key '{}' (its keys: {}); add the key or name one of its keys",
                        r.name,
                        r.key,
                        if keys.is_empty() {
                            "none".to_owned()
                        } else {
                            keys.join(", ")
                        }
                    ),
                ));
            };
            let Ok(text) = String::from_utf8(value.0.clone()) else {
                return Err(ConfigProblem::new(
                    "InvalidApiKey",
                    "spec.model.secretRef.key",
                    format!(
                        "the value of key '{}' in Secret {namespace}/{} is not UTF-8 text; store the API key as plain text",
                        r.key, r.name
                    ),
                ));
            };
            Some(SecretString::from(text))
        }
    };
    ModelConfig::from_parts(
        &provider_name(model),
        model.name.as_deref(),
        model.endpoint.as_deref(),
        api_key,
    )
    .map_err(problem_of)
}

/// Maps a configuration error of `kgents-llm` to a problem naming the field.
pub fn problem_of(error: kgents_llm::Error) -> ConfigProblem {
    let message = error.to_string();
    let (reason, field) = match &error {
        kgents_llm::Error::InvalidField { field, .. } => (
            match field.as_str() {
                "spec.model.provider" => "UnknownProvider",
                "spec.model.endpoint" => "InvalidEndpoint",
                "spec.model.name" => "InvalidModelName",
                _ => "InvalidApiKey",
            },
            field.clone(),
        ),
        kgents_llm::Error::MissingField { field, .. } => (
            match field.as_str() {
                "spec.model.endpoint" => "MissingEndpoint",
                "spec.model.name" => "MissingModelName",
                _ => "MissingApiKey",
            },
            field.clone(),
        ),
        kgents_llm::Error::NoModel => ("NoModel", "spec.model.provider".to_owned()),
        kgents_llm::Error::HttpClient { .. } => ("ClientError", "spec.model".to_owned()),
        // A kind of failure added to kgents-llm after this was written.
        _ => ("InvalidModel", "spec.model".to_owned()),
    };
    let message = if message.starts_with(&field) {
        message
    } else {
        format!("{field}: {message}")
    };
    ConfigProblem {
        reason,
        field,
        message,
    }
}

/// The client options of a probe: one request per call (no retries, so the budget counts
/// requests) under the probe's timeout.
pub fn runtime_options(timeout: Duration) -> RuntimeOptions {
    RuntimeOptions::default()
        .with_request_timeout(timeout)
        .with_connect_timeout(timeout.min(Duration::from_secs(10)))
        .with_retry(RetryPolicy::none())
}

/// The connect timeout of the connection pool every probe client shares. A probe's own
/// timeout (its request timeout) bounds connecting too, so a shorter probe timeout still wins.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection pool and TLS configuration shared by every agent's model client: one per
/// runner instead of one per agent (each of which costs on the order of 140 KiB).
pub fn shared_transport() -> Result<SharedTransport, ConfigProblem> {
    SharedTransport::new(CONNECT_TIMEOUT).map_err(problem_of)
}

/// Builds the model client of a validated configuration over the runner's `shared` transport;
/// the key, timeout and (absent) retries are the agent's own.
pub fn build(
    config: &ModelConfig,
    timeout: Duration,
    shared: &SharedTransport,
) -> Result<Arc<dyn LlmClient>, ConfigProblem> {
    kgents_llm::build_client_shared(config, &runtime_options(timeout), shared).map_err(problem_of)
}

/// Reads the Secret `name` in `namespace`. Not found and forbidden are answers
/// ([`SecretRead`]); anything else is an error to retry later.
pub async fn read_secret(ctx: &Context, namespace: &str, name: &str) -> Result<SecretRead, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    match ctx.api("get model secret", api.get(name)).await {
        Ok(secret) => Ok(SecretRead::Found(Box::new(secret))),
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 404 => {
            Ok(SecretRead::NotFound)
        }
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 403 => {
            Ok(SecretRead::Forbidden)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    #[test]
    fn debug_of_a_secret_read_names_the_keys_but_not_the_values() {
        let canary = "sk-canary-0a1b2c3d4e5f";
        let mut read = secret(&[("api-key", canary.as_bytes())]);
        if let SecretRead::Found(found) = &mut read {
            found.string_data = Some(BTreeMap::from([("other".to_owned(), canary.to_owned())]));
        }
        let shown = format!("{read:?} {read:#?}");
        assert!(
            shown.contains("api-key") && shown.contains("other"),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains(canary), "{shown}");
        // Nor as the bytes a derived Debug of the Secret would list.
        let bytes = format!("{:?}", &canary.as_bytes()[..4]);
        assert!(!shown.contains(bytes.trim_matches(['[', ']'])), "{shown}");
    }

    fn spec(model: serde_json::Value) -> AgentSpec {
        serde_json::from_value(serde_json::json!({"genus": "B", "model": model})).expect("spec")
    }

    fn secret(pairs: &[(&str, &[u8])]) -> SecretRead {
        SecretRead::Found(Box::new(Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Secret::default()
        }))
    }

    #[test]
    fn a_complete_model_builds_with_the_key_from_the_secret() {
        let s = spec(serde_json::json!({
            "provider": "openai", "name": "gpt-4o", "endpoint": "http://fake:8080/v1",
            "secretRef": {"name": "llm", "key": "token"}
        }));
        let config = model_config(&s, "hive", &secret(&[("token", b"sk-123")])).expect("valid");
        assert_eq!(config.model(), Some("gpt-4o"));
        assert!(config.api_key().is_some());
        assert!(
            build(
                &config,
                Duration::from_secs(5),
                &shared_transport().unwrap()
            )
            .is_ok()
        );
    }

    #[test]
    fn every_bad_input_names_its_field() {
        let with_ref = serde_json::json!({
            "provider": "anthropic", "name": "claude", "secretRef": {"name": "llm", "key": "token"}
        });
        let cases: Vec<(AgentSpec, SecretRead, &str, &str)> = vec![
            (
                serde_json::from_value(serde_json::json!({"genus": "B"})).unwrap(),
                SecretRead::NotReferenced,
                "NoModel",
                "spec.model",
            ),
            (
                spec(with_ref.clone()),
                SecretRead::NotFound,
                "SecretNotFound",
                "spec.model.secretRef.name",
            ),
            (
                spec(with_ref.clone()),
                SecretRead::Forbidden,
                "SecretForbidden",
                "spec.model.secretRef.name",
            ),
            (
                spec(with_ref.clone()),
                secret(&[("other", b"x")]),
                "SecretKeyNotFound",
                "spec.model.secretRef.key",
            ),
            (
                spec(with_ref),
                secret(&[("token", &[0xff, 0xfe])]),
                "InvalidApiKey",
                "spec.model.secretRef.key",
            ),
            (
                spec(
                    serde_json::json!({"provider": "openai", "name": "m", "endpoint": "not a url"}),
                ),
                SecretRead::NotReferenced,
                "InvalidEndpoint",
                "spec.model.endpoint",
            ),
            (
                spec(serde_json::json!({"provider": "none"})),
                SecretRead::NotReferenced,
                "NoModel",
                "spec.model.provider",
            ),
            (
                spec(serde_json::json!({"provider": "anthropic", "name": "claude"})),
                SecretRead::NotReferenced,
                "MissingApiKey",
                "spec.model.secretRef",
            ),
        ];
        for (spec, read, reason, field) in cases {
            let result = model_config(&spec, "hive", &read).and_then(|c| {
                build(&c, Duration::from_secs(5), &shared_transport()?).map(|_| ())?;
                Ok(c)
            });
            let problem = result.expect_err(reason);
            assert_eq!(problem.reason, reason, "{problem:?}");
            assert_eq!(problem.field, field, "{problem:?}");
            assert!(problem.message.starts_with(field), "{problem:?}");
        }
    }

    #[test]
    fn an_unknown_provider_spelling_names_the_provider_field() {
        let problem = problem_of(
            ModelConfig::from_parts("gemini", Some("m"), None, None).expect_err("unknown"),
        );
        assert_eq!(problem.reason, "UnknownProvider");
        assert_eq!(problem.field, "spec.model.provider");
    }

    #[test]
    fn problems_never_carry_the_key() {
        let s = spec(serde_json::json!({
            "provider": "openai", "name": "m", "endpoint": "ftp://x",
            "secretRef": {"name": "llm", "key": "token"}
        }));
        let problem = model_config(&s, "hive", &secret(&[("token", b"sk-very-secret")]))
            .expect_err("ftp is not an HTTP endpoint");
        assert!(!format!("{problem:?}").contains("sk-very-secret"));
    }
}
