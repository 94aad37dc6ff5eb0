//! Metrics of the Proposal controller: phase transitions by phase, reason and risk decision.
//! One [`ProposalMetrics`] lives in the operator's [`Metrics`](crate::metrics::Metrics) and is
//! registered in its registry, so the operator's one `/metrics` shows them next to the
//! reconcile counters and objects per phase.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of a phase transition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TransitionLabels {
    /// The phase entered.
    pub(crate) phase: String,
    /// Why (the condition reason).
    pub(crate) reason: String,
    /// The risk decision (AutoApprove, Review, RequireHuman, Block).
    pub(crate) decision: String,
}

/// The proposal lifecycle metrics.
pub(crate) struct ProposalMetrics {
    transitions: Family<TransitionLabels, Counter>,
}

impl std::fmt::Debug for ProposalMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProposalMetrics").finish_non_exhaustive()
    }
}

impl ProposalMetrics {
    /// Fresh metrics, registered in `registry` (whose prefix they take).
    pub(crate) fn registered_in(registry: &mut Registry) -> Self {
        let transitions = Family::<TransitionLabels, Counter>::default();
        registry.register(
            "proposal_transitions",
            "Proposal phase transitions, by phase, reason and risk decision",
            transitions.clone(),
        );
        Self { transitions }
    }

    /// Counts one phase transition.
    pub(crate) fn transition(&self, phase: &str, reason: &str, decision: &str) {
        self.transitions
            .get_or_create(&TransitionLabels {
                phase: phase.to_owned(),
                reason: reason.to_owned(),
                decision: decision.to_owned(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn transitions_are_counted_in_the_operator_registry_and_registries_are_independent() {
        let operator = crate::metrics::Metrics::new();
        operator
            .proposals()
            .transition("Merged", "Applied", "AutoApprove");
        operator.reconcile_started("proposal");
        let text = operator.encode();
        assert!(
            text.contains(r#"kgents_proposal_transitions_total{phase="Merged",reason="Applied",decision="AutoApprove"} 1"#),
            "{text}"
        );
        assert!(text.contains("kgents_reconciles"), "{text}");
        // No process-wide state: another operator's registry saw nothing.
        let other = crate::metrics::Metrics::new().encode();
        assert!(
            !other.contains(r#"phase="Merged""#),
            "a second registry shares no counters: {other}"
        );
    }
}
