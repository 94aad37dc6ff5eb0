//! Encoding snapshots into envelopes and decoding them back, with a precise reason for every
//! file that cannot be used. Pure: bytes in, bytes out.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{MAX_FILE_BYTES, MissReason};
use crate::error::{Error, Result};
use crate::snapshot::{Envelope, Payload, SCHEMA_VERSION, Snapshot, SnapshotKey, SnapshotKind};

/// Encodes a snapshot as the pretty-printed JSON envelope that is stored in its file.
///
/// # Errors
/// [`Error::InvalidSnapshot`] when the snapshot breaks an invariant (see [`Snapshot::problem`]),
/// [`Error::SnapshotTooLarge`] when the encoding exceeds [`MAX_FILE_BYTES`], and
/// [`Error::Encode`] if serialisation fails.
pub fn encode(snapshot: &Snapshot) -> Result<Vec<u8>> {
    let key = snapshot.key();
    if let Some(problem) = snapshot.problem() {
        return Err(Error::InvalidSnapshot { key, problem });
    }
    let kind = snapshot.kind();
    let taken_at = snapshot.taken_at;
    fn envelope<T: serde::Serialize>(
        kind: SnapshotKind,
        taken_at: jiff::Timestamp,
        data: &T,
    ) -> serde_json::Result<Vec<u8>> {
        let envelope = Envelope {
            schema_version: SCHEMA_VERSION,
            kind,
            taken_at,
            data,
        };
        // The digest is read on every `kgents status`: compact, it is a third of the bytes to
        // read and parse. The other files stay readable by a person.
        let mut bytes = if kind == SnapshotKind::StatusDigest {
            serde_json::to_vec(&envelope)?
        } else {
            serde_json::to_vec_pretty(&envelope)?
        };
        bytes.push(b'\n');
        Ok(bytes)
    }
    let encoded = match &snapshot.payload {
        Payload::AgentsIndex(d) => envelope(kind, taken_at, d),
        Payload::AgentStatus(d) => envelope(kind, taken_at, d),
        Payload::ActivePheromones(d) => envelope(kind, taken_at, d),
        Payload::PheromonesByType(d) => envelope(kind, taken_at, d),
        Payload::PendingProposals(d) | Payload::RejectedProposals(d) => envelope(kind, taken_at, d),
        Payload::ClusterStatus(d) => envelope(kind, taken_at, d),
        Payload::StatusDigest(d) => envelope(kind, taken_at, d),
        Payload::StabilityScore(d) => envelope(kind, taken_at, d),
    };
    let bytes = encoded.map_err(|source| Error::Encode {
        key: key.clone(),
        source,
    })?;
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > MAX_FILE_BYTES {
        return Err(Error::SnapshotTooLarge {
            key,
            bytes: len,
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(bytes)
}

/// Only the fields needed to decide whether the rest is worth parsing; `data` is skipped.
#[derive(Deserialize)]
struct Header {
    schema_version: u32,
    kind: String,
}

fn json_problem(err: &serde_json::Error) -> MissReason {
    if err.is_eof() {
        MissReason::Truncated {
            detail: err.to_string(),
        }
    } else {
        MissReason::Corrupt {
            detail: err.to_string(),
        }
    }
}

fn typed<T: DeserializeOwned>(text: &str) -> Result<(jiff::Timestamp, T), MissReason> {
    let envelope: Envelope<T> = serde_json::from_str(text).map_err(|e| json_problem(&e))?;
    Ok((envelope.taken_at, envelope.data))
}

/// Decodes the bytes of the file stored under `key`.
///
/// # Errors
/// The [`MissReason`] that makes the file unusable: too large, not UTF-8, truncated or corrupt
/// JSON, another schema version, another kind, data that belongs under another key, or content
/// that breaks an invariant.
pub fn decode(bytes: &[u8], key: &SnapshotKey) -> Result<Snapshot, MissReason> {
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > MAX_FILE_BYTES {
        return Err(MissReason::TooLarge {
            bytes: len,
            limit: MAX_FILE_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| MissReason::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let header: Header = serde_json::from_str(text).map_err(|e| json_problem(&e))?;
    if header.schema_version != SCHEMA_VERSION {
        return Err(MissReason::WrongVersion {
            found: header.schema_version,
            supported: SCHEMA_VERSION,
        });
    }
    let expected = key.kind();
    if header.kind != expected.as_str() {
        return Err(MissReason::WrongKind {
            found: header.kind,
            expected,
        });
    }
    let (taken_at, payload) = match expected {
        SnapshotKind::AgentsIndex => typed(text).map(|(t, d)| (t, Payload::AgentsIndex(d)))?,
        SnapshotKind::AgentStatus => typed(text).map(|(t, d)| (t, Payload::AgentStatus(d)))?,
        SnapshotKind::ActivePheromones => {
            typed(text).map(|(t, d)| (t, Payload::ActivePheromones(d)))?
        }
        SnapshotKind::PheromonesByType => {
            typed(text).map(|(t, d)| (t, Payload::PheromonesByType(d)))?
        }
        SnapshotKind::PendingProposals => {
            typed(text).map(|(t, d)| (t, Payload::PendingProposals(d)))?
        }
        SnapshotKind::RejectedProposals => {
            typed(text).map(|(t, d)| (t, Payload::RejectedProposals(d)))?
        }
        SnapshotKind::ClusterStatus => typed(text).map(|(t, d)| (t, Payload::ClusterStatus(d)))?,
        SnapshotKind::StatusDigest => typed(text).map(|(t, d)| (t, Payload::StatusDigest(d)))?,
        SnapshotKind::StabilityScore => {
            typed(text).map(|(t, d)| (t, Payload::StabilityScore(d)))?
        }
    };
    let snapshot = Snapshot::new(taken_at, payload);
    let found = snapshot.key();
    if &found != key {
        return Err(MissReason::WrongKey { found });
    }
    if let Some(detail) = snapshot.problem() {
        return Err(MissReason::Invalid { detail });
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::AgentName;
    use crate::snapshot::{AgentStatus, AgentSummary, ClusterStatus, Query, StabilityScore};
    use jiff::Timestamp;

    fn agent(name: &str) -> Snapshot {
        Snapshot::new(
            Timestamp::from_second(1_800_000_000).unwrap(),
            Payload::AgentStatus(AgentStatus {
                summary: AgentSummary {
                    name: AgentName::new(name).unwrap(),
                    namespace: "kgents-agents".into(),
                    genus: "L".into(),
                    phase: "Running".into(),
                    cognitive_health: "HEALTHY".into(),
                    ready_replicas: 1,
                    replicas: 1,
                },
                conditions: vec![],
                last_probe_time: None,
            }),
        )
    }

    fn key(name: &str) -> SnapshotKey {
        Query::Agent(AgentName::new(name).unwrap()).into()
    }

    /// Found by the `ghost_snapshot` fuzz target: a half-life written with 92 digits read as
    /// `4.4444444444444455e91`, which wrote back as such and then read as
    /// `4.444444444444445e91` (serde_json's default float parser is not exact for long
    /// mantissas; the workspace enables `float_roundtrip`).
    #[test]
    fn numbers_read_back_exactly_as_written() {
        let file = r#"{"schema_version":1,"kind":"status_digest","taken_at":"2027-01-15T08:00:00Z",
            "data":{"namespaces":[{"namespace":"ns","agents":{"total":0,"ready":0,"by_phase":{},
            "by_health":{},"attention":[]},"heat":[{"pheromone_type":"STATE",
            "half_life_seconds":44444444444444444444444444444444444444444444444444444444444444444444444444444444444444444600.0,"members":[[0.246067,null]]},
            {"pheromone_type":"WARNING","half_life_seconds":1390.689059560852,
            "members":[[0.1234567890123457,1.7976931348623157e308]]}],"evaporated":0,
            "pending":[]}]}}"#;
        let key: SnapshotKey = Query::StatusDigest.into();
        let read = decode(file.as_bytes(), &key).expect("a valid digest");
        let again = decode(&encode(&read).expect("encodes"), &key).expect("decodes");
        assert_eq!(again, read);
    }

    #[test]
    fn round_trip() {
        let s = agent("l-gent");
        let bytes = encode(&s).unwrap();
        assert_eq!(decode(&bytes, &key("l-gent")).unwrap(), s);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("\"schema_version\": 1"), "{text}");
        assert!(text.contains("\"kind\": \"agent_status\""), "{text}");
    }

    #[test]
    fn data_under_another_name_is_a_miss() {
        let bytes = encode(&agent("l-gent")).unwrap();
        assert!(matches!(
            decode(&bytes, &key("b-gent")),
            Err(MissReason::WrongKey { .. })
        ));
        assert!(matches!(
            decode(&bytes, &Query::ClusterStatus.into()),
            Err(MissReason::WrongKind { .. })
        ));
    }

    #[test]
    fn every_broken_form_is_a_reasoned_miss() {
        let good = encode(&Snapshot::new(
            Timestamp::UNIX_EPOCH,
            Payload::ClusterStatus(ClusterStatus::default()),
        ))
        .unwrap();
        let k: SnapshotKey = Query::ClusterStatus.into();
        assert!(matches!(
            decode(&good[..good.len() / 2], &k),
            Err(MissReason::Truncated { .. })
        ));
        assert!(matches!(decode(b"", &k), Err(MissReason::Truncated { .. })));
        assert!(matches!(decode(b"{]", &k), Err(MissReason::Corrupt { .. })));
        assert!(matches!(
            decode(b"\xff\xfe{}", &k),
            Err(MissReason::NotUtf8 { valid_up_to: 0 })
        ));
        let v2 = String::from_utf8(good.clone())
            .unwrap()
            .replace("\"schema_version\": 1", "\"schema_version\": 2");
        assert_eq!(
            decode(v2.as_bytes(), &k),
            Err(MissReason::WrongVersion {
                found: 2,
                supported: 1
            })
        );
        let nan = br#"{"schema_version":1,"kind":"stability_score","taken_at":"2026-01-01T00:00:00Z","data":{"score":1.5,"observations":3}}"#;
        assert!(matches!(
            decode(nan, &SnapshotKey::StabilityScore),
            Err(MissReason::Invalid { .. })
        ));
    }

    #[test]
    fn invalid_snapshots_are_not_encoded() {
        let s = Snapshot::new(
            Timestamp::UNIX_EPOCH,
            Payload::StabilityScore(StabilityScore {
                score: f64::NAN,
                observations: 0,
            }),
        );
        assert!(matches!(encode(&s), Err(Error::InvalidSnapshot { .. })));
    }
}
