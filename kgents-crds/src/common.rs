//! Vocabulary shared by several kinds: genus, pheromone types, secret references, conditions.
//!
//! [`Genus`] and [`PheromoneType`] are `kgents-core`'s own enums (with their JSON schemas from
//! its `schemars` feature), re-exported here: a resource and the pure logic speak one vocabulary.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every K8-gents resource.
pub const GROUP: &str = "kgents.io";
/// The one served and stored version.
pub const VERSION: &str = "v1";
/// `kubectl get kgents` lists every kind in this category.
pub const CATEGORY: &str = "kgents";

/// The kind of a pheromone signal (`kgents_core::field::PheromoneType`).
pub use kgents_core::field::PheromoneType;
/// The genus of an agent (`kgents_core::genus::Genus`).
pub use kgents_core::genus::Genus;

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
