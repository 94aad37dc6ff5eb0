//! A Memory's status (pure): what the reconcile saw of the storage → phase and the Ready
//! condition.

use jiff::Timestamp;
use kgents_crds::Memory;
use kgents_crds::memory::{MemoryPhase, MemoryStatus, MemoryType};
use kube::ResourceExt;

use super::READY;
use super::plan::{config_map_name, pvc_name};
use crate::conditions::{self, DesiredCondition};

/// What the reconcile saw of the storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageState {
    /// EPHEMERAL: nothing persistent.
    None,
    /// The claim is in this phase (`Pending`, `Bound`, `Lost`), or has no phase yet.
    Claim(Option<String>),
    /// The API server refused the claim (e.g. a shrink, or a changed storage class).
    Rejected(String),
    /// This replica does not lead and the claim does not exist yet.
    NotCreated,
}

/// The phase and Ready condition for what was observed (pure).
pub fn assess(storage: &StorageState) -> (MemoryPhase, DesiredCondition) {
    match storage {
        StorageState::None => (
            MemoryPhase::Ready,
            DesiredCondition::new(
                READY,
                true,
                "Ephemeral",
                "EPHEMERAL: metadata only, no persistent storage",
            ),
        ),
        StorageState::Claim(Some(phase)) if phase == "Bound" => (
            MemoryPhase::Ready,
            DesiredCondition::new(READY, true, "ClaimBound", "the claim is bound to a volume"),
        ),
        StorageState::Claim(Some(phase)) if phase == "Lost" => (
            MemoryPhase::Degraded,
            DesiredCondition::new(
                READY,
                false,
                "ClaimLost",
                "the claim lost its volume; the data may be gone — check the PersistentVolume",
            ),
        ),
        StorageState::Claim(_) => (
            MemoryPhase::Provisioning,
            DesiredCondition::new(
                READY,
                false,
                "ClaimPending",
                "waiting for a volume to be bound (is there a provisioner for the storage class?)",
            ),
        ),
        StorageState::Rejected(message) => (
            MemoryPhase::Degraded,
            DesiredCondition::new(
                READY,
                false,
                "ClaimRejected",
                format!(
                    "the API server refused the claim: {message}; size can only grow (where the class allows) and the class cannot change"
                ),
            ),
        ),
        StorageState::NotCreated => (
            MemoryPhase::Pending,
            DesiredCondition::new(READY, false, "Pending", "storage not created yet"),
        ),
    }
}

/// The status a living Memory should have (pure).
pub fn desired_status(memory: &Memory, storage: &StorageState, now: Timestamp) -> MemoryStatus {
    let (phase, ready) = assess(storage);
    let previous = memory.status.clone().unwrap_or_default();
    let name = memory.name_any();
    MemoryStatus {
        phase: Some(phase),
        observed_generation: memory.metadata.generation,
        pvc_name: (memory.spec.kind != MemoryType::Ephemeral).then(|| pvc_name(&name)),
        config_map_name: Some(config_map_name(&name)),
        size_used: previous.size_used,
        last_access: previous.last_access,
        compost_at: None,
        conditions: conditions::merge(
            &previous.conditions,
            &[ready],
            memory.metadata.generation,
            now,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_phases_map_to_memory_phases() {
        assert_eq!(
            assess(&StorageState::Claim(Some("Bound".into()))).0,
            MemoryPhase::Ready
        );
        assert_eq!(
            assess(&StorageState::Claim(Some("Pending".into()))).0,
            MemoryPhase::Provisioning
        );
        assert_eq!(
            assess(&StorageState::Claim(None)).0,
            MemoryPhase::Provisioning
        );
        assert_eq!(
            assess(&StorageState::Claim(Some("Lost".into()))).0,
            MemoryPhase::Degraded
        );
        assert_eq!(
            assess(&StorageState::Rejected("x".into())).0,
            MemoryPhase::Degraded
        );
    }
}
