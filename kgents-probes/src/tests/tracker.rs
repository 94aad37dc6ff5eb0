//! The health tracker: fixed sequences, and properties against a reference model that keeps
//! the whole history and applies the documented "last N verdicts all agree" rule literally.

use std::time::Duration;

use proptest::prelude::*;

use crate::challenge::Challenge;
use crate::error::Error;
use crate::outcome::{ProbeDetail, ProbeOutcome, Verdict};
use crate::tracker::{CognitiveHealth, HealthTracker, TrackerConfig, severity};

use CognitiveHealth::{
    Degraded as DEGRADED, Healthy as HEALTHY, Unknown as UNKNOWN, Unresponsive as UNRESPONSIVE,
};
use Verdict::{Degraded as Slow, Healthy as Ok_, Unhealthy as Wrong, Unresponsive as Silent};

fn tracker(failure_threshold: u32, success_threshold: u32) -> HealthTracker {
    HealthTracker::new(TrackerConfig {
        failure_threshold,
        success_threshold,
        degraded_is_ready: false,
    })
    .unwrap()
}

/// Feeds `verdicts` and returns the health after each.
fn healths(tracker: &mut HealthTracker, verdicts: &[Verdict]) -> Vec<CognitiveHealth> {
    verdicts
        .iter()
        .map(|&verdict| {
            tracker.observe_verdict(verdict);
            tracker.health()
        })
        .collect()
}

#[test]
fn defaults_are_three_failures_and_one_success() {
    let config = TrackerConfig::default();
    assert_eq!((config.failure_threshold, config.success_threshold), (3, 1));
    let tracker = HealthTracker::new(config).unwrap();
    assert_eq!(tracker.health(), UNKNOWN);
    assert!(!tracker.ready());
}

#[test]
fn thresholds_are_validated() {
    for (failure, success) in [(0, 1), (3, 0), (1_001, 1), (3, u32::MAX)] {
        let error = HealthTracker::new(TrackerConfig {
            failure_threshold: failure,
            success_threshold: success,
            degraded_is_ready: false,
        })
        .unwrap_err();
        assert!(matches!(error, Error::InvalidThreshold { .. }), "{error}");
    }
}

#[test]
fn one_good_answer_makes_a_new_agent_healthy_and_one_bad_answer_does_not_move_it() {
    let mut t = tracker(3, 1);
    assert_eq!(
        healths(&mut t, &[Ok_, Wrong, Ok_, Silent, Silent, Ok_, Slow, Wrong]),
        [HEALTHY; 8]
    );
    assert!(t.ready());
}

#[test]
fn three_silent_probes_make_it_unresponsive_and_an_answer_brings_it_back() {
    let mut t = tracker(3, 1);
    assert_eq!(
        healths(
            &mut t,
            &[
                Ok_, Silent, Silent, Silent, Silent, Wrong, Wrong, Silent, Ok_
            ]
        ),
        [
            HEALTHY,
            HEALTHY,
            HEALTHY,
            UNRESPONSIVE,
            UNRESPONSIVE,
            DEGRADED,
            DEGRADED,
            DEGRADED,
            HEALTHY
        ]
    );
}

#[test]
fn a_mixed_failing_streak_is_degraded_not_unresponsive() {
    let mut t = tracker(3, 1);
    assert_eq!(
        healths(&mut t, &[Ok_, Silent, Wrong, Silent, Silent, Silent]),
        [HEALTHY, HEALTHY, HEALTHY, DEGRADED, DEGRADED, UNRESPONSIVE]
    );
    let mut t = tracker(3, 1);
    assert_eq!(
        healths(&mut t, &[Ok_, Slow, Slow, Slow]),
        [HEALTHY, HEALTHY, HEALTHY, DEGRADED]
    );
}

#[test]
fn an_unknown_agent_needs_a_full_streak_either_way() {
    let mut t = tracker(3, 2);
    assert_eq!(
        healths(&mut t, &[Wrong, Silent, Ok_, Wrong, Ok_, Ok_]),
        [UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, HEALTHY]
    );
    let mut t = tracker(3, 2);
    assert_eq!(
        healths(&mut t, &[Silent, Silent, Silent]),
        [UNKNOWN, UNKNOWN, UNRESPONSIVE]
    );
    let mut t = tracker(3, 2);
    assert_eq!(
        healths(&mut t, &[Silent, Slow, Silent]),
        [UNKNOWN, UNKNOWN, DEGRADED]
    );
}

#[test]
fn a_higher_success_threshold_slows_recovery() {
    let mut t = tracker(2, 3);
    assert_eq!(
        healths(
            &mut t,
            &[
                Ok_, Ok_, Ok_, Silent, Silent, Ok_, Ok_, Wrong, Ok_, Ok_, Ok_
            ]
        ),
        [
            UNKNOWN,
            UNKNOWN,
            HEALTHY,
            HEALTHY,
            UNRESPONSIVE,
            UNRESPONSIVE,
            UNRESPONSIVE,
            DEGRADED,
            DEGRADED,
            DEGRADED,
            HEALTHY
        ]
    );
}

fn outcome(verdict: Verdict, reason: &str) -> ProbeOutcome {
    ProbeOutcome::new(
        verdict,
        ProbeDetail {
            challenge: Challenge::Json { nonce: 1 },
            reply: None,
            latency: Duration::from_millis(10),
            reason: reason.to_owned(),
        },
    )
}

#[test]
fn transitions_are_reported_once_with_readiness_and_the_latest_reason() {
    let mut t = tracker(3, 1);
    let first = t.observe(&outcome(Ok_, "correct answer in 10ms")).unwrap();
    assert_eq!((first.from, first.to), (UNKNOWN, HEALTHY));
    assert!(first.readiness_changed() && first.ready_after);
    assert_eq!(t.observe(&outcome(Ok_, "again")), None);
    assert_eq!(t.observe(&outcome(Wrong, "expected 12, got 112")), None);
    assert_eq!(t.observe(&outcome(Wrong, "expected 9, got 19")), None);
    let down = t.observe(&outcome(Wrong, "expected 3, got 13")).unwrap();
    assert_eq!((down.from, down.to), (HEALTHY, DEGRADED));
    assert!(down.ready_before && !down.ready_after);
    assert_eq!(
        down.reason,
        "3 probes in a row were slow, wrong or unanswered; latest: expected 3, got 13"
    );
    assert_eq!(t.consecutive_failures(), 3);
    assert_eq!(t.observe(&outcome(Wrong, "still wrong")), None);
    let silent = (0..3)
        .filter_map(|_| t.observe(&outcome(Silent, "no answer within the 10s timeout")))
        .collect::<Vec<_>>();
    assert_eq!(silent.len(), 1);
    assert_eq!((silent[0].from, silent[0].to), (DEGRADED, UNRESPONSIVE));
    assert!(!silent[0].readiness_changed());
    let back = t.observe(&outcome(Wrong, "expected 4, got 5")).unwrap();
    assert_eq!((back.from, back.to), (UNRESPONSIVE, DEGRADED));
    assert!(
        back.reason.starts_with("answering again"),
        "{}",
        back.reason
    );
}

#[test]
fn degraded_can_count_as_ready() {
    let mut t = HealthTracker::new(TrackerConfig {
        degraded_is_ready: true,
        ..TrackerConfig::default()
    })
    .unwrap();
    healths(&mut t, &[Ok_, Slow, Slow]);
    let transition = t.observe_verdict(Slow).unwrap();
    assert_eq!(transition.to, DEGRADED);
    assert!(t.ready() && !transition.readiness_changed());
    healths(&mut t, &[Silent, Silent, Silent]);
    assert!(!t.ready());
}

#[test]
fn a_resumed_tracker_keeps_its_health_until_a_streak_says_otherwise() {
    let mut t = HealthTracker::resume(TrackerConfig::default(), DEGRADED).unwrap();
    assert_eq!(t.health(), DEGRADED);
    assert_eq!(
        healths(&mut t, &[Silent, Silent, Wrong, Ok_]),
        [DEGRADED, DEGRADED, DEGRADED, HEALTHY]
    );
}

#[test]
fn cognitive_health_serialises_in_screaming_case() {
    for (health, text) in [
        (HEALTHY, "\"HEALTHY\""),
        (DEGRADED, "\"DEGRADED\""),
        (UNRESPONSIVE, "\"UNRESPONSIVE\""),
        (UNKNOWN, "\"UNKNOWN\""),
    ] {
        assert_eq!(serde_json::to_string(&health).unwrap(), text);
        assert_eq!(
            serde_json::from_str::<CognitiveHealth>(text).unwrap(),
            health
        );
        assert_eq!(format!("\"{health}\""), text);
    }
}

fn level_health(level: u8) -> CognitiveHealth {
    [HEALTHY, DEGRADED, UNRESPONSIVE][usize::from(level)]
}

/// The documented rule, applied literally to the whole history.
fn model_step(health: CognitiveHealth, history: &[Verdict], f: usize, s: usize) -> CognitiveHealth {
    let last = |n: usize| (history.len() >= n).then(|| &history[history.len() - n..]);
    let severities = |window: &[Verdict]| window.iter().map(|&v| severity(v)).collect::<Vec<_>>();
    let latest = severity(*history.last().unwrap());
    let worse = |above: u8| {
        last(f)
            .map(severities)
            .filter(|w| w.iter().all(|&x| x > above))
            .map(|w| level_health(*w.iter().min().unwrap()))
    };
    let better = |below: u8| {
        last(s)
            .map(severities)
            .filter(|w| w.iter().all(|&x| x < below))
            .map(|w| level_health(*w.iter().max().unwrap()))
    };
    let current = match health {
        UNKNOWN => {
            return better(1).or_else(|| worse(0)).unwrap_or(UNKNOWN);
        }
        HEALTHY => 0,
        DEGRADED => 1,
        UNRESPONSIVE => 2,
    };
    let next = if latest > current {
        worse(current)
    } else if latest < current {
        better(current)
    } else {
        None
    };
    next.unwrap_or(health)
}

fn any_verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![Just(Ok_), Just(Slow), Just(Wrong), Just(Silent)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_tracker_follows_the_documented_rule(
        f in 1u32..6,
        s in 1u32..6,
        verdicts in prop::collection::vec(any_verdict(), 0..80),
    ) {
        let mut t = tracker(f, s);
        let mut model = UNKNOWN;
        let mut history = Vec::new();
        for verdict in verdicts {
            history.push(verdict);
            let before = t.health();
            let transition = t.observe_verdict(verdict);
            model = model_step(model, &history, f as usize, s as usize);
            prop_assert_eq!(t.health(), model, "after {:?}", history);
            // A transition is reported exactly when health changes, and describes it.
            match transition {
                Some(tr) => {
                    prop_assert_ne!(before, t.health());
                    prop_assert_eq!((tr.from, tr.to), (before, t.health()));
                    prop_assert_eq!(tr.ready_after, t.ready());
                }
                None => prop_assert_eq!(before, t.health()),
            }
            prop_assert_eq!(t.ready(), t.health() == HEALTHY);
        }
    }

    #[test]
    fn a_single_failure_after_success_never_changes_health(
        f in 2u32..8,
        s in 1u32..5,
        prefix in prop::collection::vec(any_verdict(), 0..40),
        failure in prop_oneof![Just(Slow), Just(Wrong), Just(Silent)],
    ) {
        let mut t = tracker(f, s);
        healths(&mut t, &prefix);
        healths(&mut t, &vec![Ok_; s as usize]);
        prop_assert_eq!(t.health(), HEALTHY);
        prop_assert_eq!(t.observe_verdict(failure), None);
        prop_assert_eq!(t.health(), HEALTHY);
        prop_assert!(t.ready());
    }

    #[test]
    fn a_full_streak_decides_whatever_came_before(
        f in 1u32..8,
        s in 1u32..8,
        prefix in prop::collection::vec(any_verdict(), 0..40),
    ) {
        let mut t = tracker(f, s);
        healths(&mut t, &prefix);
        healths(&mut t, &vec![Silent; f as usize]);
        prop_assert_eq!(t.health(), UNRESPONSIVE);
        healths(&mut t, &vec![Ok_; s as usize]);
        prop_assert_eq!(t.health(), HEALTHY);
        healths(&mut t, &vec![Wrong; f as usize]);
        prop_assert_eq!(t.health(), DEGRADED);
    }
}
