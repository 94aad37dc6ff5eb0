//! The K8-gents operator: every controller (Agent, Pheromone, Memory, Umwelt) in one process,
//! with `/metrics`, `/healthz` and `/readyz`, leader election and graceful shutdown.
//!
//! ```sh
//! cargo run --example operator                                  # against the current kubeconfig
//! cargo run --example operator -- --embedded --with-samples     # a private control plane + samples
//! cargo run --example operator -- --no-leader-election          # a single replica, no Lease
//! cargo run --example operator -- --embedded --webhook          # with the T-gent webhook
//! cargo run --example operator -- --embedded --webhook --reviewer-from-env  # and an LLM reviewer
//! ```
//!
//! With `--reviewer-from-env`, MEDIUM-risk proposals are reviewed by the model the environment
//! names (`KGENTS_MODEL_PROVIDER`, `KGENTS_MODEL`, `KGENTS_MODEL_ENDPOINT`, and
//! `KGENTS_MODEL_API_KEY` or the provider's own key variable); without it their review is
//! SKIPPED and a human approval decides. Sample Proposals are filed in the name of the identity
//! that applies them: the webhook admits a proposal only when `spec.proposer` is its
//! requester's username (an agent files as `system:serviceaccount:<namespace>:<name>`).
//!
//! `--embedded` starts the testbed control plane (etcd, kube-apiserver, controller-manager,
//! scheduler and kwok with fake nodes; build it once with `scripts/testbed-build`), installs the
//! CRDs from `kgents-crds`, optionally applies `deploy/examples/*.yaml`, and prints how to point
//! kubectl at it. Everything it started goes away on Ctrl+C. It serves `/metrics` and health on
//! 127.0.0.1:8080 (not on every interface of a developer's machine), and waits quietly while its
//! own API server starts (failing with a clear message if it never answers).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;
use kgents::kgents_logos::wire;
use kgents::kgents_operator::admission::server::WebhookConfig;
use kgents::kgents_operator::install::local;
use kgents::kgents_operator::leader::LeaderElectionConfig;
use kgents::kgents_operator::proposal::{LlmReviewer, ProposalSettings, Reviewer};
use kgents::kgents_operator::run::{self, RunOptions};
use kgents::kgents_operator::{OperatorConfig, ProbeConfig, rbac};
use kube::Client;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

#[derive(Parser, Debug)]
#[command(about = "Runs the K8-gents operator (Agent, Pheromone, Memory and Umwelt controllers).")]
struct Args {
    /// Start a private control plane (the testbed, with fake nodes) instead of using the kubeconfig.
    #[arg(long)]
    embedded: bool,
    /// With --embedded: fake nodes of the private control plane.
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// Apply the sample resources from deploy/examples/ once the operator runs.
    #[arg(long)]
    with_samples: bool,
    /// Run without leader election (only safe with a single replica).
    #[arg(long)]
    no_leader_election: bool,
    /// Namespace of the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = rbac::OPERATOR_NAMESPACE)]
    lease_namespace: String,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "KGENTS_WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of /metrics, /healthz and /readyz (default 0.0.0.0:8080; with --embedded
    /// 127.0.0.1:8080, so a developer's machine does not serve them to its network).
    #[arg(long, env = "KGENTS_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// Reconciles each controller may run at once.
    #[arg(long, env = "KGENTS_CONCURRENCY", default_value_t = OperatorConfig::default().concurrency)]
    concurrency: u16,
    /// Image of PLACEHOLDER agents.
    #[arg(long, env = "KGENTS_PLACEHOLDER_IMAGE")]
    placeholder_image: Option<String>,
    /// Where each agent's history is recorded: a redb file, a postgres:// URL, or `off`
    /// (default: the embedded file, $KGENTS_WITNESS or ~/.kgents/witness/witness.redb).
    #[arg(long, env = "KGENTS_WITNESS_STORE", value_name = "PATH|URL|off")]
    witness: Option<String>,
    /// Image of the symbiont sidecar for Agents whose spec.symbiont enables it without naming
    /// one.
    #[arg(long, env = "KGENTS_SYMBIONT_IMAGE")]
    symbiont_image: Option<String>,
    /// Serve the T-gent admission webhook for proposals (in-cluster: Service kgents-webhook in
    /// the Lease namespace; with --embedded: on 127.0.0.1).
    #[arg(long, env = "KGENTS_WEBHOOK")]
    webhook: bool,
    /// Review proposals with the language model the environment names (KGENTS_MODEL_PROVIDER,
    /// KGENTS_MODEL, KGENTS_MODEL_ENDPOINT, KGENTS_MODEL_API_KEY); without it humans decide.
    #[arg(long, env = "KGENTS_REVIEWER_FROM_ENV")]
    reviewer_from_env: bool,
    /// Seconds the reviewer model may take before the review escalates to humans.
    #[arg(long, env = "KGENTS_REVIEWER_TIMEOUT_SECONDS", default_value_t = 60)]
    reviewer_timeout_seconds: u64,
    /// Do not probe COGNITIVE_PROBE agents (their pods then never pass the readiness gate).
    #[arg(long, env = "KGENTS_NO_PROBES")]
    no_probes: bool,
    /// Cognitive probe calls in flight at once, across all agents.
    #[arg(long, env = "KGENTS_PROBE_CONCURRENCY", default_value_t = 8)]
    probe_concurrency: usize,
    /// Cognitive probe calls per minute, across all agents (no 60 s window holds more).
    #[arg(long, env = "KGENTS_PROBE_CALLS_PER_MINUTE", default_value_t = 600)]
    probe_calls_per_minute: u32,
    /// Worker threads of the controllers' runtime (the admission webhook, with --webhook, has
    /// a thread of its own). One is plenty for the operator's share of the work; see
    /// `kgents_operator::run::DEFAULT_WORKER_THREADS`.
    #[arg(long, env = "KGENTS_WORKER_THREADS", default_value_t = run::DEFAULT_WORKER_THREADS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    worker_threads: usize,
    /// Seconds between status writes of an agent whose cognitive health did not change.
    #[arg(
        long,
        env = "KGENTS_PROBE_STATUS_REFRESH_SECONDS",
        default_value_t = 300
    )]
    probe_status_refresh_seconds: u64,
}

fn main() -> Result<()> {
    // One crypto provider for every TLS user in the process (kube, the webhook server).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let controllers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads)
        .thread_name("kgents-controllers")
        .enable_all()
        .build()
        .context("starting the controllers' runtime")?;
    // Admission answers are on the API server's write path: they get a thread of their own,
    // so they never wait behind reconciles.
    let webhook = if args.webhook {
        Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("kgents-webhook")
                .enable_all()
                .build()
                .context("starting the webhook's runtime")?,
        )
    } else {
        None
    };
    let outcome = controllers.block_on(operate(args, webhook.as_ref().map(|r| r.handle().clone())));
    // Both runtimes stop here, outside any async context.
    drop(webhook);
    drop(controllers);
    outcome
}

async fn operate(args: Args, webhook_runtime: Option<tokio::runtime::Handle>) -> Result<()> {
    let logs = Logs::init(args.embedded);
    // Checked before anything starts: an incomplete model environment is an error, not a
    // silently unreviewed operator.
    let reviewer = if args.reviewer_from_env {
        Some(reviewer_from_env(Duration::from_secs(
            args.reviewer_timeout_seconds,
        ))?)
    } else {
        None
    };

    let testbed = if args.embedded {
        eprintln!(
            "starting a private control plane with {} fake node(s) ...",
            args.nodes
        );
        let testbed = kgents_testbed::Testbed::builder()
            .with_nodes(args.nodes)
            .start()
            .await
            .context(
                "starting the embedded control plane (build it once with scripts/testbed-build)",
            )?;
        testbed
            .install_crds(&kgents_crds::crds())
            .await
            .context("installing the CRDs")?;
        // The control plane answers now: client errors are worth seeing again.
        logs.control_plane_up();
        println!(
            "Kubernetes {} is up at {}",
            testbed.kubernetes_version(),
            testbed.apiserver_url()
        );
        println!(
            "Point kubectl at it:\n\n    export KUBECONFIG={}\n    kubectl get agents,pheromones,memories,umwelts -A\n",
            testbed.kubeconfig_path().display()
        );
        Some(testbed)
    } else {
        None
    };
    let client = match &testbed {
        Some(testbed) => wire::client(
            testbed.config().await.context("the embedded control plane's configuration")?,
        )
        .context("a client for the embedded control plane")?,
        // The operator never reads managed fields: they are cut before decoding.
        None => wire::client(kube::Config::infer().await.context(
            "no usable kubeconfig or in-cluster configuration; use --embedded to try the operator without a cluster",
        )?)
        .context("building the client")?,
    };

    let mut config = OperatorConfig {
        namespace: args.namespace.clone(),
        concurrency: args.concurrency,
        probes: ProbeConfig {
            enabled: !args.no_probes,
            max_concurrent: args.probe_concurrency,
            calls_per_minute: args.probe_calls_per_minute,
            status_refresh: std::time::Duration::from_secs(args.probe_status_refresh_seconds),
        },
        ..OperatorConfig::default()
    };
    config.witness = match &args.witness {
        Some(text) => kgents::kgents_operator::witness::WitnessSetting::parse(text),
        None => kgents::kgents_operator::witness::WitnessSetting::File(
            kgents::kgents_operator::witness::default_witness_path(),
        ),
    };
    if let Some(image) = args.symbiont_image {
        config.symbiont_image = image;
    }
    if let Some(image) = args.placeholder_image {
        config.placeholder_image = image;
    }
    let mut options = RunOptions::new(config, &args.lease_namespace);
    options.webhook_runtime = webhook_runtime;
    options.http_addr = Some(args.http_addr.unwrap_or_else(|| {
        let host = if args.embedded {
            [127, 0, 0, 1]
        } else {
            [0, 0, 0, 0]
        };
        SocketAddr::from((host, 8080))
    }));
    if args.no_leader_election {
        options.leader_election = None;
    } else {
        ensure_namespace(&client, &args.lease_namespace).await?;
        options.leader_election = Some(LeaderElectionConfig::new(&args.lease_namespace));
    }

    if args.with_samples {
        let client = client.clone();
        tokio::spawn(async move {
            // Give the controllers a moment to start; the samples would be reconciled anyway.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let applied = match local::read_sample_dir(Path::new("deploy/examples")) {
                Ok(files) => local::apply_samples(&client, &files).await,
                Err(e) => Err(e),
            };
            match applied {
                Ok(outcome) => {
                    tracing::info!(
                        count = outcome.applied,
                        "applied the samples from deploy/examples/"
                    );
                    // A sample the API server refuses (e.g. a proposal the T-gent webhook
                    // denies) is reported; the others are still worth having.
                    for refused in outcome.refused {
                        tracing::warn!("the API server refused {refused}");
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not apply the samples"),
            }
        });
    }

    let webhook = if args.embedded {
        local::embedded_webhook(&args.lease_namespace)
    } else {
        WebhookConfig::in_cluster(&args.lease_namespace)
    };
    let mut proposals = ProposalSettings::new();
    if let Some(reviewer) = reviewer {
        proposals = proposals.with_reviewer(reviewer);
    }
    // The controller re-checks unvetted proposals against the webhook's policy.
    if let Some(name) = webhook.policy_config_map.clone().filter(|_| args.webhook) {
        proposals = proposals.with_policy_config_map(webhook.namespace.clone(), name);
    }
    options.config.proposal = proposals;
    if args.webhook {
        if args.embedded {
            ensure_namespace(&client, &args.lease_namespace).await?;
        }
        run::run_with_webhook(client, options, webhook, run::shutdown_signal())
            .await
            .context("the operator stopped with an error")?;
    } else {
        run::run(client, options, run::shutdown_signal())
            .await
            .context("the operator stopped with an error")?;
    }
    drop(testbed);
    Ok(())
}

/// The log filter: `RUST_LOG` when set, else `info` with kube's runtime at `warn`. While an
/// embedded control plane starts, the kube client's errors are silenced (its API server
/// answers 500 until its start-up hooks have run, which is expected; the testbed waits for
/// `/readyz` and fails with a clear message if it never comes up), unless `RUST_LOG` asks for
/// them.
struct Logs {
    reload: Option<tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>>,
}

const DEFAULT_LOG_FILTER: &str = "info,kube_runtime=warn";

impl Logs {
    fn init(embedded: bool) -> Self {
        let from_env = std::env::var("RUST_LOG").is_ok();
        let quiet_start = embedded && !from_env;
        let filter = if quiet_start {
            EnvFilter::new(format!("{DEFAULT_LOG_FILTER},kube_client=off"))
        } else {
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER))
        };
        let (filter, reload) = tracing_subscriber::reload::Layer::new(filter);
        tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer())
            .init();
        Self {
            reload: quiet_start.then_some(reload),
        }
    }

    /// Restores the usual filter once the embedded control plane answers.
    fn control_plane_up(&self) {
        if let Some(reload) = &self.reload {
            let _ = reload.reload(EnvFilter::new(DEFAULT_LOG_FILTER));
        }
    }
}

/// The LLM reviewer of the model the environment names.
fn reviewer_from_env(timeout: Duration) -> Result<Arc<dyn Reviewer>> {
    const HOW: &str = "--reviewer-from-env reads the reviewer's model from KGENTS_MODEL_PROVIDER (anthropic, openai, openrouter, ollama or claude-cli), KGENTS_MODEL, KGENTS_MODEL_ENDPOINT (required for openai-compatible servers other than the provider's default) and KGENTS_MODEL_API_KEY (or ANTHROPIC_API_KEY, OPENAI_API_KEY, OPENROUTER_API_KEY); set them, or drop the flag to let humans decide";
    let config = kgents_llm::ModelConfig::from_env().context(HOW)?;
    let client = kgents_llm::build_client(&config).context(HOW)?;
    let name = format!(
        "t-gent/{}",
        config.model().unwrap_or(config.provider().as_str())
    );
    tracing::info!(reviewer = %name, "proposals are reviewed by a language model");
    Ok(Arc::new(LlmReviewer::new(client, name, timeout)))
}

async fn ensure_namespace(client: &Client, name: &str) -> Result<()> {
    local::ensure_namespace(client, name)
        .await
        .with_context(|| format!("creating the Lease namespace {name}"))
}
