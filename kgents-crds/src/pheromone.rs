//! `Pheromone` (`ph`): a decaying signal one agent leaves for others (passive stigmergy).
//!
//! Intensity is never stored: it is computed on read from `initialIntensity`, `halfLifeMinutes`
//! and `emittedAt` (see `kgents_core::decay`). The spec is immutable; re-emitting is a new object.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{PheromoneType, Time};

/// Largest payload a pheromone may carry, in bytes of UTF-8 (32 KiB).
pub const MAX_PAYLOAD_BYTES: usize = 32 * 1024;

/// Desired state of a Pheromone (immutable once created).
// Each printcolumn(...) repeats `type_ = ...`; clippy reads those as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kgents.io",
    version = "v1",
    kind = "Pheromone",
    namespaced,
    status = "PheromoneStatus",
    shortname = "ph",
    category = "kgents",
    derive = "PartialEq",
    cel,
    // `kubectl get pheromones --field-selector spec.type=WARNING`; kgents-logos also splits a
    // large list into requests by type that the API server answers side by side.
    selectable = ".spec.type",
    doc = "A Pheromone is a decaying signal left by an agent: intensity(t) = initialIntensity * 0.5^((t - emittedAt) / halfLife), computed on read. The spec is immutable; to re-emit, create a new Pheromone.",
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".spec.type",
        description = "Kind of signal"
    ),
    printcolumn(
        name = "Source",
        type_ = "string",
        json_path = ".spec.source",
        description = "Emitting agent"
    ),
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".spec.target",
        description = "Addressed agent (empty: broadcast)"
    ),
    printcolumn(
        name = "Initial",
        type_ = "number",
        json_path = ".spec.initialIntensity",
        description = "Intensity at emission"
    ),
    printcolumn(
        name = "HalfLife",
        type_ = "number",
        json_path = ".spec.halfLifeMinutes",
        description = "Half-life in minutes"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        priority = 1,
        description = "ACTIVE, EVAPORATING or EVAPORATED"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    // Wide columns: with them a server-side Table carries everything a reader needs to decay
    // the signal, so lists can skip the objects (kgents-logos asks for such Tables).
    printcolumn(
        name = "Namespace",
        type_ = "string",
        json_path = ".metadata.namespace",
        priority = 1,
        description = "Namespace of the signal"
    ),
    printcolumn(
        name = "Emitted",
        type_ = "string",
        json_path = ".spec.emittedAt",
        priority = 1,
        description = "When the signal was emitted (empty: at creation)"
    ),
    printcolumn(
        name = "TTL",
        type_ = "integer",
        json_path = ".spec.ttlSeconds",
        priority = 1,
        description = "Hard lifetime in seconds (empty: none)"
    ),
    printcolumn(
        name = "Created",
        type_ = "string",
        json_path = ".metadata.creationTimestamp",
        priority = 1,
        description = "Creation time, exact"
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf")
    .message("a Pheromone's spec is immutable once emitted; create a new Pheromone to re-emit"))]
#[serde(rename_all = "camelCase")]
pub struct PheromoneSpec {
    /// Kind of signal: METAPHOR, WARNING, MEMORY, NARRATIVE, OPPORTUNITY, SCARCITY, CAPABILITY,
    /// STATE, TEST, INTENT, DREAM (decays half as fast), CHAOS or REVIEW_REQUEST. Required.
    #[serde(rename = "type")]
    pub kind: PheromoneType,

    /// Name of the emitting agent. Required.
    #[x_kube(validation = Rule::new("self != ''").message("source must name the emitting agent").reason(Reason::FieldValueRequired))]
    #[schemars(length(max = 253))]
    pub source: String,

    /// Name of the agent the signal is for; unset means a broadcast every agent senses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub target: Option<String>,

    /// Intensity at emission, in (0, 1] (default 1).
    #[serde(default = "default_initial_intensity")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 1.0").message("initialIntensity must be greater than 0 and at most 1"))]
    pub initial_intensity: f64,

    /// Half-life in minutes, at least 0.1 (default 10). DREAM pheromones decay with twice this.
    #[serde(default = "default_half_life_minutes")]
    #[x_kube(validation = Rule::new("self >= 0.1").message("halfLifeMinutes must be at least 0.1"))]
    pub half_life_minutes: f64,

    /// When the signal was emitted; metadata.creationTimestamp when unset. Offsets are honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emitted_at: Option<Time>,

    /// Hard lifetime in seconds after emission, whatever the intensity. No hard limit when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("ttlSeconds must be at least 1 (leave it unset for no hard limit)"))]
    pub ttl_seconds: Option<i64>,

    /// What the signal says: text or JSON, at most 32 KiB of UTF-8. Larger data belongs in a Memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(bytes(self)) <= 32768").message("payload must be at most 32 KiB (32768 bytes of UTF-8); put larger data in a Memory and reference it"))]
    #[schemars(length(max = 32768))]
    pub payload: Option<String>,

    /// Where in the shared field the signal was left. Quote the key "y" in YAML (a bare y is
    /// the boolean true to kubectl).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

/// `spec.initialIntensity` when a Pheromone leaves it out (the CRD's default).
pub const DEFAULT_INITIAL_INTENSITY: f64 = 1.0;

/// `spec.halfLifeMinutes` when a Pheromone leaves it out (the CRD's default).
pub const DEFAULT_HALF_LIFE_MINUTES: f64 = 10.0;

fn default_initial_intensity() -> f64 {
    DEFAULT_INITIAL_INTENSITY
}

fn default_half_life_minutes() -> f64 {
    DEFAULT_HALF_LIFE_MINUTES
}

/// A point in the pheromone field.
///
/// In YAML for kubectl, quote the key `"y"`: kubectl reads YAML 1.1, where a bare `y` is the
/// boolean `true`, and the API server then refuses the unknown field `spec.position.true`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    /// x coordinate (default 0).
    #[serde(default)]
    pub x: f64,
    /// y coordinate (default 0).
    #[serde(default)]
    pub y: f64,
    /// z coordinate (default 0).
    #[serde(default)]
    pub z: f64,
}

/// Observed state of a Pheromone, written by the operator.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PheromoneStatus {
    /// ACTIVE (sensed), EVAPORATING (fading out) or EVAPORATED (below 0.01 or past its TTL;
    /// about to be deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PheromonePhase>,
    /// When the pheromone falls below 0.01 or reaches its TTL, whichever is first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaporates_at: Option<Time>,
}

/// Lifecycle phase of a Pheromone.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PheromonePhase {
    /// Sensed at a useful intensity.
    Active,
    /// Fading.
    Evaporating,
    /// Gone; awaiting deletion.
    Evaporated,
}

impl PheromonePhase {
    /// The phase as written in status (`ACTIVE`).
    pub fn as_str(self) -> &'static str {
        match self {
            PheromonePhase::Active => "ACTIVE",
            PheromonePhase::Evaporating => "EVAPORATING",
            PheromonePhase::Evaporated => "EVAPORATED",
        }
    }
}
