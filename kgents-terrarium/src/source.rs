//! The I/O edge that feeds the dashboard: a [`Feed`] sends [`Event`]s (data, thought-stream
//! lines, the link's state, decisions' answers) and carries out [`Command`]s.
//!
//! | feed | data | writes |
//! |---|---|---|
//! | [`ClusterFeed`] | the Cortex daemon's `Observe` stream when configured and answering, else watches of Agents, Pheromones, Proposals and `events.k8s.io` Events, turned into summaries by the Logos' conversions (`kgents_logos::summary`); the log lines of the agent the user follows (its Ready pod, as `tether` picks it); the ghost snapshots while the API server is unreachable | approve / reject through [`Logos::invoke`] as the user |
//! | [`GhostFeed`] | the ghost snapshots only (no kubeconfig at all) | refused |
//! | [`FixtureFeed`] | a fixed [`Dashboard`] (demos, measurements) | refused |
//!
//! **Why watches, not polling**: at 1,000 agents and 10,000 pheromones a list every second
//! would move megabytes per second for nothing; a watch moves only the changes, and the
//! dashboard redraws when one arrives. Summaries are kept, not objects, so memory stays small.
//!
//! **Lost connection**: the first watch error (or a failed liveness check, every
//! [`LIVENESS_INTERVAL`]) ends the watches; the data stays on screen marked `[GHOST]`, and the
//! feed reconnects with exponential backoff ([`Backoff`]), re-listing everything. When the
//! cluster cannot be reached at start, the ghost snapshots (`~/.kgents/ghost`, read-only) are
//! shown with their age until it can. An all-namespaces live feed writes its data through to
//! those snapshots (every [`GHOST_WRITE_INTERVAL`] at most), as the CLI's live reads do.
//!
//! With the `cortex` feature, `ClusterFeed::with_cortex` reads the Cortex daemon's `Observe`
//! stream instead of watching whenever the daemon answers (see `crate::cortex`); the dashboard
//! depends only on the [`Feed`] trait and the [`Event`]s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kgents_core::clock::Clock;
use kgents_crds::{Agent, Pheromone, Proposal};
use kgents_ghost::snapshot::{ActivePheromones, AgentsIndex, PheromoneSummary, ProposalList};
use kgents_ghost::{GhostStore, Payload, Snapshot};
use kgents_logos::logos::DecisionInput;
use kgents_logos::outcome::ProposalRecord;
use kgents_logos::{Args, Caller, ClusterView, Filter, GhostView, Logos, Outcome, Scope, Source};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::mpsc;

use crate::state::{AgentRow, Dashboard, DecisionOutcome, Event, Link, PheromoneRow, Thought};

/// How often the feed sends accumulated changes (at most; nothing is sent when nothing changed).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);
/// How often a live feed asks the API server whether it is still there.
pub const LIVENESS_INTERVAL: Duration = Duration::from_secs(5);
/// The deadline of that question.
pub const LIVENESS_DEADLINE: Duration = Duration::from_secs(3);

/// What the dashboard asks of its feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Record a decision as the user.
    Decide {
        /// Approve (`true`) or reject.
        approve: bool,
        /// Namespace.
        namespace: String,
        /// Proposal.
        name: String,
        /// Comment or reason.
        comment: Option<String>,
    },
    /// Watch another scope.
    Rescope(Scope),
    /// Follow an agent's log lines into the thought stream (replacing any other).
    FollowLogs {
        /// Namespace.
        namespace: String,
        /// The agent.
        agent: String,
    },
    /// Stop following logs.
    StopLogs,
}

/// The thought-stream line saying why logs cannot be followed.
fn logs_refused(namespace: &str, agent: &str, why: &str) -> Event {
    Event::Thoughts(vec![Thought {
        at: Timestamp::now(),
        namespace: namespace.to_owned(),
        object: format!("Agent/{agent}"),
        agent: Some(agent.to_owned()),
        reason: "log".into(),
        text: format!("cannot follow the logs: {why}"),
        warning: true,
    }])
}

/// A source of dashboard data. Runs until `out` is closed (the dashboard quit) or `commands`
/// ends.
#[async_trait]
pub trait Feed: Send {
    /// Feeds `out`, carrying out `commands`.
    async fn run(self: Box<Self>, out: mpsc::Sender<Event>, commands: mpsc::Receiver<Command>);
}

/// A fixed data set; decisions are refused (there is no cluster).
pub struct FixtureFeed {
    /// The data.
    pub dashboard: Dashboard,
    /// Thought-stream lines sent once at start.
    pub thoughts: Vec<Thought>,
}

#[async_trait]
impl Feed for FixtureFeed {
    async fn run(self: Box<Self>, out: mpsc::Sender<Event>, mut commands: mpsc::Receiver<Command>) {
        let this = *self;
        for event in [
            Event::Link(Link::Fixture),
            Event::Data(Box::new(this.dashboard)),
            Event::Thoughts(this.thoughts),
        ] {
            if out.send(event).await.is_err() {
                return;
            }
        }
        while let Some(command) = commands.recv().await {
            let answer = match command {
                Command::Decide {
                    approve,
                    namespace,
                    name,
                    ..
                } => Event::Decided(DecisionOutcome {
                    namespace,
                    name,
                    approve,
                    result: Err("fixture data: there is no cluster to decide in".into()),
                }),
                Command::FollowLogs { namespace, agent } => {
                    logs_refused(&namespace, &agent, "fixture data: there is no cluster")
                }
                Command::Rescope(_) | Command::StopLogs => continue,
            };
            if out.send(answer).await.is_err() {
                return;
            }
        }
    }
}

/// The ghost snapshots only (no cluster connection could even be configured: no kubeconfig).
/// Re-reads the cache every [`GHOST_REREAD_INTERVAL`], so another front-end's writes show up.
pub struct GhostFeed {
    /// The snapshot store.
    pub store: Arc<dyn GhostStore>,
    /// The clock ages are computed with.
    pub clock: Arc<dyn Clock>,
    /// The namespaces shown.
    pub scope: Scope,
    /// Why there is no live cluster (shown in the banner).
    pub reason: String,
}

/// How often a [`GhostFeed`] re-reads the cache.
pub const GHOST_REREAD_INTERVAL: Duration = Duration::from_secs(5);

#[async_trait]
impl Feed for GhostFeed {
    async fn run(self: Box<Self>, out: mpsc::Sender<Event>, mut commands: mpsc::Receiver<Command>) {
        let mut this = *self;
        let mut reread = tokio::time::interval(GHOST_REREAD_INTERVAL);
        loop {
            tokio::select! {
                _ = reread.tick() => {}
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Rescope(scope)) => this.scope = scope,
                    Some(Command::Decide { approve, namespace, name, .. }) => {
                        let refused = DecisionOutcome {
                            namespace,
                            name,
                            approve,
                            result: Err(format!("no cluster: {}", this.reason)),
                        };
                        if out.send(Event::Decided(refused)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Some(Command::FollowLogs { namespace, agent }) => {
                        let why = format!("no cluster: {}", this.reason);
                        if out.send(logs_refused(&namespace, &agent, &why)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Some(Command::StopLogs) => continue,
                },
            }
            let reason = match ghost_dashboard(
                Arc::clone(&this.store),
                Arc::clone(&this.clock),
                &this.scope,
            )
            .await
            {
                Ok(data) => {
                    if out.send(Event::Data(Box::new(data))).await.is_err() {
                        return;
                    }
                    this.reason.clone()
                }
                Err(ghost) => format!("{}; no ghost snapshot either: {ghost}", this.reason),
            };
            let link = Link::Ghost {
                reason,
                attempt: 0,
                retry_at: None,
            };
            if out.send(Event::Link(link)).await.is_err() {
                return;
            }
        }
    }
}

/// Exponential backoff between reconnects: `initial`, doubling, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(15),
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// The live cluster through watches, with the ghost snapshots as the fallback (see the
/// [module docs](self)).
pub struct ClusterFeed {
    client: Client,
    scope: Scope,
    logos: Arc<Logos>,
    caller: Caller,
    ghost: Option<Arc<dyn GhostStore>>,
    clock: Arc<dyn Clock>,
    backoff: Backoff,
    /// The agent whose logs are followed, and the task following them (aborted when replaced,
    /// stopped or dropped; restarted after a reconnection).
    logs: Option<LogFollow>,
    /// The Cortex daemon's socket: its `Observe` stream is read instead of watching, whenever
    /// the daemon answers.
    #[cfg(feature = "cortex")]
    cortex: Option<std::path::PathBuf>,
}

/// An agent's logs followed by a task.
struct LogFollow {
    namespace: String,
    agent: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for LogFollow {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// How many log lines are sent to the dashboard at once, at most (more wait for the next batch).
pub const LOG_BATCH: usize = 256;

impl ClusterFeed {
    /// A feed watching `scope` through `client`; decisions go through `logos` as `caller`;
    /// `ghost`: the snapshot store shown while the cluster is unreachable.
    pub fn new(
        client: Client,
        scope: Scope,
        logos: Arc<Logos>,
        caller: Caller,
        ghost: Option<Arc<dyn GhostStore>>,
        clock: Arc<dyn Clock>,
    ) -> ClusterFeed {
        ClusterFeed {
            client,
            scope,
            logos,
            caller,
            ghost,
            clock,
            backoff: Backoff::default(),
            logs: None,
            #[cfg(feature = "cortex")]
            cortex: None,
        }
    }

    /// Reads the Cortex daemon at `socket` whenever it answers (its `Observe` stream, see
    /// [`crate::cortex`]), and watches the API server directly when it does not. Decisions and
    /// log lines still go through the user's own connection.
    #[cfg(feature = "cortex")]
    #[must_use]
    pub fn with_cortex(mut self, socket: impl Into<std::path::PathBuf>) -> ClusterFeed {
        self.cortex = Some(socket.into());
        self
    }

    /// The changes to show: the daemon's when it is configured and answers, else the
    /// watches'. Says in `thoughts` when a configured daemon is passed over.
    async fn changes(&self, thoughts: &mut Vec<Thought>) -> (ChangeStream, &'static str, bool) {
        #[cfg(feature = "cortex")]
        if let Some(socket) = &self.cortex {
            match crate::cortex::changes(socket, &self.scope).await {
                Ok(stream) => return (stream, crate::cortex::LAYER, true),
                Err(reason) => thoughts.push(Thought {
                    at: self.clock.now(),
                    namespace: String::new(),
                    object: "Cortex".into(),
                    agent: None,
                    reason: "Unavailable".into(),
                    text: format!("{reason}; watching the API server directly"),
                    warning: false,
                }),
            }
        }
        #[cfg(not(feature = "cortex"))]
        let _ = thoughts;
        let watches = futures::stream::select_all(vec![
            kind_stream(self.api::<Agent>(), Change::Agent),
            kind_stream(self.api::<Pheromone>(), Change::Pheromone),
            kind_stream(self.api::<Proposal>(), Change::Proposal),
            events_stream(self.api::<KubeEvent>()),
        ]);
        (Box::pin(watches), kgents_logos::live::LAYER, false)
    }

    /// Another backoff.
    #[must_use]
    pub fn with_backoff(mut self, backoff: Backoff) -> ClusterFeed {
        self.backoff = backoff;
        self
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match &self.scope {
            Scope::Namespace(ns) => Api::namespaced(self.client.clone(), ns),
            Scope::All => Api::all(self.client.clone()),
        }
    }

    /// Starts following `agent`'s logs (replacing whatever was followed).
    fn follow_logs(&mut self, out: &mpsc::Sender<Event>, namespace: String, agent: String) {
        let task = tokio::spawn(follow_logs(
            self.client.clone(),
            Arc::clone(&self.logos),
            self.caller.clone(),
            namespace.clone(),
            agent.clone(),
            out.clone(),
        ));
        self.logs = Some(LogFollow {
            namespace,
            agent,
            task: Some(task),
        });
    }

    /// After a reconnection: follows again the logs that were followed.
    fn resume_logs(&mut self, out: &mpsc::Sender<Event>) {
        if let Some(follow) = self.logs.take() {
            let (namespace, agent) = (follow.namespace.clone(), follow.agent.clone());
            drop(follow);
            self.follow_logs(out, namespace, agent);
        }
    }

    fn spawn_decision(&self, out: &mpsc::Sender<Event>, command: Command) {
        let Command::Decide {
            approve,
            namespace,
            name,
            comment,
        } = command
        else {
            return;
        };
        let logos = Arc::clone(&self.logos);
        let caller = self.caller.clone();
        let out = out.clone();
        tokio::spawn(async move {
            let verb = if approve { "approve" } else { "reject" };
            let args = Args::new(Scope::Namespace(namespace.clone()))
                .with_input(&DecisionInput { comment });
            let result = match logos
                .invoke(
                    &caller,
                    &format!("world.cluster.proposals.{name}.{verb}"),
                    args,
                )
                .await
            {
                Ok(Outcome::Decided(decided)) => Ok(decided.by),
                Ok(_) => Err("the Logos answered something other than a decision".to_owned()),
                Err(error) => Err(error.to_string()),
            };
            let _ = out
                .send(Event::Decided(DecisionOutcome {
                    namespace,
                    name,
                    approve,
                    result,
                }))
                .await;
        });
    }

    async fn ghost_dashboard(&self) -> Result<Dashboard, String> {
        let store = self
            .ghost
            .clone()
            .ok_or_else(|| "no ghost cache configured".to_owned())?;
        ghost_dashboard(store, Arc::clone(&self.clock), &self.scope).await
    }

    /// Writes the cluster-wide snapshots of `cache` to the ghost store, off the loop's thread.
    /// Only an all-namespaces watch writes: the snapshots are cluster-wide, and one namespace's
    /// data would stand in for everyone's.
    fn write_through(&self, cache: &Cache) {
        let (Some(store), Scope::All) = (self.ghost.clone(), &self.scope) else {
            return;
        };
        let now = self.clock.now();
        let snapshots = ghost_snapshots(&cache.dashboard(now), now);
        tokio::task::spawn_blocking(move || {
            for snapshot in snapshots {
                if let Err(e) = store.write(&snapshot) {
                    tracing::warn!(error = %e, key = %snapshot.key(), "writing the ghost cache");
                }
            }
        });
    }

    /// Watches until the connection is lost (`Err(reason)`), the scope changes (`Ok(true)`) or
    /// the dashboard is gone (`Ok(false)`). `live` is set once the first full list arrived.
    async fn watch(
        &mut self,
        out: &mpsc::Sender<Event>,
        commands: &mut mpsc::Receiver<Command>,
        live: &mut bool,
    ) -> Result<bool, String> {
        self.resume_logs(out);
        let mut thoughts: Vec<Thought> = Vec::new();
        let (mut changes, layer, from_daemon) = self.changes(&mut thoughts).await;
        let mut cache = Cache::new(layer);
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut liveness = tokio::time::interval(LIVENESS_INTERVAL);
        liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Live data is written through to the ghost cache (at most every GHOST_WRITE_INTERVAL),
        // so the next start without a cluster, and the CLI, have it.
        let mut unwritten = false;
        let mut last_write = std::time::Instant::now()
            .checked_sub(GHOST_WRITE_INTERVAL)
            .unwrap_or_else(std::time::Instant::now);
        loop {
            tokio::select! {
                change = changes.next() => match change {
                    Some(Ok(change)) => {
                        let now = self.clock.now();
                        if let Some(thought) = cache.apply(change, now) {
                            thoughts.push(thought);
                        }
                    }
                    Some(Err(reason)) => return Err(reason),
                    None => return Err("the watches ended".into()),
                },
                command = commands.recv() => match command {
                    None => return Ok(false),
                    Some(Command::Rescope(scope)) => {
                        self.scope = scope;
                        return Ok(true);
                    }
                    Some(Command::FollowLogs { namespace, agent }) => {
                        self.follow_logs(out, namespace, agent);
                    }
                    Some(Command::StopLogs) => self.logs = None,
                    Some(decide) => self.spawn_decision(out, decide),
                },
                // The daemon answers for the cluster: its stream ending is the loss signal.
                _ = liveness.tick(), if !from_daemon => {
                    match tokio::time::timeout(LIVENESS_DEADLINE, self.client.apiserver_version()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(format!("the API server does not answer: {e}")),
                        Err(_) => return Err(format!("the API server did not answer within {} s", LIVENESS_DEADLINE.as_secs())),
                    }
                }
                _ = flush.tick() => {
                    if cache.listed() && !*live {
                        *live = true;
                        if out.send(Event::Link(Link::Live)).await.is_err() {
                            return Ok(false);
                        }
                    }
                    if cache.dirty && cache.listed() {
                        cache.dirty = false;
                        let data = cache.dashboard(self.clock.now());
                        unwritten = true;
                        if out.send(Event::Data(Box::new(data))).await.is_err() {
                            return Ok(false);
                        }
                    }
                    if unwritten && last_write.elapsed() >= GHOST_WRITE_INTERVAL {
                        unwritten = false;
                        last_write = std::time::Instant::now();
                        self.write_through(&cache);
                    }
                    if !thoughts.is_empty() {
                        thoughts.sort_by_key(|t| t.at);
                        let batch = std::mem::take(&mut thoughts);
                        if out.send(Event::Thoughts(batch)).await.is_err() {
                            return Ok(false);
                        }
                    }
                }
            }
        }
    }
}

/// Follows the log lines of `agent`'s ready pod (the one `tether` would pick, resolved through
/// the Logos as the user) into the thought stream, in batches of at most [`LOG_BATCH`] lines
/// every [`FLUSH_INTERVAL`]. What goes wrong is said there too.
async fn follow_logs(
    client: Client,
    logos: Arc<Logos>,
    caller: Caller,
    namespace: String,
    agent: String,
    out: mpsc::Sender<Event>,
) {
    use futures::AsyncBufReadExt as _;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::LogParams;

    let line = |text: String, object: &str, warning: bool| Thought {
        at: Timestamp::now(),
        namespace: namespace.clone(),
        object: object.to_owned(),
        agent: Some(agent.clone()),
        reason: "log".into(),
        text,
        warning,
    };
    let path = format!("world.cluster.agents.{agent}.tether");
    let target = match logos
        .invoke(
            &caller,
            &path,
            Args::new(Scope::Namespace(namespace.clone())),
        )
        .await
    {
        Ok(Outcome::Tether(target)) => target,
        Ok(_) => {
            let _ = out
                .send(logs_refused(&namespace, &agent, "an unexpected answer"))
                .await;
            return;
        }
        Err(e) => {
            let _ = out
                .send(logs_refused(&namespace, &agent, &e.to_string()))
                .await;
            return;
        }
    };
    let pod = format!("Pod/{}", target.pod);
    let params = LogParams {
        follow: true,
        tail_lines: Some(20),
        ..LogParams::default()
    };
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let stream = match pods.log_stream(&target.pod, &params).await {
        Ok(stream) => stream,
        Err(e) => {
            let _ = out
                .send(logs_refused(&namespace, &agent, &e.to_string()))
                .await;
            return;
        }
    };
    let mut lines = stream.lines();
    let mut batch: Vec<Thought> = Vec::new();
    let mut flush = tokio::time::interval(FLUSH_INTERVAL);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            next = lines.next(), if batch.len() < LOG_BATCH => match next {
                Some(Ok(text)) => batch.push(line(text, &pod, false)),
                Some(Err(e)) => {
                    batch.push(line(format!("the log stream failed: {e}"), &pod, true));
                    break;
                }
                None => {
                    batch.push(line("the log stream ended".into(), &pod, false));
                    break;
                }
            },
            _ = flush.tick() => {
                if !batch.is_empty()
                    && out.send(Event::Thoughts(std::mem::take(&mut batch))).await.is_err()
                {
                    return;
                }
            }
        }
    }
    let _ = out.send(Event::Thoughts(batch)).await;
}

/// How often a live feed writes its data through to the ghost cache (when it changed).
pub const GHOST_WRITE_INTERVAL: Duration = Duration::from_secs(15);

/// The cluster-wide ghost snapshots of `data` taken at `now`: the agents index, the active
/// pheromones (intensity at `now`, strongest first, evaporated ones left out), the pending
/// proposals, and the status digest made of them.
pub fn ghost_snapshots(data: &Dashboard, now: Timestamp) -> Vec<Snapshot> {
    let mut pheromones: Vec<PheromoneSummary> = data
        .pheromones
        .iter()
        .filter_map(|p| {
            let intensity = p.intensity_at(now);
            (intensity > 0.0).then(|| PheromoneSummary {
                intensity,
                ..p.record.summary.clone()
            })
        })
        .collect();
    pheromones.sort_by(|a, b| b.intensity.total_cmp(&a.intensity));
    let agents: Vec<_> = data.agents.iter().map(|a| a.summary.clone()).collect();
    let pending: Vec<_> = data
        .proposals
        .iter()
        .filter(|p| p.is_pending())
        .map(|p| p.summary.clone())
        .collect();
    let digest = kgents_ghost::digest::StatusDigest::build(&agents, &pheromones, &pending, now);
    vec![
        Snapshot::new(now, Payload::AgentsIndex(AgentsIndex { agents })),
        Snapshot::new(
            now,
            Payload::ActivePheromones(ActivePheromones { pheromones }),
        ),
        Snapshot::new(
            now,
            Payload::PendingProposals(ProposalList { proposals: pending }),
        ),
        // What `kgents status` reads first: kept as warm as the lists it is made of.
        Snapshot::new(now, Payload::StatusDigest(digest)),
    ]
}

/// The ghost snapshots of `scope` in `store` (cache only, read-only), or why there are none.
pub async fn ghost_dashboard(
    store: Arc<dyn GhostStore>,
    clock: Arc<dyn Clock>,
    scope: &Scope,
) -> Result<Dashboard, String> {
    let chain = kgents_logos::ghost::cache_only(store, clock);
    let view = GhostView::new(chain, None);
    let filter = Filter::scope(scope.clone());
    // Each kind is answered (or refused as too old, by the ghost protocol's freshness rules) on
    // its own; what is missing is said in the source's warnings, prefixed with the kind.
    let mut sources: Vec<Source> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let agents = match view.agents(&filter).await {
        Ok(observed) => {
            sources.push(observed.source);
            observed
                .data
                .into_iter()
                .map(|summary| AgentRow {
                    summary,
                    last_probe: None,
                })
                .collect()
        }
        Err(e) => {
            warnings.push(format!("agents: {}", one_line(&e.to_string())));
            Vec::new()
        }
    };
    let pheromones = match view.pheromones(&filter).await {
        Ok(observed) => {
            let taken_at = observed.source.taken_at;
            sources.push(observed.source);
            observed
                .data
                .into_iter()
                .map(|record| PheromoneRow {
                    record,
                    observed_at: taken_at,
                })
                .collect()
        }
        Err(e) => {
            warnings.push(format!("pheromones: {}", one_line(&e.to_string())));
            Vec::new()
        }
    };
    let proposals = match view.proposals(&filter).await {
        Ok(observed) => {
            sources.push(observed.source);
            observed.data
        }
        Err(e) => {
            warnings.push(format!("proposals: {}", one_line(&e.to_string())));
            Vec::new()
        }
    };
    // The dashboard is as old as its oldest part, and stale when any part is.
    let stale = sources.iter().any(|s| s.stale);
    let mut source = sources
        .into_iter()
        .reduce(|a, b| older(a, &b))
        .ok_or_else(|| warnings.join("; "))?;
    source.stale |= stale;
    source.warnings.extend(warnings);
    Ok(Dashboard {
        agents,
        pheromones,
        proposals,
        source,
    })
}

/// An error's lines joined, without the remedy line the CLI prints (the banner says it).
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Run `kgents"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn older(a: Source, b: &Source) -> Source {
    if b.taken_at < a.taken_at {
        b.clone()
    } else {
        a
    }
}

#[async_trait]
impl Feed for ClusterFeed {
    async fn run(
        mut self: Box<Self>,
        out: mpsc::Sender<Event>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        let mut attempt: u32 = 0;
        let mut had_live = false;
        let mut lost_since: Option<Timestamp> = None;
        loop {
            let mut live = false;
            let ended = self.watch(&out, &mut commands, &mut live).await;
            had_live |= live;
            let reason = match ended {
                Ok(false) => return,
                Ok(true) => {
                    attempt = 0;
                    continue;
                }
                Err(reason) => reason,
            };
            if live {
                attempt = 0;
                lost_since = None;
            }
            attempt = attempt.saturating_add(1);
            let delay = self.backoff.delay(attempt);
            let retry_at = self.clock.now().checked_add(delay).ok();
            let link = if had_live {
                let since = *lost_since.get_or_insert_with(|| self.clock.now());
                Link::Lost {
                    since,
                    reason,
                    attempt,
                    retry_at,
                }
            } else {
                // Never connected: show the ghost snapshots (read-only) meanwhile.
                let reason = match self.ghost_dashboard().await {
                    Ok(data) => {
                        if out.send(Event::Data(Box::new(data))).await.is_err() {
                            return;
                        }
                        reason
                    }
                    Err(ghost) => format!("{reason}; no ghost snapshot either: {ghost}"),
                };
                Link::Ghost {
                    reason,
                    attempt,
                    retry_at,
                }
            };
            if out.send(Event::Link(link)).await.is_err() {
                return;
            }
            // Wait out the backoff, still answering commands.
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    command = commands.recv() => match command {
                        None => return,
                        Some(Command::Rescope(scope)) => {
                            self.scope = scope;
                            break;
                        }
                        Some(Command::Decide { approve, namespace, name, .. }) => {
                            let refused = DecisionOutcome {
                                namespace,
                                name,
                                approve,
                                result: Err("not connected to the API server".into()),
                            };
                            if out.send(Event::Decided(refused)).await.is_err() {
                                return;
                            }
                        }
                        // Kept: followed once the connection is back.
                        Some(Command::FollowLogs { namespace, agent }) => {
                            self.logs = Some(LogFollow { namespace, agent, task: None });
                        }
                        Some(Command::StopLogs) => self.logs = None,
                    },
                }
            }
        }
    }
}

/// A change of the dashboard's data already in summary form (what the Cortex daemon sends).
#[derive(Debug, Clone, PartialEq)]
pub enum SummaryChange {
    /// Every kind listed at once (replaces what was held).
    Listed {
        /// The agents.
        agents: Vec<AgentRow>,
        /// The pheromones.
        pheromones: Vec<PheromoneRow>,
        /// The proposals.
        proposals: Vec<ProposalRecord>,
    },
    /// An agent created or changed (`Some`), or deleted, by (namespace, name).
    Agent((String, String), Option<AgentRow>),
    /// A pheromone emitted or changed, or deleted.
    Pheromone((String, String), Option<PheromoneRow>),
    /// A proposal filed or changed, or deleted (boxed: a record with its risk assessment is
    /// several times larger than the other changes).
    Proposal((String, String), Option<Box<ProposalRecord>>),
    /// A line of the thought stream.
    Thought(Thought),
}

/// One watch event of one kind, or a change from the Cortex.
pub(crate) enum Change {
    /// From the Cortex daemon.
    #[cfg_attr(not(feature = "cortex"), allow(dead_code))]
    Summary(SummaryChange),
    Agent(watcher::Event<Agent>),
    Pheromone(watcher::Event<Pheromone>),
    Proposal(watcher::Event<Proposal>),
    Event(watcher::Event<KubeEvent>),
    /// The user may not watch Events: the thought stream stays empty, the rest works.
    EventsForbidden(String),
}

/// Whether the API server refused a watch (RBAC), as opposed to being unreachable.
fn forbidden(error: &watcher::Error) -> bool {
    let code = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code,
        watcher::Error::WatchError(status) => status.code,
        _ => 0,
    };
    code == 403
}

/// The Events watch; a refusal ends it with [`Change::EventsForbidden`] instead of failing
/// the connection (Events are the thought stream, not the dashboard's data).
fn events_stream(api: Api<KubeEvent>) -> ChangeStream {
    let refusal = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let seen = std::sync::Arc::clone(&refusal);
    let events = watcher(api, watcher::Config::default())
        .take_while(move |item| {
            let refused = matches!(item, Err(e) if forbidden(e));
            if let (true, Err(e)) = (refused, item) {
                *seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.to_string());
            }
            futures::future::ready(!refused)
        })
        .map(|event| {
            event
                .map(Change::Event)
                .map_err(|e| format!("watching events: {e}"))
        });
    let ended = futures::stream::once(async move {
        let reason = refusal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .unwrap_or_else(|| "the Events watch ended".into());
        Ok(Change::EventsForbidden(reason))
    });
    Box::pin(events.chain(ended))
}

/// Changes until the connection is lost (`Err(reason)`).
pub(crate) type ChangeStream = std::pin::Pin<Box<dyn Stream<Item = Result<Change, String>> + Send>>;

fn kind_stream<K>(api: Api<K>, wrap: fn(watcher::Event<K>) -> Change) -> ChangeStream
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let plural = K::plural(&()).into_owned();
    Box::pin(watcher(api, watcher::Config::default()).map(move |event| {
        event
            .map(wrap)
            .map_err(|e| format!("watching {plural}: {e}"))
    }))
}

type Key = (String, String);

fn key_of<K: ResourceExt>(object: &K) -> Key {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// A kind's objects as summaries, with the buffer of a re-list in progress.
struct Kind<T> {
    items: BTreeMap<Key, T>,
    relisting: Option<BTreeMap<Key, T>>,
    listed: bool,
}

impl<T> Default for Kind<T> {
    fn default() -> Self {
        Kind {
            items: BTreeMap::new(),
            relisting: None,
            listed: false,
        }
    }
}

impl<T> Kind<T> {
    /// Replaces everything with a full list.
    fn replace(&mut self, items: impl IntoIterator<Item = (Key, T)>) {
        self.items = items.into_iter().collect();
        self.relisting = None;
        self.listed = true;
    }

    /// Sets (`Some`) or removes one item; returns whether it changed what is shown.
    fn set(&mut self, key: Key, item: Option<T>) -> bool {
        match item {
            Some(item) => {
                self.items.insert(key, item);
                true
            }
            None => self.items.remove(&key).is_some(),
        }
    }

    /// Applies a watch event already turned into `(key, summary)`; returns whether it changed
    /// what is shown.
    fn apply<K>(&mut self, event: watcher::Event<K>, summarize: impl Fn(&K) -> Option<T>) -> bool
    where
        K: ResourceExt,
    {
        match event {
            watcher::Event::Init => {
                self.relisting = Some(BTreeMap::new());
                false
            }
            watcher::Event::InitApply(object) => {
                if let (Some(buffer), Some(summary)) = (self.relisting.as_mut(), summarize(&object))
                {
                    buffer.insert(key_of(&object), summary);
                }
                false
            }
            watcher::Event::InitDone => {
                if let Some(buffer) = self.relisting.take() {
                    self.items = buffer;
                }
                self.listed = true;
                true
            }
            watcher::Event::Apply(object) => {
                match summarize(&object) {
                    Some(summary) => self.items.insert(key_of(&object), summary),
                    None => self.items.remove(&key_of(&object)),
                };
                true
            }
            watcher::Event::Delete(object) => self.items.remove(&key_of(&object)).is_some(),
        }
    }
}

/// What the watches (or the daemon) have seen, as summaries.
struct Cache {
    /// The layer the data is shown as coming from.
    layer: &'static str,
    agents: Kind<AgentRow>,
    pheromones: Kind<PheromoneRow>,
    proposals: Kind<ProposalRecord>,
    events_listed: bool,
    dirty: bool,
}

impl Cache {
    fn new(layer: &'static str) -> Cache {
        Cache {
            layer,
            agents: Kind::default(),
            pheromones: Kind::default(),
            proposals: Kind::default(),
            events_listed: false,
            dirty: false,
        }
    }

    fn listed(&self) -> bool {
        self.agents.listed && self.pheromones.listed && self.proposals.listed && self.events_listed
    }

    /// Applies a change; an Event of a kgents object becomes a thought.
    fn apply(&mut self, change: Change, now: Timestamp) -> Option<Thought> {
        match change {
            Change::Summary(change) => self.apply_summary(change),
            Change::Agent(event) => {
                self.dirty |= self.agents.apply(event, |agent| {
                    kgents_logos::summary::agent_status(agent).map(|status| AgentRow {
                        summary: status.summary,
                        last_probe: status.last_probe_time,
                    })
                });
                None
            }
            Change::Pheromone(event) => {
                self.dirty |= self.pheromones.apply(event, |p| {
                    kgents_logos::summary::pheromone_record(p, now).map(|record| PheromoneRow {
                        record,
                        observed_at: now,
                    })
                });
                None
            }
            Change::Proposal(event) => {
                self.dirty |= self
                    .proposals
                    .apply(event, |p| Some(kgents_logos::summary::proposal_record(p)));
                None
            }
            Change::Event(event) => match event {
                watcher::Event::InitDone => {
                    self.events_listed = true;
                    None
                }
                watcher::Event::Apply(e) | watcher::Event::InitApply(e) => {
                    kgents_logos::summary::thought_of(&e)
                }
                watcher::Event::Init | watcher::Event::Delete(_) => None,
            },
            Change::EventsForbidden(reason) => {
                self.events_listed = true;
                Some(Thought {
                    at: now,
                    namespace: String::new(),
                    object: "Events".into(),
                    agent: None,
                    reason: "Forbidden".into(),
                    text: format!("the thought stream stays empty: {reason}"),
                    warning: true,
                })
            }
        }
    }

    fn apply_summary(&mut self, change: SummaryChange) -> Option<Thought> {
        let key_of_row = |row: &AgentRow| {
            (
                row.summary.namespace.clone(),
                row.summary.name.as_str().to_owned(),
            )
        };
        match change {
            SummaryChange::Listed {
                agents,
                pheromones,
                proposals,
            } => {
                self.agents
                    .replace(agents.into_iter().map(|a| (key_of_row(&a), a)));
                self.pheromones.replace(pheromones.into_iter().map(|p| {
                    let s = &p.record.summary;
                    ((s.namespace.clone(), s.name.clone()), p)
                }));
                self.proposals.replace(
                    proposals
                        .into_iter()
                        .map(|p| ((p.summary.namespace.clone(), p.summary.name.clone()), p)),
                );
                self.events_listed = true;
                self.dirty = true;
                None
            }
            SummaryChange::Agent(key, row) => {
                self.dirty |= self.agents.set(key, row);
                None
            }
            SummaryChange::Pheromone(key, row) => {
                self.dirty |= self.pheromones.set(key, row);
                None
            }
            SummaryChange::Proposal(key, row) => {
                self.dirty |= self.proposals.set(key, row.map(|r| *r));
                None
            }
            SummaryChange::Thought(thought) => Some(thought),
        }
    }

    fn dashboard(&self, now: Timestamp) -> Dashboard {
        Dashboard {
            agents: self.agents.items.values().cloned().collect(),
            pheromones: self.pheromones.items.values().cloned().collect(),
            proposals: self.proposals.items.values().cloned().collect(),
            source: Source::live(self.layer, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        let b = Backoff::default();
        assert_eq!(b.delay(1), Duration::from_millis(500));
        assert_eq!(b.delay(2), Duration::from_secs(1));
        assert_eq!(b.delay(4), Duration::from_secs(4));
        assert_eq!(b.delay(10), Duration::from_secs(15));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(15));
    }
}
