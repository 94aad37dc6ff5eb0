//! The `kgents` CLI against a real API server (the testbed), by running the built example
//! binary (`cargo build --example kgents` first; `cargo test` builds it): every core command on
//! real objects, exit codes, the ghost cache with the API server stopped, a corrupt cache file,
//! an Umwelt's denial, and kubectl's plugin discovery.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use kgents::kgents_crds::{Agent, Proposal, Umwelt};
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_in(ghost: &Path, args: &[&str]) -> Run {
    let output: Output = std::process::Command::new(common::kgents_binary())
        .args(args)
        .env("KGENTS_GHOST_DIR", ghost)
        .env("NO_COLOR", "1")
        .output()
        .expect("kgents runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn json_of(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", run.stdout, run.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_through_the_cli() {
    let testbed = kgents_testbed::shared()
        .await
        .expect("the testbed starts (scripts/testbed-build)");
    testbed
        .install_crds(&kgents::kgents_crds::crds())
        .await
        .expect("CRDs install");
    let client = testbed.client().await.unwrap();
    let ns = testbed.create_namespace("cli-wf").await.unwrap();
    let kubeconfig = testbed.kubeconfig_path().to_str().unwrap().to_owned();
    let ghost = tempfile::tempdir().unwrap();
    let k = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", kubeconfig.as_str(), "-n", ns.as_str()];
        all.extend_from_slice(args);
        run_in(ghost.path(), &all)
    };
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let file = "{proposer: p, changeType: CODE_PATCH, target: {kind: File, name: x.rs}}";
    // A cycle is refused before anything is sent, naming the step (exit 2: bad input).
    let cycle = write(
        "cycle.yaml",
        &format!(
            "apiVersion: kgents.io/v1\nkind: Workflow\nmetadata: {{name: loop}}\nspec:\n  steps:\n    - {{name: a, dependsOn: [b], proposal: {file}}}\n    - {{name: b, dependsOn: [a], proposal: {file}}}\n"
        ),
    );
    let run = k(&["workflow", "apply", "-f", &cycle]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("step \"a\"") && run.stderr.contains("cycle"),
        "{}",
        run.stderr
    );
    let run = k(&["workflow", "apply", "-f", "/nonexistent.yaml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);

    let good = write(
        "good.yaml",
        &format!(
            "apiVersion: kgents.io/v1\nkind: Workflow\nmetadata: {{name: pipeline}}\nspec:\n  steps:\n    - {{name: first, proposal: {file}}}\n    - {{name: second, dependsOn: [first], proposal: {file}}}\n"
        ),
    );
    let run = k(&["workflow", "apply", "-f", &good]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("workflow.kgents.io/pipeline") && run.stdout.contains("created"),
        "{}",
        run.stdout
    );
    let run = k(&["workflow", "apply", "-f", &good]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("configured"), "{}", run.stdout);
    let run = k(&["workflow", "get"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("NAMESPACE") && run.stdout.contains("pipeline"),
        "{}",
        run.stdout
    );
    let run = k(&["workflow", "get", "pipeline", "-o", "json"]);
    assert_eq!(json_of(&run)["spec"]["steps"][1]["dependsOn"][0], "first");
    let run = k(&["workflow", "describe", "pipeline"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("STEP") && run.stdout.contains("second"),
        "{}",
        run.stdout
    );
    let run = k(&["workflow", "get", "nowhere"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not found"), "{}", run.stderr);

    let api: Api<kgents::kgents_crds::Workflow> = Api::namespaced(client.clone(), &ns);
    let run = k(&["workflow", "cancel", "pipeline"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(api.get("pipeline").await.unwrap().spec.cancelled);
    let run = k(&["workflow", "retry", "pipeline"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let after = api.get("pipeline").await.unwrap().spec;
    assert_eq!(after.retry_generation, 1);
    assert!(!after.cancelled, "a retry resumes a cancelled workflow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_on_a_real_api_server() {
    let testbed = kgents_testbed::shared()
        .await
        .expect("the testbed starts (scripts/testbed-build)");
    testbed
        .install_crds(&kgents::kgents_crds::crds())
        .await
        .expect("CRDs install");
    let client = testbed.client().await.unwrap();
    let ns = testbed.create_namespace("cli").await.unwrap();
    let kubeconfig = testbed.kubeconfig_path().to_str().unwrap().to_owned();
    let ghost = tempfile::tempdir().unwrap();
    let k = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", kubeconfig.as_str(), "-n", ns.as_str()];
        all.extend_from_slice(args);
        run_in(ghost.path(), &all)
    };

    // Objects to read.
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    for name in ["a-gent", "b-gent"] {
        let agent: Agent = serde_json::from_value(json!({
            "apiVersion": "kgents.io/v1", "kind": "Agent",
            "metadata": {"name": name},
            "spec": {"genus": "B", "replicas": 1},
        }))
        .unwrap();
        agents.create(&PostParams::default(), &agent).await.unwrap();
    }
    let umwelts: Api<Umwelt> = Api::namespaced(client.clone(), &ns);
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

    // get agents, one agent, names, umwelts.
    let run = k(&["get", "agents", "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listed = json_of(&run);
    let names: Vec<&str> = listed["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-gent", "b-gent"]);
    let run = k(&["get", "agents", "b-gent"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("NAMESPACE") && run.stdout.contains("b-gent"),
        "{}",
        run.stdout
    );
    let run = k(&["get", "agents", "-o", "name"]);
    assert_eq!(
        run.stdout,
        "agent.kgents.io/a-gent\nagent.kgents.io/b-gent\n"
    );
    let run = k(&["get", "agents", "z-gent"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let run = k(&["get", "umwelts", "-o", "json"]);
    assert_eq!(
        json_of(&run)["umwelts"][0]["affordances"][0],
        "void.pheromone.sense"
    );

    // emit, then sense the current intensity.
    let run = k(&[
        "emit",
        "warning",
        "--source",
        "a-gent",
        "--intensity",
        "0.8",
        "--target",
        "b-gent",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("emitted"), "{}", run.stdout);
    let run = k(&["get", "pheromones", "-o", "json"]);
    let field = json_of(&run);
    let sensed = &field["pheromones"][0];
    assert_eq!(sensed["pheromone_type"], "WARNING");
    let intensity = sensed["intensity"].as_f64().unwrap();
    assert!(intensity <= 0.8 && intensity > 0.79, "{intensity}");
    assert!(sensed["evaporates_in_seconds"].as_f64().unwrap() > 3000.0);
    let run = k(&[
        "observe", "--type", "warning", "--target", "b-gent", "-o", "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    assert_eq!(lines[0]["source"], "a-gent");
    let run = k(&["observe", "--target", "c-gent"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("No live pheromones"), "{}", run.stderr);
    let run = k(&["emit", "NOT_A_TYPE", "--source", "a-gent"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("WARNING"), "{}", run.stderr);

    // propose: the preview, then filed as the authenticated user; approve; reject.
    let run = k(&[
        "propose",
        "--change-type",
        "AGENT_SCALE",
        "--target-kind",
        "Agent",
        "--target-name",
        "a-gent",
        "--name",
        "scale-a",
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let filed = json_of(&run);
    assert_eq!(filed["server"]["verdict"], "admitted", "{filed}");
    assert!(
        filed["preview"]["risk"]["score"].as_f64().is_some(),
        "{filed}"
    );
    let proposals: Api<Proposal> = Api::namespaced(client.clone(), &ns);
    let stored = proposals.get("scale-a").await.unwrap();
    assert_eq!(
        stored.spec.proposer,
        filed["preview"]["requester"].as_str().unwrap()
    );
    let run = k(&["approve", "scale-a", "--comment", "fine by me"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("approved by"), "{}", run.stdout);
    let stored = proposals.get("scale-a").await.unwrap();
    assert_eq!(
        stored.status.unwrap().approvals[0].comment.as_deref(),
        Some("fine by me")
    );
    let run = k(&["reject", "missing-one"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let run = k(&["get", "proposals", "-o", "wide"]);
    assert!(
        run.stdout.contains("BASE") && run.stdout.contains("scale-a"),
        "{}",
        run.stdout
    );

    // A forbidden target: denied locally, nothing stored.
    let run = k(&[
        "propose",
        "--change-type",
        "CONFIG_UPDATE",
        "--target-kind",
        "Secret",
        "--target-name",
        "creds",
        "--name",
        "steal-creds",
    ]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("denied:"), "{}", run.stdout);
    assert!(proposals.get_opt("steal-creds").await.unwrap().is_none());

    // A malformed patch file names the file and the position; nothing is sent.
    let bad = ghost.path().join("patch.json");
    std::fs::write(&bad, "{\n  \"changeType\": \"AGENT_SCALE\",\n  oops\n}").unwrap();
    let run = k(&["propose", "-f", bad.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("patch.json:3:"), "{}", run.stderr);

    // An Umwelt restricts: b-gent may sense but not list agents; the denial shows its globs.
    let run = k(&["--as-agent", "b-gent", "get", "agents"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("void.pheromone.sense"),
        "{}",
        run.stderr
    );
    let run = k(&["--umwelt", "b-view", "get", "pheromones"]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // tether resolves the agent's ready pod (none here: no pods run without nodes).
    let run = k(&["tether", "a-gent"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("none of its 0 pod(s) is Ready"),
        "{}",
        run.stderr
    );
    assert_eq!(k(&["tether", "z-gent"]).code, 1);

    // Bad input and usage.
    assert_eq!(k(&["get", "agents", "-o", "toml"]).code, 2);
    assert_eq!(k(&["teleport"]).code, 2);
    let run = k(&["invoke", "void.pheromon.sense"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("did you mean void.pheromone.sense"),
        "{}",
        run.stderr
    );
    let run = run_in(
        ghost.path(),
        &["--kubeconfig", "/nonexistent/kubeconfig", "get", "agents"],
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("kgents infra init"), "{}", run.stderr);

    // status: live first (written through to the cache) ...
    let run = k(&["-A", "status", "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("[GHOST]"), "{}", run.stderr);
    let live = json_of(&run);
    assert!(live["agents"]["total"].as_u64().unwrap() >= 2, "{live}");
    let components: Vec<(&str, bool)> = live["cluster"]["components"]
        .as_array()
        .unwrap_or_else(|| panic!("no cluster health: {live}"))
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["healthy"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        components,
        [("operator", false), ("webhook", false)],
        "{live}"
    );
    assert!(ghost.path().join("status/digest.json").exists());
    let run = k(&["ghost", "status"]);
    assert!(
        run.stdout.contains("status/digest.json") && run.stdout.contains("FRESH"),
        "{}",
        run.stdout
    );

    // ... a corrupt cache file is a warning and a live answer ...
    std::fs::write(ghost.path().join("status/digest.json"), "{not json").unwrap();
    let run = k(&["-A", "status", "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("warning: ghost cache file status/digest.json unusable"),
        "{}",
        run.stderr
    );
    assert_eq!(json_of(&run)["agents"]["source"]["live"], true);

    // ... and with the API server stopped, the cache answers with its age.
    testbed.stop_apiserver();
    let run = k(&["-A", "status"]);
    let restarted = testbed.start_apiserver().await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("[GHOST]") && run.stderr.contains("data from"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("AGENTS") && run.stdout.contains("PHEROMONES"),
        "{}",
        run.stdout
    );
    restarted.expect("the API server restarts");
    let run = k(&["-A", "status", "--live", "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(json_of(&run)["agents"]["source"]["live"], true);
    let run = k(&["ghost", "clear"]);
    assert!(run.stdout.contains("removed"), "{}", run.stdout);

    // Completions, and kubectl's plugin discovery.
    let run = k(&["completions", "bash"]);
    assert!(run.stdout.contains("kgents"), "{}", run.stderr);
    let kubectl = PathBuf::from(std::env::var("HOME").unwrap())
        .join(".cache/kgents/testbed")
        .join(kgents_testbed::kubernetes_version())
        .join("kubectl");
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(
        common::kgents_binary(),
        plugins.path().join("kubectl-kgents"),
    )
    .unwrap();
    let output = std::process::Command::new(&kubectl)
        .args([
            "kgents",
            "--kubeconfig",
            &kubeconfig,
            "-n",
            &ns,
            "get",
            "agents",
            "-o",
            "name",
        ])
        .env("PATH", plugins.path())
        .env("KGENTS_GHOST_DIR", ghost.path())
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "agent.kgents.io/a-gent\nagent.kgents.io/b-gent\n"
    );

    // kubectl's completion of plugin arguments runs `kubectl_complete-kgents`.
    std::os::unix::fs::symlink(
        plugins.path().join("kubectl-kgents"),
        plugins.path().join("kubectl_complete-kgents"),
    )
    .unwrap();
    let complete = |words: &[&str]| {
        let output = std::process::Command::new(&kubectl)
            .arg("__complete")
            .arg("kgents")
            .args(words)
            .env("PATH", plugins.path())
            .output()
            .expect("kubectl runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let offered = complete(&["get", ""]);
    for kind in ["agents\n", "pheromones\n", "proposals\n"] {
        assert!(offered.contains(kind), "{offered}");
    }
    assert!(offered.contains(":4\n"), "{offered}");
    let offered = complete(&["get", "agents", "-o", "ya"]);
    assert!(offered.starts_with("yaml\n"), "{offered}");
    let offered = complete(&["sta"]);
    assert!(offered.starts_with("status\t"), "{offered}");
}

/// No cluster, and a cache too old to show: the answer says the cache was refused and why, and
/// suggests `--live` and `kgents infra init` (no testbed needed).
#[test]
fn a_refused_cache_without_a_cluster_says_so() {
    let ghost = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ghost.path().join("status")).unwrap();
    let taken = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(48);
    let envelope = json!({
        "schema_version": 1, "kind": "status_digest", "taken_at": taken.to_string(),
        "data": {"namespaces": []},
    });
    std::fs::write(
        ghost.path().join("status/digest.json"),
        serde_json::to_string(&envelope).unwrap(),
    )
    .unwrap();
    let run = run_in(
        ghost.path(),
        &["--kubeconfig", "/nonexistent/kubeconfig", "status"],
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("refused: cached data is 2d old"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--live") && run.stderr.contains("kgents infra init"),
        "{}",
        run.stderr
    );
}

/// A reader that stops reading (`kgents completions bash | head -1`) ends the command quietly:
/// exit 0, nothing on stderr, no panic. The script is larger than a pipe's buffer, so the
/// command is still writing when the pipe closes (no testbed needed).
#[test]
fn a_reader_that_closes_the_pipe_ends_the_command_quietly() {
    use std::io::Read;
    let mut child = std::process::Command::new(common::kgents_binary())
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kgents runs");
    let mut first = [0_u8; 16];
    child
        .stdout
        .take()
        .expect("stdout piped")
        .read_exact(&mut first)
        .expect("the script begins");
    // The read end is dropped here, with most of the script unwritten.
    let output = child.wait_with_output().expect("kgents ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.is_empty(), "stderr: {stderr}");
}
