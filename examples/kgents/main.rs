//! `kgents`: the K8-gents CLI. Every command resolves an AGENTESE path through the Logos
//! (`kgents-logos`); this binary only parses flags, connects and prints.
//!
//! ```sh
//! cargo install --path . --example kgents        # then, for kubectl: ln -s kgents kubectl-kgents
//! kgents status                                  # agents, pheromone heat, pending proposals
//! kgents get pheromones -A -o wide               # current (decayed) intensities
//! kgents emit WARNING --source b-gent --intensity 0.8 -n team
//! kgents propose --change-type AGENT_SCALE --target-kind Agent --target-name b-gent -n team --dry-run
//! kgents approve scale-b-gent-x7k2 -n team --comment "checked"
//! kgents --as-agent b-gent -n team status        # only what b-gent's Umwelt affords
//! ```
//!
//! | command | AGENTESE path |
//! |---|---|
//! | `status` | the status digest (ghost cache → API); with `--umwelt`/`--as-agent`, `world.cluster.agents.manifest`, `void.pheromone.sense`, `world.cluster.proposals.manifest` |
//! | `get agents [NAME]` | `world.cluster.agents.manifest`, `world.cluster.agents.<agent>.manifest` |
//! | `get pheromones`, `observe [-w]` | `void.pheromone.sense` |
//! | `get proposals` / `memories` / `umwelts` | `world.cluster.{proposals,memories,umwelts}.manifest` |
//! | `emit` | `void.pheromone.emit` |
//! | `propose` | `self.deployment.define` |
//! | `approve` / `reject` | `world.cluster.proposals.<proposal>.{approve,reject}` |
//! | `tether AGENT` | `world.cluster.agents.<agent>.tether` (then port-forward and logs) |
//! | `seance AGENT [--at T] [--step] [--fork NAME]` | `time.witness.<agent>.replay` (from the witness store; `--fork` creates an Agent) |
//! | `invoke PATH` | any path |
//! | `workflow apply -f FILE` / `get` / `describe` / `cancel` / `retry` | `world.cluster.workflow.define` (apply); the Workflow's spec and journal |
//! | `terrarium [--readonly]` | the three list paths, watched; approve / reject from the dashboard |
//! | `mcp [--http ADDR] [--allow-writes]` | every resource and tool of `kgents-mcp` |
//! | `cortex serve [--socket PATH] [--tcp ADDR --tls-cert F --tls-key F --token-file F] [--model-provider P --model M]` | every path, over gRPC (`kgents-cortex`); `concept.*` with a model |
//! | `ghost status` / `ghost clear`, `completions SHELL` | (local) |
//!
//! `status` asks the Cortex daemon first: over TCP when `$KGENTS_CORTEX_URL` is set (with
//! `$KGENTS_CORTEX_CA` and `$KGENTS_CORTEX_TOKEN`), else when its socket exists
//! (`$KGENTS_CORTEX_SOCKET`, else `~/.kgents/cortex.sock`); 500 ms; then reads the ghost cache (`$KGENTS_GHOST_DIR`, else `~/.kgents/ghost`) and falls back to the API server; a cached answer says
//! `[GHOST] … (data from 4m ago)` on stderr, and `--live` asks the API server only. Data goes
//! to stdout, diagnostics to stderr; no colour unless stderr is a terminal and `NO_COLOR` is
//! unset. Every API call has a deadline (`--request-timeout`, 5 s).
//!
//! Installed (or linked) as `kubectl-kgents`, it is a kubectl plugin: `kubectl kgents status`;
//! linked as `kubectl_complete-kgents` as well, kubectl completes its commands, flags and flag
//! values (`kubectl kgents get <TAB>`).
//!
//! Exit codes: 0 ok; 1 error; 2 usage or bad input (unknown command or path, bad `-o`,
//! malformed file, invalid name); 3 denied (affordances, RBAC or admission); 4 unavailable
//! (cluster unreachable and no usable ghost answer).

use std::io::Write as _;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

mod cli;
mod commands;
mod complete;
mod connect;
mod cortex;
mod dev;
mod infra;
mod mcp;
mod render;
mod seance;
mod terrarium;
mod workflow;

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();

    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let program = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if program.starts_with("kubectl_complete-kgents") {
        // kubectl's plugin completion: the words after `kgents`, the last one being completed.
        let words: Vec<String> = args[1..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut stdout = std::io::stdout().lock();
        for line in complete::complete(&cli::Cli::command(), &words) {
            // kubectl stopped reading: nothing more to offer it.
            if writeln!(stdout, "{line}").is_err() {
                break;
            }
        }
        return ExitCode::SUCCESS;
    }
    let plugin = program.starts_with("kubectl-kgents");
    let mut command = cli::Cli::command();
    if plugin {
        command = command.bin_name("kubectl kgents");
    }
    let parsed = command
        .try_get_matches_from(args)
        .and_then(|m| cli::Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // A one-shot command says what went wrong itself; the libraries' log lines are for the
    // long-running ones (daemon, servers, dashboard, control plane) and for RUST_LOG.
    let long_running = matches!(
        cli.command,
        cli::Command::Terrarium(_)
            | cli::Command::Mcp(_)
            | cli::Command::Cortex { .. }
            | cli::Command::Dev { .. }
    );
    if long_running || std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
            )
            .with_writer(terrarium::log_writer)
            .try_init();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(failure) if failure.is_closed_output() => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.code)
        }
    }
}
