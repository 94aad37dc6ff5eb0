//! The judging rules as pure functions, and properties over generated challenges.

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::challenge::{Challenge, Judgement, Operation, normalize, parse_canonical_integer};

#[test]
fn normalising_removes_whitespace_and_one_period_only() {
    assert_eq!(normalize("  12.\n"), "12");
    assert_eq!(normalize("12.."), "12.");
    assert_eq!(normalize("12 ."), "12 ");
    assert_eq!(normalize("\"12\""), "\"12\"");
    assert_eq!(normalize(""), "");
}

#[test]
fn canonical_integers_only() {
    assert_eq!(parse_canonical_integer("0"), Some(0));
    assert_eq!(parse_canonical_integer("-7"), Some(-7));
    assert_eq!(parse_canonical_integer("9801"), Some(9801));
    for text in [
        "", "-", "-0", "00", "012", "+1", "1e3", "1_000", "1,000", " 1", "٣", "１",
    ] {
        assert_eq!(parse_canonical_integer(text), None, "{text:?}");
    }
    // Longer than any i128: rejected, not a panic.
    assert_eq!(parse_canonical_integer(&"9".repeat(200)), None);
}

#[test]
fn prompts_carry_the_challenge_and_expected_answers_are_exact() {
    let sum = Challenge::Reasoning {
        operation: Operation::Sum,
        lhs: 347,
        rhs: 589,
    };
    assert_eq!(sum.expected(), "936");
    assert!(sum.prompt().unwrap().contains("347 + 589"));
    let product = Challenge::Reasoning {
        operation: Operation::Product,
        lhs: u32::MAX,
        rhs: u32::MAX,
    };
    // Computed in u64: no overflow at the extremes.
    assert_eq!(
        product.expected_integer(),
        Some(u64::from(u32::MAX) * u64::from(u32::MAX))
    );
    let json = Challenge::Json { nonce: 123_456_789 };
    assert_eq!(json.expected(), r#"{"status":"alive","nonce":123456789}"#);
    assert!(json.prompt().unwrap().contains("123456789"));
    let path = Challenge::Path {
        path: "concept.define".parse().unwrap(),
    };
    assert!(path.prompt().is_none());
    assert_eq!(
        path.judge(" \n"),
        Judgement::Wrong("the resolver returned an empty answer".into())
    );
    assert!(path.judge("a definition").is_correct());
}

#[test]
fn challenges_serialise_with_their_kind() {
    let challenge = Challenge::Path {
        path: "world.cluster.agents.manifest".parse().unwrap(),
    };
    let json = serde_json::to_value(&challenge).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"kind": "Path", "path": "world.cluster.agents.manifest"})
    );
    assert_eq!(
        serde_json::from_value::<Challenge>(json).unwrap(),
        challenge
    );
    let bad = serde_json::json!({"kind": "Path", "path": "nowhere.at.all"});
    assert!(serde_json::from_value::<Challenge>(bad).is_err());
}

fn any_reasoning() -> impl Strategy<Value = Challenge> {
    (any::<bool>(), any::<u32>(), any::<u32>()).prop_map(|(sum, lhs, rhs)| Challenge::Reasoning {
        operation: if sum {
            Operation::Sum
        } else {
            Operation::Product
        },
        lhs,
        rhs,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn drawn_challenges_stay_in_their_ranges(seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        match Challenge::echo(&mut rng) {
            Challenge::Echo { nonce } => {
                prop_assert_eq!(nonce.len(), 10);
                prop_assert!(nonce.bytes().all(|b| b"abcdefghjkmnpqrstuvwxyz23456789".contains(&b)));
            }
            other => prop_assert!(false, "not an echo challenge: {other:?}"),
        }
        match Challenge::reasoning(&mut rng) {
            Challenge::Reasoning { operation: Operation::Sum, lhs, rhs } => {
                prop_assert!((100..=999).contains(&lhs) && (100..=999).contains(&rhs));
            }
            Challenge::Reasoning { operation: Operation::Product, lhs, rhs } => {
                prop_assert!((12..=99).contains(&lhs) && (12..=99).contains(&rhs));
            }
            other => prop_assert!(false, "not a reasoning challenge: {other:?}"),
        }
        match Challenge::json(&mut rng) {
            Challenge::Json { nonce } => prop_assert!((100_000_000..=999_999_999).contains(&nonce)),
            other => prop_assert!(false, "not a json challenge: {other:?}"),
        }
    }

    #[test]
    fn a_correct_reply_to_any_drawn_challenge_passes(seed in any::<u64>(), pad in "[ \t\n]{0,3}", period in any::<bool>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        for challenge in [Challenge::echo(&mut rng), Challenge::reasoning(&mut rng), Challenge::json(&mut rng)] {
            let dot = if period { "." } else { "" };
            let reply = format!("{pad}{}{dot}{pad}", challenge.expected());
            prop_assert_eq!(challenge.judge(&reply), Judgement::Correct, "{:?} to {}", reply, challenge);
        }
    }

    #[test]
    fn the_right_integer_passes_and_every_other_integer_fails(
        challenge in any_reasoning(),
        other in any::<i64>(),
        delta in -1_000i128..=1_000,
        digit in 0i128..=9,
    ) {
        let expected = i128::from(challenge.expected_integer().unwrap());
        prop_assert!(challenge.judge(&expected.to_string()).is_correct());
        // Arbitrary integers, near misses, and the answer with a digit appended or prepended
        // (the "112" for 12 trap).
        let candidates = [
            i128::from(other),
            expected + delta,
            expected * 10 + digit,
            (digit + 1) * 10i128.pow(expected.to_string().len() as u32) + expected,
            -expected,
        ];
        for candidate in candidates {
            if candidate != expected {
                prop_assert!(
                    !challenge.judge(&candidate.to_string()).is_correct(),
                    "{} accepted for {}", candidate, expected
                );
            }
        }
    }

    #[test]
    fn the_answer_with_extra_digits_or_words_fails(challenge in any_reasoning(), prefix in "[0-9]{1,3}|[A-Za-z ]{1,12}", suffix in "[0-9]{1,3}|[A-Za-z ]{1,12}") {
        let expected = challenge.expected_integer().unwrap().to_string();
        let padded_front = format!("{prefix}{expected}");
        let padded_back = format!("{expected}{suffix}");
        // A prefix of zeros followed by the number is still not canonical, and any other digit
        // changes the value; letters make it not an integer.
        prop_assert!(!challenge.judge(&padded_front).is_correct() || prefix.trim().is_empty(), "{}", padded_front);
        prop_assert!(!challenge.judge(&padded_back).is_correct() || suffix.trim().is_empty(), "{}", padded_back);
    }

    #[test]
    fn any_other_json_nonce_fails(nonce in any::<u64>(), other in any::<u64>()) {
        let challenge = Challenge::Json { nonce };
        let reply = format!(r#"{{"status":"alive","nonce":{other}}}"#);
        prop_assert_eq!(challenge.judge(&reply).is_correct(), nonce == other);
    }

    #[test]
    fn an_echo_passes_only_when_equal_after_normalising(seed in any::<u64>(), reply in "\\PC{0,16}") {
        let challenge = Challenge::echo(&mut StdRng::seed_from_u64(seed));
        let Challenge::Echo { nonce } = &challenge else { unreachable!() };
        prop_assert_eq!(challenge.judge(&reply).is_correct(), normalize(&reply) == nonce);
        let embedded = format!("{reply}{nonce}{reply}");
        prop_assert_eq!(challenge.judge(&embedded).is_correct(), normalize(&embedded) == nonce);
    }

    #[test]
    fn judging_arbitrary_text_never_panics(text in any::<String>()) {
        for challenge in [
            Challenge::Echo { nonce: "abc".into() },
            Challenge::Reasoning { operation: Operation::Sum, lhs: 1, rhs: 2 },
            Challenge::Json { nonce: 7 },
            Challenge::Path { path: "concept.define".parse().unwrap() },
        ] {
            let _ = challenge.judge(&text);
        }
    }
}
