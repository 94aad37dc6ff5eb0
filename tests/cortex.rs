//! `kgents cortex serve` against a real API server (the testbed), run as the built binary
//! (`cargo build --example kgents` first; `scripts/test` does it), driven by a gRPC client
//! nobody here wrote (`grpcurl`, built by `scripts/grpcurl` into `~/.cache/kgents/grpcurl`) and
//! by the crate's own tonic client.
//!
//! Covered: reflection (list, describe), Invoke, GetStatus and health through grpcurl; Invoke
//! of every registered path; bad input (unknown path with suggestions, malformed args naming
//! the field, an oversized request); a restricted caller denied with the explanation; Observe
//! seeing a pheromone another client emitted within 1 s, with its decayed intensity; a reader
//! that stops reading dropped with RESOURCE_EXHAUSTED while others are served; a second daemon
//! refused; the ghost snapshots refreshed by the daemon; the CLI's `status` through the daemon,
//! from the cache once the daemon is killed, and through the daemon again after a restart that
//! replaces the stale socket; plain-text TCP on loopback only; Events of kgents objects and
//! agent changes through Observe; the Prometheus metrics; the API server lost and back;
//! `time.witness.<agent>.replay` served from a witness file another writer (as the operator
//! would) holds open and appends to while the daemon reads it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kgents::kgents_cortex::client;
use kgents::kgents_cortex::pb::{self, cortex_client::CortexClient};
use kgents::kgents_crds::{Agent, Umwelt};
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

use common::{ChildGuard, lines_of, wait_for_line};

/// The grpcurl binary (built once per machine by the script).
fn grpcurl() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::installed_by("grpcurl"))
}

/// Runs grpcurl on the socket; returns (exit code, stdout, stderr).
fn grpcurl_on(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(grpcurl())
        .args(["-unix", "-plaintext", "-max-time", "10"])
        .args(args.iter().take_while(|a| **a != "--"))
        .arg(socket)
        .args(args.iter().skip_while(|a| **a != "--").skip(1))
        .output()
        .expect("grpcurl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Env {
    kubeconfig: String,
    socket: PathBuf,
    ghost: PathBuf,
}

impl Env {
    fn kgents(&self) -> Command {
        let mut command = Command::new(common::kgents_binary());
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env("KGENTS_GHOST_DIR", &self.ghost)
            .env("KGENTS_CORTEX_SOCKET", &self.socket)
            .env("NO_COLOR", "1");
        command
    }

    /// Starts the daemon (with `extra` flags) and waits until it listens; returns it and the
    /// line saying where.
    fn start_daemon(&self, extra: &[&str]) -> (ChildGuard, String) {
        let mut child = self
            .kgents()
            .args(["cortex", "serve", "--buffer", "64"])
            .args(extra)
            .env("RUST_LOG", "kgents_cortex=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kgents cortex serve starts");
        let stderr = lines_of(child.stderr.take().unwrap());
        let ready = wait_for_line(&stderr, None, "serving unix:", Duration::from_secs(20));
        // Keep draining its log so that it never blocks on a full pipe.
        std::thread::spawn(move || while stderr.recv().is_ok() {});
        (ChildGuard(child), ready)
    }

    /// `kgents status -o json`: (exit code, report, stderr).
    fn status(&self) -> (i32, Value, String) {
        let out = self
            .kgents()
            .args(["status", "-o", "json"])
            .output()
            .expect("kgents runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), report, stderr)
    }
}

/// A plain HTTP/1.1 GET; the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("the metrics endpoint answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

async fn cortex(socket: &Path) -> CortexClient<Channel> {
    client::connect(socket, Duration::from_secs(5))
        .await
        .expect("the daemon answers on its socket")
}

fn invoke(path: &str, namespace: &str, args: Value) -> pb::InvokeRequest {
    pb::InvokeRequest {
        path: path.into(),
        args_json: if args.is_null() {
            String::new()
        } else {
            args.to_string()
        },
        namespace: namespace.into(),
        ..Default::default()
    }
}

/// Waits until the daemon's watches have listed everything (a read answers).
async fn until_listed(client: &mut CortexClient<Channel>, namespace: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = match client
            .invoke(invoke("void.pheromone.sense", namespace, Value::Null))
            .await
        {
            Ok(_) => match client
                .invoke(invoke(
                    "world.cluster.proposals.manifest",
                    namespace,
                    Value::Null,
                ))
                .await
            {
                Ok(_) => match client
                    .invoke(invoke(
                        "world.cluster.agents.manifest",
                        namespace,
                        Value::Null,
                    ))
                    .await
                {
                    Ok(_) => return,
                    Err(s) => s,
                },
                Err(s) => s,
            },
            Err(s) => s,
        };
        assert!(
            Instant::now() < deadline,
            "the daemon never listed everything: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cortex_daemon_on_a_real_api_server() {
    let testbed = kgents_testbed::shared()
        .await
        .expect("the testbed starts (scripts/testbed-build)");
    testbed
        .install_crds(&kgents::kgents_crds::crds())
        .await
        .expect("CRDs install");
    let kube_client = testbed.client().await.unwrap();
    let ns = testbed.create_namespace("cortex").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = Env {
        kubeconfig: testbed.kubeconfig_path().to_str().unwrap().to_owned(),
        socket: dir.path().join("run").join("cortex.sock"),
        ghost: dir.path().join("ghost"),
    };

    let agents: Api<Agent> = Api::namespaced(kube_client.clone(), &ns);
    for name in ["a-gent", "b-gent"] {
        let agent: Agent = serde_json::from_value(json!({
            "apiVersion": "kgents.io/v1", "kind": "Agent",
            "metadata": {"name": name},
            "spec": {"genus": "B", "replicas": 1},
        }))
        .unwrap();
        agents.create(&PostParams::default(), &agent).await.unwrap();
    }
    let umwelts: Api<Umwelt> = Api::namespaced(kube_client.clone(), &ns);
    let umwelt: Umwelt = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Umwelt",
        "metadata": {"name": "b-view"},
        "spec": {"agent": "b-gent", "affordances": ["void.pheromone.sense"]},
    }))
    .unwrap();
    umwelts
        .create(&PostParams::default(), &umwelt)
        .await
        .unwrap();

    // The witness record, written by this test as the operator would (its writer stays open
    // while the daemon reads the file).
    let witness_path = dir.path().join("witness").join("witness.redb");
    let witness = kgents::kgents_seance::RedbWitnessStore::open(&witness_path).unwrap();
    let a_gent = kgents::kgents_seance::AgentRef::new(ns.as_str(), "a-gent");
    let spec_record = |replicas: i64| kgents::kgents_seance::NewRecord {
        agent: a_gent.clone(),
        at: jiff::Timestamp::now(),
        kind: kgents::kgents_seance::RecordKind::SpecChanged {
            generation: Some(replicas),
            diff: json!([{"op": "replace", "path": "", "value": {"genus": "B", "replicas": replicas}}]),
        },
    };
    witness.append_blocking(vec![spec_record(1)]).unwrap();

    // The daemon, and a second one refused while it runs.
    let (daemon, _) = env.start_daemon(&["--witness-store", witness_path.to_str().unwrap()]);
    let mode = std::fs::metadata(&env.socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    let second = env
        .kgents()
        .args(["cortex", "serve"])
        .output()
        .expect("kgents runs");
    assert_eq!(second.status.code(), Some(2));
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("already listening on"), "{said}");

    let mut rpc = cortex(&env.socket).await;
    until_listed(&mut rpc, &ns).await;

    // grpcurl: reflection, describe, Invoke, GetStatus, health, a bad path.
    let (code, out, err) = grpcurl_on(&env.socket, &["--", "list"]);
    assert_eq!(code, 0, "{err}");
    for service in [
        "kgents.cortex.v1.Cortex",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(out.lines().any(|l| l == service), "{service} not in {out}");
    }
    // The v1alpha reflection service answers too (grpcui, evans and Postman use it).
    let (code, out, err) = grpcurl_on(
        &env.socket,
        &[
            "-d",
            r#"{"list_services": ""}"#,
            "--",
            "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kgents.cortex.v1.Cortex"), "{out}");
    let (code, out, err) = grpcurl_on(&env.socket, &["--", "describe", "kgents.cortex.v1.Cortex"]);
    assert_eq!(code, 0, "{err}");
    for rpc in [
        "rpc Invoke",
        "rpc GetStatus",
        "rpc GetSnapshot",
        "rpc Observe",
    ] {
        assert!(out.contains(rpc), "{rpc} not in {out}");
    }
    assert!(
        out.contains("returns ( stream .kgents.cortex.v1.ObserveEvent )"),
        "{out}"
    );
    let request = json!({"path": "world.cluster.agents.manifest", "namespace": ns}).to_string();
    let (code, out, err) = grpcurl_on(
        &env.socket,
        &["-d", &request, "--", "kgents.cortex.v1.Cortex/Invoke"],
    );
    assert_eq!(code, 0, "{err}");
    let answer: Value = serde_json::from_str(&out).expect("grpcurl prints JSON");
    assert_eq!(answer["kind"], "agents");
    assert_eq!(answer["source"]["layer"], "cortex");
    let result: Value = serde_json::from_str(answer["resultJson"].as_str().unwrap()).unwrap();
    let names: Vec<&str> = result["data"]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-gent", "b-gent"]);
    let request = json!({"namespace": ns}).to_string();
    let (code, out, err) = grpcurl_on(
        &env.socket,
        &["-d", &request, "--", "kgents.cortex.v1.Cortex/GetStatus"],
    );
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["agents"], 2, "{out}");
    let (code, out, err) = grpcurl_on(
        &env.socket,
        &[
            "-d",
            r#"{"service":""}"#,
            "--",
            "grpc.health.v1.Health/Check",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SERVING"), "{out}");
    let (code, out, err) = grpcurl_on(
        &env.socket,
        &[
            "-d",
            r#"{"service":"kgents.cortex.v1.Cortex"}"#,
            "--",
            "grpc.health.v1.Health/Check",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SERVING"), "{out}");
    let request = json!({"path": "world.cluster.agent.manifest"}).to_string();
    let (code, _, err) = grpcurl_on(
        &env.socket,
        &["-d", &request, "--", "kgents.cortex.v1.Cortex/Invoke"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("InvalidArgument"), "{err}");
    assert!(
        err.contains("did you mean world.cluster.agents.manifest"),
        "{err}"
    );
    let (code, _, err) = grpcurl_on(&env.socket, &["--", "kgents.cortex.v1.Cortex/Forget"]);
    assert_ne!(code, 0);
    assert!(err.contains("Forget"), "{err}");

    // Every registered path through Invoke.
    let registry = kgents::kgents_core::agentese::Registry::seed();
    let mut seen = Vec::new();
    for entry in registry.entries() {
        let template = entry.template().to_string();
        let path = template
            .replace("<agent>", "a-gent")
            .replace("<proposal>", "scale-a");
        let (args, expected): (Value, Result<&str, Code>) = match template.as_str() {
            "world.cluster.agents.manifest" => (Value::Null, Ok("agents")),
            "world.cluster.agents.<agent>.manifest" => (Value::Null, Ok("agent")),
            "void.pheromone.sense" => (json!({"types": ["WARNING"]}), Ok("sensed")),
            "void.pheromone.emit" => (
                json!({"pheromone_type": "INTENT", "source": "a-gent", "intensity": 0.5}),
                Ok("emitted"),
            ),
            "self.deployment.define" => (
                json!({"name": "scale-a", "spec": {"changeType": "AGENT_SCALE", "proposer": "",
                    "target": {"kind": "Agent", "name": "a-gent", "apiVersion": "kgents.io/v1"},
                    "description": "two replicas"}}),
                Ok("filed"),
            ),
            "world.cluster.proposals.manifest" => (Value::Null, Ok("proposals")),
            "world.cluster.proposals.<proposal>.approve" => {
                (json!({"comment": "checked"}), Ok("decided"))
            }
            "world.cluster.proposals.<proposal>.reject" => {
                (json!({"comment": "changed my mind"}), Ok("decided"))
            }
            "world.cluster.memories.manifest" => (Value::Null, Ok("memories")),
            "world.cluster.umwelts.manifest" => (Value::Null, Ok("umwelts")),
            // No pod runs on the testbed: no Ready pod to tether to, said as such.
            "world.cluster.agents.<agent>.tether" => (Value::Null, Err(Code::Unavailable)),
            "world.cluster.workflow.define" => (
                json!({"name": "cortex-flow", "spec": {"steps": [{"name": "a", "proposal": {
                    "proposer": "p", "changeType": "CODE_PATCH",
                    "target": {"kind": "File", "name": "x.rs"}}}]}}),
                Ok("workflow"),
            ),
            // Served from the witness file given to the daemon.
            "time.witness.<agent>.replay" => (Value::Null, Ok("replay")),
            // This daemon was started without a model (the TLS test below has one).
            "concept.define" => (json!({"term": "umwelt"}), Err(Code::FailedPrecondition)),
            "concept.blend.forge" => (
                json!({"a": "ant", "b": "map"}),
                Err(Code::FailedPrecondition),
            ),
            "concept.refine" => (json!({"text": "hello"}), Err(Code::FailedPrecondition)),
            other => panic!("a registered path this test does not know: {other}"),
        };
        let answer = rpc.invoke(invoke(&path, &ns, args)).await;
        match (answer, expected) {
            (Ok(response), Ok(kind)) => {
                let response = response.into_inner();
                assert_eq!(response.kind, kind, "{path}: {}", response.result_json);
                let result: Value = serde_json::from_str(&response.result_json).unwrap();
                assert_eq!(result["kind"], kind);
            }
            (Err(status), Err(code)) => {
                assert_eq!(status.code(), code, "{path}: {status:?}");
                // The explanation names what it is about.
                let message = status.message();
                assert!(
                    message.contains(&path)
                        || message.contains("agent cortex-") && message.contains("/a-gent"),
                    "{path}: {status:?}"
                );
            }
            (got, want) => panic!("{path}: got {got:?}, wanted {want:?}"),
        }
        seen.push(template);
    }
    assert!(seen.len() >= 16, "{seen:?}");

    // The replay reads what the writer commits after the daemon opened the file.
    witness.append_blocking(vec![spec_record(2)]).unwrap();
    let replay = rpc
        .invoke(invoke(
            "time.witness.a-gent.replay",
            &ns,
            json!({"step": true}),
        ))
        .await
        .expect("replay")
        .into_inner();
    let replay: Value = serde_json::from_str(&replay.result_json).unwrap();
    assert_eq!(replay["data"]["records"], 2, "{replay}");
    assert_eq!(replay["data"]["state"]["spec"]["replicas"], 2, "{replay}");
    assert_eq!(
        replay["data"]["steps"].as_array().map(Vec::len),
        Some(2),
        "{replay}"
    );
    drop(witness);

    // Bad input: malformed args naming the field, a field the path does not take, too large.
    let status = rpc
        .invoke(pb::InvokeRequest {
            path: "void.pheromone.sense".into(),
            args_json: r#"{"types": [WARNING]}"#.into(),
            ..Default::default()
        })
        .await
        .expect_err("malformed");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("args_json is not JSON"),
        "{status:?}"
    );
    let status = rpc
        .invoke(invoke(
            "void.pheromone.sense",
            &ns,
            json!({"colour": "red"}),
        ))
        .await
        .expect_err("unknown field");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("colour"), "{status:?}");
    let huge = pb::InvokeRequest {
        path: "void.pheromone.sense".into(),
        args_json: format!("{{\"source\": \"{}\"}}", "x".repeat(2 * 1024 * 1024)),
        ..Default::default()
    };
    let status = rpc.invoke(huge).await.expect_err("too large");
    assert!(
        matches!(status.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{status:?}"
    );

    // A restricted caller: denied with the explanation, granted what its Umwelt affords.
    let b_view = pb::Caller {
        umwelt: "b-view".into(),
        namespace: ns.clone(),
        ..Default::default()
    };
    let mut denied = invoke("world.cluster.agents.manifest", &ns, Value::Null);
    denied.caller = Some(b_view.clone());
    let status = rpc.invoke(denied).await.expect_err("not afforded");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("b-view") && status.message().contains("void.pheromone.sense"),
        "{status:?}"
    );
    let mut granted = invoke("void.pheromone.sense", &ns, Value::Null);
    granted.caller = Some(b_view.clone());
    rpc.invoke(granted).await.expect("afforded");
    let as_agent = pb::Caller {
        as_agent: "b-gent".into(),
        namespace: ns.clone(),
        ..Default::default()
    };
    let mut denied = invoke(
        "void.pheromone.emit",
        &ns,
        json!({"pheromone_type": "WARNING"}),
    );
    denied.caller = Some(as_agent);
    assert_eq!(
        rpc.invoke(denied).await.expect_err("not afforded").code(),
        Code::PermissionDenied
    );
    let status = rpc
        .observe(pb::ObserveRequest {
            namespace: ns.clone(),
            kinds: vec!["agent".into()],
            caller: Some(b_view.clone()),
        })
        .await
        .expect_err("agents not afforded");
    assert_eq!(status.code(), Code::PermissionDenied);

    // Observe: a pheromone emitted by another client (the CLI) arrives within 1 s, decayed.
    let mut stream = rpc
        .observe(pb::ObserveRequest {
            namespace: ns.clone(),
            kinds: vec!["pheromone".into()],
            caller: Some(b_view.clone()),
        })
        .await
        .expect("pheromones are afforded")
        .into_inner();
    // A second subscriber that never reads, with small HTTP/2 windows so that flow control
    // pushes back on the daemon after a few kilobytes (hyper's default is megabytes).
    let small = tonic::transport::Endpoint::from_static("http://cortex.local")
        .initial_stream_window_size(Some(8 * 1024))
        .initial_connection_window_size(Some(8 * 1024));
    let mut slow_client = client::connect_via(small, &env.socket, Duration::from_secs(5))
        .await
        .expect("connects");
    let slow = slow_client
        .observe(pb::ObserveRequest {
            namespace: ns.clone(),
            ..Default::default()
        })
        .await
        .expect("subscribed")
        .into_inner();
    // Let both subscriptions settle and the earlier emits pass.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), stream.next()).await {}
    let emitted = env
        .kgents()
        .args([
            "-n",
            &ns,
            "emit",
            "warning",
            "--source",
            "b-gent",
            "--intensity",
            "0.8",
            "--half-life",
            "1",
            "--name",
            "observed-1",
        ])
        .output()
        .unwrap();
    assert!(
        emitted.status.success(),
        "{}",
        String::from_utf8_lossy(&emitted.stderr)
    );
    let since = Instant::now();
    let event = loop {
        let next = tokio::time::timeout(Duration::from_secs(1), stream.next())
            .await
            .expect("the pheromone arrives within 1 s of its emission")
            .expect("the stream goes on")
            .expect("an event");
        if next.name == "observed-1" {
            break next;
        }
    };
    assert!(since.elapsed() < Duration::from_secs(1));
    assert_eq!(event.kind, "pheromone");
    assert_eq!(event.change, "applied");
    assert!(
        event.intensity < 0.8 && event.intensity > 0.7,
        "decayed from 0.8 with a one-minute half-life: {}",
        event.intensity
    );
    let sensed: Value = serde_json::from_str(&event.data_json).unwrap();
    assert_eq!(sensed["pheromone_type"], "WARNING");

    // The reader that never reads is dropped (the daemon buffers 64 changes per subscriber,
    // after what HTTP/2 flow control holds); the one that reads gets every change. The flood
    // goes out in waves of 32, each sent once the reader has seen the wave before, so the
    // reader is never more than one wave behind however loaded the machine is, while the one
    // that never reads falls 600 behind.
    const FLOOD: usize = 600;
    const WAVE: usize = 32;
    let (read_so_far, mut progress) = tokio::sync::watch::channel(0_usize);
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < FLOOD {
            match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                Ok(Some(Ok(event))) if event.name.starts_with("flood-") => {
                    got += 1;
                    read_so_far.send_replace(got);
                }
                Ok(Some(Ok(_))) => {}
                other => return Err(format!("lost the stream after {got}: {other:?}")),
            }
        }
        Ok(got)
    });
    let mut creates = Vec::with_capacity(FLOOD);
    for wave in (0..FLOOD).step_by(WAVE) {
        // Until the previous wave has been read (or the reader failed, which its result
        // below reports).
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            progress.wait_for(|&read| read >= wave),
        )
        .await;
        let sent = futures::stream::iter(wave..(wave + WAVE).min(FLOOD))
            .map(|i| {
                let mut rpc = rpc.clone();
                let ns = ns.clone();
                async move {
                    rpc.invoke(invoke(
                        "void.pheromone.emit",
                        &ns,
                        json!({"pheromone_type": "STATE", "source": "a-gent", "intensity": 0.3,
                               "name": format!("flood-{i}")}),
                    ))
                    .await
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        creates.extend(sent);
    }
    assert!(
        creates.iter().all(Result::is_ok),
        "{:?}",
        creates.iter().find(|r| r.is_err())
    );
    let ended = tokio::time::timeout(
        Duration::from_secs(10),
        slow.filter_map(|item| futures::future::ready(item.err()))
            .next(),
    )
    .await
    .expect("the slow reader's stream ends")
    .expect("with a status");
    assert_eq!(ended.code(), Code::ResourceExhausted, "{ended:?}");
    assert!(ended.message().contains("did not keep up"), "{ended:?}");
    assert_eq!(reader.await.unwrap(), Ok(FLOOD), "the reading subscriber");

    // The ghost snapshots are refreshed by the daemon (no CLI ran since the new agent).
    let c_gent: Agent = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Agent",
        "metadata": {"name": "c-gent"},
        "spec": {"genus": "C", "replicas": 1},
    }))
    .unwrap();
    agents
        .create(&PostParams::default(), &c_gent)
        .await
        .unwrap();
    let index = env.ghost.join("agents/_index.json");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&index).unwrap_or_default();
        if text.contains("c-gent") {
            let written: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(written["kind"], "agents_index", "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agents/_index.json never listed c-gent: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for file in [
        "pheromones/active.json",
        "proposals/pending.json",
        "cluster/status.json",
        "status/digest.json",
    ] {
        assert!(env.ghost.join(file).exists(), "{file} not written");
    }

    // The CLI through the daemon; from the cache when it is killed; through it after a restart.
    let (code, report, err) = env.status();
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["agents"]["source"]["layer"], "cortex", "{report}");
    assert_eq!(report["field"]["source"]["layer"], "cortex", "{report}");
    drop(rpc);
    drop(slow_client);
    drop(daemon); // SIGKILL: the socket file stays behind, stale.
    assert!(env.socket.exists(), "a killed daemon leaves its socket");
    let (code, report, err) = env.status();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        report["agents"]["source"]["layer"], "ghost-cache",
        "{report}\n{err}"
    );
    // No operator runs here: the agents have no phase yet, so all three need attention.
    let names: Vec<&str> = report["agents"]["attention"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["namespace"] == ns.as_str())
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-gent", "b-gent", "c-gent"]);
    let (mut daemon, ready) =
        env.start_daemon(&["--tcp", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]);
    let mut rpc = cortex(&env.socket).await;
    until_listed(&mut rpc, &ns).await;
    let (code, report, err) = env.status();
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["agents"]["source"]["layer"], "cortex", "{report}");

    // Plain-text TCP on loopback as well (grpcurl), and never beyond loopback.
    let addr = ready
        .split("and tcp ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the ready line names the TCP address")
        .to_owned();
    let out = Command::new(grpcurl())
        .args([
            "-plaintext",
            "-max-time",
            "10",
            "-d",
            r#"{"service":""}"#,
            &addr,
        ])
        .arg("grpc.health.v1.Health/Check")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SERVING"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let open = env
        .kgents()
        .args(["cortex", "serve", "--tcp", "0.0.0.0:0", "--socket"])
        .arg(dir.path().join("other.sock"))
        .output()
        .unwrap();
    assert_eq!(open.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&open.stderr).contains("is not a loopback address"),
        "{}",
        String::from_utf8_lossy(&open.stderr)
    );

    // The metrics: requests by method, path template and code; cache sizes.
    let metrics_addr = ready
        .split("metrics at http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("the ready line names the metrics address")
        .to_owned();
    let text = http_get(&metrics_addr, "/metrics");
    for needle in [
        r#"kgents_cortex_requests_total{method="Invoke",path="world.cluster.agents.manifest",code="Ok"}"#,
        r#"kgents_cortex_requests_total{method="GetSnapshot",path="",code="Ok"}"#,
        r#"kgents_cortex_request_duration_seconds_bucket{le="#,
        "kgents_cortex_observe_subscribers 0",
        r#"kgents_cortex_cached_objects{kind="agents"}"#,
    ] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }

    // Events of kgents objects arrive as thoughts, agent changes as agent events.
    let mut stream = rpc
        .observe(pb::ObserveRequest {
            namespace: ns.clone(),
            kinds: vec!["event".into(), "agent".into()],
            caller: None,
        })
        .await
        .expect("subscribed")
        .into_inner();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events: Api<KubeEvent> = Api::namespaced(kube_client.clone(), &ns);
    let event: KubeEvent = serde_json::from_value(json!({
        "metadata": {"name": "probe-a-gent"},
        "eventTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        "regarding": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": "a-gent", "namespace": ns},
        "reason": "ProbeFailed", "note": "no answer within 30 s", "type": "Warning",
        "reportingController": "kgents.io/operator", "reportingInstance": "test",
        "action": "Probe"
    }))
    .unwrap();
    events.create(&PostParams::default(), &event).await.unwrap();
    let d_gent: Agent = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Agent",
        "metadata": {"name": "d-gent"},
        "spec": {"genus": "D", "replicas": 1},
    }))
    .unwrap();
    agents
        .create(&PostParams::default(), &d_gent)
        .await
        .unwrap();
    let (mut thought, mut agent) = (None, None);
    while thought.is_none() || agent.is_none() {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("the Event and the agent arrive")
            .expect("the stream goes on")
            .expect("an event");
        match next.kind.as_str() {
            "event" => thought = Some(next),
            "agent" if next.name == "d-gent" => agent = Some(next),
            _ => {}
        }
    }
    let thought: Value = serde_json::from_str(&thought.unwrap().data_json).unwrap();
    assert_eq!(thought["object"], "Agent/a-gent");
    assert_eq!(thought["reason"], "ProbeFailed");
    assert_eq!(thought["warning"], true);
    assert_eq!(agent.unwrap().change, "applied");

    // The API server lost: the daemon stops answering as live, the CLI answers from the
    // cache (which the daemon kept); back, and the daemon answers again.
    testbed.stop_apiserver();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, report, err) = env.status();
        if code == 0 && report["agents"]["source"]["layer"] == "ghost-cache" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still answered as live without an API server: {code} {report}\n{err}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    testbed
        .start_apiserver()
        .await
        .expect("the API server restarts");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, report, err) = env.status();
        if code == 0 && report["agents"]["source"]["layer"] == "cortex" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not come back: {code} {report}\n{err}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // SIGTERM: a graceful stop, open streams ended, the socket removed.
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(daemon.0.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = daemon.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    assert!(!env.socket.exists(), "a stopped daemon removes its socket");
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the open stream ends with the daemon");
    assert!(!matches!(ended, Some(Ok(_))), "{ended:?}");
}

/// A model server speaking the OpenAI chat-completions wire format: every request is answered
/// with `content` (and a token count). Returns its base URL and how many requests it saw.
async fn fake_model(
    content: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160}
    })
    .to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            let hits = counted.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 8192];
                // The headers, then as many body bytes as Content-Length says.
                loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                hits.fetch_add(1, Ordering::SeqCst);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (base, hits)
}

/// Runs grpcurl against a TCP address with `flags`, then `call` (its own flags, then the verb
/// or method last); (exit code, stdout, stderr).
fn grpcurl_tcp(flags: &[&str], addr: &str, call: &[&str]) -> (i32, String, String) {
    let (verb, call_flags) = call.split_last().expect("a verb or method");
    let out = Command::new(grpcurl())
        .args(["-max-time", "10"])
        .args(flags)
        .args(call_flags)
        .arg(addr)
        .arg(verb)
        .output()
        .expect("grpcurl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_with_tls_and_a_token_and_the_model_paths() {
    let testbed = kgents_testbed::shared()
        .await
        .expect("the testbed starts (scripts/testbed-build)");
    testbed
        .install_crds(&kgents::kgents_crds::crds())
        .await
        .expect("CRDs install");
    let ns = testbed.create_namespace("cortex-tls").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = Env {
        kubeconfig: testbed.kubeconfig_path().to_str().unwrap().to_owned(),
        socket: dir.path().join("tls.sock"),
        ghost: dir.path().join("ghost"),
    };
    let ca = kgents_testbed::pki::CertificateAuthority::new("cortex-test-ca").unwrap();
    let serving = ca.loopback_serving_cert().unwrap();
    let files = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (ca_file, cert, key) = (
        files("ca.pem", &ca.cert_pem()),
        files("tls.crt", &serving.cert_pem),
        files("tls.key", &serving.key_pem),
    );
    let token = "cortex-test-token-5f1e2d3c4b5a6978";
    let token_file = files("token", &format!("{token}\n"));

    // A non-loopback address: refused without TLS, and with TLS but no token.
    let refused = env
        .kgents()
        .args([
            "cortex",
            "serve",
            "--tcp",
            "0.0.0.0:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ])
        .env_remove("KGENTS_CORTEX_TOKEN")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("give a bearer token too"), "{said}");

    // With both, on every interface, and a model behind concept.*.
    let (model_url, model_hits) = fake_model(
        r#"{"term": "umwelt", "definition": "What an agent may perceive and do.", "examples": ["b-view"], "related": ["affordance"]}"#,
    )
    .await;
    let (_daemon, ready) = env.start_daemon(&[
        "--tcp",
        "0.0.0.0:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--token-file",
        &token_file,
        "--model-provider",
        "openai",
        "--model",
        "m",
        "--model-endpoint",
        &model_url,
        "--token-budget",
        "1000",
        "--health",
        "127.0.0.1:0",
    ]);
    let port = ready
        .split("and tcp ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.rsplit(':').next())
        .expect("the ready line names the TCP address")
        .to_owned();
    let addr = format!("127.0.0.1:{port}");
    until_listed(&mut cortex(&env.socket).await, &ns).await;
    let bearer = format!("authorization: Bearer {token}");
    let tls = ["-cacert", ca_file.as_str()];
    let authed = ["-cacert", ca_file.as_str(), "-H", bearer.as_str()];

    // grpcurl over TLS with the token: reflection lists the services, Invoke answers.
    let (code, out, err) = grpcurl_tcp(&authed, &addr, &["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l == "kgents.cortex.v1.Cortex"), "{out}");
    let request = json!({"path": "world.cluster.agents.manifest", "namespace": ns}).to_string();
    let (code, out, err) = grpcurl_tcp(
        &authed,
        &addr,
        &["-d", &request, "kgents.cortex.v1.Cortex/Invoke"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"kind\": \"agents\""), "{out}");
    // No token, a wrong one: Unauthenticated, saying why. Health stays open (kubelet probes).
    let (code, _, err) = grpcurl_tcp(
        &tls,
        &addr,
        &["-d", &request, "kgents.cortex.v1.Cortex/Invoke"],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("Unauthenticated") && err.contains("no bearer token"),
        "{err}"
    );
    let (code, _, err) = grpcurl_tcp(&tls, &addr, &["list"]);
    assert_ne!(code, 0, "reflection needs the token too");
    assert!(err.contains("Unauthenticated"), "{err}");
    let (code, _, err) = grpcurl_tcp(
        &[
            "-cacert",
            &ca_file,
            "-H",
            "authorization: Bearer cortex-test-token-wrong-000000",
        ],
        &addr,
        &["-d", &request, "kgents.cortex.v1.Cortex/Invoke"],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("Unauthenticated") && err.contains("wrong"),
        "{err}"
    );
    // Health answers without a token (the schema saved with the token, since reflection needs
    // one), and alone in plain text on the --health listener kubelet's probes use.
    let protoset = dir.path().join("health.protoset");
    let saved = Command::new(grpcurl())
        .args(authed)
        .arg("-protoset-out")
        .arg(&protoset)
        .args([addr.as_str(), "describe", "grpc.health.v1.Health"])
        .output()
        .unwrap();
    assert!(
        saved.status.success(),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    let (code, out, err) = grpcurl_tcp(
        &["-cacert", &ca_file, "-protoset", protoset.to_str().unwrap()],
        &addr,
        &["-d", r#"{"service":""}"#, "grpc.health.v1.Health/Check"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SERVING"), "{out}");
    let health_addr = ready
        .split("health at ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("the ready line names the health address")
        .to_owned();
    let (code, out, err) = grpcurl_tcp(
        &["-plaintext", "-protoset", protoset.to_str().unwrap()],
        &health_addr,
        &[
            "-d",
            r#"{"service":"kgents.cortex.v1.Cortex"}"#,
            "grpc.health.v1.Health/Check",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SERVING"), "{out}");
    let (code, _, _) = grpcurl_tcp(&["-plaintext", "-H", &bearer], &health_addr, &["list"]);
    assert_ne!(
        code, 0,
        "the health listener serves health alone, no reflection"
    );
    // A plain-text client to the TLS port gets nowhere.
    let (code, out, err) = grpcurl_tcp(&["-plaintext", "-H", &bearer], &addr, &["list"]);
    assert_ne!(code, 0, "plain text answered: {out}");
    assert!(!out.contains("kgents.cortex.v1.Cortex"), "{out}\n{err}");

    // The CLI's daemon layer over TCP: $KGENTS_CORTEX_URL, _CA and _TOKEN (no socket here).
    let out = env
        .kgents()
        .args(["status", "-o", "json"])
        .env("KGENTS_CORTEX_SOCKET", dir.path().join("absent.sock"))
        .env("KGENTS_CORTEX_URL", format!("https://localhost:{port}"))
        .env("KGENTS_CORTEX_CA", &ca_file)
        .env("KGENTS_CORTEX_TOKEN", token)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        report["agents"]["source"]["layer"],
        "cortex",
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The crate's client over TLS with the token: concept.define through the Cortex.
    let token = kgents::kgents_cortex::auth::BearerToken::new(token, "test").unwrap();
    let mut remote = client::connect_url(
        &format!("https://localhost:{port}"),
        Some(Path::new(&ca_file)),
        Some(&token),
        Duration::from_secs(5),
    )
    .await
    .expect("the TLS client connects");
    let answer = remote
        .invoke(invoke(
            "concept.define",
            &ns,
            json!({"term": "umwelt", "context": "K8-gents"}),
        ))
        .await
        .expect("concept.define answers")
        .into_inner();
    assert_eq!(answer.kind, "concept");
    let result: Value = serde_json::from_str(&answer.result_json).unwrap();
    let data = &result["data"];
    assert_eq!(data["answer"]["type"], "definition", "{result}");
    assert_eq!(data["answer"]["related"], json!(["affordance"]));
    assert_eq!(data["usage"]["total"], 160);
    assert_eq!(
        (
            data["usage"]["budget"].as_u64(),
            data["usage"]["left"].as_u64()
        ),
        (Some(1000), Some(840))
    );
    assert_eq!(model_hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The same client without the token is turned away.
    let mut anonymous = client::connect_url(
        &format!("https://localhost:{port}"),
        Some(Path::new(&ca_file)),
        None,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let status = anonymous
        .invoke(invoke("world.cluster.agents.manifest", &ns, Value::Null))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
}

/// Every document of `deploy/cortex/<file>`, as JSON.
fn deploy_documents(file: &str) -> Vec<Value> {
    let path = common::repo().join("deploy").join("cortex").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split("\n---")
        .map(str::trim)
        .filter(|d| !d.is_empty() && *d != "---")
        .map(|d| serde_saphyr::from_str::<Value>(d).unwrap_or_else(|e| panic!("{file}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_manifests_match_the_code_and_pass_a_dry_run() {
    use kgents::kgents_cortex::rbac::{
        self, CORTEX_NAME, CORTEX_NAMESPACE, GRPC_PORT, METRICS_PORT,
    };
    use kube::api::{ApiResource, DynamicObject};

    let rbac_docs = deploy_documents("rbac.yaml");
    let deploy_docs = deploy_documents("deployment.yaml");
    let find = |docs: &[Value], kind: &str| -> Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == CORTEX_NAME)
            .unwrap_or_else(|| panic!("no {kind} {CORTEX_NAME} in deploy/cortex"))
            .clone()
    };
    // The ClusterRole grants exactly what the code needs.
    let role = find(&rbac_docs, "ClusterRole");
    assert_eq!(
        role["rules"],
        serde_json::to_value(rbac::required_rules()).unwrap(),
        "deploy/cortex/rbac.yaml differs from kgents_cortex::rbac::required_rules()"
    );
    let binding = find(&rbac_docs, "ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["name"], CORTEX_NAME);
    assert_eq!(binding["subjects"][0]["namespace"], CORTEX_NAMESPACE);
    assert_eq!(
        find(&rbac_docs, "ServiceAccount")["metadata"]["namespace"],
        CORTEX_NAMESPACE
    );

    // The Deployment runs `kgents cortex serve` with TLS, the token and the health listener
    // the probes reach; the files it names are where the Secrets are mounted.
    let deployment = find(&deploy_docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], CORTEX_NAME);
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| *a == name)
            .and_then(|i| args.get(i + 1).copied())
            .unwrap_or_else(|| panic!("{name} not in {args:?}"))
    };
    assert_eq!(&args[..2], ["cortex", "serve"]);
    assert_eq!(flag("--tcp"), format!("0.0.0.0:{GRPC_PORT}"));
    assert_eq!(flag("--metrics"), format!("0.0.0.0:{METRICS_PORT}"));
    let health_port: u16 = flag("--health")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let port_of = |name: &str| {
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("no port {name}"))
    };
    assert_eq!(port_of("grpc"), u64::from(GRPC_PORT));
    assert_eq!(port_of("health"), u64::from(health_port));
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            container[probe]["grpc"]["port"],
            u64::from(health_port),
            "{probe}"
        );
    }
    let mounts = container["volumeMounts"].as_array().unwrap();
    for (file_flag, secret) in [
        ("--tls-cert", "kgents-cortex-tls"),
        ("--tls-key", "kgents-cortex-tls"),
        ("--token-file", "kgents-cortex-token"),
    ] {
        let file = flag(file_flag);
        let mount = mounts
            .iter()
            .find(|m| file.starts_with(m["mountPath"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("{file} is in no mounted volume"));
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        assert_eq!(volume["secret"]["secretName"], secret, "{file_flag}");
    }
    let socket_dir = std::path::Path::new(flag("--socket"))
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        mounts.iter().any(|m| m["mountPath"] == socket_dir.as_str()),
        "the socket's directory is writable"
    );
    let service = find(&deploy_docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["port"], u64::from(GRPC_PORT));
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "grpc");

    // A real API server accepts every document (server-side dry run: validated, not stored).
    let testbed = kgents_testbed::shared().await.expect("testbed");
    let admin = testbed.client().await.expect("admin");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    let mut namespace = k8s_openapi::api::core::v1::Namespace::default();
    namespace.metadata.name = Some(CORTEX_NAMESPACE.to_owned());
    match namespaces.create(&PostParams::default(), &namespace).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("creating {CORTEX_NAMESPACE}: {e}"),
    }
    let dry_run = PostParams {
        dry_run: true,
        field_manager: Some("kgents-deploy-test".to_owned()),
    };
    let mut kinds = Vec::new();
    for doc in rbac_docs.into_iter().chain(deploy_docs) {
        use k8s_openapi::api::{apps::v1 as apps, core::v1 as core, rbac::v1 as rbac_v1};
        let kind = doc["kind"].as_str().unwrap().to_owned();
        let resource = match kind.as_str() {
            "ServiceAccount" => ApiResource::erase::<core::ServiceAccount>(&()),
            "Service" => ApiResource::erase::<core::Service>(&()),
            "Deployment" => ApiResource::erase::<apps::Deployment>(&()),
            "ClusterRole" => ApiResource::erase::<rbac_v1::ClusterRole>(&()),
            "ClusterRoleBinding" => ApiResource::erase::<rbac_v1::ClusterRoleBinding>(&()),
            other => panic!("deploy/cortex holds a {other}; teach this test its API resource"),
        };
        let object: DynamicObject = serde_json::from_value(doc).unwrap();
        let api: Api<DynamicObject> = match &object.metadata.namespace {
            Some(ns) => Api::namespaced_with(admin.clone(), ns, &resource),
            None => Api::all_with(admin.clone(), &resource),
        };
        api.create(&dry_run, &object)
            .await
            .unwrap_or_else(|e| panic!("deploy/cortex: {kind} is refused: {e}"));
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Service",
            "ServiceAccount"
        ]
    );
}
