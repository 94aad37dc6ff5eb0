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
        Self {
            registry,
            reconciles,
            errors,
            duration,
            phases,
            phase_of: Mutex::new(HashMap::new()),
        }
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

    /// Encodes every metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
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
