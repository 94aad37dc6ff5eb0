//! The stability score: how reliably live layers have answered recently.
//!
//! **Definition.** Every attempt of a *live* layer (the Cortex daemon, the Kubernetes API) is one
//! observation x ∈ {0, 1}: 1 when the layer answered within its budget, 0 when it failed or timed
//! out. The score is an exponentially weighted moving average
//!
//! ```text
//! s₀ = 0        s ← s + α·(x − s)    with α = 0.2
//! ```
//!
//! persisted in `_meta/stability_score.json` together with the number of observations.
//!
//! **Why α = 0.2.** The weight of an observation k steps back is 0.2·0.8ᵏ, so the last 10 live
//! fetches carry 89 % of the weight and the effective memory is about 1/α = 5 fetches. A single
//! failure after a long run of successes lowers s from 1 to 0.8 (thresholds shrink by 10 %, not
//! by half), while three failures in a row bring it to about 0.5: one flaky timeout does not
//! discredit the cache, an outage shows within one or two CLI invocations.
//!
//! **Why start at 0.** The score stretches freshness thresholds (base × (1 + s)). With no history
//! there is no evidence that the sources are stable, so the cache gets no bonus: s₀ = 0 is the
//! conservative prior and it converges to the true ratio within about ten observations. Starting
//! at 0.5 would grant a 50 % longer freshness window on a machine that has never reached the
//! cluster.

use crate::snapshot::StabilityScore;

/// Weight α of the newest observation.
pub const ALPHA: f64 = 0.2;

/// The score before any observation.
pub const INITIAL: StabilityScore = StabilityScore {
    score: 0.0,
    observations: 0,
};

impl Default for StabilityScore {
    fn default() -> Self {
        INITIAL
    }
}

impl StabilityScore {
    /// The score after one live fetch that succeeded (`true`) or failed.
    ///
    /// A stored score outside `[0, 1]` (which the store refuses to read, but a caller could
    /// construct) is clamped first, so the result is always in `[0, 1]`.
    #[must_use]
    pub fn observe(self, success: bool) -> Self {
        let current = if self.score.is_nan() {
            0.0
        } else {
            self.score.clamp(0.0, 1.0)
        };
        let x = if success { 1.0 } else { 0.0 };
        Self {
            score: (current + ALPHA * (x - current)).clamp(0.0, 1.0),
            observations: self.observations.saturating_add(1),
        }
    }

    /// The score after a sequence of observations, oldest first.
    #[must_use]
    pub fn observe_all(self, outcomes: &[bool]) -> Self {
        outcomes.iter().fold(self, |s, &ok| s.observe(ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn documented_values() {
        let s = INITIAL.observe(true);
        assert!((s.score - 0.2).abs() < 1e-12);
        assert_eq!(s.observations, 1);
        let all_ok = INITIAL.observe_all(&[true; 10]);
        assert!((all_ok.score - (1.0 - 0.8f64.powi(10))).abs() < 1e-12);
        let one = StabilityScore {
            score: 1.0,
            observations: 50,
        }
        .observe(false);
        assert!((one.score - 0.8).abs() < 1e-12);
        let three = StabilityScore {
            score: 1.0,
            observations: 50,
        }
        .observe_all(&[false; 3]);
        assert!((three.score - 0.512).abs() < 1e-12);
    }

    #[test]
    fn garbage_in_is_clamped() {
        let s = StabilityScore {
            score: f64::NAN,
            observations: u64::MAX,
        }
        .observe(true);
        assert!((s.score - 0.2).abs() < 1e-12);
        assert_eq!(s.observations, u64::MAX);
        assert!(
            StabilityScore {
                score: 9.0,
                observations: 0
            }
            .observe(true)
            .score
                <= 1.0
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The score stays in [0, 1]; a success never lowers it and a failure never raises it.
        #[test]
        fn bounded_and_monotone(outcomes in proptest::collection::vec(any::<bool>(), 0..200)) {
            let mut s = INITIAL;
            for ok in outcomes {
                let next = s.observe(ok);
                prop_assert!((0.0..=1.0).contains(&next.score));
                if ok { prop_assert!(next.score >= s.score); } else { prop_assert!(next.score <= s.score); }
                s = next;
            }
        }
    }
}
