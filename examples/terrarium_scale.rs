//! Measures `kgents terrarium` at scale on a private testbed: AGENTS agents and PHEROMONES
//! pheromones created through the API, the dashboard started on them in tmux (200×50), then
//! its CPU while idle (30 s, after all the data is on screen and 10 s of settling) and its peak
//! RSS, both read from `/proc`. Nothing changes in the cluster meanwhile (no operator runs), so
//! what it spends is the decay tick's redraws and the watches' keep-alive.
//!
//! ```sh
//! cargo build --profile bench --example kgents
//! cargo run --profile bench --example terrarium_scale -- 1000 10000 target/release/examples/kgents
//! ```
//!
//! Needs the testbed binaries (`scripts/testbed-build`) and tmux (`scripts/tmux-ensure`).

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kgents::kgents_crds::{Agent, Pheromone};
use kgents_testbed::Testbed;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

const TYPES: [&str; 6] = [
    "WARNING",
    "INTENT",
    "STATE",
    "DREAM",
    "CAPABILITY",
    "MEMORY",
];

fn tmux(bin: &str, socket: &str, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(["-L", socket])
        .args(args)
        .stdin(Stdio::null())
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields start after the closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn status_field(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

async fn measure(agents: usize, pheromones: usize, binary: PathBuf) -> Result<(), String> {
    let testbed = Testbed::builder()
        .start()
        .await
        .map_err(|e| format!("starting the testbed: {e}"))?;
    testbed
        .install_crds(&kgents::kgents_crds::crds())
        .await
        .map_err(|e| format!("installing the CRDs: {e}"))?;
    let ns = testbed
        .create_namespace("scale")
        .await
        .map_err(|e| e.to_string())?;
    let client = testbed.client().await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let agent_api: Api<Agent> = Api::namespaced(client.clone(), &ns);
    futures::stream::iter(0..agents)
        .map(|i| {
            let api = agent_api.clone();
            async move {
                let agent: Agent = serde_json::from_value(json!({
                    "apiVersion": "kgents.io/v1", "kind": "Agent",
                    "metadata": {"name": format!("agent-{i}")},
                    "spec": {"genus": "B", "replicas": 1},
                }))
                .map_err(|e| e.to_string())?;
                api.create(&PostParams::default(), &agent)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("creating agent-{i}: {e}"))
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    let pheromone_api: Api<Pheromone> = Api::namespaced(client.clone(), &ns);
    futures::stream::iter(0..pheromones)
        .map(|i| {
            let api = pheromone_api.clone();
            async move {
                let pheromone: Pheromone = serde_json::from_value(json!({
                    "apiVersion": "kgents.io/v1", "kind": "Pheromone",
                    "metadata": {"name": format!("signal-{i}")},
                    "spec": {"type": TYPES[i % TYPES.len()],
                             "source": format!("agent-{}", (i * 7) % agents.max(1)),
                             "initialIntensity": 0.2 + 0.8 * ((i * 31) % 100) as f64 / 100.0,
                             "halfLifeMinutes": 600},
                }))
                .map_err(|e| e.to_string())?;
                api.create(&PostParams::default(), &pheromone)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("creating signal-{i}: {e}"))
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    eprintln!(
        "created {agents} agents and {pheromones} pheromones in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let ensure = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/tmux-ensure"))
        .output()
        .map_err(|e| format!("scripts/tmux-ensure: {e}"))?;
    let tmux_bin = String::from_utf8_lossy(&ensure.stdout).trim().to_owned();
    let socket = format!("kgents-terrarium-scale-{}", std::process::id());
    let ghost = tempfile::tempdir().map_err(|e| e.to_string())?;
    let command = format!(
        "exec env KGENTS_GHOST_DIR={} {} --kubeconfig {} -n {ns} terrarium",
        ghost.path().display(),
        binary.display(),
        testbed.kubeconfig_path().display()
    );
    tmux(
        &tmux_bin,
        &socket,
        &[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "200",
            "-y",
            "50",
            &command,
        ],
    );
    let pid: u32 = tmux(
        &tmux_bin,
        &socket,
        &["list-panes", "-t", "t", "-F", "#{pane_pid}"],
    )
    .trim()
    .parse()
    .map_err(|_| "no tmux pane".to_owned())?;
    let shown = format!("{agents} agents · {pheromones} signals");
    let waited = Instant::now();
    loop {
        let screen = tmux(&tmux_bin, &socket, &["capture-pane", "-p", "-t", "t"]);
        if screen.contains(&shown) {
            break;
        }
        if waited.elapsed() > Duration::from_secs(180) {
            tmux(&tmux_bin, &socket, &["kill-server"]);
            return Err(format!("the data did not appear within 180 s:\n{screen}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "all data on screen {:.1} s after the dashboard started",
        waited.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = cpu_ticks(pid).ok_or("reading /proc/PID/stat")?;
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let after = cpu_ticks(pid).ok_or("reading /proc/PID/stat")?;
    let seconds = window.elapsed().as_secs_f64();
    // Clock ticks are 1/100 s on Linux (sysconf(_SC_CLK_TCK)).
    let cpu = (after - before) as f64 / 100.0 / seconds * 100.0;
    println!("terrarium at {agents} agents, {pheromones} pheromones, 200×50, tick default:");
    println!("  idle CPU      {cpu:.2} % of one core over {seconds:.0} s");
    println!("  peak RSS      {}", status_field(pid, "VmHWM"));
    println!("  RSS now       {}", status_field(pid, "VmRSS"));
    tmux(&tmux_bin, &socket, &["send-keys", "-t", "t", "q"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    tmux(&tmux_bin, &socket, &["kill-server"]);
    Ok(())
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args = std::env::args().skip(1);
    let agents = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let pheromones = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let binary = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/release/examples/kgents"
        ))
    });
    if !binary.exists() {
        eprintln!(
            "error: {} is missing: cargo build --profile bench --example kgents (or pass the binary)",
            binary.display()
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(measure(agents, pheromones, binary)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
