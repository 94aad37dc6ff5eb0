//! Splitting a large Pheromone list into requests by type that the API server answers side by
//! side.
//!
//! Why: the API server builds a list's Table on one goroutine, about 15 ms per 1,000 rows on
//! the testbed, while its other cores idle. The Pheromone CRD declares `.spec.type` a selectable
//! field, so the same list can be asked as a few field-selected requests at once
//! (`spec.type=WARNING`, `spec.type=STATE`, and one `spec.type!=WARNING,spec.type!=STATE` for
//! the rest), which the server builds in parallel.
//!
//! The split is planned from the field's counts by type as last seen (a digest of the ghost
//! cache, or the view's own last list): a type gets a request of its own when it holds a
//! sizeable share, and one request always takes every other type, so the shards partition the
//! field whatever the counts were: a stale hint costs balance, never rows.
//!
//! Pure: [`plan`] and [`TypeShard`]; the requests are made in `live`.

use kgents_core::field::PheromoneType;

/// At most this many requests for one list: a few more than the cores a small API server has,
/// so that an uneven split still keeps them busy.
pub const MAX_SHARDS: usize = 4;

/// Lists of fewer Pheromones than this are asked in one request: each request costs the API
/// server a pass over every stored Pheromone, worth it only when the rows cost more.
pub const MIN_ROWS: usize = 2_000;

/// One request of a split list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeShard {
    /// The Pheromones of this type.
    Only(PheromoneType),
    /// The Pheromones of none of these types (all of them when empty).
    Except(Vec<PheromoneType>),
}

impl TypeShard {
    /// The field selector asking for this shard (`None`: no selector, every Pheromone).
    pub fn field_selector(&self) -> Option<String> {
        match self {
            TypeShard::Only(t) => Some(format!("spec.type={}", t.as_str())),
            TypeShard::Except(types) if types.is_empty() => None,
            TypeShard::Except(types) => Some(
                types
                    .iter()
                    .map(|t| format!("spec.type!={}", t.as_str()))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
    }

    /// Whether a Pheromone whose `spec.type` reads `wire` belongs to this shard (the API
    /// server's reading of [`field_selector`](Self::field_selector)).
    pub fn admits(&self, wire: &str) -> bool {
        match self {
            TypeShard::Only(t) => t.as_str() == wire,
            TypeShard::Except(types) => types.iter().all(|t| t.as_str() != wire),
        }
    }
}

/// The requests for a field last seen with `counts` Pheromones by type (types absent count 0;
/// a type named twice counts once, the larger).
///
/// The largest types get a request each, up to `MAX_SHARDS - 1` of them, while each holds at
/// least `1 / (2 * MAX_SHARDS)` of the field and the rest keeps at least as much; the last
/// request takes every other type. Fewer than [`MIN_ROWS`] Pheromones, or no type large
/// enough: one request. The result always partitions the Pheromones: every `spec.type` value,
/// known or not, is admitted by exactly one shard.
pub fn plan(counts: &[(PheromoneType, usize)]) -> Vec<TypeShard> {
    let mut by_type: Vec<(PheromoneType, usize)> = Vec::new();
    for &(t, n) in counts {
        match by_type.iter_mut().find(|(known, _)| *known == t) {
            Some((_, count)) => *count = (*count).max(n),
            None => by_type.push((t, n)),
        }
    }
    let total: usize = by_type.iter().map(|(_, n)| n).sum();
    if total < MIN_ROWS {
        return vec![TypeShard::Except(Vec::new())];
    }
    // Largest first; equal counts in the enum's order, so a plan does not depend on the
    // order the counts came in.
    by_type.sort_by(|(a, m), (b, n)| n.cmp(m).then(a.cmp(b)));
    let share = total / (2 * MAX_SHARDS);
    let mut singles = Vec::new();
    let mut rest = total;
    for (t, n) in by_type {
        if singles.len() == MAX_SHARDS - 1 || n < share || rest - n < share {
            break;
        }
        singles.push(t);
        rest -= n;
    }
    let mut shards: Vec<TypeShard> = singles.iter().copied().map(TypeShard::Only).collect();
    shards.push(TypeShard::Except(singles));
    shards
}

#[cfg(test)]
mod tests {
    use super::*;
    use PheromoneType::{Dream, ReviewRequest, State, Warning};
    use proptest::prelude::*;

    #[test]
    fn four_even_types_are_four_requests() {
        let counts = [
            (Warning, 2_500),
            (ReviewRequest, 2_500),
            (State, 2_500),
            (Dream, 2_500),
        ];
        let shards = plan(&counts);
        assert_eq!(
            shards,
            vec![
                TypeShard::Only(Warning),
                TypeShard::Only(State),
                TypeShard::Only(Dream),
                TypeShard::Except(vec![Warning, State, Dream]),
            ]
        );
        assert_eq!(
            shards[3].field_selector().as_deref(),
            Some("spec.type!=WARNING,spec.type!=STATE,spec.type!=DREAM")
        );
        assert_eq!(
            shards[0].field_selector().as_deref(),
            Some("spec.type=WARNING")
        );
    }

    #[test]
    fn small_or_one_sided_fields_are_one_request() {
        let one = vec![TypeShard::Except(Vec::new())];
        assert_eq!(plan(&[]), one);
        assert_eq!(plan(&[(Warning, 1_000), (State, 900)]), one);
        assert_eq!(plan(&[(Warning, 9_500), (State, 500)]), one);
        assert_eq!(one[0].field_selector(), None);
    }

    #[test]
    fn two_even_types_are_two_requests_not_three() {
        assert_eq!(
            plan(&[(State, 5_000), (Warning, 5_000)]),
            vec![TypeShard::Only(Warning), TypeShard::Except(vec![Warning])]
        );
    }

    fn any_type() -> impl Strategy<Value = PheromoneType> {
        proptest::sample::select(PheromoneType::ALL.to_vec())
    }

    proptest! {
        /// Whatever the hint, every stored type (and a type this crate does not know) is in
        /// exactly one request, and there are never more than MAX_SHARDS requests.
        #[test]
        fn the_shards_partition_every_type(
            counts in proptest::collection::vec((any_type(), 0usize..20_000), 0..20),
        ) {
            let shards = plan(&counts);
            prop_assert!(!shards.is_empty() && shards.len() <= MAX_SHARDS);
            let wires = PheromoneType::ALL.iter().map(|t| t.as_str()).chain(["FUTURE_TYPE"]);
            for wire in wires {
                let owners = shards.iter().filter(|s| s.admits(wire)).count();
                prop_assert_eq!(owners, 1, "{} in {:?}", wire, shards);
            }
        }

        /// A request of its own only for a type worth one, and never a last request that the
        /// hint says is (nearly) empty.
        #[test]
        fn single_type_requests_are_sizeable(
            counts in proptest::collection::vec((any_type(), 0usize..20_000), 0..20),
        ) {
            let shards = plan(&counts);
            let count = |t: PheromoneType| {
                counts.iter().filter(|(k, _)| *k == t).map(|(_, n)| *n).max().unwrap_or(0)
            };
            let total: usize = PheromoneType::ALL.iter().map(|t| count(*t)).sum();
            let share = total / (2 * MAX_SHARDS);
            let mut rest = total;
            for shard in &shards {
                if let TypeShard::Only(t) = shard {
                    prop_assert!(count(*t) >= share);
                    rest -= count(*t);
                }
            }
            if shards.len() > 1 {
                prop_assert!(rest >= share, "{:?} leaves {} of {}", shards, rest, total);
            }
        }
    }
}
