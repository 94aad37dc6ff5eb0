//! `Memory` (`mem`): an agent's storage, provisioned as a PersistentVolumeClaim and a ConfigMap.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, Time};

/// CEL regular expression for `spec.backupSchedule`: a five-field cron expression (minute hour
/// day-of-month month day-of-week, with `*`, ranges, steps, lists and JAN–DEC / SUN–SAT names)
/// or one of the macros @yearly, @annually, @monthly, @weekly, @daily, @hourly.
///
/// Each field's numbers are bounded by the field's range (minute 0–59, hour 0–23, day 1–31,
/// month 1–12, weekday 0–7), so `61 * * * *` is refused, not just malformed text.
pub const CRON_PATTERN: &str = concat!(
    "^(@(yearly|annually|monthly|weekly|daily|hourly)|",
    // minute
    "([*]|[0-5]?[0-9](-[0-5]?[0-9])?)(/[0-9]+)?(,([0-5]?[0-9](-[0-5]?[0-9])?)(/[0-9]+)?)*",
    "[ \\t]+",
    // hour
    "([*]|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[0-9]+)?(,([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?(/[0-9]+)?)*",
    "[ \\t]+",
    // day of month
    "([*]|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[0-9]+)?(,(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?(/[0-9]+)?)*",
    "[ \\t]+",
    // month
    "([*]|(0?[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(-(0?[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))?)(/[0-9]+)?",
    "(,(0?[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(-(0?[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))?(/[0-9]+)?)*",
    "[ \\t]+",
    // day of week
    "([*]|([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)(-([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT))?)(/[0-9]+)?",
    "(,([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)(-([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT))?(/[0-9]+)?)*",
    ")$"
);

fn backup_schedule_rule() -> kube::core::Rule {
    kube::core::Rule::new(format!("self.matches('{CRON_PATTERN}')"))
        .message("backupSchedule must be a five-field cron expression (minute hour day-of-month month day-of-week, e.g. '0 3 * * *') or @yearly, @monthly, @weekly, @daily or @hourly")
}

/// Desired state of a Memory.
// Each printcolumn(...) repeats `type_ = ...`; clippy reads those as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kgents.io",
    version = "v1",
    kind = "Memory",
    plural = "memories",
    namespaced,
    status = "MemoryStatus",
    shortname = "mem",
    category = "kgents",
    derive = "PartialEq",
    cel,
    doc = "A Memory is an agent's storage: the operator provisions a PersistentVolumeClaim (none for EPHEMERAL) and a metadata ConfigMap, and honours the retention policy when the Memory is deleted.",
    printcolumn(
        name = "Owner",
        type_ = "string",
        json_path = ".spec.owner",
        description = "Agent that owns the memory"
    ),
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".spec.type",
        description = "Kind of memory"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Lifecycle phase"
    ),
    printcolumn(
        name = "Size",
        type_ = "string",
        json_path = ".spec.size",
        description = "Requested storage"
    ),
    printcolumn(
        name = "Retention",
        type_ = "string",
        json_path = ".spec.retentionPolicy",
        priority = 1,
        description = "What happens on deletion"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.type != 'EPHEMERAL' || !has(self.backupSchedule)")
    .message("an EPHEMERAL memory has no storage to back up; remove backupSchedule or choose another type")
    .field_path(".backupSchedule")
    .reason(Reason::FieldValueForbidden))]
#[serde(rename_all = "camelCase")]
pub struct MemorySpec {
    /// Name of the Agent that owns this memory. Required.
    #[x_kube(validation = Rule::new("self != ''").message("owner must name the Agent that owns this memory").reason(Reason::FieldValueRequired))]
    pub owner: String,

    /// Kind of memory: RELATIONAL, VECTOR, BICAMERAL (default) or EPHEMERAL (no persistent storage).
    #[serde(rename = "type", default)]
    pub kind: MemoryType,

    /// Storage size, a quantity such as 256Mi or 1Gi (default 256Mi).
    #[serde(default = "default_memory_size")]
    pub size: Quantity,

    /// StorageClass of the PersistentVolumeClaim; the cluster's default class when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,

    /// Agents that may read this memory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub shared_with: Vec<String>,

    /// Agents that may write this memory (besides the owner).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub write_access: Vec<String>,

    /// What happens to the storage when the Memory is deleted: DELETE (removed with it),
    /// RETAIN (kept; default) or COMPOST (kept for compostAfterHours, then removed).
    #[serde(default)]
    pub retention_policy: RetentionPolicy,

    /// Hours a COMPOST memory's storage is kept after deletion, 1–8760 (default 72).
    #[serde(default = "default_compost_after_hours")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 8760").message("compostAfterHours must be between 1 and 8760 (one year)"))]
    pub compost_after_hours: i32,

    /// Cron schedule of backups (five fields, or @daily etc.). No backups when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = backup_schedule_rule())]
    #[schemars(length(max = 256))]
    pub backup_schedule: Option<String>,
}

pub(crate) fn default_memory_size() -> Quantity {
    Quantity("256Mi".to_owned())
}

fn default_compost_after_hours() -> i32 {
    72
}

/// Kind of memory.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MemoryType {
    /// Tables and relations.
    Relational,
    /// Embeddings for similarity search.
    Vector,
    /// Relational and vector halves together.
    #[default]
    Bicameral,
    /// Nothing persistent: lives as long as the pod.
    Ephemeral,
}

/// What happens to a memory's storage when it is deleted.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RetentionPolicy {
    /// Storage is removed with the Memory.
    Delete,
    /// Storage is kept.
    #[default]
    Retain,
    /// Storage is kept for a grace window, then removed.
    Compost,
}

/// Observed state of a Memory, written by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStatus {
    /// Lifecycle phase: PENDING, PROVISIONING, READY, DEGRADED, COMPOSTING or TERMINATED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MemoryPhase>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Name of the PersistentVolumeClaim holding the data (none for EPHEMERAL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc_name: Option<String>,
    /// Name of the metadata ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_name: Option<String>,
    /// Storage in use, as last measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_used: Option<Quantity>,
    /// When an agent last read or wrote the memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_access: Option<Time>,
    /// When a COMPOSTING memory's storage will be removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compost_at: Option<Time>,
    /// Standard conditions, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Lifecycle phase of a Memory.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MemoryPhase {
    /// Accepted, not yet provisioned.
    Pending,
    /// Storage is being created.
    Provisioning,
    /// Usable.
    Ready,
    /// Usable with problems.
    Degraded,
    /// Deleted; storage kept for the compost window.
    Composting,
    /// Storage removed.
    Terminated,
}

impl MemoryPhase {
    /// The phase as written in status (`READY`).
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryPhase::Pending => "PENDING",
            MemoryPhase::Provisioning => "PROVISIONING",
            MemoryPhase::Ready => "READY",
            MemoryPhase::Degraded => "DEGRADED",
            MemoryPhase::Composting => "COMPOSTING",
            MemoryPhase::Terminated => "TERMINATED",
        }
    }
}
