//! `Umwelt` (`uw`): what an agent perceives and may do. The operator compiles it into a
//! ServiceAccount, Role and RoleBinding granting exactly its affordances, plus a ConfigMap.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use kgents_core::agentese::{AffordanceGlob, Affordances};

use crate::common::{Condition, PheromoneType, SecretRef, Time};
use crate::error::{Error, Result};

/// CEL regular expression every entry of `spec.affordances` must match: the grammar of
/// `kgents_core::agentese::AffordanceGlob` — dot-separated elements, the first a context (world,
/// self, concept, void, time) or `*`, each further element a lowercase segment (letters, digits,
/// `-`, `_`) or `*` as a whole element, at most 34 elements.
///
/// The admission webhook checks the same with [`validate_affordances`], which uses the
/// `kgents-core` parser itself; a property test keeps the two in agreement.
pub const AFFORDANCE_PATTERN: &str =
    "^([*]|world|self|concept|void|time)([.]([a-z0-9_-]+|[*])){0,33}$";

/// Longest affordance glob accepted, in characters.
pub const MAX_AFFORDANCE_LEN: usize = 253;
/// Most affordances one Umwelt may list.
pub const MAX_AFFORDANCES: usize = 128;

fn affordances_rule() -> kube::core::Rule {
    kube::core::Rule::new(format!("self.all(a, a.matches('{AFFORDANCE_PATTERN}'))"))
        .message("every affordance must be an AGENTESE glob: context.segment[.segment...] with context world, self, concept, void or time, segments of lowercase letters, digits, - or _, and * only as a whole element (e.g. world.*.manifest, self.memory.*)")
}

/// Desired state of an Umwelt.
// Each printcolumn(...) repeats `type_ = ...`; clippy reads those as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kgents.io",
    version = "v1",
    kind = "Umwelt",
    namespaced,
    status = "UmweltStatus",
    shortname = "uw",
    category = "kgents",
    derive = "PartialEq",
    cel,
    doc = "An Umwelt is what an agent perceives and may do: its AGENTESE affordances become a ServiceAccount, Role and RoleBinding (what is not afforded is denied), and its persona, constraints and context a ConfigMap for the agent's runtime.",
    printcolumn(
        name = "Agent",
        type_ = "string",
        json_path = ".spec.agent",
        description = "Agent this umwelt belongs to"
    ),
    printcolumn(
        name = "Workload",
        type_ = "string",
        json_path = ".spec.workload",
        description = "routine, exploration or urgent"
    ),
    printcolumn(
        name = "TokenBudget",
        type_ = "integer",
        json_path = ".spec.constraints.tokenBudget",
        description = "Tokens per day"
    ),
    printcolumn(
        name = "Active",
        type_ = "integer",
        json_path = ".status.activeAgents",
        description = "Agents using this umwelt"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct UmweltSpec {
    /// Name of the Agent this umwelt belongs to. Required.
    #[x_kube(validation = Rule::new("self != ''").message("agent must name the Agent this umwelt belongs to").reason(Reason::FieldValueRequired))]
    #[schemars(length(max = 253))]
    pub agent: String,

    /// Personality dials handed to the agent's runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persona: Option<Persona>,

    /// AGENTESE globs the agent may invoke, e.g. `world.*.manifest`, `self.memory.*`. Anything not
    /// matched is denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = affordances_rule())]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(length(max = 128), inner(length(max = 253)))]
    pub affordances: Vec<String>,

    /// Resource budgets of the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Constraints>,

    /// Which pheromone types the agent senses and emits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pheromone_sensitivity: Option<PheromoneSensitivity>,

    /// Free-form context handed to the agent's runtime (any JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,

    /// Secret with credentials the agent's runtime may read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,

    /// Share of output the agent may spend on exploratory, unpolished work, 0–1 (default 0.1).
    #[serde(default = "default_slop_budget")]
    #[x_kube(validation = Rule::new("self >= 0.0 && self <= 1.0").message("slopBudget must be between 0 and 1"))]
    pub slop_budget: f64,

    /// Kind of work: routine (default), exploration or urgent.
    #[serde(default)]
    pub workload: Workload,
}

fn default_slop_budget() -> f64 {
    0.1
}

/// Checks `spec.affordances` exactly as the CRD schema and its CEL rule do (at most
/// [`MAX_AFFORDANCES`] globs of at most [`MAX_AFFORDANCE_LEN`] characters, each parsing as a
/// `kgents_core` [`AffordanceGlob`]) and returns the parsed
/// set. For the admission webhook, which must not trust that a stored object went through the
/// current schema.
pub fn validate_affordances<S: AsRef<str>>(globs: &[S]) -> Result<Affordances> {
    if globs.len() > MAX_AFFORDANCES {
        return Err(Error::OutOfRange {
            field: "spec.affordances",
            value: format!("{} entries", globs.len()),
            expected: "at most 128 entries",
        });
    }
    let mut affordances = Affordances::deny_all();
    for (index, glob) in globs.iter().enumerate() {
        let glob = glob.as_ref();
        let invalid = |reason: String| Error::InvalidAffordance {
            index,
            glob: glob.chars().take(80).collect(),
            reason,
        };
        let length = glob.chars().count();
        if length > MAX_AFFORDANCE_LEN {
            return Err(invalid(format!(
                "{length} characters, at most {MAX_AFFORDANCE_LEN} allowed"
            )));
        }
        affordances.push(AffordanceGlob::parse(glob).map_err(|e| invalid(e.to_string()))?);
    }
    Ok(affordances)
}

fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Personality dials, each in [0, 1].
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("[self.warmth, self.directness, self.humor, self.verbosity].all(v, v >= 0.0 && v <= 1.0)")
    .message("persona warmth, directness, humor and verbosity must each be between 0 and 1"))]
#[serde(rename_all = "camelCase")]
pub struct Persona {
    /// Warmth, 0–1 (default 0.5).
    #[serde(default = "half")]
    pub warmth: f64,
    /// Directness, 0–1 (default 0.5).
    #[serde(default = "half")]
    pub directness: f64,
    /// Humor, 0–1 (default 0.5).
    #[serde(default = "half")]
    pub humor: f64,
    /// Verbosity, 0–1 (default 0.5).
    #[serde(default = "half")]
    pub verbosity: f64,
}

fn half() -> f64 {
    0.5
}

impl Default for Persona {
    fn default() -> Self {
        Self {
            warmth: 0.5,
            directness: 0.5,
            humor: 0.5,
            verbosity: 0.5,
        }
    }
}

/// Resource budgets; unset means no budget beyond the cluster's own limits.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Constraints {
    /// Tokens the agent may spend per day (at least 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("constraints.tokenBudget must not be negative"))]
    pub token_budget: Option<i64>,
    /// Memory the agent may use, in MiB (at least 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("constraints.memoryBudgetMb must not be negative"))]
    pub memory_budget_mb: Option<i64>,
    /// CPU the agent may use, in millicores (at least 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("constraints.cpuBudgetMillicores must not be negative"))]
    pub cpu_budget_millicores: Option<i64>,
    /// Model calls the agent may make per minute (at least 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("constraints.rateLimitPerMinute must not be negative"))]
    pub rate_limit_per_minute: Option<i64>,
}

/// Which pheromone types an agent senses and emits.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PheromoneSensitivity {
    /// Types the agent senses (any of the 13 pheromone types).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(length(max = 13))]
    pub sense: Vec<PheromoneType>,
    /// Types the agent may emit (any of the 13 pheromone types).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(length(max = 13))]
    pub emit: Vec<PheromoneType>,
}

/// Kind of work an agent is doing; the runtime tunes effort and slop to it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Everyday work.
    #[default]
    Routine,
    /// Open-ended exploration.
    Exploration,
    /// Time-critical work.
    Urgent,
}

/// Observed state of an Umwelt, written by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UmweltStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Name of the ServiceAccount the agent runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Name of the Role granting the affordances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Name of the ConfigMap with persona, constraints and context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_name: Option<String>,
    /// Whether spec.secretRef names an existing Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_valid: Option<bool>,
    /// Agents currently using this umwelt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_agents: Option<i32>,
    /// When the generated objects were last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied: Option<Time>,
    /// Standard conditions, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
