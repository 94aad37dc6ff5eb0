//! The witness recorder: each agent's history appended to a [`WitnessStore`] as it happens.
//!
//! ```text
//! shared watches (Agents, Proposals, ─► recorder ─► bounded channel ─► writer ─► store
//!   Pheromones, the operator's Events)   diffs each version       batches for up to 5 ms
//!   (the controllers' own streams)       against the recorded     or 1,000 records (one
//!                                        state (kgents-seance)    transaction each)
//! ```
//!
//! What is attributed to an agent: the Agent itself; Proposals that target it; Pheromones it
//! emitted (their `spec.source`); and Events whose `regarding` is the Agent or a Memory it owns.
//! The Event watch asks the API server for the operator's own Events only (field selector
//! `reportingController=<field manager>`): the operator is the one publisher of Events about
//! kgents objects, and this spares the process every Pod and Node Event of the cluster.
//!
//! Retention ([`WitnessRetention`]) runs at start and then on its interval, through the writer:
//! it runs after every record queued before it has been appended, and the recorder waits for it
//! (a reconcile never does), so an agent it forgets cannot have a record in flight built on the
//! forgotten history. Records it removes are counted (`kgents_witness_retention_removed_total`).
//!
//! Reconciles never wait on it: the recorder is one more subscriber of the watches the
//! controllers already share, and it never blocks on the store. When the channel is full a
//! record is counted as dropped (`kgents_witness_dropped_total`) and the agent's next record is
//! a checkpoint of its whole state, so the history still replays (with a visible gap) instead of
//! applying a patch to the wrong base.
//!
//! The recorder compares each object with the agent's state as the store has it (rebuilt at
//! start from the records), not with the previous version it saw: after a restart nothing is
//! recorded twice, changes made while it was down are recorded once, and agents deleted while it
//! was down are recorded as deleted once the first list shows them gone.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kgents_seance::observe;
use kgents_seance::{
    AgentRef, AgentState, NewRecord, RecordKind, Retention, RetentionReport, TimeRange,
    WitnessRecord, WitnessStore,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::shared::{Event, Watches};

/// Where the operator keeps the witness record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum WitnessSetting {
    /// Not recorded.
    #[default]
    Off,
    /// The embedded store: one redb file (a single replica; `kgents dev up` uses
    /// [`default_witness_path`]).
    File(PathBuf),
    /// PostgreSQL at this URL (production, and more than one replica).
    Postgres(String),
}

impl WitnessSetting {
    /// Parses `off`, a `postgres://` / `postgresql://` URL, or a file path.
    pub fn parse(text: &str) -> WitnessSetting {
        match text.trim() {
            "" | "off" | "none" => WitnessSetting::Off,
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                WitnessSetting::Postgres(url.to_owned())
            }
            path => WitnessSetting::File(PathBuf::from(path)),
        }
    }

    /// Opens the store this setting names (`None` when off).
    ///
    /// # Errors
    /// The store's refusal (a corrupt file is refused and kept; an unreachable database is
    /// named).
    pub async fn open(&self) -> kgents_seance::Result<Option<Arc<dyn WitnessStore>>> {
        Ok(match self {
            WitnessSetting::Off => None,
            WitnessSetting::File(path) => {
                let path = path.clone();
                let store = tokio::task::spawn_blocking(move || {
                    kgents_seance::RedbWitnessStore::open(&path)
                })
                .await
                .map_err(|e| kgents_seance::Error::Store {
                    path: "witness store".into(),
                    reason: e.to_string(),
                })??;
                Some(Arc::new(store))
            }
            WitnessSetting::Postgres(url) => {
                Some(Arc::new(kgents_seance::PgWitnessStore::connect(url).await?))
            }
        })
    }
}

/// The embedded store's default file: `$KGENTS_WITNESS` if set, else
/// `~/.kgents/witness/witness.redb` (beside the ghost cache), else `./witness.redb`.
pub fn default_witness_path() -> PathBuf {
    if let Some(path) = std::env::var_os("KGENTS_WITNESS").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".kgents/witness/witness.redb"),
        None => PathBuf::from("witness.redb"),
    }
}

/// How much of each agent's history the operator keeps, and how often it applies that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WitnessRetention {
    /// The limits per agent (default: 10,000 records and 30 days, [`Retention::default`]).
    pub limits: Retention,
    /// How often they are applied (default 10 minutes; also once when recording starts).
    pub interval: Duration,
}

impl Default for WitnessRetention {
    fn default() -> Self {
        WitnessRetention {
            limits: Retention::default(),
            interval: Duration::from_secs(600),
        }
    }
}

/// Records waiting for the writer at most; beyond this they are dropped (and counted).
pub const CHANNEL_CAPACITY: usize = 4096;
pub use kgents_seance::batch::{BATCH_RECORDS, BATCH_WINDOW};

/// What the writer is asked to do, in order.
enum ToWriter {
    /// Append a record.
    Record(NewRecord),
    /// Apply retention (after every record sent before), then answer.
    Retention(
        Retention,
        oneshot::Sender<kgents_seance::Result<RetentionReport>>,
    ),
}

/// Agents that lost a record (dropped, or a batch the store refused): their next record is a
/// checkpoint. Shared by the recorder and the writer.
type Gapped = Arc<std::sync::Mutex<HashSet<AgentRef>>>;

/// The recorder's memory: each agent's state as recorded, and which agents lost a record.
#[derive(Default)]
pub struct Recorded {
    states: HashMap<AgentRef, AgentState>,
    gapped: Gapped,
    /// The namespace the watches cover (`None`: all): a complete list says nothing about
    /// agents outside it.
    scope: Option<String>,
}

impl Recorded {
    /// Rebuilds the memory from the store: each agent's state after its last record.
    ///
    /// # Errors
    /// The store's errors, or a history that does not replay.
    pub async fn load(
        store: &dyn WitnessStore,
        scope: Option<String>,
    ) -> kgents_seance::Result<Recorded> {
        let mut recorded = Recorded {
            scope,
            ..Recorded::default()
        };
        for agent in store.agents().await? {
            let records = store.read(&agent.agent, TimeRange::ALL).await?;
            if records.is_empty() {
                continue;
            }
            let state = kgents_seance::reconstruct(&agent.agent, &records, None)?;
            recorded.states.insert(agent.agent, state);
        }
        Ok(recorded)
    }

    fn state(&mut self, agent: &AgentRef) -> &mut AgentState {
        self.states
            .entry(agent.clone())
            .or_insert_with(|| AgentState::empty(agent.clone()))
    }

    /// Turns `kinds` into records for `agent` at `now`, applies them to the memory, and
    /// returns them (a checkpoint instead when the agent has a gap).
    fn commit(
        &mut self,
        agent: &AgentRef,
        kinds: Vec<RecordKind>,
        now: jiff::Timestamp,
    ) -> Vec<NewRecord> {
        if kinds.is_empty() {
            return Vec::new();
        }
        let gapped = self
            .gapped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(agent);
        let state = self.state(agent);
        for kind in &kinds {
            // Sequence numbers come from the store; the memory only needs the order.
            let record = WitnessRecord {
                agent: agent.clone(),
                at: now,
                seq: state.seq + 1,
                kind: kind.clone(),
            };
            if let Err(e) = state.apply(&record) {
                tracing::warn!(%agent, error = %e, "a witness record does not apply to the recorded state");
            }
        }
        if gapped {
            return vec![NewRecord {
                agent: agent.clone(),
                at: now,
                kind: RecordKind::Checkpoint {
                    state: Box::new(state.clone()),
                },
            }];
        }
        kinds
            .into_iter()
            .map(|kind| NewRecord {
                agent: agent.clone(),
                at: now,
                kind,
            })
            .collect()
    }

    /// The records an Agent event adds.
    pub fn agent_event(
        &mut self,
        event: &Event<kgents_crds::Agent>,
        listed: &mut Option<HashSet<AgentRef>>,
        now: jiff::Timestamp,
    ) -> Vec<NewRecord> {
        match event {
            Event::Applied(agent) => {
                let object = serde_json::to_value(&**agent).unwrap_or(Value::Null);
                let Some(who) = observe::agent_of(&object) else {
                    return Vec::new();
                };
                if let Some(listed) = listed.as_mut() {
                    listed.insert(who.clone());
                }
                let kinds = observe::agent_changes(self.state(&who), &object);
                self.commit(&who, kinds, now)
            }
            Event::Deleted(agent) => {
                let object = serde_json::to_value(&**agent).unwrap_or(Value::Null);
                let Some(who) = observe::agent_of(&object) else {
                    return Vec::new();
                };
                let kinds = observe::agent_deleted(self.state(&who));
                self.commit(&who, kinds, now)
            }
            // The list is complete: recorded agents it did not name are gone.
            Event::Relisted => {
                let seen = listed.take().unwrap_or_default();
                *listed = Some(HashSet::new());
                let gone: Vec<AgentRef> = self
                    .states
                    .iter()
                    .filter(|(who, state)| {
                        state.exists
                            && !seen.contains(*who)
                            && self.scope.as_ref().is_none_or(|ns| &who.namespace == ns)
                    })
                    .map(|(who, _)| who.clone())
                    .collect();
                gone.into_iter()
                    .flat_map(|who| self.commit(&who, vec![RecordKind::Deleted], now))
                    .collect()
            }
        }
    }

    /// The records a Proposal event adds (for the Agent it targets).
    pub fn proposal_event(
        &mut self,
        event: &Event<kgents_crds::Proposal>,
        now: jiff::Timestamp,
    ) -> Vec<NewRecord> {
        let Event::Applied(proposal) = event else {
            return Vec::new();
        };
        let object = serde_json::to_value(&**proposal).unwrap_or(Value::Null);
        let Some(who) = observe::proposal_agent(&object) else {
            return Vec::new();
        };
        let kinds = observe::proposal_changes(self.state(&who), &object);
        self.commit(&who, kinds, now)
    }

    /// The record a Pheromone event adds (for the Agent that emitted it).
    pub fn pheromone_event(
        &mut self,
        event: &Event<kgents_crds::Pheromone>,
        now: jiff::Timestamp,
    ) -> Vec<NewRecord> {
        let Event::Applied(pheromone) = event else {
            return Vec::new();
        };
        let object = serde_json::to_value(&**pheromone).unwrap_or(Value::Null);
        let Some(who) = observe::pheromone_agent(&object) else {
            return Vec::new();
        };
        let kinds = observe::pheromone_changes(self.state(&who), &object);
        self.commit(&who, kinds, now)
    }

    /// The record an Event adds: for the Agent it is about, or the Agent that owns the object
    /// it is about (`owner_of` finds that one, e.g. in the Memory cache).
    pub fn kube_event(
        &mut self,
        event: &Event<k8s_openapi::api::events::v1::Event>,
        owner_of: impl Fn(&Value) -> Option<AgentRef>,
        now: jiff::Timestamp,
    ) -> Vec<NewRecord> {
        let Event::Applied(kube_event) = event else {
            return Vec::new();
        };
        let object = serde_json::to_value(&**kube_event).unwrap_or(Value::Null);
        let who = observe::event_agent(&object)
            .or_else(|| observe::event_object(&object).and_then(&owner_of));
        let Some(who) = who else {
            return Vec::new();
        };
        let kinds = observe::event_changes(self.state(&who), &object);
        self.commit(&who, kinds, now)
    }

    /// Forgets what retention forgot: the agents' next records start a new history.
    fn forget(&mut self, agents: &[AgentRef]) {
        for agent in agents {
            self.states.remove(agent);
            self.gapped
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(agent);
        }
    }

    fn dropped(&mut self, agent: AgentRef) {
        self.gapped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agent);
    }
}

/// The Agent that owns the kgents object an Event is about (a Memory, from the Memory cache).
fn owner_in(watches: &Watches, regarding: &Value) -> Option<AgentRef> {
    let api_version = regarding.get("apiVersion").and_then(Value::as_str)?;
    if !api_version.starts_with("kgents.io/")
        || regarding.get("kind").and_then(Value::as_str) != Some("Memory")
    {
        return None;
    }
    let key = kube::runtime::reflector::ObjectRef::<kgents_crds::Memory>::new(
        regarding.get("name").and_then(Value::as_str)?,
    )
    .within(regarding.get("namespace").and_then(Value::as_str)?);
    let memory = watches.memories.store().get(&key)?;
    observe::owning_agent(&serde_json::to_value(&*memory).ok()?)
}

/// Records the history of every agent in `scope` (`None`: all namespaces) into `store` until
/// `stop` resolves: the recorder over the shared watches, the batching writer, and retention
/// at start and every `retention.interval`.
pub async fn record(
    watches: Watches,
    scope: Option<String>,
    store: Arc<dyn WitnessStore>,
    metrics: Arc<Metrics>,
    retention: WitnessRetention,
    stop: impl std::future::Future<Output = ()> + Send,
) {
    let mut recorded = match Recorded::load(&*store, scope).await {
        Ok(recorded) => recorded,
        Err(e) => {
            tracing::error!(store = %store.location(), error = %e, "the witness store cannot be read; not recording");
            return;
        }
    };
    let (tx, rx) = mpsc::channel::<ToWriter>(CHANNEL_CAPACITY);
    let writer = tokio::spawn(write(
        store.clone(),
        rx,
        metrics.clone(),
        recorded.gapped.clone(),
    ));
    let mut agents = Box::pin(watches.agents.subscribe());
    let mut proposals = Box::pin(watches.proposals.subscribe());
    let mut pheromones = Box::pin(watches.pheromones.subscribe());
    let mut events = Box::pin(watches.events.subscribe());
    let mut listed = Some(HashSet::new());
    // The first tick is at once: retention also runs when recording starts.
    let mut retention_due = tokio::time::interval(retention.interval.max(Duration::from_millis(1)));
    retention_due.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        let now = jiff::Timestamp::now();
        let records = tokio::select! {
            _ = &mut stop => break,
            _ = retention_due.tick() => {
                let (reply, answer) = oneshot::channel();
                // Waits for room: retention must follow every record already queued.
                if tx.send(ToWriter::Retention(retention.limits, reply)).await.is_err() {
                    break;
                }
                match answer.await {
                    Ok(Ok(report)) => {
                        recorded.forget(&report.forgotten_agents);
                        metrics.witness_retention_removed(report.dropped);
                        if report.dropped > 0 {
                            tracing::info!(compacted = report.compacted, forgotten = report.forgotten, removed = report.dropped, "witness retention applied");
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(store = %store.location(), error = %e, "witness retention failed; the record is kept as it was"),
                    Err(_) => break,
                }
                Vec::new()
            }
            Some(event) = agents.next() => recorded.agent_event(&event, &mut listed, now),
            Some(event) = proposals.next() => recorded.proposal_event(&event, now),
            Some(event) = pheromones.next() => recorded.pheromone_event(&event, now),
            Some(event) = events.next() => recorded.kube_event(&event, |regarding| owner_in(&watches, regarding), now),
            else => break,
        };
        for record in records {
            let agent = record.agent.clone();
            match tx.try_send(ToWriter::Record(record)) {
                Ok(()) => {}
                Err(_) => {
                    metrics.witness_dropped();
                    recorded.dropped(agent);
                }
            }
        }
        metrics.set_witness_pending(CHANNEL_CAPACITY - tx.capacity());
    }
    // What queued is still written: the writer ends once the channel is empty and closed.
    drop(tx);
    let _ = writer.await;
}

async fn write(
    store: Arc<dyn WitnessStore>,
    mut rx: mpsc::Receiver<ToWriter>,
    metrics: Arc<Metrics>,
    gapped: Gapped,
) {
    let mut batch = Vec::with_capacity(BATCH_RECORDS);
    loop {
        kgents_seance::batch::gather(&mut rx, &mut batch, BATCH_RECORDS, BATCH_WINDOW, |m| {
            matches!(m, ToWriter::Retention(..))
        })
        .await;
        if batch.is_empty() {
            break;
        }
        let mut records = Vec::with_capacity(batch.len());
        for message in batch.drain(..) {
            match message {
                ToWriter::Record(record) => records.push(record),
                ToWriter::Retention(limits, reply) => {
                    append(&*store, std::mem::take(&mut records), &metrics, &gapped).await;
                    let report =
                        kgents_seance::apply_retention(&*store, &limits, jiff::Timestamp::now())
                            .await;
                    let _ = reply.send(report);
                }
            }
        }
        append(&*store, records, &metrics, &gapped).await;
        metrics.set_witness_pending(rx.len());
    }
}

/// Appends one batch; a batch the store refuses is counted as dropped and its agents gapped.
async fn append(
    store: &dyn WitnessStore,
    records: Vec<NewRecord>,
    metrics: &Metrics,
    gapped: &Gapped,
) {
    if records.is_empty() {
        return;
    }
    let count = records.len();
    let agents: HashSet<AgentRef> = records.iter().map(|r| r.agent.clone()).collect();
    if let Err(e) = store.append(records).await {
        // The batch is lost: counted as dropped, and its agents' next records are
        // checkpoints, so what follows still replays.
        tracing::error!(store = %store.location(), error = %e, count, "witness records could not be appended");
        for _ in 0..count {
            metrics.witness_dropped();
        }
        gapped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(agents);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::fixtures_controllers::mock_context;

    fn history(agent: &AgentRef, statuses: usize, deleted: bool) -> Vec<NewRecord> {
        let at = jiff::Timestamp::now();
        let mut kinds = vec![RecordKind::SpecChanged {
            generation: Some(1),
            diff: serde_json::json!([{"op": "replace", "path": "", "value": {"replicas": 1}}]),
        }];
        kinds.extend((0..statuses).map(|i| RecordKind::StatusChanged {
            diff: serde_json::json!([{"op": "add", "path": "/readyReplicas", "value": i}]),
        }));
        if deleted {
            kinds.push(RecordKind::Deleted);
        }
        kinds
            .into_iter()
            .map(|kind| NewRecord {
                agent: agent.clone(),
                at,
                kind,
            })
            .collect()
    }

    async fn count(store: &dyn WitnessStore, agent: &AgentRef) -> usize {
        store.read(agent, TimeRange::ALL).await.expect("read").len()
    }

    async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
        for _ in 0..200 {
            if done().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn retention_runs_at_start_and_again_on_its_interval() {
        let (ctx, _api, _clock) = mock_context(jiff::Timestamp::now());
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn WitnessStore> = Arc::new(
            kgents_seance::RedbWitnessStore::open(&dir.path().join("w.redb")).expect("store"),
        );
        let agent = AgentRef::new("ns", "gone");
        store
            .append(history(&agent, 8, true))
            .await
            .expect("append");
        let metrics = Arc::new(Metrics::new());
        let retention = WitnessRetention {
            limits: Retention {
                max_records: Some(3),
                max_age: None,
            },
            interval: Duration::from_millis(100),
        };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let recorder = tokio::spawn(record(
            ctx.watches.clone(),
            None,
            store.clone(),
            metrics.clone(),
            retention,
            async move {
                let _ = stop_rx.await;
            },
        ));
        // At start: 10 records become a checkpoint and the last 2.
        until("retention at start", async || {
            count(&*store, &agent).await == 3
        })
        .await;
        let first = store.read(&agent, TimeRange::ALL).await.expect("read");
        assert!(matches!(first[0].kind, RecordKind::Checkpoint { .. }));
        assert!(matches!(first[2].kind, RecordKind::Deleted));
        // More history arrives (another writer of the same agent's record, here by hand); the
        // next interval compacts it again, and the replayed state is unchanged by retention.
        let other = AgentRef::new("ns", "other");
        store
            .append(history(&other, 5, true))
            .await
            .expect("append");
        let whole = store.read(&other, TimeRange::ALL).await.expect("read");
        let before = kgents_seance::reconstruct(&other, &whole, None).expect("replays");
        until("retention on its interval", async || {
            count(&*store, &other).await == 3
        })
        .await;
        let kept = store.read(&other, TimeRange::ALL).await.expect("read");
        let after = kgents_seance::reconstruct(&other, &kept, None).expect("replays");
        assert_eq!(before.spec, after.spec);
        assert_eq!(before.status, after.status);
        assert_eq!(before.exists, after.exists);
        // 8 of the first 10 records and 5 of the next 7 removed, and counted.
        let text = metrics.encode();
        assert!(
            text.contains("kgents_witness_retention_removed_total 13"),
            "{text}"
        );
        let _ = stop_tx.send(());
        recorder.await.expect("recorder ends");
    }

    #[test]
    fn settings_parse() {
        assert_eq!(WitnessSetting::parse("off"), WitnessSetting::Off);
        assert_eq!(
            WitnessSetting::parse("postgres://u@h/db"),
            WitnessSetting::Postgres("postgres://u@h/db".into())
        );
        assert_eq!(
            WitnessSetting::parse("/var/lib/w.redb"),
            WitnessSetting::File("/var/lib/w.redb".into())
        );
    }
}
