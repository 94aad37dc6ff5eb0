//! The pheromone field: sensing decaying signals by type, source and target.
//!
//! A [`PheromoneField`] borrows a slice of anything implementing [`Signal`] (the plain
//! [`Pheromone`] here, or a custom resource in an adapter crate) and answers, for an instant `now`:
//! what can be sensed ([`sense`](PheromoneField::sense), [`top_k`](PheromoneField::top_k)), how
//! hot each type is ([`heat`](PheromoneField::heat)) and what should be collected
//! ([`evaporated`](PheromoneField::evaporated)). Intensities are computed on read (see
//! [`decay`]); DREAM signals use their doubled half-life.
//!
//! Ranking is by current intensity, strongest first; equal intensities keep slice order, so results
//! are deterministic.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;

use crate::decay::{self, HalfLife, Intensity};
use crate::error::{Error, excerpt};

/// The kinds of pheromone: the original twelve plus `REVIEW_REQUEST`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(
    feature = "schemars",
    derive(schemars::JsonSchema),
    schemars(description = "The kind of a pheromone signal.")
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PheromoneType {
    /// A metaphor or framing offered to others.
    Metaphor,
    /// A warning about danger or failure.
    Warning,
    /// A pointer to something remembered.
    Memory,
    /// A story or account of events.
    Narrative,
    /// An opportunity to act.
    Opportunity,
    /// A shortage of some resource.
    Scarcity,
    /// An advertised capability.
    Capability,
    /// A state announcement.
    State,
    /// A test signal or test result.
    Test,
    /// An announced intention.
    Intent,
    /// A dream-cycle signal; decays with a doubled half-life.
    Dream,
    /// A chaos-engineering signal.
    Chaos,
    /// A request to review a proposal.
    ReviewRequest,
}

impl PheromoneType {
    /// Every type, in declaration order.
    pub const ALL: [PheromoneType; 13] = [
        PheromoneType::Metaphor,
        PheromoneType::Warning,
        PheromoneType::Memory,
        PheromoneType::Narrative,
        PheromoneType::Opportunity,
        PheromoneType::Scarcity,
        PheromoneType::Capability,
        PheromoneType::State,
        PheromoneType::Test,
        PheromoneType::Intent,
        PheromoneType::Dream,
        PheromoneType::Chaos,
        PheromoneType::ReviewRequest,
    ];

    /// The SCREAMING_SNAKE_CASE name.
    pub const fn as_str(self) -> &'static str {
        match self {
            PheromoneType::Metaphor => "METAPHOR",
            PheromoneType::Warning => "WARNING",
            PheromoneType::Memory => "MEMORY",
            PheromoneType::Narrative => "NARRATIVE",
            PheromoneType::Opportunity => "OPPORTUNITY",
            PheromoneType::Scarcity => "SCARCITY",
            PheromoneType::Capability => "CAPABILITY",
            PheromoneType::State => "STATE",
            PheromoneType::Test => "TEST",
            PheromoneType::Intent => "INTENT",
            PheromoneType::Dream => "DREAM",
            PheromoneType::Chaos => "CHAOS",
            PheromoneType::ReviewRequest => "REVIEW_REQUEST",
        }
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for PheromoneType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PheromoneType {
    type Err = Error;

    /// Parses the SCREAMING_SNAKE_CASE name, in any case (`review_request` is accepted).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PheromoneType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::UnknownPheromoneType { input: excerpt(s) })
    }
}

/// A set of pheromone types (a bit set; cheap to copy and test).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TypeSet(u16);

impl TypeSet {
    /// The empty set. As a [`SenseQuery`] filter it means "every type".
    pub const EMPTY: TypeSet = TypeSet(0);

    /// Adds `pheromone_type`.
    pub fn insert(&mut self, pheromone_type: PheromoneType) {
        self.0 |= pheromone_type.bit();
    }

    /// The set with `pheromone_type` added.
    pub fn with(mut self, pheromone_type: PheromoneType) -> TypeSet {
        self.insert(pheromone_type);
        self
    }

    /// Whether `pheromone_type` is in the set.
    pub fn contains(self, pheromone_type: PheromoneType) -> bool {
        self.0 & pheromone_type.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = PheromoneType> {
        PheromoneType::ALL
            .into_iter()
            .filter(move |t| self.contains(*t))
    }
}

impl FromIterator<PheromoneType> for TypeSet {
    fn from_iter<T: IntoIterator<Item = PheromoneType>>(iter: T) -> Self {
        iter.into_iter().fold(TypeSet::EMPTY, TypeSet::with)
    }
}

/// A decaying signal, as the field needs to see it. Implemented by [`Pheromone`] and by adapter
/// types (e.g. a Pheromone custom resource).
pub trait Signal {
    /// The kind of signal.
    fn pheromone_type(&self) -> PheromoneType;
    /// The emitting agent.
    fn source(&self) -> &str;
    /// The addressed agent; `None` is a broadcast that every target senses.
    fn target(&self) -> Option<&str>;
    /// The intensity at emission.
    fn initial_intensity(&self) -> Intensity;
    /// The base half-life (DREAM doubles it; see [`Signal::effective_half_life`]).
    fn half_life(&self) -> HalfLife;
    /// When the signal was emitted.
    fn emitted_at(&self) -> Timestamp;
    /// A hard time-to-live counted from `emitted_at`, if any.
    fn ttl(&self) -> Option<Duration>;

    /// The half-life the signal decays with (doubled for DREAM).
    fn effective_half_life(&self) -> HalfLife {
        decay::effective_half_life(self.pheromone_type(), self.half_life())
    }

    /// The intensity at `now`.
    fn intensity_at(&self, now: Timestamp) -> Intensity {
        decay::intensity_at(
            self.initial_intensity(),
            self.effective_half_life(),
            self.emitted_at(),
            now,
        )
    }

    /// Whether the signal has evaporated at `now` (below the threshold or past its TTL).
    fn is_evaporated(&self, now: Timestamp) -> bool {
        decay::is_evaporated(
            self.initial_intensity(),
            self.effective_half_life(),
            self.emitted_at(),
            self.ttl(),
            now,
        )
    }

    /// The first instant at which the signal has evaporated (see [`decay::evaporates_at`]).
    fn evaporates_at(&self) -> Timestamp {
        decay::evaporates_at(
            self.initial_intensity(),
            self.effective_half_life(),
            self.emitted_at(),
            self.ttl(),
        )
    }
}

impl<S: Signal + ?Sized> Signal for &S {
    fn pheromone_type(&self) -> PheromoneType {
        (**self).pheromone_type()
    }
    fn source(&self) -> &str {
        (**self).source()
    }
    fn target(&self) -> Option<&str> {
        (**self).target()
    }
    fn initial_intensity(&self) -> Intensity {
        (**self).initial_intensity()
    }
    fn half_life(&self) -> HalfLife {
        (**self).half_life()
    }
    fn emitted_at(&self) -> Timestamp {
        (**self).emitted_at()
    }
    fn ttl(&self) -> Option<Duration> {
        (**self).ttl()
    }
}

/// A plain, owned pheromone.
#[derive(Debug, Clone, PartialEq)]
pub struct Pheromone {
    /// The kind of signal.
    pub pheromone_type: PheromoneType,
    /// The emitting agent.
    pub source: String,
    /// The addressed agent; `None` is a broadcast.
    pub target: Option<String>,
    /// The intensity at emission.
    pub initial_intensity: Intensity,
    /// The base half-life.
    pub half_life: HalfLife,
    /// When it was emitted.
    pub emitted_at: Timestamp,
    /// A hard time-to-live from `emitted_at`.
    pub ttl: Option<Duration>,
}

impl Pheromone {
    /// A broadcast of full intensity with the default half-life and no TTL.
    pub fn new(
        pheromone_type: PheromoneType,
        source: impl Into<String>,
        emitted_at: Timestamp,
    ) -> Pheromone {
        Pheromone {
            pheromone_type,
            source: source.into(),
            target: None,
            initial_intensity: Intensity::ONE,
            half_life: HalfLife::DEFAULT,
            emitted_at,
            ttl: None,
        }
    }

    /// Addressed to `target` instead of broadcast.
    pub fn targeting(mut self, target: impl Into<String>) -> Pheromone {
        self.target = Some(target.into());
        self
    }

    /// With this initial intensity.
    pub fn with_initial_intensity(mut self, initial_intensity: Intensity) -> Pheromone {
        self.initial_intensity = initial_intensity;
        self
    }

    /// With this base half-life.
    pub fn with_half_life(mut self, half_life: HalfLife) -> Pheromone {
        self.half_life = half_life;
        self
    }

    /// With this time-to-live.
    pub fn with_ttl(mut self, ttl: Duration) -> Pheromone {
        self.ttl = Some(ttl);
        self
    }
}

impl Signal for Pheromone {
    fn pheromone_type(&self) -> PheromoneType {
        self.pheromone_type
    }
    fn source(&self) -> &str {
        &self.source
    }
    fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }
    fn initial_intensity(&self) -> Intensity {
        self.initial_intensity
    }
    fn half_life(&self) -> HalfLife {
        self.half_life
    }
    fn emitted_at(&self) -> Timestamp {
        self.emitted_at
    }
    fn ttl(&self) -> Option<Duration> {
        self.ttl
    }
}

/// What to sense. The default query senses everything that has not evaporated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenseQuery {
    /// Types to include; empty means every type.
    pub types: TypeSet,
    /// Only signals from this source, when set.
    pub source: Option<String>,
    /// The sensing agent, when set: signals addressed to it **and** broadcasts. When unset, every
    /// signal regardless of target.
    pub target: Option<String>,
}

impl SenseQuery {
    /// Everything.
    pub fn all() -> SenseQuery {
        SenseQuery::default()
    }

    /// Also include `pheromone_type` (the first call narrows "every type" to just this one).
    pub fn with_type(mut self, pheromone_type: PheromoneType) -> SenseQuery {
        self.types.insert(pheromone_type);
        self
    }

    /// Only signals from `source`.
    pub fn from_source(mut self, source: impl Into<String>) -> SenseQuery {
        self.source = Some(source.into());
        self
    }

    /// As sensed by `target`: addressed to it, or broadcast.
    pub fn for_target(mut self, target: impl Into<String>) -> SenseQuery {
        self.target = Some(target.into());
        self
    }

    /// Whether `signal` passes the type, source and target filters (evaporation is not checked).
    pub fn admits<S: Signal + ?Sized>(&self, signal: &S) -> bool {
        (self.types.is_empty() || self.types.contains(signal.pheromone_type()))
            && self.source.as_deref().is_none_or(|s| s == signal.source())
            && match (self.target.as_deref(), signal.target()) {
                (None, _) | (Some(_), None) => true,
                (Some(wanted), Some(addressed)) => wanted == addressed,
            }
    }
}

/// A signal as sensed at some instant.
#[derive(Debug)]
pub struct Sensed<'a, S> {
    /// The signal.
    pub signal: &'a S,
    /// Its position in the field's slice.
    pub index: usize,
    /// Its intensity at the sensing instant.
    pub intensity: Intensity,
}

impl<S> Clone for Sensed<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Sensed<'_, S> {}

/// Strongest first; equal intensities in slice order.
fn by_rank<S>(a: &Sensed<'_, S>, b: &Sensed<'_, S>) -> Ordering {
    b.intensity
        .cmp(&a.intensity)
        .then_with(|| a.index.cmp(&b.index))
}

/// Aggregate intensity of one pheromone type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heat {
    /// Sum of current intensities.
    pub sum: f64,
    /// The strongest current intensity.
    pub max: Intensity,
    /// How many live signals contributed.
    pub count: usize,
}

/// A read-only view of signals for sensing at a given instant.
#[derive(Debug)]
pub struct PheromoneField<'a, S> {
    signals: &'a [S],
}

impl<S> Clone for PheromoneField<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for PheromoneField<'_, S> {}

impl<'a, S: Signal> PheromoneField<'a, S> {
    /// A field over `signals`.
    pub fn new(signals: &'a [S]) -> PheromoneField<'a, S> {
        PheromoneField { signals }
    }

    /// The underlying signals.
    pub fn signals(&self) -> &'a [S] {
        self.signals
    }

    /// Every live (not evaporated) signal the query admits, with its current intensity.
    fn live(&self, query: &SenseQuery, now: Timestamp) -> Vec<Sensed<'a, S>> {
        self.signals
            .iter()
            .enumerate()
            .filter(|(_, signal)| query.admits(*signal))
            .filter_map(|(index, signal)| {
                let (intensity, evaporated) = decay::assess(
                    signal.initial_intensity(),
                    signal.effective_half_life(),
                    signal.emitted_at(),
                    signal.ttl(),
                    now,
                );
                (!evaporated).then_some(Sensed {
                    signal,
                    index,
                    intensity,
                })
            })
            .collect()
    }

    /// Every live signal the query admits, strongest first (ties in slice order).
    pub fn sense(&self, query: &SenseQuery, now: Timestamp) -> Vec<Sensed<'a, S>> {
        let mut sensed = self.live(query, now);
        sensed.sort_unstable_by(by_rank);
        sensed
    }

    /// The `k` strongest live signals the query admits, in [`sense`](Self::sense) order. Selects
    /// before sorting, so it costs O(n + k log k).
    pub fn top_k(&self, query: &SenseQuery, now: Timestamp, k: usize) -> Vec<Sensed<'a, S>> {
        if k == 0 {
            return Vec::new();
        }
        let mut sensed = self.live(query, now);
        if sensed.len() > k {
            sensed.select_nth_unstable_by(k - 1, by_rank);
            sensed.truncate(k);
        }
        sensed.sort_unstable_by(by_rank);
        sensed
    }

    /// Per-type heat of the live signals. Types without live signals are absent.
    pub fn heat(&self, now: Timestamp) -> BTreeMap<PheromoneType, Heat> {
        // Accumulate in a fixed array indexed by type; the map is built once at the end.
        let mut by_type: [Heat; PheromoneType::ALL.len()] = [Heat {
            sum: 0.0,
            max: Intensity::ZERO,
            count: 0,
        }; PheromoneType::ALL.len()];
        for signal in self.signals {
            let (intensity, evaporated) = decay::assess(
                signal.initial_intensity(),
                signal.effective_half_life(),
                signal.emitted_at(),
                signal.ttl(),
                now,
            );
            if evaporated {
                continue;
            }
            let heat = &mut by_type[signal.pheromone_type() as usize];
            heat.sum += intensity.get();
            heat.max = heat.max.max(intensity);
            heat.count += 1;
        }
        PheromoneType::ALL
            .into_iter()
            .zip(by_type)
            .filter(|(_, heat)| heat.count > 0)
            .collect()
    }

    /// The signals that have evaporated at `now` and should be collected, in slice order.
    pub fn evaporated(&self, now: Timestamp) -> Vec<&'a S> {
        self.signals
            .iter()
            .filter(|signal| signal.is_evaporated(now))
            .collect()
    }

    /// The earliest instant at which some still-live signal evaporates (when a collector should
    /// next wake up), or `None` if no signal is live at `now`.
    pub fn next_evaporation(&self, now: Timestamp) -> Option<Timestamp> {
        self.signals
            .iter()
            .filter(|signal| !signal.is_evaporated(now))
            .map(Signal::evaporates_at)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn intensity(v: f64) -> Intensity {
        Intensity::new(v).unwrap()
    }

    #[test]
    fn pheromone_type_names_round_trip() {
        for t in PheromoneType::ALL {
            assert_eq!(t.to_string().parse::<PheromoneType>().unwrap(), t);
            assert_eq!(
                t.as_str().to_lowercase().parse::<PheromoneType>().unwrap(),
                t
            );
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<PheromoneType>(&json).unwrap(), t);
        }
        assert_eq!(PheromoneType::ReviewRequest.to_string(), "REVIEW_REQUEST");
        assert!(matches!(
            "SIGNAL".parse::<PheromoneType>(),
            Err(Error::UnknownPheromoneType { .. })
        ));
    }

    #[test]
    fn type_set_membership() {
        let set: TypeSet = [PheromoneType::Dream, PheromoneType::ReviewRequest]
            .into_iter()
            .collect();
        assert!(set.contains(PheromoneType::Dream));
        assert!(set.contains(PheromoneType::ReviewRequest));
        assert!(!set.contains(PheromoneType::Warning));
        assert_eq!(set.iter().count(), 2);
        assert!(TypeSet::EMPTY.is_empty());
    }

    fn sample(now: Timestamp) -> Vec<Pheromone> {
        vec![
            // 0: fresh broadcast warning from a
            Pheromone::new(PheromoneType::Warning, "a", now),
            // 1: warning from b to x, one half-life old
            Pheromone::new(PheromoneType::Warning, "b", ts(0)).targeting("x"),
            // 2: dream from a to y, one (base) half-life old -> 2^-0.5
            Pheromone::new(PheromoneType::Dream, "a", ts(0)).targeting("y"),
            // 3: long evaporated memory
            Pheromone::new(PheromoneType::Memory, "c", ts(-100_000)),
            // 4: TTL passed
            Pheromone::new(PheromoneType::Intent, "a", ts(0)).with_ttl(Duration::from_secs(60)),
            // 5: weak broadcast warning, fresh
            Pheromone::new(PheromoneType::Warning, "c", now).with_initial_intensity(intensity(0.3)),
        ]
    }

    #[test]
    fn sense_filters_ranks_and_honours_broadcast() {
        let now = ts(600);
        let signals = sample(now);
        let field = PheromoneField::new(&signals);
        let indices = |q: &SenseQuery| -> Vec<usize> {
            field.sense(q, now).iter().map(|s| s.index).collect()
        };
        assert_eq!(indices(&SenseQuery::all()), vec![0, 2, 1, 5]);
        assert_eq!(
            indices(&SenseQuery::all().with_type(PheromoneType::Warning)),
            vec![0, 1, 5]
        );
        // x senses what is addressed to it and broadcasts, not what is addressed to y.
        assert_eq!(indices(&SenseQuery::all().for_target("x")), vec![0, 1, 5]);
        assert_eq!(indices(&SenseQuery::all().for_target("y")), vec![0, 2, 5]);
        assert_eq!(indices(&SenseQuery::all().from_source("a")), vec![0, 2]);
        assert_eq!(
            indices(
                &SenseQuery::all()
                    .with_type(PheromoneType::Dream)
                    .with_type(PheromoneType::Warning)
                    .from_source("b")
            ),
            vec![1]
        );
        let sensed = field.sense(&SenseQuery::all(), now);
        assert_eq!(sensed[1].intensity.get(), 0.5f64.sqrt());
        assert_eq!(sensed[2].intensity.get(), 0.5);
    }

    #[test]
    fn ties_keep_slice_order() {
        let now = ts(0);
        let signals: Vec<_> = (0..5)
            .map(|i| Pheromone::new(PheromoneType::State, format!("s{i}"), now))
            .collect();
        let field = PheromoneField::new(&signals);
        let order: Vec<_> = field
            .top_k(&SenseQuery::all(), now, 3)
            .iter()
            .map(|s| s.index)
            .collect();
        assert_eq!(order, vec![0, 1, 2]);
        assert!(field.top_k(&SenseQuery::all(), now, 0).is_empty());
        assert_eq!(field.top_k(&SenseQuery::all(), now, 99).len(), 5);
    }

    #[test]
    fn heat_and_evaporated() {
        let now = ts(600);
        let signals = sample(now);
        let field = PheromoneField::new(&signals);
        let heat = field.heat(now);
        let warning = heat[&PheromoneType::Warning];
        assert_eq!(warning.count, 3);
        assert!((warning.sum - (1.0 + 0.5 + 0.3)).abs() < 1e-12);
        assert_eq!(warning.max, Intensity::ONE);
        assert_eq!(heat[&PheromoneType::Dream].count, 1);
        assert!(!heat.contains_key(&PheromoneType::Memory));
        assert!(!heat.contains_key(&PheromoneType::Intent));
        let gone: Vec<_> = field
            .evaporated(now)
            .iter()
            .map(|p| p.source.as_str())
            .collect();
        assert_eq!(gone, vec!["c", "a"]);
        assert_eq!(
            field.evaporated(now)[1].pheromone_type,
            PheromoneType::Intent
        );
        let next = field.next_evaporation(now).unwrap();
        assert!(next > now);
        assert_eq!(next, signals[5].evaporates_at());
    }

    #[test]
    fn signal_methods_use_the_dream_half_life() {
        let dream = Pheromone::new(PheromoneType::Dream, "a", ts(0));
        assert_eq!(dream.effective_half_life().as_minutes_f64(), 20.0);
        assert_eq!(dream.intensity_at(ts(1200)).get(), 0.5);
        let by_ref: &Pheromone = &dream;
        assert_eq!(Signal::intensity_at(&by_ref, ts(1200)).get(), 0.5);
        assert!(!dream.is_evaporated(ts(1200)));
        assert!(dream.is_evaporated(dream.evaporates_at()));
    }
}
