//! The commands: each resolves paths through the Logos and prints the typed outcome.

use std::fmt;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kgents::kgents_core::clock::SystemClock;
use kgents::kgents_core::field::PheromoneType;
use kgents::kgents_cortex::CortexLayer;
use kgents::kgents_crds::{Proposal, ProposalSpec};
use kgents::kgents_ghost::chain::{CACHE_BUDGET, DAEMON_BUDGET};
use kgents::kgents_ghost::freshness::format_age;
use kgents::kgents_ghost::snapshot::Query;
use kgents::kgents_ghost::{
    CacheLayer, FallbackChain, FreshnessPolicy, FsGhostStore, GhostStore, Layer, LayerError,
    Lookup, Snapshot, SnapshotKey,
};
use kgents::kgents_logos::logos::{DefineInput, EmitInput, SenseInput};
use kgents::kgents_logos::outcome::{SensedPheromone, ServerVerdict};
use kgents::kgents_logos::summary::check_name;
use kgents::kgents_logos::{
    Args, Caller, ClusterView, Error, ErrorKind, GhostView, KubeActor, LiveLayer, LiveView, Logos,
    Outcome, Scope, Source,
};
use kube::Api;
use serde::Serialize;

use crate::cli::{Cli, Command, GhostCommand, Global, Kind, Output, ProposeArgs, Shell};
use crate::connect::{self, Connection};
use crate::render::{self, Table, fixed, ghost_mark, human, note, out, outln};

/// A failure with its exit code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code (see `cli::EXIT_CODES`).
    pub code: u8,
    /// What to print.
    pub message: String,
}

impl Failure {
    /// Stdout was closed by its reader: nothing to say, exit 0.
    fn closed_output() -> Self {
        Failure {
            code: 0,
            message: String::new(),
        }
    }

    /// Whether this is the quiet end of [`Failure::closed_output`].
    pub fn is_closed_output(&self) -> bool {
        self.code == 0 && self.message.is_empty()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The exit code of a Logos error kind.
pub fn code_of(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Usage => 2,
        ErrorKind::Denied => 3,
        ErrorKind::Unavailable => 4,
        ErrorKind::NotFound | ErrorKind::Failed => 1,
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let code = code_of(error.kind());
        let mut message = error.to_string();
        if code == 4 && !message.contains("infra init") {
            message.push_str(
                "\nhint: check --kubeconfig/--context, use --live to ask the API server only, or run `kgents infra init` to install K8-gents",
            );
        }
        Failure { code, message }
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            // The reader of stdout is gone (`kgents get agents | head -1`): it has what it
            // wanted, so the command ends quietly, as `grep` or `rg` would.
            return Failure::closed_output();
        }
        Failure {
            code: 1,
            message: format!("writing the output: {error}"),
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

type CmdResult = Result<u8, Failure>;

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> CmdResult {
    let global = cli.global;
    match cli.command {
        Command::Status { live, output } => status(&global, live, output).await,
        Command::Get {
            kind,
            name,
            output,
            selector,
        } => get(&global, kind, name, output, selector).await,
        Command::Emit {
            pheromone_type,
            source,
            intensity,
            half_life,
            target,
            payload,
            ttl,
            name,
            output,
        } => {
            let kind = parse_pheromone_type(&pheromone_type)?;
            let input = EmitInput {
                pheromone_type: Some(kind),
                source,
                target,
                intensity,
                half_life_minutes: half_life,
                ttl_seconds: ttl,
                payload,
                name,
            };
            emit(&global, input, output).await
        }
        Command::Observe {
            watch,
            types,
            source,
            target,
            limit,
            interval,
            output,
        } => {
            let types = types
                .iter()
                .map(|t| parse_pheromone_type(t))
                .collect::<Result<Vec<_>, _>>()?;
            let input = SenseInput {
                types,
                source,
                target,
                limit: Some(limit),
            };
            observe(&global, input, watch, interval, output).await
        }
        Command::Propose(args) => propose(&global, args).await,
        Command::Tether {
            agent,
            port,
            remote_port,
        } => tether(&global, &agent, port, remote_port).await,
        Command::Seance(args) => crate::seance::seance(&global, args).await,
        Command::Approve {
            name,
            comment,
            output,
        } => decide(&global, &name, true, comment, output).await,
        Command::Reject {
            name,
            comment,
            output,
        } => decide(&global, &name, false, comment, output).await,
        Command::Invoke {
            path,
            input,
            output,
        } => invoke(&global, &path, input, output).await,
        Command::Ghost { command } => ghost(command),
        Command::Terrarium(args) => crate::terrarium::run(&global, args).await,
        Command::Infra { command } => {
            let conn = connect::connect(&global).await?;
            crate::infra::run(command, conn.client)
                .await
                .map(|()| 0)
                .map_err(|e| Failure {
                    code: e.exit_code(),
                    message: e.to_string(),
                })
        }
        Command::Mcp(args) => crate::mcp::run(&global, args).await,
        Command::Workflow { command } => crate::workflow::run(&global, command).await,
        Command::Cortex { command } => crate::cortex::run(&global, command).await,
        Command::Dev { command } => {
            crate::dev::run(command)
                .await
                .map(|()| 0)
                .map_err(|e| Failure {
                    code: e.exit_code(),
                    message: e.to_string(),
                })
        }
        Command::Completions { shell } => {
            completions(shell)?;
            Ok(0)
        }
    }
}

/// A live Logos: list calls and writes as the kubeconfig's identity, and the caller the flags
/// describe.
pub(crate) struct Live {
    pub(crate) conn: Connection,
    pub(crate) logos: Logos,
    pub(crate) caller: Caller,
}

pub(crate) async fn live(global: &Global) -> Result<Live, Failure> {
    let conn = connect::connect(global).await?;
    let view = Arc::new(connect::live_view(&conn));
    let actor = KubeActor::new(conn.client.clone(), conn.deadline);
    let caller = connect::caller(global, Some(&actor), &conn.namespace).await?;
    let mut logos = Logos::new(view, Some(Arc::new(actor)));
    if let Some(store) = crate::seance::local_witness(None).await {
        logos = logos.with_witness(store);
    }
    // concept.* with the model the environment names (KGENTS_MODEL_PROVIDER, ...); a budget
    // here spans this one process, the daemon's spans all its callers.
    if let Some(model) = crate::cortex::model_from_env()? {
        logos = logos.with_model(model);
    }
    Ok(Live {
        conn,
        logos,
        caller,
    })
}

fn scope(global: &Global, namespace: &str) -> Scope {
    if global.all_namespaces {
        Scope::All
    } else {
        Scope::Namespace(namespace.to_owned())
    }
}

pub(crate) fn write_scope(global: &Global, namespace: &str) -> Result<Scope, Failure> {
    if global.all_namespaces {
        return Err(usage(
            "this command writes to one namespace; name it with -n, not -A",
        ));
    }
    Ok(Scope::Namespace(namespace.to_owned()))
}

fn source_notes(what: &str, source: &Source) {
    for warning in &source.warnings {
        note(&format!("warning: {warning}"));
    }
    if !source.live {
        note(&format!(
            "{} {what}: answered from the {} {}(data from {} ago)",
            ghost_mark(),
            source.layer,
            if source.stale {
                "past its freshness threshold "
            } else {
                ""
            },
            format_age(Duration::from_secs_f64(source.age_seconds.max(0.0)))
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// status

/// The API layer when no client could be built: every fetch says why.
struct NoCluster(String);

#[async_trait::async_trait]
impl Layer for NoCluster {
    fn name(&self) -> &str {
        "kubernetes"
    }
    fn is_live(&self) -> bool {
        true
    }
    async fn fetch(&self, _: &Query) -> Result<Snapshot, LayerError> {
        Err(LayerError::Unavailable(self.0.clone()))
    }
}

async fn status(global: &Global, live_only: bool, output: Output) -> CmdResult {
    let deadline = connect::deadline(global)?;
    let store: Arc<dyn GhostStore> = Arc::new(FsGhostStore::new(connect::ghost_root()?));
    let scope = match (&global.namespace, global.all_namespaces) {
        (Some(ns), false) => Scope::Namespace(ns.clone()),
        _ => Scope::All,
    };
    // The cache first, unless --live; the API last. Live answers are written through.
    let mut chain = FallbackChain::new(
        Arc::clone(&store),
        Arc::new(SystemClock),
        // The runtime's timer wheel: no thread per budget.
        Arc::new(kgents::kgents_logos::TokioTimer),
    );
    if !live_only {
        // The Cortex daemon first: $KGENTS_CORTEX_URL over TCP (TLS, token), else its socket
        // when one exists (no socket: no layer, no wait).
        let socket = kgents::kgents_cortex::socket::default_path().ok();
        if let Some(daemon) = CortexLayer::from_env(socket, DAEMON_BUDGET).map_err(|e| Failure {
            code: 2,
            message: e.to_string(),
        })? {
            chain = chain.with_layer(daemon, DAEMON_BUDGET);
        }
        chain = chain.with_layer(CacheLayer::new(Arc::clone(&store)), CACHE_BUDGET);
    }
    let api_budget = deadline + Duration::from_secs(1);
    if global.umwelt.is_none() && global.as_agent.is_none() {
        // The person behind the kubeconfig: nothing to read before the cache is asked, so the
        // cluster is connected to only if the cache cannot answer.
        let live_view: Arc<dyn ClusterView> = Arc::new(connect::LazyLiveView::new(global));
        let chain = chain.with_layer(LiveLayer::new(Arc::clone(&live_view)), api_budget);
        let logos = Logos::new(Arc::new(GhostView::new(chain, Some(live_view))), None);
        let caller = connect::caller(global, None, "default").await?;
        return print_status(&logos, &caller, scope, output).await;
    }
    let (logos, caller) = match connect::connect(global).await {
        Ok(conn) => {
            let live_view: Arc<dyn ClusterView> = Arc::new(connect::live_view(&conn));
            let actor = KubeActor::new(conn.client.clone(), conn.deadline);
            let caller = connect::caller(global, Some(&actor), &conn.namespace).await?;
            let chain = chain.with_layer(LiveLayer::new(Arc::clone(&live_view)), api_budget);
            let view = Arc::new(GhostView::new(chain, Some(live_view)));
            (Logos::new(view, Some(Arc::new(actor))), caller)
        }
        Err(error) if !live_only => {
            let chain = chain.with_layer(NoCluster(error.to_string()), api_budget);
            let caller = connect::caller(global, None, "default").await?;
            (
                Logos::new(Arc::new(GhostView::new(chain, None)), None),
                caller,
            )
        }
        Err(error) => return Err(error.into()),
    };
    print_status(&logos, &caller, scope, output).await
}

async fn print_status(logos: &Logos, caller: &Caller, scope: Scope, output: Output) -> CmdResult {
    let report = logos.status(caller, scope).await;
    // Parts answered by one snapshot (the digest) are noted once, together.
    let mut parts: Vec<(Vec<&str>, &Source)> = Vec::new();
    for (what, source) in [
        ("cluster health", report.cluster_source.as_ref()),
        ("agents", report.agents.as_ref().map(|a| &a.source)),
        ("pheromones", report.field.as_ref().map(|f| &f.source)),
        ("proposals", report.pending.as_ref().map(|p| &p.source)),
    ] {
        let Some(source) = source else { continue };
        match parts.last_mut() {
            Some((names, last)) if *last == source => names.push(what),
            _ => parts.push((vec![what], source)),
        }
    }
    for (names, source) in parts {
        let what = match names.as_slice() {
            [one] => (*one).to_owned(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
            [] => continue,
        };
        source_notes(&what, source);
    }
    let nothing = report.agents.is_none() && report.field.is_none() && report.pending.is_none();
    if nothing {
        let code = report.worst.map_or(1, code_of);
        let mut message = report.problems.join("\n");
        if code == 4 {
            message.push_str("\nhint: no usable ghost answer; check --kubeconfig/--context, try `kgents status --live`, or run `kgents infra init` to install K8-gents");
        }
        return Err(Failure { code, message });
    }
    for problem in &report.problems {
        note(&format!("error: {problem}"));
    }
    match output {
        Output::Json | Output::Yaml => render::print(output, &report, no_table, Vec::new)?,
        Output::Name => return Err(usage("status has no names; use -o table, json or yaml")),
        Output::Table | Output::Wide => out!("{}", status_text(&report))?,
    }
    Ok(0)
}

fn no_table() -> Table {
    Table {
        headers: Vec::new(),
        narrow: 0,
        rows: Vec::new(),
    }
}

fn counts(map: &std::collections::BTreeMap<String, usize>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The status as text (`-o wide` shows the same: the status is one screen).
fn status_text(report: &kgents::kgents_logos::StatusReport) -> String {
    let mut out = String::new();
    if let Some(cluster) = &report.cluster {
        out.push_str(&format!(
            "CLUSTER     {}, nodes {}/{} ready\n",
            cluster
                .server_version
                .as_deref()
                .unwrap_or("version unknown"),
            cluster.nodes_ready,
            cluster.nodes_total
        ));
        for c in &cluster.components {
            out.push_str(&format!(
                "  {:<9} {} {}\n",
                c.name,
                if c.healthy { "ok  " } else { "DOWN" },
                c.message
            ));
        }
    }
    if let Some(agents) = &report.agents {
        let agents = &agents.counts;
        out.push_str(&format!(
            "AGENTS      {} total, {} ready\n  phase     {}\n  health    {}\n",
            agents.total,
            agents.ready,
            if agents.by_phase.is_empty() {
                "-".into()
            } else {
                counts(&agents.by_phase)
            },
            if agents.by_health.is_empty() {
                "-".into()
            } else {
                counts(&agents.by_health)
            },
        ));
        // Those not Running, not HEALTHY or not fully ready: the first ones by namespace and
        // name (the status is one screen), and how many there are.
        let attention = &agents.attention;
        if !attention.is_empty() {
            let table = Table {
                headers: vec!["NAMESPACE", "NAME", "GENUS", "PHASE", "READY", "HEALTH"],
                narrow: 6,
                rows: attention
                    .iter()
                    .map(|a| {
                        vec![
                            a.namespace.clone(),
                            a.name.to_string(),
                            a.genus.clone(),
                            a.phase.clone(),
                            format!("{}/{}", a.ready_replicas, a.replicas),
                            a.cognitive_health.clone(),
                        ]
                    })
                    .collect(),
            };
            out.push_str(&indent(&table.render(true)));
            let more = agents.attention_total.saturating_sub(attention.len());
            if more > 0 {
                out.push_str(&format!(
                    "  … and {more} more needing attention (kgents get agents -A)\n"
                ));
            }
        }
    }
    if let Some(field) = &report.field {
        let field = &field.heat;
        out.push_str(&format!(
            "PHEROMONES  {} live, {} evaporated\n",
            field.live, field.evaporated
        ));
        if !field.heat.is_empty() {
            let table = Table {
                headers: vec!["TYPE", "COUNT", "HEAT", "MAX"],
                narrow: 4,
                rows: field
                    .heat
                    .iter()
                    .map(|h| {
                        vec![
                            type_name(h.pheromone_type),
                            h.count.to_string(),
                            fixed(h.sum),
                            fixed(h.max),
                        ]
                    })
                    .collect(),
            };
            out.push_str(&indent(&table.render(true)));
        }
    }
    if let Some(pending) = &report.pending {
        out.push_str(&format!(
            "PROPOSALS   {} pending\n",
            pending.proposals.len()
        ));
        if !pending.proposals.is_empty() {
            let records: Vec<_> = pending
                .proposals
                .iter()
                .map(|summary| kgents::kgents_logos::outcome::ProposalRecord {
                    summary: summary.clone(),
                    risk: None,
                    approvals: Vec::new(),
                    rejections: Vec::new(),
                })
                .collect();
            let table = proposal_table(&records, true);
            out.push_str(&indent(&table.render(false)));
        }
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

fn type_name(t: PheromoneType) -> String {
    kgents::kgents_logos::summary::enum_name(&t)
}

// ---------------------------------------------------------------------------------------------
// get

fn proposal_table(
    proposals: &[kgents::kgents_logos::outcome::ProposalRecord],
    namespaces: bool,
) -> Table {
    let rows = proposals
        .iter()
        .map(|p| {
            let s = &p.summary;
            let r = p.risk.as_ref();
            let mut row = vec![
                s.name.clone(),
                s.proposer.clone(),
                s.change_type.clone(),
                s.target.clone(),
                r.map(|r| fixed(r.score)).unwrap_or_default(),
                s.risk_level.clone(),
                s.phase.clone(),
                render::age(s.created_at),
                r.map(|r| fixed(r.base_risk)).unwrap_or_default(),
                r.map(|r| fixed(r.size_factor)).unwrap_or_default(),
                r.map(|r| fixed(r.test_factor)).unwrap_or_default(),
                r.map(|r| fixed(r.velocity_penalty)).unwrap_or_default(),
                r.map(|r| fixed(r.cumulative_penalty)).unwrap_or_default(),
                r.map(|r| r.decision.to_string()).unwrap_or_default(),
                p.approvals.join(","),
                p.rejections.join(","),
            ];
            if namespaces {
                row.insert(0, s.namespace.clone());
            }
            row
        })
        .collect();
    let mut headers = vec![
        "NAME",
        "PROPOSER",
        "CHANGE",
        "TARGET",
        "RISK",
        "LEVEL",
        "PHASE",
        "AGE",
        "BASE",
        "SIZE",
        "TESTS",
        "VELOCITY",
        "CUMULATIVE",
        "DECISION",
        "APPROVED-BY",
        "REJECTED-BY",
    ];
    let mut narrow = 8;
    if namespaces {
        headers.insert(0, "NAMESPACE");
        narrow += 1;
    }
    Table {
        headers,
        narrow,
        rows,
    }
}

fn with_namespace(all: bool, namespace: &str, mut row: Vec<String>) -> Vec<String> {
    if all {
        row.insert(0, namespace.to_owned());
    }
    row
}

fn headers(all: bool, mut headers: Vec<&'static str>) -> Vec<&'static str> {
    if all {
        headers.insert(0, "NAMESPACE");
    }
    headers
}

async fn get(
    global: &Global,
    kind: Kind,
    name: Option<String>,
    output: Output,
    selector: Option<String>,
) -> CmdResult {
    if let Some(name) = &name {
        let kind_name = match kind {
            Kind::Agents => "Agent",
            Kind::Pheromones => "Pheromone",
            Kind::Proposals => "Proposal",
            Kind::Memories => "Memory",
            Kind::Umwelts => "Umwelt",
        };
        check_name(kind_name, name).map_err(usage)?;
    }
    let live = live(global).await?;
    let scope = scope(global, &live.conn.namespace);
    let all = scope == Scope::All;
    let args = Args::new(scope.clone()).with_selector(selector);
    let call = |path: String, args: Args| {
        let logos = &live.logos;
        let caller = &live.caller;
        async move { logos.invoke(caller, &path, args).await }
    };
    let extra = if all { 1 } else { 0 };
    match kind {
        Kind::Agents => {
            if let Some(name) = name {
                let Outcome::Agent(one) =
                    call(format!("world.cluster.agents.{name}.manifest"), args).await?
                else {
                    return Err(unexpected());
                };
                let a = &one.agent;
                render::print(
                    output,
                    &one,
                    || Table {
                        headers: vec![
                            "NAMESPACE",
                            "NAME",
                            "GENUS",
                            "PHASE",
                            "READY",
                            "HEALTH",
                            "CONDITIONS",
                        ],
                        narrow: 6,
                        rows: vec![vec![
                            a.summary.namespace.clone(),
                            a.summary.name.to_string(),
                            a.summary.genus.clone(),
                            a.summary.phase.clone(),
                            format!("{}/{}", a.summary.ready_replicas, a.summary.replicas),
                            a.summary.cognitive_health.clone(),
                            a.conditions
                                .iter()
                                .map(|c| format!("{}={}", c.condition_type, c.status))
                                .collect::<Vec<_>>()
                                .join(","),
                        ]],
                    },
                    || vec![format!("agent.kgents.io/{name}")],
                )?;
                return Ok(0);
            }
            let Outcome::Agents(m) = call("world.cluster.agents.manifest".into(), args).await?
            else {
                return Err(unexpected());
            };
            render::print(
                output,
                &m,
                || Table {
                    headers: headers(all, vec!["NAME", "GENUS", "PHASE", "READY", "HEALTH"]),
                    narrow: 5 + extra,
                    rows: m
                        .agents
                        .iter()
                        .map(|a| {
                            with_namespace(
                                all,
                                &a.namespace,
                                vec![
                                    a.name.to_string(),
                                    a.genus.clone(),
                                    a.phase.clone(),
                                    format!("{}/{}", a.ready_replicas, a.replicas),
                                    a.cognitive_health.clone(),
                                ],
                            )
                        })
                        .collect(),
                },
                || resource_names(&m.agents, "agent.kgents.io", |x| &x.name),
            )?;
        }
        Kind::Pheromones => {
            let Outcome::Sensed(mut field) = call("void.pheromone.sense".into(), args).await?
            else {
                return Err(unexpected());
            };
            keep_named(
                &mut field.pheromones,
                name.as_deref(),
                |x| &x.name,
                "Pheromone",
                &scope,
            )?;
            let row = |p: &SensedPheromone| {
                with_namespace(
                    all,
                    &p.namespace,
                    vec![
                        p.name.clone(),
                        type_name(p.pheromone_type),
                        p.source.clone(),
                        p.target.clone().unwrap_or_default(),
                        fixed(p.intensity),
                        human(p.evaporates_in_seconds),
                        human(p.half_life_seconds),
                        render::age(p.emitted_at),
                    ],
                )
            };
            render::print(
                output,
                &field,
                || Table {
                    headers: headers(
                        all,
                        vec![
                            "NAME",
                            "TYPE",
                            "SOURCE",
                            "TARGET",
                            "INTENSITY",
                            "EVAPORATES-IN",
                            "HALF-LIFE",
                            "AGE",
                        ],
                    ),
                    narrow: 6 + extra,
                    rows: field.pheromones.iter().map(row).collect(),
                },
                || resource_names(&field.pheromones, "pheromone.kgents.io", |x| &x.name),
            )?;
        }
        Kind::Proposals => {
            let Outcome::Proposals(mut m) =
                call("world.cluster.proposals.manifest".into(), args).await?
            else {
                return Err(unexpected());
            };
            keep_named(
                &mut m.proposals,
                name.as_deref(),
                |x| &x.summary.name,
                "Proposal",
                &scope,
            )?;
            render::print(
                output,
                &m,
                || proposal_table(&m.proposals, all),
                || resource_names(&m.proposals, "proposal.kgents.io", |x| &x.summary.name),
            )?;
        }
        Kind::Memories => {
            let Outcome::Memories(mut m) =
                call("world.cluster.memories.manifest".into(), args).await?
            else {
                return Err(unexpected());
            };
            keep_named(
                &mut m.memories,
                name.as_deref(),
                |x| &x.name,
                "Memory",
                &scope,
            )?;
            render::print(
                output,
                &m,
                || Table {
                    headers: headers(
                        all,
                        vec!["NAME", "OWNER", "TYPE", "SIZE", "RETENTION", "PHASE", "PVC"],
                    ),
                    narrow: 6 + extra,
                    rows: m
                        .memories
                        .iter()
                        .map(|x| {
                            with_namespace(
                                all,
                                &x.namespace,
                                vec![
                                    x.name.clone(),
                                    x.owner.clone(),
                                    x.memory_type.clone(),
                                    x.size.clone(),
                                    x.retention.clone(),
                                    x.phase.clone(),
                                    x.pvc.clone().unwrap_or_default(),
                                ],
                            )
                        })
                        .collect(),
                },
                || resource_names(&m.memories, "memory.kgents.io", |x| &x.name),
            )?;
        }
        Kind::Umwelts => {
            let Outcome::Umwelts(mut m) =
                call("world.cluster.umwelts.manifest".into(), args).await?
            else {
                return Err(unexpected());
            };
            keep_named(
                &mut m.umwelts,
                name.as_deref(),
                |x| &x.name,
                "Umwelt",
                &scope,
            )?;
            render::print(
                output,
                &m,
                || Table {
                    headers: headers(all, vec!["NAME", "AGENT", "AFFORDANCES", "SERVICEACCOUNT"]),
                    narrow: 3 + extra,
                    rows: m
                        .umwelts
                        .iter()
                        .map(|x| {
                            with_namespace(
                                all,
                                &x.namespace,
                                vec![
                                    x.name.clone(),
                                    x.agent.clone(),
                                    x.affordances.join(","),
                                    x.service_account.clone().unwrap_or_default(),
                                ],
                            )
                        })
                        .collect(),
                },
                || resource_names(&m.umwelts, "umwelt.kgents.io", |x| &x.name),
            )?;
        }
    }
    Ok(0)
}

fn unexpected() -> Failure {
    Failure {
        code: 1,
        message: "the Logos answered with another kind of result".into(),
    }
}

/// Keeps only the item called `name` (all of them without a name); none left is "not found".
fn keep_named<T>(
    items: &mut Vec<T>,
    name: Option<&str>,
    name_of: impl Fn(&T) -> &String,
    kind: &'static str,
    scope: &Scope,
) -> Result<(), Failure> {
    if let Some(name) = name {
        items.retain(|x| name_of(x) == name);
        if items.is_empty() {
            return Err(not_found(kind, name, scope));
        }
    }
    Ok(())
}

/// `-o name` lines: `<resource>/<name>` for each item.
fn resource_names<T, N: std::fmt::Display + ?Sized>(
    items: &[T],
    resource: &str,
    name_of: impl Fn(&T) -> &N,
) -> Vec<String> {
    items
        .iter()
        .map(|x| format!("{resource}/{}", name_of(x)))
        .collect()
}

fn not_found(kind: &'static str, name: &str, scope: &Scope) -> Failure {
    Error::NotFound {
        kind,
        name: name.to_owned(),
        namespace: scope.namespace().map(str::to_owned),
    }
    .into()
}

// ---------------------------------------------------------------------------------------------
// emit, propose, approve, reject, invoke

fn parse_pheromone_type(text: &str) -> Result<PheromoneType, Failure> {
    let upper = text.trim().to_ascii_uppercase().replace('-', "_");
    serde_json::from_value(serde_json::Value::String(upper)).map_err(|_| {
        usage(format!(
            "{text:?} is not a pheromone type; use one of {}",
            PheromoneType::ALL
                .iter()
                .map(|t| type_name(*t))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

async fn emit(global: &Global, input: EmitInput, output: Output) -> CmdResult {
    let live = live(global).await?;
    let scope = write_scope(global, &live.conn.namespace)?;
    let outcome = live
        .logos
        .invoke(
            &live.caller,
            "void.pheromone.emit",
            Args::new(scope).with_input(&input),
        )
        .await?;
    let Outcome::Emitted(e) = outcome else {
        return Err(unexpected());
    };
    match output {
        Output::Table | Output::Wide => outln!(
            "pheromone.kgents.io/{} emitted in {} ({} {} from {}{}, half-life {}m{})",
            e.name,
            e.namespace,
            type_name(e.pheromone_type),
            fixed(e.intensity),
            e.source,
            e.target
                .as_ref()
                .map(|t| format!(" to {t}"))
                .unwrap_or_default(),
            e.half_life_minutes,
            e.evaporates_at
                .map(|t| format!(
                    ", evaporates in {}",
                    human(t.duration_since(jiff::Timestamp::now()).as_secs_f64())
                ))
                .unwrap_or_default()
        )?,
        _ => render::print(output, &e, no_table, || {
            vec![format!("pheromone.kgents.io/{}", e.name)]
        })?,
    }
    Ok(0)
}

async fn observe(
    global: &Global,
    input: SenseInput,
    watch: bool,
    interval: f64,
    output: Output,
) -> CmdResult {
    let pause = Duration::try_from_secs_f64(interval)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            usage(format!(
                "--interval {interval} is not a positive number of seconds"
            ))
        })?;
    if !matches!(output, Output::Table | Output::Json) {
        return Err(usage(
            "observe prints -o table or -o json (one object per line)",
        ));
    }
    let live = live(global).await?;
    let scope = scope(global, &live.conn.namespace);
    let all = scope == Scope::All;
    loop {
        let outcome = live
            .logos
            .invoke(
                &live.caller,
                "void.pheromone.sense",
                Args::new(scope.clone()).with_input(&input),
            )
            .await?;
        let Outcome::Sensed(field) = outcome else {
            return Err(unexpected());
        };
        if output == Output::Json {
            let mut stdout = std::io::stdout().lock();
            for p in &field.pheromones {
                let line = serde_json::to_string(p).map_err(std::io::Error::other)?;
                std::io::Write::write_all(&mut stdout, format!("{line}\n").as_bytes())?;
            }
            std::io::Write::flush(&mut stdout)?;
        } else {
            if watch {
                outln!(
                    "--- {} ({} live, {} evaporated)",
                    field.at,
                    field.pheromones.len(),
                    field.evaporated
                )?;
            }
            let table = Table {
                headers: headers(
                    all,
                    vec![
                        "NAME",
                        "TYPE",
                        "SOURCE",
                        "TARGET",
                        "INTENSITY",
                        "EVAPORATES-IN",
                    ],
                ),
                narrow: 6 + usize::from(all),
                rows: field
                    .pheromones
                    .iter()
                    .map(|p| {
                        with_namespace(
                            all,
                            &p.namespace,
                            vec![
                                p.name.clone(),
                                type_name(p.pheromone_type),
                                p.source.clone(),
                                p.target.clone().unwrap_or_default(),
                                fixed(p.intensity),
                                human(p.evaporates_in_seconds),
                            ],
                        )
                    })
                    .collect(),
            };
            if table.rows.is_empty() {
                note("No live pheromones.");
            } else {
                out!("{}", table.render(false))?;
            }
        }
        if !watch {
            return Ok(0);
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
    }
}

async fn tether(
    global: &Global,
    agent: &str,
    local_port: Option<u16>,
    remote_port: Option<u16>,
) -> CmdResult {
    use futures::AsyncBufReadExt as _;
    use futures::StreamExt as _;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::LogParams;

    check_name("Agent", agent).map_err(usage)?;
    let conn = connect::connect_with(global, true).await?;
    let view = Arc::new(LiveView::new(conn.client.clone(), conn.deadline));
    let actor = KubeActor::new(conn.client.clone(), conn.deadline);
    let caller = connect::caller(global, Some(&actor), &conn.namespace).await?;
    let logos = Logos::new(view, Some(Arc::new(actor)));
    let scope = write_scope(global, &conn.namespace)?;
    let outcome = logos
        .invoke(
            &caller,
            &format!("world.cluster.agents.{agent}.tether"),
            Args::new(scope),
        )
        .await?;
    let Outcome::Tether(target) = outcome else {
        return Err(unexpected());
    };
    let remote = remote_port.or(target.port).ok_or_else(|| {
        usage(format!(
            "pod {} declares no container port; name one with --remote-port",
            target.pod
        ))
    })?;
    let local = local_port.unwrap_or(remote);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", local))
        .await
        .map_err(|e| {
            usage(format!(
                "listening on 127.0.0.1:{local}: {e} (choose another with --port)"
            ))
        })?;
    note(&format!(
        "tethered to pod {}/{} of agent {agent}: 127.0.0.1:{local} → {remote}; following its logs (Ctrl+C to end)",
        target.namespace, target.pod
    ));
    let pods: Api<Pod> = Api::namespaced(conn.client.clone(), &target.namespace);

    let log_pods = pods.clone();
    let pod = target.pod.clone();
    let logs = tokio::spawn(async move {
        let params = LogParams {
            follow: true,
            tail_lines: Some(20),
            ..LogParams::default()
        };
        match log_pods.log_stream(&pod, &params).await {
            Ok(stream) => {
                let mut lines = stream.lines();
                while let Some(line) = lines.next().await {
                    match line {
                        Ok(line) => {
                            if outln!("{line}").is_err() {
                                // stdout closed (`kgents tether AGENT | head`): stop following.
                                return;
                            }
                        }
                        Err(e) => {
                            note(&format!("log stream of {pod} failed: {e}"));
                            return;
                        }
                    }
                }
                note(&format!("log stream of {pod} ended"));
            }
            Err(e) => note(&format!("cannot follow the logs of {pod}: {e}")),
        }
    });

    let pod = target.pod.clone();
    let forward = async move {
        loop {
            let (mut socket, peer) = listener.accept().await?;
            let pods = pods.clone();
            let pod = pod.clone();
            tokio::spawn(async move {
                let result = async {
                    let mut forwarder = pods.portforward(&pod, &[remote]).await?;
                    let Some(mut upstream) = forwarder.take_stream(remote) else {
                        return Ok::<(), kube::Error>(());
                    };
                    if let Err(e) = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await
                    {
                        note(&format!("connection from {peer}: {e}"));
                    }
                    drop(upstream);
                    forwarder.abort();
                    Ok(())
                }
                .await;
                if let Err(e) = result {
                    note(&format!(
                        "port-forward to {pod}:{remote} for {peer} failed: {e}"
                    ));
                }
            });
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    };
    let code = tokio::select! {
        _ = tokio::signal::ctrl_c() => 0,
        result = forward => match result {
            Ok(()) => 0,
            Err(e) => {
                note(&format!("accepting connections on 127.0.0.1:{local}: {e}"));
                1
            }
        },
    };
    logs.abort();
    Ok(code)
}

/// Reads a manifest file (`-`: stdin), JSON or YAML, as a JSON value. Errors name the file and,
/// for JSON, the position.
pub fn read_manifest(path: &FsPath) -> Result<serde_json::Value, Failure> {
    let text = if path == FsPath::new("-") {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| usage(format!("reading stdin: {e}")))?
    } else {
        std::fs::read_to_string(path).map_err(|e| usage(format!("{}: {e}", path.display())))?
    };
    let shown = path.display();
    if text.trim_start().starts_with('{') {
        serde_json::from_str(&text).map_err(|e| {
            usage(format!(
                "{shown}:{}:{}: not valid JSON: {e}",
                e.line(),
                e.column()
            ))
        })
    } else {
        serde_saphyr::from_str(&text).map_err(|e| usage(format!("{shown}: not valid YAML: {e}")))
    }
}

/// Reads a proposal file: JSON or YAML, a whole Proposal or its spec. Errors name the file and
/// the position.
fn read_proposal_file(path: &FsPath) -> Result<(Option<String>, ProposalSpec), Failure> {
    let value = read_manifest(path)?;
    let shown = path.display();
    let (name, spec_value) = match value.get("spec") {
        Some(spec) => (
            value
                .pointer("/metadata/name")
                .and_then(|n| n.as_str())
                .map(str::to_owned),
            spec.clone(),
        ),
        None => (None, value),
    };
    let spec: ProposalSpec = serde_json::from_value(spec_value)
        .map_err(|e| usage(format!("{shown}: not a Proposal spec: {e}")))?;
    Ok((name, spec))
}

fn default_api_version(kind: &str) -> Option<&'static str> {
    match kind {
        "Agent" | "Memory" | "Umwelt" | "Pheromone" | "Proposal" => Some("kgents.io/v1"),
        "ConfigMap" | "Service" => Some("v1"),
        "Deployment" | "StatefulSet" | "DaemonSet" => Some("apps/v1"),
        _ => None,
    }
}

fn spec_from_flags(args: &ProposeArgs) -> Result<ProposalSpec, Failure> {
    let change_type = args
        .change_type
        .as_deref()
        .ok_or_else(|| usage("name the change with --change-type (or give -f FILE)"))?;
    let kind = args
        .target_kind
        .as_deref()
        .ok_or_else(|| usage("name the target's kind with --target-kind"))?;
    let name = args
        .target_name
        .as_deref()
        .ok_or_else(|| usage("name the target with --target-name"))?;
    let mut target = serde_json::json!({"kind": kind, "name": name});
    if let Some(api_version) = args
        .target_api_version
        .as_deref()
        .or(default_api_version(kind))
    {
        target["apiVersion"] = api_version.into();
    }
    let mut spec = serde_json::json!({
        "proposer": "",
        "changeType": change_type.to_ascii_uppercase().replace('-', "_"),
        "target": target,
    });
    if let Some(d) = &args.description {
        spec["description"] = d.clone().into();
    }
    if let Some(r) = &args.rationale {
        spec["rationale"] = r.clone().into();
    }
    if let Some(p) = &args.patch {
        serde_json::from_str::<serde_json::Value>(p).map_err(|e| {
            usage(format!(
                "--patch: not valid JSON at column {}: {e}",
                e.column()
            ))
        })?;
        spec["patch"] = serde_json::json!({"type": "merge", "content": p});
    }
    serde_json::from_value(spec).map_err(|e| usage(format!("the proposal flags: {e}")))
}

async fn propose(global: &Global, args: ProposeArgs) -> CmdResult {
    let (file_name, spec) = match &args.file {
        Some(path) => read_proposal_file(path)?,
        None => (None, spec_from_flags(&args)?),
    };
    let name = args.name.clone().or(file_name);
    let live = live(global).await?;
    let scope = write_scope(global, &live.conn.namespace)?;
    let input = DefineInput {
        name,
        spec: Some(spec),
        dry_run: args.dry_run,
        force: args.force,
    };
    let outcome = live
        .logos
        .invoke(
            &live.caller,
            "self.deployment.define",
            Args::new(scope).with_input(&input),
        )
        .await?;
    let Outcome::Filed(filed) = outcome else {
        return Err(unexpected());
    };
    let p = &filed.preview;
    if matches!(args.output, Output::Table | Output::Wide) {
        outln!(
            "RISK PREVIEW (local; policy: {}; ledger: {} proposal(s) in {}; as {})",
            p.policy,
            p.ledger_proposals,
            filed.namespace,
            p.requester
        )?;
        if let Some(r) = &p.risk {
            outln!(
                "  {} {} → {}   = base {} × size {} × tests {} × (1 + velocity {}) + cumulative {}",
                fixed(r.score),
                r.level,
                r.decision,
                fixed(r.base_risk),
                fixed(r.size_factor),
                fixed(r.test_factor),
                fixed(r.velocity_penalty),
                fixed(r.cumulative_penalty)
            )?;
        }
        for w in &p.warnings {
            outln!("  warning: {w}")?;
        }
        for r in &p.reasons {
            outln!("  denied: {r}")?;
        }
    }
    let code = match &filed.server {
        ServerVerdict::Admitted { phase } => {
            if matches!(args.output, Output::Table | Output::Wide) {
                if filed.dry_run {
                    outln!(
                        "dry run: the API server (and its admission webhook) would admit proposal {}/{}; nothing was stored",
                        filed.namespace,
                        display_name(&filed.name)
                    )?;
                } else {
                    outln!(
                        "proposal.kgents.io/{} filed in {}{}",
                        filed.name,
                        filed.namespace,
                        phase
                            .as_ref()
                            .map(|p| format!(" (phase {p})"))
                            .unwrap_or_default()
                    )?;
                }
            }
            0
        }
        ServerVerdict::Denied { code, message } => {
            note(&format!("denied by the API server ({code}): {message}"));
            3
        }
        ServerVerdict::NotSent => {
            note(
                "not filed: the local preview denies it (fix the proposal, or --dry-run to ask the API server, or --force to file it anyway)",
            );
            3
        }
    };
    if !matches!(args.output, Output::Table | Output::Wide) {
        render::print(args.output, &filed, no_table, || {
            vec![format!("proposal.kgents.io/{}", filed.name)]
        })?;
    }
    if code == 0 && args.wait && !filed.dry_run {
        return wait_for(&live, &filed.namespace, &filed.name, args.wait_timeout).await;
    }
    Ok(code)
}

fn display_name(name: &str) -> &str {
    if name.is_empty() {
        "(generated name)"
    } else {
        name
    }
}

/// Follows a proposal's phase until it is decided (Merged, Rejected, Failed, Expired,
/// Superseded) or waits for people (Reviewing).
async fn wait_for(live: &Live, namespace: &str, name: &str, timeout: f64) -> CmdResult {
    let limit = Duration::try_from_secs_f64(timeout).map_err(|_| {
        usage(format!(
            "--wait-timeout {timeout} is not a number of seconds"
        ))
    })?;
    let api: Api<Proposal> = Api::namespaced(live.conn.client.clone(), namespace);
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let proposal = kgents::kgents_logos::live::deadline(
            format!("reading proposal {namespace}/{name}"),
            live.conn.deadline,
            api.get(name),
        )
        .await?;
        let phase = proposal
            .status
            .and_then(|s| s.phase)
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "Pending".into());
        if phase != last {
            note(&format!("proposal {namespace}/{name}: {phase}"));
            last = phase.clone();
        }
        match phase.as_str() {
            "Merged" | "Reviewing" => return Ok(0),
            "Rejected" | "Expired" | "Superseded" => return Ok(3),
            "Failed" => return Ok(1),
            _ => {}
        }
        if started.elapsed() >= limit {
            return Err(Failure {
                code: 4,
                message: format!(
                    "proposal {namespace}/{name} is still {phase} after {timeout}s (is the operator running?)"
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn decide(
    global: &Global,
    name: &str,
    approve: bool,
    comment: Option<String>,
    output: Output,
) -> CmdResult {
    check_name("Proposal", name).map_err(usage)?;
    let live = live(global).await?;
    let scope = write_scope(global, &live.conn.namespace)?;
    let verb = if approve { "approve" } else { "reject" };
    let input = serde_json::json!({ "comment": comment });
    let outcome = live
        .logos
        .invoke(
            &live.caller,
            &format!("world.cluster.proposals.{name}.{verb}"),
            Args::new(scope).with_input(&input),
        )
        .await?;
    let Outcome::Decided(d) = outcome else {
        return Err(unexpected());
    };
    match output {
        Output::Table | Output::Wide => outln!(
            "proposal.kgents.io/{} in {} {} by {}",
            d.proposal,
            d.namespace,
            if d.approved { "approved" } else { "rejected" },
            d.by
        )?,
        _ => render::print(output, &d, no_table, || {
            vec![format!("proposal.kgents.io/{}", d.proposal)]
        })?,
    }
    Ok(0)
}

async fn invoke(global: &Global, path: &str, input: Option<String>, output: Output) -> CmdResult {
    let input: serde_json::Value = match input {
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            usage(format!(
                "--input: not valid JSON at column {}: {e}",
                e.column()
            ))
        })?,
        None => serde_json::Value::Null,
    };
    let live = live(global).await?;
    let scope = scope(global, &live.conn.namespace);
    let outcome = live
        .logos
        .invoke(
            &live.caller,
            path,
            Args {
                scope,
                selector: None,
                input,
            },
        )
        .await?;
    let output = if matches!(output, Output::Yaml) {
        Output::Yaml
    } else {
        Output::Json
    };
    print_value(output, &outcome)?;
    Ok(0)
}

fn print_value<T: Serialize>(output: Output, value: &T) -> std::io::Result<()> {
    render::print(output, value, no_table, Vec::new)
}

// ---------------------------------------------------------------------------------------------
// ghost, completions

const SNAPSHOT_DIRS: [&str; 5] = ["agents", "pheromones", "proposals", "cluster", "_meta"];

fn ghost(command: GhostCommand) -> CmdResult {
    let root = connect::ghost_root()?;
    let store = FsGhostStore::new(&root);
    match command {
        GhostCommand::Status => {
            let stability = store.stability();
            let now = jiff::Timestamp::now();
            let policy = FreshnessPolicy::default();
            outln!("ghost cache {}", root.display())?;
            outln!(
                "stability {} ({} live fetch(es) observed)",
                fixed(stability.score),
                stability.observations
            )?;
            let mut rows = Vec::new();
            for query in [
                Query::StatusDigest,
                Query::AgentsIndex,
                Query::ActivePheromones,
                Query::PendingProposals,
                Query::RejectedProposals,
                Query::ClusterStatus,
            ] {
                let key = SnapshotKey::Query(query.clone());
                let row = match store.read(&key) {
                    Lookup::Hit(snapshot) => {
                        let report = policy.classify(
                            query.category(),
                            snapshot.taken_at,
                            now,
                            stability.score,
                        );
                        vec![
                            key.relative_path(),
                            format_age(report.age),
                            report.verdict.to_string(),
                            format_age(report.threshold),
                        ]
                    }
                    Lookup::Miss(miss) => vec![
                        key.relative_path(),
                        String::new(),
                        format!("MISS: {}", miss.reason),
                        String::new(),
                    ],
                };
                rows.push(row);
            }
            out!(
                "{}",
                Table {
                    headers: vec!["SNAPSHOT", "AGE", "VERDICT", "THRESHOLD"],
                    narrow: 4,
                    rows,
                }
                .render(false)
            )?;
            Ok(0)
        }
        GhostCommand::Clear => {
            let mut removed = 0usize;
            for dir in SNAPSHOT_DIRS {
                let path = root.join(dir);
                if path.is_dir() {
                    removed += count_files(&path);
                    std::fs::remove_dir_all(&path).map_err(|e| Failure {
                        code: 1,
                        message: format!("removing {}: {e}", path.display()),
                    })?;
                }
            }
            outln!("removed {removed} snapshot file(s) from {}", root.display())?;
            Ok(0)
        }
    }
}

fn count_files(dir: &FsPath) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() { count_files(&path) } else { 1 }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn completions(shell: Shell) -> std::io::Result<()> {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // Generated into memory, then written: clap_complete panics on a failed write.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "kgents", &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script)
}
