//! Conditions computed, not edited.
//!
//! A reconcile computes the full set of conditions it wants from what it observed
//! ([`DesiredCondition`]) and [`merge`] folds them into what status already holds: the
//! `lastTransitionTime` moves only when a condition's status actually changes, so writing the
//! same observation twice produces an identical status and therefore no write at all (a status
//! that changes on every reconcile makes the controller trigger itself forever).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The three values a condition's status can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// It is not known (yet) whether the condition holds.
    Unknown,
}

impl ConditionStatus {
    /// The string Kubernetes expects.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// One condition as a reconcile wants it to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition {
    /// Condition type, e.g. `Ready`.
    pub type_: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A PascalCase reason, e.g. `DeploymentAvailable`.
    pub reason: String,
    /// A sentence for people.
    pub message: String,
}

impl DesiredCondition {
    /// Builds a desired condition.
    pub fn new(
        type_: impl Into<String>,
        status: impl Into<ConditionStatus>,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Folds `desired` into `existing`: one condition per desired type, in the order given.
///
/// A condition whose status is unchanged keeps its `lastTransitionTime`; a new or flipped one
/// gets `now`. Reason, message and `observedGeneration` always follow the desired values.
/// Existing conditions whose type is not desired any more are dropped.
pub fn merge(
    existing: &[Condition],
    desired: &[DesiredCondition],
    observed_generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|want| {
            let previous = existing.iter().find(|c| c.type_ == want.type_);
            let last_transition_time = match previous {
                Some(previous) if previous.status == want.status.as_str() => {
                    previous.last_transition_time.clone()
                }
                _ => Time(now),
            };
            Condition {
                type_: want.type_.clone(),
                status: want.status.as_str().to_owned(),
                reason: want.reason.clone(),
                message: want.message.clone(),
                observed_generation,
                last_transition_time,
            }
        })
        .collect()
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid timestamp")
    }

    #[test]
    fn unchanged_status_keeps_transition_time() {
        let first = merge(
            &[],
            &[DesiredCondition::new("Ready", false, "Pending", "waiting")],
            Some(1),
            at(10),
        );
        let second = merge(
            &first,
            &[DesiredCondition::new(
                "Ready",
                false,
                "Pending",
                "still waiting",
            )],
            Some(2),
            at(20),
        );
        assert_eq!(second[0].last_transition_time, Time(at(10)));
        assert_eq!(second[0].message, "still waiting");
        assert_eq!(second[0].observed_generation, Some(2));
    }

    #[test]
    fn flipped_status_moves_transition_time() {
        let first = merge(
            &[],
            &[DesiredCondition::new("Ready", false, "Pending", "waiting")],
            Some(1),
            at(10),
        );
        let second = merge(
            &first,
            &[DesiredCondition::new(
                "Ready",
                true,
                "Available",
                "all ready",
            )],
            Some(1),
            at(20),
        );
        assert_eq!(second[0].last_transition_time, Time(at(20)));
        assert_eq!(second[0].status, "True");
    }

    #[test]
    fn same_observation_twice_is_identical() {
        let want = [
            DesiredCondition::new("Ready", true, "Available", "ok"),
            DesiredCondition::new("Available", true, "MinimumReplicasAvailable", "ok"),
        ];
        let first = merge(&[], &want, Some(3), at(10));
        let second = merge(&first, &want, Some(3), at(99));
        assert_eq!(first, second);
    }

    #[test]
    fn undesired_types_are_dropped() {
        let first = merge(
            &[],
            &[DesiredCondition::new("Old", true, "X", "x")],
            None,
            at(1),
        );
        let second = merge(
            &first,
            &[DesiredCondition::new("Ready", true, "Y", "y")],
            None,
            at(2),
        );
        assert_eq!(second.len(), 1);
        assert!(find(&second, "Old").is_none());
    }
}
