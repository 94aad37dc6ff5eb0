//! What every testbed test binary of the operator shares: the testbed with its nodes and the
//! kgents CRDs, polling until the cluster says what a test waits for, Agents from JSON specs,
//! and an in-process operator that runs chosen controllers for one namespace.
//!
//! Test binaries add `mod support;`; `support_controllers` (a controller alone, under the
//! RBAC it declares) and `support_cognitive` (the fake models) build on it.

#![allow(dead_code)] // each test binary uses a different part

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kgents_crds::Agent;
use kgents_operator::metrics::Metrics;
use kgents_operator::run::{self, RunOptions};
use kgents_operator::{OperatorConfig, ProbeConfig};
use kgents_testbed::Testbed;
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// How often [`eventually`] and [`eventually_seen`] ask again.
const POLL: Duration = Duration::from_millis(100);

/// The shared testbed with kwok nodes (pods get scheduled and become Ready) and every kgents
/// CRD installed; logs go to the test's output under `RUST_LOG`.
pub async fn testbed_with_nodes() -> &'static Testbed {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let testbed = kgents_testbed::shared_with_nodes()
        .await
        .expect("the testbed starts (run scripts/testbed-build first)");
    testbed
        .install_crds(&kgents_crds::crds())
        .await
        .expect("CRDs install");
    testbed
}

/// Polls `check` until it yields a value, or panics after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_seen(what, within, || {
        let next = check();
        async move { next.await.ok_or_else(|| "not yet".to_owned()) }
    })
    .await
}

/// Polls `check` until it yields a value, or panics after `within` with the last state
/// `check` described.
pub async fn eventually_seen<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        let last = match check().await {
            Ok(value) => return value,
            Err(last) => last,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; last seen: {last}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// How many reconciles of `controller` the operator behind `metrics` has started and how many
/// have finished (`kgents_reconciles_total` and the count of `kgents_reconcile_duration_seconds`).
pub fn reconcile_counts(metrics: &Metrics, controller: &str) -> (u64, u64) {
    let text = metrics.encode();
    let value = |name: &str| {
        let prefix = format!("{name}{{controller=\"{controller}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    (
        value("kgents_reconciles_total"),
        value("kgents_reconcile_duration_seconds_count"),
    )
}

/// Waits until the controller has looked at the world since a point: a reconcile of
/// `controller` beyond the first `started` (a count [`reconcile_counts`] gave at that point) has
/// run to its end, and none is running. Whatever that reconcile would write has then been
/// written, so a resourceVersion read afterwards proves what it did not write.
pub async fn reconciled_since(metrics: &Metrics, controller: &str, started: u64) {
    eventually_seen(
        &format!("a {controller} reconcile after the first {started} to finish"),
        Duration::from_secs(60),
        || async {
            let (now_started, finished) = reconcile_counts(metrics, controller);
            if now_started > started && finished == now_started {
                Ok(())
            } else {
                Err(format!("{now_started} started, {finished} finished"))
            }
        },
    )
    .await;
}

/// An Agent named `name` with `spec`, of genus B unless the spec names one.
pub fn agent(name: &str, spec: serde_json::Value) -> Agent {
    let mut spec = spec;
    if spec.get("genus").is_none() {
        spec["genus"] = json!("B");
    }
    Agent::new(name, serde_json::from_value(spec).expect("AgentSpec"))
}

/// Creates `agent` and returns it as stored.
pub async fn create_agent(api: &Api<Agent>, agent: &Agent) -> Agent {
    api.create(&PostParams::default(), agent)
        .await
        .unwrap_or_else(|e| panic!("create Agent {}: {e}", agent.name_any()))
}

/// Options that run the `controllers` named (e.g. [`kgents_operator::agent::CONTROLLER`]) for
/// `namespace` alone, with `probes`, no HTTP endpoint and no leader election.
pub fn run_options(namespace: &str, controllers: &[&str], probes: ProbeConfig) -> RunOptions {
    let options = RunOptions {
        config: OperatorConfig {
            namespace: Some(namespace.to_owned()),
            concurrency: 8,
            probes,
            ..OperatorConfig::default()
        },
        http_addr: None,
        leader_election: None,
        metrics: Arc::new(Metrics::new()),
        controllers: run::controllers()
            .into_iter()
            .filter(|c| controllers.contains(&c.name))
            .collect(),
        webhook_runtime: None,
    };
    assert_eq!(
        options.controllers.len(),
        controllers.len(),
        "every controller named is registered: {controllers:?}"
    );
    options
}

/// A running operator; stopped gracefully by [`Operator::stop`].
pub struct Operator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<kgents_operator::Result<()>>,
    /// The operator's metrics.
    pub metrics: Arc<Metrics>,
}

impl Operator {
    /// Runs the operator with `options` on its own task.
    pub fn start(client: Client, options: RunOptions) -> Operator {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics = options.metrics.clone();
        let task = tokio::spawn(run::run(client, options, async move {
            let _ = stopped.await;
        }));
        Operator {
            stop: Some(stop),
            task,
            metrics,
        }
    }

    /// Stops the operator and checks that it ran without error and drained within 60 s.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(60), &mut self.task)
            .await
            .expect("the operator stops within 60 s")
            .expect("the operator task did not panic")
            .expect("the operator ran without error");
    }
}
