//! Vocabulary shared by several kinds: genus, pheromone types, secret references, conditions.
//!
//! These enums are the schema's own (serde + JsonSchema); conversions into the pure types of
//! `kgents-core` live in [`crate::convert`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every K8-gents resource.
pub const GROUP: &str = "kgents.io";
/// The one served and stored version.
pub const VERSION: &str = "v1";
/// `kubectl get kgents` lists every kind in this category.
pub const CATEGORY: &str = "kgents";

/// The genus of an agent: one letter A–Z, or PSI or OMEGA.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[allow(missing_docs)] // the variants are the letters themselves
pub enum Genus {
    A,
    B,
    C,
    D,
    E,
    F,
    G,
    H,
    I,
    J,
    K,
    L,
    M,
    N,
    O,
    P,
    Q,
    R,
    S,
    T,
    U,
    V,
    W,
    X,
    Y,
    Z,
    #[serde(rename = "PSI")]
    Psi,
    #[serde(rename = "OMEGA")]
    Omega,
}

impl Genus {
    /// Every genus, in schema order.
    pub const ALL: [Genus; 28] = [
        Genus::A,
        Genus::B,
        Genus::C,
        Genus::D,
        Genus::E,
        Genus::F,
        Genus::G,
        Genus::H,
        Genus::I,
        Genus::J,
        Genus::K,
        Genus::L,
        Genus::M,
        Genus::N,
        Genus::O,
        Genus::P,
        Genus::Q,
        Genus::R,
        Genus::S,
        Genus::T,
        Genus::U,
        Genus::V,
        Genus::W,
        Genus::X,
        Genus::Y,
        Genus::Z,
        Genus::Psi,
        Genus::Omega,
    ];

    /// The value as written in YAML (`B`, `PSI`, `OMEGA`).
    pub fn as_str(self) -> &'static str {
        const NAMES: [&str; 28] = [
            "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q",
            "R", "S", "T", "U", "V", "W", "X", "Y", "Z", "PSI", "OMEGA",
        ];
        NAMES[self as usize]
    }
}

impl std::fmt::Display for Genus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a pheromone signal.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PheromoneType {
    /// An analogy offered to other agents.
    Metaphor,
    /// Something is wrong or about to be.
    Warning,
    /// A memory worth recalling.
    Memory,
    /// A piece of the shared story.
    Narrative,
    /// Work that could be picked up.
    Opportunity,
    /// A resource is running out.
    Scarcity,
    /// An agent advertises what it can do.
    Capability,
    /// A state change worth noticing.
    State,
    /// A test result or a request to test.
    Test,
    /// What an agent is about to do.
    Intent,
    /// A dream-cycle signal; decays at half the normal rate (twice the half-life).
    Dream,
    /// A chaos-engineering signal.
    Chaos,
    /// A proposal asks for review.
    ReviewRequest,
}

impl PheromoneType {
    /// Every pheromone type, in schema order.
    pub const ALL: [PheromoneType; 13] = [
        PheromoneType::Metaphor,
        PheromoneType::Warning,
        PheromoneType::Memory,
        PheromoneType::Narrative,
        PheromoneType::Opportunity,
        PheromoneType::Scarcity,
        PheromoneType::Capability,
        PheromoneType::State,
        PheromoneType::Test,
        PheromoneType::Intent,
        PheromoneType::Dream,
        PheromoneType::Chaos,
        PheromoneType::ReviewRequest,
    ];
}

/// A reference to a key of a Secret in the resource's own namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret (same namespace as the resource).
    pub name: String,
    /// Key inside the Secret whose value is used.
    #[serde(default = "default_secret_key")]
    pub key: String,
}

fn default_secret_key() -> String {
    "api-key".to_owned()
}

/// A reference to a whole Secret in the resource's own namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret (same namespace as the resource).
    pub name: String,
}

/// The standard `metav1.Condition` shape used in every status.
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
/// The standard `metav1.Time` (an RFC 3339 timestamp).
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
