//! The journal's record format, pure: what an agent appends and what it reads back.
//!
//! A record is stored as one JSON document under its sequence number, so the format is the
//! same on disk and on the wire:
//!
//! ```json
//! {"seq": 7, "at": "2026-12-03T04:00:00Z", "kind": "thought", "data": {"text": "..."}}
//! ```
//!
//! Sequence numbers start at 1 and grow by one per record; a record is never changed or removed.

use serde::{Deserialize, Serialize};

use crate::limits::is_key_char;
use crate::{Error, Result};

/// The longest `kind`, in bytes.
pub const MAX_KIND_BYTES: usize = 64;

/// What an agent appends (`POST /journal`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalEntry {
    /// What sort of record this is (`note` when absent): 1 to 64 characters, the key
    /// characters ([`crate::limits::is_key_char`]).
    #[serde(default = "default_kind")]
    pub kind: String,
    /// The record's content: any JSON.
    pub data: serde_json::Value,
}

fn default_kind() -> String {
    "note".to_owned()
}

/// A record as stored and read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// Its sequence number (from 1).
    pub seq: u64,
    /// When the symbiont appended it.
    pub at: jiff::Timestamp,
    /// Its kind.
    pub kind: String,
    /// Its content.
    pub data: serde_json::Value,
}

impl JournalEntry {
    /// Checks the kind.
    pub fn check(&self) -> Result<()> {
        if self.kind.is_empty()
            || self.kind.len() > MAX_KIND_BYTES
            || !self.kind.chars().all(is_key_char)
        {
            return Err(Error::BadRequest(format!(
                "journal kind {:?} is not 1 to {MAX_KIND_BYTES} characters of ASCII letters, digits and . _ - : @; use e.g. \"thought\" or \"tool-call\"",
                self.kind.chars().take(80).collect::<String>()
            )));
        }
        Ok(())
    }

    /// The stored form of this entry as record `seq` appended `at`.
    pub fn into_record(self, seq: u64, at: jiff::Timestamp) -> JournalRecord {
        JournalRecord {
            seq,
            at,
            kind: self.kind,
            data: self.data,
        }
    }
}

impl JournalRecord {
    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        // A record holds plain JSON data and a timestamp; serialising it cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A record from its stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<JournalRecord> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::BadRequest(format!("a stored journal record does not decode: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_keep_their_shape() {
        let entry: JournalEntry = serde_json::from_str(r#"{"data": {"text": "hi"}}"#).unwrap();
        assert_eq!(entry.kind, "note");
        entry.check().unwrap();
        let at: jiff::Timestamp = "2026-12-03T04:00:00Z".parse().unwrap();
        let record = entry.into_record(7, at);
        let bytes = record.encode();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"seq":7,"at":"2026-12-03T04:00:00Z","kind":"note","data":{"text":"hi"}}"#
        );
        assert_eq!(JournalRecord::decode(&bytes).unwrap(), record);
    }

    #[test]
    fn bad_kinds_and_fields_are_refused() {
        for kind in ["", "a/b", "with space", &"k".repeat(65)] {
            let entry = JournalEntry {
                kind: kind.to_owned(),
                data: serde_json::Value::Null,
            };
            assert!(entry.check().is_err(), "{kind:?}");
        }
        assert!(serde_json::from_str::<JournalEntry>(r#"{"data":1,"extra":2}"#).is_err());
        assert!(serde_json::from_str::<JournalEntry>(r#"{"kind":"x"}"#).is_err());
    }
}
