//! The path probe against mocked resolvers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kgents_core::agentese::Path;

use super::{rng, runner};
use crate::challenge::Challenge;
use crate::client::LlmError;
use crate::error::Error;
use crate::outcome::Verdict;
use crate::path::{MockPathResolver, PathProbe, PathResolver, ResolveError};
use crate::probe::{PoseError, Probe};

fn resolving(answer: Result<&'static str, ResolveError>) -> MockPathResolver {
    let mut resolver = MockPathResolver::new();
    resolver
        .expect_resolve()
        .withf(|path: &Path| path.to_string() == "concept.define")
        .times(1)
        .returning(move |_| answer.clone().map(str::to_owned));
    resolver
}

async fn outcome_of(resolver: impl PathResolver + 'static) -> crate::ProbeOutcome {
    let probe = PathProbe::new(Arc::new(resolver), ["concept.define"]).unwrap();
    runner().run(&probe, &mut rng()).await
}

#[tokio::test(start_paused = true)]
async fn a_non_empty_answer_is_healthy() {
    let outcome = outcome_of(resolving(Ok("A definition: a statement of meaning."))).await;
    assert_eq!(outcome.verdict(), Verdict::Healthy, "{}", outcome.reason());
    assert_eq!(outcome.kind(), crate::ProbeKind::Path);
}

#[tokio::test(start_paused = true)]
async fn an_empty_answer_or_an_error_answer_is_unhealthy() {
    for answer in [
        Ok(""),
        Ok("  \n"),
        Err(ResolveError::Failed {
            message: "unknown term".into(),
        }),
    ] {
        let outcome = outcome_of(resolving(answer)).await;
        assert_eq!(
            outcome.verdict(),
            Verdict::Unhealthy,
            "{}",
            outcome.reason()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_resolver_is_unresponsive() {
    let llm_down = ResolveError::from(LlmError::Transport {
        message: "connection reset".into(),
    });
    for error in [
        ResolveError::Unreachable {
            message: "cortex daemon not listening on :50052".into(),
        },
        llm_down,
    ] {
        let outcome = outcome_of(resolving(Err(error))).await;
        assert_eq!(
            outcome.verdict(),
            Verdict::Unresponsive,
            "{}",
            outcome.reason()
        );
    }
}

struct SlowResolver(Duration);

#[async_trait]
impl PathResolver for SlowResolver {
    async fn resolve(&self, path: &Path) -> Result<String, ResolveError> {
        tokio::time::sleep(self.0).await;
        Ok(format!("resolved {path}"))
    }
}

#[tokio::test(start_paused = true)]
async fn slow_resolution_is_degraded_and_a_hang_is_unresponsive() {
    let outcome = outcome_of(SlowResolver(Duration::from_secs(6))).await;
    assert_eq!(outcome.verdict(), Verdict::Degraded);
    let outcome = outcome_of(SlowResolver(Duration::from_secs(3600))).await;
    assert_eq!(outcome.verdict(), Verdict::Unresponsive);
    assert_eq!(outcome.latency(), Duration::from_secs(10));
}

#[test]
fn paths_are_validated_when_the_probe_is_built() {
    let resolver: Arc<dyn PathResolver> = Arc::new(MockPathResolver::new());
    assert_eq!(
        PathProbe::new(resolver.clone(), Vec::<&str>::new()).unwrap_err(),
        Error::NoPaths
    );
    for bad in [
        "",
        "concept",
        "nowhere.define",
        "concept..define",
        "Concept.Define",
        "concept.définir",
    ] {
        match PathProbe::new(resolver.clone(), ["concept.define", bad]) {
            Err(Error::InvalidPath { path, reason }) => {
                assert!(path.contains(bad), "{path}");
                assert!(!reason.is_empty());
            }
            other => panic!("{bad:?} accepted: {other:?}"),
        }
    }
    let probe = PathProbe::new(
        resolver,
        ["concept.define", "world.cluster.agents.manifest"],
    )
    .unwrap();
    assert_eq!(probe.paths().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_probe_draws_each_of_its_paths() {
    let resolver: Arc<dyn PathResolver> = Arc::new(MockPathResolver::new());
    let paths = [
        "concept.define",
        "self.memory.manifest",
        "void.pheromone.sense",
    ];
    let probe = PathProbe::new(resolver, paths).unwrap();
    let mut rng = rng();
    let drawn: std::collections::HashSet<String> = (0..60)
        .map(|_| match probe.draw(&mut rng) {
            Challenge::Path { path } => path.to_string(),
            other => panic!("not a path challenge: {other:?}"),
        })
        .collect();
    assert_eq!(drawn.len(), 3);

    // Posing another kind of challenge directly is refused, not a panic.
    let refused = probe.pose(&Challenge::Json { nonce: 1 }).await;
    assert!(matches!(refused, Err(PoseError::Mismatch { .. })));
}
