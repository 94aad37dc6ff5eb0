//! `kgents dev up`: a private control plane (etcd, kube-apiserver, controller-manager,
//! scheduler and kwok with fake nodes, from `kgents-testbed`) plus the operator with its
//! admission webhook in this process, and the samples of `deploy/examples/` — what
//! `cargo run --example operator -- --embedded --with-samples --webhook` does, as the first
//! command a newcomer runs. When the control-plane binaries are not built yet, it builds them
//! with `scripts/testbed-build` (Go needed; several minutes the first time, its progress
//! shown). Ctrl+C stops the operator (which unregisters its webhook) and the control plane.
//!
//! Output: the `export KUBECONFIG=…` line on stdout; progress and logs on stderr. Exit codes:
//! 0 stopped by Ctrl+C or SIGTERM, 1 failed, 2 bad usage.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kgents::kgents_operator::OperatorConfig;
use kgents::kgents_operator::install::local::{
    self, SampleFile, apply_samples, embedded_webhook, ensure_namespace,
};
use kgents::kgents_operator::proposal::ProposalSettings;
use kgents::kgents_operator::rbac::OPERATOR_NAMESPACE;
use kgents::kgents_operator::run::{self, RunOptions};
use kgents_testbed::Testbed;

use crate::render::outln;

/// The repository this binary was built from: the build script and the samples live there
/// (`cargo install --path . --example kgents` keeps it in place).
const REPOSITORY: &str = env!("CARGO_MANIFEST_DIR");

/// `kgents dev …`
#[derive(clap::Subcommand, Debug)]
pub enum DevCommand {
    /// Start a private control plane with the operator, its webhook and the samples, and print
    /// how to point kubectl at it. Ctrl+C stops everything.
    Up {
        /// Fake nodes (kwok) for agent pods.
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        /// Do not apply the samples from deploy/examples/.
        #[arg(long)]
        no_samples: bool,
        /// Run the operator without the T-gent admission webhook.
        #[arg(long)]
        no_webhook: bool,
        /// Where the operator serves /metrics, /healthz and /readyz.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http_addr: SocketAddr,
        /// Fail instead of building missing control-plane binaries.
        #[arg(long)]
        no_build: bool,
    },
}

/// Why `kgents dev` failed; [`DevError::exit_code`] is the process's exit code.
#[derive(Debug)]
pub enum DevError {
    /// Bad usage or input.
    Usage(String),
    /// The control-plane binaries could not be built.
    Build(String),
    /// The control plane did not start.
    ControlPlane(kgents_testbed::Error),
    /// The operator stopped with an error.
    Operator(String),
}

impl fmt::Display for DevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) | Self::Build(message) | Self::Operator(message) => {
                f.write_str(message)
            }
            Self::ControlPlane(error) => write!(f, "the control plane did not start: {error}"),
        }
    }
}

impl std::error::Error for DevError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::ControlPlane(error) => Some(error),
            _ => None,
        }
    }
}

impl DevError {
    /// 1 failed, 2 bad usage.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Build(_) | Self::ControlPlane(_) | Self::Operator(_) => 1,
        }
    }
}

/// Runs one `kgents dev` command.
pub async fn run(command: DevCommand) -> Result<(), DevError> {
    let DevCommand::Up {
        nodes,
        no_samples,
        no_webhook,
        http_addr,
        no_build,
    } = command;
    if nodes == 0 || nodes > 50 {
        return Err(DevError::Usage(format!(
            "--nodes must be between 1 and 50, not {nodes}"
        )));
    }
    // One crypto provider for every TLS user in the process (kube, the webhook server).
    let _ = rustls::crypto::ring::default_provider().install_default();

    eprintln!("dev up: starting a private control plane with {nodes} fake node(s) ...");
    let testbed = tokio::select! {
        started = start_control_plane(nodes, no_build) => started?,
        _ = run::shutdown_signal() => {
            eprintln!("dev up: interrupted; nothing is left running");
            return Ok(());
        }
    };
    testbed
        .install_crds(&kgents::kgents_crds::crds())
        .await
        .map_err(DevError::ControlPlane)?;
    // Ignored when stdout is closed: the control plane runs on, and the line is for whoever reads.
    let _ = outln!(
        "Kubernetes {} is up at {}; point kubectl at it:\n\n    export KUBECONFIG={}\n    kubectl get agents,pheromones,memories,umwelts,proposals -A\n",
        testbed.kubernetes_version(),
        testbed.apiserver_url(),
        testbed.kubeconfig_path().display()
    );
    // Logs from here on (the API server answers; its start-up errors are not worth showing).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_runtime=warn"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .try_init();
    let client = testbed.client().await.map_err(DevError::ControlPlane)?;
    ensure_namespace(&client, OPERATOR_NAMESPACE)
        .await
        .map_err(|e| DevError::Operator(e.to_string()))?;

    // One process, so no leader election; /metrics and health on loopback only.
    let mut options = RunOptions::new(
        OperatorConfig {
            // each agent's history, read by `kgents seance`
            witness: kgents::kgents_operator::witness::WitnessSetting::File(
                kgents::kgents_operator::witness::default_witness_path(),
            ),
            ..OperatorConfig::default()
        },
        OPERATOR_NAMESPACE,
    );
    options.http_addr = Some(http_addr);
    options.leader_election = None;
    let webhook = (!no_webhook).then(|| embedded_webhook(OPERATOR_NAMESPACE));
    if let Some(name) = webhook.as_ref().and_then(|w| w.policy_config_map.clone()) {
        // The controller re-checks unvetted proposals against the webhook's policy.
        options.config.proposal =
            ProposalSettings::new().with_policy_config_map(OPERATOR_NAMESPACE.to_owned(), name);
    }

    if !no_samples {
        let client = client.clone();
        tokio::spawn(async move {
            // The operator (and its webhook, which admits the sample proposals) starts first.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let dir = Path::new(REPOSITORY).join("deploy/examples");
            match samples(&dir) {
                Ok(files) => match apply_samples(&client, &files).await {
                    Ok(outcome) => {
                        eprintln!(
                            "dev up: applied {} sample object(s) from {}",
                            outcome.applied,
                            dir.display()
                        );
                        for refused in outcome.refused {
                            eprintln!("dev up: the API server refused {refused}");
                        }
                    }
                    Err(e) => eprintln!("dev up: could not apply the samples: {e}"),
                },
                Err(e) => eprintln!("dev up: no samples: {e}"),
            }
        });
    }

    eprintln!("dev up: the operator runs; Ctrl+C stops it and the control plane");
    let outcome = match webhook {
        Some(webhook) => {
            run::run_with_webhook(client, options, webhook, run::shutdown_signal()).await
        }
        None => run::run(client, options, run::shutdown_signal()).await,
    };
    // The control plane's processes stop and its directories go with it.
    drop(testbed);
    match outcome {
        Ok(()) => {
            eprintln!("dev up: stopped");
            Ok(())
        }
        Err(e) => Err(DevError::Operator(format!(
            "the operator stopped with an error: {e}"
        ))),
    }
}

fn samples(dir: &Path) -> Result<Vec<SampleFile>, String> {
    local::read_sample_dir(dir).map_err(|e| e.to_string())
}

/// Starts the control plane, building its binaries first when they are missing or outdated.
async fn start_control_plane(nodes: usize, no_build: bool) -> Result<Testbed, DevError> {
    let start = || Testbed::builder().with_nodes(nodes).start();
    match start().await {
        Ok(testbed) => Ok(testbed),
        Err(
            missing @ (kgents_testbed::Error::BinariesMissing { .. }
            | kgents_testbed::Error::KwokStagesOutdated { .. }),
        ) => {
            if no_build {
                return Err(DevError::ControlPlane(missing));
            }
            eprintln!("dev up: {missing}");
            build_control_plane().await?;
            start().await.map_err(DevError::ControlPlane)
        }
        Err(other) => Err(DevError::ControlPlane(other)),
    }
}

/// Runs `scripts/testbed-build`, its output on stderr, with a line every 30 s while Go is
/// silent.
async fn build_control_plane() -> Result<(), DevError> {
    let script = PathBuf::from(REPOSITORY).join("scripts/testbed-build");
    if !script.is_file() {
        return Err(DevError::Build(format!(
            "the build script {} is not there (this binary was built from a repository that has moved); build the control plane from a checkout with scripts/testbed-build, or point KGENTS_TESTBED_BIN at its binaries",
            script.display()
        )));
    }
    eprintln!(
        "dev up: building the control plane with {} (several minutes the first time; Go >= 1.26 needed) ...",
        script.display()
    );
    let stdout = stderr_for_child()
        .map_err(|e| DevError::Build(format!("cannot pass stderr to the build: {e}")))?;
    let mut child = tokio::process::Command::new(&script)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| DevError::Build(format!("cannot run {}: {e}", script.display())))?;
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(30));
    ticker.tick().await;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = ticker.tick() => eprintln!(
                "dev up: still building ({} s so far) ...",
                started.elapsed().as_secs()
            ),
        }
    }
    .map_err(|e| DevError::Build(format!("waiting for {}: {e}", script.display())))?;
    if status.success() {
        eprintln!(
            "dev up: control plane built in {} s",
            started.elapsed().as_secs()
        );
        Ok(())
    } else {
        Err(DevError::Build(format!(
            "{} failed ({status}); its output above says why (a missing Go toolchain is the usual cause)",
            script.display()
        )))
    }
}

/// A handle to this process's stderr that a child can write its stdout to.
fn stderr_for_child() -> std::io::Result<std::process::Stdio> {
    use std::os::fd::AsFd;
    Ok(std::process::Stdio::from(
        std::io::stderr().as_fd().try_clone_to_owned()?,
    ))
}
