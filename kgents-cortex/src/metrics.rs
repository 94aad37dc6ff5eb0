//! Prometheus metrics of the daemon (`kgents cortex serve --metrics ADDR` serves them at
//! `/metrics`): requests by method, path and code, latency per method, `Observe` subscribers
//! and the ones dropped for not keeping up, and what the caches hold. The registry is owned
//! here (no global registry), so tests build as many as they like.
//!
//! The `path` label is the registry's **template** (`world.cluster.agents.<agent>.manifest`),
//! `unregistered` or `malformed`: a client cannot grow the label set by inventing paths.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use kgents_logos::Outcome;

use crate::cache::WatchCache;
use crate::fanout::Hub;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The RPC (`Invoke`, `GetStatus`, `GetSnapshot`, `Observe`).
    pub method: String,
    /// The path template for `Invoke` (else empty).
    pub path: String,
    /// The gRPC code's name (`Ok`, `InvalidArgument`, ...).
    pub code: String,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// The RPC.
    pub method: String,
}

/// Labels of the cache gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `agents`, `pheromones` or `proposals`.
    pub kind: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s: answers from memory take microseconds, writes an API round trip.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The daemon's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    subscribers: Gauge,
    dropped: Counter,
    dropped_seen: Mutex<u64>,
    cached: Family<KindLabels, Gauge>,
    model_tokens: Family<TokenLabels, Counter>,
    budget_refusals: Family<PathLabels, Counter>,
}

/// Labels of the model-token counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// The path template (`concept.define`, ...).
    pub path: String,
    /// `input` (prompt) or `output` (generated).
    pub direction: String,
}

/// Labels of the budget-refusal counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    /// The path template.
    pub path: String,
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
    /// The metrics, registered under the `kgents_cortex` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kgents_cortex");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let subscribers = Gauge::default();
        let dropped = Counter::default();
        let cached = Family::<KindLabels, Gauge>::default();
        registry.register(
            "requests",
            "Requests answered, by method, path template and gRPC code",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer a request (Observe: to subscribe), by method",
            latency.clone(),
        );
        registry.register(
            "observe_subscribers",
            "Observe streams open now",
            subscribers.clone(),
        );
        registry.register(
            "observe_dropped",
            "Observe subscribers ended because they did not keep up",
            dropped.clone(),
        );
        registry.register(
            "cached_objects",
            "Objects in the watch caches, by kind",
            cached.clone(),
        );
        let model_tokens = Family::<TokenLabels, Counter>::default();
        let budget_refusals = Family::<PathLabels, Counter>::default();
        registry.register(
            "model_tokens",
            "Model tokens used by the concept.* paths (retries and invalid answers included), by path and direction",
            model_tokens.clone(),
        );
        registry.register(
            "model_budget_refusals",
            "Model-path invocations refused because the caller's token budget was spent, by path",
            budget_refusals.clone(),
        );
        Metrics {
            registry,
            model_tokens,
            budget_refusals,
            requests,
            latency,
            subscribers,
            dropped,
            dropped_seen: Mutex::new(0),
            cached,
        }
    }

    /// Records one answered request.
    pub fn record(&self, method: &str, path: &str, code: tonic::Code, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                path: path.to_owned(),
                code: format!("{code:?}"),
            })
            .inc();
        self.latency
            .get_or_create(&MethodLabels {
                method: method.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records the tokens a model path used (or its refusal for want of budget) from the
    /// Logos' `result` for the path template `path`; other results are ignored.
    pub fn record_model(&self, path: &str, result: &kgents_logos::Result<Outcome>) {
        let usage = match result {
            Ok(Outcome::Concept(answer)) => &answer.usage,
            Err(kgents_logos::Error::InvalidAnswer { usage, .. }) => usage,
            Err(kgents_logos::Error::BudgetExhausted { .. }) => {
                self.budget_refusals
                    .get_or_create(&PathLabels {
                        path: path.to_owned(),
                    })
                    .inc();
                return;
            }
            _ => return,
        };
        for (direction, tokens) in [("input", usage.input), ("output", usage.output)] {
            self.model_tokens
                .get_or_create(&TokenLabels {
                    path: path.to_owned(),
                    direction: direction.to_owned(),
                })
                .inc_by(tokens);
        }
    }

    /// The text exposition, with the gauges read from `hub` and `cache` now.
    pub fn render(&self, hub: &Hub, cache: &WatchCache) -> String {
        self.subscribers
            .set(i64::try_from(hub.subscribers()).unwrap_or(i64::MAX));
        let total = hub.dropped_total();
        {
            let mut seen = self
                .dropped_seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if total > *seen {
                self.dropped.inc_by(total - *seen);
                *seen = total;
            }
        }
        let (agents, pheromones, proposals) = cache.counts();
        for (kind, n) in [
            ("agents", agents),
            ("pheromones", pheromones),
            ("proposals", proposals),
        ] {
            self.cached
                .get_or_create(&KindLabels { kind: kind.into() })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(error = %e, "encoding the metrics");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kgents_core::clock::SystemClock;
    use kgents_logos::Scope;

    use super::*;
    use crate::request::Kinds;

    #[test]
    fn requests_latency_subscribers_and_drops_are_exposed() {
        let metrics = Metrics::new();
        metrics.record(
            "Invoke",
            "world.cluster.agents.<agent>.manifest",
            tonic::Code::Ok,
            Duration::from_micros(300),
        );
        metrics.record(
            "Invoke",
            "unregistered",
            tonic::Code::InvalidArgument,
            Duration::ZERO,
        );
        let hub = Hub::new(1);
        let _open = hub.subscribe(Kinds::ALL, Scope::All);
        let cache = WatchCache::new(Arc::new(SystemClock), None);
        let text = metrics.render(&hub, &cache);
        assert!(text.contains(
            r#"kgents_cortex_requests_total{method="Invoke",path="world.cluster.agents.<agent>.manifest",code="Ok"} 1"#
        ), "{text}");
        assert!(text.contains(r#"code="InvalidArgument"} 1"#), "{text}");
        assert!(
            text.contains(r#"kgents_cortex_request_duration_seconds_count{method="Invoke"} 2"#),
            "{text}"
        );
        assert!(
            text.contains("kgents_cortex_observe_subscribers 1"),
            "{text}"
        );
        assert!(
            text.contains("kgents_cortex_observe_dropped_total 0"),
            "{text}"
        );
        assert!(
            text.contains(r#"kgents_cortex_cached_objects{kind="agents"} 0"#),
            "{text}"
        );
    }

    #[test]
    fn model_tokens_and_budget_refusals_are_counted() {
        use kgents_logos::concept::{ConceptAnswer, ConceptOutput, Definition, TokenUsage};
        let metrics = Metrics::new();
        let usage = TokenUsage {
            input: 120,
            output: 40,
            total: 160,
            estimated: false,
            budget: Some(1000),
            left: Some(840),
        };
        let answer = Outcome::Concept(ConceptAnswer {
            path: "concept.define".into(),
            model: "m".into(),
            attempts: 1,
            answer: ConceptOutput::Definition(Definition {
                term: "t".into(),
                definition: "d".into(),
                examples: Vec::new(),
                related: Vec::new(),
            }),
            usage: usage.clone(),
        });
        metrics.record_model("concept.define", &Ok(answer));
        metrics.record_model(
            "concept.define",
            &Err(kgents_logos::Error::InvalidAnswer {
                path: "concept.define".into(),
                attempts: 2,
                reason: "r".into(),
                usage: Box::new(usage),
            }),
        );
        metrics.record_model(
            "concept.refine",
            &Err(kgents_logos::Error::BudgetExhausted {
                caller: "c".into(),
                path: "concept.refine".into(),
                limit: 1,
                spent: 1,
            }),
        );
        let hub = Hub::new(1);
        let cache = WatchCache::new(Arc::new(SystemClock), None);
        let text = metrics.render(&hub, &cache);
        for needle in [
            r#"kgents_cortex_model_tokens_total{path="concept.define",direction="input"} 240"#,
            r#"kgents_cortex_model_tokens_total{path="concept.define",direction="output"} 80"#,
            r#"kgents_cortex_model_budget_refusals_total{path="concept.refine"} 1"#,
        ] {
            assert!(text.contains(needle), "{needle} not in {text}");
        }
    }
}
