//! [`HealthTracker`]: turns a stream of probe verdicts into the agent's [`CognitiveHealth`] and
//! a readiness bit, with hysteresis.
//!
//! # State machine
//!
//! Each verdict has a severity, and each health a level on the same scale:
//!
//! | verdict | severity | | health | level |
//! |---|---|---|---|---|
//! | Healthy | 0 | | HEALTHY | 0 |
//! | Degraded (slow) | 1 | | DEGRADED | 1 |
//! | Unhealthy (wrong) | 1 | | UNRESPONSIVE | 2 |
//! | Unresponsive | 2 | | UNKNOWN | — (no verdict yet) |
//!
//! A slow-but-correct answer and a wrong answer both mean "thinking, but impaired", so both
//! count toward DEGRADED; only a run of non-answers makes an agent UNRESPONSIVE.
//!
//! Health changes **only when the last N verdicts all agree that it should**:
//!
//! - **Worse** (needs `failure_threshold` F, default 3): when the last F verdicts all have a
//!   severity above the current level, health becomes the *least* severe level among them.
//!   Three Unresponsive in a row → UNRESPONSIVE; Unresponsive, Unhealthy, Unresponsive →
//!   DEGRADED (the agent did answer once).
//! - **Better** (needs `success_threshold` S, default 1): when the last S verdicts all have a
//!   severity below the current level, health becomes the *most* severe level among them. From
//!   UNRESPONSIVE, one wrong answer → DEGRADED (it answers again); one correct answer →
//!   HEALTHY.
//! - **From UNKNOWN**: S Healthy verdicts in a row → HEALTHY; F failing verdicts (severity ≥ 1)
//!   in a row → the least severe level among them. Anything else stays UNKNOWN.
//!
//! So with F > 1 a single bad verdict never moves a HEALTHY agent, and a verdict equal in
//! severity to the current level never changes anything. The tracker keeps four run lengths
//! (not a history), so its memory is constant whatever the thresholds.
//!
//! **Ready** (the readiness gate) is true in HEALTHY only — or in DEGRADED too when
//! [`TrackerConfig::degraded_is_ready`] is set, for slow models whose answers are still right.
//! UNKNOWN is never ready: an agent must prove it thinks before it gets work.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::outcome::{ProbeOutcome, Verdict};

/// The largest accepted threshold. Far beyond any sensible value; it only guards against a
/// typo turning the tracker into one that never moves.
pub const MAX_THRESHOLD: u32 = 1_000;

/// An agent's cognitive health, as written to the Agent status field `cognitiveHealth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "schemars",
    derive(schemars::JsonSchema),
    schemars(description = "Verdict of an agent's cognitive probes.")
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CognitiveHealth {
    /// Answers correctly and in time.
    Healthy,
    /// Answers, but slowly or wrongly.
    Degraded,
    /// Does not answer.
    Unresponsive,
    /// Not judged yet.
    #[default]
    Unknown,
}

impl CognitiveHealth {
    /// The status string (`HEALTHY`, `DEGRADED`, `UNRESPONSIVE`, `UNKNOWN`).
    pub fn as_str(self) -> &'static str {
        match self {
            CognitiveHealth::Healthy => "HEALTHY",
            CognitiveHealth::Degraded => "DEGRADED",
            CognitiveHealth::Unresponsive => "UNRESPONSIVE",
            CognitiveHealth::Unknown => "UNKNOWN",
        }
    }

    /// The level on the severity scale (`None` for UNKNOWN).
    fn level(self) -> Option<u8> {
        match self {
            CognitiveHealth::Healthy => Some(0),
            CognitiveHealth::Degraded => Some(1),
            CognitiveHealth::Unresponsive => Some(2),
            CognitiveHealth::Unknown => None,
        }
    }

    fn from_level(level: u8) -> CognitiveHealth {
        match level {
            0 => CognitiveHealth::Healthy,
            1 => CognitiveHealth::Degraded,
            _ => CognitiveHealth::Unresponsive,
        }
    }
}

impl fmt::Display for CognitiveHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The severity of a verdict on the scale of [`CognitiveHealth`] levels.
pub fn severity(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Healthy => 0,
        Verdict::Degraded | Verdict::Unhealthy => 1,
        Verdict::Unresponsive => 2,
    }
}

/// Thresholds of a [`HealthTracker`].
///
/// Non-exhaustive: build it with [`TrackerConfig::new`] or from `TrackerConfig::default()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TrackerConfig {
    /// Consecutive worse verdicts needed before health gets worse (default 3).
    pub failure_threshold: u32,
    /// Consecutive better verdicts needed before health gets better (default 1).
    pub success_threshold: u32,
    /// Whether a DEGRADED agent still passes the readiness gate (default false).
    pub degraded_is_ready: bool,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            failure_threshold: 3,
            success_threshold: 1,
            degraded_is_ready: false,
        }
    }
}

impl TrackerConfig {
    /// Thresholds `failure_threshold` and `success_threshold`, a DEGRADED agent not ready
    /// (checked by [`TrackerConfig::validate`], which [`HealthTracker::new`] runs).
    pub const fn new(failure_threshold: u32, success_threshold: u32) -> TrackerConfig {
        TrackerConfig {
            failure_threshold,
            success_threshold,
            degraded_is_ready: false,
        }
    }

    /// The same thresholds, with a DEGRADED agent ready (`true`) or not.
    pub const fn with_degraded_is_ready(mut self, degraded_is_ready: bool) -> TrackerConfig {
        self.degraded_is_ready = degraded_is_ready;
        self
    }

    /// Checks that both thresholds are between 1 and [`MAX_THRESHOLD`].
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("failure threshold", self.failure_threshold),
            ("success threshold", self.success_threshold),
        ] {
            if !(1..=MAX_THRESHOLD).contains(&value) {
                return Err(Error::InvalidThreshold {
                    name,
                    value,
                    max: MAX_THRESHOLD,
                });
            }
        }
        Ok(())
    }

    fn is_ready(&self, health: CognitiveHealth) -> bool {
        match health {
            CognitiveHealth::Healthy => true,
            CognitiveHealth::Degraded => self.degraded_is_ready,
            CognitiveHealth::Unresponsive | CognitiveHealth::Unknown => false,
        }
    }
}

/// A change of health, reported once, when it happens (for a Kubernetes Event and a condition
/// transition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    /// Health before.
    pub from: CognitiveHealth,
    /// Health after.
    pub to: CognitiveHealth,
    /// Readiness before.
    pub ready_before: bool,
    /// Readiness after.
    pub ready_after: bool,
    /// Why, for a person.
    pub reason: String,
}

impl Transition {
    /// Whether the readiness gate flips with this transition.
    pub fn readiness_changed(&self) -> bool {
        self.ready_before != self.ready_after
    }
}

/// Tracks one agent's cognitive health across probe runs. See the
/// [module documentation](self) for the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthTracker {
    config: TrackerConfig,
    health: CognitiveHealth,
    /// Consecutive verdicts of severity ≥ 1 (anything but Healthy).
    failing: u32,
    /// Consecutive verdicts of severity 2 (Unresponsive).
    silent: u32,
    /// Consecutive verdicts of severity 0 (Healthy).
    healthy: u32,
    /// Consecutive verdicts of severity ≤ 1 (an answer arrived).
    answering: u32,
    last: Option<Verdict>,
}

impl HealthTracker {
    /// A tracker in UNKNOWN with `config`, which is validated.
    pub fn new(config: TrackerConfig) -> Result<HealthTracker> {
        Self::resume(config, CognitiveHealth::Unknown)
    }

    /// A tracker that continues from a known `health` (for instance the `cognitiveHealth`
    /// read back from an Agent's status after an operator restart), with no verdicts seen.
    pub fn resume(config: TrackerConfig, health: CognitiveHealth) -> Result<HealthTracker> {
        config.validate()?;
        Ok(HealthTracker {
            config,
            health,
            failing: 0,
            silent: 0,
            healthy: 0,
            answering: 0,
            last: None,
        })
    }

    /// The thresholds in use.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// The current health.
    pub fn health(&self) -> CognitiveHealth {
        self.health
    }

    /// Whether the agent passes the readiness gate.
    pub fn ready(&self) -> bool {
        self.config.is_ready(self.health)
    }

    /// The latest verdict seen, if any.
    pub fn last_verdict(&self) -> Option<Verdict> {
        self.last
    }

    /// How many verdicts in a row were not Healthy.
    pub fn consecutive_failures(&self) -> u32 {
        self.failing
    }

    /// How many verdicts in a row were Healthy.
    pub fn consecutive_successes(&self) -> u32 {
        self.healthy
    }

    /// Records a probe outcome; returns the transition if health changed.
    pub fn observe(&mut self, outcome: &ProbeOutcome) -> Option<Transition> {
        self.step(outcome.verdict(), Some(outcome.reason()))
    }

    /// Records a bare verdict; returns the transition if health changed.
    pub fn observe_verdict(&mut self, verdict: Verdict) -> Option<Transition> {
        self.step(verdict, None)
    }

    /// Length of the current run of verdicts with severity ≥ `level` (1 or 2).
    fn run_at_least(&self, level: u8) -> u32 {
        if level >= 2 {
            self.silent
        } else {
            self.failing
        }
    }

    /// Length of the current run of verdicts with severity ≤ `level` (0 or 1).
    fn run_at_most(&self, level: u8) -> u32 {
        if level == 0 {
            self.healthy
        } else {
            self.answering
        }
    }

    /// The most severe level that the last F verdicts all reached, if they all exceed `above`.
    fn sustained_worse(&self, above: u8) -> Option<u8> {
        let f = self.config.failure_threshold;
        ((above + 1)..=2)
            .rev()
            .find(|&level| self.run_at_least(level) >= f)
    }

    /// The least severe level that the last S verdicts all stayed within, if they are all
    /// below `below`.
    fn sustained_better(&self, below: u8) -> Option<u8> {
        let s = self.config.success_threshold;
        (0..below).find(|&level| self.run_at_most(level) >= s)
    }

    fn step(&mut self, verdict: Verdict, reason: Option<&str>) -> Option<Transition> {
        let severity = severity(verdict);
        let bump = |run: u32, counts: bool| if counts { run.saturating_add(1) } else { 0 };
        self.failing = bump(self.failing, severity >= 1);
        self.silent = bump(self.silent, severity >= 2);
        self.healthy = bump(self.healthy, severity == 0);
        self.answering = bump(self.answering, severity <= 1);
        self.last = Some(verdict);

        let next = match self.health.level() {
            // From UNKNOWN: a Healthy streak (levels below 1, i.e. 0) or a failing streak.
            None => self.sustained_better(1).or_else(|| self.sustained_worse(0)),
            Some(current) if severity > current => self.sustained_worse(current),
            Some(current) if severity < current => self.sustained_better(current),
            Some(_) => None,
        }
        .map(CognitiveHealth::from_level)?;

        let from = self.health;
        self.health = next;
        Some(Transition {
            from,
            to: next,
            ready_before: self.config.is_ready(from),
            ready_after: self.config.is_ready(next),
            reason: self.explain(from, next, reason),
        })
    }

    fn explain(&self, from: CognitiveHealth, to: CognitiveHealth, latest: Option<&str>) -> String {
        let why = match to {
            CognitiveHealth::Healthy => format!("{} healthy probes in a row", self.healthy),
            CognitiveHealth::Unresponsive => {
                format!("{} probes in a row got no answer", self.silent)
            }
            CognitiveHealth::Degraded if from != CognitiveHealth::Unresponsive => format!(
                "{} probes in a row were slow, wrong or unanswered",
                self.failing
            ),
            CognitiveHealth::Degraded => format!(
                "answering again ({} answers in a row), but not yet correctly and in time",
                self.answering
            ),
            CognitiveHealth::Unknown => "no verdict yet".to_owned(),
        };
        match latest {
            Some(latest) => format!("{why}; latest: {latest}"),
            None => why,
        }
    }
}
