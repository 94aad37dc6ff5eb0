//! The risk ledger read from the operator's Proposal informer cache: every proposal is a
//! filing (velocity), every proposal executed with success an applied change (cumulative).
//! Reading it costs a scan of the cache, never an API call.

use jiff::Timestamp;
use kgents_crds::Proposal;
use kgents_risk::{LedgerProposal, LedgerSnapshot, ProposalLedger};
use kube::runtime::reflector::Store;

/// A [`ProposalLedger`] over a reflector store of Proposals.
#[derive(Clone)]
pub struct StoreLedger {
    store: Store<Proposal>,
}

impl std::fmt::Debug for StoreLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLedger").finish_non_exhaustive()
    }
}

impl StoreLedger {
    /// A ledger reading `store`.
    pub fn new(store: Store<Proposal>) -> Self {
        Self { store }
    }
}

/// The ledger entry of a stored proposal (`None` without a creation time: never stored).
pub fn ledger_entry(proposal: &Proposal) -> Option<LedgerProposal> {
    let created_at = proposal.metadata.creation_timestamp.as_ref()?.0;
    Some(LedgerProposal::new(
        proposal.metadata.name.clone().unwrap_or_default(),
        proposal.metadata.uid.clone().unwrap_or_default(),
        proposal.spec.proposer.clone(),
        created_at,
    ))
}

/// When the proposal's change was applied, if it was.
pub fn applied_at(proposal: &Proposal) -> Option<Timestamp> {
    let execution = proposal.status.as_ref()?.execution.as_ref()?;
    (execution.success && !execution.dry_run).then_some(execution.executed_at.0)
}

/// A snapshot of `proposals` (tests, benchmarks, a CLI preflight).
pub fn snapshot<'a>(proposals: impl IntoIterator<Item = &'a Proposal>) -> LedgerSnapshot {
    let mut ledger = LedgerSnapshot::new();
    for proposal in proposals {
        let namespace = proposal.metadata.namespace.clone().unwrap_or_default();
        if let Some(entry) = ledger_entry(proposal) {
            ledger.record_proposal(namespace.clone(), entry);
        }
        if let Some(at) = applied_at(proposal) {
            ledger.record_applied_change(namespace, at);
        }
    }
    ledger
}

impl ProposalLedger for StoreLedger {
    fn visit_proposals(
        &self,
        namespace: &str,
        since: Timestamp,
        visit: &mut dyn FnMut(&LedgerProposal),
    ) {
        for proposal in self.store.state() {
            if proposal.metadata.namespace.as_deref() != Some(namespace) {
                continue;
            }
            if let Some(entry) = ledger_entry(&proposal).filter(|e| e.created_at >= since) {
                visit(&entry);
            }
        }
    }

    fn visit_applied_changes(
        &self,
        namespace: &str,
        since: Timestamp,
        visit: &mut dyn FnMut(Timestamp),
    ) {
        for proposal in self.store.state() {
            if proposal.metadata.namespace.as_deref() != Some(namespace) {
                continue;
            }
            if let Some(at) = applied_at(&proposal).filter(|at| *at >= since) {
                visit(at);
            }
        }
    }
}
