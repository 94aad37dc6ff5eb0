//! Retention per agent, by count and age, as a pure plan: which records to drop and the
//! checkpoint that replaces them, so what is kept still replays to the same states.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::record::{AgentRef, RecordKind, WitnessRecord};
use crate::state::reconstruct;

/// How much history to keep per agent. A limit of `None` keeps everything on that axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// At most this many records per agent (the checkpoint counts as one); at least 1.
    pub max_records: Option<usize>,
    /// Records older than this are folded into the checkpoint.
    #[serde(with = "secs")]
    pub max_age: Option<Duration>,
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

impl Default for Retention {
    /// 10,000 records and 30 days per agent.
    fn default() -> Self {
        Retention {
            max_records: Some(10_000),
            max_age: Some(Duration::from_secs(30 * 24 * 3600)),
        }
    }
}

/// What retention does to one agent's records.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing to drop.
    Keep,
    /// Drop the records up to and including `through_seq` and put `checkpoint` (stamped with
    /// the last dropped record's time and sequence number) in their place.
    Compact {
        /// The last sequence number dropped.
        through_seq: u64,
        /// The state after the dropped records.
        checkpoint: Box<WitnessRecord>,
        /// How many records are dropped.
        dropped: usize,
    },
    /// Every record is past the age limit and the agent was deleted: forget it.
    Forget,
}

impl Retention {
    /// The plan for `records` (one agent's, in sequence order) at `now`.
    ///
    /// # Errors
    /// A record that does not replay ([`crate::Error::Replay`]): nothing is dropped then.
    pub fn plan(
        &self,
        agent: &AgentRef,
        records: &[WitnessRecord],
        now: Timestamp,
    ) -> Result<Plan> {
        if records.is_empty() {
            return Ok(Plan::Keep);
        }
        // How many of the oldest records go: enough to satisfy the count (the checkpoint takes
        // one place), and every one older than the age limit.
        let mut drop = 0;
        if let Some(max) = self.max_records {
            let max = max.max(1);
            if records.len() > max {
                drop = records.len() - max + 1;
            }
        }
        if let Some(age) = self.max_age {
            let cutoff = now
                .checked_sub(
                    jiff::SignedDuration::try_from(age).unwrap_or(jiff::SignedDuration::MAX),
                )
                .unwrap_or(Timestamp::MIN);
            let old = records.iter().take_while(|r| r.at < cutoff).count();
            drop = drop.max(old);
        }
        if drop == 0 {
            return Ok(Plan::Keep);
        }
        let state = reconstruct(agent, &records[..drop], None)?;
        if drop == records.len() && !state.exists && self.max_age.is_some() {
            return Ok(Plan::Forget);
        }
        // One record folded into a checkpoint of itself saves nothing unless it must go by age.
        if drop == 1 && matches!(records[0].kind, RecordKind::Checkpoint { .. }) {
            return Ok(Plan::Keep);
        }
        let last = &records[drop - 1];
        Ok(Plan::Compact {
            through_seq: last.seq,
            checkpoint: Box::new(WitnessRecord {
                agent: agent.clone(),
                at: last.at,
                seq: last.seq,
                kind: RecordKind::Checkpoint {
                    state: Box::new(state),
                },
            }),
            dropped: drop,
        })
    }
}
