//! The operator's error type.

use std::time::Duration;

/// Everything that can go wrong in a reconcile or in the operator's machinery.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Kubernetes API call failed (transport, conflict, forbidden, …).
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),

    /// A Kubernetes API call did not answer within the operator's per-call budget.
    #[error(
        "Kubernetes API call '{call}' did not answer within {budget:?}; the API server may be overloaded"
    )]
    Timeout {
        /// What was being called.
        call: &'static str,
        /// The budget that ran out.
        budget: Duration,
    },

    /// A write whose outcome is unknown: it timed out, or the connection failed, perhaps after
    /// the API server took it. The reconcile is retried and issues it again under the same
    /// idempotency key, so it takes effect once.
    #[error("{what}: outcome unknown ({message}); issued again under the same idempotency key")]
    OutcomeUnknown {
        /// The write.
        what: String,
        /// Why its outcome is unknown.
        message: String,
    },

    /// The object cannot be realised as written; the reason is shown in its status and an Event.
    #[error("{kind} {name}: {message}")]
    InvalidSpec {
        /// Kind of the offending object.
        kind: &'static str,
        /// `namespace/name` of the offending object.
        name: String,
        /// What is wrong and what to do.
        message: String,
    },

    /// The webhook's certificate could not be generated, read, stored or served.
    #[error("T-gent webhook certificate ({what}): {message}")]
    Certificate {
        /// Which part: e.g. `CA certificate`, `serving key`, `Secret kgents-system/kgents-webhook-tls`.
        what: String,
        /// What was wrong and what to do.
        message: String,
    },

    /// The admission policy (the `policy.yaml` key of the policy ConfigMap) is invalid.
    #[error(
        "admission policy, {location}: {message} (the policy is the policy.yaml key of the policy ConfigMap, kgents-admission-policy by default; while it is invalid the webhook keeps the previous policy, or refuses to start without one)"
    )]
    Policy {
        /// Where in the policy document: `allowedKinds`, `risk`, `rules[max-replicas]`, ….
        location: String,
        /// What was wrong and what to do.
        message: String,
    },

    /// The object lacks something the API server always sets (a name, a namespace, a uid).
    #[error("object is missing {0}; it was not read from the API server")]
    MissingObjectKey(&'static str),

    /// Building or reading a JSON body failed.
    #[error("JSON (de)serialisation failed: {0}")]
    Serialization(#[from] serde_json::Error),

    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    /// Leader election could not be set up.
    #[error("leader election: {0}")]
    LeaderElection(String),

    /// A custom resource definition the controllers need is not installed.
    #[error(
        "the CRD for {resource}.kgents.io is not installed (the API server answered: {message}); install the CRDs with `kubectl apply -f deploy/crds/` (or generate them with `cargo run --example crdgen`) and start the operator again"
    )]
    CrdMissing {
        /// The plural resource name, e.g. `agents`.
        resource: &'static str,
        /// What the API server said.
        message: String,
    },

    /// A controller stopped although neither shutdown nor loss of leadership asked it to.
    #[error("the {0} controller stopped unexpectedly; the operator exits so it can be restarted")]
    ControllerStopped(&'static str),
    /// The witness store named by the operator's witness setting could not be opened.
    #[error("the witness store: {0}")]
    Witness(String),

    /// The operator's HTTP server (metrics, health) could not start.
    #[error("HTTP server on {addr}: {source}")]
    Http {
        /// The address it tried to bind.
        addr: std::net::SocketAddr,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A stable, low-cardinality label for metrics and Event reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(status)) if status.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(status)) if status.code == 403 => "forbidden",
            Error::Kube(kube::Error::Api(status)) if status.code == 404 => "not_found",
            Error::Kube(kube::Error::Api(status)) if status.code == 422 => "invalid",
            Error::Kube(_) => "kube_api",
            Error::Timeout { .. } => "timeout",
            Error::OutcomeUnknown { .. } => "outcome_unknown",
            Error::InvalidSpec { .. } => "invalid_spec",
            Error::Certificate { .. } => "certificate",
            Error::Policy { .. } => "policy",
            Error::MissingObjectKey(_) => "missing_object_key",
            Error::Serialization(_) => "serialization",
            Error::Finalizer(_) => "finalizer",
            Error::LeaderElection(_) => "leader_election",
            Error::Http { .. } => "http",
            Error::CrdMissing { .. } => "crd_missing",
            Error::ControllerStopped(_) => "controller_stopped",
            Error::Witness(_) => "witness",
        }
    }
}

impl From<kgents_policy::Error> for Error {
    fn from(error: kgents_policy::Error) -> Self {
        match error {
            kgents_policy::Error::Policy { location, message } => {
                Error::Policy { location, message }
            }
            other => Error::Policy {
                location: "policy".to_owned(),
                message: other.to_string(),
            },
        }
    }
}

/// The operator's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
