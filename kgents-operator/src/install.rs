//! Installing the operator into a cluster, checking it, and removing it: what
//! `kgents infra init|status|teardown` do, and what `kgents dev up` shares with
//! `examples/operator.rs`.
//!
//! | module | what it holds |
//! |---|---|
//! | [`plan`] | pure: [`InstallSettings`] → the typed objects to apply, in a stable order ([`plan::plan`]); the fields that differ between two versions of an object |
//! | [`apply`](mod@apply) | server-side apply of the plan with its own field manager, per object created / configured / unchanged (by resourceVersion); a server-side dry run that changes nothing |
//! | [`status`] | each component checked (CRDs Established, RBAC as planned, Deployment replicas, Service endpoints, webhook configuration with a caBundle), with what is wrong and what to do |
//! | [`teardown`](mod@teardown) | removes the components; keeps the CRDs (and so every Agent, Memory and their storage) unless told to delete data |
//! | [`local`] | an operator outside the cluster (the embedded control plane): its webhook settings, its namespace, the sample resources |
//!
//! Every API call has a deadline ([`CALL_TIMEOUT`]); an error names the step, the object and
//! what to do, and [`InstallError::kind`] tells a denial (RBAC) from an unreachable cluster
//! from anything else.

pub mod apply;
pub mod local;
pub mod plan;
pub mod status;
pub mod teardown;

use std::future::Future;
use std::time::Duration;

pub use apply::{Applied, Change, apply};
pub use plan::{InstallSettings, Manifest};
pub use status::{ComponentStatus, Health, StatusReport};
pub use teardown::{Removal, Removed, TeardownOptions, teardown};

/// How long one API call of the installer may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// What kind of failure an [`InstallError`] is (a CLI maps it to an exit code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The API server refused the caller's identity (401/403): RBAC or credentials.
    Denied,
    /// The cluster could not be reached or did not answer in time.
    Unavailable,
    /// The input (settings, a sample document) is invalid.
    Invalid,
    /// Anything else (the API server refused the object, a wait ran out, ...).
    Failed,
}

/// An installer step that failed: which step, on which object, why, and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The API server answered with an error status.
    #[error("{action} {object}: the API server answered {code} {reason}: {message}; {hint}")]
    Api {
        /// What was being done (`applying`, `reading`, `deleting`, ...).
        action: &'static str,
        /// The object, kubectl-style (`deployment.apps/kgents-operator`).
        object: String,
        /// HTTP status code.
        code: u16,
        /// The status reason (`Forbidden`, `Invalid`, ...).
        reason: String,
        /// The API server's message.
        message: String,
        /// What to do about it.
        hint: String,
    },
    /// The API server could not be reached.
    #[error(
        "{action} {object}: the cluster cannot be reached ({source}); check the kubeconfig and context (--kubeconfig, --context) and that the API server is up"
    )]
    Unreachable {
        /// What was being done.
        action: &'static str,
        /// The object.
        object: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A call did not answer within its deadline.
    #[error(
        "{action} {object}: no answer within {budget:?}; the API server may be overloaded or unreachable, try again"
    )]
    Timeout {
        /// What was being done.
        action: &'static str,
        /// The object.
        object: String,
        /// The deadline that ran out.
        budget: Duration,
    },
    /// A wait for the cluster to reach a state ran out.
    #[error("{what}: {message}")]
    NotReached {
        /// What was awaited.
        what: String,
        /// What was last seen and what to do.
        message: String,
    },
    /// The settings or an input document are invalid.
    #[error("{0}")]
    Invalid(String),
    /// Any other client failure (a body that cannot be read, ...).
    #[error("{action} {object}: {source}")]
    Client {
        /// What was being done.
        action: &'static str,
        /// The object.
        object: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

impl FailureKind {
    /// The exit code a command line reports for it: 3 denied, 4 unavailable, 2 invalid input,
    /// 1 anything else (0 is success, and never a failure).
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Denied => 3,
            Self::Unavailable => 4,
            Self::Invalid => 2,
            Self::Failed => 1,
        }
    }
}

impl InstallError {
    /// Denied, unavailable, invalid input, or another failure.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Api {
                code: 401 | 403, ..
            } => FailureKind::Denied,
            Self::Unreachable { .. } | Self::Timeout { .. } => FailureKind::Unavailable,
            Self::Invalid(_) => FailureKind::Invalid,
            Self::Api { .. } | Self::NotReached { .. } | Self::Client { .. } => FailureKind::Failed,
        }
    }

    /// Classifies a client error of `action` on `object`.
    pub fn from_kube(action: &'static str, object: impl Into<String>, error: kube::Error) -> Self {
        let object = object.into();
        match error {
            kube::Error::Api(status) => {
                let code = status.code;
                let hint = match code {
                    401 => "the credentials of the kubeconfig were not accepted; log in again or pick another context (--context)".to_owned(),
                    403 => format!(
                        "your identity may not do this; installing the operator needs rights over CRDs, ClusterRoles, ClusterRoleBindings, Namespaces and the operator's objects (cluster-admin has them): ask a cluster admin, or use a context that has them (`kubectl auth can-i {} {}` tells)",
                        verb_of(action),
                        object.split('/').next().unwrap_or_default()
                    ),
                    404 => "it does not exist (any more); run the command again".to_owned(),
                    409 => "someone else changed it at the same time; run the command again".to_owned(),
                    422 => "the API server rejected the object as invalid; this is a bug in this version's plan, please report it with the message".to_owned(),
                    _ => "try again; if it persists, look at the API server's logs".to_owned(),
                };
                Self::Api {
                    action,
                    object,
                    code,
                    reason: status.reason.clone(),
                    message: status.message.clone(),
                    hint,
                }
            }
            kube::Error::HyperError(_) | kube::Error::Service(_) => Self::Unreachable {
                action,
                object,
                source: error,
            },
            other => Self::Client {
                action,
                object,
                source: other,
            },
        }
    }
}

/// The kubectl verb of an installer action (for `kubectl auth can-i`).
fn verb_of(action: &str) -> &'static str {
    match action {
        "deleting" => "delete",
        "listing" => "list",
        "reading" => "get",
        "patching" => "patch",
        "creating" => "create",
        _ => "patch",
    }
}

/// Runs one API call with the installer's deadline, classifying its failure.
pub(crate) async fn call<T>(
    action: &'static str,
    object: &str,
    future: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, InstallError> {
    call_within(CALL_TIMEOUT, action, object, future).await
}

async fn call_within<T>(
    budget: Duration,
    action: &'static str,
    object: &str,
    future: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, InstallError> {
    match tokio::time::timeout(budget, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(InstallError::from_kube(action, object, error)),
        Err(_) => Err(InstallError::Timeout {
            action,
            object: object.to_owned(),
            budget,
        }),
    }
}

/// Like [`call`], with a 404 answered as `None`.
pub(crate) async fn call_opt<T>(
    action: &'static str,
    object: &str,
    future: impl Future<Output = Result<T, kube::Error>>,
) -> Result<Option<T>, InstallError> {
    match call(action, object, future).await {
        Ok(value) => Ok(Some(value)),
        Err(InstallError::Api { code: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: "Forbidden".into(),
            message: "no".into(),
            ..kube::core::Status::default()
        }))
    }

    #[test]
    fn failures_are_classified_for_exit_codes() {
        let denied = InstallError::from_kube(
            "applying",
            "clusterrole.rbac.authorization.k8s.io/x",
            api_error(403),
        );
        assert_eq!(denied.kind(), FailureKind::Denied);
        let text = denied.to_string();
        assert!(
            text.contains("clusterrole.rbac.authorization.k8s.io/x"),
            "{text}"
        );
        assert!(
            text.contains("kubectl auth can-i patch clusterrole.rbac.authorization.k8s.io"),
            "{text}"
        );
        assert_eq!(
            InstallError::from_kube("applying", "x", api_error(401)).kind(),
            FailureKind::Denied
        );
        assert_eq!(
            InstallError::from_kube("applying", "x", api_error(422)).kind(),
            FailureKind::Failed
        );
        assert_eq!(
            InstallError::Timeout {
                action: "reading",
                object: "x".into(),
                budget: CALL_TIMEOUT
            }
            .kind(),
            FailureKind::Unavailable
        );
        assert_eq!(
            InstallError::Invalid("bad".into()).kind(),
            FailureKind::Invalid
        );
    }

    #[tokio::test]
    async fn a_call_that_does_not_answer_times_out() {
        let outcome: Result<(), InstallError> = call_within(
            Duration::from_millis(20),
            "reading",
            "namespace/x",
            std::future::pending(),
        )
        .await;
        match outcome {
            Err(e @ InstallError::Timeout { .. }) => assert!(e.to_string().contains("namespace/x")),
            other => panic!("{other:?}"),
        }
    }
}
