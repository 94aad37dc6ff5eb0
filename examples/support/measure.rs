//! What the measuring examples (`scale`, `probes`, `proposal`) share: a client from a
//! kubeconfig file, the operator run as a child process of the example, CPU time and peak
//! memory of a process from `/proc`, and plain HTTP/1.1 GETs against the operator's own HTTP
//! server (readiness, metrics).
//!
//! Included with `#[path = "support/measure.rs"] mod measure;`; not an example of its own.

#![allow(dead_code)] // each example uses a different part

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use kgents::kgents_operator::OperatorConfig;
use kgents::kgents_operator::metrics::Metrics;
use kgents::kgents_operator::run::{self, RunOptions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// A client for the cluster a kubeconfig file describes (its current context), trimming
/// managed fields from what it reads as the operator and the CLI do.
pub async fn client_from(kubeconfig: &Path) -> Result<Client> {
    Ok(kgents::kgents_logos::wire::client(
        config_from(kubeconfig).await?,
    )?)
}

/// The configuration a kubeconfig file describes (its current context).
pub async fn config_from(kubeconfig: &Path) -> Result<Config> {
    let parsed = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading the kubeconfig {}", kubeconfig.display()))?;
    Ok(Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default()).await?)
}

/// How the operator process builds its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStack {
    /// With the managed-fields trim, as the operator example runs.
    Trimmed,
    /// kube's default stack alone (the comparison: every object decoded whole).
    Plain,
}

impl ClientStack {
    /// `trimmed` or `untrimmed`, as the measuring examples print it.
    pub fn name(self) -> &'static str {
        match self {
            ClientStack::Trimmed => "trimmed",
            ClientStack::Plain => "untrimmed",
        }
    }
}

/// The body of the operator child process: runs the `controllers` named (e.g.
/// `agent::CONTROLLER`) with `config` against the cluster of `kubeconfig`, its HTTP server on
/// `http_addr`, without leader election, until SIGTERM or Ctrl-C.
pub async fn run_operator(
    kubeconfig: Option<PathBuf>,
    config: OperatorConfig,
    http_addr: Option<SocketAddr>,
    controllers: &[&str],
    stack: ClientStack,
) -> Result<()> {
    let kubeconfig = kubeconfig.context("--operator needs --kubeconfig")?;
    let client = match stack {
        ClientStack::Trimmed => client_from(&kubeconfig).await?,
        ClientStack::Plain => Client::try_from(config_from(&kubeconfig).await?)?,
    };
    let options = RunOptions {
        config,
        http_addr,
        leader_election: None,
        metrics: Arc::new(Metrics::new()),
        controllers: run::controllers()
            .into_iter()
            .filter(|c| controllers.contains(&c.name))
            .collect(),
        webhook_runtime: None,
    };
    run::run(client, options, run::shutdown_signal()).await?;
    Ok(())
}

/// What `/proc/<pid>/stat` (or a thread's `/proc/<pid>/task/<tid>/stat`) says of a process.
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    /// The command name (at most 15 bytes, may hold spaces).
    pub comm: String,
    /// The parent's process id.
    pub ppid: u32,
    /// User + system CPU time, in clock ticks ([`ticks_per_second`]).
    pub cpu_ticks: u64,
}

/// Reads and parses a `stat` file; None when the process is gone or the file is not one.
pub fn stat(path: &Path) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// The [`stat`] of process `pid`.
pub fn stat_of(pid: u32) -> Option<Stat> {
    stat(Path::new(&format!("/proc/{pid}/stat")))
}

/// Parses the text of a `stat` file. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last closing parenthesis: state is field 3,
/// ppid 4, utime 14 and stime 15.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Stat {
        comm,
        ppid: u32::try_from(number(1)?).ok()?,
        cpu_ticks: number(11)? + number(12)?,
    })
}

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`; 100, Linux's value, when
/// unknown).
pub fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU time of process `pid` so far.
pub fn cpu_time(pid: u32, ticks_per_second: f64) -> Result<Duration> {
    let stat = stat_of(pid).with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Ticks stay far below 2^52, where f64 would start to round them.
    let ticks = stat.cpu_ticks as f64;
    Ok(Duration::from_secs_f64(ticks / ticks_per_second))
}

/// Peak resident set size (`VmHWM`) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        "VmHWM:",
    )
}

/// A process's resident memory now, by kind (`RssAnon`, `RssFile`, `RssShmem` of
/// `/proc/<pid>/status`), in KiB.
pub fn rss_split_kib(pid: u32) -> Option<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((
        status_kib(&status, "RssAnon:")?,
        status_kib(&status, "RssFile:")?,
        status_kib(&status, "RssShmem:")?,
    ))
}

/// The KiB a `/proc/<pid>/status` line starting with `name` gives.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// GETs `path` from an HTTP/1.1 server on `addr`; the body when the answer is 200.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response
        .starts_with("HTTP/1.1 200")
        .then(|| response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()))
        .flatten()
}

/// Waits until the operator's HTTP server on `addr` answers `/readyz` with 200.
pub async fn wait_ready(addr: SocketAddr, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    while http_get(addr, "/readyz").await.is_none() {
        if Instant::now() > deadline {
            bail!("the operator process did not become ready within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The sum of the samples of metric `name` (all label sets) in OpenMetrics text.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
