//! [`RiskPolicy`]: every weight, window and threshold of the risk calculus, with the defaults of
//! DESIGN §2, and its validation.

use std::collections::BTreeMap;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use crate::change_type::ChangeType;
use crate::error::{Error, Result};

/// All weights of the risk calculus in one value. `RiskPolicy::default()` is the contract of
/// DESIGN §2; operators may load another one (serde, camelCase, missing fields take defaults) and
/// must run [`RiskPolicy::validate`] on it before use.
///
/// Non-exhaustive (a new factor adds a field): start from `RiskPolicy::default()` and set the
/// fields to change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RiskPolicy {
    /// Base risk per change type.
    pub base_risks: BaseRisks,
    /// Weights of the size factor.
    pub size: SizeWeights,
    /// Weights of the test factor.
    pub tests: TestWeights,
    /// Weights of the velocity penalty.
    pub velocity: VelocityWeights,
    /// Weights of the cumulative penalty.
    pub cumulative: CumulativeWeights,
    /// Score thresholds between the risk levels.
    pub thresholds: LevelThresholds,
}

/// Base risk per [`ChangeType`], each in [0, 1]. Serialised as a map from change type to risk;
/// change types missing from the map take [`ChangeType::default_base_risk`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "BTreeMap<ChangeType, f64>", into = "BTreeMap<ChangeType, f64>")]
pub struct BaseRisks {
    risks: [f64; ChangeType::COUNT],
}

impl BaseRisks {
    /// The base risk of `change`.
    pub fn get(&self, change: ChangeType) -> f64 {
        self.risks[change.index()]
    }

    /// Sets the base risk of `change` (checked by [`RiskPolicy::validate`], not here).
    pub fn set(&mut self, change: ChangeType, risk: f64) {
        self.risks[change.index()] = risk;
    }

    /// This table with the base risk of `change` replaced.
    pub fn with(mut self, change: ChangeType, risk: f64) -> Self {
        self.set(change, risk);
        self
    }
}

impl Default for BaseRisks {
    fn default() -> Self {
        BaseRisks {
            risks: ChangeType::ALL.map(ChangeType::default_base_risk),
        }
    }
}

impl From<BTreeMap<ChangeType, f64>> for BaseRisks {
    fn from(map: BTreeMap<ChangeType, f64>) -> Self {
        map.into_iter()
            .fold(BaseRisks::default(), |risks, (change, risk)| {
                risks.with(change, risk)
            })
    }
}

impl From<BaseRisks> for BTreeMap<ChangeType, f64> {
    fn from(risks: BaseRisks) -> Self {
        ChangeType::ALL
            .into_iter()
            .map(|change| (change, risks.get(change)))
            .collect()
    }
}

/// Size factor = 1 + `log_weight` · log2(1 + lines + `lines_per_file` · files), where lines =
/// added + removed. Defaults: 0.1 and 10 (a file touched counts like ten lines).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SizeWeights {
    /// Factor growth per doubling of the size measure (≥ 0).
    pub log_weight: f64,
    /// Lines each changed file counts as (≥ 0).
    pub lines_per_file: f64,
}

impl Default for SizeWeights {
    fn default() -> Self {
        SizeWeights {
            log_weight: 0.1,
            lines_per_file: 10.0,
        }
    }
}

/// Test factor over net = tests added − tests removed, logarithmic like the original (each
/// doubling of net tests moves the factor by a fixed step, so the first tests matter most):
///
/// - net > 0: max(`floor`, 1 − `reward_per_doubling` · log2(1 + net)); with the defaults
///   (0.05, 0.5) +1 test gives 0.95, +5 gives 0.871, the floor is reached at 2^10 − 1 tests.
/// - net < 0: min(`cap`, 1 + `penalty_per_doubling` · log2(1 + |net|)); with the defaults
///   (0.1, 1.5) −1 test gives 1.1, −5 gives 1.258, the cap is reached at 31 tests removed.
/// - net = 0: 1.
///
/// Removing tests weighs twice as much as adding them: losing coverage is the riskier direction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TestWeights {
    /// Factor decrease per doubling of net tests added (≥ 0).
    pub reward_per_doubling: f64,
    /// Lowest test factor, in (0, 1].
    pub floor: f64,
    /// Factor increase per doubling of net tests removed (≥ 0).
    pub penalty_per_doubling: f64,
    /// Highest test factor (≥ 1).
    pub cap: f64,
}

impl Default for TestWeights {
    fn default() -> Self {
        TestWeights {
            reward_per_doubling: 0.05,
            floor: 0.5,
            penalty_per_doubling: 0.1,
            cap: 1.5,
        }
    }
}

/// Which other proposals count towards the velocity penalty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VelocityScope {
    /// Every other proposal in the proposal's namespace (DESIGN §2; the default): a burst of
    /// changes to one namespace is risky whoever files them.
    #[default]
    Namespace,
    /// Only the other proposals of the same proposer in the namespace.
    Proposer,
}

/// Velocity penalty = min(`cap`, Σ `increment` · (1 − age / `window`)) over the other proposals
/// created in the last `window`. Defaults: 0.1, 1 h, 0.5.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct VelocityWeights {
    /// Contribution of a proposal created this instant (≥ 0).
    pub increment: f64,
    /// How far back proposals count (> 0); contributions fade linearly to 0 over it.
    pub window: SignedDuration,
    /// Highest penalty (≥ 0).
    pub cap: f64,
    /// Which proposals count.
    pub scope: VelocityScope,
}

impl Default for VelocityWeights {
    fn default() -> Self {
        VelocityWeights {
            increment: 0.1,
            window: SignedDuration::from_hours(1),
            cap: 0.5,
            scope: VelocityScope::Namespace,
        }
    }
}

/// Cumulative penalty = min(`cap`, `per_change` × changes applied in the namespace in the last
/// `window`). Defaults: 0.05, 24 h, 0.3.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct CumulativeWeights {
    /// Penalty per applied change (≥ 0).
    pub per_change: f64,
    /// How far back applied changes count (> 0).
    pub window: SignedDuration,
    /// Highest penalty (≥ 0).
    pub cap: f64,
}

impl Default for CumulativeWeights {
    fn default() -> Self {
        CumulativeWeights {
            per_change: 0.05,
            window: SignedDuration::from_hours(24),
            cap: 0.3,
        }
    }
}

/// Level boundaries, inclusive upwards: LOW ≤ `low_max` < MEDIUM ≤ `medium_max` < HIGH ≤
/// `high_max` < CRITICAL. Defaults: 0.2, 0.5, 0.8.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct LevelThresholds {
    /// Highest LOW score.
    pub low_max: f64,
    /// Highest MEDIUM score.
    pub medium_max: f64,
    /// Highest HIGH score.
    pub high_max: f64,
}

impl Default for LevelThresholds {
    fn default() -> Self {
        LevelThresholds {
            low_max: 0.2,
            medium_max: 0.5,
            high_max: 0.8,
        }
    }
}

const NON_NEGATIVE: &str = "finite and >= 0";
const UNIT_INTERVAL: &str = "finite and in [0, 1]";
const FLOOR_RANGE: &str = "finite and in (0, 1]";
const CAP_RANGE: &str = "finite and >= 1";

fn check(field: &str, value: f64, expected: &'static str, ok: bool) -> Result<()> {
    if value.is_finite() && ok {
        Ok(())
    } else {
        Err(Error::InvalidWeight {
            field: field.to_owned(),
            value,
            expected,
        })
    }
}

fn check_window(field: &'static str, value: SignedDuration) -> Result<()> {
    if value.is_positive() {
        Ok(())
    } else {
        Err(Error::NonPositiveWindow { field, value })
    }
}

impl RiskPolicy {
    /// Checks every weight: no NaN or infinity, no negative weights, base risks in [0, 1], a test
    /// floor in (0, 1] and cap ≥ 1, windows longer than zero, and thresholds with
    /// 0 ≤ low_max < medium_max < high_max ≤ 1. Returns the first problem found.
    ///
    /// A valid policy guarantees that every factor is finite and non-negative, so the score is
    /// monotone in every input. [`assess`](fn@crate::assess) never panics on an invalid policy
    /// either, but its numbers may then be meaningless (it fails closed: a non-finite score is
    /// treated as 1, CRITICAL).
    pub fn validate(&self) -> Result<()> {
        for change in ChangeType::ALL {
            let risk = self.base_risks.get(change);
            check(
                &format!("baseRisks.{change}"),
                risk,
                UNIT_INTERVAL,
                (0.0..=1.0).contains(&risk),
            )?;
        }
        let size = &self.size;
        check(
            "size.logWeight",
            size.log_weight,
            NON_NEGATIVE,
            size.log_weight >= 0.0,
        )?;
        check(
            "size.linesPerFile",
            size.lines_per_file,
            NON_NEGATIVE,
            size.lines_per_file >= 0.0,
        )?;
        let tests = &self.tests;
        check(
            "tests.rewardPerDoubling",
            tests.reward_per_doubling,
            NON_NEGATIVE,
            tests.reward_per_doubling >= 0.0,
        )?;
        check(
            "tests.floor",
            tests.floor,
            FLOOR_RANGE,
            tests.floor > 0.0 && tests.floor <= 1.0,
        )?;
        check(
            "tests.penaltyPerDoubling",
            tests.penalty_per_doubling,
            NON_NEGATIVE,
            tests.penalty_per_doubling >= 0.0,
        )?;
        check("tests.cap", tests.cap, CAP_RANGE, tests.cap >= 1.0)?;
        let velocity = &self.velocity;
        check(
            "velocity.increment",
            velocity.increment,
            NON_NEGATIVE,
            velocity.increment >= 0.0,
        )?;
        check(
            "velocity.cap",
            velocity.cap,
            NON_NEGATIVE,
            velocity.cap >= 0.0,
        )?;
        check_window("velocity.window", velocity.window)?;
        let cumulative = &self.cumulative;
        check(
            "cumulative.perChange",
            cumulative.per_change,
            NON_NEGATIVE,
            cumulative.per_change >= 0.0,
        )?;
        check(
            "cumulative.cap",
            cumulative.cap,
            NON_NEGATIVE,
            cumulative.cap >= 0.0,
        )?;
        check_window("cumulative.window", cumulative.window)?;
        let LevelThresholds {
            low_max,
            medium_max,
            high_max,
        } = self.thresholds;
        // NaN fails every comparison, so it lands here as "unordered" too.
        if !(0.0 <= low_max && low_max < medium_max && medium_max < high_max && high_max <= 1.0) {
            return Err(Error::UnorderedThresholds {
                low_max,
                medium_max,
                high_max,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_valid_and_holds_the_design_numbers() {
        let policy = RiskPolicy::default();
        assert_eq!(policy.validate(), Ok(()));
        assert_eq!(policy.base_risks.get(ChangeType::RiskOverride), 0.9);
        assert_eq!(policy.velocity.window, SignedDuration::from_hours(1));
        assert_eq!(policy.cumulative.window, SignedDuration::from_hours(24));
        assert_eq!(
            (
                policy.thresholds.low_max,
                policy.thresholds.medium_max,
                policy.thresholds.high_max
            ),
            (0.2, 0.5, 0.8)
        );
    }

    #[test]
    fn nan_negative_and_out_of_range_weights_are_rejected_with_their_field() {
        type BreakPolicy = fn(&mut RiskPolicy);
        let cases: [(BreakPolicy, &str); 7] = [
            (|p| p.size.log_weight = f64::NAN, "size.logWeight"),
            (|p| p.velocity.increment = -0.1, "velocity.increment"),
            (|p| p.cumulative.cap = f64::INFINITY, "cumulative.cap"),
            (|p| p.tests.floor = 0.0, "tests.floor"),
            (|p| p.tests.cap = 0.9, "tests.cap"),
            (
                |p| p.base_risks.set(ChangeType::AgentDelete, 1.2),
                "baseRisks.AGENT_DELETE",
            ),
            (
                |p| p.base_risks.set(ChangeType::CodePatch, -0.0 - 1e-9),
                "baseRisks.CODE_PATCH",
            ),
        ];
        for (break_policy, field) in cases {
            let mut policy = RiskPolicy::default();
            break_policy(&mut policy);
            match policy.validate() {
                Err(Error::InvalidWeight { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: expected InvalidWeight, got {other:?}"),
            }
        }
    }

    #[test]
    fn empty_or_negative_windows_are_rejected() {
        let mut policy = RiskPolicy::default();
        policy.velocity.window = SignedDuration::ZERO;
        assert!(matches!(
            policy.validate(),
            Err(Error::NonPositiveWindow {
                field: "velocity.window",
                ..
            })
        ));
        let mut policy = RiskPolicy::default();
        policy.cumulative.window = SignedDuration::from_secs(-5);
        assert!(matches!(
            policy.validate(),
            Err(Error::NonPositiveWindow {
                field: "cumulative.window",
                ..
            })
        ));
    }

    #[test]
    fn unordered_equal_nan_or_out_of_range_thresholds_are_rejected() {
        for (low_max, medium_max, high_max) in [
            (0.5, 0.2, 0.8),
            (0.2, 0.2, 0.8),
            (0.2, 0.5, 1.1),
            (-0.1, 0.5, 0.8),
            (0.2, f64::NAN, 0.8),
        ] {
            let policy = RiskPolicy {
                thresholds: LevelThresholds {
                    low_max,
                    medium_max,
                    high_max,
                },
                ..RiskPolicy::default()
            };
            assert!(
                matches!(policy.validate(), Err(Error::UnorderedThresholds { .. })),
                "{low_max} {medium_max} {high_max}"
            );
        }
    }

    #[test]
    fn policy_round_trips_through_json_and_partial_documents_take_defaults() {
        let policy = RiskPolicy::default();
        let json = serde_json::to_string(&policy).expect("serialises");
        let back: RiskPolicy = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, policy);

        let partial: RiskPolicy = serde_json::from_str(
            r#"{"baseRisks":{"AGENT_SCALE":0.25},"velocity":{"window":"PT30M"}}"#,
        )
        .expect("partial policy");
        assert_eq!(partial.base_risks.get(ChangeType::AgentScale), 0.25);
        assert_eq!(partial.base_risks.get(ChangeType::AgentDelete), 0.7);
        assert_eq!(partial.velocity.window, SignedDuration::from_mins(30));
        assert_eq!(partial.velocity.cap, 0.5);
    }

    #[test]
    fn misspelt_policy_fields_are_refused_not_ignored() {
        let result = serde_json::from_str::<RiskPolicy>(r#"{"velocity":{"kap":0.9}}"#);
        assert!(result.is_err());
    }
}
