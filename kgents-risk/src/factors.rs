//! The factors of the risk score as pure functions of their inputs and weights. Each returns a
//! finite, non-negative number for a valid [`RiskPolicy`](crate::RiskPolicy).

use jiff::SignedDuration;

use crate::magnitude::Magnitude;
use crate::policy::{CumulativeWeights, SizeWeights, TestWeights, VelocityWeights};

/// Scores are rounded to nine decimal places (score = round(raw × 10⁹) / 10⁹, the division being
/// exact-rounded so the result is the `f64` nearest the decimal), so that floating-point noise
/// (0.1 + 0.1 + 0.1 = 0.30000000000000004) cannot push a score across a level threshold and a
/// score meant to be 0.2 compares equal to the threshold 0.2. Rounding is monotone, so every
/// monotonicity property of the formula survives it.
pub const SCORE_DECIMAL_SCALE: f64 = 1e9;

/// 1 + `log_weight` · log2(1 + lines + `lines_per_file` · files), lines = added + removed.
/// 1 for an empty change; grows without bound but slowly (a billion lines gives about 4).
///
/// Finite for every valid policy: a measure or a product past the largest `f64` (a huge
/// `lines_per_file` times many files) is taken as the largest `f64`, not as infinity, so a
/// zero `log_weight` still gives 1 instead of 0 × ∞ = NaN.
pub fn size_factor(magnitude: &Magnitude, weights: &SizeWeights) -> f64 {
    let lines = magnitude.lines_touched() as f64;
    let files = magnitude.files_changed as f64;
    let measure = (1.0 + lines + weights.lines_per_file * files).min(f64::MAX);
    (1.0 + weights.log_weight * measure.log2()).min(f64::MAX)
}

/// The test factor of [`TestWeights`]: below 1 (down to the floor) when tests are added on net,
/// above 1 (up to the cap) when tests are removed on net, 1 otherwise.
pub fn test_factor(magnitude: &Magnitude, weights: &TestWeights) -> f64 {
    let net = magnitude.net_tests();
    let doublings = (1.0 + net.unsigned_abs() as f64).log2();
    match net.signum() {
        1 => (1.0 - weights.reward_per_doubling * doublings).max(weights.floor),
        -1 => (1.0 + weights.penalty_per_doubling * doublings).min(weights.cap),
        _ => 1.0,
    }
}

/// Age of an entry created at `age` before now, with entries from the future (clock skew between
/// whoever stamped them and our clock) treated as created just now: age 0, never negative. That
/// is the conservative reading (a future entry weighs like the freshest one), and the velocity cap
/// bounds what a wildly wrong timestamp can do.
pub fn effective_age(age: SignedDuration) -> SignedDuration {
    age.max(SignedDuration::ZERO)
}

/// Whether an entry of `age` falls inside `window` (future entries always do, see
/// [`effective_age`]; an empty or negative window holds nothing).
pub fn within_window(age: SignedDuration, window: SignedDuration) -> bool {
    effective_age(age) < window
}

/// One other proposal's share of the velocity penalty: `increment` · (1 − age / window) inside
/// the window, 0 outside it.
pub fn velocity_contribution(age: SignedDuration, weights: &VelocityWeights) -> f64 {
    if !within_window(age, weights.window) {
        return 0.0;
    }
    let fraction = effective_age(age).as_secs_f64() / weights.window.as_secs_f64();
    weights.increment * (1.0 - fraction)
}

/// The velocity penalty from the sum of contributions: capped at `cap`.
pub fn velocity_penalty(contributions: f64, weights: &VelocityWeights) -> f64 {
    contributions.min(weights.cap)
}

/// min(`cap`, `per_change` × applied changes).
pub fn cumulative_penalty(applied_changes: u64, weights: &CumulativeWeights) -> f64 {
    (weights.per_change * applied_changes as f64).min(weights.cap)
}

/// clamp(base × size × tests × (1 + velocity) + cumulative, 0, 1), rounded to
/// nine decimals (see [`SCORE_DECIMAL_SCALE`]). A NaN (only possible with an invalid policy) fails closed to 1.
pub fn score(base: f64, size: f64, tests: f64, velocity: f64, cumulative: f64) -> f64 {
    let raw = base * size * tests * (1.0 + velocity) + cumulative;
    if raw.is_nan() {
        return 1.0;
    }
    let clamped = raw.clamp(0.0, 1.0);
    (clamped * SCORE_DECIMAL_SCALE).round() / SCORE_DECIMAL_SCALE
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-12;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() < EPS
    }

    /// Found by the `risk` fuzz target: a valid policy with a huge `lines_per_file` made the
    /// size factor infinite (and, with a zero `log_weight`, NaN).
    #[test]
    fn the_size_factor_stays_finite_under_huge_valid_weights() {
        let magnitude = Magnitude::lines(u64::MAX, u64::MAX, u64::MAX);
        for lines_per_file in [0.0, 1.0, 1e300, f64::MAX] {
            for log_weight in [0.0, 0.1, 1e300, f64::MAX] {
                let weights = SizeWeights {
                    log_weight,
                    lines_per_file,
                };
                let factor = size_factor(&magnitude, &weights);
                assert!(
                    factor.is_finite() && factor >= 1.0,
                    "{weights:?} gave {factor}"
                );
                if log_weight == 0.0 {
                    assert_eq!(factor, 1.0);
                }
            }
        }
    }

    #[test]
    fn size_factor_is_one_for_nothing_and_logarithmic_after() {
        let weights = SizeWeights::default();
        assert_eq!(size_factor(&Magnitude::default(), &weights), 1.0);
        // 10 lines: 1 + 0.1·log2(11) = 1.346 (the original's comment claimed 4.5).
        let ten = size_factor(&Magnitude::lines(10, 0, 0), &weights);
        assert!(close(ten, 1.0 + 0.1 * 11f64.log2()), "{ten}");
        // One file weighs like ten lines.
        assert_eq!(size_factor(&Magnitude::lines(0, 0, 1), &weights), ten);
        // Added and removed lines both count.
        let seven = 1.0 + 0.1 * 8f64.log2();
        assert!(close(
            size_factor(&Magnitude::lines(3, 4, 0), &weights),
            seven
        ));
        let max = size_factor(&Magnitude::lines(u64::MAX, u64::MAX, u64::MAX), &weights);
        assert!(max.is_finite() && max < 8.0, "{max}");
    }

    #[test]
    fn test_factor_rewards_added_and_penalises_removed_tests_within_bounds() {
        let weights = TestWeights::default();
        let factor = |added, removed| {
            test_factor(&Magnitude::default().with_tests(added, removed), &weights)
        };
        assert_eq!(factor(0, 0), 1.0);
        assert_eq!(factor(7, 7), 1.0);
        assert!(close(factor(1, 0), 0.95));
        assert!(close(factor(5, 0), 1.0 - 0.05 * 6f64.log2()));
        assert!(close(factor(1023, 0), 0.5));
        assert_eq!(factor(u64::MAX, 0), 0.5);
        assert!(close(factor(0, 1), 1.1));
        assert!(close(factor(0, 31), 1.5));
        assert_eq!(factor(0, u64::MAX), 1.5);
        // Net, not gross: 10 added and 9 removed is one test added.
        assert!(close(factor(10, 9), 0.95));
    }

    #[test]
    fn velocity_contribution_fades_linearly_over_the_window() {
        let weights = VelocityWeights::default();
        let at = |mins| velocity_contribution(SignedDuration::from_mins(mins), &weights);
        assert!(close(at(0), 0.1));
        assert!(close(at(30), 0.05));
        assert!(close(at(45), 0.025));
        assert_eq!(at(60), 0.0);
        assert_eq!(at(600), 0.0);
    }

    #[test]
    fn future_entries_count_as_fresh_and_never_more() {
        let weights = VelocityWeights::default();
        let skewed = velocity_contribution(SignedDuration::from_mins(-5), &weights);
        assert!(close(skewed, 0.1));
        let far = velocity_contribution(SignedDuration::from_hours(-10_000), &weights);
        assert!(close(far, 0.1));
        assert!(within_window(
            SignedDuration::from_hours(-1),
            SignedDuration::from_hours(1)
        ));
        assert!(!within_window(SignedDuration::ZERO, SignedDuration::ZERO));
    }

    #[test]
    fn velocity_penalty_is_capped() {
        let weights = VelocityWeights::default();
        assert!(close(velocity_penalty(0.3, &weights), 0.3));
        assert_eq!(velocity_penalty(2.7, &weights), 0.5);
    }

    #[test]
    fn cumulative_penalty_is_five_hundredths_per_change_up_to_point_three() {
        let weights = CumulativeWeights::default();
        assert_eq!(cumulative_penalty(0, &weights), 0.0);
        assert!(close(cumulative_penalty(1, &weights), 0.05));
        assert!(close(cumulative_penalty(5, &weights), 0.25));
        assert_eq!(cumulative_penalty(6, &weights), 0.3);
        assert_eq!(cumulative_penalty(u64::MAX, &weights), 0.3);
    }

    #[test]
    fn score_multiplies_adds_clamps_and_fails_closed() {
        assert_eq!(score(0.7, 1.0, 1.0, 0.3, 0.0), 0.91);
        assert_eq!(score(0.1, 1.0, 1.0, 0.0, 0.05), 0.15);
        assert_eq!(score(0.9, 2.0, 1.5, 0.5, 0.3), 1.0);
        assert_eq!(score(0.0, 1.0, 1.0, 0.0, 0.0), 0.0);
        assert_eq!(score(-1.0, 1.0, 1.0, 0.0, 0.0), 0.0);
        assert_eq!(score(f64::NAN, 1.0, 1.0, 0.0, 0.0), 1.0);
        assert_eq!(score(f64::INFINITY, 1.0, 1.0, 0.0, 0.0), 1.0);
        // Rounding removes floating-point noise: three fresh contributions sum to
        // 0.30000000000000004, and 0.4 × 1.25 is not exactly 0.5 before rounding.
        let noisy_velocity = 0.1 + 0.1 + 0.1;
        assert_ne!(noisy_velocity, 0.3);
        assert_eq!(score(0.2, 1.0, 1.0, noisy_velocity, 0.0), 0.26);
        assert_eq!(score(0.4, 1.0, 1.25, 0.0, 0.0), 0.5);
        assert_eq!(score(0.1, 1.0, 1.0, 1.0, 0.0), 0.2);
    }
}
