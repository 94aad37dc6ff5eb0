//! The Pheromone controller: a pheromone is looked at when it appears, when it starts to fade
//! and when it evaporates — never on a polling tick.
//!
//! Its whole life is known at emission ([`lifecycle`]): intensity follows the half-life decay of
//! `kgents_core::decay`, so the instant it falls under [`EVAPORATING_BELOW`] and the instant it
//! evaporates (under 0.01, or past its TTL) are computed, not observed. A reconcile
//! ([`decide`]) writes the status when it differs from what is stored (ACTIVE with the predicted
//! `evaporatesAt` once, EVAPORATING once), and requeues the object exactly at its next
//! transition; at evaporation it deletes it. `emittedAt`, when the spec omits it, is the
//! object's creation time — computed here, never written into the immutable spec.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kgents_core::decay::{self, HalfLife, Intensity};
use kgents_crds::Pheromone;
use kgents_crds::common::Time;
use kgents_crds::pheromone::{PheromonePhase, PheromoneStatus};
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::{Api, Resource, ResourceExt};

use crate::support::{self, key_of};
use crate::{Context, Error, Result};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "pheromone";

/// Below this intensity a pheromone is EVAPORATING (it is deleted below 0.01).
pub const EVAPORATING_BELOW: f64 = 0.1;

/// The longest a pheromone waits for its next look: bounds the timer for signals that live for
/// years, and re-checks them daily in case a watch event was lost.
pub const MAX_REQUEUE: Duration = Duration::from_secs(24 * 60 * 60);

/// The instants that make up a pheromone's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    /// When it was emitted (`spec.emittedAt`, else the creation time).
    pub emitted_at: Timestamp,
    /// When its intensity first falls under [`EVAPORATING_BELOW`] (never after `evaporates_at`).
    pub evaporating_at: Timestamp,
    /// When it has evaporated: under 0.01 or past its TTL, whichever comes first.
    pub evaporates_at: Timestamp,
}

fn invalid(pheromone: &Pheromone, message: String) -> Error {
    Error::InvalidSpec {
        kind: "Pheromone",
        name: key_of(pheromone),
        message,
    }
}

/// Computes a pheromone's life from its spec and creation time.
///
/// Errors when the object has neither `spec.emittedAt` nor a creation time (it was not read from
/// the API server) or its numbers are outside what the schema allows (an old CRD let them in).
pub fn lifecycle(pheromone: &Pheromone) -> Result<Lifecycle> {
    let spec = &pheromone.spec;
    let emitted_at = spec
        .emitted_at
        .as_ref()
        .or(pheromone.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
        .ok_or(Error::MissingObjectKey("metadata.creationTimestamp"))?;
    let initial = Intensity::new(spec.initial_intensity).map_err(|e| {
        invalid(
            pheromone,
            format!("initialIntensity: {e}; set a value in (0, 1]"),
        )
    })?;
    let base = HalfLife::from_minutes(spec.half_life_minutes)
        .map_err(|e| invalid(pheromone, format!("halfLifeMinutes: {e}; set at least 0.1")))?;
    let half_life = decay::effective_half_life(spec.kind, base);
    let ttl = match spec.ttl_seconds {
        None => None,
        Some(seconds) => Some(Duration::from_secs(u64::try_from(seconds).map_err(
            |_| {
                invalid(
                    pheromone,
                    format!("ttlSeconds is {seconds}; set at least 1 or leave it unset"),
                )
            },
        )?)),
    };
    let evaporates_at = decay::evaporates_at(initial, half_life, emitted_at, ttl);
    let fading = Intensity::clamped(EVAPORATING_BELOW);
    let evaporating_at = match decay::time_until(initial, half_life, fading) {
        None => emitted_at,
        Some(after) => emitted_at.checked_add(after).unwrap_or(Timestamp::MAX),
    }
    .min(evaporates_at);
    Ok(Lifecycle {
        emitted_at,
        evaporating_at,
        evaporates_at,
    })
}

/// What a reconcile does with a pheromone.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// It has evaporated: delete it.
    Delete,
    /// It lives on: its status should read `status`; look again after `requeue_after`.
    Track {
        /// The status it should have now.
        status: PheromoneStatus,
        /// Time until its next transition (bounded by [`MAX_REQUEUE`]).
        requeue_after: Duration,
    },
}

/// Time from `now` until `at` (zero when `at` has passed), bounded by [`MAX_REQUEUE`].
fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now))
        .unwrap_or(Duration::ZERO)
        .min(MAX_REQUEUE)
}

/// Decides what a pheromone with `life` needs at `now`.
pub fn decide(life: &Lifecycle, now: Timestamp) -> Decision {
    if now >= life.evaporates_at {
        return Decision::Delete;
    }
    let (phase, next) = if now >= life.evaporating_at {
        (PheromonePhase::Evaporating, life.evaporates_at)
    } else {
        (PheromonePhase::Active, life.evaporating_at)
    };
    Decision::Track {
        status: PheromoneStatus {
            phase: Some(phase),
            evaporates_at: Some(Time(support::ceil_to_second(life.evaporates_at))),
        },
        requeue_after: until(now, next),
    }
}

/// Whether the stored status differs from the one wanted.
pub fn needs_write(current: Option<&PheromoneStatus>, desired: &PheromoneStatus) -> bool {
    current != Some(desired)
}

/// Reconciles one pheromone.
pub async fn reconcile(pheromone: Arc<Pheromone>, ctx: Arc<Context>) -> Result<Action> {
    support::reconcile(
        &ctx,
        CONTROLLER,
        pheromone.as_ref(),
        reconcile_inner(&pheromone, &ctx),
    )
    .await
}

async fn reconcile_inner(pheromone: &Pheromone, ctx: &Context) -> Result<Action> {
    if pheromone.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let key = key_of(pheromone);
    let life = match lifecycle(pheromone) {
        Ok(life) => life,
        Err(error @ Error::InvalidSpec { .. }) => {
            // The spec is immutable: nothing will change it, so report once and wait.
            support::transition_event(
                ctx,
                pheromone,
                true,
                "InvalidPheromone",
                "Evaluate",
                error.to_string(),
            )
            .await;
            ctx.metrics
                .reconcile_failed(CONTROLLER, error.metric_label());
            return Ok(Action::await_change());
        }
        Err(other) => return Err(other),
    };
    match decide(&life, ctx.clock.now()) {
        Decision::Delete => {
            if !ctx.leader.is_leader() {
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
            let namespace = pheromone
                .namespace()
                .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
            let api: Api<Pheromone> = Api::namespaced(ctx.client.clone(), &namespace);
            // The uid precondition keeps a re-emitted pheromone of the same name safe.
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: pheromone.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match ctx
                .api(
                    "delete pheromone",
                    api.delete(&pheromone.name_any(), &params),
                )
                .await
            {
                Ok(_) => {}
                Err(Error::Kube(kube::Error::Api(status)))
                    if status.code == 404 || status.code == 409 => {}
                Err(other) => return Err(other),
            }
            ctx.metrics.forget_object("Pheromone", &key);
            tracing::debug!(pheromone = %key, "evaporated and deleted");
            Ok(Action::await_change())
        }
        Decision::Track {
            status,
            requeue_after,
        } => {
            let phase = status.phase.map_or("UNKNOWN", PheromonePhase::as_str);
            ctx.metrics.observe_phase("Pheromone", &key, phase);
            if needs_write(pheromone.status.as_ref(), &status) {
                support::apply_status(ctx, pheromone, "Pheromone", &status).await?;
            }
            Ok(Action::requeue(requeue_after))
        }
    }
}

/// What happens after a failed reconcile: counted, logged and retried.
pub fn error_policy(pheromone: Arc<Pheromone>, error: &Error, ctx: Arc<Context>) -> Action {
    support::error_policy(&ctx, CONTROLLER, pheromone.as_ref(), error)
}

/// The Kubernetes permissions the Pheromone controller uses, and nothing more: it watches
/// pheromones, writes their status and deletes evaporated ones, and publishes Events.
pub fn required_rules() -> Vec<PolicyRule> {
    vec![
        support::rule("kgents.io", &["pheromones"], &["list", "watch", "delete"]),
        support::rule("kgents.io", &["pheromones/status"], &["patch"]),
        support::rule("events.k8s.io", &["events"], &["create", "patch"]),
    ]
}

/// Runs the Pheromone controller until `shutdown` resolves; in-flight reconciles finish first.
///
/// It reads the process's shared Pheromone watch, which the witness recorder reads too.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + 'static) {
    let pheromones = ctx.watches.pheromones.clone();
    let applied = pheromones.subscribe().filter_map(|event| {
        futures::future::ready(match event {
            crate::shared::Event::Applied(pheromone) => Some(pheromone),
            crate::shared::Event::Deleted(_) | crate::shared::Event::Relisted => None,
        })
    });
    Controller::for_shared_stream(applied, pheromones.store())
        .with_config(ControllerConfig::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(support::sync_signal(shutdown))
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move { support::log_outcome(CONTROLLER, &result) })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::fixtures_controllers::{failure, mock_context, serve};
    use kgents_crds::PheromoneSpec;
    use proptest::prelude::*;
    use serde_json::json;

    fn at(seconds: f64) -> Timestamp {
        Timestamp::from_nanosecond((seconds * 1e9) as i128).expect("in range")
    }

    fn pheromone(spec: serde_json::Value, created: Timestamp) -> Pheromone {
        let mut spec = spec;
        if spec.get("source").is_none() {
            spec["source"] = json!("scout");
        }
        if spec.get("type").is_none() {
            spec["type"] = json!("WARNING");
        }
        let spec: PheromoneSpec = serde_json::from_value(spec).expect("valid spec");
        let mut p = Pheromone::new("alarm", spec);
        p.metadata.namespace = Some("hive".into());
        p.metadata.uid = Some("uid-alarm".into());
        p.metadata.creation_timestamp = Some(Time(created));
        p.metadata.resource_version = Some("3".into());
        p
    }

    #[test]
    fn emitted_at_defaults_to_creation_and_halves_every_half_life() {
        let p = pheromone(json!({"halfLifeMinutes": 0.1}), at(1000.0));
        let life = lifecycle(&p).expect("life");
        assert_eq!(life.emitted_at, at(1000.0));
        // 1.0 → 0.1 takes log2(10) half-lives; → 0.01 takes log2(100).
        let fading = life.evaporating_at.duration_since(at(1000.0)).as_secs_f64();
        let gone = life.evaporates_at.duration_since(at(1000.0)).as_secs_f64();
        assert!((fading - 6.0 * 10f64.log2()).abs() < 1e-6, "{fading}");
        assert!((gone - 6.0 * 100f64.log2()).abs() < 1e-6, "{gone}");
    }

    #[test]
    fn an_explicit_emission_time_wins_over_creation() {
        let mut p = pheromone(json!({"halfLifeMinutes": 1.0}), at(1000.0));
        p.spec.emitted_at = Some(Time(at(400.0)));
        assert_eq!(lifecycle(&p).expect("life").emitted_at, at(400.0));
    }

    #[test]
    fn dream_fades_half_as_fast() {
        let plain = lifecycle(&pheromone(json!({"halfLifeMinutes": 1.0}), at(0.0))).expect("life");
        let dream = lifecycle(&pheromone(
            json!({"halfLifeMinutes": 1.0, "type": "DREAM"}),
            at(0.0),
        ))
        .expect("life");
        let plain_s = plain.evaporates_at.duration_since(at(0.0)).as_secs_f64();
        let dream_s = dream.evaporates_at.duration_since(at(0.0)).as_secs_f64();
        assert!((dream_s - 2.0 * plain_s).abs() < 1e-6);
    }

    #[test]
    fn ttl_cuts_life_short_and_a_weak_signal_starts_fading() {
        let p = pheromone(
            json!({"halfLifeMinutes": 10.0, "ttlSeconds": 30, "initialIntensity": 0.05}),
            at(0.0),
        );
        let life = lifecycle(&p).expect("life");
        assert_eq!(life.evaporates_at, at(30.0));
        assert_eq!(life.evaporating_at, at(0.0), "0.05 is already under 0.1");
        match decide(&life, at(1.0)) {
            Decision::Track {
                status,
                requeue_after,
            } => {
                assert_eq!(status.phase, Some(PheromonePhase::Evaporating));
                assert_eq!(requeue_after, Duration::from_secs(29));
            }
            other => panic!("expected Track, got {other:?}"),
        }
        assert_eq!(decide(&life, at(30.0)), Decision::Delete);
    }

    #[test]
    fn bad_numbers_are_an_invalid_spec_not_a_panic() {
        let mut p = pheromone(json!({}), at(0.0));
        p.spec.half_life_minutes = 0.0;
        assert!(matches!(lifecycle(&p), Err(Error::InvalidSpec { .. })));
        let mut p = pheromone(json!({}), at(0.0));
        p.spec.initial_intensity = f64::NAN;
        assert!(matches!(lifecycle(&p), Err(Error::InvalidSpec { .. })));
        let mut p = pheromone(json!({}), at(0.0));
        p.spec.ttl_seconds = Some(-1);
        assert!(matches!(lifecycle(&p), Err(Error::InvalidSpec { .. })));
        let mut p = pheromone(json!({}), at(0.0));
        p.metadata.creation_timestamp = None;
        assert!(matches!(lifecycle(&p), Err(Error::MissingObjectKey(_))));
    }

    #[test]
    fn a_status_already_right_is_not_written() {
        let life = lifecycle(&pheromone(json!({"halfLifeMinutes": 1.0}), at(0.0))).expect("life");
        let Decision::Track { status, .. } = decide(&life, at(1.0)) else {
            panic!("alive at 1 s")
        };
        assert!(needs_write(None, &status));
        assert!(!needs_write(Some(&status), &status));
        // A second look later in the ACTIVE phase wants the very same status.
        let Decision::Track { status: later, .. } = decide(&life, at(10.0)) else {
            panic!("alive at 10 s")
        };
        assert_eq!(later, status);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Requeueing at the returned delay lands exactly on the next transition: a pheromone
        /// is deleted at its evaporation instant and never before.
        #[test]
        fn requeues_land_on_transitions(
            initial in 0.011f64..=1.0,
            half_life in 0.1f64..600.0,
            ttl in proptest::option::of(1i64..100_000),
            offset in 0.0f64..100_000.0,
        ) {
            let spec = json!({"halfLifeMinutes": half_life, "initialIntensity": initial, "ttlSeconds": ttl});
            let life = lifecycle(&pheromone(spec, at(0.0))).expect("life");
            prop_assert!(life.evaporating_at <= life.evaporates_at);
            let now = at(offset);
            match decide(&life, now) {
                Decision::Delete => prop_assert!(now >= life.evaporates_at),
                Decision::Track { status, requeue_after } => {
                    prop_assert!(now < life.evaporates_at);
                    let next = now.checked_add(requeue_after).expect("in range");
                    let target = if status.phase == Some(PheromonePhase::Active) {
                        life.evaporating_at
                    } else {
                        life.evaporates_at
                    };
                    // Duration conversion is exact to the nanosecond.
                    prop_assert!(next == target || requeue_after == MAX_REQUEUE);
                    prop_assert!(status.evaporates_at.expect("set").0 >= life.evaporates_at);
                }
            }
        }
    }

    fn with_status(p: &Pheromone, status: serde_json::Value) -> serde_json::Value {
        let mut value = serde_json::to_value(p).expect("JSON");
        value["status"] = status;
        value
    }

    #[tokio::test]
    async fn a_new_pheromone_gets_its_status_once_and_a_requeue_at_fading() {
        let (ctx, api, _clock) = mock_context(at(1_000.0));
        let p = pheromone(json!({"halfLifeMinutes": 0.1}), at(1_000.0));
        let reply = with_status(&p, json!({"phase": "ACTIVE"}));
        let server = serve(api, move |mut api| async move {
            let seen = api.answer(|_| (200, reply)).await;
            assert!(seen.is_exactly(
                "PATCH",
                "/apis/kgents.io/v1/namespaces/hive/pheromones/alarm/status"
            ));
            assert!(
                seen.uri.contains("fieldManager=kgents-operator"),
                "{}",
                seen.uri
            );
            assert_eq!(seen.body["status"]["phase"], "ACTIVE");
            // 1000 s + 6 s × log2(100) = 1039.86 s, written rounded up.
            assert_eq!(seen.body["status"]["evaporatesAt"], "1970-01-01T00:17:20Z");
            assert_eq!(seen.body["kind"], "Pheromone");
        });
        let action = reconcile(Arc::new(p), ctx).await.expect("reconciled");
        server.finish().await;
        let fading = Duration::from_secs_f64(6.0 * 10f64.log2());
        let Some(delay) = requeue_delay(&action) else {
            panic!("expected a requeue, got {action:?}")
        };
        assert!(
            delay.abs_diff(fading) < Duration::from_micros(1),
            "{delay:?}"
        );
    }

    /// The delay of a requeue action (kube's `Action` only exposes it through `Debug`).
    fn requeue_delay(action: &Action) -> Option<Duration> {
        parse_requeue(&format!("{action:?}"))
    }

    fn parse_requeue(debug: &str) -> Option<Duration> {
        let inner = debug
            .split("requeue_after: Some(")
            .nth(1)?
            .split(')')
            .next()?;
        parse_duration_debug(inner)
    }

    fn parse_duration_debug(text: &str) -> Option<Duration> {
        let units = [("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)];
        for (suffix, scale) in units {
            if let Some(number) = text.strip_suffix(suffix) {
                return number
                    .parse::<f64>()
                    .ok()
                    .map(|n| Duration::from_secs_f64(n * scale));
            }
        }
        None
    }

    #[tokio::test]
    async fn nothing_changed_means_no_request_at_all() {
        let (ctx, api, _clock) = mock_context(at(1_010.0));
        let mut p = pheromone(json!({"halfLifeMinutes": 0.1}), at(1_000.0));
        p.status = Some(PheromoneStatus {
            phase: Some(PheromonePhase::Active),
            evaporates_at: Some(Time(at(1_040.0))),
        });
        let server = serve(api, |mut api| async move { api.expect_silence().await });
        let action = reconcile(Arc::new(p), ctx).await.expect("reconciled");
        server.finish().await;
        assert!(requeue_delay(&action).is_some(), "{action:?}");
    }

    #[tokio::test]
    async fn fading_is_written_once_then_the_next_look_is_at_evaporation() {
        let (ctx, api, _clock) = mock_context(at(1_030.0));
        let mut p = pheromone(json!({"halfLifeMinutes": 0.1}), at(1_000.0));
        p.status = Some(PheromoneStatus {
            phase: Some(PheromonePhase::Active),
            evaporates_at: Some(Time(at(1_040.0))),
        });
        let reply = with_status(&p, json!({"phase": "EVAPORATING"}));
        let server = serve(api, move |mut api| async move {
            let seen = api.answer(|_| (200, reply)).await;
            assert_eq!(seen.body["status"]["phase"], "EVAPORATING");
        });
        let action = reconcile(Arc::new(p), ctx).await.expect("reconciled");
        server.finish().await;
        let delay = requeue_delay(&action).expect("a requeue");
        let expected = Duration::from_secs_f64(6.0 * 100f64.log2() - 30.0);
        assert!(
            delay.abs_diff(expected) < Duration::from_micros(1),
            "{delay:?}"
        );
    }

    #[tokio::test]
    async fn an_evaporated_pheromone_is_deleted_with_a_uid_precondition() {
        let (ctx, api, _clock) = mock_context(at(1_040.0));
        let p = pheromone(json!({"halfLifeMinutes": 0.1}), at(1_000.0));
        let server = serve(api, |mut api| async move {
            let seen = api
                .answer(|_| {
                    (
                        200,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                    )
                })
                .await;
            assert!(seen.is_exactly(
                "DELETE",
                "/apis/kgents.io/v1/namespaces/hive/pheromones/alarm"
            ));
            assert_eq!(seen.body["preconditions"]["uid"], "uid-alarm");
        });
        let action = reconcile(Arc::new(p), ctx).await.expect("reconciled");
        server.finish().await;
        assert_eq!(action, Action::await_change());
    }

    #[tokio::test]
    async fn a_refused_status_write_is_an_error_counted_by_the_policy() {
        let (ctx, api, _clock) = mock_context(at(1_000.0));
        let p = Arc::new(pheromone(json!({"halfLifeMinutes": 0.1}), at(1_000.0)));
        let server = serve(api, |mut api| async move {
            api.answer(|_| {
                (
                    403,
                    failure(403, "Forbidden", "pheromones/status is forbidden"),
                )
            })
            .await;
        });
        let error = reconcile(p.clone(), ctx.clone())
            .await
            .expect_err("a 403 fails");
        server.finish().await;
        let action = error_policy(p, &error, ctx.clone());
        assert_eq!(action, Action::requeue(Duration::from_secs(15)));
        let text = ctx.metrics.encode();
        assert!(
            text.contains(
                r#"kgents_reconcile_errors_total{controller="pheromone",reason="forbidden"} 1"#
            ),
            "{text}"
        );
    }
}
