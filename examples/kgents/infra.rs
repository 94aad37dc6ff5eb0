//! `kgents infra init|status|teardown`: the operator in the current cluster, through
//! [`kgents::kgents_operator::install`] (the plan, server-side apply, status, teardown live
//! there; this file parses flags and prints).
//!
//! Output: one kubectl-like line per object on stdout (`deployment.apps/kgents-operator
//! unchanged`); questions and summaries on stderr. Exit codes: 0 done (status: every
//! component healthy), 1 failed or unhealthy, 2 bad usage or input (e.g. `teardown` without
//! `--yes` when no one can be asked), 3 denied by the API server (RBAC, credentials), 4 the
//! cluster cannot be reached.

use std::fmt;
use std::io::{BufRead, IsTerminal, Write};

use kgents::kgents_operator::install::plan::{DEFAULT_IMAGE, DEFAULT_REPLICAS, InstallSettings};
use kgents::kgents_operator::install::{self, Health, InstallError, Removal, TeardownOptions};
use kgents::kgents_operator::rbac::OPERATOR_NAMESPACE;

/// `kgents infra …`
#[derive(clap::Subcommand, Debug)]
pub enum InfraCommand {
    /// Install or upgrade the operator in the current cluster: CRDs, namespace, RBAC, the
    /// operator Deployment and the webhook Service, by server-side apply (run it again to see
    /// every object unchanged).
    Init {
        /// Ask the API server what would change (server-side dry run) and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The operator image.
        #[arg(long, default_value = DEFAULT_IMAGE)]
        image: String,
        /// Replicas of the operator Deployment (one leads, the others stand by).
        #[arg(
            long,
            default_value_t = DEFAULT_REPLICAS,
            allow_negative_numbers = true,
            value_parser = clap::value_parser!(i32).range(1..)
        )]
        replicas: i32,
        /// Serve the T-gent admission webhook for proposals (the default).
        #[arg(long, overrides_with = "no_webhook")]
        webhook: bool,
        /// Run the operator without the admission webhook.
        #[arg(long, overrides_with = "webhook")]
        no_webhook: bool,
        /// The operator's namespace.
        #[arg(long, env = "KGENTS_OPERATOR_NAMESPACE", default_value = OPERATOR_NAMESPACE)]
        operator_namespace: String,
    },
    /// Check each component: CRDs Established, RBAC as this version grants, the Deployment's
    /// available replicas, Service endpoints, the webhook registration and its caBundle.
    Status {
        /// The operator's namespace.
        #[arg(long, env = "KGENTS_OPERATOR_NAMESPACE", default_value = OPERATOR_NAMESPACE)]
        operator_namespace: String,
    },
    /// Remove the operator (Deployment, Services, RBAC, webhook registration). The CRDs stay,
    /// and with them every Agent, Memory, Pheromone, Umwelt and Proposal, unless --delete-data.
    Teardown {
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Also delete the CRDs, and so every K8-gents object in the cluster, the Memories'
        /// storage and the operator's namespace. This cannot be undone.
        #[arg(long)]
        delete_data: bool,
        /// The operator's namespace.
        #[arg(long, env = "KGENTS_OPERATOR_NAMESPACE", default_value = OPERATOR_NAMESPACE)]
        operator_namespace: String,
    },
}

/// Why `kgents infra` failed; [`InfraError::exit_code`] is the process's exit code.
#[derive(Debug)]
pub enum InfraError {
    /// Bad usage or input.
    Usage(String),
    /// The person answered no to the confirmation.
    Declined,
    /// `status` found components that are not healthy (printed above).
    Unhealthy {
        /// How many.
        unhealthy: usize,
        /// Out of how many.
        total: usize,
    },
    /// An installer step failed.
    Install(InstallError),
}

impl fmt::Display for InfraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) => f.write_str(message),
            Self::Declined => f.write_str("teardown cancelled; nothing was removed"),
            Self::Unhealthy { unhealthy, total } => write!(
                f,
                "{unhealthy} of {total} components are not healthy; the lines above say what to do"
            ),
            Self::Install(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for InfraError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Install(error) => Some(error),
            _ => None,
        }
    }
}

impl From<InstallError> for InfraError {
    fn from(error: InstallError) -> Self {
        Self::Install(error)
    }
}

impl InfraError {
    /// 1 failed or unhealthy, 2 usage or bad input, 3 denied, 4 cluster unavailable.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Declined | Self::Unhealthy { .. } => 1,
            Self::Install(error) => error.kind().exit_code(),
        }
    }
}

fn settings(namespace: String) -> InstallSettings {
    InstallSettings {
        namespace,
        ..InstallSettings::default()
    }
}

/// Runs one `kgents infra` command against the cluster `client` talks to.
pub async fn run(command: InfraCommand, client: kube::Client) -> Result<(), InfraError> {
    match command {
        InfraCommand::Init {
            dry_run,
            image,
            replicas,
            webhook: _,
            no_webhook,
            operator_namespace,
        } => {
            let settings = InstallSettings {
                image,
                replicas,
                webhook: !no_webhook,
                ..settings(operator_namespace)
            };
            settings.validate().map_err(InfraError::Usage)?;
            let applied = install::apply(&client, &settings, dry_run).await?;
            let mut out = std::io::stdout().lock();
            for line in &applied {
                let _ = writeln!(out, "{line}");
            }
            let changed = applied
                .iter()
                .filter(|a| a.change != install::Change::Unchanged)
                .count();
            if dry_run {
                eprintln!(
                    "server dry run: {changed} of {} objects would change; nothing was changed",
                    applied.len()
                );
            } else if settings.webhook {
                eprintln!(
                    "{changed} of {} objects changed; the operator registers its admission webhook once it serves (`kgents infra status` shows it)",
                    applied.len()
                );
            } else {
                eprintln!("{changed} of {} objects changed", applied.len());
            }
            Ok(())
        }
        InfraCommand::Status { operator_namespace } => {
            let settings = settings(operator_namespace);
            settings.validate().map_err(InfraError::Usage)?;
            let report = install::status::status(&client, &settings).await?;
            let mut out = std::io::stdout().lock();
            for component in &report.components {
                let _ = writeln!(out, "{component}");
            }
            let unhealthy = report
                .components
                .iter()
                .filter(|c| c.health != Health::Healthy)
                .count();
            if unhealthy == 0 {
                eprintln!(
                    "the operator is installed and healthy in namespace {}",
                    report.namespace
                );
                Ok(())
            } else {
                Err(InfraError::Unhealthy {
                    unhealthy,
                    total: report.components.len(),
                })
            }
        }
        InfraCommand::Teardown {
            yes,
            delete_data,
            operator_namespace,
        } => {
            let settings = settings(operator_namespace);
            settings.validate().map_err(InfraError::Usage)?;
            if !yes {
                confirm(&settings.namespace, delete_data)?;
            }
            let removed = install::teardown(
                &client,
                &settings,
                &TeardownOptions {
                    delete_data,
                    ..TeardownOptions::default()
                },
            )
            .await?;
            let mut out = std::io::stdout().lock();
            for line in &removed {
                let _ = writeln!(out, "{line}");
            }
            let kept = removed
                .iter()
                .filter(|r| matches!(r.removal, Removal::Kept(_)))
                .count();
            if kept > 0 {
                eprintln!(
                    "the operator is removed; the CRDs and your data are kept (--delete-data removes them)"
                );
            }
            Ok(())
        }
    }
}

/// Asks on the terminal; refuses when nobody can be asked.
fn confirm(namespace: &str, delete_data: bool) -> Result<(), InfraError> {
    if !std::io::stdin().is_terminal() {
        return Err(InfraError::Usage(
            "teardown removes the operator from the cluster; pass --yes to confirm (stdin is not a terminal, so nobody can be asked)".to_owned(),
        ));
    }
    let what = if delete_data {
        format!(
            "This removes the K8-gents operator AND DELETES EVERY Agent, Memory (with its storage), Pheromone, Umwelt and Proposal in the cluster, their CRDs and the namespace {namespace}. This cannot be undone."
        )
    } else {
        format!(
            "This removes the K8-gents operator (namespace {namespace}); the CRDs, Agents, Memories and their storage are kept."
        )
    };
    eprint!("{what}\nType 'yes' to continue: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| InfraError::Usage(format!("reading the confirmation: {e}")))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(InfraError::Declined)
    }
}
