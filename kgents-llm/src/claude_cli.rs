//! The `claude -p` runtime: runs the Claude Code CLI once per completion with structured JSON
//! output and reads its final `result` object.
//!
//! Each run has stdin closed, a timeout, a capped output, and its own process group, which is
//! killed when the run times out or the call is dropped (so a probe timeout upstream also
//! ends the CLI and anything it started). A semaphore bounds how many runs exist at once.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kgents_probes::{Completion, CompletionRequest, LlmClient, LlmError};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::Semaphore;

use crate::config::{ModelConfig, Provider, RuntimeOptions, excerpt};
use crate::error::{Error, Result};

/// How much of stderr is kept for error messages.
const STDERR_CAP: usize = 16 * 1024;

/// Runs `claude -p` for each completion.
#[derive(Debug, Clone)]
pub struct ClaudeCliClient {
    program: PathBuf,
    model: Option<String>,
    extra_args: Vec<String>,
    timeout: Duration,
    max_output_bytes: usize,
    permits: Arc<Semaphore>,
}

impl ClaudeCliClient {
    /// A client for `config` (provider `claude-cli`), running
    /// [`ClaudeCliOptions::program`](crate::ClaudeCliOptions::program) with at most
    /// [`ClaudeCliOptions::max_concurrent`](crate::ClaudeCliOptions::max_concurrent) runs at once.
    pub fn new(config: &ModelConfig, options: &RuntimeOptions) -> Result<Self> {
        if config.provider() != Provider::ClaudeCli {
            return Err(Error::InvalidField {
                field: "provider".to_owned(),
                message: "the Claude CLI client needs provider claude-cli".to_owned(),
            });
        }
        if options.claude_cli.max_concurrent == 0 {
            return Err(Error::InvalidField {
                field: "claude_cli.max_concurrent".to_owned(),
                message: "0 would never run the CLI; allow at least 1 concurrent run".to_owned(),
            });
        }
        Ok(ClaudeCliClient {
            program: options.claude_cli.program.clone(),
            model: config.model().map(str::to_owned),
            extra_args: options.claude_cli.extra_args.clone(),
            timeout: options.request_timeout,
            max_output_bytes: options.max_body_bytes,
            permits: Arc::new(Semaphore::new(options.claude_cli.max_concurrent)),
        })
    }
}

/// The command-line arguments for one completion. The prompt comes last, after `--`, so a
/// prompt that starts with `-` is not read as an option. Temperature and max tokens have no
/// CLI flags and are not passed.
fn arguments(
    model: Option<&str>,
    extra_args: &[String],
    request: &CompletionRequest,
) -> Vec<String> {
    let mut args = vec![
        "-p".to_owned(),
        "--output-format".to_owned(),
        "json".to_owned(),
    ];
    if let Some(model) = model {
        args.extend(["--model".to_owned(), model.to_owned()]);
    }
    if !request.system.is_empty() {
        args.extend(["--system-prompt".to_owned(), request.system.clone()]);
    }
    args.extend(extra_args.iter().cloned());
    args.extend(["--".to_owned(), request.user.clone()]);
    args
}

/// The CLI's final `result` object.
#[derive(Debug, Deserialize)]
struct ResultMessage {
    #[serde(default)]
    subtype: Option<String>,
    #[serde(default)]
    is_error: bool,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    usage: Option<CliUsage>,
}

#[derive(Debug, Deserialize)]
struct CliUsage {
    #[serde(default)]
    input_tokens: Option<u32>,
    #[serde(default)]
    output_tokens: Option<u32>,
}

/// Finds the `result` object in the CLI's stdout, whichever shape it has: one object
/// (`--output-format json`), an array of messages (`json --verbose`), or one message per line
/// (`stream-json --verbose`). The last `result` wins. Pure.
fn find_result(stdout: &str) -> Option<serde_json::Value> {
    let is_result =
        |v: &serde_json::Value| v.get("type").and_then(serde_json::Value::as_str) == Some("result");
    if let Ok(whole) = serde_json::from_str::<serde_json::Value>(stdout) {
        return match whole {
            serde_json::Value::Array(items) => items.into_iter().rev().find(is_result),
            v if is_result(&v) => Some(v),
            _ => None,
        };
    }
    stdout
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line.trim()).ok())
        .find(is_result)
}

/// Whether the CLI's (lower-cased) error text says the model asked for does not exist: its own
/// words ("There's an issue with the selected model … It may not exist …") or the API's
/// `not_found_error` passed through.
fn names_missing_model(lower: &str) -> bool {
    lower.contains("model")
        && (lower.contains("may not exist")
            || lower.contains("does not exist")
            || lower.contains("not_found_error"))
}

/// Judges a finished run of a call for `model` (None: the CLI's default): its exit status,
/// stdout and stderr. Pure.
fn judge(
    model: Option<&str>,
    exit: Option<i32>,
    success: bool,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<Completion, LlmError> {
    let stdout = String::from_utf8_lossy(stdout);
    let stderr_note = || {
        let text = String::from_utf8_lossy(stderr);
        let text = text.trim();
        if text.is_empty() {
            String::new()
        } else {
            // The tail holds the actual error; the head is often banner or warnings.
            let start = text.len().saturating_sub(1000);
            let start = (start..text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(text.len());
            format!("; stderr: {}", &text[start..])
        }
    };
    let status_text = exit.map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"));

    let Some(value) = find_result(&stdout) else {
        if !success {
            return Err(LlmError::Provider {
                status: None,
                message: format!("claude exited with {status_text}{}", stderr_note()),
            });
        }
        return Err(LlmError::BadResponse {
            message: format!(
                "claude printed no `result` object; stdout starts with: {}",
                excerpt(stdout.trim(), 200).escape_debug()
            ),
        });
    };
    let result: ResultMessage =
        serde_json::from_value(value).map_err(|e| LlmError::BadResponse {
            message: format!("claude's `result` object is not the expected shape: {e}"),
        })?;
    let text = result.result.unwrap_or_default();
    if result.is_error || result.subtype.as_deref().is_some_and(|s| s != "success") {
        let subtype = result.subtype.as_deref().unwrap_or("error");
        let said = excerpt(text.trim(), 500);
        let lower = said.to_ascii_lowercase();
        if lower.contains("api key") || lower.contains("/login") || lower.contains("authentication")
        {
            return Err(LlmError::Auth {
                message: format!("claude reported {subtype}: {said}"),
            });
        }
        if names_missing_model(&lower) {
            let model = model.unwrap_or("(the CLI's default)");
            return Err(LlmError::ModelNotFound {
                model: model.to_owned(),
                message: format!(
                    "model '{model}' does not exist for claude: {said}; check the model name \
                     (an alias such as `sonnet` or a full name such as `claude-sonnet-4-5`)"
                ),
            });
        }
        return Err(LlmError::Provider {
            status: None,
            message: format!(
                "claude reported {subtype} (exit {status_text}): {said}{}",
                stderr_note()
            ),
        });
    }
    if !success {
        return Err(LlmError::Provider {
            status: None,
            message: format!(
                "claude exited with {status_text} after a successful result{}",
                stderr_note()
            ),
        });
    }
    let usage = result.usage.unwrap_or(CliUsage {
        input_tokens: None,
        output_tokens: None,
    });
    Ok(Completion {
        text,
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        latency: Duration::ZERO,
    })
}

/// Reads a pipe to its end, keeping at most `cap` bytes; `true` when more was offered.
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>, cap: usize) -> (Vec<u8>, bool) {
    let Some(pipe) = pipe else {
        return (Vec::new(), false);
    };
    let mut buf = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    // A read error leaves what was read so far; the exit status tells the rest.
    let _ = pipe.take(limit).read_to_end(&mut buf).await;
    let over = buf.len() > cap;
    buf.truncate(cap);
    (buf, over)
}

/// Kills a run's whole process group when dropped before being disarmed.
struct GroupKiller {
    pgid: Option<rustix::process::Pid>,
}

impl GroupKiller {
    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH (already gone) is the common, harmless outcome.
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

#[async_trait]
impl LlmClient for ClaudeCliClient {
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, LlmError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| LlmError::Transport {
                message: "the claude runtime is shutting down".to_owned(),
            })?;
        let started = Instant::now();
        let mut command = Command::new(&self.program);
        command
            .args(arguments(self.model.as_deref(), &self.extra_args, request))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = command.spawn().map_err(|e| LlmError::Transport {
            message: format!(
                "could not start {}: {e}; install Claude Code or point the runtime at the \
                 `claude` executable",
                self.program.display()
            ),
        })?;
        let mut killer = GroupKiller {
            pgid: child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .and_then(rustix::process::Pid::from_raw),
        };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let run = async {
            let (out, err, status) = tokio::join!(
                read_capped(stdout, self.max_output_bytes),
                read_capped(stderr, STDERR_CAP),
                child.wait()
            );
            (out, err, status)
        };
        let finished = tokio::time::timeout(self.timeout, run).await;
        let ((stdout, too_long), (stderr, _), status) = match finished {
            Ok(done) => done,
            Err(_) => {
                drop(killer);
                let _ = child.kill().await;
                return Err(LlmError::Timeout {
                    after: self.timeout,
                });
            }
        };
        // The CLI exited and both pipes closed. Its process id may be reused from now on, so
        // the group is no longer ours to signal.
        killer.disarm();
        let status = status.map_err(|e| LlmError::Transport {
            message: format!("waiting for {}: {e}", self.program.display()),
        })?;
        if too_long {
            return Err(LlmError::BadResponse {
                message: format!(
                    "claude printed more than {} KiB; refusing to read it",
                    self.max_output_bytes / 1024
                ),
            });
        }
        let mut completion = judge(
            self.model.as_deref(),
            status.code(),
            status.success(),
            &stdout,
            &stderr,
        )?;
        completion.latency = started.elapsed();
        if completion.text.is_empty() {
            tracing::debug!(program = %self.program.display(), "claude returned an empty result");
        }
        Ok(completion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(system: &str, user: &str) -> CompletionRequest {
        CompletionRequest {
            system: system.into(),
            user: user.into(),
            temperature: 0.0,
            max_tokens: 16,
        }
    }

    #[test]
    fn arguments_put_the_prompt_last_after_a_separator() {
        let args = arguments(
            Some("sonnet"),
            &["--max-turns".into(), "1".into()],
            &request("sys", "-what"),
        );
        assert_eq!(
            args,
            [
                "-p",
                "--output-format",
                "json",
                "--model",
                "sonnet",
                "--system-prompt",
                "sys",
                "--max-turns",
                "1",
                "--",
                "-what"
            ]
        );
        let args = arguments(None, &[], &request("", "hi"));
        assert_eq!(args, ["-p", "--output-format", "json", "--", "hi"]);
    }

    #[test]
    fn result_is_found_in_every_output_shape() {
        let single = r#"{"type":"result","subtype":"success","is_error":false,"result":"4"}"#;
        let array = r#"[{"type":"system","subtype":"init"},{"type":"result","subtype":"success","result":"4"}]"#;
        let lines = "{\"type\":\"system\",\"subtype\":\"init\"}\n\
                     {\"type\":\"assistant\",\"message\":{}}\n\
                     {\"type\":\"result\",\"subtype\":\"success\",\"result\":\"4\"}\n";
        for out in [single, array, lines] {
            let c = judge(None, Some(0), true, out.as_bytes(), b"").unwrap();
            assert_eq!(c.text, "4", "{out}");
        }
        assert!(find_result(r#"{"type":"assistant"}"#).is_none());
    }

    #[test]
    fn errors_from_the_cli_are_classified() {
        let e = judge(None, Some(1),
            false,
            br#"{"type":"result","subtype":"success","is_error":true,"result":"Invalid API key \u00b7 Please run /login"}"#,
            b"",
        )
        .unwrap_err();
        assert!(matches!(e, LlmError::Auth { .. }), "{e}");
        let e = judge(
            None,
            Some(1),
            false,
            br#"{"type":"result","subtype":"error_max_turns","is_error":true}"#,
            b"",
        )
        .unwrap_err();
        assert!(e.to_string().contains("error_max_turns"), "{e}");
        let e = judge(None, Some(2), false, b"", b"boom: cannot reach api\n").unwrap_err();
        assert!(
            e.to_string().contains("status 2") && e.to_string().contains("boom"),
            "{e}"
        );
        let e = judge(None, Some(0), true, b"hello", b"").unwrap_err();
        assert!(
            matches!(e, LlmError::BadResponse { .. }) && e.to_string().contains("hello"),
            "{e}"
        );
        let e = judge(None, None, false, b"", b"").unwrap_err();
        assert!(e.to_string().contains("a signal"), "{e}");
    }

    #[test]
    fn usage_is_read_when_present() {
        let c = judge(None, Some(0),
            true,
            br#"{"type":"result","subtype":"success","result":"ok","usage":{"input_tokens":3,"output_tokens":1,"cache_read_input_tokens":9}}"#,
            b"",
        )
        .unwrap();
        assert_eq!((c.input_tokens, c.output_tokens), (Some(3), Some(1)));
    }
}
