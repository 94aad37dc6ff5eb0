//! Property tests of `kgents-core`'s public API. Every property runs at least 256 cases.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kgents_core::Error;
use kgents_core::agentese::{
    AffordanceGlob, Affordances, Aspect, Context, MAX_PATH_LEN, Path, PathError, PathTemplate,
    Registry, Segment,
};
use kgents_core::decay::{
    self, EVAPORATION_THRESHOLD, HalfLife, Intensity, effective_half_life, evaporates_at,
    intensity_at, is_evaporated, time_until,
};
use kgents_core::field::{Pheromone, PheromoneField, PheromoneType, SenseQuery, Signal, TypeSet};
use kgents_core::genus::Genus;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

// ---------------------------------------------------------------------------------------------
// Generators

fn context() -> impl Strategy<Value = Context> {
    select(Context::ALL.to_vec())
}

fn aspect() -> impl Strategy<Value = Aspect> {
    select(Aspect::ALL.to_vec())
}

fn segment_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_-]{1,12}",
        // Aspect verbs as segments exercise the aspect rule.
        select(Aspect::ALL.map(Aspect::as_str).to_vec()).prop_map(str::to_owned),
        Just("b-gent".to_owned()),
    ]
}

/// A syntactically valid path string (it may end in an aspect verb or not).
fn valid_path_text() -> impl Strategy<Value = String> {
    (
        context(),
        prop::collection::vec(segment_text(), 1..=12),
        prop::option::of(aspect()),
    )
        .prop_map(|(context, segments, aspect)| {
            let mut text = context.to_string();
            for segment in segments {
                text.push('.');
                text.push_str(&segment);
            }
            if let Some(aspect) = aspect {
                text.push('.');
                text.push_str(aspect.as_str());
            }
            text
        })
}

fn path() -> impl Strategy<Value = Path> {
    valid_path_text().prop_map(|text| Path::parse(&text).expect("generator yields valid paths"))
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    // 1900..2100, nanosecond precision.
    (-2_208_988_800i64..4_102_444_800i64, 0i32..1_000_000_000)
        .prop_map(|(s, n)| Timestamp::new(s, n).expect("in range"))
}

fn intensity() -> impl Strategy<Value = Intensity> {
    prop_oneof![
        (0.0f64..=1.0).prop_map(|v| Intensity::new(v).expect("in range")),
        Just(Intensity::ZERO),
        Just(Intensity::ONE),
        Just(Intensity::EVAPORATION_THRESHOLD),
    ]
}

/// A half-life that is a whole number of nanoseconds (1 ms to ~11.6 days), so `emitted + half_life`
/// is exact.
fn exact_half_life() -> impl Strategy<Value = (HalfLife, Duration)> {
    (1_000_000u64..1_000_000_000_000_000u64).prop_map(|nanos| {
        let duration = Duration::from_nanos(nanos);
        (
            HalfLife::from_duration(duration).expect("positive"),
            duration,
        )
    })
}

fn half_life() -> impl Strategy<Value = HalfLife> {
    prop_oneof![
        exact_half_life().prop_map(|(h, _)| h),
        (1e-9f64..=HalfLife::MAX_SECONDS).prop_map(|s| HalfLife::from_seconds(s).expect("valid")),
    ]
}

fn pheromone_type() -> impl Strategy<Value = PheromoneType> {
    select(PheromoneType::ALL.to_vec())
}

fn signed(seconds: i64) -> SignedDuration {
    SignedDuration::from_secs(seconds)
}

// ---------------------------------------------------------------------------------------------
// AGENTESE paths

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_path_text_parses_and_prints_back_identically(text in valid_path_text()) {
        let path = Path::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(path.to_string(), text.clone());
        prop_assert_eq!(text.parse::<Path>().unwrap(), path.clone());
        prop_assert_eq!(path.elements().count(), text.split('.').count());
        let json = serde_json::to_string(&path).unwrap();
        prop_assert_eq!(serde_json::from_str::<Path>(&json).unwrap(), path);
    }

    #[test]
    fn constructed_paths_round_trip(
        context in context(),
        segments in prop::collection::vec(segment_text(), 1..=12),
        aspect in prop::option::of(aspect()),
    ) {
        let segments: Vec<Segment> = segments.iter().map(|s| Segment::new(s.as_str()).unwrap()).collect();
        let ambiguous = aspect.is_none() && segments.len() >= 2
            && segments.last().is_some_and(Segment::is_aspect_verb);
        match Path::new(context, segments.clone(), aspect) {
            Ok(path) => {
                prop_assert!(!ambiguous);
                prop_assert_eq!(Path::parse(&path.to_string()).unwrap(), path.clone());
                prop_assert_eq!(path.context(), context);
                prop_assert_eq!(path.segments(), &segments[..]);
                prop_assert_eq!(path.aspect(), aspect);
            }
            Err(err) => {
                prop_assert!(ambiguous, "unexpected {err}");
                let is_ambiguous = matches!(err, PathError::AmbiguousAspect { .. });
                prop_assert!(is_ambiguous);
            }
        }
    }

    #[test]
    fn aspect_is_the_last_element_only_when_a_verb_follows_a_segment(path in path()) {
        let text = path.to_string();
        let elements: Vec<&str> = text.split('.').collect();
        let last_is_verb = Aspect::from_verb(elements[elements.len() - 1]).is_some();
        prop_assert_eq!(path.aspect().is_some(), last_is_verb && elements.len() >= 3);
    }

    #[test]
    fn parsing_arbitrary_strings_never_panics(input in any::<String>()) {
        check_parsers_do_not_panic(&input)?;
    }

    #[test]
    fn parsing_path_like_strings_never_panics(input in "[a-zA-Z0-9._*<>é -]{0,80}") {
        check_parsers_do_not_panic(&input)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parsing_long_strings_never_panics(
        chars in prop::collection::vec(
            prop_oneof![any::<char>(), select(vec!['a', '.', '-', 'é', '*'])],
            0..10_000,
        ),
    ) {
        let input: String = chars.into_iter().collect();
        check_parsers_do_not_panic(&input)?;
        if input.len() > MAX_PATH_LEN {
            let too_long = matches!(Path::parse(&input), Err(PathError::TooLong { .. }));
            prop_assert!(too_long);
        }
    }
}

fn check_parsers_do_not_panic(input: &str) -> Result<(), TestCaseError> {
    match Path::parse(input) {
        Ok(path) => prop_assert_eq!(path.to_string(), input),
        Err(err) => {
            let message = err.to_string();
            prop_assert!(!message.is_empty());
            // Echoed input is shortened, so messages stay readable.
            prop_assert!(message.len() < 600, "{} bytes: {}", message.len(), message);
        }
    }
    let _ = AffordanceGlob::parse(input).map(|g| g.to_string());
    let _ = PathTemplate::parse(input).map(|t| t.to_string());
    let _ = input.parse::<Genus>();
    let _ = input.parse::<PheromoneType>();
    let _ = input.parse::<Aspect>();
    let _ = input.parse::<Context>();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Affordances: a naive string matcher is the model.

fn model_glob_matches(glob: &str, path: &str) -> bool {
    let glob: Vec<&str> = glob.split('.').collect();
    let path: Vec<&str> = path.split('.').collect();
    let (last, fixed) = glob.split_last().expect("split yields one element");
    if *last == "*" {
        path.len() > fixed.len() && fixed.iter().zip(&path).all(|(g, p)| *g == "*" || g == p)
    } else {
        glob.len() == path.len() && glob.iter().zip(&path).all(|(g, p)| *g == "*" || g == p)
    }
}

/// A glob derived from a path: some elements replaced by `*`, possibly truncated to a prefix
/// followed by a trailing `*`, possibly with one literal changed.
fn glob_for(path: Path) -> impl Strategy<Value = (Path, String)> {
    let n = path.element_count();
    (
        prop::collection::vec(any::<bool>(), n),
        0..=n,
        prop::option::of(0..n),
    )
        .prop_map(move |(stars, cut, mutate)| {
            let mut elements: Vec<String> = path.elements().map(str::to_owned).collect();
            if let Some(i) = mutate {
                elements[i] = if i == 0 {
                    "void".into()
                } else {
                    "zz-other".into()
                };
            }
            for (element, star) in elements.iter_mut().zip(&stars) {
                if *star {
                    *element = "*".into();
                }
            }
            if cut > 0 && cut < n {
                elements.truncate(cut);
                elements.push("*".into());
            }
            (path.clone(), elements.join("."))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn glob_matching_agrees_with_the_model((path, glob) in path().prop_flat_map(glob_for)) {
        let parsed = AffordanceGlob::parse(&glob).unwrap();
        prop_assert_eq!(parsed.to_string(), glob.clone());
        prop_assert_eq!(parsed.matches(&path), model_glob_matches(&glob, &path.to_string()), "glob {} path {}", glob, path);
    }

    #[test]
    fn inner_star_matches_exactly_one_element(path in path(), position in any::<prop::sample::Index>()) {
        let elements: Vec<&str> = path.elements().collect();
        let i = position.index(elements.len() - 1); // never the last element
        let mut glob: Vec<&str> = elements.clone();
        glob[i] = "*";
        let glob = AffordanceGlob::parse(&glob.join(".")).unwrap();
        prop_assert!(glob.matches(&path));
        // One element more or fewer is not matched.
        let longer = Path::parse(&format!("{}.extra", path)).unwrap();
        prop_assert!(!glob.matches(&longer) || glob.to_string().ends_with('*'));
    }

    #[test]
    fn trailing_star_matches_exactly_the_strict_extensions(path in path(), cut in any::<prop::sample::Index>()) {
        let elements: Vec<&str> = path.elements().collect();
        let k = 1 + cut.index(elements.len()); // 1..=len
        let glob = AffordanceGlob::parse(&format!("{}.*", elements[..k].join("."))).unwrap();
        // A strict extension of the prefix matches; the prefix itself does not.
        prop_assert_eq!(glob.matches(&path), k < elements.len());
    }

    #[test]
    fn affordances_allow_only_what_some_glob_grants(
        paths in prop::collection::vec(path(), 1..6),
        globs in prop::collection::vec(path().prop_flat_map(glob_for).prop_map(|(_, g)| g), 0..6),
    ) {
        let affordances = Affordances::parse_all(&globs).unwrap();
        for path in &paths {
            let expected = globs.iter().any(|g| model_glob_matches(g, &path.to_string()));
            prop_assert_eq!(affordances.allows(path), expected);
            prop_assert!(!Affordances::deny_all().allows(path));
        }
    }

    #[test]
    fn registry_matches_any_agent_name(agent in segment_text()) {
        let registry = Registry::seed();
        for (command, text) in [
            ("tether", format!("world.cluster.agents.{agent}.tether")),
            ("seance", format!("time.witness.{agent}.replay")),
        ] {
            let path = Path::parse(&text).unwrap();
            let found = registry.by_path(&path).unwrap();
            prop_assert_eq!(found.entry.command(), command);
            prop_assert_eq!(found.binding("agent").unwrap().as_str(), agent.as_str());
            let rebuilt = registry
                .by_command(command)
                .unwrap()
                .template()
                .instantiate(&[("agent", agent.as_str())])
                .unwrap();
            prop_assert_eq!(rebuilt, path);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decay

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn intensity_is_non_increasing_bounded_and_starts_at_initial(
        initial in intensity(),
        half_life in half_life(),
        emitted in timestamp(),
        a in -10_000_000i64..10_000_000_000,
        b in -10_000_000i64..10_000_000_000,
    ) {
        let (early, late) = (a.min(b), a.max(b));
        let at = |offset: i64| intensity_at(initial, half_life, emitted, emitted + SignedDuration::from_millis(offset));
        let (i_early, i_late) = (at(early), at(late));
        prop_assert!(i_late <= i_early, "{i_late} > {i_early}");
        for i in [i_early, i_late] {
            prop_assert!((0.0..=1.0).contains(&i.get()));
            prop_assert!(i <= initial);
        }
        prop_assert_eq!(intensity_at(initial, half_life, emitted, emitted), initial);
        // A future emission (now before emitted_at) clamps to the initial intensity.
        if early < 0 {
            prop_assert_eq!(i_early, initial);
        }
    }

    #[test]
    fn one_half_life_halves_the_intensity(
        initial in intensity(),
        (half_life, duration) in exact_half_life(),
        emitted in timestamp(),
        k in 0u32..6,
    ) {
        let after_one = intensity_at(initial, half_life, emitted, emitted + duration);
        prop_assert!((after_one.get() - initial.get() / 2.0).abs() < 1e-9);
        let after_k = intensity_at(initial, half_life, emitted, emitted + duration * k);
        prop_assert!((after_k.get() - initial.get() / 2f64.powi(k as i32)).abs() < 1e-9);
    }

    #[test]
    fn time_until_agrees_with_intensity_at(
        initial in intensity(),
        half_life in (1.0f64..1e6).prop_map(|s| HalfLife::from_seconds(s).unwrap()),
        threshold in (1e-6f64..=1.0).prop_map(|v| Intensity::new(v).unwrap()),
        emitted in timestamp(),
    ) {
        match time_until(initial, half_life, threshold) {
            None => prop_assert!(initial <= threshold),
            Some(until) => {
                prop_assert!(initial > threshold);
                let at = intensity_at(initial, half_life, emitted, emitted + until);
                prop_assert!((at.get() - threshold.get()).abs() < 1e-9, "{at} vs {threshold}");
                let step = Duration::from_millis(1);
                prop_assert!(intensity_at(initial, half_life, emitted, emitted + until + step) < threshold);
                if until >= step {
                    prop_assert!(intensity_at(initial, half_life, emitted, emitted + (until - step)) > threshold);
                }
            }
        }
    }

    #[test]
    fn evaporates_at_is_exactly_when_is_evaporated_turns_true(
        initial in intensity(),
        half_life in half_life(),
        emitted in timestamp(),
        ttl in prop::option::of((0u64..10_000_000).prop_map(Duration::from_millis)),
    ) {
        let at = evaporates_at(initial, half_life, emitted, ttl);
        prop_assert!(at >= emitted);
        if at < Timestamp::MAX {
            prop_assert!(is_evaporated(initial, half_life, emitted, ttl, at));
            let just_before = at - SignedDuration::from_nanos(1);
            if just_before >= emitted {
                prop_assert!(!is_evaporated(initial, half_life, emitted, ttl, just_before));
            }
        } else {
            prop_assert!(ttl.is_none());
        }
        if let Some(ttl) = ttl {
            prop_assert!(at <= emitted + ttl);
        }
    }

    #[test]
    fn evaporation_is_threshold_or_ttl(
        initial in intensity(),
        half_life in half_life(),
        emitted in timestamp(),
        ttl in prop::option::of((0u64..100_000).prop_map(Duration::from_secs)),
        offset in -100_000i64..1_000_000,
    ) {
        let now = emitted + signed(offset);
        let intensity = intensity_at(initial, half_life, emitted, now);
        let ttl_passed = ttl.is_some_and(|ttl| offset >= 0 && Duration::from_secs(offset as u64) >= ttl);
        prop_assert_eq!(
            is_evaporated(initial, half_life, emitted, ttl, now),
            intensity.get() < EVAPORATION_THRESHOLD || ttl_passed
        );
    }

    #[test]
    fn dream_decays_like_a_doubled_half_life(
        initial in intensity(),
        (half_life, duration) in exact_half_life(),
        emitted in timestamp(),
        offset in 0i64..100_000_000,
    ) {
        let dream = Pheromone::new(PheromoneType::Dream, "a", emitted)
            .with_initial_intensity(initial)
            .with_half_life(half_life);
        let doubled = HalfLife::from_duration(duration * 2).unwrap();
        prop_assert_eq!(effective_half_life(PheromoneType::Dream, half_life), doubled);
        let now = emitted + SignedDuration::from_millis(offset);
        prop_assert_eq!(dream.intensity_at(now), intensity_at(initial, doubled, emitted, now));
        let after_two = dream.intensity_at(emitted + duration * 2);
        prop_assert!((after_two.get() - initial.get() / 2.0).abs() < 1e-9);
        let warning = Pheromone { pheromone_type: PheromoneType::Warning, ..dream.clone() };
        prop_assert!(warning.intensity_at(now) <= dream.intensity_at(now));
    }

    #[test]
    fn legacy_decay_rate_is_continuous_exponential_decay(rate in 1e-4f64..50.0, emitted in timestamp()) {
        let half_life = HalfLife::from_decay_rate_per_minute(rate).unwrap();
        prop_assert!((half_life.as_minutes_f64() - std::f64::consts::LN_2 / rate).abs() <= 1e-9 * half_life.as_minutes_f64());
        let after_a_minute = intensity_at(Intensity::ONE, half_life, emitted, emitted + signed(60));
        prop_assert!((after_a_minute.get() - (-rate).exp()).abs() < 1e-9);
    }

    #[test]
    fn bad_numbers_are_typed_errors_or_documented_clamps(value in prop_oneof![
        any::<f64>(),
        Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(0.0), Just(-0.0),
        -2.0f64..2.0,
    ]) {
        match Intensity::new(value) {
            Ok(i) => prop_assert_eq!(i.get(), value),
            Err(Error::IntensityOutOfRange { .. }) => prop_assert!(!(0.0..=1.0).contains(&value)),
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
        let clamped = Intensity::clamped(value);
        prop_assert!((0.0..=1.0).contains(&clamped.get()));
        if value.is_nan() {
            prop_assert_eq!(clamped, Intensity::ZERO);
        }
        let valid_half_life = value > 0.0 && value <= HalfLife::MAX_SECONDS;
        prop_assert_eq!(HalfLife::from_seconds(value).is_ok(), valid_half_life);
        prop_assert_eq!(
            HalfLife::from_decay_rate_per_minute(value).is_ok(),
            value > 0.0 && value.is_finite() && std::f64::consts::LN_2 / value * 60.0 <= HalfLife::MAX_SECONDS
        );
        if let Ok(threshold) = Intensity::new(value) {
            // time_until never panics, whatever the threshold.
            let _ = time_until(Intensity::ONE, HalfLife::DEFAULT, threshold);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The pheromone field, against a naive model.

const SOURCES: [&str; 3] = ["a-gent", "b-gent", "c-gent"];
const TARGETS: [&str; 2] = ["x-gent", "y-gent"];

fn pheromone(now: Timestamp) -> impl Strategy<Value = Pheromone> {
    (
        pheromone_type(),
        select(SOURCES.to_vec()),
        prop::option::of(select(TARGETS.to_vec())),
        // Few distinct intensities and ages, so ties happen.
        prop_oneof![select(vec![1.0, 0.5, 0.25, 0.01]), 0.0f64..=1.0],
        select(vec![60.0, 600.0, 3600.0]),
        prop_oneof![select(vec![0i64, 600, 3600]), -600i64..20_000],
        prop::option::of((0u64..20_000).prop_map(Duration::from_secs)),
    )
        .prop_map(
            move |(t, source, target, initial, hl, age, ttl)| Pheromone {
                pheromone_type: t,
                source: source.to_owned(),
                target: target.map(str::to_owned),
                initial_intensity: Intensity::new(initial).unwrap(),
                half_life: HalfLife::from_seconds(hl).unwrap(),
                emitted_at: now - signed(age),
                ttl,
            },
        )
}

fn query() -> impl Strategy<Value = SenseQuery> {
    (
        subsequence(PheromoneType::ALL.to_vec(), 0..4),
        prop::option::of(select(SOURCES.to_vec())),
        prop::option::of(select(TARGETS.to_vec())),
    )
        .prop_map(|(types, source, target)| SenseQuery {
            types: types.into_iter().collect::<TypeSet>(),
            source: source.map(str::to_owned),
            target: target.map(str::to_owned),
        })
}

/// The model: filter by hand, sort stably by intensity descending, keep indices.
fn naive_sense(
    signals: &[Pheromone],
    query: &SenseQuery,
    now: Timestamp,
) -> Vec<(usize, Intensity)> {
    let mut found: Vec<(usize, Intensity)> = signals
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            (query.types.is_empty() || query.types.iter().any(|t| t == p.pheromone_type))
                && query.source.as_ref().is_none_or(|s| *s == p.source)
                && (query.target.is_none() || p.target.is_none() || p.target == query.target)
        })
        .filter(|(_, p)| {
            let half_life = if p.pheromone_type == PheromoneType::Dream {
                HalfLife::from_seconds(p.half_life.as_seconds_f64() * 2.0).unwrap()
            } else {
                p.half_life
            };
            !decay::is_evaporated(p.initial_intensity, half_life, p.emitted_at, p.ttl, now)
        })
        .map(|(i, p)| (i, p.intensity_at(now)))
        .collect();
    found.sort_by(|a, b| b.1.get().partial_cmp(&a.1.get()).unwrap());
    found
}

fn field_case() -> impl Strategy<Value = (Timestamp, Vec<Pheromone>, SenseQuery, usize)> {
    timestamp().prop_flat_map(|now| {
        (
            Just(now),
            prop::collection::vec(pheromone(now), 0..60),
            query(),
            0usize..70,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sense_and_top_k_agree_with_a_naive_sort((now, signals, query, k) in field_case()) {
        let field = PheromoneField::new(&signals);
        let expected = naive_sense(&signals, &query, now);
        let sensed: Vec<(usize, Intensity)> =
            field.sense(&query, now).iter().map(|s| (s.index, s.intensity)).collect();
        prop_assert_eq!(&sensed, &expected);
        let top: Vec<(usize, Intensity)> =
            field.top_k(&query, now, k).iter().map(|s| (s.index, s.intensity)).collect();
        prop_assert_eq!(&top[..], &expected[..k.min(expected.len())]);
        for s in field.sense(&query, now) {
            prop_assert!(std::ptr::eq(s.signal, &signals[s.index]));
        }
    }

    #[test]
    fn a_target_senses_broadcasts_and_its_own_signals_only((now, signals, _query, _k) in field_case(), target in select(TARGETS.to_vec())) {
        let field = PheromoneField::new(&signals);
        for s in field.sense(&SenseQuery::all().for_target(target), now) {
            prop_assert!(s.signal.target.is_none() || s.signal.target.as_deref() == Some(target));
        }
        let everyone = field.sense(&SenseQuery::all(), now).len();
        let broadcast_or_mine = signals.iter().filter(|p| !p.is_evaporated(now)
            && (p.target.is_none() || p.target.as_deref() == Some(target))).count();
        prop_assert_eq!(field.sense(&SenseQuery::all().for_target(target), now).len(), broadcast_or_mine);
        prop_assert!(broadcast_or_mine <= everyone);
    }

    #[test]
    fn heat_sums_and_evaporated_partition_the_field((now, signals, _query, _k) in field_case()) {
        let field = PheromoneField::new(&signals);
        let live = field.sense(&SenseQuery::all(), now);
        let gone = field.evaporated(now);
        prop_assert_eq!(live.len() + gone.len(), signals.len());
        let heat = field.heat(now);
        for t in PheromoneType::ALL {
            let of_type: Vec<f64> = live
                .iter()
                .filter(|s| s.signal.pheromone_type == t)
                .map(|s| s.intensity.get())
                .collect();
            match heat.get(&t) {
                None => prop_assert!(of_type.is_empty()),
                Some(h) => {
                    prop_assert_eq!(h.count, of_type.len());
                    prop_assert!((h.sum - of_type.iter().sum::<f64>()).abs() < 1e-9);
                    prop_assert_eq!(h.max.get(), of_type.iter().copied().fold(0.0, f64::max));
                }
            }
        }
        match field.next_evaporation(now) {
            None => prop_assert!(live.is_empty()),
            Some(next) => {
                prop_assert!(next > now);
                prop_assert!(live.iter().any(|s| s.signal.is_evaporated(next)));
            }
        }
    }
}
