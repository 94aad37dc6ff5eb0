//! Half-life decay ("passive stigmergy"): a signal's intensity is computed on read, never stored.
//!
//! `intensity(t) = initial × 0.5^((t − emitted_at) / half_life)`
//!
//! Documented clamping (none of it panics):
//! - a `now` **before** `emitted_at` (a future emission or clock skew) yields the initial intensity:
//!   a signal does not grow stronger as one looks further into its past;
//! - results are always in `[0, initial] ⊆ [0, 1]`; an elapsed time so long that the power
//!   underflows yields exactly 0;
//! - instants that would leave jiff's range (years −9999..=9999) saturate at [`Timestamp::MAX`],
//!   meaning "not within representable time".
//!
//! A signal has **evaporated** when its intensity is below [`EVAPORATION_THRESHOLD`] or its TTL
//! (counted from `emitted_at`) has passed; [`evaporates_at`] gives the exact instant, so a
//! controller can requeue precisely then instead of polling.

use std::time::Duration;

use jiff::Timestamp;

use crate::error::Error;
use crate::field::PheromoneType;

/// Below this intensity a signal has evaporated.
pub const EVAPORATION_THRESHOLD: f64 = 0.01;

/// The half-life used when a manifest gives neither a half-life nor a legacy decay rate.
pub const DEFAULT_HALF_LIFE_MINUTES: f64 = 10.0;

/// DREAM signals decay this many times more slowly.
pub const DREAM_HALF_LIFE_MULTIPLIER: f64 = 2.0;

/// A signal strength in `[0, 1]`. Never NaN, so it is totally ordered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Intensity(f64);

impl Intensity {
    /// No signal.
    pub const ZERO: Intensity = Intensity(0.0);
    /// Full strength (the default initial intensity).
    pub const ONE: Intensity = Intensity(1.0);
    /// [`EVAPORATION_THRESHOLD`] as an intensity.
    pub const EVAPORATION_THRESHOLD: Intensity = Intensity(EVAPORATION_THRESHOLD);

    /// Checks `value`: NaN and values outside `[0, 1]` are errors.
    pub fn new(value: f64) -> Result<Intensity, Error> {
        if (0.0..=1.0).contains(&value) {
            // `+ 0.0` turns -0.0 into 0.0 so equality and ordering agree.
            Ok(Intensity(value + 0.0))
        } else {
            Err(Error::IntensityOutOfRange { value })
        }
    }

    /// Clamps `value` into `[0, 1]`; NaN becomes 0 (no signal).
    pub fn clamped(value: f64) -> Intensity {
        if value.is_nan() {
            Intensity::ZERO
        } else {
            Intensity(value.clamp(0.0, 1.0) + 0.0)
        }
    }

    /// The value.
    pub const fn get(self) -> f64 {
        self.0
    }
}

impl Default for Intensity {
    /// Full strength, the default initial intensity of a pheromone.
    fn default() -> Self {
        Intensity::ONE
    }
}

impl Eq for Intensity {}

impl PartialOrd<f64> for Intensity {
    fn partial_cmp(&self, other: &f64) -> Option<std::cmp::Ordering> {
        self.0.partial_cmp(other)
    }
}

impl PartialEq<f64> for Intensity {
    fn eq(&self, other: &f64) -> bool {
        self.0 == *other
    }
}

impl PartialOrd for Intensity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Intensity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl std::hash::Hash for Intensity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

impl TryFrom<f64> for Intensity {
    type Error = Error;

    fn try_from(value: f64) -> Result<Self, Self::Error> {
        Intensity::new(value)
    }
}

impl From<Intensity> for f64 {
    fn from(intensity: Intensity) -> f64 {
        intensity.0
    }
}

impl std::fmt::Display for Intensity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl serde::Serialize for Intensity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Intensity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = <f64 as serde::Deserialize>::deserialize(deserializer)?;
        Intensity::new(value).map_err(serde::de::Error::custom)
    }
}

/// A half-life: finite, greater than zero, at most [`HalfLife::MAX_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct HalfLife {
    seconds: f64,
}

impl HalfLife {
    /// The longest accepted half-life, in seconds (about 31,700 years). Bounding it keeps every
    /// derived duration representable.
    pub const MAX_SECONDS: f64 = 1e12;

    /// The default half-life, [`DEFAULT_HALF_LIFE_MINUTES`].
    pub const DEFAULT: HalfLife = HalfLife {
        seconds: DEFAULT_HALF_LIFE_MINUTES * 60.0,
    };

    fn checked(value: f64, unit: &'static str, seconds: f64) -> Result<HalfLife, Error> {
        if seconds > 0.0 && seconds <= HalfLife::MAX_SECONDS {
            Ok(HalfLife { seconds })
        } else {
            Err(Error::InvalidHalfLife {
                value,
                unit,
                max_seconds: HalfLife::MAX_SECONDS,
            })
        }
    }

    /// A half-life of `seconds` seconds.
    pub fn from_seconds(seconds: f64) -> Result<HalfLife, Error> {
        HalfLife::checked(seconds, "seconds", seconds)
    }

    /// A half-life of `minutes` minutes (the manifest's `halfLifeMinutes`).
    pub fn from_minutes(minutes: f64) -> Result<HalfLife, Error> {
        HalfLife::checked(minutes, "minutes", minutes * 60.0)
    }

    /// A half-life equal to `duration` (zero is an error).
    pub fn from_duration(duration: Duration) -> Result<HalfLife, Error> {
        let seconds = duration.as_secs_f64();
        HalfLife::checked(seconds, "seconds", seconds)
    }

    /// Converts a legacy per-minute `decay_rate`: half-life = ln 2 / rate minutes. (The first
    /// implementation used 0.693 for ln 2; the exact constant is used here.)
    pub fn from_decay_rate_per_minute(rate: f64) -> Result<HalfLife, Error> {
        if !(rate > 0.0 && rate.is_finite()) {
            return Err(Error::InvalidDecayRate { value: rate });
        }
        HalfLife::from_minutes(std::f64::consts::LN_2 / rate)
    }

    /// The half-life a manifest asks for: `halfLifeMinutes` when set, otherwise the legacy
    /// `decay_rate` (per minute), otherwise [`HalfLife::DEFAULT`].
    pub fn from_manifest(
        half_life_minutes: Option<f64>,
        legacy_decay_rate_per_minute: Option<f64>,
    ) -> Result<HalfLife, Error> {
        match (half_life_minutes, legacy_decay_rate_per_minute) {
            (Some(minutes), _) => HalfLife::from_minutes(minutes),
            (None, Some(rate)) => HalfLife::from_decay_rate_per_minute(rate),
            (None, None) => Ok(HalfLife::DEFAULT),
        }
    }

    /// The half-life in seconds.
    pub const fn as_seconds_f64(self) -> f64 {
        self.seconds
    }

    /// The half-life in minutes.
    pub fn as_minutes_f64(self) -> f64 {
        self.seconds / 60.0
    }

    /// The half-life as a duration (rounded to nanoseconds).
    pub fn as_duration(self) -> Duration {
        Duration::try_from_secs_f64(self.seconds).unwrap_or(Duration::MAX)
    }

    /// This half-life multiplied by `factor` (≥ 1), capped at [`HalfLife::MAX_SECONDS`].
    fn stretched(self, factor: f64) -> HalfLife {
        HalfLife {
            seconds: (self.seconds * factor).min(HalfLife::MAX_SECONDS),
        }
    }
}

impl Default for HalfLife {
    fn default() -> Self {
        HalfLife::DEFAULT
    }
}

/// The half-life a signal of `pheromone_type` actually decays with: DREAM signals get
/// [`DREAM_HALF_LIFE_MULTIPLIER`] × `base` (capped at [`HalfLife::MAX_SECONDS`]); every other type
/// decays with `base`.
pub fn effective_half_life(pheromone_type: PheromoneType, base: HalfLife) -> HalfLife {
    match pheromone_type {
        PheromoneType::Dream => base.stretched(DREAM_HALF_LIFE_MULTIPLIER),
        _ => base,
    }
}

/// Seconds from `emitted_at` to `now`; negative when `now` is earlier.
#[inline]
fn elapsed_seconds(emitted_at: Timestamp, now: Timestamp) -> f64 {
    now.duration_since(emitted_at).as_secs_f64()
}

#[inline]
fn decayed(initial: Intensity, half_life: HalfLife, elapsed_seconds: f64) -> Intensity {
    if elapsed_seconds > 0.0 {
        // exp2 of a negative (possibly -inf) number is in [0, 1], so the product stays in
        // [0, initial]; `clamped` only guards the invariant.
        Intensity::clamped(initial.0 * (-elapsed_seconds / half_life.seconds).exp2())
    } else {
        initial
    }
}

/// The intensity at `now` of a signal emitted at `emitted_at` with `initial` intensity and
/// `half_life` (pass the [effective](effective_half_life) half-life for DREAM). A `now` before
/// `emitted_at` yields `initial`.
#[inline]
pub fn intensity_at(
    initial: Intensity,
    half_life: HalfLife,
    emitted_at: Timestamp,
    now: Timestamp,
) -> Intensity {
    decayed(initial, half_life, elapsed_seconds(emitted_at, now))
}

/// Time from emission until the intensity falls to `threshold`: `half_life × log2(initial /
/// threshold)`. `None` when `initial` is already at or below `threshold`. A zero threshold is never
/// reached and gives [`Duration::MAX`].
pub fn time_until(
    initial: Intensity,
    half_life: HalfLife,
    threshold: Intensity,
) -> Option<Duration> {
    if initial <= threshold {
        return None;
    }
    if threshold == Intensity::ZERO {
        return Some(Duration::MAX);
    }
    let seconds = half_life.seconds * (initial.0 / threshold.0).log2();
    Some(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}

/// Whether `ttl` (counted from `emitted_at`) has passed at `now`.
#[inline]
fn ttl_expired(emitted_at: Timestamp, ttl: Option<Duration>, now: Timestamp) -> bool {
    match ttl {
        None => false,
        Some(ttl) => {
            let elapsed = now.duration_since(emitted_at);
            !elapsed.is_negative() && elapsed.unsigned_abs() >= ttl
        }
    }
}

/// The intensity at `now` and whether the signal has evaporated, computed together.
#[inline]
pub(crate) fn assess(
    initial: Intensity,
    half_life: HalfLife,
    emitted_at: Timestamp,
    ttl: Option<Duration>,
    now: Timestamp,
) -> (Intensity, bool) {
    let intensity = intensity_at(initial, half_life, emitted_at, now);
    let evaporated = intensity.0 < EVAPORATION_THRESHOLD || ttl_expired(emitted_at, ttl, now);
    (intensity, evaporated)
}

/// Whether the signal has evaporated at `now`: intensity below [`EVAPORATION_THRESHOLD`], or `ttl`
/// (counted from `emitted_at`) passed. A TTL of zero evaporates at emission.
pub fn is_evaporated(
    initial: Intensity,
    half_life: HalfLife,
    emitted_at: Timestamp,
    ttl: Option<Duration>,
    now: Timestamp,
) -> bool {
    assess(initial, half_life, emitted_at, ttl, now).1
}

/// The first instant (at nanosecond resolution, not before `emitted_at`) at which
/// [`is_evaporated`] is true: the earlier of the threshold crossing and the TTL deadline.
///
/// Computed against [`intensity_at`] itself, so `is_evaporated(…, evaporates_at(…))` is true and
/// one nanosecond earlier it is false (unless that is before `emitted_at`): a controller that
/// requeues at this instant finds the signal gone. [`Timestamp::MAX`] means "not within
/// representable time".
pub fn evaporates_at(
    initial: Intensity,
    half_life: HalfLife,
    emitted_at: Timestamp,
    ttl: Option<Duration>,
) -> Timestamp {
    let crossing = threshold_crossing(initial, half_life, emitted_at);
    let deadline = match ttl {
        None => Timestamp::MAX,
        Some(ttl) => emitted_at.checked_add(ttl).unwrap_or(Timestamp::MAX),
    };
    crossing.min(deadline)
}

/// The first instant ≥ `emitted_at` at which `intensity_at` is below the evaporation threshold.
fn threshold_crossing(initial: Intensity, half_life: HalfLife, emitted_at: Timestamp) -> Timestamp {
    if initial.0 < EVAPORATION_THRESHOLD {
        return emitted_at;
    }
    let start = emitted_at.as_nanosecond();
    let max_offset = Timestamp::MAX.as_nanosecond() - start;
    let at = |offset: i128| -> Timestamp {
        Timestamp::from_nanosecond(start + offset).unwrap_or(Timestamp::MAX)
    };
    let evaporated = |offset: i128| {
        intensity_at(initial, half_life, emitted_at, at(offset)).0 < EVAPORATION_THRESHOLD
    };

    // The closed form gives an estimate; floating-point rounding may put the true first
    // nanosecond a little to either side, so search around it. `evaporated` is monotone in the
    // offset, so a galloping search followed by bisection finds the first true offset.
    let estimate_seconds = half_life.seconds * (initial.0 / EVAPORATION_THRESHOLD).log2();
    let estimate = ((estimate_seconds * 1e9).ceil() as i128).clamp(0, max_offset);
    let (mut low, mut high); // invariant: !evaporated(low), evaporated(high)
    if evaporated(estimate) {
        high = estimate;
        let mut step = 1i128;
        loop {
            let candidate = (high - step).max(0);
            if !evaporated(candidate) {
                low = candidate;
                break;
            }
            high = candidate;
            if candidate == 0 {
                // At emission the intensity is `initial` ≥ the threshold, so this is unreachable
                // in exact arithmetic; answer the emission instant rather than loop.
                return emitted_at;
            }
            step *= 2;
        }
    } else {
        low = estimate;
        let mut step = 1i128;
        loop {
            if low >= max_offset {
                return Timestamp::MAX;
            }
            let candidate = (low + step).min(max_offset);
            if evaporated(candidate) {
                high = candidate;
                break;
            }
            low = candidate;
            step *= 2;
        }
    }
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if evaporated(mid) {
            high = mid;
        } else {
            low = mid;
        }
    }
    at(high)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn minutes(m: f64) -> HalfLife {
        HalfLife::from_minutes(m).unwrap()
    }

    #[test]
    fn intensity_rejects_nan_and_out_of_range_and_clamps_on_request() {
        for bad in [f64::NAN, -0.1, 1.000_001, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(
                Intensity::new(bad),
                Err(Error::IntensityOutOfRange { .. })
            ));
        }
        assert_eq!(Intensity::new(0.5).unwrap().get(), 0.5);
        assert_eq!(Intensity::new(-0.0).unwrap(), Intensity::ZERO);
        assert_eq!(Intensity::clamped(f64::NAN), Intensity::ZERO);
        assert_eq!(Intensity::clamped(7.0), Intensity::ONE);
        assert_eq!(Intensity::clamped(f64::NEG_INFINITY), Intensity::ZERO);
        assert_eq!(Intensity::clamped(0.25).get(), 0.25);
        assert_eq!(
            serde_json::from_str::<Intensity>("0.75").unwrap().get(),
            0.75
        );
        assert!(serde_json::from_str::<Intensity>("1.5").is_err());
    }

    #[test]
    fn half_life_rejects_non_positive_non_finite_and_huge_values() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300] {
            assert!(HalfLife::from_minutes(bad).is_err(), "{bad}");
            assert!(HalfLife::from_seconds(bad).is_err(), "{bad}");
        }
        assert!(HalfLife::from_duration(Duration::ZERO).is_err());
        assert_eq!(
            HalfLife::from_duration(Duration::from_secs(90))
                .unwrap()
                .as_seconds_f64(),
            90.0
        );
        assert_eq!(minutes(10.0), HalfLife::DEFAULT);
        assert_eq!(minutes(1.5).as_duration(), Duration::from_secs(90));
        assert_eq!(minutes(1.5).as_minutes_f64(), 1.5);
    }

    #[test]
    fn legacy_decay_rate_converts_to_ln2_over_rate() {
        let half_life = HalfLife::from_decay_rate_per_minute(0.1).unwrap();
        assert!((half_life.as_minutes_f64() - std::f64::consts::LN_2 / 0.1).abs() < 1e-12);
        // The old default rate 0.1/min gives ≈ 6.93 minutes.
        assert!((half_life.as_minutes_f64() - 6.931_471_805_599_453).abs() < 1e-9);
        for bad in [0.0, -0.5, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                HalfLife::from_decay_rate_per_minute(bad),
                Err(Error::InvalidDecayRate { .. })
            ));
        }
        // A rate so small the half-life exceeds the maximum is reported, not saturated.
        assert!(matches!(
            HalfLife::from_decay_rate_per_minute(1e-300),
            Err(Error::InvalidHalfLife { .. })
        ));
        assert_eq!(
            HalfLife::from_manifest(Some(3.0), Some(0.1)).unwrap(),
            minutes(3.0)
        );
        assert_eq!(HalfLife::from_manifest(None, Some(0.1)).unwrap(), half_life);
        assert_eq!(
            HalfLife::from_manifest(None, None).unwrap(),
            HalfLife::DEFAULT
        );
        assert!(HalfLife::from_manifest(Some(0.0), None).is_err());
    }

    #[test]
    fn worked_example_ten_minute_half_life() {
        let initial = Intensity::ONE;
        let emitted = ts(1_000_000);
        let at =
            |s: i64| intensity_at(initial, HalfLife::DEFAULT, emitted, ts(1_000_000 + s)).get();
        assert_eq!(at(0), 1.0);
        assert_eq!(at(600), 0.5);
        assert_eq!(at(1200), 0.25);
        assert_eq!(
            at(-600),
            1.0,
            "future emission clamps to the initial intensity"
        );
        // 0.01 is crossed after log2(100) ≈ 6.64 half-lives ≈ 66.4 minutes.
        let until =
            time_until(initial, HalfLife::DEFAULT, Intensity::EVAPORATION_THRESHOLD).unwrap();
        assert!((until.as_secs_f64() - 600.0 * 100f64.log2()).abs() < 1e-6);
        assert!(!is_evaporated(
            initial,
            HalfLife::DEFAULT,
            emitted,
            None,
            ts(1_000_000 + 3985)
        ));
        assert!(is_evaporated(
            initial,
            HalfLife::DEFAULT,
            emitted,
            None,
            ts(1_000_000 + 3987)
        ));
    }

    #[test]
    fn dream_decays_at_half_speed() {
        let base = minutes(10.0);
        assert_eq!(
            effective_half_life(PheromoneType::Dream, base),
            minutes(20.0)
        );
        for other in PheromoneType::ALL
            .into_iter()
            .filter(|t| *t != PheromoneType::Dream)
        {
            assert_eq!(effective_half_life(other, base), base);
        }
        let huge = HalfLife::from_seconds(HalfLife::MAX_SECONDS).unwrap();
        assert_eq!(effective_half_life(PheromoneType::Dream, huge), huge);
    }

    #[test]
    fn time_until_edge_cases() {
        let half = Intensity::new(0.5).unwrap();
        assert_eq!(time_until(half, HalfLife::DEFAULT, half), None);
        assert_eq!(time_until(half, HalfLife::DEFAULT, Intensity::ONE), None);
        assert_eq!(
            time_until(half, HalfLife::DEFAULT, Intensity::ZERO),
            Some(Duration::MAX)
        );
        assert_eq!(
            time_until(Intensity::ONE, HalfLife::DEFAULT, half),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn ttl_evaporates_exactly_at_the_deadline() {
        let emitted = ts(5_000);
        let ttl = Some(Duration::from_secs(30));
        let hl = minutes(10.0);
        assert!(!is_evaporated(Intensity::ONE, hl, emitted, ttl, ts(5_029)));
        assert!(is_evaporated(Intensity::ONE, hl, emitted, ttl, ts(5_030)));
        assert_eq!(evaporates_at(Intensity::ONE, hl, emitted, ttl), ts(5_030));
        assert!(is_evaporated(
            Intensity::ONE,
            hl,
            emitted,
            Some(Duration::ZERO),
            emitted
        ));
        // A TTL beyond the representable range never fires; decay still does.
        let forever = Some(Duration::MAX);
        assert!(!is_evaporated(
            Intensity::ONE,
            hl,
            emitted,
            forever,
            ts(5_100)
        ));
        assert!(evaporates_at(Intensity::ONE, hl, emitted, forever) < Timestamp::MAX);
        // Future emission: the TTL has not started.
        assert!(!is_evaporated(Intensity::ONE, hl, emitted, ttl, ts(4_000)));
    }

    #[test]
    fn evaporates_at_is_the_first_evaporated_nanosecond() {
        let emitted = ts(1_700_000_000);
        for (initial, hl) in [
            (1.0, minutes(10.0)),
            (0.5, minutes(0.001)),
            (0.010_000_001, minutes(10.0)),
            (0.01, minutes(10.0)),
            (0.73, HalfLife::from_seconds(1e-9).unwrap()),
            (1.0, HalfLife::from_seconds(1e9).unwrap()),
        ] {
            let initial = Intensity::new(initial).unwrap();
            let at = evaporates_at(initial, hl, emitted, None);
            assert!(
                is_evaporated(initial, hl, emitted, None, at),
                "{initial} {hl:?}"
            );
            let before = at - jiff::SignedDuration::from_nanos(1);
            assert!(before < emitted || !is_evaporated(initial, hl, emitted, None, before));
        }
        // A crossing beyond year 9999 saturates; nothing has evaporated there.
        let slow = HalfLife::from_seconds(HalfLife::MAX_SECONDS).unwrap();
        assert_eq!(
            evaporates_at(Intensity::ONE, slow, emitted, None),
            Timestamp::MAX
        );
        let faint = Intensity::new(0.005).unwrap();
        assert_eq!(evaporates_at(faint, minutes(10.0), emitted, None), emitted);
    }

    #[test]
    fn near_the_end_of_time_evaporation_saturates() {
        let emitted = Timestamp::MAX - jiff::SignedDuration::from_secs(10);
        let hl = HalfLife::from_seconds(HalfLife::MAX_SECONDS).unwrap();
        assert_eq!(
            evaporates_at(Intensity::ONE, hl, emitted, None),
            Timestamp::MAX
        );
        assert_eq!(
            intensity_at(Intensity::ONE, minutes(1.0), Timestamp::MIN, Timestamp::MAX),
            Intensity::ZERO
        );
    }
}
