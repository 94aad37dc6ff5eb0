//! Child processes of a testbed.
//!
//! Every child runs in its own process group, with stdout and stderr in a
//! log file. Children must not outlive the test process, even when the
//! testbed is a `static` that is never dropped or the process crashes:
//!
//! * When `setpriv` (util-linux) supports `--pdeathsig`, each child is
//!   started as `setpriv --pdeathsig KILL -- <program> ...`. The kernel sends
//!   the death signal when the *thread* that forked the child exits, and
//!   `cargo test` runs each test on its own short-lived thread (tokio adds
//!   worker threads), so all children are forked by one dedicated spawner
//!   thread that lives as long as the process.
//! * Each child is recorded in a PID file; a later start sweeps children
//!   (and temporary directories) of test processes that no longer exist.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

use crate::error::{Error, Result};

/// Prefix of every temporary directory a testbed creates; followed by the
/// owning process id and a dash, so sweeps know whose directory it is.
pub(crate) const DIR_PREFIX: &str = "kgents-testbed-";

/// What the spawner thread is asked to start.
struct SpawnRequest {
    command: Command,
    reply: mpsc::Sender<std::io::Result<Child>>,
}

/// The sender to the process-lifetime spawner thread.
fn spawner() -> &'static mpsc::Sender<SpawnRequest> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("kgents-testbed-spawner".into())
            .spawn(move || {
                // The sender lives in a static, so this loop ends only with the process.
                for mut request in receiver {
                    let result = request.command.spawn();
                    // The requester may have given up; nothing to do then.
                    let _ = request.reply.send(result);
                }
            })
            .expect("the OS refused to start the testbed spawner thread");
        sender
    })
}

/// True when `setpriv --pdeathsig` is available (checked once).
pub(crate) fn pdeathsig_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Command::new("setpriv")
            .arg("--help")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).contains("--pdeathsig"))
            .unwrap_or(false)
    })
}

/// The program and arguments actually executed for `program args`: wrapped
/// in `setpriv --pdeathsig <signal>` when available.
pub(crate) fn wrapped_command_line(
    program: &Path,
    args: &[String],
    death_signal: &str,
    pdeathsig: bool,
) -> (PathBuf, Vec<String>) {
    if pdeathsig {
        let mut wrapped = vec![
            "--pdeathsig".to_string(),
            death_signal.to_string(),
            "--".to_string(),
            program.display().to_string(),
        ];
        wrapped.extend(args.iter().cloned());
        (PathBuf::from("setpriv"), wrapped)
    } else {
        (program.to_path_buf(), args.to_vec())
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct ProcessSpec {
    /// Name for logs and errors.
    pub(crate) name: &'static str,
    /// The program.
    pub(crate) program: PathBuf,
    /// Its arguments.
    pub(crate) args: Vec<String>,
    /// Where stdout and stderr go (appended, so a restart keeps the history).
    pub(crate) log_path: PathBuf,
    /// Working directory.
    pub(crate) work_dir: PathBuf,
}

/// A running child process (its own process group).
#[derive(Debug)]
pub(crate) struct ChildProcess {
    pub(crate) spec: ProcessSpec,
    child: Child,
    pid_file: Option<PathBuf>,
}

fn pid_dir() -> PathBuf {
    std::env::temp_dir().join("kgents-testbed-pids")
}

impl ChildProcess {
    /// Starts `spec` from the spawner thread.
    pub(crate) fn spawn(spec: ProcessSpec) -> Result<Self> {
        Self::spawn_with_death_signal(spec, "KILL")
    }

    pub(crate) fn spawn_with_death_signal(spec: ProcessSpec, death_signal: &str) -> Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log_path)
            .map_err(|e| Error::io(format!("opening log {}", spec.log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| Error::io(format!("duplicating log {}", spec.log_path.display()), e))?;
        let (program, args) = wrapped_command_line(
            &spec.program,
            &spec.args,
            death_signal,
            pdeathsig_available(),
        );
        let mut command = Command::new(&program);
        command
            .args(&args)
            .current_dir(&spec.work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        std::os::unix::process::CommandExt::process_group(&mut command, 0);

        let (reply, response) = mpsc::channel();
        spawner()
            .send(SpawnRequest { command, reply })
            .map_err(|_| {
                Error::io(
                    "handing a child to the spawner thread",
                    std::io::Error::other("spawner thread is gone"),
                )
            })?;
        let child = response
            .recv()
            .map_err(|_| {
                Error::io(
                    "waiting for the spawner thread",
                    std::io::Error::other("spawner thread is gone"),
                )
            })?
            .map_err(|e| Error::io(format!("starting {} ({})", spec.name, program.display()), e))?;
        let pid_file = record_pid(child.id(), &spec.program);
        Ok(Self {
            spec,
            child,
            pid_file,
        })
    }

    /// The process id (also the process group id).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` when the process has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `signal` to the whole process group (ignores a group that is gone).
    pub(crate) fn signal_group(&self, signal: Signal) {
        if let Some(pid) = Pid::from_raw(self.child.id() as i32) {
            let _ = kill_process_group(pid, signal);
        }
    }

    /// Waits until the process has exited or `deadline` passed.
    fn wait_until(&mut self, deadline: Instant) -> bool {
        loop {
            if self.exited().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; always reaps the process.
    pub(crate) fn stop(mut self, grace: Duration) {
        stop_all(std::slice::from_mut(&mut self), grace);
    }
}

/// Stops several processes together: SIGTERM to all, a shared grace period,
/// then SIGKILL to what is left. Reaps every one of them.
pub(crate) fn stop_all(processes: &mut [ChildProcess], grace: Duration) {
    for process in processes.iter() {
        process.signal_group(Signal::TERM);
    }
    let deadline = Instant::now() + grace;
    for process in processes.iter_mut() {
        if !process.wait_until(deadline) {
            process.signal_group(Signal::KILL);
            let _ = process.child.wait();
        }
        // The group may hold helpers of the main process.
        process.signal_group(Signal::KILL);
        if let Some(file) = process.pid_file.take() {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// The last `lines` lines of a log file (empty when unreadable), preceded by
/// up to ten earlier error lines: a failing Go component often logs its fatal
/// error and then many lines of shutdown noise.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    log_excerpt(&String::from_utf8_lossy(&text), lines)
}

/// Pure part of [`log_tail`].
pub(crate) fn log_excerpt(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let tail_start = all.len().saturating_sub(lines);
    let errors: Vec<&str> = all[..tail_start]
        .iter()
        .copied()
        .filter(|line| is_error_line(line))
        .collect();
    let mut excerpt = String::new();
    if !errors.is_empty() {
        excerpt.push_str("[earlier errors]\n");
        for line in &errors[errors.len().saturating_sub(10)..] {
            excerpt.push_str(line);
            excerpt.push('\n');
        }
        excerpt.push_str("[last lines]\n");
    }
    excerpt.push_str(&all[tail_start..].join("\n"));
    excerpt
}

/// klog error/fatal lines (`E1126 ...`, `F1126 ...`) and etcd's JSON errors.
fn is_error_line(line: &str) -> bool {
    let mut chars = line.chars();
    let klog =
        matches!(chars.next(), Some('E' | 'F')) && chars.next().is_some_and(|c| c.is_ascii_digit());
    klog || line.contains("\"level\":\"error\"") || line.contains("\"level\":\"fatal\"")
}

/// Writes `<owner pid>-<child pid>` holding the child's program path.
fn record_pid(child_pid: u32, program: &Path) -> Option<PathBuf> {
    let dir = pid_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let file = dir.join(format!("{}-{child_pid}", std::process::id()));
    std::fs::write(&file, program.display().to_string()).ok()?;
    Some(file)
}

fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Parses `<owner>-<child>` PID-file names.
pub(crate) fn parse_pid_file_name(name: &str) -> Option<(u32, u32)> {
    let (owner, child) = name.split_once('-')?;
    Some((owner.parse().ok()?, child.parse().ok()?))
}

/// Parses the owner pid out of `kgents-testbed-<pid>-<random>` directory names.
pub(crate) fn owner_of_dir_name(name: &str) -> Option<u32> {
    name.strip_prefix(DIR_PREFIX)?
        .split_once('-')?
        .0
        .parse()
        .ok()
}

/// Kills children and removes temporary directories left behind by test
/// processes that no longer run (crashes, SIGKILL, no `setpriv`).
/// Best effort: a failure here never fails a start.
pub(crate) fn sweep_orphans(temp_roots: &[PathBuf]) {
    if let Ok(entries) = std::fs::read_dir(pid_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some((owner, child)) = parse_pid_file_name(&name.to_string_lossy()) else {
                continue;
            };
            if process_alive(owner) {
                continue;
            }
            let recorded = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let running = std::fs::read_link(format!("/proc/{child}/exe")).ok();
            // Kill only if the pid still runs the recorded program (pids are reused).
            if running.is_some_and(|exe| exe == Path::new(recorded.trim()))
                && let Some(pid) = Pid::from_raw(child as i32)
            {
                let _ = kill_process_group(pid, Signal::KILL);
            }
            let _ = std::fs::remove_file(entry.path());
        }
    }
    for root in temp_roots {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if let Some(owner) = owner_of_dir_name(&name.to_string_lossy())
                && !process_alive(owner)
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// A helper process that removes `dirs` when the test process dies (its
/// parent-death signal is SIGTERM), for testbeds that are never dropped.
pub(crate) fn spawn_dir_guardian(
    dirs: &[&Path],
    work_dir: &Path,
    log_path: &Path,
) -> Option<ChildProcess> {
    if !pdeathsig_available() {
        // Without a death signal it would never fire; the sweep covers it.
        return None;
    }
    let script = "sleep 2147483647 & s=$!\n\
                  trap 'kill $s 2>/dev/null; rm -rf -- \"$@\"; exit 0' TERM HUP INT\n\
                  wait $s\n";
    let mut args = vec![
        "-c".to_string(),
        script.to_string(),
        "kgents-testbed-guardian".to_string(),
    ];
    args.extend(dirs.iter().map(|d| d.display().to_string()));
    let spec = ProcessSpec {
        name: "directory guardian",
        program: PathBuf::from("/bin/sh"),
        args,
        log_path: log_path.to_path_buf(),
        work_dir: work_dir.to_path_buf(),
    };
    ChildProcess::spawn_with_death_signal(spec, "TERM").ok()
}

/// Kills the guardian without letting it delete anything (the owner cleans up).
pub(crate) fn dismiss_guardian(mut guardian: ChildProcess) {
    guardian.signal_group(Signal::KILL);
    let _ = guardian.child.wait();
    if let Some(file) = guardian.pid_file.take() {
        let _ = std::fs::remove_file(file);
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // Normal paths call `stop`; this catches early returns and panics.
        if self.exited().is_none() {
            self.signal_group(Signal::KILL);
            let _ = self.child.wait();
        }
        if let Some(file) = self.pid_file.take() {
            let _ = std::fs::remove_file(file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_in_setpriv_only_when_available() {
        let args = vec!["--a=1".to_string()];
        let (program, wrapped) = wrapped_command_line(Path::new("/bin/etcd"), &args, "KILL", true);
        assert_eq!(program, PathBuf::from("setpriv"));
        assert_eq!(wrapped, ["--pdeathsig", "KILL", "--", "/bin/etcd", "--a=1"]);
        let (program, plain) = wrapped_command_line(Path::new("/bin/etcd"), &args, "KILL", false);
        assert_eq!(program, PathBuf::from("/bin/etcd"));
        assert_eq!(plain, args);
    }

    #[test]
    fn log_excerpt_keeps_early_errors() {
        let log =
            "I1 start\nE1126 12:00 run.go] \"command failed\" err=\"bad flag\"\nI2 a\nI3 b\nI4 c\n";
        let excerpt = log_excerpt(log, 2);
        assert!(excerpt.contains("command failed"), "{excerpt}");
        assert!(excerpt.ends_with("I3 b\nI4 c"), "{excerpt}");
        assert!(!excerpt.contains("I1 start"), "{excerpt}");
        assert_eq!(log_excerpt("a\nb\n", 5), "a\nb");
        assert!(log_excerpt("{\"level\":\"fatal\",\"msg\":\"x\"}\nok\n", 1).contains("fatal"));
    }

    #[test]
    fn parses_sweep_names() {
        assert_eq!(parse_pid_file_name("12-345"), Some((12, 345)));
        assert_eq!(parse_pid_file_name("12"), None);
        assert_eq!(parse_pid_file_name("a-1"), None);
        assert_eq!(owner_of_dir_name("kgents-testbed-77-AbC12"), Some(77));
        assert_eq!(owner_of_dir_name("kgents-testbed-pids"), None);
        assert_eq!(owner_of_dir_name("other-77-x"), None);
    }

    #[test]
    fn children_run_in_their_own_group_and_stop_is_reaped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let spec = ProcessSpec {
            name: "sleeper",
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), "echo started; exec sleep 600".into()],
            log_path: dir.path().join("sleeper.log"),
            work_dir: dir.path().to_path_buf(),
        };
        let mut child = ChildProcess::spawn(spec).expect("spawn");
        let pid = child.pid();
        let group = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        // Field 5 of /proc/<pid>/stat is the process group id.
        let pgrp: u32 = group
            .rsplit(')')
            .next()
            .expect("stat tail")
            .split_whitespace()
            .nth(2)
            .expect("pgrp")
            .parse()
            .expect("number");
        assert_eq!(pgrp, pid);
        assert!(child.exited().is_none());
        std::thread::sleep(Duration::from_millis(200));
        child.stop(Duration::from_secs(5));
        assert!(
            !process_alive(pid),
            "the stopped child {pid} is gone and reaped"
        );
        assert!(log_tail(&dir.path().join("sleeper.log"), 5).contains("started"));
    }
}
