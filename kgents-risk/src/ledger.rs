//! [`ProposalLedger`]: the history the velocity and cumulative penalties read, and
//! [`LedgerSnapshot`], an in-memory ledger an operator fills from its informer cache.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A proposal as the ledger remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerProposal {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid` (empty when unknown).
    pub uid: String,
    /// Who filed it.
    pub proposer: String,
    /// `metadata.creationTimestamp`.
    pub created_at: Timestamp,
}

impl LedgerProposal {
    /// A ledger entry.
    pub fn new(
        name: impl Into<String>,
        uid: impl Into<String>,
        proposer: impl Into<String>,
        created_at: Timestamp,
    ) -> Self {
        LedgerProposal {
            name: name.into(),
            uid: uid.into(),
            proposer: proposer.into(),
            created_at,
        }
    }
}

/// Read access to the proposal history of each namespace. Object safe, so
/// [`assess`](fn@crate::assess) takes `&dyn ProposalLedger`; no I/O is expected behind it (an
/// operator fills a [`LedgerSnapshot`] from its informer cache).
///
/// `since` is a hint for cheap filtering: an implementation may also visit older entries, and
/// `assess` checks each entry's age itself. Entries dated after "now" (clock skew) must be
/// visited too; `assess` treats them as age 0.
pub trait ProposalLedger {
    /// Calls `visit` for each proposal in `namespace` created at or after `since`, including the
    /// proposal being assessed if the ledger already holds it (`assess` skips it).
    fn visit_proposals(
        &self,
        namespace: &str,
        since: Timestamp,
        visit: &mut dyn FnMut(&LedgerProposal),
    );

    /// Calls `visit` with the time of each change applied (a proposal executed) in `namespace` at
    /// or after `since`.
    fn visit_applied_changes(
        &self,
        namespace: &str,
        since: Timestamp,
        visit: &mut dyn FnMut(Timestamp),
    );
}

impl<L: ProposalLedger + ?Sized> ProposalLedger for &L {
    fn visit_proposals(
        &self,
        namespace: &str,
        since: Timestamp,
        visit: &mut dyn FnMut(&LedgerProposal),
    ) {
        (**self).visit_proposals(namespace, since, visit);
    }

    fn visit_applied_changes(
        &self,
        namespace: &str,
        since: Timestamp,
        visit: &mut dyn FnMut(Timestamp),
    ) {
        (**self).visit_applied_changes(namespace, since, visit);
    }
}

impl<L: ProposalLedger + ?Sized> ProposalLedger for Arc<L> {
    fn visit_proposals(
        &self,
        namespace: &str,
        since: Timestamp,
        visit: &mut dyn FnMut(&LedgerProposal),
    ) {
        (**self).visit_proposals(namespace, since, visit);
    }

    fn visit_applied_changes(
        &self,
        namespace: &str,
        since: Timestamp,
        visit: &mut dyn FnMut(Timestamp),
    ) {
        (**self).visit_applied_changes(namespace, since, visit);
    }
}

/// One namespace's history.
#[derive(Debug, Clone, Default, PartialEq)]
struct NamespaceHistory {
    proposals: Vec<LedgerProposal>,
    applied: Vec<Timestamp>,
}

/// An in-memory [`ProposalLedger`]: entries grouped by namespace, scanned linearly. Fill it from
/// an informer cache with [`record_proposal`](Self::record_proposal) and
/// [`record_applied_change`](Self::record_applied_change); drop old entries with
/// [`forget_before`](Self::forget_before).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LedgerSnapshot {
    namespaces: HashMap<String, NamespaceHistory>,
}

impl LedgerSnapshot {
    /// An empty ledger.
    pub fn new() -> Self {
        LedgerSnapshot::default()
    }

    /// Records a proposal filed in `namespace`.
    pub fn record_proposal(
        &mut self,
        namespace: impl Into<String>,
        proposal: LedgerProposal,
    ) -> &mut Self {
        self.namespaces
            .entry(namespace.into())
            .or_default()
            .proposals
            .push(proposal);
        self
    }

    /// Records a change applied in `namespace` at `applied_at`.
    pub fn record_applied_change(
        &mut self,
        namespace: impl Into<String>,
        applied_at: Timestamp,
    ) -> &mut Self {
        self.namespaces
            .entry(namespace.into())
            .or_default()
            .applied
            .push(applied_at);
        self
    }

    /// Drops every entry dated before `cutoff` (e.g. now − the cumulative window), and namespaces
    /// left empty.
    pub fn forget_before(&mut self, cutoff: Timestamp) {
        self.namespaces.retain(|_, history| {
            history.proposals.retain(|p| p.created_at >= cutoff);
            history.applied.retain(|at| *at >= cutoff);
            !(history.proposals.is_empty() && history.applied.is_empty())
        });
    }

    /// Number of entries (proposals and applied changes) over all namespaces.
    pub fn len(&self) -> usize {
        self.namespaces
            .values()
            .map(|history| history.proposals.len() + history.applied.len())
            .sum()
    }

    /// Whether the ledger holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ProposalLedger for LedgerSnapshot {
    fn visit_proposals(
        &self,
        namespace: &str,
        since: Timestamp,
        visit: &mut dyn FnMut(&LedgerProposal),
    ) {
        if let Some(history) = self.namespaces.get(namespace) {
            history
                .proposals
                .iter()
                .filter(|proposal| proposal.created_at >= since)
                .for_each(visit);
        }
    }

    fn visit_applied_changes(
        &self,
        namespace: &str,
        since: Timestamp,
        visit: &mut dyn FnMut(Timestamp),
    ) {
        if let Some(history) = self.namespaces.get(namespace) {
            history
                .applied
                .iter()
                .copied()
                .filter(|applied_at| *applied_at >= since)
                .for_each(visit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).expect("valid test timestamp")
    }

    #[test]
    fn snapshot_visits_only_the_namespace_and_window_asked_for() {
        let mut ledger = LedgerSnapshot::new();
        ledger
            .record_proposal("a", LedgerProposal::new("old", "u1", "x", at(100)))
            .record_proposal("a", LedgerProposal::new("new", "u2", "x", at(200)))
            .record_proposal("b", LedgerProposal::new("other", "u3", "x", at(200)))
            .record_applied_change("a", at(50))
            .record_applied_change("a", at(150))
            .record_applied_change("b", at(150));

        let mut names = Vec::new();
        ledger.visit_proposals("a", at(150), &mut |p| names.push(p.name.clone()));
        assert_eq!(names, ["new"]);

        let mut applied = Vec::new();
        ledger.visit_applied_changes("a", at(100), &mut |t| applied.push(t));
        assert_eq!(applied, [at(150)]);

        let mut nothing = 0;
        ledger.visit_proposals("missing", at(0), &mut |_| nothing += 1);
        assert_eq!(nothing, 0);
    }

    #[test]
    fn forget_before_drops_old_entries_and_empty_namespaces() {
        let mut ledger = LedgerSnapshot::new();
        ledger
            .record_proposal("a", LedgerProposal::new("old", "u1", "x", at(100)))
            .record_proposal("b", LedgerProposal::new("new", "u2", "x", at(300)))
            .record_applied_change("b", at(100));
        assert_eq!(ledger.len(), 3);
        ledger.forget_before(at(200));
        assert_eq!(ledger.len(), 1);
        assert!(!ledger.namespaces.contains_key("a"));
        ledger.forget_before(at(400));
        assert!(ledger.is_empty());
    }
}
