//! The runner's configuration, challenge/probe matching and the pure `conclude`.

use std::sync::Arc;
use std::time::Duration;

use super::{Silent, TokioTimer, rng, runner};
use crate::challenge::{Challenge, ProbeKind};
use crate::error::Error;
use crate::outcome::Verdict;
use crate::path::ResolveError;
use crate::probe::{EchoProbe, PoseError, Probe};
use crate::runner::{Attempt, ProbeRunner, RunnerConfig, conclude};

#[test]
fn configuration_is_validated() {
    let timer = Arc::new(TokioTimer);
    let zero = RunnerConfig {
        timeout: Duration::ZERO,
        latency_budget: Duration::ZERO,
    };
    assert_eq!(
        ProbeRunner::new(timer.clone(), zero).unwrap_err(),
        Error::ZeroTimeout
    );
    let inverted = RunnerConfig {
        timeout: Duration::from_secs(2),
        latency_budget: Duration::from_secs(3),
    };
    let error = ProbeRunner::new(timer.clone(), inverted).unwrap_err();
    assert!(matches!(error, Error::BudgetExceedsTimeout { .. }));
    assert!(error.to_string().contains("no longer than the timeout"));
    let runner = ProbeRunner::new(timer, RunnerConfig::default()).unwrap();
    assert_eq!(runner.config().timeout, Duration::from_secs(10));
    assert_eq!(runner.config().latency_budget, Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_challenge_of_another_kind_is_refused() {
    let probe = EchoProbe::new(Arc::new(Silent));
    let error = runner()
        .run_challenge(&probe, Challenge::Json { nonce: 5 })
        .await
        .unwrap_err();
    assert_eq!(
        error,
        Error::ChallengeMismatch {
            probe: ProbeKind::Echo,
            challenge: ProbeKind::Json
        }
    );
    let direct = probe.pose(&Challenge::Json { nonce: 5 }).await;
    assert!(matches!(direct, Err(PoseError::Mismatch { .. })));
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_draws_the_same_challenge_and_consecutive_runs_differ() {
    let probe = EchoProbe::new(Arc::new(Silent));
    let runner = runner();
    let first = runner.run(&probe, &mut rng()).await;
    let again = runner.run(&probe, &mut rng()).await;
    assert_eq!(first.detail().challenge, again.detail().challenge);
    let mut rng = rng();
    let a = runner.run(&probe, &mut rng).await;
    let b = runner.run(&probe, &mut rng).await;
    assert_ne!(a.detail().challenge, b.detail().challenge);
}

#[test]
fn the_run_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let runner = runner();
    let probe = EchoProbe::new(Arc::new(Silent));
    let future = runner.run(&probe, &mut rng());
    assert_send(&future);
}

#[test]
fn conclude_maps_every_attempt() {
    let config = RunnerConfig::default();
    let challenge = Challenge::Echo {
        nonce: "abc".into(),
    };
    let fast = Duration::from_millis(300);
    let slow = Duration::from_secs(6);
    let cases = [
        (Attempt::Replied("abc".into()), fast, Verdict::Healthy),
        (Attempt::Replied("abc".into()), slow, Verdict::Degraded),
        (Attempt::Replied("abd".into()), fast, Verdict::Unhealthy),
        (
            Attempt::Failed(PoseError::Resolve(ResolveError::Failed {
                message: "no such term".into(),
            })),
            fast,
            Verdict::Unhealthy,
        ),
        (
            Attempt::Failed(PoseError::Resolve(ResolveError::Unreachable {
                message: "down".into(),
            })),
            fast,
            Verdict::Unresponsive,
        ),
        (
            Attempt::Failed(PoseError::Mismatch {
                probe: ProbeKind::Echo,
                challenge: ProbeKind::Path,
            }),
            fast,
            Verdict::Unresponsive,
        ),
        (
            Attempt::TimedOut(Duration::from_secs(10)),
            Duration::from_secs(10),
            Verdict::Unresponsive,
        ),
    ];
    for (attempt, latency, expected) in cases {
        let outcome = conclude(challenge.clone(), attempt.clone(), latency, &config);
        assert_eq!(outcome.verdict(), expected, "{attempt:?}");
        assert_eq!(outcome.latency(), latency);
        assert!(!outcome.reason().is_empty());
    }
    let degraded = conclude(
        challenge,
        Attempt::Replied("abc".into()),
        Duration::from_millis(6_250),
        &config,
    );
    assert_eq!(
        degraded.reason(),
        "correct answer, but it took 6.25s, over the 5s latency budget"
    );
}
