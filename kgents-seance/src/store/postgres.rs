//! [`PgWitnessStore`]: the witness record in PostgreSQL, for production and for more than one
//! operator replica (every replica appends through the database; sequence numbers come from
//! one `BIGSERIAL`).
//!
//! One table, `kgents_witness`: the sequence number, the agent, the time in nanoseconds since
//! the epoch (for range reads) and the record's kind as JSON text. The schema is created when
//! missing. Queries are plain runtime queries: nothing needs a database at compile time.

use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{Recorded, TimeRange, WitnessStore};
use crate::error::{Error, Result};
use crate::record::{AgentRef, NewRecord, RecordKind, WitnessRecord};

const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS kgents_witness (
        seq BIGSERIAL PRIMARY KEY,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        at_ns BIGINT NOT NULL,
        kind TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS kgents_witness_agent ON kgents_witness (namespace, name, seq)",
];

/// A [`WitnessStore`] in a PostgreSQL database.
#[derive(Clone)]
pub struct PgWitnessStore {
    pool: PgPool,
    location: String,
}

impl std::fmt::Debug for PgWitnessStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWitnessStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// `url` without its password.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

fn nanos(at: Timestamp) -> i64 {
    i64::try_from(at.as_nanosecond()).unwrap_or(if at.as_nanosecond() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

impl PgWitnessStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`) and creates
    /// the schema when missing.
    ///
    /// # Errors
    /// [`Error::Store`] saying why the database could not be reached or prepared.
    pub async fn connect(url: &str) -> Result<PgWitnessStore> {
        let location = redact(url);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| Error::Store {
                path: location.clone(),
                reason: format!(
                    "cannot connect ({e}); check the URL and that PostgreSQL is running and accepts this user"
                ),
            })?;
        let store = PgWitnessStore { pool, location };
        for statement in SCHEMA {
            sqlx::query(statement)
                .execute(&store.pool)
                .await
                .map_err(|e| store.err("creating the schema", e))?;
        }
        Ok(store)
    }

    fn err(&self, what: &str, e: sqlx::Error) -> Error {
        Error::Store {
            path: self.location.clone(),
            reason: format!("{what}: {e}"),
        }
    }

    fn decode(&self, reason: impl std::fmt::Display) -> Error {
        Error::Decode {
            path: self.location.clone(),
            reason: reason.to_string(),
        }
    }

    fn encode(&self, kind: &RecordKind) -> Result<String> {
        serde_json::to_string(kind).map_err(|e| self.decode(e))
    }

    fn row(&self, row: &sqlx::postgres::PgRow) -> Result<WitnessRecord> {
        let get_text = |column: &str| -> Result<String> {
            row.try_get::<String, _>(column)
                .map_err(|e| self.err("reading a record", e))
        };
        let seq: i64 = row
            .try_get("seq")
            .map_err(|e| self.err("reading a record", e))?;
        let at_ns: i64 = row
            .try_get("at_ns")
            .map_err(|e| self.err("reading a record", e))?;
        let kind: RecordKind =
            serde_json::from_str(&get_text("kind")?).map_err(|e| self.decode(e))?;
        Ok(WitnessRecord {
            agent: AgentRef::new(get_text("namespace")?, get_text("name")?),
            at: Timestamp::from_nanosecond(i128::from(at_ns)).map_err(|e| self.decode(e))?,
            seq: u64::try_from(seq).map_err(|e| self.decode(e))?,
            kind,
        })
    }
}

#[async_trait]
impl WitnessStore for PgWitnessStore {
    async fn append(&self, records: Vec<NewRecord>) -> Result<Vec<WitnessRecord>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.err("appending", e))?;
        let mut stored = Vec::with_capacity(records.len());
        for record in records {
            let row = sqlx::query(
                "INSERT INTO kgents_witness (namespace, name, at_ns, kind) VALUES ($1, $2, $3, $4) RETURNING seq",
            )
            .bind(&record.agent.namespace)
            .bind(&record.agent.name)
            .bind(nanos(record.at))
            .bind(self.encode(&record.kind)?)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.err("appending", e))?;
            let seq: i64 = row.try_get(0).map_err(|e| self.err("appending", e))?;
            stored.push(WitnessRecord {
                agent: record.agent,
                at: record.at,
                seq: u64::try_from(seq).map_err(|e| self.decode(e))?,
                kind: record.kind,
            });
        }
        tx.commit().await.map_err(|e| self.err("appending", e))?;
        Ok(stored)
    }

    async fn read(&self, agent: &AgentRef, range: TimeRange) -> Result<Vec<WitnessRecord>> {
        let rows = sqlx::query(
            "SELECT seq, namespace, name, at_ns, kind FROM kgents_witness
             WHERE namespace = $1 AND name = $2 AND at_ns >= $3 AND at_ns <= $4 ORDER BY seq",
        )
        .bind(&agent.namespace)
        .bind(&agent.name)
        .bind(range.since.map_or(i64::MIN, nanos))
        .bind(range.until.map_or(i64::MAX, nanos))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err("reading", e))?;
        rows.iter().map(|row| self.row(row)).collect()
    }

    async fn agents(&self) -> Result<Vec<Recorded>> {
        let rows = sqlx::query(
            "SELECT namespace, name, count(*) AS records FROM kgents_witness
             GROUP BY namespace, name ORDER BY namespace, name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err("listing agents", e))?;
        rows.iter()
            .map(|row| {
                let text = |c: &str| {
                    row.try_get::<String, _>(c)
                        .map_err(|e| self.err("listing agents", e))
                };
                let records: i64 = row
                    .try_get("records")
                    .map_err(|e| self.err("listing agents", e))?;
                Ok(Recorded {
                    agent: AgentRef::new(text("namespace")?, text("name")?),
                    records: u64::try_from(records).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn compact(
        &self,
        agent: &AgentRef,
        through_seq: u64,
        checkpoint: Option<WitnessRecord>,
    ) -> Result<()> {
        let through = i64::try_from(through_seq).map_err(|e| self.decode(e))?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.err("compacting", e))?;
        sqlx::query("DELETE FROM kgents_witness WHERE namespace = $1 AND name = $2 AND seq <= $3")
            .bind(&agent.namespace)
            .bind(&agent.name)
            .bind(through)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err("compacting", e))?;
        if let Some(checkpoint) = checkpoint {
            sqlx::query(
                "INSERT INTO kgents_witness (seq, namespace, name, at_ns, kind) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(i64::try_from(checkpoint.seq).map_err(|e| self.decode(e))?)
            .bind(&agent.namespace)
            .bind(&agent.name)
            .bind(nanos(checkpoint.at))
            .bind(self.encode(&checkpoint.kind)?)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err("compacting", e))?;
        }
        tx.commit().await.map_err(|e| self.err("compacting", e))
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(
            super::redact("postgres://kgents:s3cret@127.0.0.1:5433/witness"),
            "postgres://kgents@127.0.0.1:5433/witness"
        );
        assert_eq!(
            super::redact("postgres://127.0.0.1/w"),
            "postgres://127.0.0.1/w"
        );
    }
}
