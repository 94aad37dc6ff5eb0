//! The samples in `deploy/examples/`, checked client-side: valid ones deserialize into the typed
//! resources, fit the schema and pass every CEL rule; invalid ones fail one of those, and the
//! CEL failures carry the message their header promises. (tests/apiserver.rs checks the same
//! samples against the real API server.)

mod common;

use kgents_crds::{Agent, Memory, Pheromone, Proposal, Umwelt, Workflow};
use kube::CustomResourceExt;
use kube::core::cel::ValidationErrors;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Deserializes into the typed resource and runs its CEL rules.
fn typed<T: DeserializeOwned>(
    object: &Value,
    validate: fn(&T) -> Result<(), ValidationErrors>,
) -> Result<Result<(), Vec<String>>, String> {
    let resource: T = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    Ok(validate(&resource).map_err(|errors| errors.iter().map(|e| e.to_string()).collect()))
}

/// Why a sample was refused client-side.
#[derive(Debug)]
enum Refusal {
    /// The schema (types, enums, required, formats) or typed deserialization refused it.
    Schema(Vec<String>),
    /// A CEL rule refused it, with these messages.
    Cel(Vec<String>),
}

/// Schema problems, then typed-deserialization failure, then CEL messages.
fn check(object: &Value) -> Result<(), Refusal> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let crd = match kind {
        "Agent" => Agent::crd(),
        "Pheromone" => Pheromone::crd(),
        "Memory" => Memory::crd(),
        "Umwelt" => Umwelt::crd(),
        "Proposal" => Proposal::crd(),
        "Workflow" => Workflow::crd(),
        other => return Err(Refusal::Schema(vec![format!("unknown kind {other}")])),
    };
    // apiVersion, kind and metadata are validated by the API server itself, not by the CRD's
    // schema, which does not declare them.
    let mut body = object.clone();
    if let Some(fields) = body.as_object_mut() {
        for implicit in ["apiVersion", "kind", "metadata"] {
            fields.remove(implicit);
        }
    }
    let structural = common::structural_errors(&common::open_api_schema(&crd), &body);
    if !structural.is_empty() {
        return Err(Refusal::Schema(structural));
    }
    let outcome = match kind {
        "Agent" => typed::<Agent>(object, |r| r.validate_cel()),
        "Pheromone" => typed::<Pheromone>(object, |r| r.validate_cel()),
        "Memory" => typed::<Memory>(object, |r| r.validate_cel()),
        "Umwelt" => typed::<Umwelt>(object, |r| r.validate_cel()),
        "Workflow" => typed::<Workflow>(object, |r| r.validate_cel()),
        _ => typed::<Proposal>(object, |r| r.validate_cel()),
    };
    match outcome {
        Err(e) => Err(Refusal::Schema(vec![format!("does not deserialize: {e}")])),
        Ok(cel) => cel.map_err(Refusal::Cel),
    }
}

#[test]
fn valid_samples_pass_schema_types_and_rules() {
    let samples = common::valid_samples();
    assert!(
        samples.iter().any(|s| s.file == "agent-b-gent.yaml"),
        "the seed's b-gent is a sample"
    );
    for sample in samples {
        if let Err(refusal) = check(&sample.object) {
            panic!("{}: {refusal:#?}", sample.file);
        }
    }
}

#[test]
fn seed_b_gent_is_unchanged() {
    let text =
        std::fs::read_to_string(common::workspace_root().join("deploy/examples/agent-b-gent.yaml"))
            .unwrap();
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        body,
        "apiVersion: kgents.io/v1\nkind: Agent\nmetadata:\n  name: b-gent\nspec:\n  genus: B\n  reconciliation:\n    \
         sequential: true      # Controller ensures one-at-a-time\n    idempotent: true      # Safe to retry\n"
    );
}

#[test]
fn invalid_samples_are_refused_client_side_with_their_message() {
    let samples = common::invalid_samples();
    assert!(samples.len() >= 10);
    for sample in samples {
        match check(&sample.object) {
            Ok(()) => panic!("{} passed every client-side check", sample.file),
            // Schema-level refusals are phrased by the API server itself (checked in
            // tests/apiserver.rs); here it is enough that they are refused.
            Err(Refusal::Schema(problems)) => assert!(!problems.is_empty(), "{}", sample.file),
            // CEL refusals carry our messages: they must be the ones the header expects.
            Err(Refusal::Cel(messages)) => {
                for expected in &sample.expected {
                    assert!(
                        messages.iter().any(|m| m.contains(expected.as_str())),
                        "{}: {messages:#?} does not mention {expected:?}",
                        sample.file
                    );
                }
            }
        }
    }
}
