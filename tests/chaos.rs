//! The chaos runs' checks on hand-made snapshots (each check sees what it must), and the short
//! version of every chaos scenario: the `chaos` example run on its own testbed with 30 Agents,
//! two operator kills, one fault of each other kind, 30 probed agents on a black-holed model and
//! 20 operator kills during Workflows; every scenario must hold.
//!
//! The example is run as a program (it re-executes itself as the operator process, so a kill is
//! a real SIGKILL): `scripts/test` builds `target/debug/examples/chaos` first.

#[path = "../examples/support/chaos.rs"]
mod chaos;
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chaos::{AgentView, ChildView, Outcome, ProposalView, Snapshot};

fn agent(name: &str, uid: &str, replicas: i32, applied: Option<&str>) -> AgentView {
    AgentView {
        name: name.into(),
        uid: uid.into(),
        generation: Some(2),
        observed_generation: Some(2),
        phase: Some("Running".into()),
        replicas,
        status_replicas: Some(replicas),
        deleting: false,
        applied_proposal: applied.map(str::to_owned),
    }
}

fn child(kind: &str, name: &str, owner: &str) -> ChildView {
    ChildView {
        kind: kind.into(),
        name: name.into(),
        owners: vec![owner.into()],
        retained_memory: None,
    }
}

fn merged(name: &str, uid: &str, target: &str, replicas: i32, at: &str) -> ProposalView {
    ProposalView {
        name: name.into(),
        uid: uid.into(),
        target: target.into(),
        phase: Some("Merged".into()),
        replicas,
        executed_at: Some(at.into()),
        applied_events: 1,
    }
}

/// One Agent with its children, two proposals applied in turn; everything consistent.
fn converged() -> Snapshot {
    Snapshot {
        agents: vec![agent("a", "uid-a", 3, Some("p2"))],
        children: vec![
            child("Deployment", "a", "uid-a"),
            child("Service", "a", "uid-a"),
            child("ServiceAccount", "a", "uid-a"),
        ],
        proposals: vec![
            merged("scale-1", "p1", "a", 2, "2026-12-03T10:00:00Z"),
            merged("scale-2", "p2", "a", 3, "2026-12-03T10:00:05Z"),
        ],
        other_owners: vec![],
    }
}

#[test]
fn a_consistent_snapshot_has_converged() {
    let findings = chaos::check(&converged());
    assert!(findings.converged(), "{findings:?}");
    assert_eq!(findings.summary(), "");
}

#[test]
fn a_child_of_a_deleted_agent_is_an_orphan_unless_another_kgents_object_owns_it() {
    let mut snapshot = converged();
    snapshot.children.push(child("Role", "gone", "uid-gone"));
    snapshot
        .children
        .push(child("PersistentVolumeClaim", "memory", "uid-memory"));
    snapshot.other_owners.push("uid-memory".into());
    // A RETAIN claim has no owner by design: its label names the Memory.
    snapshot.children.push(ChildView {
        kind: "PersistentVolumeClaim".into(),
        name: "kept".into(),
        owners: vec![],
        retained_memory: Some("scratch".into()),
    });
    snapshot.children.push(ChildView {
        kind: "PersistentVolumeClaim".into(),
        name: "unlabelled".into(),
        owners: vec![],
        retained_memory: None,
    });
    let findings = chaos::check(&snapshot);
    assert_eq!(
        findings.orphans,
        vec![
            "Role gone".to_owned(),
            "PersistentVolumeClaim unlabelled".to_owned()
        ]
    );
    assert_eq!(findings.summary(), "2 orphaned children");
}

#[test]
fn a_missing_child_a_stale_status_and_a_deletion_under_way_are_not_converged() {
    let mut snapshot = converged();
    snapshot.children.retain(|c| c.kind != "Service");
    let mut stale = agent("b", "uid-b", 2, None);
    stale.observed_generation = Some(1);
    let mut deleting = agent("c", "uid-c", 1, None);
    deleting.deleting = true;
    snapshot.agents.extend([stale, deleting]);
    let findings = chaos::check(&snapshot);
    assert_eq!(findings.missing_children, vec!["a", "b"]);
    assert_eq!(findings.stale_status, vec!["b"]);
    assert_eq!(findings.deleting, vec!["c"]);
    assert!(!findings.converged());
}

#[test]
fn a_double_execution_and_a_reverted_target_are_found() {
    let mut snapshot = converged();
    snapshot.proposals[0].applied_events = 2;
    // The older proposal applied again after the newer: the target shows the older's stamp.
    snapshot.agents[0].applied_proposal = Some("p1".into());
    snapshot.agents[0].replicas = 2;
    snapshot.agents[0].status_replicas = Some(2);
    let findings = chaos::check(&snapshot);
    assert_eq!(findings.executed_twice, vec!["scale-1 (2×)"]);
    let known = std::collections::BTreeSet::from(["scale-1".to_owned()]);
    let without = findings.clone().without_known_repeats(&known);
    assert!(without.executed_twice.is_empty());
    assert_eq!(findings.repeated_names().collect::<Vec<_>>(), ["scale-1"]);
    assert_eq!(findings.reverted, vec!["a"]);
}

#[test]
fn an_unfinished_proposal_is_not_converged() {
    let mut snapshot = converged();
    snapshot.proposals[1].phase = Some("Reviewing".into());
    let findings = chaos::check(&snapshot);
    assert_eq!(findings.unfinished_proposals, vec!["scale-2"]);
}

#[test]
fn the_table_is_spliced_between_the_markers_and_a_missing_marker_says_which() {
    let outcome = Outcome {
        scenario: "operator-kill".into(),
        runs: 2,
        conditions: "30 Agents".into(),
        checked: "orphans".into(),
        broken: vec![],
        converge: vec![Duration::from_secs(3), Duration::from_secs(1)],
    };
    let table = chaos::table(&[outcome]);
    assert!(
        table.contains("| `operator-kill` | 30 Agents | 2 | orphans | held | 2.0 s / 3.0 s |"),
        "{table}"
    );
    let document = format!(
        "# R\n\n{}\nold\n{}\nafter\n",
        chaos::TABLE_START,
        chaos::TABLE_END
    );
    let spliced = chaos::splice(&document, &table).expect("markers present");
    assert!(!spliced.contains("old"));
    assert!(spliced.contains(&table));
    assert!(spliced.ends_with(&format!("{}\nafter\n", chaos::TABLE_END)));
    // Idempotent: splicing again changes nothing.
    assert_eq!(chaos::splice(&spliced, &table).expect("again"), spliced);
    let error = chaos::splice("# R\n", &table).expect_err("no markers");
    assert!(error.contains("chaos-table:start"), "{error}");
}

#[test]
fn median_and_worst() {
    let s = Duration::from_secs;
    assert_eq!(chaos::median_and_worst(&[]), None);
    assert_eq!(
        chaos::median_and_worst(&[s(5), s(1), s(3)]),
        Some((s(3), s(5)))
    );
    assert_eq!(chaos::median_and_worst(&[s(4), s(2)]), Some((s(3), s(4))));
}

/// `target/debug/examples/chaos`, next to this test binary's `deps/` directory.
fn chaos_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/debug")
        .join("examples")
        .join("chaos");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `scripts/test`, or build it first with \
         `cargo build --example chaos`",
        path.display()
    );
    path
}

#[test]
fn every_chaos_scenario_holds_in_its_short_version() {
    let began = Instant::now();
    let child = Command::new(chaos_binary())
        .args([
            "--scenario",
            "all",
            "--agents",
            "30",
            "--runs",
            "2",
            "--fault-runs",
            "1",
            "--nodes",
            "2",
            "--deadline",
            "90",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the chaos example starts");
    let guard = common::ChildGuard(child);
    let output = wait_with_deadline(guard, Duration::from_secs(600));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the chaos run failed after {:.0} s\nstdout:\n{stdout}\nstderr:\n{stderr}",
        began.elapsed().as_secs_f64()
    );
    for scenario in [
        "operator-kill",
        "apiserver-restart",
        "etcd-pause",
        "webhook-down",
        "leader-change",
        "model-blackhole",
        "workflow-kill",
    ] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| `{scenario}` |")))
            .unwrap_or_else(|| panic!("no row for {scenario} in\n{stdout}"));
        assert!(row.contains("| held |"), "{row}\nstderr:\n{stderr}");
    }
}

/// Waits for the guarded child to exit, killing it after `within`.
fn wait_with_deadline(mut guard: common::ChildGuard, within: Duration) -> std::process::Output {
    let stdout = guard.0.stdout.take().expect("stdout");
    let stderr = guard.0.stderr.take().expect("stderr");
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let out = read(Box::new(stdout));
    let err = read(Box::new(stderr));
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = guard.0.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = guard.0.kill();
            break guard.0.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

#[test]
fn the_reconcile_histogram_is_read_between_two_scrapes() {
    let scrape = |count: u32, sum: f64, fast: u32| {
        format!(
            "# TYPE kgents_reconcile_duration_seconds histogram\n\
             kgents_reconcile_duration_seconds_sum{{controller=\"agent\"}} {sum}\n\
             kgents_reconcile_duration_seconds_count{{controller=\"agent\"}} {count}\n\
             kgents_reconcile_duration_seconds_bucket{{controller=\"agent\",le=\"0.001\"}} 0\n\
             kgents_reconcile_duration_seconds_bucket{{le=\"0.016\",controller=\"agent\"}} {fast}\n\
             kgents_reconcile_duration_seconds_bucket{{controller=\"agent\",le=\"+Inf\"}} {count}\n\
             kgents_reconcile_duration_seconds_count{{controller=\"pheromone\"}} 99\n"
        )
    };
    let delta = chaos::histogram_delta(
        &scrape(10, 0.5, 10),
        &scrape(110, 2.5, 109),
        "kgents_reconcile_duration_seconds",
        "agent",
    );
    assert_eq!(delta.count, 100.0);
    assert_eq!(delta.mean(), Some(0.02));
    assert_eq!(delta.quantile_bound(0.5), Some(0.016));
    assert_eq!(delta.quantile_bound(0.999), Some(f64::INFINITY));
    let none = chaos::histogram_delta("", "", "kgents_reconcile_duration_seconds", "agent");
    assert_eq!((none.mean(), none.quantile_bound(0.99)), (None, None));
}

#[test]
fn a_run_of_some_scenarios_replaces_their_rows_and_keeps_the_others() {
    let outcome = |scenario: &str, runs: usize| Outcome {
        scenario: scenario.into(),
        runs,
        conditions: "c".into(),
        checked: "k".into(),
        broken: vec![],
        converge: vec![],
    };
    let empty = format!(
        "# R\n{}\nNot yet run.\n{}\n",
        chaos::TABLE_START,
        chaos::TABLE_END
    );
    let first = chaos::merge_rows(
        &empty,
        "first run",
        &chaos::table(&[outcome("operator-kill", 2), outcome("etcd-pause", 1)]),
    )
    .expect("markers");
    assert!(!first.contains("Not yet run."));
    let second = chaos::merge_rows(
        &first,
        "second run",
        &chaos::table(&[outcome("operator-kill", 20)]),
    )
    .expect("markers");
    let rows: Vec<&str> = second.lines().filter(|l| l.starts_with("| `")).collect();
    assert_eq!(rows.len(), 2, "{second}");
    assert!(rows[0].starts_with("| `etcd-pause` |"), "{second}");
    assert!(
        rows[1].starts_with("| `operator-kill` | c | 20 |"),
        "{second}"
    );
    assert!(second.contains("second run") && !second.contains("first run"));
    let separators = second.lines().filter(|l| l.starts_with("|---")).count();
    assert_eq!(separators, 1, "one header: {second}");
}
