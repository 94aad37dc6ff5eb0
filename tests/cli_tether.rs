//! `kgents tether` end to end on the testbed with fake nodes: the CLI resolves the agent's
//! Ready pod, port-forwards a local port to it through the API server and follows its logs.
//! kwok serves the kubelet side for its fake pods (a port-forward is an echo, the logs are the
//! testbed's pod log file, see `Testbed::pod_log_file`). Ctrl+C (SIGINT) ends both with exit 0.
//! Run after `cargo build --example kgents`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kgents::kgents_crds::Agent;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/debug")
        .join("examples")
        .join("kgents");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --example kgents`",
        path.display()
    );
    path
}

/// Kills the tether process if the test fails before it ends it.
struct Tether(Child);

impl Drop for Tether {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines read from a pipe on a thread, so that waiting for one has a deadline.
fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for a line of `rx` containing `needle`; on failure shows every line seen there and
/// what the other stream (`other`) said meanwhile.
fn wait_for_line(
    rx: &mpsc::Receiver<String>,
    other: &mpsc::Receiver<String>,
    needle: &str,
    within: Duration,
) -> String {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    let others: Vec<String> = other.try_iter().collect();
    panic!(
        "no line with {needle:?} within {within:?}; saw {seen:#?}; the other stream said {others:#?}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tether_forwards_a_port_and_follows_the_logs_of_the_agents_ready_pod() {
    let testbed = kgents_testbed::shared_with_nodes()
        .await
        .expect("the testbed with fake nodes starts (scripts/testbed-build)");
    testbed
        .install_crds(&kgents::kgents_crds::crds())
        .await
        .expect("CRDs install");
    let client = testbed.client().await.unwrap();
    let ns = testbed.create_namespace("tether").await.unwrap();
    let ghost = tempfile::tempdir().unwrap();

    // An agent and a pod carrying its labels (what the operator's Deployment would run),
    // scheduled onto a fake node and made Ready by kwok.
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    let agent: Agent = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Agent",
        "metadata": {"name": "t-gent"},
        "spec": {"genus": "B", "replicas": 1},
    }))
    .unwrap();
    agents.create(&PostParams::default(), &agent).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "t-gent-0", "labels": {
            "app.kubernetes.io/name": "kgents-agent",
            "app.kubernetes.io/instance": "t-gent",
        }},
        "spec": {"containers": [{
            "name": "agent", "image": "kgents/agent:fake",
            "ports": [{"containerPort": 8080}],
        }]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pod = pods.get("t-gent-0").await.unwrap();
        let ready = pod
            .status
            .and_then(|s| s.conditions)
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "the pod never became Ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Lines already in the log before the tether starts: `--tail` shows them.
    testbed.append_pod_log("agent started").unwrap();

    let local = free_port();
    let child = Command::new(binary())
        .args(["--kubeconfig", testbed.kubeconfig_path().to_str().unwrap()])
        .args(["-n", &ns, "tether", "t-gent", "--port", &local.to_string()])
        .env("NO_COLOR", "1")
        .env("KGENTS_GHOST_DIR", ghost.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kgents tether starts");
    let mut tether = Tether(child);
    let stdout = lines_of(tether.0.stdout.take().unwrap());
    let stderr = lines_of(tether.0.stderr.take().unwrap());
    let announced = wait_for_line(&stderr, &stdout, "tethered to pod", Duration::from_secs(20));
    assert!(
        announced.contains(&format!("{ns}/t-gent-0")) && announced.contains("→ 8080"),
        "{announced}"
    );

    // The logs: the line written before, then one appended while following.
    wait_for_line(&stdout, &stderr, "agent started", Duration::from_secs(20));
    testbed.append_pod_log("thinking about pheromones").unwrap();
    wait_for_line(
        &stdout,
        &stderr,
        "thinking about pheromones",
        Duration::from_secs(20),
    );

    // The port-forward: two connections in turn, each echoed through the API server and kwok.
    for message in ["hello through the tether\n", "and again\n"] {
        let mut socket = TcpStream::connect(("127.0.0.1", local)).expect("the local port listens");
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        socket.write_all(message.as_bytes()).unwrap();
        let mut echoed = vec![0; message.len()];
        socket
            .read_exact(&mut echoed)
            .expect("the pod's port answers through the forward");
        assert_eq!(String::from_utf8_lossy(&echoed), message);
    }

    // Ctrl+C ends both cleanly.
    let signalled = Command::new("kill")
        .args(["-INT", &tether.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(signalled.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = tether.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "kgents tether did not end on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "exit status {status:?}");

    // A pod that is not Ready: exit 4 with the reason (unavailable).
    agents
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "kgents.io/v1", "kind": "Agent",
                "metadata": {"name": "u-gent"},
                "spec": {"genus": "B", "replicas": 1},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let output = Command::new(binary())
        .args(["--kubeconfig", testbed.kubeconfig_path().to_str().unwrap()])
        .args(["-n", &ns, "tether", "u-gent"])
        .env("NO_COLOR", "1")
        .env("KGENTS_GHOST_DIR", ghost.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("none of its 0 pod(s) is Ready"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
