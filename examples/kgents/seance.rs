//! `kgents seance AGENT`: the agent rebuilt from its witness record
//! (`time.witness.<agent>.replay`), read from the store the operator writes; nothing is re-run
//! and no model is called. `--fork NAME` creates a new Agent from the past spec, only when
//! asked, through the Kubernetes API as you.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args as ClapArgs;
use kgents::kgents_logos::{Args, Caller, Logos, Outcome, ReplayInput, Scope};
use kgents::kgents_operator::witness::{WitnessSetting, default_witness_path};
use kgents::kgents_seance::{PgWitnessStore, RedbWitnessStore, WitnessStore};
use kube::Api;
use kube::api::{DynamicObject, PostParams};
use kube::discovery::ApiResource;

use crate::cli::{Global, Output};
use crate::commands::Failure;
use crate::connect;
use crate::render::{self, out, outln};

/// `kgents seance`.
#[derive(ClapArgs, Debug, Clone)]
pub struct SeanceArgs {
    /// The agent.
    pub agent: String,
    /// Rebuild it as it was at this time (RFC 3339, e.g. 2026-12-01T10:00:00Z; default: now).
    #[arg(long, value_parser = parse_time)]
    pub at: Option<jiff::Timestamp>,
    /// Print each record with the change it made.
    #[arg(long)]
    pub step: bool,
    /// Steps from this time on.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<jiff::Timestamp>,
    /// Steps up to this time.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<jiff::Timestamp>,
    /// Steps newest first (stepping back).
    #[arg(long)]
    pub reverse: bool,
    /// Create a new Agent NAME from the rebuilt spec (the record itself is never changed).
    #[arg(long, value_name = "NAME")]
    pub fork: Option<String>,
    /// The witness store: a redb file, or a postgres:// URL (default: $KGENTS_WITNESS, else
    /// ~/.kgents/witness/witness.redb, the file `kgents dev up` writes).
    #[arg(long, env = "KGENTS_WITNESS_STORE", value_name = "PATH|URL")]
    pub store: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

fn parse_time(text: &str) -> Result<jiff::Timestamp, String> {
    text.parse::<jiff::Timestamp>().map_err(|e| {
        format!("{text:?} is not a time: {e} (use RFC 3339, e.g. 2026-12-01T10:00:00Z)")
    })
}

fn failed(code: u8, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

/// Opens the store read-only (beside a running operator).
async fn open(store: Option<&str>) -> Result<Arc<dyn WitnessStore>, Failure> {
    let setting = match store {
        Some(text) => WitnessSetting::parse(text),
        None => WitnessSetting::File(default_witness_path()),
    };
    match setting {
        WitnessSetting::Off => Err(failed(2, "--store off: there is nothing to read")),
        WitnessSetting::File(path) => {
            let path: PathBuf = path;
            let store =
                tokio::task::spawn_blocking(move || RedbWitnessStore::open_read_only(&path))
                    .await
                    .map_err(|e| failed(1, e.to_string()))?
                    .map_err(|e| failed(1, e.to_string()))?;
            Ok(Arc::new(store))
        }
        WitnessSetting::Postgres(url) => Ok(Arc::new(
            PgWitnessStore::connect(&url)
                .await
                .map_err(|e| failed(4, e.to_string()))?,
        )),
    }
}

/// The witness store every other front-end (`kgents invoke`, `kgents mcp`, `kgents cortex
/// serve`, `kgents terrarium`) serves `time.witness.<agent>.replay` from, resolved the way
/// `kgents seance` resolves it: `named` (a `--witness-store` flag), else the one
/// `$KGENTS_WITNESS_STORE` names, else the default file when it exists. A file is opened
/// read-only: redb admits readers beside the operator writing it (in this process or another),
/// and they see each batch it commits. None when there is none; a store that exists but cannot
/// be opened is named on stderr.
pub async fn local_witness(named: Option<&str>) -> Option<Arc<dyn WitnessStore>> {
    let named = named
        .map(str::to_owned)
        .or_else(|| std::env::var("KGENTS_WITNESS_STORE").ok())
        .filter(|s| !s.is_empty());
    if named.is_none() && !default_witness_path().exists() {
        return None;
    }
    match open(named.as_deref()).await {
        Ok(store) => Some(store),
        Err(e) => {
            eprintln!("warning: time.witness.<agent>.replay is not served: {e}");
            None
        }
    }
}

/// Runs `kgents seance`.
pub async fn seance(global: &Global, args: SeanceArgs) -> Result<u8, Failure> {
    if matches!(args.output, Output::Name | Output::Wide) {
        return Err(failed(2, "seance prints -o table, json or yaml"));
    }
    let namespace = global
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let store = open(args.store.as_deref()).await?;
    let view = Arc::new(connect::LazyLiveView::new(global));
    let logos = Logos::new(view, None).with_witness(store);
    let input = ReplayInput {
        at: args.at,
        step: args.step,
        since: args.since,
        until: args.until,
        reverse: args.reverse,
    };
    let outcome = logos
        .invoke(
            &Caller::unrestricted("you (kubeconfig)"),
            &format!("time.witness.{}.replay", args.agent),
            Args::new(Scope::Namespace(namespace.clone())).with_input(&input),
        )
        .await?;
    let Outcome::Replay(replay) = outcome else {
        return Err(failed(
            1,
            "the Logos answered something other than a replay",
        ));
    };
    match args.output {
        Output::Json | Output::Yaml => {
            let no_table = || render::Table {
                headers: Vec::new(),
                narrow: 0,
                rows: Vec::new(),
            };
            render::print(args.output, &replay, no_table, Vec::new)?
        }
        _ => out!("{}", text(&replay))?,
    }
    if let Some(name) = args.fork {
        fork(global, &namespace, &name, &replay.state.spec).await?;
        outln!("forked: agent.kgents.io/{name} created in {namespace} from the spec as it was")?;
    }
    Ok(0)
}

/// The replay as text: the state, then the steps.
fn text(replay: &kgents::kgents_logos::outcome::Replay) -> String {
    let state = &replay.state;
    let mut out = String::new();
    let when = replay
        .at
        .map_or_else(|| "now".to_owned(), |t| t.to_string());
    out.push_str(&format!(
        "AGENT {} at {when} ({} records since {}; store {})\n",
        replay.agent, replay.records, replay.history_starts, replay.store
    ));
    out.push_str(&format!(
        "exists: {}   generation: {}   phase: {}   verdict: {}\n",
        state.exists,
        state.generation.map_or("-".into(), |g| g.to_string()),
        state
            .status
            .get("phase")
            .and_then(|v| v.as_str())
            .unwrap_or("-"),
        state
            .status
            .get("cognitiveHealth")
            .and_then(|v| v.as_str())
            .unwrap_or("-"),
    ));
    out.push_str(&format!(
        "spec: {}\n",
        serde_json::to_string(&state.spec).unwrap_or_default()
    ));
    let children = serde_json::to_string(&state.children).unwrap_or_default();
    out.push_str(&format!("children: {children}\n"));
    for (name, p) in &state.proposals {
        out.push_str(&format!(
            "proposal {name}: {}{}\n",
            p.phase.as_deref().unwrap_or("-"),
            match p.executed {
                Some(true) => ", executed",
                Some(false) => ", execution failed",
                None => "",
            }
        ));
    }
    for p in &state.pheromones {
        out.push_str(&format!(
            "emitted {} {} at {}\n",
            p.pheromone_type, p.name, p.at
        ));
    }
    for step in &replay.steps {
        out.push_str(&format!(
            "\n#{} {} {}\n",
            step.record.seq, step.record.at, step.summary
        ));
        for op in step.diff.as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {} {}{}\n",
                op.get("op").and_then(|v| v.as_str()).unwrap_or("?"),
                op.get("path").and_then(|v| v.as_str()).unwrap_or(""),
                op.get("value")
                    .map(|v| format!(" = {}", serde_json::to_string(v).unwrap_or_default()))
                    .unwrap_or_default()
            ));
        }
    }
    out
}

/// Creates Agent `name` with `spec`, as the kubeconfig user.
async fn fork(
    global: &Global,
    namespace: &str,
    name: &str,
    spec: &serde_json::Value,
) -> Result<(), Failure> {
    if spec.is_null() {
        return Err(failed(
            2,
            "no spec was recorded at that time: nothing to fork",
        ));
    }
    let connection = connect::connect(global).await?;
    let resource = ApiResource {
        group: "kgents.io".into(),
        version: "v1".into(),
        api_version: "kgents.io/v1".into(),
        kind: "Agent".into(),
        plural: "agents".into(),
    };
    let api: Api<DynamicObject> =
        Api::namespaced_with(connection.client.clone(), namespace, &resource);
    let mut object = DynamicObject::new(name, &resource).within(namespace);
    object.data = serde_json::json!({ "spec": spec });
    tokio::time::timeout(
        connection.deadline,
        api.create(&PostParams::default(), &object),
    )
    .await
    .map_err(|_| failed(4, format!("creating Agent {name}: no answer in time")))?
    .map_err(|e| failed(1, format!("creating Agent {name} in {namespace}: {e}")))?;
    Ok(())
}
