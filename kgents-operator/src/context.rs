//! The state every reconcile shares.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ObjectReference;
use kgents_core::clock::{Clock, SystemClock};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource};

use crate::leader::LeaderState;
use crate::metrics::Metrics;
use crate::shared::Watches;
use crate::{Error, Result};

/// The symbiont sidecar's image when neither the operator's configuration nor the Agent names
/// one.
pub const DEFAULT_SYMBIONT_IMAGE: &str = "ghcr.io/kgents/symbiont:0.1.0";

/// The field manager the controllers apply children and status with.
pub const FIELD_MANAGER: &str = "kgents-operator";

/// Settings of the controllers.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Field manager for server-side apply of children and status.
    pub field_manager: String,
    /// Reconciles of one controller that may run at once (default 16; kube's default is
    /// unbounded). A reconcile spends nearly all its time waiting for the API server, so a
    /// handful of reconciles in flight leaves throughput on the table when many objects change
    /// at once: 200 new Agents took 12.7 s with 4 and 10.6 s with 16.
    pub concurrency: u16,
    /// The safety-net requeue of a healthy object (watches can miss events).
    pub resync_interval: Duration,
    /// The budget of one Kubernetes API call inside a reconcile.
    pub api_timeout: Duration,
    /// Where restricted agents reach the API server (their NetworkPolicy allows egress there).
    /// `None` (the default): the endpoints of `default/kubernetes`, read from its
    /// EndpointSlices and followed as they change. `Some(list)`: exactly these (an empty list:
    /// restricted agents cannot reach the API server).
    pub api_server_endpoints: Option<Vec<crate::workload::ApiServerEndpoint>>,
    /// The image of PLACEHOLDER agents.
    pub placeholder_image: String,
    /// The image of the symbiont sidecar, for Agents whose `spec.symbiont` enables it without
    /// naming an image (default [`DEFAULT_SYMBIONT_IMAGE`]).
    pub symbiont_image: String,
    /// Watch only this namespace (`None`: all namespaces).
    pub namespace: Option<String>,
    /// The cognitive probes of live agents ([`crate::cognitive`]).
    pub probes: ProbeConfig,
    /// The Proposal controller's reviewer and admission policy ConfigMap ([`crate::proposal`]).
    pub proposal: crate::proposal::ProposalSettings,
    /// Where each agent's history is recorded (default off; the operator example and
    /// `kgents dev up` use the embedded file).
    pub witness: crate::witness::WitnessSetting,
    /// How much of each agent's recorded history is kept, and how often that is applied (default
    /// 10,000 records and 30 days per agent, at start and every 10 minutes).
    pub witness_retention: crate::witness::WitnessRetention,
}

/// Settings of the cognitive probe runner ([`crate::cognitive`]): how many probe calls the
/// operator may make, how many at once, and how often an unchanged verdict is written back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Whether COGNITIVE_PROBE agents are probed at all (default true). When false their pods'
    /// readiness gate is never set, so they never become Ready: turn it off only together
    /// with the agents' `health.type`.
    pub enabled: bool,
    /// Probe calls in flight at once, across all agents (default 8; 0 counts as 1).
    pub max_concurrent: usize,
    /// Probe calls started per minute, across all agents (default 600; 0 counts as 1). No
    /// 60-second window ever holds more; agents that fall due beyond it wait their turn in
    /// order of due time.
    pub calls_per_minute: u32,
    /// Between health transitions, an Agent's `cognitiveHealth`, `CognitiveReady` and
    /// `lastProbe` are written at most this often (default 5 minutes), so a thousand probing
    /// agents do not become a status write storm. Transitions are written at once.
    pub status_refresh: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_concurrent: 8,
            calls_per_minute: 600,
            status_refresh: Duration::from_secs(300),
        }
    }
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            field_manager: FIELD_MANAGER.to_owned(),
            concurrency: 16,
            resync_interval: Duration::from_secs(300),
            api_timeout: Duration::from_secs(10),
            api_server_endpoints: None,
            placeholder_image: "registry.k8s.io/pause:3.10".to_owned(),
            symbiont_image: DEFAULT_SYMBIONT_IMAGE.to_owned(),
            namespace: None,
            probes: ProbeConfig::default(),
            proposal: crate::proposal::ProposalSettings::default(),
            witness: crate::witness::WitnessSetting::Off,
            witness_retention: crate::witness::WitnessRetention::default(),
        }
    }
}

/// Everything a reconcile needs; shared behind an `Arc` by every controller.
///
/// All fields are either immutable after construction or internally synchronised
/// (`Client`, `Recorder` and `Metrics` are cheap clones over shared state; `LeaderState` is a
/// watch receiver), so no lock is held across an await.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// Publishes Kubernetes Events (deduplicated by kube for about six minutes).
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The source of "now" (a manual clock in tests).
    pub clock: Arc<dyn Clock>,
    /// Controller settings.
    pub config: OperatorConfig,
    /// Whether this replica may write.
    pub leader: LeaderState,
    /// The process's shared watches and caches: one per kind, read by every controller that
    /// needs the kind (Agents among them).
    pub(crate) watches: Watches,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .field("leader", &self.leader)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context with the system clock, fresh metrics and an always-leading state.
    pub fn new(client: Client, config: OperatorConfig) -> Self {
        let reporter = Reporter {
            controller: config.field_manager.clone(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let watches = Watches::new(&client, config.namespace.as_deref(), &config.field_manager);
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            watches,
            client,
            metrics: Arc::new(Metrics::new()),
            clock: Arc::new(SystemClock),
            config,
            leader: LeaderState::always(),
        }
    }

    /// Replaces the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the metrics (to share one registry with the HTTP server).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Replaces the shared watches (one set per process, kept across leadership terms).
    pub(crate) fn with_watches(mut self, watches: Watches) -> Self {
        self.watches = watches;
        self
    }

    /// Replaces the leader state.
    pub fn with_leader(mut self, leader: LeaderState) -> Self {
        self.leader = leader;
        self
    }

    /// An API of namespaced kind `K` over what the operator watches: the namespace of
    /// [`OperatorConfig::namespace`] when it is set, every namespace otherwise.
    pub fn scoped<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        match &self.config.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// Runs one API call under the configured budget.
    pub async fn api<T>(
        &self,
        call: &'static str,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.config.api_timeout, fut).await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::Timeout {
                call,
                budget: self.config.api_timeout,
            }),
        }
    }

    /// Publishes an Event about `regarding`. A failure to publish is logged, never returned:
    /// an Event is a courtesy and must not fail the reconcile that reports it.
    pub async fn event(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: impl Into<String>,
    ) {
        if !self.leader.is_leader() {
            return;
        }
        let mut note = note.into();
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, regarding).await {
            tracing::warn!(error = %e, reason, "could not publish an Event");
        }
    }
}
