//! Freshness of cached answers: an adaptive threshold per category and a three-way verdict.
//!
//! threshold = base × (1 + stability), with stability in `[0, 1]` (see [`crate::stability`]).
//! A cached answer younger than the threshold is FRESH, younger than twice the threshold is
//! STALE (served with a `[GHOST]` mark and its age), anything older is REFUSED (not served; the
//! chain falls through to the next layer).
//!
//! A snapshot dated in the future means the clock moved backwards (or the file came from a host
//! with a different clock): its true age is unknown. Up to [`FreshnessPolicy::clock_skew_tolerance`]
//! ahead it is treated as just taken (FRESH, age 0); further ahead it is REFUSED, because no
//! freshness claim can be made for it.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;

use crate::snapshot::Category;

/// Base thresholds and the clock-skew tolerance.
///
/// Non-exhaustive: start from `FreshnessPolicy::default()` and set the fields to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FreshnessPolicy {
    /// Base threshold of agents (default 60 s).
    pub agents: Duration,
    /// Base threshold of pheromones (default 30 s).
    pub pheromones: Duration,
    /// Base threshold of proposals (default 300 s).
    pub proposals: Duration,
    /// Base threshold of the cluster status (default 120 s).
    pub cluster: Duration,
    /// How far in the future a snapshot may be dated and still count as just taken (default
    /// 5 s, which absorbs small NTP steps).
    pub clock_skew_tolerance: Duration,
}

impl Default for FreshnessPolicy {
    fn default() -> Self {
        Self {
            agents: Duration::from_secs(60),
            pheromones: Duration::from_secs(30),
            proposals: Duration::from_secs(300),
            cluster: Duration::from_secs(120),
            clock_skew_tolerance: Duration::from_secs(5),
        }
    }
}

impl FreshnessPolicy {
    /// The base threshold of a category.
    #[must_use]
    pub fn base(&self, category: Category) -> Duration {
        match category {
            Category::Agents => self.agents,
            Category::Pheromones => self.pheromones,
            Category::Proposals => self.proposals,
            Category::Cluster => self.cluster,
        }
    }

    /// The adaptive threshold base × (1 + stability). A stability outside `[0, 1]` (or NaN) is
    /// clamped into it; a product too large for a `Duration` saturates.
    #[must_use]
    pub fn threshold(&self, category: Category, stability: f64) -> Duration {
        let stability = if stability.is_nan() {
            0.0
        } else {
            stability.clamp(0.0, 1.0)
        };
        let secs = self.base(category).as_secs_f64() * (1.0 + stability);
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }

    /// Classifies a snapshot of `category` taken at `taken_at`, seen at `now`.
    #[must_use]
    pub fn classify(
        &self,
        category: Category,
        taken_at: Timestamp,
        now: Timestamp,
        stability: f64,
    ) -> FreshnessReport {
        let threshold = self.threshold(category, stability);
        let signed_age = now.duration_since(taken_at);
        let (age, ahead_of_clock) = if signed_age.is_negative() {
            (Duration::ZERO, Some(signed_age.unsigned_abs()))
        } else {
            (signed_age.unsigned_abs(), None)
        };
        let verdict = match ahead_of_clock {
            Some(ahead) if ahead > self.clock_skew_tolerance => Verdict::Refused,
            _ if age < threshold => Verdict::Fresh,
            _ if age < threshold.saturating_mul(2) => Verdict::Stale,
            _ => Verdict::Refused,
        };
        FreshnessReport {
            verdict,
            age,
            ahead_of_clock,
            threshold,
        }
    }
}

/// FRESH, STALE or REFUSED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Younger than the threshold: shown as is, with its age.
    Fresh,
    /// Younger than twice the threshold: shown with `[GHOST]` and its age.
    Stale,
    /// Too old, or dated too far in the future: not shown.
    Refused,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fresh => "FRESH",
            Self::Stale => "STALE",
            Self::Refused => "REFUSED",
        })
    }
}

/// The verdict on one cached snapshot and the numbers behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreshnessReport {
    /// The verdict.
    pub verdict: Verdict,
    /// Age of the data (zero when it is dated in the future).
    pub age: Duration,
    /// How far in the future the snapshot is dated, when it is.
    pub ahead_of_clock: Option<Duration>,
    /// The adaptive threshold that applied.
    pub threshold: Duration,
}

impl FreshnessReport {
    /// `(data from 4m ago)`.
    #[must_use]
    pub fn age_label(&self) -> String {
        format!("(data from {} ago)", format_age(self.age))
    }

    /// Decorates rendered text: FRESH gets the age suffix, STALE also gets the `[GHOST]` prefix.
    /// REFUSED data is never shown, so it is marked as such.
    #[must_use]
    pub fn decorate(&self, text: &str) -> String {
        match self.verdict {
            Verdict::Fresh => format!("{text} {}", self.age_label()),
            Verdict::Stale => format!("[GHOST] {text} {}", self.age_label()),
            Verdict::Refused => format!("[REFUSED] {}", self.explain()),
        }
    }

    /// One sentence for a person.
    #[must_use]
    pub fn explain(&self) -> String {
        let threshold = format_age(self.threshold);
        match (self.verdict, self.ahead_of_clock) {
            (Verdict::Refused, Some(ahead)) => format!(
                "cached data is dated {} in the future, so its age is unknown (the system clock \
                 moved backwards or the file came from another host)",
                format_age(ahead)
            ),
            (_, Some(ahead)) => format!(
                "cached data is dated {} in the future, within the clock-skew tolerance; treated \
                 as just taken",
                format_age(ahead)
            ),
            (Verdict::Fresh, None) => format!(
                "cached data is {} old, under the {threshold} freshness threshold",
                format_age(self.age)
            ),
            (Verdict::Stale, None) => format!(
                "cached data is {} old, over the {threshold} freshness threshold but under twice it",
                format_age(self.age)
            ),
            (Verdict::Refused, None) => format!(
                "cached data is {} old, over twice the {threshold} freshness threshold",
                format_age(self.age)
            ),
        }
    }
}

/// Short human age: `42s`, `4m`, `3h`, `2d` (rounded down to the largest whole unit; hours up
/// to 48 so that "yesterday" reads as hours).
#[must_use]
pub fn format_age(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3_600 => format!("{}m", secs / 60),
        3_600..172_800 => format!("{}h", secs / 3_600),
        _ => format!("{}d", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;
    use proptest::prelude::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn thresholds_follow_the_base_and_stability() {
        let p = FreshnessPolicy::default();
        assert_eq!(p.threshold(Category::Agents, 0.0), Duration::from_secs(60));
        assert_eq!(p.threshold(Category::Agents, 1.0), Duration::from_secs(120));
        assert_eq!(
            p.threshold(Category::Pheromones, 0.5),
            Duration::from_secs(45)
        );
        assert_eq!(
            p.threshold(Category::Proposals, 0.0),
            Duration::from_secs(300)
        );
        assert_eq!(
            p.threshold(Category::Cluster, 0.0),
            Duration::from_secs(120)
        );
        assert_eq!(
            p.threshold(Category::Cluster, f64::NAN),
            Duration::from_secs(120)
        );
        assert_eq!(
            p.threshold(Category::Cluster, 7.0),
            Duration::from_secs(240)
        );
        let huge = FreshnessPolicy {
            agents: Duration::MAX,
            ..p
        };
        assert_eq!(huge.threshold(Category::Agents, 1.0), Duration::MAX);
    }

    #[test]
    fn boundaries_of_the_verdict() {
        let p = FreshnessPolicy::default();
        let now = at(1_000);
        let v = |age: i64| {
            p.classify(Category::Agents, at(1_000 - age), now, 0.0)
                .verdict
        };
        assert_eq!(v(0), Verdict::Fresh);
        assert_eq!(v(59), Verdict::Fresh);
        assert_eq!(v(60), Verdict::Stale);
        assert_eq!(v(119), Verdict::Stale);
        assert_eq!(v(120), Verdict::Refused);
        assert_eq!(v(1_000_000), Verdict::Refused);
    }

    #[test]
    fn future_snapshots_are_explained_not_panicked_on() {
        let p = FreshnessPolicy::default();
        let now = at(0);
        let slightly = p.classify(Category::Agents, at(3), now, 0.0);
        assert_eq!(slightly.verdict, Verdict::Fresh);
        assert_eq!(slightly.age, Duration::ZERO);
        assert_eq!(slightly.ahead_of_clock, Some(Duration::from_secs(3)));
        let far = p.classify(Category::Agents, at(3_600), now, 1.0);
        assert_eq!(far.verdict, Verdict::Refused);
        assert!(
            far.explain().contains("1h in the future"),
            "{}",
            far.explain()
        );
        let extreme = p.classify(Category::Agents, Timestamp::MAX, Timestamp::MIN, 0.0);
        assert_eq!(extreme.verdict, Verdict::Refused);
    }

    #[test]
    fn labels() {
        let p = FreshnessPolicy::default();
        let stale = p.classify(Category::Proposals, at(0), at(4 * 60 + 330), 0.0);
        assert_eq!(stale.verdict, Verdict::Stale);
        assert_eq!(
            stale.decorate("3 pending"),
            "[GHOST] 3 pending (data from 9m ago)"
        );
        let fresh = p.classify(Category::Proposals, at(0), at(240), 0.0);
        assert_eq!(fresh.decorate("3 pending"), "3 pending (data from 4m ago)");
        assert_eq!(format_age(Duration::from_secs(59)), "59s");
        assert_eq!(format_age(Duration::from_secs(3_599)), "59m");
        assert_eq!(format_age(Duration::from_secs(47 * 3_600)), "47h");
        assert_eq!(format_age(Duration::from_secs(3 * 86_400)), "3d");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Older data never gets a better verdict, and more stability never a worse one.
        #[test]
        fn verdict_is_monotone(
            age_a in 0i64..100_000, age_b in 0i64..100_000,
            s_a in 0.0f64..=1.0, s_b in 0.0f64..=1.0,
        ) {
            let p = FreshnessPolicy::default();
            let now = at(200_000);
            let rank = |v: Verdict| match v { Verdict::Fresh => 0, Verdict::Stale => 1, Verdict::Refused => 2 };
            let (young, old) = (age_a.min(age_b), age_a.max(age_b));
            let r_young = p.classify(Category::Pheromones, now.checked_sub(SignedDuration::from_secs(young)).unwrap(), now, s_a);
            let r_old = p.classify(Category::Pheromones, now.checked_sub(SignedDuration::from_secs(old)).unwrap(), now, s_a);
            prop_assert!(rank(r_young.verdict) <= rank(r_old.verdict));
            let (lo, hi) = (s_a.min(s_b), s_a.max(s_b));
            let taken = now.checked_sub(SignedDuration::from_secs(age_a)).unwrap();
            prop_assert!(rank(p.classify(Category::Pheromones, taken, now, hi).verdict)
                <= rank(p.classify(Category::Pheromones, taken, now, lo).verdict));
        }

        /// Any pair of timestamps classifies without panicking, and the age is never negative.
        #[test]
        fn any_timestamps_classify(a in -377_705_116_800i64..=253_402_207_200, b in -377_705_116_800i64..=253_402_207_200, s in proptest::num::f64::ANY) {
            let p = FreshnessPolicy::default();
            let (Ok(taken), Ok(now)) = (Timestamp::from_second(a), Timestamp::from_second(b)) else {
                return Ok(());
            };
            let report = p.classify(Category::Cluster, taken, now, s);
            prop_assert_eq!(report.ahead_of_clock.is_some(), a > b);
            let _ = report.explain();
        }
    }
}
