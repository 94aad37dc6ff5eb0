//! `Agent` (`ag`): one kind of agent, run as a Deployment by the operator.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, Genus, SecretKeyRef, Time};
use crate::memory::{MemoryType, RetentionPolicy};

/// Verdict of an agent's cognitive probes (`kgents_probes::CognitiveHealth`).
pub use kgents_probes::CognitiveHealth;
/// A probe an Agent may request: `kgents_probes::ModelProbeKind` (Echo, Reasoning, Json — the
/// probes that need nothing but the agent's model), under the name the spec uses.
pub use kgents_probes::ModelProbeKind as ProbeKind;
/// Outcome of one probe as recorded in status: `kgents_probes::RecordedOutcome` (Healthy,
/// Degraded — slow or wrong — or Unresponsive), under the name the status uses.
pub use kgents_probes::RecordedOutcome as ProbeOutcome;

/// Desired state of an Agent: which genus, how it runs, what it may talk to.
// Each printcolumn(...) repeats `type_ = ...`; clippy reads those as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kgents.io",
    version = "v1",
    kind = "Agent",
    namespaced,
    status = "AgentStatus",
    shortname = "ag",
    category = "kgents",
    derive = "PartialEq",
    cel,
    doc = "An Agent is one kind of LLM agent (a genus) that the operator runs as a Deployment, with its memory, umwelt, health probing and network policy.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Genus",
        type_ = "string",
        json_path = ".spec.genus",
        description = "The agent's genus"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Lifecycle phase"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Ready replicas"
    ),
    printcolumn(
        name = "Cognitive",
        type_ = "string",
        json_path = ".status.cognitiveHealth",
        description = "Verdict of the cognitive probes"
    ),
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.deployMode",
        priority = 1,
        description = "Deploy mode"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.deployMode != 'FULL' || (has(self.image) && self.image != '')")
    .message("deployMode FULL requires spec.image (the container image that runs the agent); set spec.image or use deployMode PLACEHOLDER")
    .field_path(".image")
    .reason(Reason::FieldValueRequired))]
#[serde(rename_all = "camelCase")]
pub struct AgentSpec {
    /// The agent's genus: one letter A–Z, PSI or OMEGA. Required.
    pub genus: Genus,

    /// Container image that runs the agent. Required when deployMode is FULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Number of agent pods, 0–10 (default 1). Also settable with `kubectl scale`.
    #[serde(default = "default_replicas")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 10").message("replicas must be between 0 and 10"))]
    pub replicas: i32,

    /// How the agent is deployed: FULL (run spec.image), PLACEHOLDER (a pause container holds the
    /// agent's place and identity; default) or DRY_RUN (render the Deployment, create nothing).
    #[serde(default)]
    pub deploy_mode: DeployMode,

    /// Entrypoint of the agent container (overrides the image's ENTRYPOINT).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,

    /// Arguments to the entrypoint (override the image's CMD).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,

    /// Extra environment variables of the agent container (standard EnvVar list).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// Configuration handed to the agent as environment variables: key `fooBar` becomes
    /// `KGENTS_FOOBAR`. Keys are letters, digits and underscores, not starting with a digit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("self.all(k, k.matches('^[A-Za-z_][A-Za-z0-9_]*$'))")
        .message("config keys must be letters, digits and underscores, not starting with a digit (each key becomes the environment variable KGENTS_<KEY>)"))]
    #[schemars(extend("maxProperties" = 64))]
    pub config: BTreeMap<String, String>,

    /// Compute resources of the agent container (standard requests and limits; both are applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// The language model the agent thinks with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSpec>,

    /// How the agent's health is judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSpec>,

    /// Companions attached to the agent: its memory, and the symbiont sidecar serving the
    /// agent its memory, persona, safe mode and pheromones on localhost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbiont: Option<SymbiontSpec>,

    /// Which other agents this one may reach over the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,

    /// Name of the Umwelt (same namespace) that defines what this agent perceives and may do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umwelt: Option<String>,

    /// Guarantees the controller keeps while reconciling this agent.
    #[serde(default)]
    pub reconciliation: ReconciliationSpec,
}

fn default_replicas() -> i32 {
    1
}

/// How an Agent is deployed.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeployMode {
    /// Run the agent's image.
    Full,
    /// Run a placeholder container that holds the agent's place and identity.
    #[default]
    Placeholder,
    /// Compute the Deployment but create nothing.
    DryRun,
}

/// The language model an agent uses.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.provider != 'ollama' || has(self.endpoint)")
    .message("provider ollama needs spec.model.endpoint (the URL of the Ollama server)")
    .field_path(".endpoint")
    .reason(Reason::FieldValueRequired))]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// Who serves the model: anthropic, openai, openrouter, ollama, claude-cli or none.
    pub provider: ModelProvider,
    /// Model name as the provider spells it (e.g. `claude-sonnet-4`, `gpt-4o`, `llama3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Base URL of the provider's API; the provider's public endpoint when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Secret key holding the API key or token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}

/// Who serves an agent's model.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ModelProvider {
    /// Anthropic's Messages API.
    Anthropic,
    /// OpenAI's Chat Completions API.
    #[serde(rename = "openai")]
    OpenAi,
    /// OpenRouter (OpenAI-compatible).
    #[serde(rename = "openrouter")]
    OpenRouter,
    /// A local Ollama server.
    Ollama,
    /// The `claude -p` command line.
    ClaudeCli,
    /// No model: the agent does not think (placeholders, tools).
    None,
}

/// How an agent's health is judged.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.timeoutSeconds < self.intervalSeconds")
    .message("health.timeoutSeconds must be less than health.intervalSeconds (a probe must finish before the next one starts)"))]
#[serde(rename_all = "camelCase")]
pub struct HealthSpec {
    /// HTTP (the agent's endpoint answers) or COGNITIVE_PROBE (the agent answers challenges
    /// correctly). Default HTTP.
    #[serde(rename = "type", default)]
    pub kind: HealthCheckType,
    /// Seconds between probes, 5–3600 (default 30).
    #[serde(default = "default_interval_seconds")]
    #[x_kube(validation = Rule::new("self >= 5 && self <= 3600").message("health.intervalSeconds must be between 5 and 3600"))]
    pub interval_seconds: i32,
    /// Seconds a probe may take, 1–600 (default 10).
    #[serde(default = "default_timeout_seconds")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 600").message("health.timeoutSeconds must be between 1 and 600"))]
    pub timeout_seconds: i32,
    /// Consecutive failures before the agent is marked unhealthy, 1–100 (default 3).
    #[serde(default = "default_unhealthy_threshold")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("health.unhealthyThreshold must be between 1 and 100"))]
    pub unhealthy_threshold: i32,
    /// Consecutive successes before the agent is marked healthy again, 1–100 (default 1).
    #[serde(default = "default_healthy_threshold")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("health.healthyThreshold must be between 1 and 100"))]
    pub healthy_threshold: i32,
    /// Whether an unhealthy agent is switched to safe mode (default true).
    #[serde(default = "default_true")]
    pub degrade_to_safemode: bool,
    /// Cognitive probes to run: Echo, Reasoning, Json (default all three).
    #[serde(default = "default_probes")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(length(max = 3))]
    pub probes: Vec<ProbeKind>,
}

fn default_interval_seconds() -> i32 {
    30
}
fn default_timeout_seconds() -> i32 {
    10
}
fn default_unhealthy_threshold() -> i32 {
    3
}
fn default_healthy_threshold() -> i32 {
    1
}
pub(crate) fn default_true() -> bool {
    true
}
fn default_probes() -> Vec<ProbeKind> {
    vec![ProbeKind::Echo, ProbeKind::Reasoning, ProbeKind::Json]
}

/// How health is checked.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthCheckType {
    /// The agent's HTTP endpoint answers.
    #[default]
    Http,
    /// The agent answers fresh cognitive challenges correctly.
    CognitiveProbe,
}

/// Companions of an agent.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SymbiontSpec {
    /// Whether the symbiont sidecar runs in the agent's pods (default false): a native sidecar
    /// (an init container with restartPolicy Always) serving on 127.0.0.1:7777, with the
    /// memory's volume and the pod's annotations mounted, as the agent's ServiceAccount.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enabled: bool,
    /// The sidecar's image (default: the operator's configured symbiont image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The sidecar's resources (default: requests 10m CPU and 16Mi memory, limit 64Mi memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The agent's own memory, created as a Memory resource named after the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<SymbiontMemorySpec>,
}

/// The memory symbiont of an agent.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SymbiontMemorySpec {
    /// Whether the memory is created (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Kind of memory: RELATIONAL, VECTOR, BICAMERAL (default) or EPHEMERAL.
    #[serde(rename = "type", default = "default_symbiont_memory_type")]
    pub kind: MemoryType,
    /// Storage size (a quantity such as 256Mi; default 256Mi).
    #[serde(default = "crate::memory::default_memory_size")]
    pub size: Quantity,
    /// What happens to the storage when the Agent is deleted: DELETE, RETAIN (default) or COMPOST.
    #[serde(default)]
    pub retention_policy: RetentionPolicy,
}

fn default_symbiont_memory_type() -> MemoryType {
    MemoryType::Bicameral
}

/// Network reach of an agent.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Genera whose agents may connect to this one (and it to them). Empty: no peers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 28))]
    pub allowed_peers: Vec<Genus>,
    /// Whether the agent may open connections outside the cluster (default false).
    #[serde(default)]
    pub allow_egress: bool,
}

/// Guarantees the controller keeps while reconciling.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReconciliationSpec {
    /// One reconcile at a time for this agent (default true).
    #[serde(default = "default_true")]
    pub sequential: bool,
    /// Reconciles are safe to retry (default true).
    #[serde(default = "default_true")]
    pub idempotent: bool,
}

impl Default for ReconciliationSpec {
    fn default() -> Self {
        Self {
            sequential: true,
            idempotent: true,
        }
    }
}

/// Observed state of an Agent, written by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// Lifecycle phase: Pending, Running, Degraded, Failed or Terminating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<AgentPhase>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods created for the agent (the scale subresource reads this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pods that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Label selector of the agent's pods in string form (the scale subresource reads this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Name of the Deployment the operator manages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Name of the Service the operator manages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Name of the agent's Memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Name of the agent's Umwelt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umwelt: Option<String>,
    /// Verdict of the cognitive probes: HEALTHY, DEGRADED, UNRESPONSIVE or UNKNOWN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cognitive_health: Option<CognitiveHealth>,
    /// The most recent probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe: Option<ProbeRecord>,
    /// Standard conditions (Ready, CognitiveHealthy, ...), one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Lifecycle phase of an Agent.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentPhase {
    /// Accepted, not yet running.
    Pending,
    /// Pods are up.
    Running,
    /// Running but unhealthy.
    Degraded,
    /// Could not be brought up.
    Failed,
    /// Being deleted.
    Terminating,
}

impl AgentPhase {
    /// The phase as written in status (`Running`).
    pub fn as_str(self) -> &'static str {
        match self {
            AgentPhase::Pending => "Pending",
            AgentPhase::Running => "Running",
            AgentPhase::Degraded => "Degraded",
            AgentPhase::Failed => "Failed",
            AgentPhase::Terminating => "Terminating",
        }
    }
}

/// One probe's outcome, as recorded in status.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProbeRecord {
    /// Which probe ran.
    pub kind: ProbeKind,
    /// What it concluded.
    pub outcome: ProbeOutcome,
    /// How long the answer took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
    /// Human-readable detail (e.g. what was expected and what came back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the probe finished.
    pub time: Time,
}
