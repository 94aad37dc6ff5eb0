//! Probe reply checking: a challenge's judgement of whatever a model answers.
//!
//! Properties: judging never panics; the expected answer is always correct, also with the
//! whitespace and the one trailing full stop `normalize` forgives; a correct verdict is exact
//! (an echo equals the nonce, an integer is the canonical expected number, a JSON reply holds
//! the nonce), so a reply that merely contains the answer, or prefixes it with a word such as
//! `NOT`, is wrong; a wrong verdict says what was expected.
#![no_main]

use std::time::Duration;

use arbitrary::{Result, Unstructured};
use kgents_core::agentese::Path;
use kgents_probes::challenge::{
    Challenge, Judgement, Operation, normalize, parse_canonical_integer,
};
use kgents_probes::runner::{Attempt, RunnerConfig, conclude};
use kgents_probes::{MAX_REPLY_BYTES, Verdict};
use libfuzzer_sys::fuzz_target;

fn challenge(u: &mut Unstructured<'_>) -> Result<Challenge> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => {
            let len = u.int_in_range(1..=16)?;
            let mut nonce = String::new();
            for _ in 0..len {
                nonce.push(*u.choose(&['a', 'k', 'z', '2', '9', '-', 'é'])?);
            }
            Challenge::Echo { nonce }
        }
        1 => Challenge::Reasoning {
            operation: if u.arbitrary()? {
                Operation::Sum
            } else {
                Operation::Product
            },
            lhs: u.arbitrary()?,
            rhs: u.arbitrary()?,
        },
        2 => Challenge::Json {
            nonce: u.arbitrary()?,
        },
        _ => Challenge::Path {
            path: Path::parse("world.cluster.agents.manifest").expect("a valid path"),
        },
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(challenge) = challenge(&mut u) else {
        return;
    };
    let latency = Duration::from_millis(u.int_in_range(0..=120_000u64).unwrap_or(0));
    let reply = String::from_utf8_lossy(u.take_rest()).into_owned();

    let _ = challenge.prompt();
    let _ = challenge.to_string();
    let expected = challenge.expected();
    if !matches!(challenge, Challenge::Path { .. }) {
        for forgiven in [
            expected.clone(),
            format!("  {expected}\n"),
            format!("{expected}."),
        ] {
            assert!(
                challenge.judge(&forgiven).is_correct(),
                "{challenge:?} must accept {forgiven:?}"
            );
        }
        for wrong in [format!("NOT {expected}"), format!("{expected} UNHEALTHY")] {
            assert!(
                !challenge.judge(&wrong).is_correct(),
                "{challenge:?} must refuse {wrong:?}"
            );
        }
    }

    let verdict = challenge.judge(&reply);
    let answer = normalize(&reply);
    match &challenge {
        Challenge::Echo { nonce } => {
            assert_eq!(verdict.is_correct(), answer == nonce, "{reply:?}");
        }
        Challenge::Reasoning { .. } => {
            let wanted = challenge.expected_integer().map(i128::from);
            assert_eq!(
                verdict.is_correct(),
                parse_canonical_integer(answer).is_some()
                    && parse_canonical_integer(answer) == wanted,
                "{reply:?}"
            );
        }
        Challenge::Json { nonce } => {
            if verdict.is_correct() {
                assert!(answer.contains(&nonce.to_string()), "{reply:?}");
                assert!(answer.contains("alive"), "{reply:?}");
            }
        }
        Challenge::Path { .. } => {
            assert_eq!(verdict.is_correct(), !answer.is_empty());
        }
    }
    let correct = verdict.is_correct();
    if let Judgement::Wrong(why) = &verdict {
        assert!(!why.is_empty());
    }

    // The runner's conclusion: healthy or degraded exactly when the answer is correct, and
    // the reply kept in status is a prefix of the reply, at most MAX_REPLY_BYTES long.
    let config = RunnerConfig::default();
    let outcome = conclude(
        challenge.clone(),
        Attempt::Replied(reply.clone()),
        latency,
        &config,
    );
    assert_eq!(
        matches!(outcome.verdict(), Verdict::Healthy | Verdict::Degraded),
        correct,
        "{outcome:?}"
    );
    if correct {
        assert_eq!(
            outcome.verdict() == Verdict::Degraded,
            latency > config.latency_budget
        );
    }
    let kept = outcome.detail().reply.as_ref().expect("a reply is kept");
    assert!(kept.text.len() <= MAX_REPLY_BYTES && reply.starts_with(&kept.text));
    assert_eq!(kept.total_bytes, reply.len());
    assert_eq!(kept.is_truncated(), reply.len() > MAX_REPLY_BYTES);
});
