//! Prometheus metrics of the operator (`/metrics`).
//!
//! One [`Metrics`] value is shared by every controller through the [`Context`](crate::Context).
//! The registry is owned here (no global registry), so tests can build as many as they like.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the per-controller counters and histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// The controller's name, e.g. `agent`.
    pub controller: String,
}

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The controller's name.
    pub controller: String,
    /// A stable, low-cardinality label for the error ([`crate::Error::metric_label`]).
    pub reason: String,
}

/// Labels of the objects-per-phase gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// The kind, e.g. `Agent`.
    pub kind: String,
    /// The phase as written in status, e.g. `Running`.
    pub phase: String,
}

/// Labels of the probe call counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeKindLabels {
    /// The probe, e.g. `reasoning`.
    pub kind: String,
}

/// Labels of counters keyed by a reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// A stable, low-cardinality reason, e.g. `wrong_answer` or `transition`.
    pub reason: String,
}

/// Labels of the agents-per-cognitive-health gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HealthLabels {
    /// The health as written in status, e.g. `HEALTHY`.
    pub health: String,
}

fn duration_histogram() -> Histogram {
    // 1 ms … ~16 s: reconciles are API round trips, a few to a few hundred milliseconds.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The operator's metrics and the registry they are encoded from.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    phases: Family<PhaseLabels, Gauge>,
    /// The phase last seen for each object, so the gauge can move an object between phases.
    /// A plain mutex: it is held for a map update only, never across an await.
    phase_of: Mutex<HashMap<(String, String), String>>,
    probe_calls: Family<ProbeKindLabels, Counter>,
    probe_failures: Family<ReasonLabels, Counter>,
    probe_budget_waits: Counter,
    probe_status_writes: Family<ReasonLabels, Counter>,
    cognitive_health: Family<HealthLabels, Gauge>,
    /// The health last seen for each probed agent (same locking rule as `phase_of`).
    health_of: Mutex<HashMap<String, String>>,
    admission: crate::admission::metrics::AdmissionMetrics,
    proposals: crate::proposal::metrics::ProposalMetrics,
    witness_pending: Gauge,
    witness_dropped: Counter,
    witness_retention_removed: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates the metrics and registers them under the `kgents` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kgents");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration =
            Family::<ControllerLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        let phases = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "reconciles",
            "Reconciles started, by controller",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by controller and reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile, by controller",
            duration.clone(),
        );
        registry.register("objects", "Objects per kind and phase", phases.clone());
        let probe_calls = Family::<ProbeKindLabels, Counter>::default();
        let probe_failures = Family::<ReasonLabels, Counter>::default();
        let probe_budget_waits = Counter::default();
        let probe_status_writes = Family::<ReasonLabels, Counter>::default();
        let cognitive_health = Family::<HealthLabels, Gauge>::default();
        registry.register(
            "probe_calls",
            "Cognitive probe calls made to agents' models, by probe",
            probe_calls.clone(),
        );
        registry.register(
            "probe_failures",
            "Cognitive probe rounds that did not pass, by reason (slow, wrong_answer, timeout, transport, rate_limited, auth, provider, model_not_found, bad_response, config)",
            probe_failures.clone(),
        );
        registry.register(
            "probe_budget_waits",
            "Probe rounds that were due but had to wait for the global call budget",
            probe_budget_waits.clone(),
        );
        registry.register(
            "probe_status_writes",
            "Agent status writes of the cognitive runner, by reason (transition, refresh)",
            probe_status_writes.clone(),
        );
        registry.register(
            "cognitive_agents",
            "Probed agents per cognitive health",
            cognitive_health.clone(),
        );
        // Admission and the proposal lifecycle, so one /metrics shows everything.
        let admission = crate::admission::metrics::AdmissionMetrics::registered_in(&mut registry);
        let proposals = crate::proposal::metrics::ProposalMetrics::registered_in(&mut registry);
        let witness_pending = Gauge::default();
        let witness_dropped = Counter::default();
        let witness_retention_removed = Counter::default();
        registry.register(
            "witness_pending",
            "Witness records waiting to be appended to the store",
            witness_pending.clone(),
        );
        registry.register(
            "witness_dropped",
            "Witness records dropped (the buffer was full, or the store refused a batch)",
            witness_dropped.clone(),
        );
        registry.register(
            "witness_retention_removed",
            "Witness records removed by retention (folded into a checkpoint, or forgotten with their agent)",
            witness_retention_removed.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            duration,
            phases,
            phase_of: Mutex::new(HashMap::new()),
            probe_calls,
            probe_failures,
            probe_budget_waits,
            probe_status_writes,
            cognitive_health,
            health_of: Mutex::new(HashMap::new()),
            admission,
            proposals,
            witness_pending,
            witness_dropped,
            witness_retention_removed,
        }
    }

    /// The admission webhook's metrics.
    pub(crate) fn admission(&self) -> &crate::admission::metrics::AdmissionMetrics {
        &self.admission
    }

    /// The Proposal controller's metrics.
    pub(crate) fn proposals(&self) -> &crate::proposal::metrics::ProposalMetrics {
        &self.proposals
    }

    /// Counts one reconcile of `controller`.
    pub fn reconcile_started(&self, controller: &str) {
        self.reconciles
            .get_or_create(&ControllerLabels {
                controller: controller.to_owned(),
            })
            .inc();
    }

    /// Records how long one reconcile of `controller` took.
    pub fn reconcile_finished(&self, controller: &str, took: Duration) {
        self.duration
            .get_or_create(&ControllerLabels {
                controller: controller.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts one failed reconcile of `controller`, labelled by `reason`.
    pub fn reconcile_failed(&self, controller: &str, reason: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                controller: controller.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Records that the object `key` of `kind` is now in `phase`.
    pub fn observe_phase(&self, kind: &str, key: &str, phase: &str) {
        let previous = {
            let mut map = self
                .phase_of
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            map.insert((kind.to_owned(), key.to_owned()), phase.to_owned())
        };
        if previous.as_deref() == Some(phase) {
            return;
        }
        if let Some(previous) = previous {
            self.phase_gauge(kind, &previous).dec();
        }
        self.phase_gauge(kind, phase).inc();
    }

    /// Forgets the object `key` of `kind` (it was deleted).
    pub fn forget_object(&self, kind: &str, key: &str) {
        let previous = {
            let mut map = self
                .phase_of
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            map.remove(&(kind.to_owned(), key.to_owned()))
        };
        if let Some(previous) = previous {
            self.phase_gauge(kind, &previous).dec();
        }
    }

    fn phase_gauge(&self, kind: &str, phase: &str) -> Gauge {
        self.phases.get_or_create_owned(&PhaseLabels {
            kind: kind.to_owned(),
            phase: phase.to_owned(),
        })
    }

    /// Counts one probe call of `kind`.
    pub fn probe_called(&self, kind: &str) {
        self.probe_calls
            .get_or_create(&ProbeKindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts one probe round that did not pass, labelled by `reason`.
    pub fn probe_failed(&self, reason: &str) {
        self.probe_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts `rounds` probe rounds that began waiting for the call budget.
    pub fn probe_budget_waited(&self, rounds: usize) {
        self.probe_budget_waits
            .inc_by(u64::try_from(rounds).unwrap_or(u64::MAX));
    }

    /// Counts one status write of the cognitive runner, labelled by `reason`.
    pub fn probe_status_written(&self, reason: &str) {
        self.probe_status_writes
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Records that the probed agent `key` now has cognitive `health`.
    pub fn observe_cognitive_health(&self, key: &str, health: &str) {
        let previous = {
            let mut map = self
                .health_of
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            map.insert(key.to_owned(), health.to_owned())
        };
        if previous.as_deref() == Some(health) {
            return;
        }
        if let Some(previous) = previous {
            self.health_gauge(&previous).dec();
        }
        self.health_gauge(health).inc();
    }

    /// Forgets the probed agent `key` (deleted, or no longer probed).
    pub fn forget_cognitive_health(&self, key: &str) {
        let previous = {
            let mut map = self
                .health_of
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            map.remove(key)
        };
        if let Some(previous) = previous {
            self.health_gauge(&previous).dec();
        }
    }

    fn health_gauge(&self, health: &str) -> Gauge {
        self.cognitive_health.get_or_create_owned(&HealthLabels {
            health: health.to_owned(),
        })
    }

    /// Encodes every metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Metrics {
    /// Sets how many witness records wait for the writer.
    pub fn set_witness_pending(&self, pending: usize) {
        self.witness_pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }

    /// Counts one dropped witness record.
    pub fn witness_dropped(&self) {
        self.witness_dropped.inc();
    }

    /// Counts witness records removed by retention.
    pub fn witness_retention_removed(&self, records: usize) {
        self.witness_retention_removed
            .inc_by(u64::try_from(records).unwrap_or(u64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_gauge_moves_objects_between_phases() {
        let metrics = Metrics::new();
        metrics.observe_phase("Agent", "ns/a", "Pending");
        metrics.observe_phase("Agent", "ns/b", "Pending");
        metrics.observe_phase("Agent", "ns/a", "Running");
        metrics.observe_phase("Agent", "ns/a", "Running");
        let text = metrics.encode();
        assert!(
            text.contains(r#"kgents_objects{kind="Agent",phase="Pending"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kgents_objects{kind="Agent",phase="Running"} 1"#),
            "{text}"
        );
        metrics.forget_object("Agent", "ns/a");
        let text = metrics.encode();
        assert!(
            text.contains(r#"kgents_objects{kind="Agent",phase="Running"} 0"#),
            "{text}"
        );
    }

    #[test]
    fn probe_metrics_are_labelled_and_health_moves() {
        let metrics = Metrics::new();
        metrics.probe_called("echo");
        metrics.probe_failed("wrong_answer");
        metrics.probe_budget_waited(3);
        metrics.probe_status_written("transition");
        metrics.observe_cognitive_health("ns/a", "UNKNOWN");
        metrics.observe_cognitive_health("ns/a", "HEALTHY");
        metrics.observe_cognitive_health("ns/b", "HEALTHY");
        metrics.forget_cognitive_health("ns/b");
        let text = metrics.encode();
        for line in [
            r#"kgents_probe_calls_total{kind="echo"} 1"#,
            r#"kgents_probe_failures_total{reason="wrong_answer"} 1"#,
            "kgents_probe_budget_waits_total 3",
            r#"kgents_probe_status_writes_total{reason="transition"} 1"#,
            r#"kgents_cognitive_agents{health="HEALTHY"} 1"#,
            r#"kgents_cognitive_agents{health="UNKNOWN"} 0"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn reconcile_counters_are_labelled() {
        let metrics = Metrics::new();
        metrics.reconcile_started("agent");
        metrics.reconcile_failed("agent", "kube_api");
        metrics.reconcile_finished("agent", Duration::from_millis(12));
        let text = metrics.encode();
        assert!(
            text.contains(r#"kgents_reconciles_total{controller="agent"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"kgents_reconcile_errors_total{controller="agent",reason="kube_api"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("kgents_reconcile_duration_seconds_count{controller=\"agent\"} 1"),
            "{text}"
        );
    }
}
