//! The witness recorder: each agent's history appended to a [`WitnessStore`] as it happens.
//!
//! ```text
//! shared watches (Agents, Proposals) ─► recorder ─► bounded channel ─► writer ─► store
//!   (the controllers' own streams)       diffs each version       batches what queued
//!                                        against the recorded     (one transaction each)
//!                                        state (kgents-seance)
//! ```
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

use futures::StreamExt;
use kgents_seance::observe;
use kgents_seance::{
    AgentRef, AgentState, NewRecord, RecordKind, TimeRange, WitnessRecord, WitnessStore,
};
use serde_json::Value;
use tokio::sync::mpsc;

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

/// Records waiting for the writer at most; beyond this they are dropped (and counted).
pub const CHANNEL_CAPACITY: usize = 4096;
/// Records appended in one transaction at most.
const BATCH: usize = 512;

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

    fn dropped(&mut self, agent: AgentRef) {
        self.gapped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agent);
    }
}

/// Records the history of every agent in `scope` (`None`: all namespaces) into `store` until
/// `stop` resolves: the recorder over the shared watches and the batching writer.
pub async fn record(
    watches: Watches,
    scope: Option<String>,
    store: Arc<dyn WitnessStore>,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()> + Send,
) {
    let mut recorded = match Recorded::load(&*store, scope).await {
        Ok(recorded) => recorded,
        Err(e) => {
            tracing::error!(store = %store.location(), error = %e, "the witness store cannot be read; not recording");
            return;
        }
    };
    let (tx, rx) = mpsc::channel::<NewRecord>(CHANNEL_CAPACITY);
    let writer = tokio::spawn(write(
        store.clone(),
        rx,
        metrics.clone(),
        recorded.gapped.clone(),
    ));
    let mut agents = Box::pin(watches.agents.subscribe());
    let mut proposals = Box::pin(watches.proposals.subscribe());
    let mut listed = Some(HashSet::new());
    tokio::pin!(stop);
    loop {
        let records = tokio::select! {
            _ = &mut stop => break,
            Some(event) = agents.next() => recorded.agent_event(&event, &mut listed, jiff::Timestamp::now()),
            Some(event) = proposals.next() => recorded.proposal_event(&event, jiff::Timestamp::now()),
            else => break,
        };
        for record in records {
            let agent = record.agent.clone();
            match tx.try_send(record) {
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
    mut rx: mpsc::Receiver<NewRecord>,
    metrics: Arc<Metrics>,
    gapped: Gapped,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let records = std::mem::take(&mut batch);
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
        metrics.set_witness_pending(rx.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
