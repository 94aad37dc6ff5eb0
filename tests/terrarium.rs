//! `kgents terrarium` in a real terminal (tmux, found or fetched by `scripts/tmux-ensure`)
//! against the testbed's API server, with the Proposal controller running in-process: a
//! pheromone emitted and a proposal filed with kubectl appear on screen; the proposal is
//! approved from the dashboard (confirmation and comment) and ends Merged; with the API server
//! stopped the `[GHOST]` banner appears and the data stays; with it back, the dashboard is live
//! again. A user who may not watch Events still gets a live dashboard, told why the thought
//! stream stays empty. An agent's log lines follow into the thought stream with `l`. Watching all
//! namespaces, the dashboard writes the ghost cache through, and `kgents status` answers from it
//! with the API server stopped. With a Cortex daemon running, the dashboard is fed by its
//! `Observe` stream (a pheromone on screen within 2 s), and watches by itself once the daemon is
//! killed. Run after
//! `cargo build --workspace --example kgents`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kgents::kgents_crds::proposal::ProposalPhase;
use kgents::kgents_crds::{Agent, Proposal};
use kgents::kgents_operator::{Context, OperatorConfig, proposal};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

fn kubectl() -> PathBuf {
    PathBuf::from(std::env::var("HOME").expect("HOME"))
        .join(".cache/kgents/testbed")
        .join(kgents_testbed::kubernetes_version())
        .join("kubectl")
}

/// Numbers the tmux servers of this process.
static SESSIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A tmux server of our own (its own socket), so nothing else on the machine is touched.
struct Tmux {
    bin: String,
    socket: String,
}

impl Tmux {
    fn start(command: &str, width: u16, height: u16) -> Tmux {
        let out = Command::new(common::repo().join("scripts/tmux-ensure"))
            .output()
            .expect("scripts/tmux-ensure runs");
        assert!(
            out.status.success(),
            "tmux-ensure: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let tmux = Tmux {
            bin,
            socket: format!(
                "kgents-terrarium-{}-{}",
                std::process::id(),
                SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        // Keep the pane after the program exits, to read why.
        tmux.run(&["set-option", "-t", "t", "remain-on-exit", "on"]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .args(["-L", &self.socket])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.run(&["send-keys", "-t", "t", key]);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (at most `limit`) until the screen satisfies `ok`; returns it and the time taken.
    async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> (String, Duration) {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return (screen, started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "{what}: not on screen within {} s:\n{screen}",
                limit.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

fn kubectl_create(kubeconfig: &Path, ns: &str, extra: &[&str], manifest: &serde_json::Value) {
    let mut child = Command::new(kubectl())
        .args([
            "--kubeconfig",
            kubeconfig.to_str().expect("utf-8"),
            "-n",
            ns,
        ])
        .args(extra)
        .args(["create", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(manifest.to_string().as_bytes())
            .expect("manifest written");
    }
    let out = child.wait_with_output().expect("kubectl ends");
    assert!(
        out.status.success(),
        "kubectl create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terrarium_in_a_real_terminal_on_the_testbed() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // With fake nodes: kwok runs an agent's pod and serves its logs (see
    // `Testbed::append_pod_log`).
    let testbed = kgents_testbed::shared_with_nodes()
        .await
        .expect("the testbed with fake nodes starts");
    testbed
        .install_crds(&kgents::kgents_crds::crds())
        .await
        .expect("CRDs install");
    let ns = testbed.create_namespace("terrarium").await.unwrap();
    let admin = testbed.client().await.unwrap();
    // The Proposal controller, as the operator runs it, for this namespace.
    let ctx = Arc::new(Context::new(
        admin.clone(),
        OperatorConfig {
            namespace: Some(ns.clone()),
            ..OperatorConfig::default()
        },
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(proposal::run(ctx, async move {
        let _ = stopped.await;
    }));
    // alice may file proposals here (kubectl --as alice).
    let rbac: serde_json::Value = json!({
        "role": {"metadata": {"name": "proposers"}, "rules": [{"apiGroups": ["kgents.io"],
            "resources": ["proposals"], "verbs": ["create", "get", "list"]}]},
        "binding": {"metadata": {"name": "proposers"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "proposers"},
            "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]},
    });
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(rbac["role"].clone()).unwrap(),
        )
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(rbac["binding"].clone()).unwrap(),
        )
        .await
        .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "memory-index"}, "data": {"layout": "v1"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();

    let ghost = tempfile::tempdir().unwrap();
    let kubeconfig = testbed.kubeconfig_path();
    // All namespaces: the live data is also written through to the ghost cache.
    let command = format!(
        "env KGENTS_GHOST_DIR={} {} --kubeconfig {} -A terrarium",
        ghost.path().display(),
        common::kgents_binary().display(),
        kubeconfig.display()
    );
    let tmux = Tmux::start(&command, 160, 45);
    tmux.wait_for("the live dashboard", Duration::from_secs(20), |s| {
        s.contains("Terrarium") && s.contains("LIVE")
    })
    .await;

    // A pheromone and a proposal, with kubectl; the proposal is a person's HIGH-risk one, so
    // it waits for another person's approval.
    kubectl_create(
        kubeconfig,
        &ns,
        &[],
        &json!({
            "apiVersion": "kgents.io/v1", "kind": "Pheromone",
            "metadata": {"name": "warning-from-b"},
            "spec": {"type": "WARNING", "source": "b-gent", "initialIntensity": 0.9,
                     "halfLifeMinutes": 30},
        }),
    );
    let emitted = Instant::now();
    let (_, took) = tmux
        .wait_for("the pheromone", Duration::from_secs(10), |s| {
            s.contains("1 signals") && s.contains("b-gent")
        })
        .await;
    eprintln!(
        "pheromone on screen {} ms after kubectl returned",
        took.as_millis()
    );
    assert!(emitted.elapsed() < Duration::from_secs(10));
    kubectl_create(
        kubeconfig,
        &ns,
        &["--as", "alice", "--as-group", "system:authenticated"],
        &json!({
            "apiVersion": "kgents.io/v1", "kind": "Proposal",
            "metadata": {"name": "migrate-index"},
            "spec": {"proposer": "alice", "changeType": "MEMORY_MIGRATE",
                     "target": {"apiVersion": "v1", "kind": "ConfigMap", "name": "memory-index"},
                     "patch": {"type": "merge", "content": "{\"data\":{\"layout\":\"v2\"}}"}},
        }),
    );
    let (_, took) = tmux
        .wait_for("the proposal", Duration::from_secs(10), |s| {
            s.contains("migrate-index")
        })
        .await;
    eprintln!(
        "proposal on screen {} ms after kubectl returned",
        took.as_millis()
    );
    tmux.wait_for(
        "the proposal waiting for review",
        Duration::from_secs(30),
        |s| s.contains("Reviewing"),
    )
    .await;

    // Approve from the dashboard: the Proposals panel, Enter for the detail, `a`, a comment,
    // Enter to confirm.
    tmux.keys(&["Tab", "Tab"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("the factor breakdown", Duration::from_secs(5), |s| {
        s.contains("RISK FACTORS") && s.contains("layout")
    })
    .await;
    tmux.keys(&["a"]);
    tmux.wait_for("the confirmation", Duration::from_secs(5), |s| {
        s.contains("Approve")
    })
    .await;
    tmux.run(&["send-keys", "-t", "t", "-l", "checked from the terrarium"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("the approval", Duration::from_secs(15), |s| {
        s.contains("approved ")
    })
    .await;
    let proposals: Api<Proposal> = Api::namespaced(admin.clone(), &ns);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = proposals.get("migrate-index").await.unwrap();
        let status = p.status.unwrap_or_default();
        if status.phase == Some(ProposalPhase::Merged) {
            assert!(
                status
                    .approvals
                    .iter()
                    .any(|a| a.comment.as_deref() == Some("checked from the terrarium")),
                "{:?}",
                status.approvals
            );
            break;
        }
        assert!(Instant::now() < deadline, "not Merged: {status:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let layout = config_maps.get("memory-index").await.unwrap();
    assert_eq!(layout.data.unwrap_or_default()["layout"], "v2");
    tmux.wait_for("the Merged phase", Duration::from_secs(10), |s| {
        s.contains("Merged")
    })
    .await;

    // An agent's log lines in the thought stream: `l` on the Agents panel follows its Ready pod
    // (made Ready by kwok, which serves the testbed's pod log file as its log).
    let agent: Agent = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Agent",
        "metadata": {"name": "l-gent"},
        "spec": {"genus": "L", "replicas": 1},
    }))
    .unwrap();
    Api::<Agent>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &agent)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "l-gent-0", "labels": {
            "app.kubernetes.io/name": "kgents-agent",
            "app.kubernetes.io/instance": "l-gent",
        }},
        "spec": {"containers": [{"name": "agent", "image": "kgents/agent:fake"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pods
        .get("l-gent-0")
        .await
        .unwrap()
        .status
        .and_then(|s| s.conditions)
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    {
        assert!(Instant::now() < deadline, "the pod never became Ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    testbed
        .append_pod_log("l-gent: indexed 3 memories")
        .unwrap();
    tmux.wait_for("the agent", Duration::from_secs(10), |s| {
        s.contains("l-gent")
    })
    .await;
    // The focus is on Proposals (two Tabs above): back to Agents, then follow.
    tmux.keys(&["BTab", "BTab", "l"]);
    tmux.wait_for("the followed log", Duration::from_secs(10), |s| {
        s.contains("· logs of") && s.contains("indexed 3 memories")
    })
    .await;
    testbed.append_pod_log("l-gent: sensed a WARNING").unwrap();
    let (_, took) = tmux
        .wait_for("a new log line", Duration::from_secs(10), |s| {
            s.contains("sensed a WARNING")
        })
        .await;
    eprintln!(
        "log line on screen {} ms after it was written",
        took.as_millis()
    );
    tmux.keys(&["l"]);
    tmux.wait_for("the end of following", Duration::from_secs(5), |s| {
        s.contains("stopped following") && !s.contains("· logs of")
    })
    .await;

    // A user who may watch the dashboard's kinds but not Events: live, and the thought stream
    // says why it stays empty.
    let viewer: serde_json::Value = json!({
        "role": {"metadata": {"name": "viewer"}, "rules": [{"apiGroups": ["kgents.io"],
            "resources": ["agents", "pheromones", "proposals"], "verbs": ["get", "list", "watch"]}]},
        "binding": {"metadata": {"name": "viewer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "viewer"},
            "subjects": [{"kind": "User", "name": "viewer", "apiGroup": "rbac.authorization.k8s.io"}]},
    });
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(viewer["role"].clone()).unwrap(),
        )
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(viewer["binding"].clone()).unwrap(),
        )
        .await
        .unwrap();
    let mut as_viewer = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    for user in &mut as_viewer.auth_infos {
        if let Some(auth) = user.auth_info.as_mut() {
            auth.impersonate = Some("viewer".into());
            auth.impersonate_groups = Some(vec!["system:authenticated".into()]);
        }
    }
    let viewer_config = ghost.path().join("viewer.kubeconfig");
    std::fs::write(&viewer_config, serde_json::to_string(&as_viewer).unwrap()).unwrap();
    let viewer_tmux = Tmux::start(
        &format!(
            "env KGENTS_GHOST_DIR={} {} --kubeconfig {} -n {ns} terrarium",
            ghost.path().display(),
            common::kgents_binary().display(),
            viewer_config.display()
        ),
        160,
        45,
    );
    viewer_tmux
        .wait_for("the viewer's dashboard", Duration::from_secs(20), |s| {
            s.contains("LIVE") && s.contains("stays empty") && s.contains("migrate-index")
        })
        .await;
    viewer_tmux.keys(&["q"]);
    drop(viewer_tmux);

    // With a Cortex daemon running, the dashboard reads the daemon's Observe stream instead of
    // watching: a pheromone emitted with kubectl is on screen within 2 s; with the daemon
    // killed, the dashboard watches the API server itself.
    let socket = ghost.path().join("cortex.sock");
    let mut daemon = Command::new(common::kgents_binary())
        .args([
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "cortex",
            "serve",
        ])
        .env("KGENTS_GHOST_DIR", ghost.path().join("daemon-ghost"))
        .env("KGENTS_CORTEX_SOCKET", &socket)
        .env("RUST_LOG", "kgents_cortex=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kgents cortex serve starts");
    let daemon_log = common::lines_of(daemon.stderr.take().unwrap());
    common::wait_for_line(&daemon_log, None, "serving unix:", Duration::from_secs(20));
    let daemon = common::ChildGuard(daemon);
    let cortex_tmux = Tmux::start(
        &format!(
            "env KGENTS_GHOST_DIR={} KGENTS_CORTEX_SOCKET={} {} --kubeconfig {} -n {ns} terrarium",
            ghost.path().join("cortex-ghost").display(),
            socket.display(),
            common::kgents_binary().display(),
            kubeconfig.display()
        ),
        160,
        45,
    );
    cortex_tmux
        .wait_for(
            "the dashboard fed by the daemon",
            Duration::from_secs(20),
            |s| {
                s.contains("LIVE via cortex")
                    && s.contains("migrate-index")
                    && s.contains("l-gent")
                    && s.contains("2 signals")
            },
        )
        .await;
    kubectl_create(
        kubeconfig,
        &ns,
        &[],
        &json!({
            "apiVersion": "kgents.io/v1", "kind": "Pheromone",
            "metadata": {"name": "intent-from-c"},
            "spec": {"type": "INTENT", "source": "c-gent", "initialIntensity": 0.8,
                     "halfLifeMinutes": 30},
        }),
    );
    let (_, took) = cortex_tmux
        .wait_for(
            "the pheromone through the daemon",
            Duration::from_secs(2),
            |s| s.contains("3 signals"),
        )
        .await;
    eprintln!(
        "pheromone on screen through the Cortex {} ms after kubectl returned",
        took.as_millis()
    );
    drop(daemon);
    cortex_tmux
        .wait_for(
            "direct watches once the daemon is gone",
            Duration::from_secs(20),
            |s| s.contains("LIVE") && !s.contains("via cortex") && s.contains("3 signals"),
        )
        .await;
    cortex_tmux.keys(&["q"]);
    drop(cortex_tmux);

    // The dashboard wrote its data through to the ghost cache (the first write right after the
    // first full list, then at most every 15 s), the status digest included.
    for file in [
        "agents/_index.json",
        "pheromones/active.json",
        "proposals/pending.json",
        "status/digest.json",
    ] {
        assert!(ghost.path().join(file).exists(), "{file} was not written");
    }
    // l-gent (Pending: named as needing attention) arrives with a later write.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(ghost.path().join("status/digest.json"))
        .unwrap_or_default()
        .contains("l-gent")
    {
        assert!(Instant::now() < deadline, "the digest never named l-gent");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The API server stops: the banner, and the data stays.
    let _ = stop.send(());
    let _ = controller.await;
    testbed.stop_apiserver();
    // The CLI answers from what the dashboard wrote.
    let status = Command::new(common::kgents_binary())
        .args(["--kubeconfig", kubeconfig.to_str().unwrap(), "-A", "status"])
        .env("KGENTS_GHOST_DIR", ghost.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("kgents status runs");
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success() && stdout.contains("AGENTS      1 total"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let (screen, _) = tmux
        .wait_for("the ghost banner", Duration::from_secs(20), |s| {
            s.contains("[GHOST]")
        })
        .await;
    let restarted = testbed.start_apiserver().await;
    assert!(
        screen.contains("migrate-index") && screen.contains("3 signals"),
        "the data stays:\n{screen}"
    );
    restarted.expect("the API server restarts");
    tmux.wait_for("live again", Duration::from_secs(60), |s| {
        s.contains("LIVE") && !s.contains("[GHOST]")
    })
    .await;

    // q quits and gives the terminal back.
    tmux.keys(&["q"]);
    tmux.wait_for("the program's exit", Duration::from_secs(10), |s| {
        !s.contains("Terrarium")
    })
    .await;
}
