//! Where records are kept: the [`WitnessStore`] trait, [`RedbWitnessStore`] (one local file, the
//! default) and `PgWitnessStore` (PostgreSQL, feature `postgres`).

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::record::{AgentRef, NewRecord, WitnessRecord};
use crate::retention::{Plan, Retention};

#[cfg(feature = "embedded")]
mod embedded;
#[cfg(feature = "postgres")]
mod postgres;

#[cfg(feature = "embedded")]
pub use embedded::RedbWitnessStore;
#[cfg(feature = "postgres")]
pub use postgres::PgWitnessStore;

/// A time window; either end open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    /// Records at or after this time.
    pub since: Option<Timestamp>,
    /// Records at or before this time.
    pub until: Option<Timestamp>,
}

impl TimeRange {
    /// Every record.
    pub const ALL: TimeRange = TimeRange {
        since: None,
        until: None,
    };

    /// Whether `at` is inside.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.since.is_none_or(|s| at >= s) && self.until.is_none_or(|u| at <= u)
    }
}

/// An agent with a recorded history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// The agent.
    pub agent: AgentRef,
    /// How many records it has.
    pub records: u64,
}

/// Durable storage of witness records. A call that returns `Ok` has reached stable storage.
/// Sequence numbers are given by the store, increase with every append, and order one
/// agent's records.
#[async_trait]
pub trait WitnessStore: Send + Sync {
    /// Appends a batch in one transaction (all or nothing), returning the records as stored.
    async fn append(&self, records: Vec<NewRecord>) -> Result<Vec<WitnessRecord>>;
    /// `agent`'s records inside `range`, in sequence order.
    async fn read(&self, agent: &AgentRef, range: TimeRange) -> Result<Vec<WitnessRecord>>;
    /// Every agent with records, ordered by namespace and name.
    async fn agents(&self) -> Result<Vec<Recorded>>;
    /// Replaces `agent`'s records up to and including `through_seq` with `checkpoint` (which
    /// keeps that sequence number), or removes them all when `checkpoint` is `None`, in one
    /// transaction.
    async fn compact(
        &self,
        agent: &AgentRef,
        through_seq: u64,
        checkpoint: Option<WitnessRecord>,
    ) -> Result<()>;
    /// Where the store is, for messages (never a password).
    fn location(&self) -> String;
}

impl std::fmt::Debug for dyn WitnessStore {
    /// Names the store by its location (never a password), so options holding one print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WitnessStore")
            .field(&self.location())
            .finish()
    }
}

/// What [`apply_retention`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionReport {
    /// Agents whose oldest records were folded into a checkpoint.
    pub compacted: usize,
    /// Agents forgotten (deleted, and every record past the age limit).
    pub forgotten: usize,
    /// Records dropped in all.
    pub dropped: usize,
    /// The agents forgotten, by name (a recorder must forget them too: their next record starts
    /// a new history).
    pub forgotten_agents: Vec<AgentRef>,
}

/// Applies `retention` to every agent in `store` at `now`.
///
/// # Errors
/// The store's errors, and [`crate::Error::Replay`] for a history that does not replay (left
/// as it is).
pub async fn apply_retention(
    store: &dyn WitnessStore,
    retention: &Retention,
    now: Timestamp,
) -> Result<RetentionReport> {
    let mut report = RetentionReport::default();
    for recorded in store.agents().await? {
        let records = store.read(&recorded.agent, TimeRange::ALL).await?;
        match retention.plan(&recorded.agent, &records, now)? {
            Plan::Keep => {}
            Plan::Compact {
                through_seq,
                checkpoint,
                dropped,
            } => {
                store
                    .compact(&recorded.agent, through_seq, Some(*checkpoint))
                    .await?;
                report.compacted += 1;
                report.dropped += dropped;
            }
            Plan::Forget => {
                let last = records.last().map_or(0, |r| r.seq);
                store.compact(&recorded.agent, last, None).await?;
                report.forgotten += 1;
                report.dropped += records.len();
                report.forgotten_agents.push(recorded.agent);
            }
        }
    }
    Ok(report)
}
