//! A reviewer's verdict on a proposal, read strictly from a model's answer.
//!
//! The answer's first non-empty line must be exactly `ALLOW`, `DENY` or `ESCALATE` (case and
//! surrounding whitespace aside); the rest is the report. Anything else — another word, a
//! sentence that merely contains "ALLOW", an empty answer — is ESCALATE: humans decide. (The
//! original passed "UNHEALTHY" as healthy by substring matching.) The operator's LLM reviewer
//! asks the model; this module only reads the answer, so it is fuzzed and property-tested
//! without a model.

/// The three verdicts a reviewer may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewVerdict {
    /// The change is fine.
    Allow,
    /// The change must not be applied.
    Deny,
    /// A human must decide.
    Escalate,
}

impl ReviewVerdict {
    /// The result recorded in `status.review.result`: PASSED, FAILED or ESCALATED.
    pub const fn result(self) -> kgents_crds::proposal::ReviewResult {
        use kgents_crds::proposal::ReviewResult;
        match self {
            ReviewVerdict::Allow => ReviewResult::Passed,
            ReviewVerdict::Deny => ReviewResult::Failed,
            ReviewVerdict::Escalate => ReviewResult::Escalated,
        }
    }

    /// `ALLOW`, `DENY` or `ESCALATE`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReviewVerdict::Allow => "ALLOW",
            ReviewVerdict::Deny => "DENY",
            ReviewVerdict::Escalate => "ESCALATE",
        }
    }
}

/// A reviewer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewReport {
    /// The verdict.
    pub verdict: ReviewVerdict,
    /// What the reviewer said (or why there is no verdict), at most [`MAX_REPORT`] bytes plus
    /// an ellipsis.
    pub report: String,
}

/// Longest report stored in status, in bytes (a longer one is cut and ends with `…`).
pub const MAX_REPORT: usize = 4_000;

/// Reads a model's answer strictly (see the module documentation).
pub fn parse_answer(text: &str) -> ReviewReport {
    let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
    let first = lines.next().unwrap_or_default().trim();
    let rest: String = lines.collect::<Vec<_>>().join("\n").trim().to_owned();
    let verdict = match first.to_ascii_uppercase().as_str() {
        "ALLOW" => ReviewVerdict::Allow,
        "DENY" => ReviewVerdict::Deny,
        "ESCALATE" => ReviewVerdict::Escalate,
        _ => {
            return ReviewReport {
                verdict: ReviewVerdict::Escalate,
                report: truncate_report(format!(
                    "the reviewer's answer did not start with a line reading ALLOW, DENY or ESCALATE, so humans decide; it answered: {}",
                    text.trim()
                )),
            };
        }
    };
    ReviewReport {
        verdict,
        report: truncate_report(if rest.is_empty() {
            first.to_ascii_uppercase()
        } else {
            rest
        }),
    }
}

/// Cuts `text` to at most [`MAX_REPORT`] bytes on a character boundary, marking the cut
/// with `…`.
pub fn truncate_report(mut text: String) -> String {
    if text.len() > MAX_REPORT {
        let mut cut = MAX_REPORT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_exact_first_line_is_a_verdict() {
        let cases = [
            (
                "ALLOW\nscaling by one is fine",
                ReviewVerdict::Allow,
                "scaling by one is fine",
            ),
            (
                "  deny  \n\nreplicas too high",
                ReviewVerdict::Deny,
                "replicas too high",
            ),
            ("\n\nESCALATE", ReviewVerdict::Escalate, "ESCALATE"),
            (
                "I would ALLOW this",
                ReviewVerdict::Escalate,
                "did not start",
            ),
            ("ALLOWED\nyes", ReviewVerdict::Escalate, "did not start"),
            ("ALLOW.", ReviewVerdict::Escalate, "did not start"),
            ("", ReviewVerdict::Escalate, "did not start"),
            ("DENY ALLOW", ReviewVerdict::Escalate, "did not start"),
        ];
        for (text, verdict, fragment) in cases {
            let report = parse_answer(text);
            assert_eq!(report.verdict, verdict, "{text:?}");
            assert!(
                report.report.contains(fragment),
                "{text:?}: {}",
                report.report
            );
        }
    }

    #[test]
    fn verdicts_are_recorded_as_passed_failed_or_escalated() {
        use kgents_crds::proposal::ReviewResult;
        let table = [
            ("ALLOW\nfine", ReviewResult::Passed),
            ("DENY\nno", ReviewResult::Failed),
            ("ESCALATE\nunsure", ReviewResult::Escalated),
            ("maybe", ReviewResult::Escalated),
        ];
        for (answer, result) in table {
            assert_eq!(parse_answer(answer).verdict.result(), result, "{answer:?}");
        }
    }

    #[test]
    fn long_reports_are_cut_on_a_character_boundary() {
        let answer = format!("DENY\n{}", "é".repeat(MAX_REPORT));
        let report = parse_answer(&answer).report;
        assert!(report.ends_with('…'));
        assert!(report.len() <= MAX_REPORT + '…'.len_utf8());
    }
}
