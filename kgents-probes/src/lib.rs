//! K8-gents cognitive probes: LLM health judged by exact answers, with hysteresis.
//!
//! HTTP 200 is not health. A probe poses a fresh random challenge to a model and checks the
//! reply **exactly** (substring checks passed "UNHEALTHY" as healthy in the first
//! implementation); a tracker turns the verdicts into the agent's cognitive health without
//! flapping on one bad answer. No I/O: the model, the path resolver and time are injected.
//! With the `schemars` feature, [`CognitiveHealth`], [`ModelProbeKind`] and [`RecordedOutcome`]
//! implement `schemars::JsonSchema` (the Agent resource of `kgents-crds` uses them).
//!
//! | module | what it holds |
//! |---|---|
//! | [`client`] | the [`LlmClient`] trait, [`CompletionRequest`], [`Completion`], [`LlmError`] |
//! | [`challenge`] | [`Challenge`]s, how they are drawn, prompted and judged (the exact-match rules) |
//! | [`probe`] | the [`Probe`] trait and the [`EchoProbe`], [`ReasoningProbe`], [`JsonProbe`] |
//! | [`path`] | the [`PathResolver`] trait and the [`PathProbe`] over AGENTESE paths |
//! | [`timer`] | the injected [`Timer`] (monotonic now + sleep), re-exported from `kgents-core` |
//! | [`runner`] | the [`ProbeRunner`] (timeout, latency budget) and the pure [`conclude`] |
//! | [`outcome`] | [`ProbeOutcome`], [`Verdict`], the truncated [`Reply`], the status [`ProbeRecord`] |
//! | [`tracker`] | [`HealthTracker`], [`CognitiveHealth`], [`Transition`] — the hysteresis state machine |
//! | [`schedule`] | when probes run: deterministic jitter, the global call [`Budget`], the fair [`Scheduler`] |
//! | [`verdict`] | tracker → readiness, when status is worth a write, pod gate and safe mode, restarts, Events |
//! | [`status`] | [`ModelProbeKind`] and [`RecordedOutcome`]: the probe vocabulary of an Agent's spec and status |
//! | [`error`] | the crate's [`Error`] and [`Result`] |
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//!
//! use async_trait::async_trait;
//! use futures::future::BoxFuture;
//! use kgents_probes::{
//!     Completion, CompletionRequest, EchoProbe, HealthTracker, LlmClient, LlmError,
//!     CognitiveHealth, ProbeRunner, RunnerConfig, Timer, TrackerConfig, Verdict,
//! };
//! use rand::{SeedableRng, rngs::StdRng};
//!
//! /// A model that echoes the last word of the prompt.
//! struct Parrot;
//!
//! #[async_trait]
//! impl LlmClient for Parrot {
//!     async fn complete(&self, request: &CompletionRequest) -> Result<Completion, LlmError> {
//!         let word = request.user.split_whitespace().last().unwrap_or_default();
//!         Ok(Completion {
//!             text: format!("{word}\n"),
//!             input_tokens: None,
//!             output_tokens: None,
//!             latency: Duration::from_millis(3),
//!         })
//!     }
//! }
//!
//! /// Wall-clock time; the sleep never fires, which is fine for a model that always answers.
//! struct WallClock;
//!
//! impl Timer for WallClock {
//!     fn now(&self) -> Instant {
//!         Instant::now()
//!     }
//!     fn sleep(&self, _: Duration) -> BoxFuture<'static, ()> {
//!         Box::pin(futures::future::pending())
//!     }
//! }
//!
//! let runner = ProbeRunner::new(Arc::new(WallClock), RunnerConfig::default())?;
//! let probe = EchoProbe::new(Arc::new(Parrot));
//! let mut rng = StdRng::seed_from_u64(7);
//! let mut tracker = HealthTracker::new(TrackerConfig::default())?;
//!
//! let outcome = futures::executor::block_on(runner.run(&probe, &mut rng));
//! assert_eq!(outcome.verdict(), Verdict::Healthy);
//! let transition = tracker.observe(&outcome).expect("UNKNOWN -> HEALTHY is a change");
//! assert_eq!(transition.to, CognitiveHealth::Healthy);
//! assert!(tracker.ready());
//! # Ok::<(), kgents_probes::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod challenge;
pub mod client;
pub mod error;
pub mod outcome;
pub mod path;
pub mod probe;
pub mod runner;
pub mod schedule;
pub mod status;
pub mod timer;
pub mod tracker;
pub mod verdict;

#[cfg(test)]
mod tests;

pub use challenge::{Challenge, CompletionSettings, Judgement, Operation, ProbeKind};
pub use client::{Completion, CompletionRequest, LlmClient, LlmError};
pub use error::{Error, Result};
pub use outcome::{MAX_REPLY_BYTES, ProbeDetail, ProbeOutcome, ProbeRecord, Reply, Verdict};
pub use path::{PathProbe, PathResolver, ResolveError};
pub use probe::{EchoProbe, JsonProbe, PoseError, Probe, ReasoningProbe};
pub use runner::{
    Attempt, DEFAULT_LATENCY_BUDGET, DEFAULT_TIMEOUT, ProbeRunner, RunnerConfig, conclude,
};
pub use schedule::{Budget, Scheduler};
pub use status::{ModelProbeKind, RecordedOutcome};
pub use timer::Timer;
pub use tracker::{CognitiveHealth, HealthTracker, TrackerConfig, Transition};
