//! The runner: watches Agents and their pods, probes COGNITIVE_PROBE agents under the global
//! budget, and writes what the verdicts say (status, pod readiness gates, safe mode, restarts,
//! Events).
//!
//! # Concurrency
//!
//! One task owns all per-agent state (trackers, schedule, model clients) and is the only
//! writer; it selects over the Agent watch, the pod watch, finished probe rounds and the
//! schedule's next wake-up, so no state is shared and no lock is taken. Each probe round
//! (reading the Secret when due, building the client when the model changed, one model call)
//! runs on a task of its own in a [`JoinSet`] bounded by the scheduler's concurrency limit, and
//! hands its result back to the owner. Writes to the API server happen on the owner task,
//! one agent at a time, each under the operator's API timeout; they are rare (transitions,
//! new pods, a status refresh every few minutes), so they never hold back probes for long.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kgents_crds::Agent;
use kgents_crds::agent::{self as crd, AgentSpec, HealthSpec};
use kgents_llm::SharedTransport;
use kgents_probes::{
    Completion, CompletionRequest, EchoProbe, HealthTracker, JsonProbe, LlmClient, LlmError, Probe,
    ProbeOutcome, ProbeRunner, ReasoningProbe, RunnerConfig, TrackerConfig, Transition, Verdict,
};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;

use super::model::{self, ConfigProblem, SecretRead};
use super::verdict::{self, Observation, Remedy};
use super::{CONTROLLER, is_cognitive};
use crate::shared::AgentEvent;
use crate::workload::AGENT_LABEL;
use crate::{Context, Result};
use kgents_probes::schedule::{self, Scheduler};

/// How often the API key is read again from its Secret: a rotated key is picked up within
/// this time, and at once after the provider rejected the key. One Secret read per agent per
/// five minutes keeps a thousand agents at a few reads a second.
pub const SECRET_REFRESH: Duration = Duration::from_secs(300);

/// An agent's key: `namespace/name`.
pub type Key = String;

fn key_of(namespace: &str, name: &str) -> Key {
    format!("{namespace}/{name}")
}

fn fingerprint<T: serde::Serialize>(value: &T, extra: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(value)
        .unwrap_or_default()
        .hash(&mut hasher);
    extra.hash(&mut hasher);
    hasher.finish()
}

/// Wraps a model client to remember why its last call failed: the failure metric's label, and
/// a missing model, which is reported as a configuration problem rather than as a sick model.
struct Recording {
    inner: Arc<dyn LlmClient>,
    failure: Mutex<Option<LlmError>>,
}

#[async_trait]
impl LlmClient for Recording {
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, LlmError> {
        let result = self.inner.complete(request).await;
        if let Err(error) = &result {
            *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.clone());
        }
        result
    }
}

/// The failure metric's label for a model error.
fn error_label(error: &LlmError) -> &'static str {
    match error {
        LlmError::Timeout { .. } => "timeout",
        LlmError::Transport { .. } => "transport",
        LlmError::RateLimited { .. } => "rate_limited",
        LlmError::Auth { .. } => "auth",
        LlmError::Provider { .. } => "provider",
        LlmError::ModelNotFound { .. } => "model_not_found",
        LlmError::BadResponse { .. } => "bad_response",
        // A kind of failure added to kgents-probes after this was written.
        _ => "other",
    }
}

/// A built model client and what it was built from.
#[derive(Clone)]
pub struct CachedClient {
    /// Hash of `spec.model` and the timeout.
    model: u64,
    /// Hash of the above and the Secret's resourceVersion.
    built_from: u64,
    client: Arc<dyn LlmClient>,
    secret_read_at: Instant,
}

/// The probe timings of a health spec: the timeout, and half of it as the latency budget.
pub fn runner_config(health: &HealthSpec) -> RunnerConfig {
    let timeout = Duration::from_secs(u64::try_from(health.timeout_seconds.max(1)).unwrap_or(1));
    RunnerConfig::new(timeout, timeout / 2)
}

/// The tracker thresholds of a health spec, clamped into the accepted range.
pub fn tracker_config(health: &HealthSpec) -> TrackerConfig {
    let clamp = |v: i32| u32::try_from(v.clamp(1, 1_000)).unwrap_or(1);
    TrackerConfig::new(
        clamp(health.unhealthy_threshold),
        clamp(health.healthy_threshold),
    )
}

fn interval_of(health: &HealthSpec) -> Duration {
    Duration::from_secs(u64::try_from(health.interval_seconds.max(1)).unwrap_or(30))
}

/// The probe of round `round`: the configured probes take turns.
pub fn probe_of_round(health: &HealthSpec, round: u64) -> crd::ProbeKind {
    if health.probes.is_empty() {
        return crd::ProbeKind::Echo;
    }
    let index = usize::try_from(round % health.probes.len() as u64).unwrap_or(0);
    health.probes[index]
}

/// What the runner keeps per probed agent.
struct AgentState {
    namespace: String,
    name: String,
    uid: String,
    health_spec: HealthSpec,
    model: u64,
    tracker: HealthTracker,
    round: u64,
    last_probe: Option<crd::ProbeRecord>,
    problem: Option<ConfigProblem>,
    client: Option<CachedClient>,
    last_write: Option<Timestamp>,
    restarted_in_episode: bool,
    safe_mode: bool,
}

impl AgentState {
    fn observation(&self) -> Observation<'_> {
        Observation {
            tracker: &self.tracker,
            last_probe: self.last_probe.as_ref(),
            problem: self.problem.as_ref(),
        }
    }

    fn object_ref(&self) -> k8s_openapi::api::core::v1::ObjectReference {
        k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("kgents.io/v1".to_owned()),
            kind: Some("Agent".to_owned()),
            name: Some(self.name.clone()),
            namespace: Some(self.namespace.clone()),
            uid: Some(self.uid.clone()),
            ..Default::default()
        }
    }
}

/// What a probe round found.
pub enum RoundOutcome {
    /// The model was called; the probe concluded. `failure` is the client error kind, if any.
    Probed {
        /// The outcome.
        outcome: ProbeOutcome,
        /// Why the call failed, when it did (`timeout`, `transport`, `auth`, ...).
        failure: Option<&'static str>,
    },
    /// The configuration is wrong; no call was made.
    Problem(ConfigProblem),
    /// The model was called and the provider said the configuration is wrong (the model named
    /// in `spec.model.name` does not exist). Not a health verdict: the tracker is not fed.
    Refused(ConfigProblem),
    /// Reading the Secret failed for a reason that may pass (API server unreachable, ...).
    Retry(String),
}

/// A finished round, handed back to the owner task.
pub struct RoundResult {
    key: Key,
    uid: String,
    kind: crd::ProbeKind,
    client: Option<CachedClient>,
    outcome: RoundOutcome,
}

/// Everything a round task needs.
struct RoundJob {
    ctx: Arc<Context>,
    key: Key,
    namespace: String,
    uid: String,
    round: u64,
    spec: AgentSpec,
    health: HealthSpec,
    model: u64,
    cached: Option<CachedClient>,
    reread_secret: bool,
    /// The connection pool every agent's client shares, or why it could not be built.
    transport: Result<SharedTransport, ConfigProblem>,
}

impl RoundJob {
    async fn run(self) -> RoundResult {
        let kind = probe_of_round(&self.health, self.round);
        let (client, outcome) = self.probe(kind).await;
        RoundResult {
            key: self.key,
            uid: self.uid,
            kind,
            client,
            outcome,
        }
    }

    /// Finds or builds the client, then makes the one call.
    async fn probe(&self, kind: crd::ProbeKind) -> (Option<CachedClient>, RoundOutcome) {
        let config = runner_config(&self.health);
        let reusable = self
            .cached
            .as_ref()
            .filter(|c| c.model == self.model)
            .cloned();
        let cached = match (model::secret_ref(&self.spec), reusable) {
            (None, Some(cached)) => cached,
            (Some(_), Some(cached)) if !self.reread_secret => cached,
            (reference, reusable) => {
                let secret = match reference {
                    None => SecretRead::NotReferenced,
                    Some((name, _)) => {
                        match model::read_secret(&self.ctx, &self.namespace, name).await {
                            Ok(read) => read,
                            Err(e) => {
                                return (
                                    self.cached.clone(),
                                    RoundOutcome::Retry(format!(
                                        "could not read Secret {}/{name}: {e}",
                                        self.namespace
                                    )),
                                );
                            }
                        }
                    }
                };
                let version = match &secret {
                    SecretRead::Found(s) => s.metadata.resource_version.clone().unwrap_or_default(),
                    _ => String::new(),
                };
                let built_from = fingerprint(&self.model, &version);
                match reusable.filter(|c| c.built_from == built_from) {
                    Some(mut same) => {
                        same.secret_read_at = Instant::now();
                        same
                    }
                    None => {
                        let built = model::model_config(&self.spec, &self.namespace, &secret)
                            .and_then(|c| {
                                let shared = self.transport.as_ref().map_err(Clone::clone)?;
                                model::build(&c, config.timeout, shared)
                            });
                        match built {
                            Ok(client) => CachedClient {
                                model: self.model,
                                built_from,
                                client,
                                secret_read_at: Instant::now(),
                            },
                            Err(problem) => return (None, RoundOutcome::Problem(problem)),
                        }
                    }
                }
            }
        };
        let recording = Arc::new(Recording {
            inner: cached.client.clone(),
            failure: Mutex::new(None),
        });
        let client: Arc<dyn LlmClient> = recording.clone();
        let probe: Box<dyn Probe> = match kind {
            crd::ProbeKind::Echo => Box::new(EchoProbe::new(client)),
            crd::ProbeKind::Reasoning => Box::new(ReasoningProbe::new(client)),
            crd::ProbeKind::Json => Box::new(JsonProbe::new(client)),
        };
        let runner = match ProbeRunner::new(Arc::new(kgents_logos::TokioTimer), config) {
            Ok(runner) => runner,
            Err(e) => {
                return (
                    Some(cached),
                    RoundOutcome::Problem(ConfigProblem {
                        reason: "InvalidTimeout",
                        field: "spec.health.timeoutSeconds".to_owned(),
                        message: format!("spec.health.timeoutSeconds: {e}"),
                    }),
                );
            }
        };
        let mut rng = StdRng::seed_from_u64(seed(&self.uid, self.round));
        let outcome = runner.run(probe.as_ref(), &mut rng).await;
        let error = recording
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(LlmError::ModelNotFound { message, .. }) = &error {
            return (
                Some(cached),
                RoundOutcome::Refused(ConfigProblem {
                    reason: "ModelNotFound",
                    field: "spec.model.name".to_owned(),
                    message: format!("spec.model.name: {message}"),
                }),
            );
        }
        let failure = error.as_ref().map(error_label);
        (Some(cached), RoundOutcome::Probed { outcome, failure })
    }
}

/// A seed no model can guess: the agent, the round and the wall-clock nanoseconds.
fn seed(uid: &str, round: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (uid, round, nanos).hash(&mut hasher);
    hasher.finish()
}

/// The failure label of a round's outcome, `None` when it passed.
pub fn failure_label(
    outcome: &ProbeOutcome,
    failure: Option<&'static str>,
) -> Option<&'static str> {
    match outcome.verdict() {
        Verdict::Healthy => None,
        Verdict::Degraded => Some("slow"),
        Verdict::Unhealthy => Some("wrong_answer"),
        Verdict::Unresponsive => Some(failure.unwrap_or("timeout")),
    }
}

/// The probe runner's state and its writes. Driven by [`run`]; tests drive it directly over a
/// mocked API server.
pub struct Runner {
    ctx: Arc<Context>,
    agents: Store<Agent>,
    pods: Store<Pod>,
    states: HashMap<Key, AgentState>,
    scheduler: Scheduler<Key>,
    epoch: Instant,
    field_manager: String,
    /// One connection pool and TLS configuration for every agent's model client.
    transport: Result<SharedTransport, ConfigProblem>,
}

impl Runner {
    /// A runner over the given caches.
    pub fn new(ctx: Arc<Context>, agents: Store<Agent>, pods: Store<Pod>) -> Self {
        let probes = &ctx.config.probes;
        let scheduler = Scheduler::new(
            probes.calls_per_minute,
            probes.max_concurrent,
            Duration::ZERO,
        );
        let field_manager = super::field_manager(&ctx.config.field_manager);
        Self {
            ctx,
            agents,
            pods,
            states: HashMap::new(),
            scheduler,
            epoch: Instant::now(),
            field_manager,
            transport: model::shared_transport(),
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// The keys of the agents being probed.
    #[cfg(test)]
    pub fn probed(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self.states.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Takes in an Agent as the watch reports it: starts probing a new COGNITIVE_PROBE agent,
    /// follows spec changes, stops for agents that are no longer probed.
    pub async fn agent_applied(&mut self, agent: &Agent) {
        let (Some(namespace), Some(name), Some(uid)) = (
            agent.metadata.namespace.as_deref(),
            agent.metadata.name.as_deref(),
            agent.metadata.uid.as_deref(),
        ) else {
            return;
        };
        let key = key_of(namespace, name);
        let health = agent.spec.health.as_ref();
        let wanted = is_cognitive(&agent.spec) && agent.metadata.deletion_timestamp.is_none();
        let Some(health) = health.filter(|_| wanted) else {
            let switched = agent.metadata.deletion_timestamp.is_none()
                && agent
                    .status
                    .as_ref()
                    .is_some_and(|s| s.cognitive_health.is_some());
            self.forget(&key);
            if switched {
                self.clear_status(namespace, name).await;
            }
            return;
        };
        if self.states.get(&key).is_some_and(|s| s.uid != uid) {
            self.forget(&key);
        }
        let model = fingerprint(&agent.spec.model, &health.timeout_seconds.to_string());
        let now = self.now();
        match self.states.get_mut(&key) {
            Some(state) => {
                if state.health_spec != *health {
                    if let Ok(tracker) =
                        HealthTracker::resume(tracker_config(health), state.tracker.health())
                    {
                        state.tracker = tracker;
                    }
                    state.health_spec = health.clone();
                }
                if state.model != model {
                    // A new model or timeout: judge it soon rather than a whole interval later.
                    state.model = model;
                    state.client = None;
                    self.scheduler.reschedule(&key, now);
                }
                // Pods may have to follow (e.g. degradeToSafemode was switched).
                self.sync_pods(&key).await;
            }
            None => {
                let observed = agent.status.as_ref();
                let resumed = observed
                    .and_then(|s| s.cognitive_health)
                    .unwrap_or_default();
                let Ok(tracker) = HealthTracker::resume(tracker_config(health), resumed) else {
                    return;
                };
                self.states.insert(
                    key.clone(),
                    AgentState {
                        namespace: namespace.to_owned(),
                        name: name.to_owned(),
                        uid: uid.to_owned(),
                        health_spec: health.clone(),
                        model,
                        tracker,
                        round: 0,
                        last_probe: observed.and_then(|s| s.last_probe.clone()),
                        problem: None,
                        client: None,
                        last_write: None,
                        restarted_in_episode: resumed
                            == kgents_probes::CognitiveHealth::Unresponsive,
                        safe_mode: false,
                    },
                );
                self.scheduler.track(
                    key.clone(),
                    schedule::first_due(now, interval_of(health), uid),
                );
                self.ctx
                    .metrics
                    .observe_cognitive_health(&key, resumed.as_str());
                self.publish(&key, None, false).await;
            }
        }
    }

    /// Stops probing an agent (deleted, or no longer COGNITIVE_PROBE).
    pub fn forget(&mut self, key: &str) {
        let key = key.to_owned();
        if self.states.remove(&key).is_some() {
            self.scheduler.forget(&key);
            self.ctx.metrics.forget_cognitive_health(&key);
        }
    }

    /// After a re-list: forgets agents the cache no longer holds.
    pub fn agents_relisted(&mut self) {
        let present: std::collections::HashSet<Key> = self
            .agents
            .state()
            .iter()
            .map(|a| key_of(&a.namespace().unwrap_or_default(), &a.name_any()))
            .collect();
        let gone: Vec<Key> = self
            .states
            .keys()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.forget(&key);
        }
    }

    /// Brings a pod of a probed agent in line (a new pod gets its gate at once).
    pub async fn pod_applied(&mut self, pod: &Pod) {
        let (Some(namespace), Some(agent)) = (
            pod.metadata.namespace.as_deref(),
            pod.labels().get(AGENT_LABEL),
        ) else {
            return;
        };
        let key = key_of(namespace, agent);
        let Some(state) = self.states.get(&key) else {
            return;
        };
        let wants = verdict::pod_wants(&state.observation(), state.health_spec.degrade_to_safemode);
        let now = self.ctx.clock.now();
        self.patch_pod(pod, &verdict::pod_patches(pod, &wants, now))
            .await;
    }

    fn pods_of(&self, key: &str) -> Vec<Arc<Pod>> {
        let Some(state) = self.states.get(key) else {
            return Vec::new();
        };
        self.pods
            .state()
            .into_iter()
            .filter(|p| {
                p.metadata.namespace.as_deref() == Some(state.namespace.as_str())
                    && p.labels().get(AGENT_LABEL) == Some(&state.name)
            })
            .collect()
    }

    async fn sync_pods(&mut self, key: &str) {
        let Some(state) = self.states.get(key) else {
            return;
        };
        let wants = verdict::pod_wants(&state.observation(), state.health_spec.degrade_to_safemode);
        if wants.safe_mode != state.safe_mode {
            let (reason, note) = if wants.safe_mode {
                (
                    "SafeModeEntered",
                    format!(
                        "UNRESPONSIVE with degradeToSafemode: pods annotated {}=\"true\"",
                        super::SAFE_MODE_ANNOTATION
                    ),
                )
            } else {
                (
                    "SafeModeLeft",
                    format!(
                        "safe mode over: {} removed from the pods",
                        super::SAFE_MODE_ANNOTATION
                    ),
                )
            };
            let type_ = if wants.safe_mode {
                EventType::Warning
            } else {
                EventType::Normal
            };
            let regarding = state.object_ref();
            self.ctx
                .event(&regarding, type_, reason, "SafeMode", note)
                .await;
            if let Some(state) = self.states.get_mut(key) {
                state.safe_mode = wants.safe_mode;
            }
        }
        let now = self.ctx.clock.now();
        for pod in self.pods_of(key) {
            self.patch_pod(&pod, &verdict::pod_patches(&pod, &wants, now))
                .await;
        }
    }

    async fn patch_pod(&self, pod: &Pod, patches: &verdict::PodPatches) {
        if patches.is_empty() || !self.ctx.leader.is_leader() {
            return;
        }
        let (Some(namespace), Some(name)) = (
            pod.metadata.namespace.as_deref(),
            pod.metadata.name.as_deref(),
        ) else {
            return;
        };
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), namespace);
        let params = PatchParams::default();
        if let Some(gate) = &patches.gate
            && let Err(e) = self
                .ctx
                .api(
                    "patch pod readiness gate",
                    api.patch_status(name, &params, &Patch::Strategic(gate)),
                )
                .await
        {
            tracing::warn!(pod = %format!("{namespace}/{name}"), error = %e, "could not set the cognitive readiness gate");
        }
        if let Some(annotation) = &patches.safe_mode
            && let Err(e) = self
                .ctx
                .api(
                    "patch pod safe mode",
                    api.patch(name, &params, &Patch::Merge(annotation)),
                )
                .await
        {
            tracing::warn!(pod = %format!("{namespace}/{name}"), error = %e, "could not set the safe-mode annotation");
        }
    }

    /// Starts every round that is due and allowed; returns how many started.
    pub fn start_due(
        &mut self,
        jobs: &mut JoinSet<RoundResult>,
        ids: &mut HashMap<Id, Key>,
    ) -> usize {
        let now = self.now();
        let started = self.scheduler.start_due(now);
        if started.newly_waiting_for_budget > 0 {
            self.ctx
                .metrics
                .probe_budget_waited(started.newly_waiting_for_budget);
        }
        let count = started.keys.len();
        for key in started.keys {
            let Some(state) = self.states.get(&key) else {
                self.scheduler.finish(&key, now);
                continue;
            };
            let Some(agent) = self
                .agents
                .get(&ObjectRef::new(&state.name).within(&state.namespace))
            else {
                self.scheduler
                    .finish(&key, now + interval_of(&state.health_spec));
                continue;
            };
            let reread_secret = state
                .client
                .as_ref()
                .is_none_or(|c| c.secret_read_at.elapsed() >= SECRET_REFRESH);
            let job = RoundJob {
                ctx: self.ctx.clone(),
                key: key.clone(),
                namespace: state.namespace.clone(),
                uid: state.uid.clone(),
                round: state.round,
                spec: agent.spec.clone(),
                health: state.health_spec.clone(),
                model: state.model,
                cached: state.client.clone(),
                reread_secret,
                transport: self.transport.clone(),
            };
            let handle = jobs.spawn(job.run());
            ids.insert(handle.id(), key);
        }
        count
    }

    /// When the next round may start, if any is queued and a slot is free.
    pub fn next_wake(&mut self) -> Option<Instant> {
        let now = self.now();
        self.scheduler.next_wake(now).map(|d| self.epoch + d)
    }

    /// A round task ended without a result (it panicked or was cancelled): schedule the agent
    /// again after its interval.
    pub fn round_lost(&mut self, key: &str) {
        let now = self.now();
        let key = key.to_owned();
        let interval = self
            .states
            .get(&key)
            .map_or(Duration::from_secs(30), |s| interval_of(&s.health_spec));
        self.scheduler.finish(&key, now + interval);
    }

    /// Takes in a finished round: feeds the tracker, reports, writes what changed, schedules
    /// the next round.
    pub async fn round_finished(&mut self, result: RoundResult) {
        let now = self.now();
        let at = self.ctx.clock.now();
        let key = result.key.clone();
        let Some(state) = self.states.get_mut(&key).filter(|s| s.uid == result.uid) else {
            self.scheduler.finish(&key, now);
            return;
        };
        let interval = interval_of(&state.health_spec);
        let next = schedule::next_due(now, interval, &state.uid, state.round);
        state.round = state.round.wrapping_add(1);
        self.scheduler.finish(&key, next);
        let metrics = self.ctx.metrics.clone();
        let (transition, new_problem) = match result.outcome {
            RoundOutcome::Probed { outcome, failure } => {
                metrics.probe_called(verdict::kind_name(result.kind));
                if let Some(label) = failure_label(&outcome, failure) {
                    metrics.probe_failed(label);
                }
                if failure == Some("auth") {
                    // Re-read the key next time: it may have been rotated.
                    state.client = None;
                } else {
                    state.client = result.client;
                }
                state.problem = None;
                state.last_probe = Some(verdict::record(&outcome, result.kind, at));
                (state.tracker.observe(&outcome), false)
            }
            RoundOutcome::Problem(problem) => {
                metrics.probe_failed("config");
                state.client = None;
                let new = state.problem.as_ref() != Some(&problem);
                state.problem = Some(problem);
                (None, new)
            }
            RoundOutcome::Refused(problem) => {
                metrics.probe_called(verdict::kind_name(result.kind));
                metrics.probe_failed("model_not_found");
                // The client is sound; the next round asks again, for the model may appear
                // (an Ollama pull, a deployment rolled out on a vLLM server).
                state.client = result.client;
                // The provider's words carry a request id that differs on every call: only a
                // change of reason or field is news worth another Event.
                let new = state
                    .problem
                    .as_ref()
                    .is_none_or(|p| p.reason != problem.reason || p.field != problem.field);
                state.problem = Some(problem);
                (None, new)
            }
            RoundOutcome::Retry(message) => {
                tracing::warn!(agent = %key, %message, "probe round skipped; retrying at the next round");
                return;
            }
        };
        if let Some(t) = &transition {
            let (remedy, restarted) = verdict::remedy(
                t,
                state.health_spec.degrade_to_safemode,
                state.restarted_in_episode,
            );
            state.restarted_in_episode = restarted;
            metrics.observe_cognitive_health(&key, t.to.as_str());
            self.publish(&key, Some(t.clone()), new_problem).await;
            if remedy == Remedy::RestartPods {
                self.restart_pods(&key).await;
            }
        } else {
            self.publish(&key, None, new_problem).await;
        }
    }

    /// Writes the status when the rule says so, reports a transition or a new problem with an
    /// Event, and brings the pods in line.
    async fn publish(&mut self, key: &str, transition: Option<Transition>, new_problem: bool) {
        let Some(state) = self.states.get(key) else {
            return;
        };
        let regarding = state.object_ref();
        if let Some(t) = &transition {
            let (type_, reason, note) = verdict::transition_event(t);
            let action = verdict::event_action(&note);
            self.ctx
                .event(&regarding, type_, reason, &action, note)
                .await;
        }
        if new_problem && let Some(problem) = &state.problem {
            self.ctx
                .event(
                    &regarding,
                    EventType::Warning,
                    problem.reason,
                    &verdict::event_action(&problem.message),
                    problem.message.clone(),
                )
                .await;
        }
        self.write_status(key).await;
        self.sync_pods(key).await;
    }

    async fn write_status(&mut self, key: &str) {
        let Some(state) = self.states.get(key) else {
            return;
        };
        let agent = self
            .agents
            .get(&ObjectRef::new(&state.name).within(&state.namespace));
        let observed = agent.as_ref().and_then(|a| a.status.as_ref());
        let desired = verdict::desired(&state.observation());
        let now = self.ctx.clock.now();
        let Some(reason) = verdict::should_write(
            observed,
            &desired,
            state.last_write,
            now,
            self.ctx.config.probes.status_refresh,
        ) else {
            return;
        };
        if !self.ctx.leader.is_leader() {
            return;
        }
        let generation = agent.as_ref().and_then(|a| a.metadata.generation);
        let body = serde_json::json!({
            "apiVersion": "kgents.io/v1",
            "kind": "Agent",
            "status": verdict::status_body(&desired, observed, generation, now),
        });
        let api: Api<Agent> = Api::namespaced(self.ctx.client.clone(), &state.namespace);
        let params = PatchParams::apply(&self.field_manager).force();
        let name = state.name.clone();
        match self
            .ctx
            .api(
                "apply agent cognitive status",
                api.patch_status(&name, &params, &Patch::Apply(&body)),
            )
            .await
        {
            Ok(_) => {
                self.ctx.metrics.probe_status_written(reason.as_str());
                if let Some(state) = self.states.get_mut(key) {
                    state.last_write = Some(now);
                }
            }
            Err(e) => {
                self.ctx
                    .metrics
                    .reconcile_failed(CONTROLLER, e.metric_label());
                tracing::warn!(agent = %key, error = %e, "could not write the cognitive status");
            }
        }
    }

    /// Releases the runner's status fields of an agent that is no longer probed (switched to
    /// HTTP): an apply of an empty status under the runner's field manager removes exactly
    /// the fields it owned, so no stale verdict stays behind.
    async fn clear_status(&self, namespace: &str, name: &str) {
        if !self.ctx.leader.is_leader() {
            return;
        }
        let body = serde_json::json!({
            "apiVersion": "kgents.io/v1",
            "kind": "Agent",
            "status": {},
        });
        let api: Api<Agent> = Api::namespaced(self.ctx.client.clone(), namespace);
        let params = PatchParams::apply(&self.field_manager).force();
        if let Err(e) = self
            .ctx
            .api(
                "release agent cognitive status",
                api.patch_status(name, &params, &Patch::Apply(&body)),
            )
            .await
        {
            tracing::warn!(agent = %key_of(namespace, name), error = %e, "could not remove the cognitive status");
        }
    }

    async fn restart_pods(&mut self, key: &str) {
        let Some(state) = self.states.get(key) else {
            return;
        };
        if !self.ctx.leader.is_leader() {
            return;
        }
        let regarding = state.object_ref();
        let namespace = state.namespace.clone();
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &namespace);
        let mut deleted = Vec::new();
        for pod in self.pods_of(key) {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let name = pod.name_any();
            match self
                .ctx
                .api(
                    "delete unresponsive pod",
                    api.delete(&name, &DeleteParams::default()),
                )
                .await
            {
                Ok(_) => deleted.push(name),
                Err(e) => {
                    tracing::warn!(pod = %format!("{namespace}/{name}"), error = %e, "could not restart an unresponsive agent's pod")
                }
            }
        }
        if !deleted.is_empty() {
            self.ctx
                .event(
                    &regarding,
                    EventType::Warning,
                    "PodsRestarted",
                    "Restart",
                    format!(
                        "UNRESPONSIVE and degradeToSafemode is false: deleted pod(s) {} so their Deployment recreates them (once per UNRESPONSIVE episode)",
                        deleted.join(", ")
                    ),
                )
                .await;
        }
    }
}

/// The label selector of the pods the runner watches: every agent pod the operator manages.
pub use crate::workload::pod_selector;

/// Runs the cognitive probe runner until `shutdown` resolves. Started by
/// [`crate::run::run`] as the controller [`CONTROLLER`] while this replica leads; does nothing
/// but wait when [`crate::ProbeConfig::enabled`] is false.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + 'static) {
    let mut shutdown = Box::pin(shutdown);
    if !ctx.config.probes.enabled {
        tracing::info!("cognitive probes are disabled");
        shutdown.await;
        return;
    }
    // Agents come from the process's shared watch.
    let agents = ctx.watches.agents.store();
    let mut agent_events = ctx.watches.agents.subscribe().boxed();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let mut pod_events = watcher(
        ctx.scoped::<Pod>(),
        watcher::Config::default()
            .labels(&pod_selector())
            .any_semantic(),
    )
    .default_backoff()
    .modify(|p: &mut Pod| {
        // Only labels, annotations, the deletion mark and status conditions are read.
        p.metadata.managed_fields = None;
        p.spec = None;
    })
    .reflect(pod_writer)
    .boxed();

    let mut runner = Runner::new(ctx.clone(), agents, pods);
    let mut jobs: JoinSet<RoundResult> = JoinSet::new();
    let mut ids: HashMap<Id, Key> = HashMap::new();
    loop {
        let wake = runner.next_wake();
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = jobs.join_next_with_id(), if !jobs.is_empty() => match done {
                Ok((id, result)) => {
                    ids.remove(&id);
                    runner.round_finished(result).await;
                }
                Err(e) => {
                    if let Some(key) = ids.remove(&e.id()) {
                        tracing::warn!(agent = %key, error = %e, "a probe round ended abnormally");
                        runner.round_lost(&key);
                    }
                }
            },
            event = agent_events.next() => match event {
                Some(AgentEvent::Applied(agent)) => runner.agent_applied(&agent).await,
                Some(AgentEvent::Deleted(agent)) => {
                    runner.forget(&key_of(&agent.namespace().unwrap_or_default(), &agent.name_any()));
                }
                Some(AgentEvent::Relisted) => runner.agents_relisted(),
                None => break,
            },
            event = pod_events.next() => match event {
                Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                    runner.pod_applied(&pod).await;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "cognitive runner: pod watch"),
                None => break,
            },
            () = sleep_until(wake) => {}
        }
        runner.start_due(&mut jobs, &mut ids);
    }
    // Dropping the set cancels the rounds in flight; nothing is written after shutdown.
    jobs.shutdown().await;
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OperatorConfig;
    use crate::support::{MANAGED_BY, MANAGED_BY_LABEL};
    use crate::tests::fixtures::{ApiServerHandle, Seen, answer_next, failure};
    use crate::workload::{NAME, NAME_LABEL};
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use kgents_probes::{Challenge, ProbeDetail};
    use kube::Client;
    use kube::client::Body;
    use kube::runtime::reflector::store::Writer;
    use serde_json::json;

    struct Harness {
        agents: Writer<Agent>,
        pods: Writer<Pod>,
        api: ApiServerHandle,
    }

    fn harness() -> (Runner, Harness) {
        let (service, api) = tower_test::mock::pair::<http::Request<Body>, http::Response<Body>>();
        let client = Client::new(service, "default");
        let ctx = Arc::new(Context::new(client, OperatorConfig::default()));
        let (agent_store, mut agents) = reflector::store();
        let (pod_store, mut pods) = reflector::store();
        agents.apply_watcher_event(&watcher::Event::InitDone);
        pods.apply_watcher_event(&watcher::Event::InitDone);
        (
            Runner::new(ctx, agent_store, pod_store),
            Harness { agents, pods, api },
        )
    }

    /// `hive/scout`, COGNITIVE_PROBE with a failure threshold of 1, an OpenAI-compatible model
    /// whose key is in Secret `llm`.
    fn agent(degrade_to_safemode: bool) -> Agent {
        let mut agent = crate::tests::fixtures::test_agent(json!({
            "health": {
                "type": "COGNITIVE_PROBE",
                "intervalSeconds": 30,
                "timeoutSeconds": 5,
                "unhealthyThreshold": 1,
                "degradeToSafemode": degrade_to_safemode,
                "probes": ["Reasoning"],
            },
            "model": {
                "provider": "openai",
                "name": "fake",
                "endpoint": "http://127.0.0.1:9/v1",
                "secretRef": {"name": "llm", "key": "token"},
            },
        }));
        agent.metadata.uid = Some("uid-scout".to_owned());
        agent
    }

    fn pod(name: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "namespace": "hive",
                "labels": {
                    AGENT_LABEL: "scout",
                    NAME_LABEL: NAME,
                    MANAGED_BY_LABEL: MANAGED_BY,
                },
            },
        }))
        .expect("pod")
    }

    fn with_gate(mut pod: Pod, status: &str, reason: &str) -> Pod {
        pod.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: crate::workload::READINESS_GATE.to_owned(),
                status: status.to_owned(),
                reason: Some(reason.to_owned()),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        pod
    }

    fn outcome(verdict: Verdict, reason: &str) -> ProbeOutcome {
        ProbeOutcome::new(
            verdict,
            ProbeDetail {
                challenge: Challenge::Reasoning {
                    operation: kgents_probes::Operation::Sum,
                    lhs: 5,
                    rhs: 7,
                },
                reply: None,
                latency: Duration::from_millis(20),
                reason: reason.to_owned(),
            },
        )
    }

    fn probed(verdict: Verdict, reason: &str, failure: Option<&'static str>) -> RoundResult {
        RoundResult {
            key: "hive/scout".to_owned(),
            uid: "uid-scout".to_owned(),
            kind: crd::ProbeKind::Reasoning,
            client: None,
            outcome: RoundOutcome::Probed {
                outcome: outcome(verdict, reason),
                failure,
            },
        }
    }

    /// Answers the next request with 200 and the Agent carrying the applied status, and
    /// updates the cache the way the watch would.
    async fn answer_status(h: &mut Harness, stored: &Agent) -> Seen {
        let seen = answer_next(&mut h.api, |seen| {
            let mut value = serde_json::to_value(stored).expect("agent JSON");
            value["status"] = seen.body["status"].clone();
            (200, value)
        })
        .await;
        let mut updated = stored.clone();
        updated.status = Some(serde_json::from_value(seen.body["status"].clone()).expect("status"));
        h.agents
            .apply_watcher_event(&watcher::Event::Apply(updated));
        seen
    }

    async fn echo(h: &mut Harness) -> Seen {
        answer_next(&mut h.api, |seen| (200, seen.body.clone())).await
    }

    async fn silence(h: &mut Harness) {
        let next = tokio::time::timeout(Duration::from_millis(200), h.api.next_request()).await;
        if let Ok(Some((request, _))) = next {
            panic!("unexpected request: {} {}", request.method(), request.uri());
        }
    }

    #[tokio::test]
    async fn a_new_agent_awaits_its_first_probe_with_closed_gates() {
        let (mut runner, mut h) = harness();
        let stored = agent(true);
        h.agents
            .apply_watcher_event(&watcher::Event::Apply(stored.clone()));
        h.pods
            .apply_watcher_event(&watcher::Event::Apply(pod("scout-1")));
        let adopt = runner.agent_applied(&stored);
        let script = async {
            let status = answer_status(&mut h, &stored).await;
            assert!(
                status.is(
                    "PATCH",
                    "/apis/kgents.io/v1/namespaces/hive/agents/scout/status?"
                ),
                "{status:?}"
            );
            assert!(
                status
                    .uri
                    .contains("fieldManager=kgents-operator-cognitive")
                    && status.uri.contains("force=true"),
                "{status:?}"
            );
            let s = &status.body["status"];
            assert_eq!(s["cognitiveHealth"], "UNKNOWN");
            assert_eq!(s["conditions"][0]["type"], "CognitiveReady");
            assert_eq!(s["conditions"][0]["status"], "Unknown");
            assert_eq!(s["conditions"][0]["reason"], "AwaitingFirstProbe");
            assert!(
                s.get("phase").is_none(),
                "the Agent controller's fields are not claimed"
            );
            let gate = echo(&mut h).await;
            assert!(
                gate.is("PATCH", "/api/v1/namespaces/hive/pods/scout-1/status"),
                "{gate:?}"
            );
            let condition = &gate.body["status"]["conditions"][0];
            assert_eq!(condition["type"], "kgents.io/cognitive-ready");
            assert_eq!(condition["status"], "False");
            assert_eq!(condition["reason"], "AwaitingFirstProbe");
            silence(&mut h).await;
        };
        tokio::join!(adopt, script);
        assert_eq!(runner.probed(), vec!["hive/scout".to_owned()]);
    }

    /// Adopts the agent and answers the adoption's writes (status, then one gate per pod).
    async fn adopt(runner: &mut Runner, h: &mut Harness, stored: &Agent, pods: usize) {
        let adopt = runner.agent_applied(stored);
        let script = async {
            answer_status(h, stored).await;
            for _ in 0..pods {
                echo(h).await;
            }
        };
        tokio::join!(adopt, script);
    }

    /// `hive/scout` (safe mode on) with one pod, adopted by the runner, its gate closed as the
    /// watch would report it after the adoption.
    async fn adopted_scout(runner: &mut Runner, h: &mut Harness) -> Agent {
        let stored = agent(true);
        h.agents
            .apply_watcher_event(&watcher::Event::Apply(stored.clone()));
        h.pods
            .apply_watcher_event(&watcher::Event::Apply(pod("scout-1")));
        adopt(runner, h, &stored, 1).await;
        h.pods.apply_watcher_event(&watcher::Event::Apply(with_gate(
            pod("scout-1"),
            "False",
            "AwaitingFirstProbe",
        )));
        stored
    }

    /// Round `round` of `hive/scout` with `spec`, reusing `cached` when it was built for the
    /// same model (fingerprint 1).
    fn scout_round(
        runner: &Runner,
        spec: &AgentSpec,
        round: u64,
        cached: Option<CachedClient>,
        reread_secret: bool,
    ) -> RoundJob {
        RoundJob {
            ctx: runner.ctx.clone(),
            key: "hive/scout".to_owned(),
            namespace: "hive".to_owned(),
            uid: "uid-scout".to_owned(),
            round,
            spec: spec.clone(),
            health: spec.health.clone().expect("health"),
            model: 1,
            cached,
            reread_secret,
            transport: runner.transport.clone(),
        }
    }

    #[tokio::test]
    async fn a_missing_secret_is_named_and_no_model_is_called() {
        let (mut runner, mut h) = harness();
        let stored = adopted_scout(&mut runner, &mut h).await;
        let job = scout_round(&runner, &stored.spec, 0, None, true);
        let round = async {
            let result = job.run().await;
            assert!(
                matches!(&result.outcome, RoundOutcome::Problem(p) if p.reason == "SecretNotFound"),
                "a missing Secret is a configuration problem"
            );
            runner.round_finished(result).await;
        };
        let script = async {
            let get = answer_next(&mut h.api, |_| {
                (404, failure(404, "NotFound", "secrets \"llm\" not found"))
            })
            .await;
            assert!(
                get.is("GET", "/api/v1/namespaces/hive/secrets/llm"),
                "{get:?}"
            );
            let event = echo(&mut h).await;
            assert!(
                event.is("POST", "/apis/events.k8s.io/v1/namespaces/hive/events"),
                "{event:?}"
            );
            assert_eq!(event.body["type"], "Warning");
            assert_eq!(event.body["reason"], "SecretNotFound");
            assert!(
                event.body["note"]
                    .as_str()
                    .expect("note")
                    .starts_with("spec.model.secretRef.name: Secret hive/llm does not exist"),
                "{event:?}"
            );
            let status = answer_status(&mut h, &stored).await;
            let condition = &status.body["status"]["conditions"][0];
            assert_eq!(condition["status"], "False");
            assert_eq!(condition["reason"], "SecretNotFound");
            let gate = echo(&mut h).await;
            assert_eq!(
                gate.body["status"]["conditions"][0]["reason"],
                "SecretNotFound"
            );
            silence(&mut h).await;
        };
        tokio::join!(round, script);
        let metrics = runner.ctx.metrics.encode();
        assert!(
            metrics.contains(r#"kgents_probe_failures_total{reason="config"} 1"#),
            "{metrics}"
        );
        assert!(
            !metrics.contains("kgents_probe_calls_total{"),
            "no model call: {metrics}"
        );
    }

    /// A model client whose provider says every model is missing, counting its calls.
    struct MissingModel {
        calls: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl LlmClient for MissingModel {
        async fn complete(&self, _: &CompletionRequest) -> Result<Completion, LlmError> {
            let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(LlmError::ModelNotFound {
                model: "fake".to_owned(),
                message: format!(
                    "model 'fake' does not exist at openai: The model `fake` does not exist \
                     (request id req_{call}); check the model name as the provider spells it"
                ),
            })
        }
    }

    #[tokio::test]
    async fn a_missing_model_is_named_as_configuration_and_asked_for_again() {
        let (mut runner, mut h) = harness();
        let stored = adopted_scout(&mut runner, &mut h).await;
        let model = Arc::new(MissingModel {
            calls: std::sync::atomic::AtomicUsize::new(0),
        });
        let cached = CachedClient {
            model: 1,
            built_from: 1,
            client: model.clone(),
            secret_read_at: Instant::now(),
        };
        let job = scout_round(&runner, &stored.spec, 0, Some(cached), false);
        let round = async {
            let result = job.run().await;
            assert!(
                matches!(&result.outcome, RoundOutcome::Refused(p) if p.reason == "ModelNotFound"),
                "a missing model is the configuration's fault, not the model's"
            );
            runner.round_finished(result).await;
        };
        let script = async {
            // No Secret read: the cached client is used as it is.
            let event = echo(&mut h).await;
            assert!(
                event.is("POST", "/apis/events.k8s.io/v1/namespaces/hive/events"),
                "{event:?}"
            );
            assert_eq!(event.body["type"], "Warning");
            assert_eq!(event.body["reason"], "ModelNotFound");
            assert!(
                event.body["note"]
                    .as_str()
                    .expect("note")
                    .starts_with("spec.model.name: model 'fake' does not exist at openai"),
                "{event:?}"
            );
            let status = answer_status(&mut h, &stored).await;
            let condition = &status.body["status"]["conditions"][0];
            assert_eq!(condition["status"], "False");
            assert_eq!(condition["reason"], "ModelNotFound");
            assert!(
                status.body["status"].get("cognitiveHealth").is_none()
                    || status.body["status"]["cognitiveHealth"] != "UNRESPONSIVE",
                "the model was never judged: {status:?}"
            );
            let gate = echo(&mut h).await;
            assert_eq!(
                gate.body["status"]["conditions"][0]["reason"],
                "ModelNotFound"
            );
            silence(&mut h).await;
        };
        tokio::join!(round, script);
        let state = runner.states.get("hive/scout").expect("still probed");
        let kept = state.client.clone();
        assert!(
            kept.is_some(),
            "the client is kept, so the next round asks the provider again"
        );

        // The next round asks again and hears the same with another request id: no new Event,
        // no write (the pod as the watch reports it after the gate patch).
        h.pods.apply_watcher_event(&watcher::Event::Apply(with_gate(
            pod("scout-1"),
            "False",
            "ModelNotFound",
        )));
        let job = scout_round(&runner, &stored.spec, 1, kept, false);
        let round = async {
            let result = job.run().await;
            runner.round_finished(result).await;
        };
        tokio::join!(round, silence(&mut h));
        assert_eq!(model.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        let metrics = runner.ctx.metrics.encode();
        assert!(
            metrics.contains(r#"kgents_probe_failures_total{reason="model_not_found"} 2"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"kgents_probe_calls_total{kind="reasoning"} 2"#),
            "the calls were made and count: {metrics}"
        );
    }

    #[tokio::test]
    async fn unresponsive_with_safe_mode_annotates_the_pods_and_recovery_removes_it() {
        let (mut runner, mut h) = harness();
        let stored = agent(true);
        h.agents
            .apply_watcher_event(&watcher::Event::Apply(stored.clone()));
        h.pods
            .apply_watcher_event(&watcher::Event::Apply(pod("scout-1")));
        adopt(&mut runner, &mut h, &stored, 1).await;
        h.pods.apply_watcher_event(&watcher::Event::Apply(with_gate(
            pod("scout-1"),
            "False",
            "AwaitingFirstProbe",
        )));
        let round = async {
            runner
                .round_finished(probed(
                    Verdict::Unresponsive,
                    "no answer within the 5s timeout",
                    Some("transport"),
                ))
                .await;
        };
        let script = async {
            let event = echo(&mut h).await;
            assert_eq!(event.body["reason"], "CognitiveUnresponsive");
            assert_eq!(event.body["type"], "Warning");
            let status = answer_status(&mut h, &stored).await;
            assert_eq!(status.body["status"]["cognitiveHealth"], "UNRESPONSIVE");
            assert_eq!(
                status.body["status"]["lastProbe"]["outcome"],
                "Unresponsive"
            );
            let condition = &status.body["status"]["conditions"][0];
            assert_eq!(condition["reason"], "Unresponsive");
            assert!(
                condition["message"]
                    .as_str()
                    .expect("message")
                    .contains("reasoning probe: Unresponsive: no answer within the 5s timeout"),
                "{condition}"
            );
            let safe = echo(&mut h).await;
            assert_eq!(safe.body["reason"], "SafeModeEntered");
            let gate = echo(&mut h).await;
            assert!(gate.is("PATCH", "/pods/scout-1/status"), "{gate:?}");
            assert_eq!(gate.body["status"]["conditions"][0]["status"], "False");
            let annotation = echo(&mut h).await;
            assert!(
                annotation.is_exactly("PATCH", "/api/v1/namespaces/hive/pods/scout-1"),
                "{annotation:?}"
            );
            assert_eq!(
                annotation.body,
                json!({"metadata": {"annotations": {"kgents.io/safe-mode": "true"}}})
            );
            silence(&mut h).await;
        };
        tokio::join!(round, script);
        let metrics = runner.ctx.metrics.encode();
        assert!(
            metrics.contains(r#"kgents_probe_failures_total{reason="transport"} 1"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"kgents_cognitive_agents{health="UNRESPONSIVE"} 1"#),
            "{metrics}"
        );

        // The pod as the watch now reports it; then the model answers again.
        let mut annotated = with_gate(pod("scout-1"), "False", "Unresponsive");
        annotated.metadata.annotations = Some(
            [("kgents.io/safe-mode".to_owned(), "true".to_owned())]
                .into_iter()
                .collect(),
        );
        h.pods
            .apply_watcher_event(&watcher::Event::Apply(annotated));
        let round = async {
            runner
                .round_finished(probed(Verdict::Healthy, "correct answer in 20ms", None))
                .await;
        };
        let script = async {
            let event = echo(&mut h).await;
            assert_eq!(event.body["reason"], "CognitiveHealthy");
            assert_eq!(event.body["type"], "Normal");
            let status = answer_status(&mut h, &stored).await;
            assert_eq!(status.body["status"]["cognitiveHealth"], "HEALTHY");
            assert_eq!(status.body["status"]["conditions"][0]["status"], "True");
            let left = echo(&mut h).await;
            assert_eq!(left.body["reason"], "SafeModeLeft");
            let gate = echo(&mut h).await;
            assert_eq!(gate.body["status"]["conditions"][0]["status"], "True");
            let annotation = echo(&mut h).await;
            assert_eq!(
                annotation.body,
                json!({"metadata": {"annotations": {"kgents.io/safe-mode": null}}})
            );
            silence(&mut h).await;
        };
        tokio::join!(round, script);
    }

    #[tokio::test]
    async fn unresponsive_without_safe_mode_restarts_the_pods_once_per_episode() {
        let (mut runner, mut h) = harness();
        let stored = agent(false);
        h.agents
            .apply_watcher_event(&watcher::Event::Apply(stored.clone()));
        h.pods
            .apply_watcher_event(&watcher::Event::Apply(pod("scout-1")));
        adopt(&mut runner, &mut h, &stored, 1).await;
        h.pods.apply_watcher_event(&watcher::Event::Apply(with_gate(
            pod("scout-1"),
            "False",
            "AwaitingFirstProbe",
        )));
        let round = async {
            runner
                .round_finished(probed(Verdict::Unresponsive, "no answer", None))
                .await;
        };
        let script = async {
            assert_eq!(echo(&mut h).await.body["reason"], "CognitiveUnresponsive");
            answer_status(&mut h, &stored).await;
            let gate = echo(&mut h).await;
            assert!(gate.is("PATCH", "/pods/scout-1/status"), "{gate:?}");
            let delete = answer_next(&mut h.api, |_| {
                (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                )
            })
            .await;
            assert!(
                delete.is_exactly("DELETE", "/api/v1/namespaces/hive/pods/scout-1"),
                "{delete:?}"
            );
            let event = echo(&mut h).await;
            assert_eq!(event.body["reason"], "PodsRestarted");
            assert!(
                event.body["note"]
                    .as_str()
                    .expect("note")
                    .contains("scout-1"),
                "{event:?}"
            );
            silence(&mut h).await;
        };
        tokio::join!(round, script);

        // The replacement pod gets the closed gate; further silence restarts nothing.
        h.pods
            .apply_watcher_event(&watcher::Event::Delete(pod("scout-1")));
        let fresh = pod("scout-2");
        h.pods
            .apply_watcher_event(&watcher::Event::Apply(fresh.clone()));
        let gate_new_pod = runner.pod_applied(&fresh);
        let script = async {
            let gate = echo(&mut h).await;
            assert!(gate.is("PATCH", "/pods/scout-2/status"), "{gate:?}");
            assert_eq!(
                gate.body["status"]["conditions"][0]["reason"],
                "Unresponsive"
            );
            silence(&mut h).await;
        };
        tokio::join!(gate_new_pod, script);
        h.pods.apply_watcher_event(&watcher::Event::Apply(with_gate(
            fresh,
            "False",
            "Unresponsive",
        )));
        let still_silent = runner.round_finished(probed(Verdict::Unresponsive, "no answer", None));
        let script = async {
            silence(&mut h).await;
        };
        tokio::join!(still_silent, script);
    }

    #[tokio::test]
    async fn http_agents_are_not_probed_and_a_switch_to_http_stops_probing() {
        let (mut runner, mut h) = harness();
        let mut plain = agent(true);
        plain.spec.health = None;
        runner.agent_applied(&plain).await;
        assert!(runner.probed().is_empty());
        silence(&mut h).await;

        let stored = agent(true);
        h.agents
            .apply_watcher_event(&watcher::Event::Apply(stored.clone()));
        adopt(&mut runner, &mut h, &stored, 0).await;
        assert_eq!(runner.probed(), vec!["hive/scout".to_owned()]);
        // Switched to HTTP while its status holds a verdict: the runner's fields are released.
        plain.status = Some(crd::AgentStatus {
            cognitive_health: Some(crd::CognitiveHealth::Unknown),
            ..crd::AgentStatus::default()
        });
        let switch = runner.agent_applied(&plain);
        let script = async {
            let release = echo(&mut h).await;
            assert!(
                release.is("PATCH", "/agents/scout/status?")
                    && release
                        .uri
                        .contains("fieldManager=kgents-operator-cognitive"),
                "{release:?}"
            );
            assert_eq!(release.body["status"], json!({}));
            silence(&mut h).await;
        };
        tokio::join!(switch, script);
        assert!(runner.probed().is_empty());
    }

    #[test]
    fn probes_take_turns_and_timings_follow_the_spec() {
        let health: HealthSpec = serde_json::from_value(json!({
            "type": "COGNITIVE_PROBE", "timeoutSeconds": 8, "unhealthyThreshold": 0,
            "probes": ["Echo", "Json"],
        }))
        .expect("health");
        assert_eq!(probe_of_round(&health, 0), crd::ProbeKind::Echo);
        assert_eq!(probe_of_round(&health, 1), crd::ProbeKind::Json);
        assert_eq!(probe_of_round(&health, 2), crd::ProbeKind::Echo);
        let timings = runner_config(&health);
        assert_eq!(timings.timeout, Duration::from_secs(8));
        assert_eq!(timings.latency_budget, Duration::from_secs(4));
        assert_eq!(
            tracker_config(&health).failure_threshold,
            1,
            "clamped into range"
        );
        assert_eq!(
            failure_label(&outcome(Verdict::Unhealthy, "wrong"), None),
            Some("wrong_answer")
        );
        assert_eq!(
            failure_label(&outcome(Verdict::Degraded, "slow"), None),
            Some("slow")
        );
        assert_eq!(
            failure_label(&outcome(Verdict::Unresponsive, "-"), None),
            Some("timeout")
        );
        assert_eq!(failure_label(&outcome(Verdict::Healthy, "ok"), None), None);
    }
}
