//! The command line: clap derive structures only.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit codes, also shown at the end of `--help`.
pub const EXIT_CODES: &str = "Exit codes:
  0  ok
  1  error (the API server refused for another reason, a bad stored object)
  2  usage or bad input (unknown command or path, bad -o, malformed file, invalid name)
  3  denied (Umwelt affordances, RBAC or the admission webhook)
  4  unavailable (cluster unreachable and no usable ghost answer)";

/// `kgents`: the K8-gents CLI. Every command resolves an AGENTESE path through the Logos.
#[derive(Parser, Debug)]
#[command(
    name = "kgents",
    version,
    about = "K8-gents: agents, pheromones and proposals on Kubernetes",
    after_help = EXIT_CODES,
    propagate_version = true
)]
pub struct Cli {
    /// Connection and identity flags (kubectl habits).
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Path to the kubeconfig (beats $KUBECONFIG, which beats ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace (default: the context's, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long = "all-namespaces", global = true)]
    pub all_namespaces: bool,
    /// Deadline of each API call, in seconds.
    #[arg(long, global = true, default_value_t = 5.0, value_name = "SECONDS")]
    pub request_timeout: f64,
    /// Act as this Umwelt: only the paths its affordances grant.
    #[arg(long, global = true, value_name = "NAME", conflicts_with = "as_agent")]
    pub umwelt: Option<String>,
    /// Act as this agent: only the paths its Umwelt's affordances grant.
    #[arg(long, global = true, value_name = "AGENT")]
    pub as_agent: Option<String>,
}

/// Output formats.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Columns (default).
    Table,
    /// More columns.
    Wide,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// `kind.kgents.io/name` per line.
    Name,
}

/// The kinds `get` knows.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Agents.
    #[value(alias = "agent", alias = "ag")]
    Agents,
    /// Pheromones (current, decayed intensity).
    #[value(alias = "pheromone", alias = "ph")]
    Pheromones,
    /// Proposals.
    #[value(alias = "proposal", alias = "prop")]
    Proposals,
    /// Memories.
    #[value(alias = "memory", alias = "mem")]
    Memories,
    /// Umwelts.
    #[value(alias = "umwelt", alias = "uw")]
    Umwelts,
}

/// Shells for completions.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// bash.
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Agents by phase, readiness and health; pheromone heat; pending proposals.
    /// Answered from the ghost cache when fresh enough, else the API (world.cluster.agents.manifest).
    Status {
        /// Ask the API server, never the cache.
        #[arg(long)]
        live: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// List or show resources.
    Get {
        /// What to list.
        #[arg(value_enum)]
        kind: Kind,
        /// One object by name.
        name: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
        /// Label selector (`-l app=x`).
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
    /// The live pheromone field, strongest first (void.pheromone.sense); `-w` follows it.
    Observe {
        /// Follow: sense again every `--interval` seconds until interrupted.
        #[arg(short = 'w', long)]
        watch: bool,
        /// Only these types (repeatable).
        #[arg(long = "type", value_name = "TYPE")]
        types: Vec<String>,
        /// Only from this source agent.
        #[arg(long)]
        source: Option<String>,
        /// What this agent senses (addressed to it, or broadcast).
        #[arg(long)]
        target: Option<String>,
        /// At most this many signals per round.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Seconds between rounds with `-w`.
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
        /// Output: table, or json (one object per line).
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Emit a pheromone (void.pheromone.emit).
    Emit {
        /// Its type (WARNING, INTENT, DREAM, ...).
        #[arg(value_name = "TYPE")]
        pheromone_type: String,
        /// The emitting agent (default: the `--as-agent` agent).
        #[arg(long)]
        source: Option<String>,
        /// Initial intensity, in (0, 1].
        #[arg(long, default_value_t = 1.0)]
        intensity: f64,
        /// Half-life in minutes.
        #[arg(long, default_value_t = 10.0, value_name = "MINUTES")]
        half_life: f64,
        /// Target agent (default: a broadcast).
        #[arg(long)]
        target: Option<String>,
        /// Payload text.
        #[arg(long)]
        payload: Option<String>,
        /// Hard time to live, in seconds.
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<i64>,
        /// Resource name (default: generated).
        #[arg(long)]
        name: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Port-forward to a ready pod of an agent and follow its logs
    /// (world.cluster.agents.<agent>.tether); Ctrl+C ends both.
    Tether {
        /// The agent.
        agent: String,
        /// Local port on 127.0.0.1 (default: the pod's port).
        #[arg(long)]
        port: Option<u16>,
        /// The pod's port (default: its first declared container port).
        #[arg(long)]
        remote_port: Option<u16>,
    },
    /// An agent rebuilt from its witness record at any recorded time, step by step
    /// (time.witness.<agent>.replay); --fork NAME creates a new Agent from the past spec.
    Seance(crate::seance::SeanceArgs),
    /// File a proposal (self.deployment.define): prints the local risk preview, then files it.
    Propose(ProposeArgs),
    /// Approve a proposal as yourself.
    Approve {
        /// The proposal.
        name: String,
        /// A comment.
        #[arg(long)]
        comment: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Reject a proposal as yourself.
    Reject {
        /// The proposal.
        name: String,
        /// The reason.
        #[arg(long, alias = "reason")]
        comment: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Resolve any AGENTESE path (the Logos directly); input as JSON.
    Invoke {
        /// The path (e.g. `void.pheromone.sense`).
        path: String,
        /// The input, a JSON object.
        #[arg(long)]
        input: Option<String>,
        /// Output format (json or yaml).
        #[arg(short = 'o', long, value_enum, default_value = "json")]
        output: Output,
    },
    /// The ghost cache.
    Ghost {
        /// What to do.
        #[command(subcommand)]
        command: GhostCommand,
    },
    /// Shell completions.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// The Terrarium: a live terminal dashboard of agents, pheromones, proposals and events
    /// (the ghost snapshots, read-only, when the cluster is unreachable).
    Terrarium(crate::terrarium::TerrariumArgs),
    /// Install, check or remove K8-gents in the current cluster.
    Infra {
        #[command(subcommand)]
        command: crate::infra::InfraCommand,
    },
    /// Serve the society to MCP clients (stdio by default, --http for streamable HTTP);
    /// read-only unless --allow-writes, scoped by --umwelt.
    Mcp(crate::mcp::McpArgs),
    /// The Cortex daemon: the Logos over gRPC on a Unix socket, watch caches that keep the
    /// ghost cache warm; `status` asks it first when it runs.
    Cortex {
        #[command(subcommand)]
        command: crate::cortex::CortexCommand,
    },
    /// Durable workflows (world.cluster.workflow.define): apply, get, describe, cancel, retry.
    Workflow {
        #[command(subcommand)]
        command: crate::workflow::WorkflowCommand,
    },
    /// The embedded control plane and the operator in one process.
    Dev {
        #[command(subcommand)]
        command: crate::dev::DevCommand,
    },
}

/// `kgents propose`.
#[derive(Args, Debug)]
pub struct ProposeArgs {
    /// A Proposal or its spec, JSON or YAML (`-` for stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Change type (AGENT_SCALE, CONFIG, ...), when not from a file.
    #[arg(long)]
    pub change_type: Option<String>,
    /// Target kind (Agent, ConfigMap, Deployment, ...).
    #[arg(long)]
    pub target_kind: Option<String>,
    /// Target name.
    #[arg(long)]
    pub target_name: Option<String>,
    /// Target apiVersion (default: kgents.io/v1 for kgents kinds).
    #[arg(long)]
    pub target_api_version: Option<String>,
    /// What changes.
    #[arg(long)]
    pub description: Option<String>,
    /// Why.
    #[arg(long)]
    pub rationale: Option<String>,
    /// The patch: a JSON merge patch document.
    #[arg(long)]
    pub patch: Option<String>,
    /// The proposal's name (default: generated).
    #[arg(long)]
    pub name: Option<String>,
    /// Server-side dry run: the admission webhook judges it; nothing is stored.
    #[arg(long)]
    pub dry_run: bool,
    /// File it although the local preview denies it.
    #[arg(long)]
    pub force: bool,
    /// Follow its phase until it is decided or waits for review.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits, in seconds.
    #[arg(long, default_value_t = 120.0, value_name = "SECONDS")]
    pub wait_timeout: f64,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

/// `kgents ghost`.
#[derive(Subcommand, Debug)]
pub enum GhostCommand {
    /// Each snapshot's age and verdict, and the stability score.
    Status,
    /// Remove every snapshot.
    Clear,
}
