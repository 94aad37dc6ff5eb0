//! The [`ProbeRunner`]: poses a probe's challenge under a timeout, measures the latency and
//! turns the attempt into a [`ProbeOutcome`] with [`conclude`] (a pure function).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{Either, select};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::challenge::{Challenge, Judgement};
use crate::error::{Error, Result};
use crate::outcome::{ProbeDetail, ProbeOutcome, Reply, Verdict};
use crate::path::ResolveError;
use crate::probe::{PoseError, Probe};
use crate::timer::Timer;

/// Default probe timeout. Far above a kubelet probe's 1 s, because a model can take seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default latency budget: a correct answer slower than this is Degraded.
pub const DEFAULT_LATENCY_BUDGET: Duration = Duration::from_secs(5);

/// Timing limits of a probe run.
///
/// Non-exhaustive: build it with [`RunnerConfig::new`] or from `RunnerConfig::default()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RunnerConfig {
    /// How long to wait for a reply before the probe is Unresponsive (default 10 s).
    pub timeout: Duration,
    /// A correct reply slower than this is Degraded (default 5 s). A reply exactly at the
    /// budget is still Healthy.
    pub latency_budget: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            timeout: DEFAULT_TIMEOUT,
            latency_budget: DEFAULT_LATENCY_BUDGET,
        }
    }
}

impl RunnerConfig {
    /// Limits of `timeout` and `latency_budget` (checked by [`RunnerConfig::validate`], which
    /// [`ProbeRunner::new`] runs).
    pub const fn new(timeout: Duration, latency_budget: Duration) -> RunnerConfig {
        RunnerConfig {
            timeout,
            latency_budget,
        }
    }

    /// Checks that the timeout is positive and the budget no longer than the timeout.
    pub fn validate(&self) -> Result<()> {
        if self.timeout.is_zero() {
            return Err(Error::ZeroTimeout);
        }
        if self.latency_budget > self.timeout {
            return Err(Error::BudgetExceedsTimeout {
                budget: self.latency_budget,
                timeout: self.timeout,
            });
        }
        Ok(())
    }
}

/// What happened when a challenge was posed, before judging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// A reply arrived.
    Replied(String),
    /// The subject failed without a reply.
    Failed(PoseError),
    /// Nothing arrived within the timeout.
    TimedOut(Duration),
}

/// Turns an attempt into an outcome. Pure.
///
/// | attempt | verdict |
/// |---|---|
/// | a reply that [`Challenge::judge`] finds correct, latency ≤ budget | Healthy |
/// | a correct reply, latency > budget | Degraded |
/// | a wrong reply (including an empty one) | Unhealthy |
/// | the path resolver answered with an error ([`ResolveError::Failed`]) | Unhealthy |
/// | timeout, any [`LlmError`](crate::LlmError), an unreachable resolver, a mismatched challenge | Unresponsive |
pub fn conclude(
    challenge: Challenge,
    attempt: Attempt,
    latency: Duration,
    config: &RunnerConfig,
) -> ProbeOutcome {
    let shown = round_to_millis(latency);
    let (verdict, reply, reason) = match attempt {
        Attempt::Replied(text) => {
            let reply = Some(Reply::capture(&text));
            match challenge.judge(&text) {
                Judgement::Correct if latency > config.latency_budget => (
                    Verdict::Degraded,
                    reply,
                    format!(
                        "correct answer, but it took {shown:?}, over the {:?} latency budget",
                        config.latency_budget
                    ),
                ),
                Judgement::Correct => (
                    Verdict::Healthy,
                    reply,
                    format!("correct answer in {shown:?}"),
                ),
                Judgement::Wrong(why) => {
                    (Verdict::Unhealthy, reply, format!("wrong answer: {why}"))
                }
            }
        }
        Attempt::Failed(PoseError::Resolve(error @ ResolveError::Failed { .. })) => {
            (Verdict::Unhealthy, None, error.to_string())
        }
        Attempt::Failed(error) => (Verdict::Unresponsive, None, format!("no answer: {error}")),
        Attempt::TimedOut(timeout) => (
            Verdict::Unresponsive,
            None,
            format!("no answer within the {timeout:?} timeout"),
        ),
    };
    ProbeOutcome::new(
        verdict,
        ProbeDetail {
            challenge,
            reply,
            latency,
            reason,
        },
    )
}

fn round_to_millis(duration: Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// Runs probes: draws a challenge, poses it under the timeout, measures, judges.
///
/// Cheap to clone; holds no runtime. Time comes from the injected [`Timer`].
#[derive(Clone)]
pub struct ProbeRunner {
    timer: Arc<dyn Timer>,
    config: RunnerConfig,
}

impl std::fmt::Debug for ProbeRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeRunner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ProbeRunner {
    /// A runner with `config`, which is validated.
    pub fn new(timer: Arc<dyn Timer>, config: RunnerConfig) -> Result<ProbeRunner> {
        config.validate()?;
        Ok(ProbeRunner { timer, config })
    }

    /// The timing limits in use.
    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// Draws a fresh challenge from `probe` with `rng`, then poses and judges it.
    ///
    /// The challenge is drawn before the returned future is first polled, so the future does
    /// not borrow `rng` and is `Send`.
    pub fn run<'a>(
        &'a self,
        probe: &'a dyn Probe,
        rng: &mut dyn RngCore,
    ) -> impl Future<Output = ProbeOutcome> + Send + use<'a> {
        let challenge = probe.draw(rng);
        self.pose_and_judge(probe, challenge)
    }

    /// Poses a given challenge (for instance to repeat one) and judges it.
    ///
    /// Fails with [`Error::ChallengeMismatch`] when the challenge is not of the probe's kind.
    pub async fn run_challenge(
        &self,
        probe: &dyn Probe,
        challenge: Challenge,
    ) -> Result<ProbeOutcome> {
        if challenge.kind() != probe.kind() {
            return Err(Error::ChallengeMismatch {
                probe: probe.kind(),
                challenge: challenge.kind(),
            });
        }
        Ok(self.pose_and_judge(probe, challenge).await)
    }

    async fn pose_and_judge(&self, probe: &dyn Probe, challenge: Challenge) -> ProbeOutcome {
        let start = self.timer.now();
        let attempt = {
            let reply = probe.pose(&challenge);
            let deadline = self.timer.sleep(self.config.timeout);
            // `select` polls the reply first, so a reply ready at the deadline still counts.
            match select(reply, deadline).await {
                Either::Left((Ok(text), _)) => Attempt::Replied(text),
                Either::Left((Err(error), _)) => Attempt::Failed(error),
                Either::Right(((), _)) => Attempt::TimedOut(self.config.timeout),
            }
        };
        let latency = self.timer.now().saturating_duration_since(start);
        conclude(challenge, attempt, latency, &self.config)
    }
}
