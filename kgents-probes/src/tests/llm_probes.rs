//! The echo, reasoning and json probes against mocked clients: right answers, substring traps,
//! slow, empty, failing, huge and non-ASCII replies.

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;

use super::{Silent, Slow, failing, replying, rng, runner};
use crate::challenge::{Challenge, Operation, ProbeKind};
use crate::client::{LlmClient, LlmError, MockLlmClient};
use crate::outcome::{MAX_REPLY_BYTES, ProbeOutcome, Verdict};
use crate::probe::{EchoProbe, JsonProbe, Probe, ReasoningProbe};

fn echo_challenge() -> (Challenge, String) {
    let challenge = Challenge::echo(&mut rng());
    let Challenge::Echo { nonce } = &challenge else {
        unreachable!("Challenge::echo draws an echo challenge")
    };
    let nonce = nonce.clone();
    (challenge, nonce)
}

async fn run(probe: &dyn Probe, challenge: Challenge) -> ProbeOutcome {
    runner()
        .run_challenge(probe, challenge)
        .await
        .expect("challenge kind matches the probe")
}

async fn echo_reply(reply: &str) -> ProbeOutcome {
    let (challenge, nonce) = echo_challenge();
    let probe = EchoProbe::new(Arc::new(replying(&nonce, reply)));
    run(&probe, challenge).await
}

#[tokio::test(start_paused = true)]
async fn echo_accepts_the_exact_nonce() {
    let (_, nonce) = echo_challenge();
    for reply in [nonce.clone(), format!("  {nonce}\n"), format!("{nonce}.")] {
        let outcome = echo_reply(&reply).await;
        assert_eq!(
            outcome.verdict(),
            Verdict::Healthy,
            "{reply:?}: {}",
            outcome.reason()
        );
        assert_eq!(outcome.detail().reply.as_ref().unwrap().text, reply);
    }
}

#[tokio::test(start_paused = true)]
async fn echo_rejects_substring_traps() {
    let (_, nonce) = echo_challenge();
    let traps = [
        "UNHEALTHY".to_owned(),
        "HEALTHY".to_owned(),
        "I am not healthy".to_owned(),
        format!("Sure! The token is {nonce}"),
        format!("{nonce} is the token"),
        format!("\"{nonce}\""),
        format!("`{nonce}`"),
        nonce.to_uppercase(),
        format!("{nonce}{nonce}"),
        format!("{nonce}.."),
        format!("{nonce}!"),
        nonce[..nonce.len() - 1].to_owned(),
    ];
    for reply in traps {
        let outcome = echo_reply(&reply).await;
        assert_eq!(outcome.verdict(), Verdict::Unhealthy, "{reply:?} must fail");
        assert!(
            outcome.reason().contains(&nonce),
            "reason names the nonce: {}",
            outcome.reason()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn empty_and_whitespace_replies_are_wrong() {
    for reply in ["", "   \n\t", "."] {
        let outcome = echo_reply(reply).await;
        assert_eq!(outcome.verdict(), Verdict::Unhealthy, "{reply:?}");
        assert!(
            outcome.reason().contains("empty reply"),
            "{}",
            outcome.reason()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn non_ascii_replies_are_judged_without_panicking() {
    let (_, nonce) = echo_challenge();
    let fullwidth: String = nonce
        .chars()
        .map(|c| char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap())
        .collect();
    for reply in [
        fullwidth,
        format!("{nonce}\u{200B}"),
        format!("\u{FEFF}{nonce}"),
        "\u{FFFD}\u{FFFD}\u{FFFD}".to_owned(),
        "健康です 🦀".to_owned(),
        "\u{0}\u{7}\u{1b}[31m".to_owned(),
    ] {
        let outcome = echo_reply(&reply).await;
        assert_eq!(outcome.verdict(), Verdict::Unhealthy, "{reply:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn huge_replies_are_judged_and_truncated_on_a_char_boundary() {
    let (_, nonce) = echo_challenge();
    // A megabyte of three-byte characters: 512 is not a multiple of 3.
    let huge = "健".repeat(350_000);
    let outcome = echo_reply(&huge).await;
    assert_eq!(outcome.verdict(), Verdict::Unhealthy);
    let reply = outcome.detail().reply.as_ref().unwrap();
    assert!(reply.is_truncated());
    assert_eq!(reply.total_bytes, huge.len());
    assert_eq!(reply.text.len(), 510);
    assert!(
        outcome.reason().len() < 400,
        "the reason quotes only a prefix"
    );

    // Correct answer padded with a megabyte of whitespace: still exactly the nonce.
    let padded = format!("{nonce}{}", " ".repeat(1 << 20));
    let outcome = echo_reply(&padded).await;
    assert_eq!(outcome.verdict(), Verdict::Healthy);
    assert_eq!(
        outcome.detail().reply.as_ref().unwrap().text.len(),
        MAX_REPLY_BYTES
    );
}

#[tokio::test(start_paused = true)]
async fn slow_correct_answers_are_degraded_and_at_the_budget_still_healthy() {
    let (challenge, nonce) = echo_challenge();
    for (delay, expected) in [
        (Duration::from_millis(4_999), Verdict::Healthy),
        (Duration::from_secs(5), Verdict::Healthy),
        (Duration::from_millis(5_001), Verdict::Degraded),
        (Duration::from_secs(9), Verdict::Degraded),
    ] {
        let client = Slow {
            inner: replying(&nonce, &nonce),
            delay,
        };
        let outcome = run(&EchoProbe::new(Arc::new(client)), challenge.clone()).await;
        assert_eq!(outcome.verdict(), expected, "after {delay:?}");
        assert_eq!(outcome.latency(), delay);
    }
}

#[tokio::test(start_paused = true)]
async fn slow_wrong_answers_are_unhealthy_not_degraded() {
    let (challenge, nonce) = echo_challenge();
    let client = Slow {
        inner: replying(&nonce, "UNHEALTHY"),
        delay: Duration::from_secs(7),
    };
    let outcome = run(&EchoProbe::new(Arc::new(client)), challenge).await;
    assert_eq!(outcome.verdict(), Verdict::Unhealthy);
}

#[tokio::test(start_paused = true)]
async fn a_model_that_never_answers_is_unresponsive_at_the_timeout() {
    let outcome = runner()
        .run(&EchoProbe::new(Arc::new(Silent)), &mut rng())
        .await;
    assert_eq!(outcome.verdict(), Verdict::Unresponsive);
    assert_eq!(outcome.latency(), Duration::from_secs(10));
    assert!(outcome.detail().reply.is_none());
    assert!(
        outcome.reason().contains("10s timeout"),
        "{}",
        outcome.reason()
    );

    // An answer after the deadline is too late, even if correct.
    let (challenge, _) = echo_challenge();
    let late = Slow {
        inner: MockLlmClient::new(), // never reached: the call is dropped at the deadline
        delay: Duration::from_secs(11),
    };
    let outcome = run(&EchoProbe::new(Arc::new(late)), challenge).await;
    assert_eq!(outcome.verdict(), Verdict::Unresponsive);
    assert_eq!(outcome.latency(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn every_runtime_error_is_unresponsive_with_its_explanation() {
    let errors = [
        LlmError::Timeout {
            after: Duration::from_secs(60),
        },
        LlmError::Transport {
            message: "connection refused".into(),
        },
        LlmError::RateLimited {
            retry_after: Some(Duration::from_secs(30)),
        },
        LlmError::Auth {
            message: "invalid x-api-key".into(),
        },
        LlmError::Provider {
            status: Some(529),
            message: "overloaded".into(),
        },
        LlmError::BadResponse {
            message: "missing content".into(),
        },
    ];
    for error in errors {
        let expected = error.to_string();
        let probe = ReasoningProbe::new(Arc::new(failing(error)));
        let outcome = runner().run(&probe, &mut rng()).await;
        assert_eq!(outcome.verdict(), Verdict::Unresponsive);
        assert!(outcome.reason().contains(&expected), "{}", outcome.reason());
        assert!(outcome.detail().reply.is_none());
    }
}

async fn reasoning_reply(operation: Operation, lhs: u32, rhs: u32, reply: &str) -> ProbeOutcome {
    let challenge = Challenge::Reasoning {
        operation,
        lhs,
        rhs,
    };
    let symbol = if operation == Operation::Sum {
        "+"
    } else {
        "*"
    };
    let client = replying(&format!("{lhs} {symbol} {rhs}"), reply);
    run(&ReasoningProbe::new(Arc::new(client)), challenge).await
}

#[tokio::test(start_paused = true)]
async fn reasoning_accepts_exactly_the_integer() {
    for reply in ["12", " 12\n", "12."] {
        let outcome = reasoning_reply(Operation::Sum, 5, 7, reply).await;
        assert_eq!(outcome.verdict(), Verdict::Healthy, "{reply:?}");
    }
    let outcome = reasoning_reply(Operation::Product, 47, 83, "3901").await;
    assert_eq!(outcome.verdict(), Verdict::Healthy);
}

#[tokio::test(start_paused = true)]
async fn reasoning_rejects_near_misses() {
    for reply in [
        "112",
        "121",
        "13",
        "-12",
        "012",
        "+12",
        "12.0",
        "1 2",
        "12 13",
        "12\n13",
        "The answer is 12",
        "12 is the answer",
        "twelve",
        "１２",
        "12..",
        "'12'",
        "1,2",
        "UNHEALTHY",
        "",
    ] {
        let outcome = reasoning_reply(Operation::Sum, 5, 7, reply).await;
        assert_eq!(outcome.verdict(), Verdict::Unhealthy, "{reply:?} must fail");
        assert!(outcome.reason().contains("12"), "{}", outcome.reason());
    }
    let outcome = reasoning_reply(Operation::Product, 47, 83, "3,901").await;
    assert_eq!(outcome.verdict(), Verdict::Unhealthy);
    let outcome = reasoning_reply(Operation::Sum, 5, 7, "112").await;
    assert_eq!(outcome.reason(), "wrong answer: expected 12, got 112");
}

#[tokio::test(start_paused = true)]
async fn reasoning_draws_fresh_challenges_and_asks_for_them() {
    let mut rng = rng();
    let probe = ReasoningProbe::new(Arc::new(Echoing));
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let outcome = runner().run(&probe, &mut rng).await;
        // `Echoing` answers the last number of the prompt, never the result.
        assert_eq!(outcome.verdict(), Verdict::Unhealthy);
        seen.insert(outcome.detail().challenge.clone());
    }
    assert!(
        seen.len() >= 18,
        "challenges repeat too often: {}",
        seen.len()
    );
}

/// Answers the first integer in the prompt (a model that copies instead of computing).
struct Echoing;

#[async_trait::async_trait]
impl LlmClient for Echoing {
    async fn complete(
        &self,
        request: &crate::client::CompletionRequest,
    ) -> Result<crate::client::Completion, LlmError> {
        let number = request
            .user
            .split(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())
            .unwrap_or_default();
        Ok(super::completion(number))
    }
}

async fn json_reply(reply: &str) -> ProbeOutcome {
    let challenge = Challenge::Json { nonce: 424_242_424 };
    let client = replying("424242424", reply);
    run(&JsonProbe::new(Arc::new(client)), challenge).await
}

#[tokio::test(start_paused = true)]
async fn json_accepts_the_object_bare_pretty_or_in_one_fence() {
    for reply in [
        r#"{"status":"alive","nonce":424242424}"#,
        r#"{"nonce": 424242424, "status": "alive"}"#,
        "{\n  \"status\": \"alive\",\n  \"nonce\": 424242424\n}\n",
        "```json\n{\"status\":\"alive\",\"nonce\":424242424}\n```",
        "```JSON\n{\"status\":\"alive\",\"nonce\":424242424}\n```\n",
        "```\n{\"status\":\"alive\",\"nonce\":424242424}\n```",
        r#"```{"status":"alive","nonce":424242424}```"#,
        r#"{"status":"alive","nonce":424242424}."#,
    ] {
        let outcome = json_reply(reply).await;
        assert_eq!(
            outcome.verdict(),
            Verdict::Healthy,
            "{reply:?}: {}",
            outcome.reason()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn json_rejects_anything_else() {
    for reply in [
        r#"{"status":"alive","nonce":424242425}"#,
        r#"{"status":"ALIVE","nonce":424242424}"#,
        r#"{"status":"alive","nonce":"424242424"}"#,
        r#"{"status":"alive","nonce":424242424.0}"#,
        r#"{"status":"alive","nonce":4.24242424e8}"#,
        r#"{"status":"alive","nonce":-424242424}"#,
        r#"{"status":"alive"}"#,
        r#"{"status":"alive","nonce":424242424,"healthy":true}"#,
        r#"{"status":"dead","nonce":1,"status":"alive","nonce":424242424}"#,
        r#"{'status':'alive','nonce':424242424}"#,
        r#"[{"status":"alive","nonce":424242424}]"#,
        r#"{"status":"alive","nonce":424242424}{"status":"alive","nonce":424242424}"#,
        "Here it is: {\"status\":\"alive\",\"nonce\":424242424}",
        "```json\n{\"status\":\"alive\",\"nonce\":424242424}\n```\nHope this helps!",
        "```yaml\nstatus: alive\nnonce: 424242424\n```",
        "```json\n{\"status\":\"alive\",\"nonce\":424242424}",
        "```json\n```json\n{\"status\":\"alive\",\"nonce\":424242424}\n```\n```",
        "status alive nonce 424242424",
        "UNHEALTHY",
        "null",
        "",
        "```",
    ] {
        let outcome = json_reply(reply).await;
        assert_eq!(outcome.verdict(), Verdict::Unhealthy, "{reply:?} must fail");
    }
    let outcome = json_reply(r#"{"status":"alive","nonce":1}"#).await;
    assert_eq!(
        outcome.reason(),
        "wrong answer: expected \"nonce\":424242424, got \"nonce\":1"
    );
}

#[tokio::test(start_paused = true)]
async fn json_survives_deeply_nested_and_huge_replies() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let outcome = json_reply(&deep).await;
    assert_eq!(outcome.verdict(), Verdict::Unhealthy);
    let huge = format!(
        r#"{{"status":"alive","nonce":424242424,"pad":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    let outcome = json_reply(&huge).await;
    assert_eq!(outcome.verdict(), Verdict::Unhealthy);
    assert!(outcome.detail().reply.as_ref().unwrap().is_truncated());
}

#[tokio::test(start_paused = true)]
async fn each_llm_probe_draws_its_own_kind() {
    let client: Arc<dyn LlmClient> = Arc::new(Silent);
    let probes: [(&dyn Probe, ProbeKind); 3] = [
        (&EchoProbe::new(client.clone()), ProbeKind::Echo),
        (&ReasoningProbe::new(client.clone()), ProbeKind::Reasoning),
        (&JsonProbe::new(client), ProbeKind::Json),
    ];
    let mut rng = rng();
    for (probe, kind) in probes {
        assert_eq!(probe.kind(), kind);
        for _ in 0..10 {
            assert_eq!(probe.draw(&mut rng as &mut dyn RngCore).kind(), kind);
        }
    }
}
