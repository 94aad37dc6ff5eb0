//! When probes run: due times with deterministic jitter, the global call budget, the global
//! concurrency limit, and which agents start now. Pure: time is a [`Duration`] since an epoch
//! the caller chooses, and nothing here sleeps or reads a clock.
//!
//! Guarantees (property-tested below):
//!
//! - **Budget.** No 60-second window `[t, t + 60 s)` ever holds more call starts than
//!   `calls_per_minute`. A sliding log of the starts in the last minute is the exact guard; a
//!   token bucket (burst of a tenth of the budget, refilled at the budget's rate) spreads the
//!   calls over the minute instead of spending the whole budget in the first second.
//! - **Concurrency.** Never more than `max_concurrent` calls in flight.
//! - **Fairness.** Agents start in order of due time (ties by key), so an agent that is due
//!   waits behind at most the agents that were due before it: none starves, however many there
//!   are and however small the budget.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::Duration;

/// The length of the budget's window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The jitter around an interval: ±10 %.
pub const JITTER_FRACTION: f64 = 0.1;

/// 64-bit FNV-1a over `bytes`, continuing from `state` (stable across Rust releases, unlike
/// `std`'s hasher, so jitter is reproducible).
fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A number in `[-1, 1]` derived from `uid` and `round` only.
pub fn unit_jitter(uid: &str, round: u64) -> f64 {
    let hash = fnv1a(
        fnv1a(0xcbf2_9ce4_8422_2325, uid.as_bytes()),
        &round.to_le_bytes(),
    );
    // The top 53 bits as a fraction in [0, 1), then stretched to [-1, 1).
    let fraction = (hash >> 11) as f64 / (1u64 << 53) as f64;
    fraction * 2.0 - 1.0
}

/// `interval` stretched by the jitter of (`uid`, `round`): within ±[`JITTER_FRACTION`].
pub fn jittered(interval: Duration, uid: &str, round: u64) -> Duration {
    interval.mul_f64(1.0 + JITTER_FRACTION * unit_jitter(uid, round))
}

/// When round `round + 1` of an agent is due, given that round `round` finished at `finished`.
pub fn next_due(finished: Duration, interval: Duration, uid: &str, round: u64) -> Duration {
    finished + jittered(interval, uid, round.wrapping_add(1))
}

/// When the first round of a newly seen agent is due: soon, but spread over the first tenth
/// of its interval, so many agents created at once do not all fall due together.
pub fn first_due(now: Duration, interval: Duration, uid: &str) -> Duration {
    now + interval.mul_f64(JITTER_FRACTION * (unit_jitter(uid, 0) + 1.0) / 2.0)
}

/// Scaled token units per call: one call is a minute's worth of microseconds, so refilling
/// `per_minute` units per elapsed microsecond is exact integer arithmetic.
const UNITS_PER_CALL: u128 = 60_000_000;

/// The global budget of probe calls: at most `per_minute` starts in any 60-second window.
#[derive(Clone, Debug)]
pub struct Budget {
    per_minute: u32,
    burst: u32,
    /// Bucket content in units of 1/[`UNITS_PER_CALL`] calls.
    units: u128,
    refilled_at: Duration,
    /// Starts within the last [`WINDOW`], oldest first.
    recent: VecDeque<Duration>,
}

impl Budget {
    /// A full budget of `per_minute` calls (0 counts as 1) at time `now`.
    pub fn new(per_minute: u32, now: Duration) -> Self {
        let per_minute = per_minute.max(1);
        let burst = (per_minute / 10).max(1);
        Self {
            per_minute,
            burst,
            units: u128::from(burst) * UNITS_PER_CALL,
            refilled_at: now,
            recent: VecDeque::new(),
        }
    }

    /// Calls per minute.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    fn refill(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.refilled_at);
        self.refilled_at = self.refilled_at.max(now);
        let cap = u128::from(self.burst) * UNITS_PER_CALL;
        self.units = (self.units + elapsed.as_micros() * u128::from(self.per_minute)).min(cap);
        while let Some(oldest) = self.recent.front() {
            if *oldest + WINDOW <= now {
                self.recent.pop_front();
            } else {
                break;
            }
        }
    }

    /// Takes one call from the budget at `now` if the budget allows it.
    pub fn try_take(&mut self, now: Duration) -> bool {
        self.refill(now);
        if self.units < UNITS_PER_CALL || self.recent.len() >= self.per_minute as usize {
            return false;
        }
        self.units -= UNITS_PER_CALL;
        self.recent.push_back(now);
        true
    }

    /// The earliest time at or after `now` at which [`Budget::try_take`] succeeds.
    pub fn next_allowed(&mut self, now: Duration) -> Duration {
        self.refill(now);
        let bucket = if self.units >= UNITS_PER_CALL {
            now
        } else {
            let missing = UNITS_PER_CALL - self.units;
            let micros = missing.div_ceil(u128::from(self.per_minute));
            now + Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
        };
        let window = if self.recent.len() >= self.per_minute as usize {
            self.recent.front().map_or(now, |oldest| *oldest + WINDOW)
        } else {
            now
        };
        bucket.max(window)
    }
}

/// What [`Scheduler::start_due`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started<K> {
    /// The agents to probe now, in order of due time. Each is in flight until
    /// [`Scheduler::finish`].
    pub keys: Vec<K>,
    /// How many due agents began waiting for the budget at this call (each agent is counted
    /// once per round, however long it waits).
    pub newly_waiting_for_budget: usize,
}

/// The probe schedule of every agent, under the global budget and concurrency limit.
///
/// `K` identifies an agent (the runner uses `namespace/name`). An agent is either queued with
/// a due time or in flight; [`Scheduler::finish`] queues it again.
#[derive(Clone, Debug)]
pub struct Scheduler<K: Ord + Hash + Clone> {
    queue: BTreeSet<(Duration, K)>,
    due_at: HashMap<K, Duration>,
    tracked: HashSet<K>,
    in_flight: HashSet<K>,
    waiting: HashSet<K>,
    budget: Budget,
    max_concurrent: usize,
}

impl<K: Ord + Hash + Clone> Scheduler<K> {
    /// An empty schedule with `calls_per_minute` and `max_concurrent` (0 counts as 1),
    /// starting at `now`.
    pub fn new(calls_per_minute: u32, max_concurrent: usize, now: Duration) -> Self {
        Self {
            queue: BTreeSet::new(),
            due_at: HashMap::new(),
            tracked: HashSet::new(),
            in_flight: HashSet::new(),
            waiting: HashSet::new(),
            budget: Budget::new(calls_per_minute, now),
            max_concurrent: max_concurrent.max(1),
        }
    }

    /// Whether `key` is scheduled (queued or in flight).
    pub fn is_tracked(&self, key: &K) -> bool {
        self.tracked.contains(key)
    }

    /// How many calls are in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The due time of a queued agent.
    pub fn due(&self, key: &K) -> Option<Duration> {
        self.due_at.get(key).copied()
    }

    /// Starts scheduling `key`, due at `due`. An agent already scheduled keeps its due time.
    pub fn track(&mut self, key: K, due: Duration) {
        if self.tracked.insert(key.clone()) {
            self.enqueue(key, due);
        }
    }

    /// Moves a queued agent's due time to `due` (e.g. its model changed: probe it soon). An
    /// agent in flight is left alone; [`Scheduler::finish`] decides its next due time.
    pub fn reschedule(&mut self, key: &K, due: Duration) {
        if let Some(old) = self.due_at.get(key).copied() {
            self.queue.remove(&(old, key.clone()));
            self.enqueue(key.clone(), due);
        }
    }

    /// Stops scheduling `key`. A call in flight finishes, but the agent is not queued again.
    pub fn forget(&mut self, key: &K) {
        self.tracked.remove(key);
        self.waiting.remove(key);
        if let Some(old) = self.due_at.remove(key) {
            self.queue.remove(&(old, key.clone()));
        }
    }

    fn enqueue(&mut self, key: K, due: Duration) {
        self.due_at.insert(key.clone(), due);
        self.queue.insert((due, key));
    }

    /// Takes the agents due at `now`, earliest first, while the concurrency limit and the
    /// budget allow; each taken agent uses one call of the budget and is in flight.
    pub fn start_due(&mut self, now: Duration) -> Started<K> {
        let mut keys = Vec::new();
        while self.in_flight.len() < self.max_concurrent {
            let Some((due, key)) = self.queue.first().cloned() else {
                break;
            };
            if due > now || !self.budget.try_take(now) {
                break;
            }
            self.queue.pop_first();
            self.due_at.remove(&key);
            self.waiting.remove(&key);
            self.in_flight.insert(key.clone());
            keys.push(key);
        }
        let mut newly_waiting_for_budget = 0;
        if self.in_flight.len() < self.max_concurrent {
            // Whatever is still due now waits for the budget alone.
            for (due, key) in &self.queue {
                if *due > now {
                    break;
                }
                if self.waiting.insert(key.clone()) {
                    newly_waiting_for_budget += 1;
                }
            }
        }
        Started {
            keys,
            newly_waiting_for_budget,
        }
    }

    /// Ends `key`'s call; it is queued again at `next_due` unless it was forgotten meanwhile.
    pub fn finish(&mut self, key: &K, next_due: Duration) {
        if self.in_flight.remove(key) && self.tracked.contains(key) {
            self.enqueue(key.clone(), next_due);
        }
    }

    /// When something can next start: the earliest due time, or later when the budget says
    /// so. `None` when nothing is queued or every slot is busy (a finishing call wakes the
    /// caller instead).
    pub fn next_wake(&mut self, now: Duration) -> Option<Duration> {
        if self.in_flight.len() >= self.max_concurrent {
            return None;
        }
        let (due, _) = self.queue.first()?;
        let due = (*due).max(now);
        // Ask the budget at `now`, never at a future due time: refilling at a future time
        // would forget starts still inside the window and credit tokens not yet earned, and a
        // call started before that time (an agent queued meanwhile) would overrun the budget.
        // The budget only loosens as time passes, so the later of the two is the answer.
        Some(due.max(self.budget.next_allowed(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn jitter_is_reproducible_and_within_ten_percent() {
        for round in 0..500 {
            let d = jittered(secs(30), "uid-a", round);
            assert_eq!(d, jittered(secs(30), "uid-a", round));
            assert!(d >= secs(27) && d <= secs(33), "{d:?}");
        }
        let spread: HashSet<Duration> = (0..50).map(|r| jittered(secs(30), "u", r)).collect();
        assert!(spread.len() > 40, "jitter varies by round");
        assert_ne!(
            jittered(secs(30), "uid-a", 1),
            jittered(secs(30), "uid-b", 1)
        );
        let first = first_due(secs(100), secs(30), "uid-a");
        assert!(first >= secs(100) && first <= secs(103), "{first:?}");
    }

    #[test]
    fn the_budget_spreads_calls_and_never_exceeds_the_window() {
        let mut budget = Budget::new(60, Duration::ZERO);
        // Burst: a tenth of the budget at once, then one call a second.
        let burst = (0..100)
            .take_while(|_| budget.try_take(Duration::ZERO))
            .count();
        assert_eq!(burst, 6);
        assert_eq!(budget.next_allowed(Duration::ZERO), secs(1));
        assert!(!budget.try_take(Duration::from_millis(999)));
        assert!(budget.try_take(secs(1)));
        let mut budget = Budget::new(0, Duration::ZERO);
        assert!(budget.try_take(Duration::ZERO), "0 counts as 1 a minute");
        assert!(!budget.try_take(secs(59)));
        assert_eq!(budget.next_allowed(secs(59)), secs(60));
        assert!(budget.try_take(secs(60)));
    }

    #[test]
    fn looking_ahead_to_a_later_due_time_does_not_spend_the_future_budget() {
        let mut s = Scheduler::new(1, 5, Duration::ZERO);
        s.track("a", Duration::ZERO);
        assert_eq!(s.start_due(Duration::ZERO).keys, vec!["a"]);
        s.finish(&"a", secs(100));
        // The next due time lies past the window of a's start.
        assert_eq!(s.next_wake(secs(1)), Some(secs(100)));
        // An agent queued meanwhile still waits for the window of a's start to pass.
        s.track("c", secs(2));
        assert!(s.start_due(secs(2)).keys.is_empty());
        assert_eq!(s.next_wake(secs(2)), Some(secs(60)));
        assert_eq!(s.start_due(secs(60)).keys, vec!["c"]);
    }

    #[test]
    fn due_agents_start_in_order_within_the_limits() {
        let mut s = Scheduler::new(600, 2, Duration::ZERO);
        s.track("c", secs(3));
        s.track("a", secs(1));
        s.track("b", secs(2));
        s.track("a", secs(9)); // already tracked: keeps its due time
        assert_eq!(s.next_wake(Duration::ZERO), Some(secs(1)));
        assert!(s.start_due(Duration::ZERO).keys.is_empty());
        let started = s.start_due(secs(5));
        assert_eq!(started.keys, vec!["a", "b"]);
        assert_eq!(s.next_wake(secs(5)), None, "both slots busy");
        s.finish(&"a", secs(40));
        assert_eq!(s.start_due(secs(5)).keys, vec!["c"]);
        s.forget(&"b");
        s.finish(&"b", secs(40));
        assert!(!s.is_tracked(&"b"));
        assert_eq!(s.due(&"b"), None, "a forgotten agent is not queued again");
        s.reschedule(&"a", secs(6));
        assert_eq!(s.due(&"a"), Some(secs(6)));
    }

    #[test]
    fn waiting_for_the_budget_is_counted_once_per_round() {
        let mut s = Scheduler::new(1, 8, Duration::ZERO);
        s.track("a", Duration::ZERO);
        s.track("b", Duration::ZERO);
        let first = s.start_due(Duration::ZERO);
        assert_eq!(first.keys, vec!["a"]);
        assert_eq!(first.newly_waiting_for_budget, 1);
        assert_eq!(s.start_due(secs(1)).newly_waiting_for_budget, 0);
        assert_eq!(s.next_wake(secs(1)), Some(secs(60)));
        assert_eq!(s.start_due(secs(60)).keys, vec!["b"]);
    }

    /// One simulated agent: key, interval, call duration per round.
    #[derive(Clone, Debug)]
    struct SimAgent {
        interval: Duration,
        call: Duration,
    }

    fn sim_agents() -> impl Strategy<Value = Vec<SimAgent>> {
        prop::collection::vec(
            (5u64..120, 0u64..20_000).prop_map(|(interval, call_ms)| SimAgent {
                interval: secs(interval),
                call: Duration::from_millis(call_ms).min(secs(interval) / 2),
            }),
            1..40,
        )
    }

    /// What a simulation saw.
    struct Simulated {
        /// Every start: (time, agent index).
        starts: Vec<(Duration, usize)>,
        /// Each agent's largest wait past its due time.
        max_wait: Vec<Duration>,
        /// The largest number of calls in flight.
        max_in_flight: usize,
        /// Starts that overtook an agent due earlier.
        order_violations: Vec<String>,
    }

    /// Runs the scheduler for `horizon` the way the runner drives it.
    fn simulate(
        agents: &[SimAgent],
        per_minute: u32,
        max_concurrent: usize,
        horizon: Duration,
    ) -> Simulated {
        let mut s = Scheduler::new(per_minute, max_concurrent, Duration::ZERO);
        let uid = |i: usize| format!("uid-{i}");
        let mut rounds = vec![0u64; agents.len()];
        for (i, a) in agents.iter().enumerate() {
            s.track(i, first_due(Duration::ZERO, a.interval, &uid(i)));
        }
        let mut now = Duration::ZERO;
        let mut running: Vec<(Duration, usize)> = Vec::new();
        let mut starts = Vec::new();
        let mut max_wait = vec![Duration::ZERO; agents.len()];
        let mut max_in_flight = 0;
        let mut order_violations = Vec::new();
        while now < horizon {
            // Finish every call that is over by now.
            running.sort();
            while let Some(&(end, i)) = running.first() {
                if end > now {
                    break;
                }
                running.remove(0);
                let next = next_due(end, agents[i].interval, &uid(i), rounds[i]);
                rounds[i] += 1;
                s.finish(&i, next);
            }
            let due_before: Vec<(Duration, usize)> = (0..agents.len())
                .filter_map(|i| s.due(&i).map(|d| (d, i)))
                .collect();
            let started = s.start_due(now);
            for &i in &started.keys {
                let due = due_before.iter().find(|(_, k)| *k == i).map(|(d, _)| *d);
                let due = due.expect("a started agent was queued");
                // Fairness: nothing still queued was due strictly before a started agent.
                for (d, k) in &due_before {
                    if !started.keys.contains(k) && (*d, *k) < (due, i) {
                        order_violations.push(format!("{k} due {d:?} skipped for {i} due {due:?}"));
                    }
                }
                max_wait[i] = max_wait[i].max(now - due);
                starts.push((now, i));
                running.push((now + agents[i].call, i));
            }
            max_in_flight = max_in_flight.max(s.in_flight());
            let next_end = running.iter().map(|(e, _)| *e).min();
            let wake = s.next_wake(now);
            let next = [next_end, wake]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(horizon);
            // The runner also wakes on other events; never stand still.
            now = next.max(now + Duration::from_millis(1));
        }
        Simulated {
            starts,
            max_wait,
            max_in_flight,
            order_violations,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn no_window_exceeds_the_budget_and_no_agent_starves(
            agents in sim_agents(),
            per_minute in 1u32..120,
            max_concurrent in 1usize..10,
        ) {
            let n = agents.len() as u64;
            let horizon = secs(600);
            let Simulated { starts, max_wait, max_in_flight, order_violations: violations } =
                simulate(&agents, per_minute, max_concurrent, horizon);
            prop_assert!(violations.is_empty(), "{violations:?}");
            prop_assert!(max_in_flight <= max_concurrent);
            // Budget: any window [t, t + 60 s) starting at a call start holds at most the
            // budget (a window's count is largest when it starts at a call).
            let times: Vec<Duration> = starts.iter().map(|(t, _)| *t).collect();
            for (i, t) in times.iter().enumerate() {
                let in_window = times[i..].iter().take_while(|u| **u < *t + WINDOW).count();
                prop_assert!(in_window <= per_minute as usize,
                    "{in_window} calls in the minute from {t:?}, budget {per_minute}");
            }
            // No starvation: the wait past the due time is bounded by the agents ahead (each
            // needs a budget slot and a concurrency slot), whoever they are.
            let slowest_call = agents.iter().map(|a| a.call).max().unwrap_or_default();
            let budget_wait = WINDOW * u32::try_from(n / u64::from(per_minute) + 1).unwrap()
                + Duration::from_micros(60_000_000 / u64::from(per_minute)) * u32::try_from(n + 1).unwrap();
            let slot_wait = (slowest_call + Duration::from_millis(1))
                * u32::try_from(n / max_concurrent as u64 + 1).unwrap();
            let bound = budget_wait + slot_wait;
            for (i, wait) in max_wait.iter().enumerate() {
                prop_assert!(*wait <= bound, "agent {i} waited {wait:?} > {bound:?}");
            }
            // Every agent whose first due time is well inside the horizon was probed.
            for (i, a) in agents.iter().enumerate() {
                let first = first_due(Duration::ZERO, a.interval, &format!("uid-{i}"));
                if first + bound < horizon {
                    prop_assert!(starts.iter().any(|(_, k)| *k == i), "agent {i} never probed");
                }
            }
        }

        #[test]
        fn a_budget_alone_never_exceeds_its_window(
            per_minute in 1u32..50,
            gaps in prop::collection::vec(0u64..5_000, 1..400),
        ) {
            let mut budget = Budget::new(per_minute, Duration::ZERO);
            let mut now = Duration::ZERO;
            let mut taken = Vec::new();
            for gap in gaps {
                now += Duration::from_millis(gap);
                if budget.try_take(now) {
                    taken.push(now);
                }
                let next = budget.next_allowed(now);
                prop_assert!(next >= now);
            }
            for (i, t) in taken.iter().enumerate() {
                let in_window = taken[i..].iter().take_while(|u| **u < *t + WINDOW).count();
                prop_assert!(in_window <= per_minute as usize);
            }
        }

        #[test]
        fn next_allowed_is_exact(
            per_minute in 1u32..50,
            gaps in prop::collection::vec(0u64..3_000, 1..100),
        ) {
            let mut budget = Budget::new(per_minute, Duration::ZERO);
            let mut now = Duration::ZERO;
            for gap in gaps {
                now += Duration::from_millis(gap);
                let next = budget.next_allowed(now);
                prop_assert!(next >= now);
                if next > now {
                    let mut just_before = budget.clone();
                    prop_assert!(!just_before.try_take(next - Duration::from_micros(1)));
                }
                let mut at_next = budget.clone();
                prop_assert!(at_next.try_take(next), "allowed at {next:?}");
                budget.try_take(now);
            }
        }
    }
}
