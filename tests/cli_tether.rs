//! `kgents tether` end to end on the testbed with fake nodes: the CLI resolves the agent's
//! Ready pod, port-forwards a local port to it through the API server and follows its logs.
//! kwok serves the kubelet side for its fake pods (a port-forward is an echo, the logs are the
//! testbed's pod log file, see `Testbed::pod_log_file`). Ctrl+C (SIGINT) ends both with exit 0.
//! Run after `cargo build --example kgents`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kgents::kgents_crds::Agent;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

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
    let child = Command::new(common::kgents_binary())
        .args(["--kubeconfig", testbed.kubeconfig_path().to_str().unwrap()])
        .args(["-n", &ns, "tether", "t-gent", "--port", &local.to_string()])
        .env("NO_COLOR", "1")
        .env("KGENTS_GHOST_DIR", ghost.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kgents tether starts");
    let mut tether = common::ChildGuard(child);
    let stdout = common::lines_of(tether.0.stdout.take().unwrap());
    let stderr = common::lines_of(tether.0.stderr.take().unwrap());
    let announced = common::wait_for_line(
        &stderr,
        Some(&stdout),
        "tethered to pod",
        Duration::from_secs(20),
    );
    assert!(
        announced.contains(&format!("{ns}/t-gent-0")) && announced.contains("→ 8080"),
        "{announced}"
    );

    // The logs: the line written before, then one appended while following.
    common::wait_for_line(
        &stdout,
        Some(&stderr),
        "agent started",
        Duration::from_secs(20),
    );
    testbed.append_pod_log("thinking about pheromones").unwrap();
    common::wait_for_line(
        &stdout,
        Some(&stderr),
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
    let output = Command::new(common::kgents_binary())
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
