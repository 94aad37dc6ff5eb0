//! Measures `Invoke world.cluster.agents.manifest` with 1,000 agents (and 10,000 pheromones)
//! in the daemon's watch caches: server-side (the service method, decoding to encoding of the
//! JSON result, no transport) and a whole round trip over the Unix socket; then the `Observe`
//! fan-out of 1,000 pheromone changes per second to 100 subscribers, and the peak RSS.
//!
//! ```sh
//! cargo run -p kgents-cortex --example invoke_latency            # dev profile
//! cargo run -p kgents-cortex --example invoke_latency --release  # the figure to compare
//! ```
//!
//! Targets (issue 14): server-side p99 ≤ 2 ms; no subscriber more than 1 s behind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kgents_core::clock::{Clock, SystemClock};
use kgents_cortex::fanout::Hub;
use kgents_cortex::pb::cortex_server::Cortex;
use kgents_cortex::request::Kinds;
use kgents_cortex::{CortexService, WatchCache, pb, server};
use kgents_crds::{Agent, Pheromone};
use kgents_logos::{ClusterView, Logos, Scope};
use kube::runtime::watcher;

const AGENTS: usize = 1_000;
const PHEROMONES: usize = 10_000;
const RUNS: usize = 2_000;

fn agent(i: usize) -> Agent {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "kgents.io/v1", "kind": "Agent",
        "metadata": {"name": format!("agent-{i:04}"), "namespace": format!("team-{}", i % 10)},
        "spec": {"genus": "B", "image": "x", "replicas": 1},
        "status": {"phase": "Running", "readyReplicas": 1, "cognitiveHealth": "HEALTHY"}
    }))
    .expect("an Agent")
}

fn pheromone(i: usize, now: jiff::Timestamp) -> Pheromone {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "kgents.io/v1", "kind": "Pheromone",
        "metadata": {"name": format!("p-{i:05}"), "namespace": format!("team-{}", i % 10)},
        "spec": {"type": "WARNING", "source": format!("agent-{:04}", i % AGENTS),
                 "initialIntensity": 0.9, "halfLifeMinutes": 10.0, "emittedAt": now.to_string()}
    }))
    .expect("a Pheromone")
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index]
    };
    format!(
        "p50 {:?}  p90 {:?}  p99 {:?}  max {:?}  (n = {})",
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0),
        samples.len()
    )
}

/// `VmHWM` from /proc/self/status.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let cache = Arc::new(WatchCache::new(Arc::clone(&clock), None));
    let now = clock.now();
    cache.apply_agent(watcher::Event::Init);
    for i in 0..AGENTS {
        cache.apply_agent(watcher::Event::InitApply(agent(i)));
    }
    cache.apply_agent(watcher::Event::InitDone);
    cache.apply_pheromone(watcher::Event::Init);
    for i in 0..PHEROMONES {
        cache.apply_pheromone(watcher::Event::InitApply(pheromone(i, now)));
    }
    cache.apply_pheromone(watcher::Event::InitDone);
    cache.apply_proposal(watcher::Event::Init);
    cache.apply_proposal(watcher::Event::InitDone);
    println!(
        "cached: {:?} (agents, pheromones, proposals)",
        cache.counts()
    );

    let hub = Arc::new(Hub::new(1024));
    let view = Arc::clone(&cache) as Arc<dyn ClusterView>;
    let service = CortexService::new(
        Logos::new(view, None),
        Arc::clone(&cache),
        None,
        Arc::clone(&hub),
        Arc::clone(&clock),
    );
    let request = || pb::InvokeRequest {
        path: "world.cluster.agents.manifest".into(),
        ..Default::default()
    };

    // Server-side: the service method (argument mapping, Logos, JSON of 1,000 agents).
    let mut bytes = 0;
    for _ in 0..100 {
        bytes = service
            .invoke(tonic::Request::new(request()))
            .await?
            .into_inner()
            .result_json
            .len();
    }
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let response = service.invoke(tonic::Request::new(request())).await?;
        samples.push(started.elapsed());
        std::hint::black_box(response);
    }
    println!(
        "Invoke world.cluster.agents.manifest, {AGENTS} agents, server-side ({bytes} bytes of JSON): {}",
        percentiles(samples)
    );

    // GetSnapshot of the 10,000 active pheromones: built once, then reused until a change.
    let snapshot = || pb::SnapshotRequest {
        key: "pheromones/active".into(),
    };
    let started = Instant::now();
    let first = service
        .get_snapshot(tonic::Request::new(snapshot()))
        .await?;
    let built = started.elapsed();
    let mut samples = Vec::with_capacity(200);
    for _ in 0..200 {
        let started = Instant::now();
        let response = service
            .get_snapshot(tonic::Request::new(snapshot()))
            .await?;
        samples.push(started.elapsed());
        std::hint::black_box(response);
    }
    println!(
        "GetSnapshot pheromones/active, {PHEROMONES} pheromones ({} bytes): built in {built:?}, \
         reused: {}",
        first.get_ref().envelope_json.len(),
        percentiles(samples)
    );

    // A whole round trip over the Unix socket (client encoding, HTTP/2, server, decoding).
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cortex.sock");
    let (listener, _socket) = kgents_cortex::socket::bind(&path)?;
    let router = server::router(service.clone()).await?;
    tokio::spawn(
        router.serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    let mut client = kgents_cortex::client::connect(&path, Duration::from_secs(5)).await?;
    for _ in 0..100 {
        client.invoke(request()).await?;
    }
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let response = client.invoke(request()).await?;
        samples.push(started.elapsed());
        std::hint::black_box(response);
    }
    println!(
        "Invoke world.cluster.agents.manifest, {AGENTS} agents, round trip over the socket: {}",
        percentiles(samples)
    );

    // Observe fan-out: 100 subscribers reading as they can, 1,000 pheromone changes per
    // second (in bursts of 100 every 0.1 s) for CORTEX_OBSERVE_SECONDS (default 5; the
    // issue's figure is 30); the worst delay from a change's publication to a subscriber
    // having it as a wire event.
    const SUBSCRIBERS: usize = 100;
    let seconds: usize = std::env::var("CORTEX_OBSERVE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let changes = seconds * 1_000;
    let mut readers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut sub = hub.subscribe(Kinds::ALL, Scope::All);
        readers.push(tokio::spawn(async move {
            let mut got = 0;
            let mut worst = Duration::ZERO;
            while got < changes {
                match sub.next().await {
                    Ok(Some(change)) => {
                        let now = SystemClock.now();
                        std::hint::black_box(change.event(now));
                        let behind = now.duration_since(change.at).unsigned_abs();
                        worst = worst.max(behind);
                        got += 1;
                    }
                    _ => break,
                }
            }
            (got, worst)
        }));
    }
    let started = Instant::now();
    for i in 0..changes {
        let (change, _) =
            cache.apply_pheromone(watcher::Event::Apply(pheromone(i % PHEROMONES, now)));
        if let Some(change) = change {
            hub.publish(&Arc::new(change));
        }
        if i % 100 == 99 {
            let due = started + Duration::from_millis(100 * (i as u64 + 1) / 100);
            tokio::time::sleep_until(due.into()).await;
        }
    }
    let published = started.elapsed();
    let mut worst = Duration::ZERO;
    let mut complete = 0;
    for reader in readers {
        let (got, behind) = reader.await?;
        if got == changes {
            complete += 1;
        }
        worst = worst.max(behind);
    }
    println!(
        "Observe: {changes} changes in {published:?} to {SUBSCRIBERS} subscribers: {complete} got \
         all, dropped {}; the furthest any subscriber fell behind: {worst:?}",
        hub.dropped_total()
    );
    println!(
        "peak RSS of this process (caches, service, 100 subscribers): {}",
        peak_rss()
    );
    Ok(())
}
