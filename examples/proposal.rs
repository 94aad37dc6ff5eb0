//! Proposals from the command line: approve or reject one under your own identity, or measure
//! what the T-gent admission webhook adds to the latency of creating a proposal.
//!
//! ```sh
//! cargo run --example proposal -- approve scale-b-gent -n kgents --comment "checked the budget"
//! cargo run --example proposal -- reject scale-b-gent -n kgents --reason "not this week"
//! cargo run --release --example proposal -- latency --clients 20 --seconds 30
//! ```
//!
//! `approve` and `reject` write to the proposal's status subresource; the approver is who the
//! API server says you are (a SelfSubjectReview), not a name you type. A proposer's approval of
//! their own proposal does not count.
//!
//! `latency` starts a private control plane (the testbed; build it once with
//! `scripts/testbed-build`), then has N clients create proposals as fast as they can for the
//! given time, first without the webhook and then with it registered (failurePolicy Fail,
//! served by this process over TLS on 127.0.0.1), and prints p50/p99 of `create` for both and
//! the p99 the webhook adds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kgents::kgents_crds::Proposal;
use kgents::kgents_operator::admission::server::{CertificateSource, Endpoint, WebhookConfig};
use kgents::kgents_operator::{admission, proposal};
use kube::api::PostParams;
use kube::{Api, Client};

#[derive(Parser, Debug)]
#[command(about = "Approve or reject a Proposal, or measure the admission webhook's latency.")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Approve a proposal as the authenticated user.
    Approve {
        /// The proposal's name.
        name: String,
        /// Its namespace.
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// A remark stored with the approval.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a proposal as the authenticated user.
    Reject {
        /// The proposal's name.
        name: String,
        /// Its namespace.
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Measure create latency with and without the webhook on a private control plane.
    Latency {
        /// Concurrent clients.
        #[arg(long, default_value_t = 20)]
        clients: usize,
        /// Seconds per run.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Args::parse().command {
        Command::Approve {
            name,
            namespace,
            comment,
        } => {
            let client = Client::try_default()
                .await
                .context("no usable kubeconfig")?;
            let who = proposal::approve(&client, &namespace, &name, comment.as_deref())
                .await
                .with_context(|| format!("approving proposal {namespace}/{name}"))?;
            println!("proposal {namespace}/{name} approved by {who}");
        }
        Command::Reject {
            name,
            namespace,
            reason,
        } => {
            let client = Client::try_default()
                .await
                .context("no usable kubeconfig")?;
            let who = proposal::reject(&client, &namespace, &name, reason.as_deref())
                .await
                .with_context(|| format!("rejecting proposal {namespace}/{name}"))?;
            println!("proposal {namespace}/{name} rejected by {who}");
        }
        Command::Latency { clients, seconds } => {
            latency(clients, Duration::from_secs(seconds)).await?
        }
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// `clients` tasks creating LOW proposals in `namespace` for `run`; the sorted latencies.
async fn hammer(
    testbed: &kgents_testbed::Testbed,
    namespace: &str,
    proposer: &str,
    clients: usize,
    run: Duration,
    tag: &str,
) -> Result<(Vec<Duration>, usize)> {
    let mut tasks = Vec::new();
    for client_index in 0..clients {
        let api: Api<Proposal> = Api::namespaced(testbed.client().await?, namespace);
        let (proposer, tag) = (proposer.to_owned(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            let deadline = Instant::now() + run;
            let mut n = 0u64;
            while Instant::now() < deadline {
                let proposal: Proposal = serde_json::from_value(serde_json::json!({
                    "apiVersion": "kgents.io/v1", "kind": "Proposal",
                    "metadata": {"name": format!("{tag}-{client_index}-{n}")},
                    "spec": {"proposer": proposer, "changeType": "AGENT_SCALE",
                        "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": format!("agent-{client_index}")},
                        "patch": {"type": "merge", "content": "{\"spec\":{\"replicas\":2}}"}},
                }))
                .expect("valid proposal");
                n += 1;
                let started = Instant::now();
                match api.create(&PostParams::default(), &proposal).await {
                    Ok(_) => latencies.push(started.elapsed()),
                    Err(_) => failures += 1,
                }
            }
            (latencies, failures)
        }));
    }
    let mut all = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (latencies, failed) = task.await?;
        all.extend(latencies);
        failures += failed;
    }
    all.sort();
    Ok((all, failures))
}

async fn latency(clients: usize, run: Duration) -> Result<()> {
    eprintln!("starting a private control plane ...");
    let testbed = kgents_testbed::Testbed::builder()
        .start()
        .await
        .context("starting the control plane (build it once with scripts/testbed-build)")?;
    testbed.install_crds(&kgents::kgents_crds::crds()).await?;
    let admin = testbed.client().await?;
    let proposer = proposal::whoami(&admin).await?;

    let plain = testbed.create_namespace("latency-plain").await?;
    let (without, failed_without) =
        hammer(&testbed, &plain, &proposer, clients, run, "plain").await?;

    let gated = testbed.create_namespace("latency-webhook").await?;
    let config = WebhookConfig {
        configuration_name: "kgents-proposals-latency".to_owned(),
        namespace: gated.clone(),
        secret_name: "kgents-webhook-tls".to_owned(),
        policy_config_map: None,
        bind: "127.0.0.1:0".parse()?,
        endpoint: Endpoint::Url {
            host: "127.0.0.1".to_owned(),
        },
        namespace_selector: Some(LabelSelector {
            match_labels: Some([("kubernetes.io/metadata.name".to_owned(), gated.clone())].into()),
            ..LabelSelector::default()
        }),
        watch_namespace: Some(gated.clone()),
        certificates: CertificateSource::Generated {
            validity: Duration::from_secs(30 * 86_400),
            renew_before: Duration::from_secs(7 * 86_400),
        },
        timeout_seconds: 3,
        remove_on_shutdown: true,
    };
    let server = admission::serve(
        admin.clone(),
        config,
        Arc::new(kgents::kgents_core::clock::SystemClock),
    )
    .await?;
    // Wait until the API server calls it: a dry-run CRITICAL proposal is denied.
    let api: Api<Proposal> = Api::namespaced(admin.clone(), &gated);
    let probe: Proposal = serde_json::from_value(serde_json::json!({
        "apiVersion": "kgents.io/v1", "kind": "Proposal", "metadata": {"name": "probe"},
        "spec": {"proposer": proposer, "changeType": "RISK_OVERRIDE", "target": {"kind": "Agent", "name": "x"}},
    }))?;
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(api.create(&dry_run, &probe).await, Err(kube::Error::Api(ref s)) if s.message.contains("T-gent"))
    {
        anyhow::ensure!(Instant::now() < deadline, "the webhook never took effect");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (with, failed_with) = hammer(&testbed, &gated, &proposer, clients, run, "gated").await?;
    server.shutdown().await;

    let report = |label: &str, l: &[Duration], failed: usize| {
        println!(
            "{label:<16} {:>6} creates ({:>5.0}/s), {failed} failed, p50 {:>7.2} ms, p99 {:>7.2} ms",
            l.len(),
            l.len() as f64 / run.as_secs_f64(),
            percentile(l, 0.50).as_secs_f64() * 1e3,
            percentile(l, 0.99).as_secs_f64() * 1e3,
        )
    };
    println!("{clients} clients x {}s, LOW proposals", run.as_secs());
    report("without webhook", &without, failed_without);
    report("with webhook", &with, failed_with);
    println!(
        "webhook adds    p50 {:>7.2} ms, p99 {:>7.2} ms",
        (percentile(&with, 0.50).as_secs_f64() - percentile(&without, 0.50).as_secs_f64()) * 1e3,
        (percentile(&with, 0.99).as_secs_f64() - percentile(&without, 0.99).as_secs_f64()) * 1e3,
    );
    Ok(())
}
