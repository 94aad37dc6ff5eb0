//! When to retry and how long to wait: a bounded [`RetryPolicy`] with exponential backoff and
//! jitter, and parsing of `Retry-After` (delta seconds or an HTTP date). Pure functions; the
//! HTTP transport supplies the clock and the random draw.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// How often and how patiently a client retries 429s, 5xx answers and connection failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first one included (1 disables retries). Values of 0 count as 1.
    pub max_attempts: u32,
    /// Backoff before the first retry; it doubles on every further retry.
    pub base_delay: Duration,
    /// Longest backoff between two attempts.
    pub max_delay: Duration,
    /// Longest `Retry-After` the client will wait. A provider asking for longer is reported
    /// as rate limited at once, since waiting less would only earn another refusal.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Attempts allowed, at least one.
    pub fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// Backoff before retry number `retry` (0 for the first retry), given a uniform draw
    /// `unit` in `[0, 1)`: "equal jitter", i.e. half of the exponential step plus a random
    /// share of the other half, capped at [`RetryPolicy::max_delay`]. Spreading retries
    /// keeps many agents that failed together from retrying together.
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let step = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(31)))
            .min(self.max_delay);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let half = step / 2;
        half + (step - half).mul_f64(unit)
    }

    /// How long to wait before the next attempt when the provider said `retry_after`:
    /// the provider's wish when given (and not over [`RetryPolicy::max_retry_after`]),
    /// otherwise the jittered backoff. `None` means "do not retry, report it".
    pub fn wait_before_retry(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> Option<Duration> {
        match retry_after {
            Some(wait) if wait > self.max_retry_after => None,
            Some(wait) => Some(wait),
            None => Some(self.backoff(retry, unit)),
        }
    }
}

/// Parses a `Retry-After` value: a number of seconds, or an HTTP date (a date in the past
/// means "now"). Returns `None` for anything else.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Some servers send fractional seconds; accept them rather than ignore the hint.
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses OpenAI's `retry-after-ms` value (milliseconds, possibly fractional).
pub fn parse_retry_after_ms(value: &str) -> Option<Duration> {
    let ms = value.trim().parse::<f64>().ok()?;
    Duration::try_from_secs_f64(ms / 1000.0).ok()
}

/// A uniform draw in `[0, 1)` for jitter. Seeded per process by the standard library's
/// random hasher keys and varied by a counter: enough to decorrelate retries without a
/// random-number dependency.
pub(crate) fn jitter_unit() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    // 53 random bits map exactly onto the doubles in [0, 1).
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(
            parse_retry_after_ms("250"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_retry_after_ms("x"), None);
    }

    #[test]
    fn retry_after_beyond_the_cap_is_not_waited_for() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.wait_before_retry(0, Some(Duration::from_secs(2)), 0.5),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            p.wait_before_retry(0, Some(Duration::from_secs(31)), 0.5),
            None
        );
        assert_eq!(
            p.wait_before_retry(0, None, 0.0),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn jitter_units_are_in_range_and_vary() {
        let draws: Vec<f64> = (0..64).map(|_| jitter_unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let first = draws[0];
        assert!(draws.iter().any(|u| *u != first));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn backoff_is_between_half_step_and_step_and_never_over_the_cap(
            base_ms in 1u64..5_000,
            max_ms in 1u64..60_000,
            retry in 0u32..100,
            unit in 0.0f64..1.0,
        ) {
            let p = RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_millis(base_ms),
                max_delay: Duration::from_millis(max_ms),
                max_retry_after: Duration::from_secs(30),
            };
            let step = Duration::from_millis(base_ms)
                .saturating_mul(2u32.saturating_pow(retry.min(31)))
                .min(Duration::from_millis(max_ms));
            let d = p.backoff(retry, unit);
            prop_assert!(d <= p.max_delay);
            prop_assert!(d >= step / 2);
            prop_assert!(d <= step);
        }

        #[test]
        fn backoff_grows_with_the_retry_number(
            retry in 0u32..20,
            unit in 0.0f64..1.0,
        ) {
            let p = RetryPolicy::default();
            prop_assert!(p.backoff(retry + 1, unit) >= p.backoff(retry, unit));
        }

        #[test]
        fn retry_after_parses_every_whole_number_of_seconds(secs in 0u64..10_000_000) {
            prop_assert_eq!(
                parse_retry_after(&secs.to_string(), SystemTime::UNIX_EPOCH),
                Some(Duration::from_secs(secs))
            );
        }
    }
}
