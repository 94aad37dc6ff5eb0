//! Measures the MCP server (server side, over the in-memory cluster; and the real HTTP
//! transport under load) against the targets:
//!
//! - `resources/read kgents://agents` at 1,000 agents: p99 ≤ 20 ms;
//! - `tools/call sense` at 10,000 pheromones: p99 ≤ 10 ms;
//! - 50 concurrent HTTP clients for 30 s (each its own connection pool, 2026-07-28 stateless
//!   requests): no error.
//!
//! ```sh
//! cargo run -p kgents-mcp --example mcp_latency                  # the debug build (slow)
//! CARGO_PROFILE_DEV_OPT_LEVEL=2 cargo run -p kgents-mcp --example mcp_latency
//! cargo run --release -p kgents-mcp --example mcp_latency        # release figures
//! MCP_LOAD_SECONDS=5 cargo run -p kgents-mcp --example mcp_latency
//! ```
//!
//! The `Logos::invoke` line measures the resolver alone, so what the MCP layer adds (paging,
//! rendering, redaction, the cap) is the difference to the `tools/call sense` line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kgents_core::clock::SystemClock;
use kgents_logos::{Caller, Logos, MemoryCluster, Scope};
use kgents_mcp::{CancellationToken, HttpOptions, KgentsMcp, McpConfig};
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(what: &str, mut samples: Vec<Duration>, target: Duration) {
    samples.sort();
    let p50 = percentile(&samples, 0.50);
    let p99 = percentile(&samples, 0.99);
    println!(
        "{what}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms (target p99 <= {} ms: {})",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        target.as_millis(),
        if p99 <= target { "met" } else { "MISSED" }
    );
}

fn cluster(agents: usize, pheromones: usize) -> Arc<MemoryCluster> {
    let cluster = Arc::new(MemoryCluster::new("bench-user", Arc::new(SystemClock)));
    for i in 0..agents {
        cluster.add_agent(
            serde_json::from_value(json!({
                "apiVersion": "kgents.io/v1", "kind": "Agent",
                "metadata": {"name": format!("agent-{i:05}"), "namespace": "bench"},
                "spec": {"genus": "B", "replicas": 1},
                "status": {"phase": "Running", "readyReplicas": 1, "cognitiveHealth": "HEALTHY"},
            }))
            .expect("an agent"),
        );
    }
    let types = ["WARNING", "INTENT", "DREAM", "STATE"];
    let now = jiff::Timestamp::now();
    for i in 0..pheromones {
        cluster.add_pheromone(
            serde_json::from_value(json!({
                "apiVersion": "kgents.io/v1", "kind": "Pheromone",
                "metadata": {"name": format!("signal-{i:05}"), "namespace": "bench", "creationTimestamp": now.to_string()},
                "spec": {"type": types[i % 4], "source": format!("agent-{:05}", i % 1000), "initialIntensity": 0.2 + (i % 80) as f64 / 100.0, "halfLifeMinutes": 30.0},
            }))
            .expect("a pheromone"),
        );
    }
    cluster
}

fn server(cluster: Arc<MemoryCluster>) -> KgentsMcp {
    let logos = Logos::new(cluster, None);
    let config = McpConfig {
        scope: Scope::Namespace("bench".into()),
        watch_interval: None,
        ..McpConfig::default()
    };
    KgentsMcp::new(logos, Caller::unrestricted("bench-user"), config)
}

async fn http_load(server: KgentsMcp, clients: usize, seconds: u64) {
    let shutdown = CancellationToken::new();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let options = HttpOptions {
        addr: "127.0.0.1:0".parse().expect("an address"),
        bearer_token: None,
        allowed_hosts: Vec::new(),
    };
    let serving = tokio::spawn(kgents_mcp::serve_http(
        server,
        options,
        shutdown.clone(),
        move |addr| {
            let _ = bound_tx.send(addr);
        },
    ));
    let addr = bound_rx.await.expect("the server binds");
    let url = format!("http://{addr}/mcp");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (url, ok, failed) = (url.clone(), Arc::clone(&ok), Arc::clone(&failed));
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut latencies = Vec::new();
            let mut id = 0u64;
            while Instant::now() < deadline {
                id += 1;
                // Alternate the read tool and a resource read, as clients do.
                let (method, name, params) = if id.is_multiple_of(2) {
                    ("tools/call", "status", json!({"name": "status", "arguments": {}}))
                } else {
                    ("resources/read", "kgents://agents?limit=20", json!({"uri": "kgents://agents?limit=20"}))
                };
                let mut params = params;
                params["_meta"] = json!({
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": {"name": format!("load-{c}"), "version": "0"},
                });
                let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
                let started = Instant::now();
                let answer = http
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .header("Accept", "application/json, text/event-stream")
                    .header("MCP-Protocol-Version", "2026-07-28")
                    .header("Mcp-Method", method)
                    .header("Mcp-Name", name)
                    .body(body.to_string())
                    .send()
                    .await;
                let good = match answer {
                    Ok(response) if response.status().is_success() => match response.text().await {
                        Ok(text) => text.contains("\"result\"") && !text.contains("\"error\""),
                        Err(_) => false,
                    },
                    Ok(response) => {
                        eprintln!("client {c}: HTTP {}: {}", response.status(), response.text().await.unwrap_or_default());
                        false
                    }
                    Err(e) => {
                        eprintln!("client {c}: {e}");
                        false
                    }
                };
                latencies.push(started.elapsed());
                if good {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a client task"));
    }
    shutdown.cancel();
    let _ = serving.await;
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "HTTP load: {clients} clients for {seconds} s: {ok} ok, {failed} errors, {:.0} requests/s",
        ok as f64 / seconds as f64
    );
    report(
        "HTTP round trip (client side)",
        all,
        Duration::from_millis(1000),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let iterations = 1000;

    let agents = server(cluster(1000, 0));
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let read = agents
            .read("kgents://agents")
            .await
            .expect("the read succeeds");
        samples.push(started.elapsed());
        std::hint::black_box(read);
    }
    report(
        "resources/read kgents://agents at 1,000 agents",
        samples,
        Duration::from_millis(20),
    );

    let pheromones = cluster(0, 10_000);
    // The Logos alone, for comparison: what the MCP layer adds is the difference.
    let logos = Logos::new(
        Arc::clone(&pheromones) as Arc<dyn kgents_logos::ClusterView>,
        None,
    );
    let caller = Caller::unrestricted("bench-user");
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let sensed = logos
            .invoke(
                &caller,
                "void.pheromone.sense",
                kgents_logos::Args::new(Scope::Namespace("bench".into())),
            )
            .await
            .expect("sensing succeeds");
        samples.push(started.elapsed());
        std::hint::black_box(sensed);
    }
    report(
        "(Logos::invoke void.pheromone.sense alone, 10,000 pheromones)",
        samples,
        Duration::from_millis(10),
    );
    let field = server(pheromones);
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let sensed = field.call("sense", None).await.expect("the call succeeds");
        samples.push(started.elapsed());
        assert_ne!(sensed.is_error, Some(true));
        std::hint::black_box(sensed);
    }
    report(
        "tools/call sense at 10,000 pheromones",
        samples,
        Duration::from_millis(10),
    );

    let seconds = std::env::var("MCP_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    http_load(server(cluster(1000, 1000)), 50, seconds).await;
}
