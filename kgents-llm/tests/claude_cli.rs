//! The `claude -p` runtime against stand-in `claude` executables written by each test.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kgents_llm::{
    ClaudeCliClient, ClaudeCliOptions, CompletionRequest, Error, LlmClient, LlmError, ModelConfig,
    RuntimeOptions, build_client_with,
};

/// Writes an executable shell script standing in for `claude`.
fn stand_in(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("claude");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn client(program: PathBuf, model: Option<&str>, timeout: Duration) -> ClaudeCliClient {
    let config = ModelConfig::from_parts("claude-cli", model, None, None).unwrap();
    let options = RuntimeOptions::default()
        .with_request_timeout(timeout)
        .with_claude_cli(
            ClaudeCliOptions::default()
                .with_program(program)
                .with_max_concurrent(2)
                .with_extra_args(Vec::new()),
        );
    ClaudeCliClient::new(&config, &options).unwrap()
}

fn request() -> CompletionRequest {
    CompletionRequest {
        system: "Answer with a number only.".into(),
        user: "What is 7 * 6?".into(),
        temperature: 0.0,
        max_tokens: 32,
    }
}

/// Runs one completion. A script that was just written can briefly be "text file busy" when
/// another test thread forks at that moment (the fork inherits the write descriptor until it
/// execs); that one condition is retried.
async fn run(client: &ClaudeCliClient) -> Result<kgents_llm::Completion, LlmError> {
    for _ in 0..5 {
        match client.complete(&request()).await {
            Err(LlmError::Transport { message }) if message.contains("Text file busy") => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
    client.complete(&request()).await
}

/// Whether a process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .chars()
                .next();
            !matches!(state, Some('Z' | 'X'))
        }
    }
}

async fn read_pid(path: &Path) -> u32 {
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} was never written", path.display());
}

async fn gone(pid: u32) -> bool {
    for _ in 0..100 {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn right_output_is_read_and_the_arguments_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let args = dir.path().join("args");
    let program = stand_in(
        dir.path(),
        &format!(
            r#"for a in "$@"; do printf '%s\n' "$a"; done > '{}'
if [ -t 0 ] || read -r line; then echo "stdin was open" >&2; exit 3; fi
echo '{{"type":"result","subtype":"success","is_error":false,"duration_ms":812,"num_turns":1,"result":"42","session_id":"s","total_cost_usd":0.001,"usage":{{"input_tokens":12,"output_tokens":2,"cache_read_input_tokens":0}}}}'"#,
            args.display()
        ),
    );
    let c = run(&client(program, Some("sonnet"), Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(c.text, "42");
    assert_eq!((c.input_tokens, c.output_tokens), (Some(12), Some(2)));
    let passed = std::fs::read_to_string(&args).unwrap();
    assert_eq!(
        passed.lines().collect::<Vec<_>>(),
        [
            "-p",
            "--output-format",
            "json",
            "--model",
            "sonnet",
            "--system-prompt",
            "Answer with a number only.",
            "--",
            "What is 7 * 6?"
        ]
    );
}

#[tokio::test]
async fn stream_json_output_is_read_from_its_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let program = stand_in(
        dir.path(),
        r#"echo '{"type":"system","subtype":"init","session_id":"s","tools":[]}'
echo '{"type":"assistant","message":{"content":[{"type":"text","text":"42"}]}}'
echo '{"type":"result","subtype":"success","is_error":false,"result":"42","usage":{"input_tokens":5,"output_tokens":1}}'"#,
    );
    let c = run(&client(program, None, Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(c.text, "42");
}

#[tokio::test]
async fn garbage_output_is_a_bad_response() {
    let dir = tempfile::tempdir().unwrap();
    let program = stand_in(dir.path(), "echo 'Welcome to Claude Code! ✻'");
    let e = run(&client(program, None, Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LlmError::BadResponse { message } if message.contains("Welcome to Claude Code")),
        "{e:?}"
    );
}

#[tokio::test]
async fn exit_1_with_stderr_is_an_error_quoting_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let program = stand_in(
        dir.path(),
        "echo 'starting' >&2\necho 'Error: connect ECONNREFUSED api.anthropic.com' >&2\nexit 1",
    );
    let e = run(&client(program, None, Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LlmError::Provider { status: None, message }
            if message.contains("status 1") && message.contains("ECONNREFUSED api.anthropic.com")),
        "{e:?}"
    );
}

#[tokio::test]
async fn error_result_about_login_is_an_auth_error() {
    let dir = tempfile::tempdir().unwrap();
    let program = stand_in(
        dir.path(),
        r#"echo '{"type":"result","subtype":"success","is_error":true,"result":"Invalid API key · Please run /login"}'
exit 1"#,
    );
    let e = run(&client(program, None, Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LlmError::Auth { message } if message.contains("Invalid API key")),
        "{e:?}"
    );
}

#[tokio::test]
async fn error_result_about_the_model_names_the_missing_model() {
    let dir = tempfile::tempdir().unwrap();
    let program = stand_in(
        dir.path(),
        r#"echo '{"type":"result","subtype":"success","is_error":true,"result":"There'"'"'s an issue with the selected model (claude-nope). It may not exist or you may not have access to it. Run --model to pick a different model."}'
exit 1"#,
    );
    let e = run(&client(
        program,
        Some("claude-nope"),
        Duration::from_secs(10),
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(&e, LlmError::ModelNotFound { model, message }
            if model == "claude-nope" && message.contains("model 'claude-nope' does not exist")
                && message.contains("It may not exist")),
        "{e:?}"
    );
}

#[tokio::test]
async fn hang_times_out_and_the_whole_process_group_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let helper_file = dir.path().join("helper");
    let program = stand_in(
        dir.path(),
        &format!(
            "sleep 60 &\necho $! > '{}'\necho $$ > '{}'\nexec sleep 60",
            helper_file.display(),
            pid_file.display()
        ),
    );
    let started = Instant::now();
    let e = run(&client(program, None, Duration::from_millis(500)))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        LlmError::Timeout {
            after: Duration::from_millis(500)
        }
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let pid = read_pid(&pid_file).await;
    let helper = read_pid(&helper_file).await;
    assert!(
        gone(pid).await,
        "the claude process {pid} survived the timeout"
    );
    assert!(
        gone(helper).await,
        "the helper {helper} it started survived"
    );
}

#[tokio::test]
async fn dropping_the_call_kills_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let program = stand_in(
        dir.path(),
        &format!("echo $$ > '{}'\nexec sleep 60", pid_file.display()),
    );
    let client = client(program, None, Duration::from_secs(60));
    // The caller's own deadline (a probe timeout) drops the call long before the runtime's.
    let outcome = tokio::time::timeout(Duration::from_millis(400), run(&client)).await;
    assert!(outcome.is_err(), "the stand-in should still be running");
    let pid = read_pid(&pid_file).await;
    assert!(
        gone(pid).await,
        "the claude process {pid} survived the dropped call"
    );
}

#[tokio::test]
async fn huge_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let program = stand_in(dir.path(), "head -c 3000000 /dev/zero | tr '\\0' 'x'");
    let config = ModelConfig::from_parts("claude-cli", None, None, None).unwrap();
    let options = RuntimeOptions::default()
        .with_max_body_bytes(1024 * 1024)
        .with_claude_cli(ClaudeCliOptions::default().with_program(program));
    let client = ClaudeCliClient::new(&config, &options).unwrap();
    let e = run(&client).await.unwrap_err();
    assert!(
        matches!(&e, LlmError::BadResponse { message } if message.contains("more than 1024 KiB")),
        "{e:?}"
    );
}

#[tokio::test]
async fn missing_executable_is_a_transport_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("no-such-claude");
    let e = run(&client(program.clone(), None, Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LlmError::Transport { message } if message.contains(&program.display().to_string())),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let running = dir.path().join("running");
    std::fs::create_dir(&running).unwrap();
    let counts = dir.path().join("counts");
    let program = stand_in(
        dir.path(),
        &format!(
            r#"mkdir '{running}/'$$
ls '{running}' | wc -l >> '{counts}'
sleep 0.3
rmdir '{running}/'$$
echo '{{"type":"result","subtype":"success","is_error":false,"result":"ok"}}'"#,
            running = running.display(),
            counts = counts.display()
        ),
    );
    let client = Arc::new(client(program, None, Duration::from_secs(20)));
    let started = Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let client = Arc::clone(&client);
            tokio::spawn(async move { run(&client).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().text, "ok");
    }
    let seen: Vec<u32> = std::fs::read_to_string(&counts)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(seen.len(), 6);
    let most = seen.iter().copied().max().unwrap();
    assert!(
        most <= 2,
        "{most} stand-ins ran at once with a limit of 2: {seen:?}"
    );
    // Six runs of 0.3 s, two at a time, take at least three rounds.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn build_client_runs_the_cli_and_rejects_a_zero_limit() {
    let dir = tempfile::tempdir().unwrap();
    let program = stand_in(
        dir.path(),
        r#"echo '{"type":"result","subtype":"success","is_error":false,"result":"hi"}'"#,
    );
    let config = ModelConfig::from_parts("claude-cli", Some("haiku"), None, None).unwrap();
    let mut options = RuntimeOptions::default()
        .with_claude_cli(ClaudeCliOptions::default().with_program(program));
    let client = build_client_with(&config, &options).unwrap();
    let mut answer = client.complete(&request()).await;
    for _ in 0..5 {
        match &answer {
            Err(LlmError::Transport { message }) if message.contains("Text file busy") => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                answer = client.complete(&request()).await;
            }
            _ => break,
        }
    }
    assert_eq!(answer.unwrap().text, "hi");

    options.claude_cli.max_concurrent = 0;
    let e = build_client_with(&config, &options).err().unwrap();
    assert!(
        matches!(e, Error::InvalidField { ref field, .. } if field == "claude_cli.max_concurrent"),
        "{e}"
    );
}
