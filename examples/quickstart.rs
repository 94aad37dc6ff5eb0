//! A tour of the pure core: parse an AGENTESE path, check it against an Umwelt's affordances,
//! decay a pheromone, sense a field and risk-score two proposals — printing every number.
//!
//! ```sh
//! cargo run --example quickstart
//! cargo run --example quickstart -- 'time.witness.b-gent.replay'   # look up another path
//! ```

use std::time::Duration;

use anyhow::{Context as _, Result};
use jiff::{SignedDuration, Timestamp};
use kgents::kgents_core::access;
use kgents::kgents_core::agentese::{Affordances, Path, Registry};
use kgents::kgents_core::decay::{
    HalfLife, Intensity, effective_half_life, evaporates_at, intensity_at,
};
use kgents::kgents_core::field::{Pheromone, PheromoneField, PheromoneType, SenseQuery};
use kgents::kgents_risk::{
    ChangeType, LedgerProposal, LedgerSnapshot, Magnitude, ProposalInput, ProposerKind, RiskPolicy,
    assess,
};

fn main() -> Result<()> {
    let now = Timestamp::now();
    let asked = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "world.cluster.agents.manifest".to_owned());

    // 1. AGENTESE: a typed path that prints back identically, and the CLI ↔ path ↔ K8s table.
    println!("── AGENTESE ─────────────────────────────────────────────");
    let path = Path::parse(&asked).with_context(|| format!("'{asked}' is not an AGENTESE path"))?;
    println!("path      {path}");
    println!("context   {}", path.context());
    let segments: Vec<&str> = path.segments().iter().map(|s| s.as_str()).collect();
    println!("segments  {segments:?}");
    println!(
        "aspect    {}",
        path.aspect()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into())
    );
    let registry = Registry::seed();
    match registry.by_path(&path) {
        Some(found) => println!(
            "registry  `kgents {}` → {}",
            found.entry.command(),
            found.entry.operation()
        ),
        None => println!("registry  no CLI command maps to this path"),
    }

    // 2. Umwelt: affordances allow a path only when a glob matches; nothing else is allowed.
    println!("\n── Umwelt affordances (deny by default) ─────────────────");
    let globs = [
        "world.cluster.agents.manifest",
        "void.pheromone.sense",
        "concept.*.refine",
    ];
    let affordances = Affordances::parse_all(globs)?;
    println!("globs     {globs:?}");
    for candidate in [
        "world.cluster.agents.manifest",
        "void.pheromone.sense",
        "void.pheromone.emit",
        &asked,
    ] {
        let candidate = Path::parse(candidate)?;
        let verdict = match affordances.granting(&candidate) {
            Some(glob) => format!("allowed by {glob}"),
            None => "denied (no glob matches)".to_owned(),
        };
        println!("  {:<34} {verdict}", candidate.to_string());
    }
    println!("compiled into RBAC rules:");
    for rule in access::compile(&affordances).rules {
        let verbs: Vec<&str> = rule.verbs.iter().map(|v| v.as_str()).collect();
        let group = if rule.api_group.is_empty() {
            "core"
        } else {
            &rule.api_group
        };
        println!("  {group}/{}: {}", rule.resource, verbs.join(", "));
    }

    // 3. Half-life decay: computed on read, never stored.
    println!("\n── Half-life decay ──────────────────────────────────────");
    let half_life = HalfLife::from_minutes(10.0)?;
    let initial = Intensity::new(0.8)?;
    let emitted = now;
    println!(
        "WARNING   initial {:.2}, half-life {} min",
        initial.get(),
        half_life.as_minutes_f64()
    );
    for minutes in [0_i64, 5, 10, 20, 40, 60] {
        let at = emitted + SignedDuration::from_mins(minutes);
        let warning = intensity_at(initial, half_life, emitted, at);
        let dream = intensity_at(
            initial,
            effective_half_life(PheromoneType::Dream, half_life),
            emitted,
            at,
        );
        println!(
            "  t+{minutes:>2} min  WARNING {:.4}   DREAM {:.4}",
            warning.get(),
            dream.get()
        );
    }
    let gone = evaporates_at(initial, half_life, emitted, None);
    println!(
        "evaporates (below 0.01) after {:.1} min; with a 30 min TTL after {:.1} min",
        gone.duration_since(emitted).as_secs_f64() / 60.0,
        evaporates_at(initial, half_life, emitted, Some(Duration::from_secs(1800)))
            .duration_since(emitted)
            .as_secs_f64()
            / 60.0
    );

    // 4. Sensing a field: filter, rank by current intensity, aggregate heat.
    println!("\n── Pheromone field ──────────────────────────────────────");
    let minutes_ago = |m: i64| now - SignedDuration::from_mins(m);
    let signals = vec![
        Pheromone::new(PheromoneType::Warning, "b-gent", minutes_ago(2)),
        Pheromone::new(PheromoneType::Warning, "l-gent", minutes_ago(25)).targeting("b-gent"),
        Pheromone::new(PheromoneType::Opportunity, "k-gent", minutes_ago(1)).targeting("l-gent"),
        Pheromone::new(PheromoneType::Dream, "n-gent", minutes_ago(30)),
        Pheromone::new(PheromoneType::Warning, "t-gent", minutes_ago(120)),
    ];
    let field = PheromoneField::new(&signals);
    println!("what b-gent senses, strongest first:");
    for sensed in field.sense(&SenseQuery::all().for_target("b-gent"), now) {
        let target = sensed.signal.target.as_deref().unwrap_or("everyone");
        println!(
            "  {:<12} from {:<7} to {:<8} {:.4}",
            sensed.signal.pheromone_type.to_string(),
            sensed.signal.source,
            target,
            sensed.intensity.get()
        );
    }
    println!("heat per type:");
    for (kind, heat) in field.heat(now) {
        println!(
            "  {:<12} sum {:.4}  max {:.4}  live {}",
            kind.to_string(),
            heat.sum,
            heat.max.get(),
            heat.count
        );
    }
    println!(
        "evaporated and due for collection: {}",
        field.evaporated(now).len()
    );

    // 5. Risk: every factor of the score is shown.
    println!("\n── Proposal risk ────────────────────────────────────────");
    let policy = RiskPolicy::default();
    let mut ledger = LedgerSnapshot::new();
    for (i, minutes) in [5_i64, 20, 40].iter().enumerate() {
        ledger.record_proposal(
            "kgents-agents",
            LedgerProposal::new(
                format!("earlier-{i}"),
                format!("uid-{i}"),
                "system:serviceaccount:kgents-agents:b-gent",
                minutes_ago(*minutes),
            ),
        );
    }
    ledger.record_applied_change("kgents-agents", minutes_ago(180));

    let scale = ProposalInput::new(
        "b-gent-scale",
        "kgents-agents",
        "system:serviceaccount:kgents-agents:b-gent",
        ProposerKind::Agent,
        ChangeType::AgentScale,
    )
    .with_magnitude(Magnitude {
        lines_added: 1,
        lines_removed: 1,
        files_changed: 1,
        ..Magnitude::default()
    });
    let delete = ProposalInput::new(
        "l-gent-delete",
        "kgents-agents",
        "system:serviceaccount:kgents-agents:b-gent",
        ProposerKind::Agent,
        ChangeType::AgentDelete,
    );
    for proposal in [&scale, &delete] {
        let assessment = assess(proposal, &ledger, &policy, now);
        println!("{}:\n  {}", proposal.name, assessment.explain());
    }
    Ok(())
}
