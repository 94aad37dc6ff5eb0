//! Whole-process timings of the `kgents` CLI against a real API server, beside `kubectl`.
//!
//! ```sh
//! cargo build --release --example kgents
//! cargo run --release --example cli_timing -- --agents 1000 --pheromones 10000 --runs 11
//! ```
//!
//! Starts a private etcd + kube-apiserver (the testbed; build it once with
//! `scripts/testbed-build`), installs the CRDs, creates the Agents and Pheromones, then runs each
//! command `--runs` times as a separate process and reports the median and the worst wall time
//! and the median and the largest peak RSS (from GNU `time`, `/usr/bin/time`), with the median
//! CPU the API server spent on a run (from `/proc`):
//!
//! - `kgents status --live` over the Agents alone, before any Pheromone exists, then over the
//!   Agents and the Pheromones, and `kgents get pheromones -A` (the API server answers);
//! - `kgents get agents -A -o json` and `kubectl get agents -A -o json` on the same data, runs
//!   interleaved so both see the same machine;
//! - `kgents status` through the Cortex daemon (`kgents cortex serve`, started here on a socket
//!   of its own), and the daemon's peak RSS with everything in its watch caches;
//! - `kgents status` answered from the ghost cache (written through by the live runs) with the API
//!   server stopped.
//!
//! The `kgents` binary is looked up beside this one (`target/<profile>/examples/kgents`) unless
//! `--kgents PATH`; `kubectl` is the testbed's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use kgents::kgents_crds::{Agent, Pheromone};
use kube::Api;
use kube::api::PostParams;

#[path = "support/measure.rs"]
mod measure;

#[derive(Parser, Debug)]
#[command(about = "Whole-process timings of the kgents CLI beside kubectl.")]
struct Args {
    /// Agents to create.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Pheromones to create.
    #[arg(long, default_value_t = 10_000)]
    pheromones: usize,
    /// Runs of each command (the median is reported).
    #[arg(long, default_value_t = 11)]
    runs: usize,
    /// The kgents binary (default: beside this program).
    #[arg(long)]
    kgents: Option<PathBuf>,
    /// Create the data, print the kubeconfig's path and keep the API server up until Ctrl+C,
    /// without timing anything (to look into single requests by hand).
    #[arg(long)]
    hold: bool,
}

/// One run of a command: wall time, peak RSS, and the CPU the API server spent meanwhile.
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: Duration,
    peak_rss_kib: u64,
    apiserver_cpu: Option<Duration>,
}

/// The API server's process, whose CPU each run is charged with (`None` once it is stopped).
#[derive(Debug, Clone, Copy)]
struct ApiServer {
    pid: u32,
    ticks_per_second: f64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let time = PathBuf::from("/usr/bin/time");
    if !time.exists() {
        bail!("GNU time is needed at /usr/bin/time to read each run's peak RSS (apt install time)");
    }
    let kgents = match &args.kgents {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this program has no directory")?
            .join("kgents"),
    };
    if !kgents.exists() {
        bail!(
            "no kgents binary at {}: build it first (cargo build --release --example kgents) or pass --kgents",
            kgents.display()
        );
    }

    eprintln!("starting a private etcd + kube-apiserver ...");
    let testbed = kgents_testbed::Testbed::builder()
        .start()
        .await
        .context("starting the testbed (build it once with scripts/testbed-build)")?;
    testbed.install_crds(&kgents::kgents_crds::crds()).await?;
    let client = testbed.client().await?;
    let namespace = testbed.create_namespace("cli-timing").await?;
    let kubectl = kubectl_path()?;
    let apiserver = testbed
        .component_pids()
        .into_iter()
        .find(|(name, _)| *name == "kube-apiserver")
        .map(|(_, pid)| ApiServer {
            pid,
            ticks_per_second: measure::ticks_per_second(),
        });

    eprintln!(
        "creating {} Agents and {} Pheromones ...",
        args.agents, args.pheromones
    );
    let agents: Api<Agent> = Api::namespaced(client.clone(), &namespace);
    create_all(args.agents, |i| {
        let agents = agents.clone();
        async move {
            let agent: Agent = serde_json::from_value(serde_json::json!({
                "apiVersion": "kgents.io/v1", "kind": "Agent",
                "metadata": {"name": format!("agent-{i}")},
                "spec": {"genus": "B"},
            }))?;
            agents.create(&PostParams::default(), &agent).await?;
            Ok(())
        }
    })
    .await?;
    let ghost = tempfile::tempdir()?;
    let kubeconfig = testbed.kubeconfig_path().to_path_buf();
    let kgents_cmd = |extra: &[&str]| -> Vec<String> {
        let mut argv = vec![
            kgents.display().to_string(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
        ];
        argv.extend(extra.iter().map(|s| (*s).to_owned()));
        argv
    };
    // A socket of this run's own: a daemon the user runs elsewhere is never asked.
    let socket = ghost.path().join("cortex.sock");
    let env = [
        ("KGENTS_GHOST_DIR", ghost.path().to_path_buf()),
        ("KGENTS_CORTEX_SOCKET", socket.clone()),
    ];
    // `kgents ARGS` run `--runs` times against the API server.
    let kgents_runs =
        |extra: &[&str]| run_many(&time, &kgents_cmd(extra), &env, args.runs, apiserver);

    // `status --live` with the Agents alone first: the issue's figure for it is stated at 1,000
    // Agents; the same command over the full field follows below.
    let mut rows = Vec::new();
    if !args.hold {
        let live_agents = kgents_runs(&["status", "--live"])?;
        rows.push((
            format!(
                "kgents status --live ({} Agents, no Pheromones)",
                args.agents
            ),
            live_agents,
        ));
    }

    let pheromones: Api<Pheromone> = Api::namespaced(client.clone(), &namespace);
    let types = ["WARNING", "REVIEW_REQUEST", "STATE", "DREAM"];
    let now = jiff::Timestamp::now();
    create_all(args.pheromones, |i| {
        let pheromones = pheromones.clone();
        let kind = types[i % types.len()];
        async move {
            let pheromone: Pheromone = serde_json::from_value(serde_json::json!({
                "apiVersion": "kgents.io/v1", "kind": "Pheromone",
                "metadata": {"name": format!("p-{i}")},
                "spec": {
                    "type": kind, "source": format!("agent-{}", i % 100),
                    "initialIntensity": 0.9, "halfLifeMinutes": 60,
                    "emittedAt": now.to_string(),
                },
            }))?;
            pheromones
                .create(&PostParams::default(), &pheromone)
                .await?;
            Ok(())
        }
    })
    .await?;

    if args.hold {
        println!("KUBECONFIG={}", kubeconfig.display());
        eprintln!("holding the API server up; Ctrl+C stops it");
        tokio::signal::ctrl_c().await?;
        return Ok(());
    }
    let live = kgents_runs(&["status", "--live"])?;
    rows.push((
        format!(
            "kgents status --live ({} Agents, {} Pheromones)",
            args.agents, args.pheromones
        ),
        live,
    ));
    let pheromone_list = kgents_runs(&["get", "pheromones", "-A"])?;
    rows.push(("kgents get pheromones -A".to_owned(), pheromone_list));

    // kgents and kubectl interleaved, so a change in the machine's load hits both.
    let kubectl_argv = vec![
        kubectl.display().to_string(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
        "get".into(),
        "agents".into(),
        "-A".into(),
        "-o".into(),
        "json".into(),
    ];
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..args.runs {
        ours.extend(run_many(
            &time,
            &kgents_cmd(&["get", "agents", "-A", "-o", "json"]),
            &env,
            1,
            apiserver,
        )?);
        theirs.extend(run_many(&time, &kubectl_argv, &[], 1, apiserver)?);
    }
    rows.push(("kgents get agents -A -o json".to_owned(), ours));
    rows.push(("kubectl get agents -A -o json".to_owned(), theirs));

    // Through the Cortex daemon, once its watches have listed everything.
    let (daemon_pid, daemon_rss) = {
        let argv = kgents_cmd(&["cortex", "serve"]);
        let mut daemon = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting kgents cortex serve")?;
        let pid = daemon.id();
        let listed = wait_for_daemon(&socket).await;
        let result = match listed {
            Ok(()) => {
                let through = kgents_runs(&["status"])?;
                rows.push((
                    "kgents status (through the Cortex daemon)".to_owned(),
                    through,
                ));
                Ok(measure::peak_rss_kib(pid).unwrap_or(0))
            }
            Err(e) => Err(e),
        };
        // SIGTERM: a graceful stop that removes the socket.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let _ = daemon.wait();
        (pid, result?)
    };

    // The ghost cache, written through by the live runs above, with the API server gone.
    testbed.stop_apiserver();
    let cached = run_many(&time, &kgents_cmd(&["status"]), &env, args.runs, None)?;
    rows.push((
        "kgents status (ghost cache, API server stopped)".to_owned(),
        cached,
    ));

    println!(
        "{} Agents, {} Pheromones, {} runs each (whole processes)",
        args.agents, args.pheromones, args.runs
    );
    println!(
        "{:<56} {:>10} {:>10} {:>16} {:>14} {:>16}",
        "command", "median", "worst", "peak RSS median", "peak RSS max", "API server CPU"
    );
    for (name, samples) in &rows {
        let mut walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
        walls.sort();
        let median = walls[walls.len() / 2];
        let worst = walls[walls.len() - 1];
        let mut rss: Vec<u64> = samples.iter().map(|s| s.peak_rss_kib).collect();
        rss.sort_unstable();
        let mib = |kib: u64| kib as f64 / 1024.0;
        // The API server's CPU per run, median (its clock ticks are 10 ms: one run's figure is
        // coarse, the median of many is not).
        let mut cpu: Vec<Duration> = samples.iter().filter_map(|s| s.apiserver_cpu).collect();
        cpu.sort();
        let cpu = cpu.get(cpu.len() / 2).map_or("-".to_owned(), |c| {
            format!("{:.0}ms", c.as_secs_f64() * 1e3)
        });
        println!(
            "{:<56} {:>8.1}ms {:>8.1}ms {:>12.1} MiB {:>10.1} MiB {:>16}",
            name,
            median.as_secs_f64() * 1e3,
            worst.as_secs_f64() * 1e3,
            mib(rss[rss.len() / 2]),
            mib(rss[rss.len() - 1]),
            cpu
        );
    }
    println!(
        "the Cortex daemon (pid {daemon_pid}) with everything cached: peak RSS {:.1} MiB",
        daemon_rss as f64 / 1024.0
    );
    Ok(())
}

/// Waits until the daemon answers on `socket` and its watches have listed every kind.
async fn wait_for_daemon(socket: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(mut client) =
            kgents::kgents_cortex::client::connect(socket, Duration::from_secs(2)).await
        {
            let status = client
                .get_status(kgents::kgents_cortex::pb::StatusRequest::default())
                .await;
            match status {
                Ok(response) if response.get_ref().problems.is_empty() => return Ok(()),
                Ok(response) => last = response.into_inner().problems.join("; "),
                Err(status) => last = status.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the Cortex daemon never listed everything: {last}")
}

/// Creates `n` objects with `make(i)`, 32 requests in flight.
async fn create_all<F, Fut>(n: usize, make: F) -> Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    futures::stream::iter(0..n)
        .map(make)
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Runs `argv` `runs` times under GNU time; every run must succeed.
fn run_many(
    time: &Path,
    argv: &[String],
    env: &[(&str, PathBuf)],
    runs: usize,
    apiserver: Option<ApiServer>,
) -> Result<Vec<Sample>> {
    let apiserver_cpu =
        || apiserver.and_then(|a| measure::cpu_time(a.pid, a.ticks_per_second).ok());
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let cpu_before = apiserver_cpu();
        let started = Instant::now();
        let mut command = Command::new(time);
        command
            .arg("-f")
            .arg("KGENTS_TIMING %M")
            .args(argv)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command
            .output()
            .with_context(|| format!("running {}", argv.join(" ")))?;
        let wall = started.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("{} failed ({}):\n{stderr}", argv.join(" "), output.status);
        }
        let peak_rss_kib = stderr
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("KGENTS_TIMING "))
            .and_then(|kib| kib.trim().parse().ok())
            .with_context(|| format!("no peak RSS from GNU time in:\n{stderr}"))?;
        let apiserver_cpu = cpu_before
            .zip(apiserver_cpu())
            .map(|(before, after)| after.saturating_sub(before));
        samples.push(Sample {
            wall,
            peak_rss_kib,
            apiserver_cpu,
        });
    }
    Ok(samples)
}

/// The testbed's kubectl.
fn kubectl_path() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let dir = PathBuf::from(home).join(".cache/kgents/testbed");
    let kubectl = dir
        .join(kgents_testbed::kubernetes_version())
        .join("kubectl");
    if !kubectl.exists() {
        bail!(
            "no kubectl at {} (scripts/testbed-build builds it)",
            kubectl.display()
        );
    }
    Ok(kubectl)
}
