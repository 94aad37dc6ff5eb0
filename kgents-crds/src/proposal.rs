//! `Proposal` (`prop`): the only way an agent changes the cluster. The admission webhook gates it
//! by risk in milliseconds; the controller reviews, approves, executes and records it.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::agent::default_true;
use crate::common::{Condition, Time};

/// Kind of change a proposal makes (`kgents_risk::ChangeType`).
pub use kgents_risk::ChangeType;
/// What a risk assessment decided: `kgents_risk::Decision`, under the name the status uses.
pub use kgents_risk::Decision as RiskDecision;
/// Who filed a proposal (`kgents_risk::ProposerKind`): AGENT (a ServiceAccount) or PERSON.
pub use kgents_risk::ProposerKind;
/// Risk level of a proposal (`kgents_risk::RiskLevel`).
pub use kgents_risk::RiskLevel;

/// Largest patch content accepted, in bytes of UTF-8 (128 KiB).
pub const MAX_PATCH_BYTES: usize = 128 * 1024;

/// Desired change (immutable once created).
// Each printcolumn(...) repeats `type_ = ...`; clippy reads those as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kgents.io",
    version = "v1",
    kind = "Proposal",
    namespaced,
    status = "ProposalStatus",
    shortname = "prop",
    category = "kgents",
    derive = "PartialEq",
    cel,
    doc = "A Proposal asks for one change to the cluster. Its risk is scored from the change type, size, tests and recent activity; low-risk proposals merge automatically, others are reviewed or denied. The spec is immutable; file a new Proposal to change it (it supersedes this one).",
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".spec.changeType",
        description = "Kind of change"
    ),
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".spec.target.name",
        description = "Object to change"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Lifecycle phase"
    ),
    printcolumn(
        name = "Risk",
        type_ = "number",
        json_path = ".status.riskAssessment.score",
        description = "Risk score in [0, 1]"
    ),
    printcolumn(
        name = "Level",
        type_ = "string",
        json_path = ".status.riskAssessment.level",
        description = "LOW, MEDIUM, HIGH or CRITICAL"
    ),
    printcolumn(
        name = "Proposer",
        type_ = "string",
        json_path = ".spec.proposer",
        priority = 1,
        description = "Who filed it"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf")
    .message("a Proposal's spec is immutable once filed; file a new Proposal (it supersedes this one)"))]
#[x_kube(validation = Rule::new("!has(self.patch) || has(self.target.apiVersion)")
    .message("a proposal with a patch must set target.apiVersion (e.g. kgents.io/v1 or apps/v1) so the patch can be applied")
    .field_path(".target.apiVersion")
    .reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.target.kind != 'File' || has(self.target.apiVersion) || self.changeType.startsWith('CODE_')")
    .message("target kind File (without apiVersion) records a code change made outside the cluster: only CODE_PATCH, CODE_FEATURE, CODE_REFACTOR and CODE_DELETE proposals may target it, and they carry no patch (the operator never executes them)")
    .field_path(".target.kind"))]
#[serde(rename_all = "camelCase")]
pub struct ProposalSpec {
    /// Who files the proposal (an agent name or a user). Required.
    #[x_kube(validation = Rule::new("self != ''").message("proposer must name who files the proposal").reason(Reason::FieldValueRequired))]
    #[schemars(length(max = 253))]
    pub proposer: String,

    /// Kind of change; sets the base risk. One of CODE_PATCH, CODE_FEATURE, CODE_REFACTOR,
    /// CODE_DELETE, CONFIG_UPDATE, CONFIG_SECRET, AGENT_DEPLOY, AGENT_SCALE, AGENT_DELETE,
    /// AGENT_UPGRADE, MEMORY_MIGRATE, MEMORY_COMPACT, MEMORY_DELETE, POLICY_UPDATE, RISK_OVERRIDE.
    pub change_type: ChangeType,

    /// The object to change. Required.
    pub target: TargetRef,

    /// The change itself. Optional: CODE_* proposals may only record a change made elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<PatchSpec>,

    /// What the change does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub description: Option<String>,

    /// Why the change is wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub rationale: Option<String>,

    /// How soon the change is needed: LOW, MEDIUM (default), HIGH or CRITICAL.
    #[serde(default)]
    pub urgency: Urgency,

    /// Supporting evidence (links, log lines, measurements).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub evidence: Vec<String>,

    /// Size of the change; larger changes are riskier, added tests make them safer.
    #[serde(default)]
    pub magnitude: Magnitude,

    /// What must happen before the change is applied.
    #[serde(default)]
    pub review_requirements: ReviewRequirements,

    /// Seconds until an undecided proposal expires, at least 60 (default 86400, one day).
    #[serde(default = "default_ttl_seconds")]
    #[x_kube(validation = Rule::new("self >= 60").message("ttlSeconds must be at least 60"))]
    pub ttl_seconds: i64,
}

fn default_ttl_seconds() -> i64 {
    86_400
}

/// The kind a proposal names, without an apiVersion, for a file outside the cluster.
pub const EXTERNAL_FILE_KIND: &str = "File";

/// The object a proposal changes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// API version of the target, e.g. `kgents.io/v1` or `apps/v1`. Required when a patch is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub api_version: Option<String>,
    /// Kind of the target, e.g. Agent, Memory, ConfigMap. Required. `File` without an apiVersion
    /// names a file outside the cluster: a CODE_* proposal that records a change made (and
    /// executed) elsewhere, without a patch; it is assessed, reviewed and approved or rejected,
    /// never executed by the operator.
    #[x_kube(validation = Rule::new("self != ''").message("target.kind must name the kind of the object to change").reason(Reason::FieldValueRequired))]
    #[schemars(length(max = 63))]
    pub kind: String,
    /// Name of the target. Required.
    #[x_kube(validation = Rule::new("self != ''").message("target.name must name the object to change").reason(Reason::FieldValueRequired))]
    #[schemars(length(max = 253))]
    pub name: String,
    /// Namespace of the target; the proposal's own namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
}

impl TargetRef {
    /// Whether this names a file outside the cluster (kind `File`, no apiVersion) rather than a
    /// Kubernetes object: nothing the operator can read, patch or execute.
    pub fn is_external_file(&self) -> bool {
        self.kind == EXTERNAL_FILE_KIND && self.api_version.is_none()
    }
}

/// A patch to apply to the target.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.type != 'json' || self.content.trim().startsWith('[')")
    .message("a json patch must be a JSON array of operations (RFC 6902), e.g. [{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":2}]")
    .field_path(".content"))]
#[serde(rename_all = "camelCase")]
pub struct PatchSpec {
    /// Patch format: merge (RFC 7386, default), json (RFC 6902) or apply (server-side apply).
    #[serde(rename = "type", default)]
    pub kind: PatchType,
    /// The patch document (JSON, or YAML for apply), at most 128 KiB.
    #[x_kube(validation = Rule::new("size(bytes(self)) <= 131072").message("patch.content must be at most 128 KiB (131072 bytes of UTF-8)"))]
    #[x_kube(validation = Rule::new("self.trim() != ''").message("patch.content must not be empty").reason(Reason::FieldValueRequired))]
    #[schemars(length(max = 131072))]
    pub content: String,
}

/// Patch format.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PatchType {
    /// JSON merge patch (RFC 7386).
    #[default]
    Merge,
    /// JSON patch (RFC 6902).
    Json,
    /// Server-side apply.
    Apply,
}

/// How urgent a proposal is.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Urgency {
    /// Whenever convenient.
    Low,
    /// Soon.
    #[default]
    Medium,
    /// Today.
    High,
    /// Now.
    Critical,
}

/// Size of a change.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("[self.linesAdded, self.linesRemoved, self.filesChanged, self.testsAdded, self.testsRemoved].all(n, n >= 0)")
    .message("magnitude counts (linesAdded, linesRemoved, filesChanged, testsAdded, testsRemoved) must not be negative"))]
#[serde(rename_all = "camelCase")]
pub struct Magnitude {
    /// Lines added (default 0).
    #[serde(default)]
    pub lines_added: i64,
    /// Lines removed (default 0).
    #[serde(default)]
    pub lines_removed: i64,
    /// Files changed (default 0).
    #[serde(default)]
    pub files_changed: i64,
    /// Tests added (default 0).
    #[serde(default)]
    pub tests_added: i64,
    /// Tests removed (default 0).
    #[serde(default)]
    pub tests_removed: i64,
}

/// What must happen before a proposal is applied.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReviewRequirements {
    /// Apply a LOW-risk proposal without review when no approvers are required (default true).
    #[serde(default = "default_true")]
    pub auto_merge: bool,
    /// Approvals needed before the change is applied, 0–10 (default 0).
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 10").message("reviewRequirements.requiredApprovers must be between 0 and 10"))]
    pub required_approvers: i32,
    /// Reviewers who must each approve (names of users or agents).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(length(max = 16))]
    pub required_reviewers: Vec<String>,
    /// Whether the T-gent reviewer must pass the change (default true).
    #[serde(default = "default_true")]
    pub t_gent_validation: bool,
}

impl Default for ReviewRequirements {
    fn default() -> Self {
        Self {
            auto_merge: true,
            required_approvers: 0,
            required_reviewers: Vec::new(),
            t_gent_validation: true,
        }
    }
}

/// Observed state of a Proposal, written by the webhook and the controller.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProposalStatus {
    /// Pending, Reviewing, Approved, Rejected, Merged, Failed, Expired or Superseded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ProposalPhase>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The risk score with every factor that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_assessment: Option<RiskAssessment>,
    /// The review (T-gent and/or LLM reviewer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewStatus>,
    /// Approvals received, at most one per approver.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["approver".into()]))]
    pub approvals: Vec<Approval>,
    /// Rejections received, at most one per rejector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["rejector".into()]))]
    pub rejections: Vec<Rejection>,
    /// What happened when the change was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<Execution>,
    /// When the proposal expires if still undecided (creation + ttlSeconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// Name of the newer proposal that superseded this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    /// Who filed it, as established from the authenticated identity: AGENT (a ServiceAccount,
    /// `system:serviceaccount:<namespace>:<name>`) or PERSON (any other user). Admission binds
    /// `spec.proposer` to the requester's username, so the controller reads the kind from it;
    /// HIGH risk is denied for an AGENT and needs a human approval for a PERSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposer_kind: Option<ProposerKind>,
    /// Standard conditions, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Lifecycle phase of a Proposal.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposalPhase {
    /// Filed, not yet assessed.
    Pending,
    /// Waiting for review or approvals.
    Reviewing,
    /// Cleared for execution.
    Approved,
    /// Refused.
    Rejected,
    /// Applied.
    Merged,
    /// Applying failed.
    Failed,
    /// Undecided at its TTL.
    Expired,
    /// Replaced by a newer proposal for the same target from the same proposer.
    Superseded,
}

impl ProposalPhase {
    /// The phase as written in status (`Reviewing`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalPhase::Pending => "Pending",
            ProposalPhase::Reviewing => "Reviewing",
            ProposalPhase::Approved => "Approved",
            ProposalPhase::Rejected => "Rejected",
            ProposalPhase::Merged => "Merged",
            ProposalPhase::Failed => "Failed",
            ProposalPhase::Expired => "Expired",
            ProposalPhase::Superseded => "Superseded",
        }
    }
}

/// A risk score and every factor behind it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RiskAssessment {
    /// Base risk of the change type.
    pub base_risk: f64,
    /// Size factor, 1 + 0.1·log2(1 + lines + 10·files).
    pub size_factor: f64,
    /// Test factor in [0.5, 1.5]: net tests added lower it, removed raise it.
    pub test_factor: f64,
    /// Penalty for the namespace's other proposals in the last hour, in [0, 0.5].
    pub velocity_penalty: f64,
    /// Penalty for changes applied in the namespace in the last 24 h, in [0, 0.3].
    pub cumulative_penalty: f64,
    /// The score, clamp(base × size × tests × (1 + velocity) + cumulative, 0, 1).
    pub score: f64,
    /// LOW (≤ 0.2), MEDIUM (≤ 0.5), HIGH (≤ 0.8) or CRITICAL.
    pub level: RiskLevel,
    /// What the score means for this proposal.
    pub decision: RiskDecision,
    /// Other proposals in the namespace's velocity window that counted.
    #[serde(default)]
    pub recent_proposals: i64,
    /// Changes applied in the namespace's cumulative window.
    #[serde(default)]
    pub applied_changes: i64,
    /// The whole calculation in one line, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// When it was computed.
    pub calculated_at: Time,
}

/// The review of a proposal.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReviewStatus {
    /// Whether a review was requested.
    #[serde(default)]
    pub requested: bool,
    /// Name of the REVIEW_REQUEST Pheromone emitted for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pheromone: Option<String>,
    /// PENDING, PASSED, FAILED, ESCALATED or SKIPPED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ReviewResult>,
    /// Who reviewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    /// The reviewer's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// When the verdict was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_at: Option<Time>,
}

/// Verdict of a review.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReviewResult {
    /// Not given yet.
    Pending,
    /// The change is fine.
    Passed,
    /// The change is not fine.
    Failed,
    /// The reviewer would not decide (it answered ESCALATE, something unreadable, or could not
    /// be asked): a human approval decides.
    Escalated,
    /// No reviewer ran (none is configured, or tGentValidation is off): a human approval
    /// decides.
    Skipped,
}

/// One approval.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// Who approved.
    pub approver: String,
    /// When.
    pub at: Time,
    /// Optional remark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One rejection.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    /// Who rejected.
    pub rejector: String,
    /// When.
    pub at: Time,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What happened when a proposal was applied.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    /// Whether it worked.
    pub success: bool,
    /// Whether this was only the server-side dry run.
    #[serde(default)]
    pub dry_run: bool,
    /// When it ran.
    pub executed_at: Time,
    /// What happened, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The target as it was before the change (JSON), for rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}
