//! The operator process: check the CRDs, serve `/metrics` and health, compete for the leader
//! Lease, run every controller while leading and stop them when leadership is lost, and shut
//! down gracefully (in-flight reconciles finish, the Lease is released) on SIGTERM or Ctrl+C.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use kgents_crds::{Agent, Memory, Pheromone, Proposal, Umwelt, Workflow};
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::http::{self, Health};
use crate::leader::{Election, LeaderElectionConfig, LeaderState};
use crate::metrics::Metrics;
use crate::shared::Watches;
use crate::{
    Context, Error, OperatorConfig, Result, agent, cognitive, memory, pheromone, proposal, umwelt,
    workflow,
};

/// How one controller is started: its context and a future that resolves when it must stop.
pub type StartController = fn(Arc<Context>, BoxFuture<'static, ()>) -> BoxFuture<'static, ()>;

/// How a controller checks that the CRDs it watches are installed.
pub type CheckCrds = fn(Client) -> BoxFuture<'static, Result<()>>;

/// One controller the operator runs.
#[derive(Clone, Copy, Debug)]
pub struct ControllerEntry {
    /// Its name (logs, errors).
    pub name: &'static str,
    /// How to start it.
    pub start: StartController,
    /// How to check that its CRDs are installed.
    pub check_crds: CheckCrds,
}

/// Every controller the operator runs while it leads. To add one, add a line here (and its
/// `required_rules()` to [`crate::rbac::cluster_role_rules`]).
pub fn controllers() -> Vec<ControllerEntry> {
    vec![
        ControllerEntry {
            name: agent::CONTROLLER,
            start: |ctx, stop| agent::run(ctx, stop).boxed(),
            check_crds: |client| {
                async move {
                    check_crd::<Agent>(&client, "agents").await?;
                    check_crd::<Memory>(&client, "memories").await
                }
                .boxed()
            },
        },
        ControllerEntry {
            name: pheromone::CONTROLLER,
            start: |ctx, stop| pheromone::run(ctx, stop).boxed(),
            check_crds: |client| {
                async move { check_crd::<Pheromone>(&client, "pheromones").await }.boxed()
            },
        },
        ControllerEntry {
            name: memory::CONTROLLER,
            start: |ctx, stop| memory::run(ctx, stop).boxed(),
            check_crds: |client| {
                async move { check_crd::<Memory>(&client, "memories").await }.boxed()
            },
        },
        ControllerEntry {
            name: proposal::CONTROLLER,
            start: |ctx, stop| proposal::run(ctx, stop).boxed(),
            check_crds: |client| {
                async move { check_crd::<Proposal>(&client, "proposals").await }.boxed()
            },
        },
        ControllerEntry {
            name: cognitive::CONTROLLER,
            start: |ctx, stop| cognitive::run(ctx, stop).boxed(),
            check_crds: |client| async move { check_crd::<Agent>(&client, "agents").await }.boxed(),
        },
        ControllerEntry {
            name: umwelt::CONTROLLER,
            start: |ctx, stop| umwelt::run(ctx, stop).boxed(),
            check_crds: |client| {
                async move { check_crd::<Umwelt>(&client, "umwelts").await }.boxed()
            },
        },
        ControllerEntry {
            name: workflow::CONTROLLER,
            start: |ctx, stop| workflow::run(ctx, stop).boxed(),
            check_crds: |client| {
                async move {
                    check_crd::<Workflow>(&client, "workflows").await?;
                    check_crd::<Proposal>(&client, "proposals").await
                }
                .boxed()
            },
        },
    ]
}

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Controller settings.
    pub config: OperatorConfig,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (`None`: not served).
    pub http_addr: Option<SocketAddr>,
    /// Leader election (`None`: this process always leads — only for a single replica).
    pub leader_election: Option<LeaderElectionConfig>,
    /// The metrics registry (shared with the caller, e.g. to read it in tests).
    pub metrics: Arc<Metrics>,
    /// The controllers to run.
    pub controllers: Vec<ControllerEntry>,
    /// The runtime the admission webhook of [`run_with_webhook`] runs on (its listener, its
    /// connections, its ledger and its certificate rotation); `None`: the caller's runtime.
    ///
    /// Admission answers sit on the API server's write path while reconciles are background
    /// work: on a runtime of its own (e.g. one worker thread), an answer never queues behind a
    /// burst of reconciles or the decoding of a large list, however few workers the
    /// controllers' runtime has ([`DEFAULT_WORKER_THREADS`]).
    pub webhook_runtime: Option<tokio::runtime::Handle>,
}

/// Worker threads for the controllers' runtime that the operator example uses unless told
/// otherwise: one.
///
/// The operator's work is small next to the API server's: at the API server's ceiling for
/// creating Agents (about 16 a second on a 2-core testbed with 20 fake nodes) the controllers
/// use about 5% of one core. A second worker adds no throughput there and costs about a tenth
/// more CPU per Agent in cross-thread wake-ups (`examples/scale.rs --operator-worker-threads`
/// measures both). A cluster whose API server takes much more can raise it.
pub const DEFAULT_WORKER_THREADS: usize = 1;

impl RunOptions {
    /// Every controller, HTTP on `0.0.0.0:8080`, leader election in `namespace`.
    pub fn new(config: OperatorConfig, lease_namespace: &str) -> Self {
        Self {
            config,
            http_addr: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
            leader_election: Some(LeaderElectionConfig::new(lease_namespace)),
            metrics: Arc::new(Metrics::new()),
            controllers: controllers(),
            webhook_runtime: None,
        }
    }
}

/// Fails with [`Error::CrdMissing`] when the CRD of `K` (plural `resource`) is not installed.
pub async fn check_crd<K>(client: &Client, resource: &'static str) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(Error::CrdMissing {
            resource,
            message: status.message.clone(),
        }),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// Fails with a message naming the fix when a CRD one of `controllers` needs is missing.
pub async fn check_crds(client: &Client, controllers: &[ControllerEntry]) -> Result<()> {
    for entry in controllers {
        (entry.check_crds)(client.clone()).await?;
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl+C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl+C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl+C: shutting down"),
        _ = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}

/// A future that resolves once `rx` holds `true`.
fn when_set(mut rx: watch::Receiver<bool>) -> BoxFuture<'static, ()> {
    async move {
        // An error means the sender is gone, which also means "stop".
        let _ = rx.wait_for(|set| *set).await;
    }
    .boxed()
}

/// Resolves when this replica stops leading; never for a replica that always leads.
async fn leadership_lost(mut leader: LeaderState) {
    if !leader.wait_for(false).await {
        // The election ended without this replica losing (or there is none): it leads for good.
        std::future::pending::<()>().await;
    }
}

/// How long controllers get to finish their in-flight reconciles when they are stopped.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Runs the operator until `shutdown` resolves.
pub async fn run(
    client: Client,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run_serving(client, options, None, shutdown).await
}

/// [`run`], with the admission webhook served when `webhook` is given.
async fn run_serving(
    client: Client,
    options: RunOptions,
    webhook: Option<crate::admission::WebhookConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let election = match &options.leader_election {
        Some(config) => Some(Election::start(client.clone(), config).await?),
        None => None,
    };
    let leader = election
        .as_ref()
        .map(|e| e.state.clone())
        .unwrap_or_else(LeaderState::always);
    let health = Arc::new(Health::new(leader.clone()));
    // One watch per kind for the whole process, the webhook's included, kept across
    // leadership terms: each starts when a controller or the webhook first reads it and then
    // runs whether or not this replica leads, so controllers started on a later term find a
    // warm cache instead of watching anew.
    let watches = Watches::new(
        &client,
        options.config.namespace.as_deref(),
        &options.config.field_manager,
    );
    // The webhook answers on every replica, leader or not (admission must answer wherever the
    // API server sends it), with the operator's metrics and health on its port too.
    let webhook = match webhook {
        Some(config) => {
            let ctx = Context::new(client.clone(), options.config.clone())
                .with_metrics(options.metrics.clone())
                .with_leader(leader.clone())
                .with_watches(watches.clone());
            let serving = {
                let health = health.clone();
                async move { crate::admission::serve(&ctx, config, health).await }
            };
            let served = match &options.webhook_runtime {
                // Everything `serve` spawns lands on the runtime it runs on.
                Some(runtime) => runtime
                    .spawn(serving)
                    .await
                    .unwrap_or_else(|_| Err(Error::ControllerStopped("admission webhook"))),
                None => serving.await,
            };
            match served {
                Ok(server) => Some(server),
                Err(e) => {
                    if let Some(election) = election {
                        election.release().await;
                    }
                    return Err(e);
                }
            }
        }
        None => None,
    };
    let server = match options.http_addr {
        Some(addr) => {
            let (bound, task) = http::serve(
                addr,
                options.metrics.clone(),
                health.clone(),
                when_set(stop_rx.clone()),
            )
            .await?;
            tracing::info!(%bound, "serving /metrics, /healthz and /readyz");
            Some(task)
        }
        None => None,
    };

    // The witness store is opened once per process (the embedded file admits one writer); the
    // recorder runs while this replica leads.
    let witness = match options.config.witness.open().await {
        Ok(store) => store,
        Err(e) => {
            if let Some(election) = election {
                election.release().await;
            }
            return Err(Error::Witness(e.to_string()));
        }
    };
    let outcome = lead_while_elected(
        &client, &options, &health, &watches, witness, leader, stop_rx,
    )
    .await;

    if let Some(webhook) = webhook {
        webhook.shutdown().await;
    }
    if let Some(election) = election {
        election.release().await;
    }
    if let Some(server) = server {
        let _ = server.await;
    }
    outcome
}

/// Runs the operator like [`run`], with the T-gent admission webhook served (on every replica,
/// leader or not: admission must answer wherever the API server sends it) until `shutdown`.
pub async fn run_with_webhook(
    client: Client,
    options: RunOptions,
    webhook: crate::admission::WebhookConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run_serving(client, options, Some(webhook), shutdown).await
}

async fn lead_while_elected(
    client: &Client,
    options: &RunOptions,
    health: &Health,
    watches: &Watches,
    witness: Option<Arc<dyn kgents_seance::WitnessStore>>,
    mut leader: LeaderState,
    stop_rx: watch::Receiver<bool>,
) -> Result<()> {
    check_crds(client, &options.controllers).await?;
    health.set_ready(true);
    loop {
        tracing::info!("waiting for leadership");
        tokio::select! {
            leading = leader.wait_for(true) => if !leading {
                return Err(Error::LeaderElection("the election task ended".to_owned()));
            },
            _ = when_set(stop_rx.clone()) => return Ok(()),
        }
        tracing::info!("leading: starting the controllers");
        let ctx = Arc::new(
            Context::new(client.clone(), options.config.clone())
                .with_metrics(options.metrics.clone())
                .with_leader(leader.clone())
                .with_watches(watches.clone()),
        );
        let (term_tx, term_rx) = watch::channel(false);
        let mut running = Vec::new();
        let recorder = witness.clone().map(|store| {
            tokio::spawn(crate::witness::record(
                watches.clone(),
                options.config.namespace.clone(),
                store,
                options.metrics.clone(),
                options.config.witness_retention,
                when_set(term_rx.clone()),
            ))
        });
        for entry in &options.controllers {
            let task = tokio::spawn((entry.start)(ctx.clone(), when_set(term_rx.clone())));
            running.push((entry.name, task));
        }
        let mut stopped_by_itself: futures::stream::FuturesUnordered<_> = running
            .iter_mut()
            .map(|(name, task)| {
                let name = *name;
                async move {
                    let _ = task.await;
                    name
                }
            })
            .collect();
        let mut shutting_down = false;
        let mut failure = None;
        tokio::select! {
            _ = leadership_lost(leader.clone()) => tracing::warn!("leadership lost: stopping the controllers"),
            _ = when_set(stop_rx.clone()) => shutting_down = true,
            Some(name) = stopped_by_itself.next() => failure = Some(Error::ControllerStopped(name)),
        }
        drop(stopped_by_itself);
        let _ = term_tx.send(true);
        for (name, mut task) in running {
            if task.is_finished() && failure.is_some() {
                // Already awaited above; polling a finished handle again is not allowed.
                continue;
            }
            match tokio::time::timeout(STOP_GRACE, &mut task).await {
                Ok(_) => tracing::info!(controller = name, "stopped"),
                Err(_) => {
                    tracing::warn!(
                        controller = name,
                        "did not stop within {STOP_GRACE:?}; aborting it"
                    );
                    task.abort();
                }
            }
        }
        if let Some(mut recorder) = recorder {
            // It writes what queued, then ends.
            if tokio::time::timeout(STOP_GRACE, &mut recorder)
                .await
                .is_err()
            {
                tracing::warn!(
                    "the witness recorder did not stop within {STOP_GRACE:?}; aborting it"
                );
                recorder.abort();
            }
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
        if shutting_down {
            return Ok(());
        }
    }
}
