//! `kgents dev up`, the first command of the README, run as a user runs it: a private control
//! plane with fake nodes, the operator and its webhook in one process, and the samples. The
//! printed `export KUBECONFIG=…` line points the CLI at it; Ctrl+C (SIGINT) stops everything and
//! removes the control plane's files. Run after `cargo build --example kgents` and
//! `scripts/testbed-build` (the test passes `--no-build`: it never builds Go).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn kgents(kubeconfig: &str, ghost: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(common::kgents_binary())
        .args(["--kubeconfig", kubeconfig])
        .args(args)
        .env("NO_COLOR", "1")
        .env("KGENTS_GHOST_DIR", ghost)
        .output()
        .expect("kgents runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn dev_up_serves_the_samples_until_interrupted() {
    let ghost = tempfile::tempdir().unwrap();
    let child = Command::new(common::kgents_binary())
        .args(["dev", "up", "--no-build", "--nodes", "1"])
        .args(["--http-addr", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kgents dev up starts");
    let mut dev = common::ChildGuard(child);
    let stdout = common::lines_of(dev.0.stdout.take().unwrap());
    let stderr = common::lines_of(dev.0.stderr.take().unwrap());

    let export = common::wait_for_line(
        &stdout,
        None,
        "export KUBECONFIG=",
        Duration::from_secs(120),
    );
    let kubeconfig = export
        .trim()
        .strip_prefix("export KUBECONFIG=")
        .expect("the export line")
        .to_owned();
    assert!(Path::new(&kubeconfig).is_file(), "{kubeconfig}");
    let applied = common::wait_for_line(&stderr, None, "sample object(s)", Duration::from_secs(60));
    assert!(applied.contains("applied"), "{applied}");

    // The CLI, pointed at it, sees the sample agents; status answers live.
    let (code, out, err) = kgents(
        &kubeconfig,
        ghost.path(),
        &["get", "agents", "-A", "-o", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = listed["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    for sample in ["b-gent", "l-gent"] {
        assert!(names.contains(&sample), "{sample} in {names:?}");
    }
    let (code, out, err) = kgents(
        &kubeconfig,
        ghost.path(),
        &["status", "--live", "-o", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(
        report["agents"]["total"].as_u64().is_some_and(|n| n >= 2),
        "{out}"
    );

    // Ctrl+C: the operator and the control plane stop, exit 0, the files go.
    let signalled = Command::new("kill")
        .args(["-INT", &dev.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(signalled.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = dev.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "kgents dev up did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    common::wait_for_line(&stderr, None, "dev up: stopped", Duration::from_secs(5));
    assert!(
        !Path::new(&kubeconfig).exists(),
        "the control plane's files are removed: {kubeconfig}"
    );
}
