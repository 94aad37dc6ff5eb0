//! The proposal reviewer's verdict, read from whatever a model answers.
//!
//! Properties: reading never panics; ALLOW or DENY only when the first non-empty line is
//! exactly that word (case and surrounding whitespace aside) — an answer that merely contains
//! the word escalates; the report is at most MAX_REPORT bytes plus the `…` marking a cut;
//! reading is deterministic.
#![no_main]

use kgents_policy::review::{MAX_REPORT, ReviewVerdict, parse_answer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let answer = String::from_utf8_lossy(data);
    let report = parse_answer(&answer);
    assert_eq!(report, parse_answer(&answer), "deterministic");
    assert!(
        report.report.len() <= MAX_REPORT + '…'.len_utf8(),
        "report of {} bytes",
        report.report.len()
    );
    let first = answer
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_ascii_uppercase();
    match report.verdict {
        ReviewVerdict::Allow => assert_eq!(first, "ALLOW", "{answer:?}"),
        ReviewVerdict::Deny => assert_eq!(first, "DENY", "{answer:?}"),
        ReviewVerdict::Escalate => {
            assert!(first != "ALLOW" && first != "DENY", "{answer:?}");
        }
    }
    // A word in front of a verdict never turns it into one.
    for prefix in ["NOT ", "I would "] {
        let hedged = format!("{prefix}{}", answer.trim_start());
        assert_ne!(
            parse_answer(&hedged).verdict,
            ReviewVerdict::Allow,
            "{hedged:?}"
        );
    }
});
