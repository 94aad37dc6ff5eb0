//! `kgents mcp` against a real API server (the testbed), driven by MCP clients nobody here
//! wrote: the Python `mcp` SDK (both protocol eras) and the official MCP inspector CLI, over
//! stdio and streamable HTTP. They are installed by `scripts/mcp-clients` into
//! `~/.cache/kgents/mcp` (idempotent). Build the binary first: `cargo build --example kgents`.
//!
//! Covered: listing tools, resources (paged over 1,000 agents) and templates, reading every
//! resource, calling every tool; read-only mode (write tools absent, a forced call refused);
//! Umwelt scoping; the byte cap; a Secret's value (also planted in an agent's condition) never
//! appearing in any output; bad input (unknown URI, invalid arguments, malformed and oversized
//! JSON-RPC, a client gone mid-call, a missing or wrong bearer token) without the server
//! failing for anyone else.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kgents::kgents_crds::{Agent, Umwelt};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// The planted credential: it must never leave the server.
const SECRET: &str = "kgents-planted-credential-7f3a9c1e5b";

/// The clients' directory (installed once per test binary).
fn clients() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::installed_by("mcp-clients"))
}

/// Everything any client printed, to search for the planted credential at the end.
static SEEN: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

fn seen(text: &str) {
    SEEN.lock().unwrap().push_str(text);
}

/// Runs the Python SDK driver (`tests/mcp_client.py`) on a plan; returns its report.
fn python(plan: Value) -> Value {
    let mut child = Command::new(clients().join("venv/bin/python"))
        .arg(common::repo().join("tests/mcp_client.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(plan.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    seen(&stdout);
    seen(&stderr);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("the Python client's report is not JSON ({e}):\n{stdout}\nstderr:\n{stderr}\nplan: {plan}")
    })
}

/// Runs the inspector CLI; returns (exit code, stdout as JSON or text, stderr).
fn inspector(target: &[String], method_args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(clients().join("node_modules/.bin/mcp-inspector"))
        .arg("--cli")
        .args(["--format", "json", "-q"])
        .args(method_args)
        .args(target)
        .output()
        .expect("the inspector runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    seen(&stdout);
    seen(&stderr);
    // `--format json` prints {"result": …} or {"error": …}.
    let value: Value = serde_json::from_str(&stdout).unwrap_or(Value::String(stdout));
    let value = match value.get("result") {
        Some(result) => result.clone(),
        None => value,
    };
    (out.status.code().unwrap_or(-1), value, stderr)
}

/// The steps every stdio/HTTP run takes: list everything, read each resource, call the read
/// tools, and the bad inputs.
fn read_steps(ns: &str) -> Value {
    json!([
        {"op": "list_tools"},
        {"op": "list_templates"},
        {"op": "list_resources"},
        {"op": "read", "uri": "kgents://agents"},
        {"op": "read", "uri": format!("kgents://agents/{ns}/b-gent")},
        {"op": "read", "uri": "kgents://pheromones"},
        {"op": "read", "uri": "kgents://pheromones/WARNING"},
        {"op": "read", "uri": "kgents://proposals"},
        {"op": "read", "uri": format!("kgents://proposals/{ns}/scale-a")},
        {"op": "read", "uri": "kgents://cluster/status"},
        {"op": "call", "name": "status", "args": {}},
        {"op": "call", "name": "sense", "args": {"types": ["WARNING"]}},
        {"op": "call", "name": "invoke", "args": {"path": "world.cluster.umwelts.manifest"}},
        {"op": "call", "name": "invoke", "args": {"path": "world.cluster.agents.b-gent.manifest", "detail": "full"}},
        // Bad input.
        {"op": "read", "uri": "kgents://nothing/here"},
        {"op": "read", "uri": format!("kgents://agents/{ns}/nobody")},
        {"op": "call", "name": "sense", "args": {"limit": "many"}},
        {"op": "call", "name": "emit", "args": {"pheromone_type": "WARNING", "source": "a-gent"}},
        {"op": "call", "name": "invoke", "args": {"path": "void.pheromone.emit", "input": {"pheromone_type": "WARNING", "source": "a-gent"}}},
    ])
}

fn ok(report: &Value, i: usize) -> &Value {
    let r = &report["results"][i];
    assert_eq!(r["ok"], true, "step {i} failed: {r}");
    &r["result"]
}

fn err(report: &Value, i: usize) -> String {
    let r = &report["results"][i];
    assert_eq!(r["ok"], false, "step {i} should fail: {r}");
    r["error"].as_str().unwrap().to_owned()
}

/// The JSON document of a read result.
fn doc(result: &Value) -> Value {
    serde_json::from_str(
        result["contents"][0]["text"]
            .as_str()
            .expect("text contents"),
    )
    .unwrap()
}

fn tool_names(result: &Value) -> Vec<String> {
    result["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn tool_text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

fn check_read_report(report: &Value, ns: &str, era: &str) {
    assert_eq!(report["protocol_version"], era, "{report}");
    assert_eq!(
        tool_names(ok(report, 0)),
        ["status", "sense", "invoke"],
        "read-only lists no write tool"
    );
    for tool in ok(report, 0)["tools"].as_array().unwrap() {
        assert!(
            tool["inputSchema"]["type"] == "object" && tool["outputSchema"]["type"] == "object",
            "{tool}"
        );
        assert_eq!(tool["annotations"]["readOnlyHint"], true, "{tool}");
    }
    let templates: Vec<&str> = ok(report, 1)["resourceTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uriTemplate"].as_str().unwrap())
        .collect();
    assert_eq!(
        templates,
        [
            "kgents://agents/{namespace}/{name}",
            "kgents://pheromones/{type}",
            "kgents://proposals/{namespace}/{name}"
        ]
    );
    let uris: Vec<&str> = ok(report, 2)["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    for uri in [
        "kgents://agents",
        "kgents://pheromones",
        "kgents://proposals",
        "kgents://cluster/status",
    ] {
        assert!(uris.contains(&uri), "{uris:?}");
    }
    assert!(
        uris.contains(&format!("kgents://agents/{ns}/b-gent").as_str()),
        "{uris:?}"
    );
    assert!(
        uris.contains(&format!("kgents://proposals/{ns}/scale-a").as_str()),
        "{uris:?}"
    );

    let agents = doc(ok(report, 3));
    assert_eq!(agents["total"], 2, "{agents}");
    assert_eq!(agents["items"][1]["name"], "b-gent");
    let b = doc(ok(report, 4));
    assert_eq!(b["agent"]["summary"]["name"], "b-gent", "{b}");
    assert!(
        b["agent"]["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("[redacted]"),
        "{b}"
    );
    let pheromones = doc(ok(report, 5));
    assert!(pheromones["total"].as_u64().unwrap() >= 2, "{pheromones}");
    let warnings = doc(ok(report, 6));
    assert!(
        warnings["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["type"] == "WARNING"),
        "{warnings}"
    );
    assert_eq!(doc(ok(report, 7))["total"], 1);
    let proposal = doc(ok(report, 8));
    assert_eq!(proposal["proposal"]["name"], "scale-a", "{proposal}");
    let status = doc(ok(report, 9));
    assert_eq!(status["agents"]["total"], 2, "{status}");
    assert!(status["cluster"]["server_version"].is_string(), "{status}");

    let status = ok(report, 10);
    assert!(tool_text(status).contains("agents: 2"), "{status}");
    assert_eq!(status["structuredContent"]["agents"]["total"], 2);
    let sensed = &ok(report, 11)["structuredContent"];
    assert!(
        sensed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["type"] == "WARNING"),
        "{sensed}"
    );
    assert_eq!(
        ok(report, 12)["structuredContent"]["items"][0]["name"],
        "b-view"
    );
    let agent = &ok(report, 13)["structuredContent"];
    assert_eq!(agent["kind"], "agent", "{agent}");

    let unknown = err(report, 14);
    assert!(
        unknown.contains("kgents://agents/{namespace}/{name}")
            && unknown.contains("not a kgents resource"),
        "{unknown}"
    );
    let missing = err(report, 15);
    assert!(
        missing.contains("nobody") && missing.contains("not found"),
        "{missing}"
    );
    let invalid = ok(report, 16);
    assert_eq!(invalid["isError"], true, "{invalid}");
    assert!(tool_text(invalid).contains("field \"limit\""), "{invalid}");
    let forced = err(report, 17);
    assert!(forced.contains("read-only"), "{forced}");
    let through_invoke = ok(report, 18);
    assert_eq!(through_invoke["isError"], true, "{through_invoke}");
    assert!(
        tool_text(through_invoke).contains("read-only"),
        "{through_invoke}"
    );
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `kgents mcp --http 127.0.0.1:0 …` and waits for the address it prints.
fn http_server(base: &[String], extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(common::kgents_binary())
        .args(base)
        .arg("mcp")
        .args(extra)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("kgents mcp: serving ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        seen(&rest);
    });
    Server { child, url }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_clients_against_a_real_api_server() {
    let testbed = kgents_testbed::shared()
        .await
        .expect("the testbed starts (scripts/testbed-build)");
    testbed
        .install_crds(&kgents::kgents_crds::crds())
        .await
        .expect("CRDs install");
    let client = testbed.client().await.unwrap();
    let ns = testbed.create_namespace("mcp").await.unwrap();
    let crowd = testbed.create_namespace("crowd").await.unwrap();
    let kubeconfig = testbed.kubeconfig_path().to_str().unwrap().to_owned();
    let kgents = common::kgents_binary().to_str().unwrap().to_owned();
    let base = |namespace: &str| -> Vec<String> {
        vec![
            "--kubeconfig".into(),
            kubeconfig.clone(),
            "-n".into(),
            namespace.into(),
        ]
    };
    let stdio = |namespace: &str, extra: &[&str]| -> Value {
        let mut command = vec![kgents.clone()];
        command.extend(base(namespace));
        command.push("mcp".into());
        command.extend(extra.iter().map(|s| (*s).to_owned()));
        json!({"command": command})
    };
    clients();

    // The objects: two agents (b-gent's condition carries the credential), a Secret holding it,
    // an Umwelt, and 1,000 agents in another namespace.
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
    agents
        .patch_status(
            "b-gent",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Degraded", "conditions": [{
                "type": "Ready", "status": "False", "reason": "ProbeFailed",
                "message": format!("probe rejected: Authorization: Bearer {SECRET}"),
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }]}})),
        )
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "model-credentials"},
        "stringData": {"token": SECRET, "password": SECRET},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let umwelts: Api<Umwelt> = Api::namespaced(client.clone(), &ns);
    let umwelt: Umwelt = serde_json::from_value(json!({
        "apiVersion": "kgents.io/v1", "kind": "Umwelt",
        "metadata": {"name": "b-view"},
        "spec": {"agent": "b-gent", "affordances": ["void.pheromone.sense", "world.cluster.agents.manifest"]},
    }))
    .unwrap();
    umwelts
        .create(&PostParams::default(), &umwelt)
        .await
        .unwrap();
    let crowd_agents: Api<Agent> = Api::namespaced(client.clone(), &crowd);
    let created = futures::stream::iter(0..1000)
        .map(|i| {
            let api = crowd_agents.clone();
            async move {
                let agent: Agent = serde_json::from_value(json!({
                    "apiVersion": "kgents.io/v1", "kind": "Agent",
                    "metadata": {"name": format!("agent-{i:04}")},
                    "spec": {"genus": "B", "replicas": 1},
                }))
                .unwrap();
                api.create(&PostParams::default(), &agent).await.map(|_| ())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert!(created.iter().all(Result::is_ok), "1,000 agents created");

    // Writes, with --allow-writes over stdio (2026-07-28): emit twice, propose (dry run only,
    // then filed), and the invalid inputs of the write tools.
    let report = python(json!({
        "server": stdio(&ns, &["--allow-writes", "--watch-interval", "0.3"]),
        "mode": "auto",
        "steps": [
            {"op": "list_tools"},
            {"op": "call", "name": "emit", "args": {"pheromone_type": "warning", "source": "a-gent", "target": "b-gent", "intensity": 0.8, "payload": format!("token={SECRET}")}},
            {"op": "call", "name": "emit", "args": {"pheromone_type": "DREAM", "source": "b-gent"}},
            {"op": "call", "name": "propose", "args": {"dry_run": true, "spec": {"changeType": "AGENT_SCALE", "target": {"kind": "Agent", "name": "a-gent", "apiVersion": "kgents.io/v1"}, "description": "two replicas"}}},
            {"op": "call", "name": "propose", "args": {"name": "scale-a", "spec": {"changeType": "AGENT_SCALE", "target": {"kind": "Agent", "name": "a-gent", "apiVersion": "kgents.io/v1"}, "description": "two replicas"}}},
            {"op": "call", "name": "emit", "args": {"pheromone_type": "LOUD", "source": "a-gent"}},
            {"op": "call", "name": "emit", "args": {"pheromone_type": "WARNING", "source": "a-gent", "intensity": 7}},
            {"op": "call", "name": "propose", "args": {"spec": {"changeType": "AGENT_SCALE"}}},
            {"op": "listen", "uris": ["kgents://pheromones", "kgents://pheromones/INTENT"], "delay": 1.5, "seconds": 3,
             "then": {"op": "call", "name": "emit", "args": {"pheromone_type": "INTENT", "source": "a-gent", "intensity": 0.2}}},
        ],
    }));
    assert_eq!(report["protocol_version"], "2026-07-28");
    assert_eq!(
        tool_names(ok(&report, 0)),
        ["status", "sense", "emit", "propose", "invoke"]
    );
    let emitted = &ok(&report, 1)["structuredContent"];
    assert_eq!(emitted["pheromone_type"], "WARNING", "{emitted}");
    assert!(
        tool_text(ok(&report, 1)).starts_with("emitted WARNING"),
        "{}",
        report["results"][1]
    );
    let dry = &ok(&report, 3)["structuredContent"];
    assert!(dry["preview"]["risk"]["score"].is_number(), "{dry}");
    assert_eq!(dry["dry_run"]["verdict"], "admitted", "{dry}");
    assert!(dry["filed"].is_null(), "a dry run files nothing: {dry}");
    let filed = &ok(&report, 4)["structuredContent"];
    assert_eq!(filed["filed"]["name"], "scale-a", "{filed}");
    assert_eq!(filed["filed"]["server"]["verdict"], "admitted", "{filed}");
    for (step, field) in [(5, "pheromone_type"), (6, "intensity"), (7, "spec")] {
        let r = ok(&report, step);
        assert_eq!(r["isError"], true, "{r}");
        let text = tool_text(r);
        assert!(
            text.contains(field) || (field == "intensity" && text.contains("intensity 7")),
            "step {step}: {text}"
        );
    }

    let listened = ok(&report, 8);
    let events = listened["events"].to_string();
    assert!(
        events.contains("kgents://pheromones/INTENT")
            && events.matches("kgents://pheromones").count() >= 2,
        "2026-07-28 subscriptions/listen: {listened}"
    );
    // The 2025-11-25 era: resources/subscribe, then notifications/resources/updated.
    let report = python(json!({
        "server": stdio(&ns, &["--allow-writes", "--watch-interval", "0.3"]),
        "mode": "legacy",
        "steps": [
            {"op": "subscribe", "uri": "kgents://proposals", "sleep": 1.5},
            {"op": "call", "name": "propose", "args": {"name": "scale-b", "spec": {"changeType": "AGENT_SCALE", "target": {"kind": "Agent", "name": "b-gent", "apiVersion": "kgents.io/v1"}}}, "sleep": 3},
            {"op": "subscribe", "uri": "kgents://proposals?all=true"},
        ],
    }));
    ok(&report, 0);
    assert_eq!(
        ok(&report, 1)["structuredContent"]["filed"]["name"],
        "scale-b",
        "{report}"
    );
    let notes = report["notifications"].to_string();
    assert!(
        notes.contains("ResourceUpdated") && notes.contains("kgents://proposals"),
        "legacy resources/subscribe: {notes}"
    );
    assert!(
        notes.contains("ResourceListChanged"),
        "a filed proposal changes the resource list: {notes}"
    );
    assert!(err(&report, 2).contains("cannot be subscribed"), "{report}");
    let proposals: Api<kgents::kgents_crds::Proposal> = Api::namespaced(client.clone(), &ns);
    proposals
        .delete("scale-b", &Default::default())
        .await
        .unwrap();

    // Read-only over stdio, both protocol eras.
    for (mode, era) in [("legacy", "2025-11-25"), ("auto", "2026-07-28")] {
        let report =
            python(json!({"server": stdio(&ns, &[]), "mode": mode, "steps": read_steps(&ns)}));
        check_read_report(&report, &ns, era);
    }

    // Read-only over HTTP, both eras, and the inspector over stdio and HTTP.
    let server = http_server(&base(&ns), &["--http", "127.0.0.1:0"], &[]);
    for (mode, era) in [("legacy", "2025-11-25"), ("auto", "2026-07-28")] {
        let report =
            python(json!({"server": {"url": server.url}, "mode": mode, "steps": read_steps(&ns)}));
        check_read_report(&report, &ns, era);
    }
    let mut stdio_target = vec![kgents.clone()];
    stdio_target.extend(base(&ns));
    stdio_target.push("mcp".into());
    let http_target = vec![
        "--server-url".to_owned(),
        server.url.clone(),
        "--transport".into(),
        "http".into(),
    ];
    for target in [&stdio_target, &http_target] {
        for era in ["legacy", "modern"] {
            let with_era = |args: &[&str]| {
                let mut all = vec!["--protocol-era", era];
                all.extend_from_slice(args);
                all.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()
            };
            let run = |args: &[&str]| {
                let method: Vec<String> = with_era(args);
                let method: Vec<&str> = method.iter().map(String::as_str).collect();
                let (code, out, stderr) = inspector(target, &method);
                assert!(
                    code == 0 && out.get("error").is_none(),
                    "inspector {era} {target:?} {args:?}: {out}\n{stderr}"
                );
                out
            };
            let tools = run(&["--method", "tools/list"]);
            assert_eq!(tool_names(&tools), ["status", "sense", "invoke"], "{tools}");
            let templates = run(&["--method", "resources/templates/list"]);
            assert_eq!(
                templates["resourceTemplates"].as_array().unwrap().len(),
                3,
                "{templates}"
            );
            let resources = run(&["--method", "resources/list"]);
            assert!(
                resources["resources"].as_array().unwrap().len() >= 7,
                "{resources}"
            );
            for uri in [
                "kgents://agents",
                "kgents://pheromones/DREAM",
                "kgents://proposals",
                "kgents://cluster/status",
            ] {
                let read = run(&["--method", "resources/read", "--uri", uri]);
                let text = read["contents"][0]["text"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{read}"));
                assert!(serde_json::from_str::<Value>(text).is_ok(), "{text}");
            }
            let agent_uri = format!("kgents://agents/{ns}/b-gent");
            run(&["--method", "resources/read", "--uri", &agent_uri]);
            let status = run(&["--method", "tools/call", "--tool-name", "status"]);
            assert_eq!(
                status["structuredContent"]["agents"]["total"], 2,
                "{status}"
            );
            let sensed = run(&[
                "--method",
                "tools/call",
                "--tool-name",
                "sense",
                "--tool-args-json",
                "{\"limit\":1}",
            ]);
            assert_eq!(sensed["structuredContent"]["returned"], 1, "{sensed}");
            assert!(
                sensed["structuredContent"]["next_cursor"].is_string(),
                "{sensed}"
            );
            let invoked = run(&[
                "--method",
                "tools/call",
                "--tool-name",
                "invoke",
                "--tool-args-json",
                "{\"path\":\"world.cluster.proposals.manifest\"}",
            ]);
            assert_eq!(
                invoked["structuredContent"]["items"][0]["name"], "scale-a",
                "{invoked}"
            );
            let method: Vec<String> = with_era(&[
                "--method",
                "tools/call",
                "--tool-name",
                "emit",
                "--tool-args-json",
                "{\"pheromone_type\":\"WARNING\"}",
            ]);
            let method: Vec<&str> = method.iter().map(String::as_str).collect();
            let (code, out, stderr) = inspector(target, &method);
            assert!(
                code != 0
                    || out["isError"] == true
                    || out["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("read-only")),
                "a forced write is refused: {out}\n{stderr}"
            );
        }
    }

    // Malformed and oversized JSON-RPC over HTTP, and a client gone mid-call: the server
    // answers the next client.
    let report = python(
        json!({"server": {"url": server.url}, "mode": "auto", "steps": [
            {"op": "raw_post", "body": "{not json"},
            {"op": "raw_post", "size": 3 * 1024 * 1024},
            {"op": "raw_post", "timeout": 0.005,
             "headers": {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "sense"},
             "body": json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "sense", "arguments": {}, "_meta": {
                 "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}}).to_string()},
            {"op": "call", "name": "status", "args": {}},
        ]}),
    );
    let status = |i: usize| {
        report["results"][i]["result"]["status"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!((400..500).contains(&status(0)), "malformed: {report}");
    assert_eq!(status(1), 413, "oversized: {report}");
    assert_eq!(ok(&report, 3)["structuredContent"]["agents"]["total"], 2);
    drop(server);

    // Malformed and oversized lines over stdio: dropped, the connection still answers.
    let mut child = Command::new(&kgents)
        .args(base(&ns))
        .arg("mcp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let huge = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\",\"params\":{{\"x\":\"{}\"}}}}\n",
        "a".repeat(2 * 1024 * 1024)
    );
    stdin.write_all(b"this is not json\n").unwrap();
    stdin.write_all(huge.as_bytes()).unwrap();
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"raw\",\"version\":\"0\"}}}\n")
        .unwrap();
    stdin.flush().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut answered = false;
    for _ in 0..5 {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let message: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if message["id"] == 1 {
            assert_eq!(
                message["result"]["protocolVersion"], "2025-11-25",
                "{message}"
            );
            answered = true;
            break;
        }
    }
    assert!(
        answered,
        "the server answered after a malformed and an oversized line"
    );
    drop(stdin);
    let _ = child.wait();

    // An Umwelt's affordances scope the server: sense and agents only.
    let report = python(
        json!({"server": stdio(&ns, &["--allow-writes", "--umwelt", "b-view"]), "mode": "auto", "steps": [
            {"op": "list_tools"},
            {"op": "list_resources"},
            {"op": "list_templates"},
            {"op": "read", "uri": "kgents://proposals"},
            {"op": "call", "name": "invoke", "args": {"path": "world.cluster.proposals.manifest"}},
            {"op": "call", "name": "emit", "args": {"pheromone_type": "WARNING", "source": "b-gent"}},
            {"op": "call", "name": "sense", "args": {}},
        ]}),
    );
    assert_eq!(tool_names(ok(&report, 0)), ["status", "sense", "invoke"]);
    let uris: Vec<&str> = ok(&report, 1)["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        [
            "kgents://agents",
            "kgents://pheromones",
            "kgents://cluster/status"
        ],
        "agents are listed but not readable one by one"
    );
    let templates: Vec<&str> = ok(&report, 2)["resourceTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uriTemplate"].as_str().unwrap())
        .collect();
    assert_eq!(templates, ["kgents://pheromones/{type}"]);
    let denied = err(&report, 3);
    assert!(
        denied.contains("b-view") && denied.contains("may not use"),
        "{denied}"
    );
    let denied = ok(&report, 4);
    assert_eq!(denied["isError"], true);
    assert!(tool_text(denied).contains("denied"), "{denied}");
    assert!(err(&report, 5).contains("not afforded"), "{report}");
    assert!(
        ok(&report, 6)["structuredContent"]["total"]
            .as_u64()
            .unwrap()
            >= 2
    );

    // 1,000 agents: every resource page and every kgents://agents page, and the byte cap.
    let report = python(
        json!({"server": stdio(&crowd, &["--max-bytes", "8192"]), "mode": "legacy", "steps": [
            {"op": "list_resources"},
            {"op": "read_pages", "uri": "kgents://agents"},
            {"op": "read", "uri": "kgents://agents?limit=1000&detail=full"},
            {"op": "call", "name": "status", "args": {"detail": "full"}},
        ]}),
    );
    let listed = ok(&report, 0);
    let agent_resources = listed["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["uri"].as_str().unwrap().starts_with("kgents://agents/"))
        .count();
    assert_eq!(agent_resources, 1000);
    assert!(
        report["results"][0]["pages"].as_u64().unwrap() >= 11,
        "at most 100 a page: {}",
        report["results"][0]["pages"]
    );
    let pages = ok(&report, 1);
    assert_eq!(pages["items"], 1000, "{pages}");
    assert_eq!(pages["unique"], 1000, "{pages}");
    assert!(
        pages["pages"].as_u64().unwrap() > 10,
        "8 KiB pages hold fewer than 100 agents: {pages}"
    );
    let capped = &ok(&report, 2)["contents"][0]["text"];
    let capped_doc: Value = serde_json::from_str(capped.as_str().unwrap()).unwrap();
    assert!(
        capped.as_str().unwrap().len() <= 8192,
        "{}",
        capped.as_str().unwrap().len()
    );
    assert!(
        capped_doc["note"].as_str().unwrap().contains("byte cap"),
        "{capped_doc}"
    );
    let status = ok(&report, 3);
    assert!(
        tool_text(status).len() <= 8192 && status["structuredContent"].to_string().len() <= 8192
    );

    // A bearer token beyond loopback: refused without one; with one, only matching requests.
    let out = Command::new(&kgents)
        .args(base(&ns))
        .args(["mcp", "--http", "0.0.0.0:0"])
        .env_remove("KGENTS_MCP_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("without a bearer token"),
        "{out:?}"
    );
    let token = "0123456789abcdef0123456789abcdef";
    let guarded = http_server(
        &base(&ns),
        &["--http", "0.0.0.0:0"],
        &[("KGENTS_MCP_TOKEN", token)],
    );
    let url = guarded.url.replace("0.0.0.0", "127.0.0.1");
    let report = python(
        json!({"server": {"url": url, "headers": {"Authorization": format!("Bearer {token}")}}, "mode": "auto", "steps": [{"op": "call", "name": "status", "args": {}}]}),
    );
    assert_eq!(ok(&report, 0)["structuredContent"]["agents"]["total"], 2);
    let report = python(
        json!({"server": {"url": url, "headers": {"Authorization": "Bearer wrong"}}, "connect": false, "steps": [{"op": "raw_post", "body": "{}"}]}),
    );
    assert_eq!(report["results"][0]["result"]["status"], 401, "{report}");
    drop(guarded);

    let everything = SEEN.lock().unwrap().clone();
    assert!(
        everything.len() > 10_000,
        "the clients printed their results"
    );
    assert!(
        !everything.contains(SECRET),
        "the planted credential leaked"
    );
    assert!(
        everything.contains("[redacted]"),
        "b-gent's condition was shown, masked"
    );
}
