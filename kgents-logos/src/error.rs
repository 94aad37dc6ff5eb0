//! The crate's [`Error`] and what kind of failure each one is ([`ErrorKind`]), which front-ends
//! map to exit codes (the CLI: usage 2, denied 3, unavailable 4, anything else 1).

use std::time::Duration;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input was wrong: an unknown or malformed path, bad arguments, an invalid name.
    Usage,
    /// The caller may not do this: its affordances, RBAC or the admission webhook said no.
    Denied,
    /// The cluster (and every fallback) could not be reached.
    Unavailable,
    /// The named object does not exist.
    NotFound,
    /// Anything else (the API server refused the request for another reason, a bad object).
    Failed,
}

/// Everything that can go wrong resolving a path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path does not parse.
    #[error("{input:?} is not an AGENTESE path: {reason}")]
    BadPath {
        /// The input (shortened).
        input: String,
        /// What is wrong, and where.
        reason: String,
    },
    /// The path parses but no registry entry matches it.
    #[error("{path} is not a registered path{}", suggest_text(suggestions))]
    UnknownPath {
        /// The path.
        path: String,
        /// The closest registered path templates, closest first.
        suggestions: Vec<String>,
    },
    /// The caller's affordances do not grant the path (deny by default).
    #[error("{caller} may not use {path}: {}", deny_text(globs))]
    Denied {
        /// Who asked.
        caller: String,
        /// The path.
        path: String,
        /// The caller's affordance globs, none of which matched.
        globs: Vec<String>,
    },
    /// The path is registered but this Logos installs no handler for it (its front-end arrives
    /// with a later crate).
    #[error("{path} is registered ({operation}) but no handler is installed for it in this Logos")]
    NotServed {
        /// The path.
        path: String,
        /// The registry's operation.
        operation: String,
    },
    /// The arguments of a path are wrong.
    #[error("{path}: {reason}")]
    BadInput {
        /// The path (or the command) the input was for.
        path: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The named object does not exist.
    #[error("{kind} {name:?} not found{}", namespace.as_ref().map(|n| format!(" in namespace {n}")).unwrap_or_default())]
    NotFound {
        /// The kind (`Agent`, `Proposal`, ...).
        kind: &'static str,
        /// Its name.
        name: String,
        /// The namespace looked in (`None` = all).
        namespace: Option<String>,
    },
    /// The witness store records no history of the agent.
    #[error(
        "no history of agent {agent} in the witness store at {store}{}",
        history_hint(suggestions)
    )]
    NoHistory {
        /// The agent (`namespace/name`).
        agent: String,
        /// Where the store is.
        store: String,
        /// The recorded agents closest to it, closest first.
        suggestions: Vec<String>,
    },
    /// The API server (and every fallback) could not be reached.
    #[error(
        "{what}: the cluster is unavailable: {reason} (check --kubeconfig/--context, or run `kgents infra init` to install K8-gents)"
    )]
    Unavailable {
        /// What was being done.
        what: String,
        /// Why.
        reason: String,
    },
    /// A call did not finish within its deadline.
    #[error("{what}: no answer within {deadline:?} (the API server is slow or unreachable)")]
    Timeout {
        /// What was being done.
        what: String,
        /// The deadline.
        deadline: Duration,
    },
    /// RBAC or the admission webhook refused the request.
    #[error("{what}: refused by the API server ({code}): {message}")]
    Forbidden {
        /// What was being done.
        what: String,
        /// HTTP status code (403 for RBAC and webhook denials).
        code: u16,
        /// The API server's message.
        message: String,
    },
    /// The API server rejected the request for another reason.
    #[error("{what}: the API server answered {code} {reason}: {message}")]
    Api {
        /// What was being done.
        what: String,
        /// HTTP status code.
        code: u16,
        /// The Status reason (`Invalid`, `Conflict`, ...).
        reason: String,
        /// The API server's message.
        message: String,
    },
    /// Any other client failure (TLS, decoding, kubeconfig).
    #[error("{what}: {source}")]
    Client {
        /// What was being done.
        what: String,
        /// The kube error.
        #[source]
        source: kube::Error,
    },
    /// A model path was invoked but this Logos has no model.
    #[error("{path}: no model configured: {}", crate::concept::NO_MODEL_HINT)]
    NoModel {
        /// The path.
        path: String,
    },
    /// The caller's daily model-token budget is spent; the model was not asked.
    #[error(
        "{path}: {caller} has spent its model-token budget for today ({spent} of {limit} tokens, 0 \
         left); the model was not asked. Budgets reset at 00:00 UTC; raise the Umwelt's \
         constraints.tokenBudget (or the default budget) for more"
    )]
    BudgetExhausted {
        /// Who asked.
        caller: String,
        /// The path.
        path: String,
        /// The daily budget.
        limit: u64,
        /// What was spent today.
        spent: u64,
    },
    /// The model failed to answer (timeout, transport, provider error).
    #[error("{path}: {source}")]
    Model {
        /// The path.
        path: String,
        /// The runtime's error.
        #[source]
        source: kgents_probes::LlmError,
    },
    /// The model answered, but not in the path's schema, on every attempt.
    #[error(
        "{path}: the model's answer was invalid after {attempts} attempts: {reason} ({} tokens used)",
        usage.total
    )]
    InvalidAnswer {
        /// The path.
        path: String,
        /// How many times the model was asked.
        attempts: u32,
        /// What was wrong with the last answer.
        reason: String,
        /// The tokens the attempts used (charged to the budget).
        usage: Box<crate::concept::TokenUsage>,
    },
    /// The ghost chain failed (every layer; the message lists them and the remedy).
    #[error(transparent)]
    Ghost(#[from] kgents_ghost::Error),
    /// A resource could not be converted (a bad field in a stored object).
    #[error(transparent)]
    Resource(#[from] kgents_crds::Error),
}

fn history_hint(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        " (it records no agent yet: is the operator's witness setting on, and is this the same store?)".into()
    } else {
        format!(
            "; recorded agents closest to it: {}",
            suggestions.join(", ")
        )
    }
}

fn suggest_text(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", suggestions.join(", "))
    }
}

fn deny_text(globs: &[String]) -> String {
    if globs.is_empty() {
        "its affordances are empty, so every path is denied".to_owned()
    } else {
        format!(
            "no affordance matches (it has {}); what is not afforded is denied",
            globs.join(", ")
        )
    }
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadPath { .. } | Error::UnknownPath { .. } | Error::BadInput { .. } => {
                ErrorKind::Usage
            }
            Error::Denied { .. } | Error::Forbidden { .. } => ErrorKind::Denied,
            Error::Unavailable { .. } | Error::Timeout { .. } => ErrorKind::Unavailable,
            Error::Ghost(kgents_ghost::Error::AllLayersFailed { .. }) => ErrorKind::Unavailable,
            Error::NotFound { .. } | Error::NoHistory { .. } => ErrorKind::NotFound,
            Error::BudgetExhausted { .. } => ErrorKind::Denied,
            Error::NoModel { .. } => ErrorKind::Unavailable,
            Error::Model { source, .. } => match source {
                kgents_probes::LlmError::Timeout { .. }
                | kgents_probes::LlmError::Transport { .. }
                | kgents_probes::LlmError::RateLimited { .. } => ErrorKind::Unavailable,
                kgents_probes::LlmError::Auth { .. } => ErrorKind::Denied,
                _ => ErrorKind::Failed,
            },
            Error::Api { code: 422, .. } => ErrorKind::Usage,
            Error::NotServed { .. }
            | Error::Api { .. }
            | Error::Client { .. }
            | Error::Ghost(_)
            | Error::InvalidAnswer { .. }
            | Error::Resource(_) => ErrorKind::Failed,
        }
    }

    /// Classifies a kube error met while doing `what`.
    pub fn from_kube(what: impl Into<String>, error: kube::Error) -> Error {
        let what = what.into();
        match error {
            kube::Error::Api(status) => match status.code {
                401 | 403 => Error::Forbidden {
                    what,
                    code: status.code,
                    message: status.message,
                },
                _ => Error::Api {
                    what,
                    code: status.code,
                    reason: status.reason,
                    message: status.message,
                },
            },
            kube::Error::HyperError(e) => Error::Unavailable {
                what,
                reason: e.to_string(),
            },
            kube::Error::Service(e) => Error::Unavailable {
                what,
                reason: chain(&*e),
            },
            kube::Error::InferConfig(e) => Error::Unavailable {
                what,
                reason: e.to_string(),
            },
            other => Error::Client {
                what,
                source: other,
            },
        }
    }
}

/// An error and its sources, joined by ": ".
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        let part = source.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = source.source();
    }
    text
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
