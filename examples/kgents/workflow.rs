//! `kgents workflow apply|get|describe|cancel|retry`: durable Workflows.
//!
//! `apply` goes through the Logos (`world.cluster.workflow.define`), which refuses a cycle or an
//! unregistered path naming the step before anything is sent. `cancel` sets `spec.cancelled`;
//! `retry` raises `spec.retryGeneration` (with the resourceVersion it read, so two retries
//! racing each other count as one and the loser is told): both are spec patches, so the
//! operator, not the CLI, changes the journal.

use std::path::{Path as FsPath, PathBuf};

use clap::Subcommand;
use kgents::kgents_crds::Workflow;
use kgents::kgents_crds::workflow::WorkflowSpec;
use kgents::kgents_logos::logos::WorkflowInput;
use kgents::kgents_logos::{Args, Error, Outcome};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use crate::cli::{Global, Output};
use crate::commands::{Failure, live, write_scope};
use crate::connect;
use crate::render::{self, Table, note, out, outln};

/// `kgents workflow`.
#[derive(Subcommand, Debug)]
pub enum WorkflowCommand {
    /// Create or update a Workflow from a file (world.cluster.workflow.define).
    Apply {
        /// A Workflow, JSON or YAML (`-` for stdin); metadata.name names it.
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
        /// Server-side dry run: checked and admitted, nothing stored.
        #[arg(long)]
        dry_run: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// List Workflows, or show one.
    Get {
        /// One Workflow by name.
        name: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// A Workflow's journal: each step's phase, attempt, key, retry time and message.
    Describe {
        /// The Workflow.
        name: String,
    },
    /// Stop a Workflow: no further step starts (sets spec.cancelled).
    Cancel {
        /// The Workflow.
        name: String,
    },
    /// Retry a Workflow's failed steps with a fresh retry budget (raises spec.retryGeneration).
    Retry {
        /// The Workflow.
        name: String,
    },
}

/// Runs `kgents workflow …`.
pub async fn run(global: &Global, command: WorkflowCommand) -> Result<u8, Failure> {
    match command {
        WorkflowCommand::Apply {
            file,
            dry_run,
            output,
        } => apply(global, &file, dry_run, output).await,
        WorkflowCommand::Get { name, output } => get(global, name, output).await,
        WorkflowCommand::Describe { name } => describe(global, &name).await,
        WorkflowCommand::Cancel { name } => {
            patch_spec(
                global,
                &name,
                |_| json!({"spec": {"cancelled": true}}),
                "cancelled",
            )
            .await
        }
        WorkflowCommand::Retry { name } => patch_spec(
            global,
            &name,
            |wf| {
                json!({
                    "metadata": {"resourceVersion": wf.metadata.resource_version},
                    "spec": {"retryGeneration": wf.spec.retry_generation + 1, "cancelled": false},
                })
            },
            "retried",
        )
        .await,
    }
}

fn usage(message: String) -> Failure {
    Failure { code: 2, message }
}

/// `(metadata.name, spec)` from a Workflow file.
fn read_file(path: &FsPath) -> Result<(String, WorkflowSpec), Failure> {
    let value = crate::commands::read_manifest(path)?;
    let shown = path.display();
    if let Some(kind) = value.get("kind").and_then(|k| k.as_str())
        && kind != "Workflow"
    {
        return Err(usage(format!("{shown}: kind is {kind}, not Workflow")));
    }
    let name = value
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .map(str::to_owned)
        .ok_or_else(|| usage(format!("{shown}: metadata.name is required")))?;
    let spec = value
        .get("spec")
        .cloned()
        .ok_or_else(|| usage(format!("{shown}: spec is required")))?;
    let spec: WorkflowSpec = serde_json::from_value(spec)
        .map_err(|e| usage(format!("{shown}: not a Workflow spec: {e}")))?;
    Ok((name, spec))
}

async fn apply(
    global: &Global,
    file: &FsPath,
    dry_run: bool,
    output: Output,
) -> Result<u8, Failure> {
    let (name, spec) = read_file(file)?;
    let live = live(global).await?;
    let scope = write_scope(global, &live.conn.namespace)?;
    let input = WorkflowInput {
        name: Some(name),
        spec: Some(spec),
        dry_run,
    };
    let outcome = live
        .logos
        .invoke(
            &live.caller,
            "world.cluster.workflow.define",
            Args::new(scope).with_input(&input),
        )
        .await?;
    let Outcome::Workflow(defined) = outcome else {
        return Err(Failure {
            code: 1,
            message: "world.cluster.workflow.define answered something else".into(),
        });
    };
    let verb = match (defined.created, defined.dry_run) {
        (true, false) => "created",
        (false, false) => "configured",
        (true, true) => "created (dry run)",
        (false, true) => "configured (dry run)",
    };
    render::print(
        output,
        &defined,
        || Table {
            headers: vec!["WORKFLOW", "RESULT", "STEPS"],
            narrow: 3,
            rows: vec![vec![
                format!("workflow.kgents.io/{}", defined.name),
                verb.to_owned(),
                defined.steps.join(","),
            ]],
        },
        || vec![format!("workflow.kgents.io/{}", defined.name)],
    )?;
    Ok(0)
}

async fn api(global: &Global) -> Result<(Api<Workflow>, String), Failure> {
    let conn = connect::connect(global).await?;
    let api = if global.all_namespaces {
        Api::all(conn.client.clone())
    } else {
        Api::namespaced(conn.client.clone(), &conn.namespace)
    };
    Ok((api, conn.namespace))
}

fn not_found(name: &str, namespace: &str) -> Failure {
    Failure {
        code: 1,
        message: format!(
            "workflow {name} not found in namespace {namespace}; `kgents workflow get` lists them"
        ),
    }
}

async fn fetch(api: &Api<Workflow>, name: &str, namespace: &str) -> Result<Workflow, Failure> {
    api.get_opt(name)
        .await
        .map_err(|e| Error::from_kube(format!("reading workflow {name}"), e))?
        .ok_or_else(|| not_found(name, namespace))
}

fn row(wf: &Workflow) -> Vec<String> {
    let status = wf.status.clone().unwrap_or_default();
    vec![
        wf.metadata.namespace.clone().unwrap_or_default(),
        wf.metadata.name.clone().unwrap_or_default(),
        status
            .phase
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        format!("{}/{}", status.succeeded, wf.spec.steps.len()),
        wf.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| render::age(t.0))
            .unwrap_or_default(),
        wf.spec.umwelt.clone().unwrap_or_default(),
    ]
}

async fn get(global: &Global, name: Option<String>, output: Output) -> Result<u8, Failure> {
    if name.is_some() && global.all_namespaces {
        return Err(usage(
            "name one workflow in one namespace (-n), not -A".into(),
        ));
    }
    let (api, namespace) = api(global).await?;
    let items = match &name {
        Some(name) => vec![fetch(&api, name, &namespace).await?],
        None => {
            api.list(&ListParams::default())
                .await
                .map_err(|e| Error::from_kube("listing workflows", e))?
                .items
        }
    };
    let value = if name.is_some() {
        serde_json::to_value(&items[0])
    } else {
        serde_json::to_value(&items)
    }
    .unwrap_or_default();
    render::print(
        output,
        &value,
        || Table {
            headers: vec!["NAMESPACE", "NAME", "PHASE", "DONE", "AGE", "UMWELT"],
            narrow: 5,
            rows: items.iter().map(row).collect(),
        },
        || {
            items
                .iter()
                .map(|w| {
                    format!(
                        "workflow.kgents.io/{}",
                        w.metadata.name.clone().unwrap_or_default()
                    )
                })
                .collect()
        },
    )?;
    Ok(0)
}

async fn describe(global: &Global, name: &str) -> Result<u8, Failure> {
    let (api, namespace) = api(global).await?;
    let wf = fetch(&api, name, &namespace).await?;
    let status = wf.status.clone().unwrap_or_default();
    let mut out = String::new();
    out.push_str(&format!("Name:        {name}\nNamespace:   {namespace}\n"));
    out.push_str(&format!(
        "Phase:       {}\n",
        status.phase.map_or("<none>", |p| p.as_str())
    ));
    out.push_str(&format!(
        "Umwelt:      {}\nCancelled:   {}\nRetry gen.:  {} (honoured: {})\n",
        wf.spec.umwelt.as_deref().unwrap_or("<none>"),
        wf.spec.cancelled,
        wf.spec.retry_generation,
        status.retry_generation
    ));
    for condition in &status.conditions {
        out.push_str(&format!(
            "Condition:   {}={} {}: {}\n",
            condition.type_, condition.status, condition.reason, condition.message
        ));
    }
    let table = Table {
        headers: vec![
            "STEP",
            "PHASE",
            "ATTEMPT",
            "RETRIES",
            "NEXT RETRY",
            "OBJECT",
            "KEY",
            "MESSAGE",
        ],
        narrow: 8,
        rows: wf
            .spec
            .steps
            .iter()
            .map(|step| {
                let entry = status.steps.iter().find(|s| s.name == step.name);
                vec![
                    step.name.clone(),
                    entry.map_or("Pending", |e| e.phase.as_str()).to_owned(),
                    entry.map(|e| e.attempt.to_string()).unwrap_or_default(),
                    entry.map(|e| e.retries.to_string()).unwrap_or_default(),
                    entry
                        .and_then(|e| e.next_retry_at.as_ref())
                        .map(|t| t.0.to_string())
                        .unwrap_or_default(),
                    entry
                        .and_then(|e| e.object_name.clone())
                        .unwrap_or_default(),
                    entry
                        .and_then(|e| e.idempotency_key.clone())
                        .unwrap_or_default(),
                    entry.and_then(|e| e.message.clone()).unwrap_or_default(),
                ]
            })
            .collect(),
    };
    out.push_str("Steps:\n");
    out.push_str(&table.render(true));
    out!("{out}")?;
    Ok(0)
}

async fn patch_spec(
    global: &Global,
    name: &str,
    body: impl FnOnce(&Workflow) -> serde_json::Value,
    done: &str,
) -> Result<u8, Failure> {
    if global.all_namespaces {
        return Err(usage(
            "this command writes to one namespace; name it with -n, not -A".into(),
        ));
    }
    let (api, namespace) = api(global).await?;
    let wf = fetch(&api, name, &namespace).await?;
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(body(&wf)))
        .await
    {
        Ok(_) => {
            outln!("workflow.kgents.io/{name} {done}")?;
            Ok(0)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            note("the workflow changed while it was read; nothing was written");
            Err(Failure {
                code: 1,
                message: format!("workflow {name} changed meanwhile; run the command again"),
            })
        }
        Err(e) => Err(Error::from_kube(format!("patching workflow {name}"), e).into()),
    }
}
