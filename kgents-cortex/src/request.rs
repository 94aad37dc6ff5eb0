//! Pure mapping between the wire and the Logos: request fields to [`Args`], [`Scope`] and ghost
//! [`Query`]s, Logos errors to gRPC [`Status`] codes. Every refusal names the request field at
//! fault and what to send instead.

use kgents_core::field::PheromoneType;
use kgents_ghost::{AgentName, Query};
use kgents_logos::{Args, Error, ErrorKind, Scope};
use tonic::{Code, Status};

use crate::pb;

/// The largest `args_json` accepted, in bytes (the whole request is bounded by
/// [`crate::server::MAX_REQUEST_BYTES`] before it is even decoded).
pub const MAX_ARGS_BYTES: usize = 256 * 1024;

/// The scope a `namespace` field names: empty is every namespace.
pub fn scope_of(namespace: &str) -> Scope {
    if namespace.is_empty() {
        Scope::All
    } else {
        Scope::Namespace(namespace.to_owned())
    }
}

/// The Logos [`Args`] of an [`pb::InvokeRequest`].
///
/// # Errors
/// `INVALID_ARGUMENT` naming `args_json` when it is too large, not JSON, or not an object
/// (with the position serde reports); naming `namespace` or `selector` when those are not
/// plausible.
pub fn args_of(request: &pb::InvokeRequest) -> Result<Args, Status> {
    if !request.namespace.is_empty() {
        kgents_logos::summary::check_name("namespace", &request.namespace)
            .map_err(|reason| Status::invalid_argument(format!("namespace: {reason}")))?;
    }
    let mut args = Args::new(scope_of(&request.namespace));
    let selector = request.selector.trim();
    if !selector.is_empty() {
        args = args.with_selector(Some(selector.to_owned()));
    }
    args.input = input_of(&request.args_json)?;
    Ok(args)
}

/// The input of `args_json`: empty is none (JSON null); otherwise a JSON object.
///
/// # Errors
/// `INVALID_ARGUMENT` naming `args_json`.
pub fn input_of(args_json: &str) -> Result<serde_json::Value, Status> {
    if args_json.len() > MAX_ARGS_BYTES {
        return Err(Status::invalid_argument(format!(
            "args_json: {} bytes is more than the limit of {MAX_ARGS_BYTES} bytes",
            args_json.len()
        )));
    }
    if args_json.trim().is_empty() {
        return Ok(serde_json::Value::Null);
    }
    let value: serde_json::Value = serde_json::from_str(args_json).map_err(|e| {
        Status::invalid_argument(format!(
            "args_json is not JSON: {e} (send a JSON object such as {{\"types\":[\"WARNING\"]}}, or leave it empty)"
        ))
    })?;
    match value {
        serde_json::Value::Object(_) | serde_json::Value::Null => Ok(value),
        other => Err(Status::invalid_argument(format!(
            "args_json must be a JSON object, not {}",
            json_type(&other)
        ))),
    }
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The gRPC code of a Logos failure kind.
pub fn code_of(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::Usage => Code::InvalidArgument,
        ErrorKind::Denied => Code::PermissionDenied,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Failed => Code::Internal,
    }
}

/// A Logos error as a gRPC status: the code of its kind (`UNIMPLEMENTED` for a registered path
/// without a handler) and its explanation as the message.
pub fn status_of(error: &Error) -> Status {
    let code = match error {
        Error::NotServed { .. } => Code::Unimplemented,
        Error::NoModel { .. } => Code::FailedPrecondition,
        Error::BudgetExhausted { .. } => Code::ResourceExhausted,
        Error::Model {
            source: kgents_probes::LlmError::Timeout { .. },
            ..
        } => Code::DeadlineExceeded,
        other => code_of(other.kind()),
    };
    Status::new(code, error.to_string())
}

/// The ghost [`Query`] a snapshot key names (its file under the cache root, `.json` optional).
///
/// # Errors
/// What is wrong with the key, listing the keys that exist.
pub fn query_of_key(key: &str) -> Result<Query, String> {
    const KNOWN: &str = "agents/_index, agents/<name>, pheromones/active, \
        pheromones/by_type/<TYPE>, proposals/pending, proposals/rejected, cluster/status, \
        status/digest";
    let key = key.trim().trim_end_matches(".json");
    let query = match key {
        "agents/_index" => Query::AgentsIndex,
        "pheromones/active" => Query::ActivePheromones,
        "proposals/pending" => Query::PendingProposals,
        "proposals/rejected" => Query::RejectedProposals,
        "cluster/status" => Query::ClusterStatus,
        "status/digest" => Query::StatusDigest,
        _ => {
            if let Some(t) = key.strip_prefix("pheromones/by_type/") {
                let t: PheromoneType = t.parse().map_err(|e| format!("key {key:?}: {e}"))?;
                Query::PheromonesByType(t)
            } else if let Some(name) = key.strip_prefix("agents/") {
                let name = AgentName::new(name).map_err(|e| format!("key {key:?}: {e}"))?;
                Query::Agent(name)
            } else {
                return Err(format!(
                    "{key:?} is not a snapshot key; the keys are {KNOWN}"
                ));
            }
        }
    };
    Ok(query)
}

/// The key of a ghost [`Query`] as [`query_of_key`] reads it.
pub fn key_of_query(query: &Query) -> String {
    kgents_ghost::SnapshotKey::Query(query.clone())
        .relative_path()
        .trim_end_matches(".json")
        .to_owned()
}

/// What an `Observe` subscriber asked to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Kinds {
    /// Pheromone changes.
    pub pheromones: bool,
    /// Agent changes.
    pub agents: bool,
    /// Proposal changes.
    pub proposals: bool,
    /// Events of kgents objects.
    pub events: bool,
}

impl Kinds {
    /// Every kind.
    pub const ALL: Kinds = Kinds {
        pheromones: true,
        agents: true,
        proposals: true,
        events: true,
    };

    /// Whether nothing is selected.
    pub fn is_empty(&self) -> bool {
        !(self.pheromones || self.agents || self.proposals || self.events)
    }
}

/// The kinds an `ObserveRequest` names (empty: all).
///
/// # Errors
/// `INVALID_ARGUMENT` naming the unknown kind and listing the known ones.
pub fn kinds_of(names: &[String]) -> Result<Kinds, Status> {
    if names.is_empty() {
        return Ok(Kinds::ALL);
    }
    let mut kinds = Kinds::default();
    for name in names {
        match name.trim().to_ascii_lowercase().trim_end_matches('s') {
            "pheromone" => kinds.pheromones = true,
            "agent" => kinds.agents = true,
            "proposal" => kinds.proposals = true,
            "event" => kinds.events = true,
            _ => {
                return Err(Status::invalid_argument(format!(
                    "kinds: {name:?} is not a kind of event; use pheromone, agent, proposal or event"
                )));
            }
        }
    }
    Ok(kinds)
}

/// The read path that grants each kind of `Observe` event to a restricted caller.
pub const PHEROMONES_PATH: &str = "void.pheromone.sense";
/// See [`PHEROMONES_PATH`].
pub const AGENTS_PATH: &str = "world.cluster.agents.manifest";
/// See [`PHEROMONES_PATH`].
pub const PROPOSALS_PATH: &str = "world.cluster.proposals.manifest";

#[cfg(test)]
mod tests {
    use super::*;

    fn request(args_json: &str) -> pb::InvokeRequest {
        pb::InvokeRequest {
            path: "void.pheromone.sense".into(),
            args_json: args_json.into(),
            ..Default::default()
        }
    }

    #[test]
    fn empty_namespace_is_every_namespace_and_empty_args_are_none() {
        let args = args_of(&request("")).expect("valid");
        assert_eq!(args.scope, Scope::All);
        assert!(args.input.is_null());
        let mut one = request(r#"{"types":["WARNING"]}"#);
        one.namespace = "team".into();
        one.selector = " app=x ".into();
        let args = args_of(&one).expect("valid");
        assert_eq!(args.scope, Scope::Namespace("team".into()));
        assert_eq!(args.selector.as_deref(), Some("app=x"));
        assert_eq!(args.input["types"][0], "WARNING");
    }

    #[test]
    fn malformed_args_name_the_field_and_the_position() {
        let error = args_of(&request(r#"{"types": [WARNING]}"#)).expect_err("not JSON");
        assert_eq!(error.code(), Code::InvalidArgument);
        assert!(
            error.message().starts_with("args_json is not JSON"),
            "{error:?}"
        );
        assert!(error.message().contains("column"), "{error:?}");
        let error = args_of(&request("[1, 2]")).expect_err("not an object");
        assert_eq!(
            error.message(),
            "args_json must be a JSON object, not an array"
        );
        let big = format!("{{\"payload\":\"{}\"}}", "x".repeat(MAX_ARGS_BYTES));
        let error = args_of(&request(&big)).expect_err("too large");
        assert!(error.message().contains("limit"), "{error:?}");
        let mut bad_ns = request("");
        bad_ns.namespace = "Team!".into();
        let error = args_of(&bad_ns).expect_err("bad namespace");
        assert!(error.message().starts_with("namespace:"), "{error:?}");
    }

    #[test]
    fn logos_errors_map_to_codes_with_their_explanation() {
        let unknown = Error::UnknownPath {
            path: "world.cluster.agent.manifest".into(),
            suggestions: vec!["world.cluster.agents.manifest".into()],
        };
        let status = status_of(&unknown);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status
                .message()
                .contains("did you mean world.cluster.agents.manifest")
        );
        let denied = Error::Denied {
            caller: "agent b".into(),
            path: "void.pheromone.emit".into(),
            globs: vec!["void.pheromone.sense".into()],
        };
        assert_eq!(status_of(&denied).code(), Code::PermissionDenied);
        let not_served = Error::NotServed {
            path: "concept.define".into(),
            operation: "x".into(),
        };
        assert_eq!(status_of(&not_served).code(), Code::Unimplemented);
        assert_eq!(code_of(ErrorKind::Unavailable), Code::Unavailable);
        assert_eq!(code_of(ErrorKind::NotFound), Code::NotFound);
    }

    #[test]
    fn snapshot_keys_round_trip_and_unknown_ones_list_the_keys() {
        for query in [
            Query::AgentsIndex,
            Query::Agent(AgentName::new("b-gent").unwrap()),
            Query::ActivePheromones,
            Query::PheromonesByType(PheromoneType::Warning),
            Query::PendingProposals,
            Query::RejectedProposals,
            Query::ClusterStatus,
            Query::StatusDigest,
        ] {
            let key = key_of_query(&query);
            assert_eq!(query_of_key(&key), Ok(query.clone()), "{key}");
            assert_eq!(query_of_key(&format!("{key}.json")), Ok(query));
        }
        let error = query_of_key("pods/all").expect_err("unknown");
        assert!(error.contains("agents/_index"), "{error}");
        assert!(query_of_key("agents/../etc").is_err());
        assert!(query_of_key("pheromones/by_type/LOUD").is_err());
    }

    #[test]
    fn kinds_accept_singular_and_plural_and_refuse_others() {
        assert_eq!(kinds_of(&[]).unwrap(), Kinds::ALL);
        let kinds = kinds_of(&["pheromones".into(), "Agent".into()]).unwrap();
        assert!(kinds.pheromones && kinds.agents && !kinds.proposals && !kinds.events);
        let error = kinds_of(&["pods".into()]).expect_err("unknown");
        assert!(
            error
                .message()
                .contains("pheromone, agent, proposal or event")
        );
    }
}
