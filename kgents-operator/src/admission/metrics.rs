//! Metrics of the admission webhook: verdicts by outcome and risk level, and the time to
//! decide one request. One [`AdmissionMetrics`] lives in the operator's
//! [`Metrics`](crate::metrics::Metrics) and is registered in its registry, so the operator's
//! one `/metrics` shows them next to the reconcile counters.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an admission verdict.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct VerdictLabels {
    /// `true` or `false`.
    pub(crate) allowed: String,
    /// LOW … CRITICAL, or `UNASSESSED`.
    pub(crate) level: String,
}

/// The admission metrics.
pub(crate) struct AdmissionMetrics {
    verdicts: Family<VerdictLabels, Counter>,
    duration: Histogram,
}

impl std::fmt::Debug for AdmissionMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmissionMetrics").finish_non_exhaustive()
    }
}

impl AdmissionMetrics {
    /// Fresh metrics, registered in `registry` (whose prefix they take).
    pub(crate) fn registered_in(registry: &mut Registry) -> Self {
        let verdicts = Family::<VerdictLabels, Counter>::default();
        // 20 µs … ~0.7 s.
        let duration = Histogram::new(exponential_buckets(0.000_02, 2.0, 16));
        registry.register(
            "admission_verdicts",
            "Admission verdicts on proposals, by outcome and risk level",
            verdicts.clone(),
        );
        registry.register(
            "admission_duration_seconds",
            "Time to decide one admission request",
            duration.clone(),
        );
        Self { verdicts, duration }
    }

    /// Counts one admission verdict.
    pub(crate) fn verdict(&self, allowed: bool, level: Option<&str>, took: Duration) {
        self.verdicts
            .get_or_create(&VerdictLabels {
                allowed: allowed.to_string(),
                level: level.unwrap_or("UNASSESSED").to_owned(),
            })
            .inc();
        self.duration.observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn verdicts_are_counted_in_the_operator_registry_by_outcome_and_level() {
        let operator = crate::metrics::Metrics::new();
        operator.admission().verdict(
            false,
            Some("CRITICAL"),
            std::time::Duration::from_micros(80),
        );
        operator
            .admission()
            .verdict(true, None, std::time::Duration::from_micros(40));
        let text = operator.encode();
        assert!(
            text.contains(r#"kgents_admission_verdicts_total{allowed="false",level="CRITICAL"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"kgents_admission_verdicts_total{allowed="true",level="UNASSESSED"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("kgents_admission_duration_seconds_count 2"),
            "{text}"
        );
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    }
}
