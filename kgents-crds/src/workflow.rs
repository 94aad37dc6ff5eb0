//! `Workflow` (`wf`): a durable DAG of steps — AGENTESE invocations or Proposals — whose status
//! is its journal.
//!
//! Each step's intent (phase Running, attempt, idempotency key) is written to the status before
//! its side effect; the effect is named from the key, so re-issuing it after a restart finds the
//! first one instead of doing it twice. Retry timing (`nextRetryAt`) lives in the status too.
//!
//! The schema's CEL rules check what one step can say about itself (one kind of action, no
//! dependency on itself, limits) and unique step names (the list's map key). What CEL cannot
//! afford or see — dependencies that exist (a rule over every pair of steps exceeds the API
//! server's cost budget), a cycle, an AGENTESE path that is not in the registry, a proposal
//! template that is not a valid Proposal spec — [`validate_spec`] checks; the admission webhook
//! calls it and names the step in its refusal.

use std::collections::{BTreeMap, BTreeSet};

use kgents_core::agentese::{Path, Registry};
use kube::core::Rule;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, Time};
use crate::error::{Error, Result};
use crate::proposal::ProposalSpec;

/// Most steps a workflow may have.
pub const MAX_STEPS: usize = 64;
/// Most dependencies one step may name.
pub const MAX_DEPENDENCIES: usize = 16;
/// Most retries a step may ask for (total attempts = limit + 1).
pub const MAX_RETRY_LIMIT: i32 = 20;
/// Longest status message kept per step, in characters (status stays small).
pub const MAX_MESSAGE_CHARS: usize = 512;
/// Longest step name (a DNS label, so it can be part of an object name).
pub const MAX_STEP_NAME: usize = 63;

fn umwelt_for_paths_rule() -> Rule {
    Rule::new("has(self.umwelt) || self.steps.all(s, !has(s.path))").message(
        "a workflow with AGENTESE (path) steps must name the Umwelt they run as (spec.umwelt); its affordances decide what the steps may do",
    )
}

/// Desired state of a Workflow.
// Each printcolumn(...) repeats `type_ = ...`; clippy reads those as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kgents.io",
    version = "v1",
    kind = "Workflow",
    namespaced,
    status = "WorkflowStatus",
    shortname = "wf",
    category = "kgents",
    derive = "PartialEq",
    cel,
    doc = "A Workflow is a durable DAG of steps: AGENTESE invocations (as its Umwelt) or Proposals. Its status is the journal: each step's intent and idempotency key are written before the step acts, so a restart never runs a step twice. Retries with backoff, per-step timeouts and onFailure are per step; set spec.cancelled to stop it, raise spec.retryGeneration to retry failed steps.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Pending, Running, Succeeded, Failed or Cancelled"
    ),
    printcolumn(
        name = "Done",
        type_ = "integer",
        json_path = ".status.succeeded",
        description = "Steps succeeded"
    ),
    printcolumn(
        name = "Steps",
        type_ = "integer",
        json_path = ".status.total",
        description = "Steps in the workflow"
    ),
    printcolumn(
        name = "Umwelt",
        type_ = "string",
        json_path = ".spec.umwelt",
        priority = 1,
        description = "Umwelt the AGENTESE steps run as"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = umwelt_for_paths_rule())]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSpec {
    /// Name of the Umwelt (same namespace) whose affordances the AGENTESE steps run with.
    /// Required when any step has a path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub umwelt: Option<String>,

    /// The steps, 1–64, names unique. A step starts when every step it depends on succeeded.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[x_kube(validation = Rule::new("size(self) >= 1").message("a workflow needs at least one step").reason(Reason::FieldValueRequired))]
    #[schemars(length(max = 64))]
    pub steps: Vec<WorkflowStep>,

    /// Stop the workflow: no further step starts, and every step not finished is Cancelled.
    /// What a running step created (its Proposal) is left as it is; the workflow stops
    /// waiting for it.
    #[serde(default)]
    pub cancelled: bool,

    /// Raise to retry every failed step (and the steps skipped because of them) with a fresh
    /// retry budget (`kgents workflow retry`). Must not decrease.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0").message("retryGeneration must not be negative"))]
    pub retry_generation: i64,
}

/// One step of a workflow: exactly one of `path` and `proposal`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.path) != has(self.proposal)")
    .message("a step has exactly one action: an AGENTESE path (with optional args) or a proposal template"))]
#[x_kube(validation = Rule::new("!has(self.args) || has(self.path)")
    .message("args belong to a path step; a proposal step carries its spec in proposal")
    .field_path(".args"))]
#[x_kube(validation = Rule::new("!has(self.dependsOn) || !(self.name in self.dependsOn)")
    .message("a step cannot depend on itself")
    .field_path(".dependsOn"))]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStep {
    /// Name of the step, unique in the workflow: a DNS label (lower-case letters, digits, '-').
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("a step name must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit"))]
    #[schemars(length(min = 1, max = 63))]
    pub name: String,

    /// An AGENTESE path to invoke through the Logos as the workflow's Umwelt, e.g.
    /// `void.pheromone.emit`. It must be a registered path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub path: Option<String>,

    /// The input of the path (any JSON object, as the Logos takes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub args: Option<serde_json::Map<String, serde_json::Value>>,

    /// A Proposal spec to file (as a Proposal named from the step's idempotency key, filed by
    /// the operator: spec.proposer becomes the operator's username, as admission requires); the
    /// step succeeds when the proposal is Merged and fails when it is Rejected, Failed, Expired
    /// or Superseded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub proposal: Option<serde_json::Map<String, serde_json::Value>>,

    /// Steps that must succeed before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(length(max = 16))]
    pub depends_on: Vec<String>,

    /// How a failed attempt is retried (default: not retried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryStrategy>,

    /// Seconds an attempt may run before it fails as timed out, 1–604800 (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 604800").message("timeoutSeconds must be between 1 and 604800 (a week)"))]
    pub timeout_seconds: Option<i64>,

    /// What a failure (after its retries) does: Fail (default) fails the workflow and skips
    /// the steps not started; Continue lets the steps that do not depend on it go on.
    #[serde(default)]
    pub on_failure: OnFailure,
}

impl WorkflowStep {
    /// The proposal template as a typed spec (an error says what is wrong with it).
    pub fn proposal_spec(&self) -> Option<std::result::Result<ProposalSpec, String>> {
        self.proposal.as_ref().map(|template| {
            serde_json::from_value(serde_json::Value::Object(template.clone()))
                .map_err(|e| e.to_string())
        })
    }
}

fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// How a failed attempt is retried (Argo's retryStrategy; the limit counts retries).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// Retries after the first attempt, 0–20 (total attempts = limit + 1).
    #[x_kube(validation = Rule::new("self >= 0 && self <= 20").message("retry.limit must be between 0 and 20"))]
    pub limit: i32,
    /// Delay before each retry (default: 1 s, doubling, at most 100 s).
    #[serde(default)]
    pub backoff: Backoff,
}

/// Exponential backoff: retry n waits min(durationSeconds × factor^(n−1), capSeconds).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.capSeconds >= self.durationSeconds")
    .message("backoff.capSeconds must be at least backoff.durationSeconds"))]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// Delay before the first retry in seconds, 1–3600 (default 1).
    #[serde(default = "default_backoff_seconds")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 3600").message("backoff.durationSeconds must be between 1 and 3600"))]
    pub duration_seconds: i64,
    /// Growth of the delay per retry, 1–10 (default 2).
    #[serde(default = "default_backoff_factor")]
    #[x_kube(validation = Rule::new("self >= 1.0 && self <= 10.0").message("backoff.factor must be between 1 and 10"))]
    pub factor: f64,
    /// Longest delay in seconds, 1–86400 (default 100).
    #[serde(default = "default_backoff_cap")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 86400").message("backoff.capSeconds must be between 1 and 86400"))]
    pub cap_seconds: i64,
}

fn default_backoff_seconds() -> i64 {
    1
}
fn default_backoff_factor() -> f64 {
    2.0
}
fn default_backoff_cap() -> i64 {
    100
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            duration_seconds: default_backoff_seconds(),
            factor: default_backoff_factor(),
            cap_seconds: default_backoff_cap(),
        }
    }
}

impl Backoff {
    /// The delay before retry `retry` (1 for the first retry), in whole seconds.
    pub fn delay_seconds(&self, retry: i32) -> i64 {
        let exponent = retry.saturating_sub(1).clamp(0, 64);
        let factor = if self.factor.is_finite() && self.factor >= 1.0 {
            self.factor
        } else {
            1.0
        };
        let cap = self.cap_seconds.max(1);
        let delay = self.duration_seconds.max(1) as f64 * factor.powi(exponent);
        if delay.is_finite() && delay < cap as f64 {
            (delay.ceil() as i64).max(1)
        } else {
            cap
        }
    }
}

/// What a failed step does to the rest of the workflow.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnFailure {
    /// Fail the workflow; steps not started are skipped.
    #[default]
    Fail,
    /// Go on with the steps that do not depend on the failed one (those are skipped).
    Continue,
}

/// Observed state of a Workflow: its journal, written by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStatus {
    /// Pending, Running, Succeeded, Failed or Cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<WorkflowPhase>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The spec.retryGeneration last honoured (failed steps were reset for it).
    #[serde(default)]
    pub retry_generation: i64,
    /// Steps succeeded.
    #[serde(default)]
    pub succeeded: i32,
    /// Steps in the workflow.
    #[serde(default)]
    pub total: i32,
    /// When the first step started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the workflow reached Succeeded, Failed or Cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// One journal entry per step, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 64))]
    pub steps: Vec<StepStatus>,
    /// Ready (True when Succeeded), Progressing and Failed, kstatus-compatible.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Lifecycle phase of a Workflow.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkflowPhase {
    /// Accepted, no step started yet.
    Pending,
    /// At least one step started, not finished.
    Running,
    /// Every step succeeded (or failed with onFailure Continue and the rest succeeded).
    Succeeded,
    /// A step failed after its retries.
    Failed,
    /// Stopped by spec.cancelled.
    Cancelled,
}

impl WorkflowPhase {
    /// The phase as written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowPhase::Pending => "Pending",
            WorkflowPhase::Running => "Running",
            WorkflowPhase::Succeeded => "Succeeded",
            WorkflowPhase::Failed => "Failed",
            WorkflowPhase::Cancelled => "Cancelled",
        }
    }

    /// Whether nothing more will happen (until a retry).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            WorkflowPhase::Succeeded | WorkflowPhase::Failed | WorkflowPhase::Cancelled
        )
    }
}

/// One step's journal entry.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepStatus {
    /// The step's name.
    pub name: String,
    /// Pending, Running, Succeeded, Failed, Skipped or Cancelled.
    pub phase: StepPhase,
    /// The attempt running or last run (1 for the first; 0 before the first start). Keeps
    /// counting across manual retries, so every attempt has its own key.
    #[serde(default)]
    pub attempt: i32,
    /// Automatic retries used of retry.limit since the workflow started or was last retried.
    #[serde(default)]
    pub retries: i32,
    /// The idempotency key of the current attempt: workflow uid, step name and attempt. The
    /// step's side effect is named from it, so re-issuing it finds the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub idempotency_key: Option<String>,
    /// Name of the object the attempt created (the Proposal, or the Pheromone of an emit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub object_name: Option<String>,
    /// When the current attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the step finished (succeeded, failed for good, skipped or cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// When the next attempt may start (a failed attempt with retries left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_at: Option<Time>,
    /// What happened last, at most 512 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub message: Option<String>,
    /// A digest of the step's result (never the result itself: status stays small).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub output_digest: Option<String>,
}

impl StepStatus {
    /// A step not started yet.
    pub fn pending(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            phase: StepPhase::Pending,
            attempt: 0,
            retries: 0,
            idempotency_key: None,
            object_name: None,
            started_at: None,
            finished_at: None,
            next_retry_at: None,
            message: None,
            output_digest: None,
        }
    }
}

/// Phase of one step.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepPhase {
    /// Not started (or waiting for its next retry at nextRetryAt).
    Pending,
    /// Started: its intent and key are journaled; its effect is issued or awaited.
    Running,
    /// Done.
    Succeeded,
    /// Failed after its retries.
    Failed,
    /// Not run: a step it depends on failed or was skipped, or the workflow failed.
    Skipped,
    /// Not run: the workflow was cancelled.
    Cancelled,
}

impl StepPhase {
    /// The phase as written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            StepPhase::Pending => "Pending",
            StepPhase::Running => "Running",
            StepPhase::Succeeded => "Succeeded",
            StepPhase::Failed => "Failed",
            StepPhase::Skipped => "Skipped",
            StepPhase::Cancelled => "Cancelled",
        }
    }

    /// Whether the step will not change again (until a retry).
    pub fn is_final(self) -> bool {
        !matches!(self, StepPhase::Pending | StepPhase::Running)
    }
}

/// Checks what the schema's CEL rules cannot: every step's action is well-formed (an AGENTESE
/// path that parses and is registered in `registry`; a proposal template that is a valid
/// Proposal spec), every dependency exists, and the dependencies form no cycle. Also repeats the
/// limits, for objects that did not come through the current schema. Errors name the step.
pub fn validate_spec(spec: &WorkflowSpec, registry: &Registry) -> Result<()> {
    let invalid = |step: &str, reason: String| Error::InvalidWorkflow {
        step: step.chars().take(MAX_STEP_NAME).collect(),
        reason,
    };
    if spec.steps.is_empty() {
        return Err(invalid("", "a workflow needs at least one step".into()));
    }
    if spec.steps.len() > MAX_STEPS {
        return Err(invalid(
            "",
            format!(
                "{} steps; at most {MAX_STEPS} are allowed (split the workflow)",
                spec.steps.len()
            ),
        ));
    }
    let mut names = BTreeSet::new();
    for step in &spec.steps {
        if !is_dns_label(&step.name) {
            return Err(invalid(
                &step.name,
                "the name must be a DNS label (lower-case letters, digits and '-', at most 63)"
                    .into(),
            ));
        }
        if !names.insert(step.name.as_str()) {
            return Err(invalid(&step.name, "two steps have this name".into()));
        }
    }
    for step in &spec.steps {
        match (&step.path, &step.proposal) {
            (Some(path), None) => {
                let parsed = Path::parse(path).map_err(|e| {
                    invalid(&step.name, format!("path {path:?} is not AGENTESE: {e}"))
                })?;
                if registry.by_path(&parsed).is_none() {
                    return Err(invalid(
                        &step.name,
                        format!(
                            "path {path:?} is not a registered AGENTESE path (known: {})",
                            registry
                                .entries()
                                .iter()
                                .map(|e| e.template().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                if spec.umwelt.is_none() {
                    return Err(invalid(
                        &step.name,
                        "a path step runs as the workflow's Umwelt; set spec.umwelt".into(),
                    ));
                }
            }
            (None, Some(_)) => {
                if let Some(Err(e)) = step.proposal_spec() {
                    return Err(invalid(
                        &step.name,
                        format!("proposal is not a valid Proposal spec: {e}"),
                    ));
                }
            }
            _ => {
                return Err(invalid(
                    &step.name,
                    "a step has exactly one action: a path or a proposal".into(),
                ));
            }
        }
        if step.depends_on.len() > MAX_DEPENDENCIES {
            return Err(invalid(
                &step.name,
                format!("at most {MAX_DEPENDENCIES} dependencies are allowed"),
            ));
        }
        for dependency in &step.depends_on {
            if !names.contains(dependency.as_str()) {
                return Err(invalid(
                    &step.name,
                    format!("depends on {dependency:?}, which is not a step of this workflow"),
                ));
            }
        }
        if let Some(retry) = &step.retry
            && !(0..=MAX_RETRY_LIMIT).contains(&retry.limit)
        {
            return Err(invalid(
                &step.name,
                format!(
                    "retry.limit {} is not in 0..={MAX_RETRY_LIMIT}",
                    retry.limit
                ),
            ));
        }
    }
    if let Some(cycle) = find_cycle(spec) {
        return Err(invalid(
            &cycle[0],
            format!(
                "the dependencies form a cycle: {} (a workflow is a DAG)",
                cycle.join(" -> ")
            ),
        ));
    }
    Ok(())
}

fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_STEP_NAME
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A dependency cycle, as the step names along it with the first repeated at the end
/// (`a -> b -> a`), or `None` for a DAG. Unknown dependencies are ignored here.
pub fn find_cycle(spec: &WorkflowSpec) -> Option<Vec<String>> {
    let edges: BTreeMap<&str, &[String]> = spec
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.depends_on.as_slice()))
        .collect();
    // 0 = unvisited, 1 = on the current path, 2 = done. Iterative, so a long chain cannot
    // overflow the stack.
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    for start in spec.steps.iter().map(|s| s.name.as_str()) {
        if state.get(start).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        state.insert(start, 1);
        while let Some((node, next)) = stack.last().copied() {
            let deps = edges.get(node).copied().unwrap_or(&[]);
            if let Some(dep) = deps.get(next) {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                let dep = dep.as_str();
                if !edges.contains_key(dep) {
                    continue;
                }
                match state.get(dep).copied().unwrap_or(0) {
                    0 => {
                        state.insert(dep, 1);
                        stack.push((dep, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            stack[from..].iter().map(|(n, _)| (*n).to_owned()).collect();
                        cycle.push(dep.to_owned());
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                state.insert(node, 2);
                stack.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> WorkflowSpec {
        serde_json::from_value(value).expect("spec")
    }

    fn proposal() -> serde_json::Value {
        json!({"proposer": "alice", "changeType": "AGENT_SCALE",
               "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": "b"},
               "patch": {"content": "{\"spec\":{\"replicas\":2}}"}})
    }

    #[test]
    fn a_valid_dag_passes() {
        let s = spec(json!({"umwelt": "u", "steps": [
            {"name": "a", "path": "void.pheromone.emit", "args": {"pheromone_type": "WARNING"}},
            {"name": "b", "proposal": proposal(), "dependsOn": ["a"]},
            {"name": "c", "path": "void.pheromone.sense", "dependsOn": ["a", "b"]},
        ]}));
        validate_spec(&s, &Registry::seed()).expect("valid");
        assert_eq!(find_cycle(&s), None);
    }

    #[test]
    fn a_cycle_is_refused_naming_a_step_on_it() {
        let s = spec(json!({"steps": [
            {"name": "a", "proposal": proposal()},
            {"name": "b", "proposal": proposal(), "dependsOn": ["a", "d"]},
            {"name": "c", "proposal": proposal(), "dependsOn": ["b"]},
            {"name": "d", "proposal": proposal(), "dependsOn": ["c"]},
        ]}));
        let err = validate_spec(&s, &Registry::seed())
            .unwrap_err()
            .to_string();
        assert!(err.contains("cycle"), "{err}");
        assert!(err.contains("b -> d -> c -> b"), "{err}");
        assert!(err.starts_with("workflow step \"b\""), "{err}");
    }

    #[test]
    fn an_unknown_path_is_refused_naming_the_step() {
        let s = spec(json!({"umwelt": "u", "steps": [
            {"name": "first", "path": "void.pheromone.sense"},
            {"name": "second", "path": "world.cluster.nothing.manifest"},
        ]}));
        let err = validate_spec(&s, &Registry::seed())
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"second\""), "{err}");
        assert!(err.contains("not a registered AGENTESE path"), "{err}");
        let bad = spec(json!({"umwelt": "u", "steps": [{"name": "x", "path": "nowhere"}]}));
        let err = validate_spec(&bad, &Registry::seed())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"x\"") && err.contains("not AGENTESE"),
            "{err}"
        );
    }

    #[test]
    fn bad_templates_names_and_missing_dependencies_are_refused() {
        let registry = Registry::seed();
        let bad_proposal = spec(json!({"steps": [{"name": "p", "proposal": {"proposer": 1}}]}));
        assert!(
            validate_spec(&bad_proposal, &registry)
                .unwrap_err()
                .to_string()
                .contains("not a valid Proposal spec")
        );
        let missing =
            spec(json!({"steps": [{"name": "p", "proposal": proposal(), "dependsOn": ["q"]}]}));
        assert!(
            validate_spec(&missing, &registry)
                .unwrap_err()
                .to_string()
                .contains("\"q\"")
        );
        let upper = spec(json!({"steps": [{"name": "P", "proposal": proposal()}]}));
        assert!(validate_spec(&upper, &registry).is_err());
        let no_umwelt = spec(json!({"steps": [{"name": "p", "path": "void.pheromone.sense"}]}));
        assert!(
            validate_spec(&no_umwelt, &registry)
                .unwrap_err()
                .to_string()
                .contains("spec.umwelt")
        );
        let self_loop =
            spec(json!({"steps": [{"name": "p", "proposal": proposal(), "dependsOn": ["p"]}]}));
        assert!(validate_spec(&self_loop, &registry).is_err());
    }

    #[test]
    fn backoff_grows_by_the_factor_up_to_the_cap() {
        let b = Backoff {
            duration_seconds: 2,
            factor: 3.0,
            cap_seconds: 50,
        };
        let delays: Vec<i64> = (1..=5).map(|n| b.delay_seconds(n)).collect();
        assert_eq!(delays, vec![2, 6, 18, 50, 50]);
        assert_eq!(Backoff::default().delay_seconds(100), 100);
    }
}
