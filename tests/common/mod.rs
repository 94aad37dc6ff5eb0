//! Helpers shared by the tests that run the `kgents` binary as a user does: where the binary
//! is, a guard that stops a long-running child when a test fails, and reading a child's output
//! line by line with a deadline.
//!
//! Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scripts/<name>` (the project's idempotent installers of test tools nobody here wrote)
/// and returns the path it prints.
pub fn installed_by(name: &str) -> PathBuf {
    let out = Command::new(repo().join("scripts").join(name))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("scripts/{name} runs: {e}"));
    assert!(out.status.success(), "scripts/{name} failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// `target/debug/examples/kgents`, next to this test binary's `deps/` directory.
///
/// `scripts/test` builds it before running the tests; `cargo test` alone does not, because the
/// example is compiled as a unit-test harness (its completion tests) rather than as a binary.
pub fn kgents_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/debug")
        .join("examples")
        .join("kgents");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `scripts/test`, or build it first with \
         `cargo build --workspace --example kgents`",
        path.display()
    );
    path
}

/// Kills and reaps a child process when dropped, so that a failing test does not leave a
/// server, tether or control plane running.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines read from a pipe on a thread, so that waiting for one has a deadline.
pub fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
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
/// what the other stream (`other`, if any) said meanwhile.
pub fn wait_for_line(
    rx: &mpsc::Receiver<String>,
    other: Option<&mpsc::Receiver<String>>,
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
    let others: Vec<String> = other.map(|o| o.try_iter().collect()).unwrap_or_default();
    panic!(
        "no line with {needle:?} within {within:?}; saw {seen:#?}; the other stream said {others:#?}"
    );
}
