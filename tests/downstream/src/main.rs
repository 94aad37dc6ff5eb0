//! A downstream service's view of `kgents` (default features): decay a pheromone, sense a field,
//! assess a proposal and run a cognitive probe against a hand-written model. Prints what it did
//! and exits non-zero when any result is not the one the design promises.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use kgents::kgents_core::decay::{HalfLife, Intensity, intensity_at};
use kgents::kgents_core::field::{Pheromone, PheromoneField, PheromoneType, SenseQuery};
use kgents::kgents_ghost::ThreadTimer;
use kgents::kgents_probes::{
    Completion, CompletionRequest, EchoProbe, LlmClient, LlmError, ProbeRunner, RunnerConfig,
    Verdict,
};
use kgents::kgents_risk::{
    ChangeType, Decision, LedgerSnapshot, ProposalInput, ProposerKind, RiskLevel, RiskPolicy,
    assess,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A model that answers with the last word of the prompt (the nonce of an echo challenge).
struct Parrot;

#[async_trait]
impl LlmClient for Parrot {
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, LlmError> {
        let word = request.user.split_whitespace().last().unwrap_or_default();
        Ok(Completion {
            text: word.to_owned(),
            input_tokens: None,
            output_tokens: None,
            latency: Duration::from_millis(1),
        })
    }
}

/// A model that answers what the first implementation once passed as healthy.
struct Liar;

#[async_trait]
impl LlmClient for Liar {
    async fn complete(&self, _: &CompletionRequest) -> Result<Completion, LlmError> {
        Ok(Completion {
            text: "UNHEALTHY".to_owned(),
            input_tokens: None,
            output_tokens: None,
            latency: Duration::from_millis(1),
        })
    }
}

/// Collects the checks and prints each one.
#[derive(Default)]
struct Checks {
    failed: usize,
}

impl Checks {
    fn check(&mut self, what: &str, ok: bool, detail: impl std::fmt::Display) {
        println!("{} {what}: {detail}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            self.failed += 1;
        }
    }
}

fn main() -> ExitCode {
    let mut checks = Checks::default();
    let now = Timestamp::from_second(1_800_000_000).expect("a valid instant");
    let minutes_ago = |m: i64| now - SignedDuration::from_mins(m);

    // Decay: one half-life halves the intensity; DREAM decays with twice the half-life.
    let half = intensity_at(Intensity::ONE, HalfLife::DEFAULT, minutes_ago(10), now).get();
    checks.check(
        "decay after one half-life",
        (half - 0.5).abs() < 1e-12,
        half,
    );

    // Sense: a targeted field ranks by current intensity and leaves out other targets.
    let signals = [
        Pheromone::new(PheromoneType::Warning, "l-gent", minutes_ago(20)),
        Pheromone::new(PheromoneType::Opportunity, "k-gent", minutes_ago(1)).targeting("b-gent"),
        Pheromone::new(PheromoneType::Warning, "t-gent", minutes_ago(1)).targeting("x-gent"),
        Pheromone::new(PheromoneType::Dream, "n-gent", minutes_ago(20)),
    ];
    let field = PheromoneField::new(&signals);
    let sensed = field.sense(&SenseQuery::all().for_target("b-gent"), now);
    let order: Vec<&str> = sensed.iter().map(|s| s.signal.source.as_str()).collect();
    checks.check(
        "sense for b-gent, strongest first",
        order == ["k-gent", "n-gent", "l-gent"],
        format!("{order:?}"),
    );

    // Assess: scaling an agent, filed by an agent, with nothing else going on, is LOW and
    // merges without review; deleting memory is riskier.
    let scale = ProposalInput::new(
        "scale-b",
        "kgents",
        "system:serviceaccount:kgents:b-gent",
        ProposerKind::Agent,
        ChangeType::AgentScale,
    );
    let ledger = LedgerSnapshot::new();
    let policy = RiskPolicy::default();
    let assessment = assess(&scale, &ledger, &policy, now);
    checks.check(
        "assess AGENT_SCALE",
        assessment.level == RiskLevel::Low && assessment.decision == Decision::AutoApprove,
        &assessment,
    );
    let delete = ProposalInput::new(
        "drop-memory",
        "kgents",
        "system:serviceaccount:kgents:b-gent",
        ProposerKind::Agent,
        ChangeType::MemoryDelete,
    );
    let assessment = assess(&delete, &ledger, &policy, now);
    checks.check(
        "assess MEMORY_DELETE by an agent",
        assessment.level == RiskLevel::High && assessment.decision == Decision::Block,
        &assessment,
    );

    // Probe: an exact echo is healthy; "UNHEALTHY" is not, whatever the nonce.
    let runner = match ProbeRunner::new(Arc::new(ThreadTimer), RunnerConfig::default()) {
        Ok(runner) => runner,
        Err(err) => {
            println!("FAIL probe runner: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut rng = StdRng::seed_from_u64(7);
    for (name, client, expected) in [
        (
            "echo probe of a parrot",
            Arc::new(Parrot) as Arc<dyn LlmClient>,
            Verdict::Healthy,
        ),
        ("echo probe of a liar", Arc::new(Liar), Verdict::Unhealthy),
    ] {
        let probe = EchoProbe::new(client);
        let outcome = futures::executor::block_on(runner.run(&probe, &mut rng));
        checks.check(
            name,
            outcome.verdict() == expected,
            format!("{} ({})", outcome.verdict(), outcome.reason()),
        );
    }

    if checks.failed == 0 {
        println!("downstream check passed");
        ExitCode::SUCCESS
    } else {
        println!("downstream check: {} check(s) failed", checks.failed);
        ExitCode::FAILURE
    }
}
