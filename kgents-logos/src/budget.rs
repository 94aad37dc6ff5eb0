//! Model-token budgets, pure: a [`Ledger`] of what each caller spent today (UTC days) against
//! its daily limit. A call **reserves** what it may spend before the model is asked (refused
//! when nothing is left, saying what was spent), then **settles** the reservation with what the
//! model reported, so concurrent calls cannot together spend more than the limit on answers.
//! No clock and no I/O here: the caller passes the day.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A UTC day, as days since the Unix epoch (budgets reset at 00:00 UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i64);

impl Day {
    /// The UTC day `at` falls in.
    pub fn of(at: Timestamp) -> Day {
        Day(at.as_second().div_euclid(86_400))
    }

    /// The day `days` days after the epoch (tests).
    pub fn from_epoch_days(days: i64) -> Day {
        Day(days)
    }
}

/// What a caller may spend today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Allowance {
    /// No limit.
    Unlimited,
    /// At most this many more tokens.
    Left(u64),
}

/// A reservation was refused: nothing is left today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted {
    /// The daily limit.
    pub limit: u64,
    /// What was spent (and is still reserved) today.
    pub spent: u64,
}

/// Tokens held for one call until it is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a reservation holds tokens until it is settled"]
pub struct Reservation {
    key: String,
    day: Day,
    limit: Option<u64>,
    held: u64,
}

impl Reservation {
    /// How many tokens the call may generate at most (`None`: no budget limits it).
    pub fn granted(&self) -> Option<u64> {
        self.limit.map(|_| self.held)
    }
}

/// What one caller spent on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spent {
    day: Day,
    tokens: u64,
}

/// Every caller's spending today (see the [module docs](self)).
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    spent: HashMap<String, Spent>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// What `key` spent on `day` (a past day's spending is forgotten).
    pub fn spent(&self, key: &str, day: Day) -> u64 {
        self.spent
            .get(key)
            .filter(|s| s.day == day)
            .map_or(0, |s| s.tokens)
    }

    /// What `key` may still spend on `day` under `limit` (`None`: unlimited).
    pub fn allowance(&self, key: &str, limit: Option<u64>, day: Day) -> Allowance {
        match limit {
            None => Allowance::Unlimited,
            Some(limit) => Allowance::Left(limit.saturating_sub(self.spent(key, day))),
        }
    }

    /// Holds up to `want` tokens for `key` on `day`: all of them when unlimited, else as many
    /// as are left.
    ///
    /// # Errors
    /// [`Exhausted`] when `limit` is set and nothing is left (nothing is held then).
    pub fn reserve(
        &mut self,
        key: &str,
        limit: Option<u64>,
        day: Day,
        want: u64,
    ) -> Result<Reservation, Exhausted> {
        let held = match self.allowance(key, limit, day) {
            Allowance::Unlimited => want,
            Allowance::Left(0) => {
                return Err(Exhausted {
                    limit: limit.unwrap_or(0),
                    spent: self.spent(key, day),
                });
            }
            Allowance::Left(left) => want.min(left),
        };
        self.add(key, day, held);
        Ok(Reservation {
            key: key.to_owned(),
            day,
            limit,
            held,
        })
    }

    /// Replaces what `reservation` held with what the call really `used`, and returns what
    /// is left afterwards. The prompt's tokens count too, so `used` may exceed what was held:
    /// it is charged in full (the next call is refused sooner) but never wraps.
    pub fn settle(&mut self, reservation: Reservation, used: u64) -> Allowance {
        if let Some(entry) = self.spent.get_mut(&reservation.key)
            && entry.day == reservation.day
        {
            entry.tokens = entry
                .tokens
                .saturating_sub(reservation.held)
                .saturating_add(used);
        }
        self.allowance(&reservation.key, reservation.limit, reservation.day)
    }

    fn add(&mut self, key: &str, day: Day, tokens: u64) {
        let entry = self
            .spent
            .entry(key.to_owned())
            .or_insert(Spent { day, tokens: 0 });
        if entry.day != day {
            *entry = Spent { day, tokens: 0 };
        }
        entry.tokens = entry.tokens.saturating_add(tokens);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const TODAY: Day = Day(20_000);

    #[test]
    fn days_are_utc_days() {
        let midnight: Timestamp = "2027-01-15T00:00:00Z".parse().unwrap();
        let before: Timestamp = "2027-01-14T23:59:59Z".parse().unwrap();
        assert_eq!(
            Day::of(midnight),
            Day::of(before + jiff::SignedDuration::from_secs(1))
        );
        assert_ne!(Day::of(midnight), Day::of(before));
    }

    #[test]
    fn an_exhausted_budget_is_refused_with_what_was_spent_and_a_new_day_resets_it() {
        let mut ledger = Ledger::new();
        let r = ledger.reserve("a", Some(100), TODAY, 512).unwrap();
        assert_eq!(r.granted(), Some(100), "capped at what is left");
        assert_eq!(ledger.settle(r, 120), Allowance::Left(0));
        assert_eq!(
            ledger.reserve("a", Some(100), TODAY, 1),
            Err(Exhausted {
                limit: 100,
                spent: 120
            })
        );
        // Another caller, and tomorrow, are untouched.
        assert!(ledger.reserve("b", Some(100), TODAY, 1).is_ok());
        let tomorrow = Day(TODAY.0 + 1);
        assert_eq!(
            ledger.allowance("a", Some(100), tomorrow),
            Allowance::Left(100)
        );
        let unlimited = ledger.reserve("c", None, TODAY, 512).unwrap();
        assert_eq!(unlimited.granted(), None);
        assert_eq!(ledger.settle(unlimited, 10_000), Allowance::Unlimited);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Call { want: u64, used_of_held: u64 },
        Hold { want: u64 },
        NextDay,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u64..300, 0u64..=100)
                .prop_map(|(want, used_of_held)| Op::Call { want, used_of_held }),
            (1u64..300).prop_map(|want| Op::Hold { want }),
            Just(Op::NextDay),
        ]
    }

    proptest! {
        /// Calls that use at most what they were granted never spend past the limit, held
        /// reservations included; a refusal happens exactly when nothing is left; what is left
        /// and what is spent add up to the limit.
        #[test]
        fn spending_never_passes_the_limit(limit in 0u64..1_000, ops in proptest::collection::vec(op(), 0..40)) {
            let mut ledger = Ledger::new();
            let mut day = TODAY;
            let mut held = Vec::new();
            for op in ops {
                let left_before = ledger.allowance("k", Some(limit), day);
                match op {
                    Op::NextDay => {
                        day = Day(day.0 + 1);
                        held.clear();
                        prop_assert_eq!(ledger.allowance("k", Some(limit), day), Allowance::Left(limit));
                    }
                    Op::Call { want, used_of_held } => match ledger.reserve("k", Some(limit), day, want) {
                        Ok(r) => {
                            prop_assert_ne!(left_before, Allowance::Left(0));
                            let granted = r.granted().unwrap();
                            prop_assert!(granted <= want && granted >= 1);
                            let used = granted * used_of_held / 100;
                            ledger.settle(r, used);
                        }
                        Err(e) => {
                            prop_assert_eq!(left_before, Allowance::Left(0));
                            prop_assert_eq!(e.limit, limit);
                        }
                    },
                    Op::Hold { want } => {
                        if let Ok(r) = ledger.reserve("k", Some(limit), day, want) {
                            held.push(r);
                        }
                    }
                }
                let spent = ledger.spent("k", day);
                prop_assert!(spent <= limit, "spent {} of {}", spent, limit);
                prop_assert_eq!(ledger.allowance("k", Some(limit), day), Allowance::Left(limit - spent));
            }
        }
    }
}
