//! Metrics of the proposal lifecycle: admission verdicts by outcome and risk level, admission
//! latency, and controller transitions by phase, reason and risk decision.
//!
//! They are process-wide (the webhook and the controller record into [`metrics()`]) and are
//! registered into every operator [`crate::metrics::Metrics`] registry, so the operator's one
//! `/metrics` shows them next to the reconcile counters and objects per phase.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an admission verdict.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// `true` or `false`.
    pub allowed: String,
    /// LOW … CRITICAL, or `UNASSESSED`.
    pub level: String,
}

/// Labels of a phase transition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    /// The phase entered.
    pub phase: String,
    /// Why (the condition reason).
    pub reason: String,
    /// The risk decision (AutoApprove, Review, RequireHuman, Block).
    pub decision: String,
}

/// The proposal metrics.
pub struct ProposalMetrics {
    registry: Registry,
    verdicts: Family<VerdictLabels, Counter>,
    admission_seconds: Histogram,
    transitions: Family<TransitionLabels, Counter>,
}

impl std::fmt::Debug for ProposalMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProposalMetrics").finish_non_exhaustive()
    }
}

impl Default for ProposalMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ProposalMetrics {
    /// Fresh metrics under the `kgents` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kgents");
        let verdicts = Family::<VerdictLabels, Counter>::default();
        // 20 µs … ~0.7 s.
        let admission_seconds = Histogram::new(exponential_buckets(0.000_02, 2.0, 16));
        let transitions = Family::<TransitionLabels, Counter>::default();
        let metrics = Self {
            registry: Registry::default(),
            verdicts,
            admission_seconds,
            transitions,
        };
        metrics.register_in(&mut registry);
        Self {
            registry,
            ..metrics
        }
    }

    /// Registers these metrics (the same counters, shared) in `registry`, e.g. the operator's
    /// [`crate::metrics::Metrics`] registry, whose prefix they take.
    pub fn register_in(&self, registry: &mut Registry) {
        let (verdicts, admission_seconds, transitions) =
            (&self.verdicts, &self.admission_seconds, &self.transitions);
        registry.register(
            "admission_verdicts",
            "Admission verdicts on proposals, by outcome and risk level",
            verdicts.clone(),
        );
        registry.register(
            "admission_duration_seconds",
            "Time to decide one admission request",
            admission_seconds.clone(),
        );
        registry.register(
            "proposal_transitions",
            "Proposal phase transitions, by phase, reason and risk decision",
            transitions.clone(),
        );
    }

    /// Counts one admission verdict.
    pub fn verdict(&self, allowed: bool, level: Option<&str>, took: Duration) {
        self.verdicts
            .get_or_create(&VerdictLabels {
                allowed: allowed.to_string(),
                level: level.unwrap_or("UNASSESSED").to_owned(),
            })
            .inc();
        self.admission_seconds.observe(took.as_secs_f64());
    }

    /// Counts one phase transition.
    pub fn transition(&self, phase: &str, reason: &str, decision: &str) {
        self.transitions
            .get_or_create(&TransitionLabels {
                phase: phase.to_owned(),
                reason: reason.to_owned(),
                decision: decision.to_owned(),
            })
            .inc();
    }

    /// Encodes the metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process-wide proposal metrics: the controller is started through a plain function
/// pointer (see `run::controllers`), so its metrics cannot be handed to it and are shared here.
pub fn metrics() -> &'static ProposalMetrics {
    static METRICS: LazyLock<ProposalMetrics> = LazyLock::new(ProposalMetrics::new);
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_and_transitions_are_labelled() {
        let m = ProposalMetrics::new();
        m.verdict(false, Some("CRITICAL"), Duration::from_micros(80));
        m.transition("Approved", "AutoApproved", "AutoApprove");
        let text = m.encode();
        assert!(
            text.contains(r#"kgents_admission_verdicts_total{allowed="false",level="CRITICAL"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"kgents_proposal_transitions_total{phase="Approved",reason="AutoApproved",decision="AutoApprove"} 1"#), "{text}");
        assert!(
            text.contains("kgents_admission_duration_seconds_count 1"),
            "{text}"
        );
    }

    #[test]
    fn the_operator_registry_shows_the_process_wide_proposal_metrics() {
        metrics().transition("Merged", "Applied", "AutoApprove");
        metrics().verdict(true, Some("LOW"), Duration::from_micros(50));
        let operator = crate::metrics::Metrics::new();
        operator.reconcile_started("proposal");
        let text = operator.encode();
        assert!(
            text.contains(r#"kgents_proposal_transitions_total{phase="Merged",reason="Applied",decision="AutoApprove"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kgents_admission_verdicts_total{allowed="true",level="LOW"}"#),
            "{text}"
        );
        assert!(text.contains("kgents_admission_duration_seconds"), "{text}");
        assert!(text.contains("kgents_reconciles"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    }
}
