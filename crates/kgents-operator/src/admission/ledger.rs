//! The risk ledger read from the operator's Proposal informer cache: every proposal is a
//! filing (velocity), every proposal executed with success an applied change (cumulative).
//! Reading it never costs an API call.
//!
//! Building the ledger from the cache allocates per proposal, which under load (hundreds of
//! admissions per second over thousands of proposals) would cost more than the decision itself,
//! so [`StoreLedger`] rebuilds a [`LedgerSnapshot`] at most once per `max_age` (250 ms by
//! default) and shares it. Velocity and cumulative penalties are soft, hour- and day-scale
//! signals, so a quarter second of staleness does not change what they mean, and the
//! controller's authoritative assessment is made later from the live cache.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kgents_crds::Proposal;
use kgents_risk::{LedgerProposal, LedgerSnapshot, ProposalLedger};
use kube::runtime::reflector::Store;

/// A snapshot and when it was built.
type Built = (Instant, Arc<LedgerSnapshot>);

/// A [`ProposalLedger`] over a reflector store of Proposals, through a snapshot rebuilt at most
/// once per `max_age`.
#[derive(Clone)]
pub struct StoreLedger {
    store: Store<Proposal>,
    max_age: Duration,
    cache: Arc<Mutex<Option<Built>>>,
}

impl std::fmt::Debug for StoreLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLedger").finish_non_exhaustive()
    }
}

impl StoreLedger {
    /// A ledger reading `store`, with snapshots at most 250 ms old.
    pub fn new(store: Store<Proposal>) -> Self {
        Self::with_max_age(store, Duration::from_millis(250))
    }

    /// A ledger reading `store`, with snapshots at most `max_age` old (zero: always fresh).
    pub fn with_max_age(store: Store<Proposal>, max_age: Duration) -> Self {
        Self {
            store,
            max_age,
            cache: Arc::new(Mutex::new(None)),
        }
    }

    /// The current snapshot, rebuilt when older than `max_age`.
    pub fn snapshot(&self) -> Arc<LedgerSnapshot> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match cache.as_ref() {
            Some((built, snapshot)) if built.elapsed() < self.max_age => snapshot.clone(),
            _ => {
                let state = self.store.state();
                let fresh = Arc::new(snapshot(state.iter().map(|p| p.as_ref())));
                *cache = Some((Instant::now(), fresh.clone()));
                fresh
            }
        }
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
        self.snapshot().visit_proposals(namespace, since, visit);
    }

    fn visit_applied_changes(
        &self,
        namespace: &str,
        since: Timestamp,
        visit: &mut dyn FnMut(Timestamp),
    ) {
        self.snapshot()
            .visit_applied_changes(namespace, since, visit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::{reflector, watcher};

    fn proposal(name: &str, namespace: &str, created: i64, applied: Option<i64>) -> Proposal {
        let mut value = serde_json::json!({
            "apiVersion": "kgents.io/v1", "kind": "Proposal",
            "metadata": {"name": name, "namespace": namespace, "uid": format!("u-{name}"),
                "creationTimestamp": Timestamp::from_second(created).expect("valid").to_string()},
            "spec": {"proposer": "alice", "changeType": "AGENT_SCALE", "target": {"kind": "Agent", "name": "b"}},
        });
        if let Some(at) = applied {
            value["status"] = serde_json::json!({"execution": {"success": true, "dryRun": false,
                "executedAt": Timestamp::from_second(at).expect("valid").to_string()}});
        }
        serde_json::from_value(value).expect("valid proposal")
    }

    fn count(ledger: &dyn ProposalLedger, namespace: &str) -> (usize, usize) {
        let (mut proposals, mut applied) = (0, 0);
        ledger.visit_proposals(namespace, Timestamp::UNIX_EPOCH, &mut |_| proposals += 1);
        ledger.visit_applied_changes(namespace, Timestamp::UNIX_EPOCH, &mut |_| applied += 1);
        (proposals, applied)
    }

    #[test]
    fn filings_and_applied_changes_come_from_the_cache_per_namespace() {
        let (store, mut writer) = reflector::store::<Proposal>();
        writer.apply_watcher_event(&watcher::Event::Apply(proposal(
            "a",
            "team",
            100,
            Some(150),
        )));
        writer.apply_watcher_event(&watcher::Event::Apply(proposal("b", "team", 200, None)));
        writer.apply_watcher_event(&watcher::Event::Apply(proposal("c", "other", 200, None)));
        let fresh = StoreLedger::with_max_age(store.clone(), Duration::ZERO);
        assert_eq!(count(&fresh, "team"), (2, 1));
        assert_eq!(count(&fresh, "other"), (1, 0));

        let cached = StoreLedger::with_max_age(store, Duration::from_secs(3_600));
        assert_eq!(count(&cached, "team"), (2, 1));
        writer.apply_watcher_event(&watcher::Event::Apply(proposal("d", "team", 300, None)));
        assert_eq!(
            count(&cached, "team"),
            (2, 1),
            "a snapshot is reused within its age"
        );
        assert_eq!(
            count(&fresh, "team"),
            (3, 1),
            "an age of zero always reads the cache"
        );
    }
}
