//! Renderings (pure): the compact row of each item (what a model needs, few tokens), and the
//! text rendering that accompanies every structured result.

use kgents_ghost::snapshot::{AgentSummary, ProposalSummary};
use kgents_logos::outcome::{
    Emitted, HeatRow, ProposalRecord, RiskPreview, SensedPheromone, ServerVerdict,
};
use kgents_logos::summary::enum_name;
use serde::Serialize;
use serde_json::{Value, json};

use crate::uri::Detail;

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// An item as JSON, compact or whole.
pub fn item<T: Serialize>(value: &T, detail: Detail, compact: impl Fn(&T) -> Value) -> Value {
    match detail {
        Detail::Summary => compact(value),
        Detail::Full => serde_json::to_value(value).unwrap_or(Value::Null),
    }
}

/// An agent's row.
pub fn agent_row(a: &AgentSummary) -> Value {
    json!({
        "namespace": a.namespace,
        "name": a.name.to_string(),
        "genus": a.genus,
        "phase": a.phase,
        "ready": format!("{}/{}", a.ready_replicas, a.replicas),
        "health": a.cognitive_health,
    })
}

/// A sensed signal's row.
pub fn pheromone_row(p: &SensedPheromone) -> Value {
    json!({
        "namespace": p.namespace,
        "name": p.name,
        "type": enum_name(&p.pheromone_type),
        "source": p.source,
        "target": p.target,
        "intensity": round3(p.intensity),
        "evaporates_in_seconds": p.evaporates_in_seconds.round(),
    })
}

/// A proposal's row.
pub fn proposal_row(p: &ProposalRecord) -> Value {
    proposal_summary_row(&p.summary)
}

/// A proposal's row from its summary.
pub fn proposal_summary_row(s: &ProposalSummary) -> Value {
    json!({
        "namespace": s.namespace,
        "name": s.name,
        "proposer": s.proposer,
        "change_type": s.change_type,
        "target": s.target,
        "risk_level": s.risk_level,
        "risk_score": round3(s.risk_score),
        "phase": s.phase,
    })
}

/// Heat rows, rounded.
pub fn heat(rows: &[HeatRow]) -> Value {
    Value::Array(
        rows.iter()
            .map(|h| {
                json!({
                    "type": enum_name(&h.pheromone_type),
                    "count": h.count,
                    "sum": round3(h.sum),
                    "max": round3(h.max),
                })
            })
            .collect(),
    )
}

fn field(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// Text lines for listing items (one per item), from their rows (or full objects).
pub fn item_lines(kind: &str, items: &[Value]) -> String {
    let mut out = String::new();
    for v in items {
        let line = match kind {
            "agents" => format!(
                "{}/{}  {}  ready {}  health {}",
                field(v, "namespace"),
                field(v, "name"),
                field(v, "phase"),
                v.get("ready")
                    .map(|_| field(v, "ready"))
                    .unwrap_or_else(|| format!(
                        "{}/{}",
                        field(v, "ready_replicas"),
                        field(v, "replicas")
                    )),
                v.get("health")
                    .map(|_| field(v, "health"))
                    .unwrap_or_else(|| field(v, "cognitive_health")),
            ),
            "pheromones" => format!(
                "{} {:.3}  {} -> {}  {}/{}",
                v.get("type")
                    .map(|_| field(v, "type"))
                    .unwrap_or_else(|| field(v, "pheromone_type")),
                v.get("intensity").and_then(Value::as_f64).unwrap_or(0.0),
                field(v, "source"),
                v.get("target")
                    .filter(|t| !t.is_null())
                    .map(|_| field(v, "target"))
                    .unwrap_or_else(|| "*".into()),
                field(v, "namespace"),
                field(v, "name"),
            ),
            "proposals" => format!(
                "{}/{}  {} {}  risk {} {}  {}",
                field(v, "namespace"),
                field(v, "name"),
                field(v, "change_type"),
                field(v, "target"),
                field(v, "risk_level"),
                field(v, "risk_score"),
                field(v, "phase"),
            ),
            _ => v.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The text of a listing page: a header, a line per item, and the note when it continues.
pub fn listing_text(kind: &str, total: usize, items: &[Value], note: Option<&str>) -> String {
    let mut out = format!("{kind}: {} of {total}\n", items.len());
    out.push_str(&item_lines(kind, items));
    if let Some(note) = note {
        out.push_str(note);
        out.push('\n');
    }
    out
}

/// The text of an emitted pheromone.
pub fn emitted_text(e: &Emitted) -> String {
    format!(
        "emitted {} {}/{} from {} to {} (intensity {:.2}, half-life {} min{})\n",
        enum_name(&e.pheromone_type),
        e.namespace,
        e.name,
        e.source,
        e.target.as_deref().unwrap_or("everyone"),
        e.intensity,
        e.half_life_minutes,
        e.evaporates_at
            .map(|t| format!(", evaporates at {t}"))
            .unwrap_or_default()
    )
}

/// The text of a server verdict.
pub fn verdict_text(v: &ServerVerdict) -> String {
    match v {
        ServerVerdict::Admitted { phase } => format!(
            "admitted{}",
            phase
                .as_deref()
                .map(|p| format!(" (phase {p})"))
                .unwrap_or_default()
        ),
        ServerVerdict::Denied { code, message } => format!("denied ({code}): {message}"),
        ServerVerdict::NotSent => "not sent (the local preview denies it)".into(),
    }
}

/// The text of a risk preview.
pub fn preview_text(p: &RiskPreview) -> String {
    let mut out = match &p.risk {
        Some(risk) => format!(
            "risk {} (score {:.2}): the preview {}\n",
            risk.level,
            risk.score,
            if p.allowed { "admits it" } else { "denies it" }
        ),
        None => format!(
            "risk not assessed: the preview {}\n",
            if p.allowed { "admits it" } else { "denies it" }
        ),
    };
    for reason in &p.reasons {
        out.push_str(&format!("  reason: {reason}\n"));
    }
    for warning in &p.warnings {
        out.push_str(&format!("  warning: {warning}\n"));
    }
    out.push_str(&format!(
        "  requester {}, policy {}\n",
        p.requester, p.policy
    ));
    out
}
