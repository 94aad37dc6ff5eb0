//! The Umwelt controller: reconcile, the error policy and the watch wiring.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::shared::Shared;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kgents_crds::{Agent, Umwelt};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};

use super::plan::{plan, service_account_name};
use super::status::{Observed, active_agents, desired_status, umwelts_touched};
use super::{CONTROLLER, READY};
use crate::conditions;
use crate::support::{self, key_of};
use crate::{Context, Error, Result};

/// How soon an Umwelt whose Secret is missing is looked at again (Secrets are not watched).
const SECRET_RECHECK: Duration = Duration::from_secs(30);

/// What the Umwelt reconciler shares: the operator context and a cache of the Agents (to count
/// those using each Umwelt).
pub struct UmweltState {
    /// The operator context.
    pub ctx: Arc<Context>,
    /// Every Agent the operator watches (the shared watch).
    pub agents: Shared<Agent>,
}

impl UmweltState {
    /// The count of Agents naming `umwelt`, once the Agent cache has loaded.
    fn active_agents(&self, umwelt: &Umwelt) -> Option<i32> {
        self.agents
            .is_ready()
            .then(|| active_agents(umwelt, self.agents.store().state().iter().map(|a| &**a)))
    }
}

/// Reconciles one Umwelt.
pub async fn reconcile(umwelt: Arc<Umwelt>, state: Arc<UmweltState>) -> Result<Action> {
    support::reconcile(
        &state.ctx,
        CONTROLLER,
        umwelt.as_ref(),
        reconcile_inner(&umwelt, &state),
    )
    .await
}

async fn reconcile_inner(umwelt: &Umwelt, state: &UmweltState) -> Result<Action> {
    let ctx = &*state.ctx;
    if umwelt.meta().deletion_timestamp.is_some() {
        // Children are owned: the garbage collector removes them.
        return Ok(Action::await_change());
    }
    let namespace = umwelt
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let key = key_of(umwelt);
    let planned = plan(umwelt)?;
    let mut recheck = ctx.config.resync_interval;
    let mut applied = false;
    let secret_exists = match &planned {
        Ok(children) => {
            // Children are read from the shared caches: a steady state costs no request.
            let watches = &ctx.watches;
            let (accounts, roles) = (watches.service_accounts.store(), watches.roles.store());
            let (bindings, maps) = (watches.role_bindings.store(), watches.config_maps.store());
            applied |= support::ensure_from(ctx, &accounts, children.service_account.clone())
                .await?
                .applied;
            applied |= support::ensure_from(ctx, &roles, children.role.clone())
                .await?
                .applied;
            applied |= support::ensure_from(ctx, &bindings, children.role_binding.clone())
                .await?
                .applied;
            applied |= support::ensure_from(ctx, &maps, children.config_map.clone())
                .await?
                .applied;
            match &umwelt.spec.secret_ref {
                None => None,
                Some(secret) => {
                    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
                    let found = ctx
                        .api(
                            "read secret metadata",
                            secrets.get_metadata_opt(&secret.name),
                        )
                        .await?
                        .is_some();
                    if !found {
                        recheck = recheck.min(SECRET_RECHECK);
                    }
                    Some(found)
                }
            }
        }
        Err(_) => {
            // Deny by default: whatever an earlier, valid spec granted is revoked.
            let name = service_account_name(&umwelt.name_any());
            let watches = &ctx.watches;
            support::remove_cached(ctx, &watches.role_bindings.store(), &namespace, &name).await?;
            support::remove_cached(ctx, &watches.roles.store(), &namespace, &name).await?;
            None
        }
    };
    let compiled = planned.as_ref().map(|c| &c.access);
    let observed = Observed {
        secret_exists,
        active_agents: state.active_agents(umwelt),
        applied,
    };
    let desired = desired_status(umwelt, &compiled, observed, ctx.clock.now());
    let ready = conditions::find(&desired.conditions, READY).cloned();
    ctx.metrics.observe_phase(
        "Umwelt",
        &key,
        ready
            .as_ref()
            .map(|c| c.status.as_str())
            .unwrap_or("Unknown"),
    );
    if umwelt.status.as_ref() != Some(&desired) {
        support::apply_status(ctx, umwelt, "Umwelt", &desired).await?;
        let before = umwelt
            .status
            .as_ref()
            .and_then(|s| conditions::find(&s.conditions, READY))
            .map(|c| (c.status.clone(), c.reason.clone()));
        if let Some(ready) = ready
            && before != Some((ready.status.clone(), ready.reason.clone()))
        {
            support::transition_event(
                ctx,
                umwelt,
                ready.status != "True",
                &ready.reason,
                "Compile",
                ready.message.clone(),
            )
            .await;
        }
    }
    Ok(Action::requeue(recheck))
}

/// What happens after a failed reconcile: counted, logged and retried.
pub fn error_policy(umwelt: Arc<Umwelt>, error: &Error, state: Arc<UmweltState>) -> Action {
    support::error_policy(&state.ctx, CONTROLLER, umwelt.as_ref(), error)
}

/// Runs the Umwelt controller until `shutdown` resolves; in-flight reconciles finish first.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + 'static) {
    let umwelts = ctx.scoped::<Umwelt>();
    let watches = &ctx.watches;
    // Agents (the process's shared cache) count the users of each Umwelt; an Agent that
    // starts or stops naming an Umwelt (created, changed, deleted) has that Umwelt recounted at
    // once.
    let mut last = HashMap::new();
    let recount = ctx
        .watches
        .agents
        .subscribe()
        .flat_map(move |event| futures::stream::iter(umwelts_touched(&mut last, &event)));
    let state = Arc::new(UmweltState {
        ctx: ctx.clone(),
        agents: ctx.watches.agents.clone(),
    });
    // Children come from the process's shared watches of what the operator manages.
    Controller::new(umwelts, watcher::Config::default().any_semantic())
        .owns_shared_stream(support::of_component(
            watches.service_accounts.touched(),
            "umwelt",
        ))
        .owns_shared_stream(support::of_component(watches.roles.touched(), "umwelt"))
        .owns_shared_stream(support::of_component(
            watches.role_bindings.touched(),
            "umwelt",
        ))
        .owns_shared_stream(support::of_component(
            watches.config_maps.touched(),
            "umwelt",
        ))
        .reconcile_on(recount)
        .with_config(ControllerConfig::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(support::sync_signal(shutdown))
        .run(reconcile, error_policy, state)
        .for_each(|result| async move { support::log_outcome(CONTROLLER, &result) })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::Feeds;
    use crate::tests::fixtures::cache;
    use crate::tests::fixtures_controllers::{
        ApiServer, failure, mock_context, mock_context_with_feeds, serve,
    };
    use crate::umwelt::plan::UmweltChildren;
    use crate::umwelt::tests::{agent_named, now, umwelt};
    use kube::runtime::reflector;
    use serde::Serialize;
    use serde_json::json;

    /// A state whose Agent cache has not loaded (Agent counts unknown).
    fn state(ctx: Arc<Context>) -> Arc<UmweltState> {
        let agents = Shared::offline(
            kube::Api::all(ctx.client.clone()),
            reflector::store::<Agent>().0,
            false,
        );
        Arc::new(UmweltState { ctx, agents })
    }

    #[tokio::test]
    async fn the_status_counts_active_agents_and_stamps_the_apply() {
        let (ctx, api, _clock) = mock_context(now());
        let u = umwelt(json!({"affordances": ["void.pheromone.sense"]}));
        let (agents, mut writer) = reflector::store::<Agent>();
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(agent_named("a", Some("scout"))));
        writer.apply_watcher_event(&watcher::Event::InitApply(agent_named("b", Some("scout"))));
        writer.apply_watcher_event(&watcher::Event::InitApply(agent_named("c", None)));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let status_reply = serde_json::to_value(&u).expect("JSON");
        let server = serve(api, move |mut api| async move {
            children_applied(&mut api).await;
            let seen = api.answer(|_| (200, status_reply)).await;
            assert_eq!(seen.body["status"]["activeAgents"], 2);
            assert_eq!(
                seen.body["status"]["lastApplied"],
                serde_json::to_value(kgents_crds::common::Time(now())).expect("JSON")
            );
            api.echo().await; // the Compiled Event
        });
        let agents = Shared::offline(kube::Api::all(ctx.client.clone()), agents, true);
        reconcile(Arc::new(u), Arc::new(UmweltState { ctx, agents }))
            .await
            .expect("reconciled");
        server.finish().await;
    }

    /// Answers the applies of the four children (none is cached, none is read).
    async fn children_applied(api: &mut ApiServer) {
        let paths = [
            "/api/v1/namespaces/hive/serviceaccounts/scout-umwelt",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/hive/roles/scout-umwelt",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/hive/rolebindings/scout-umwelt",
            "/api/v1/namespaces/hive/configmaps/scout-umwelt",
        ];
        for path in paths {
            let seen = api.echo().await;
            assert!(seen.is_exactly("PATCH", path), "{seen:?}");
            assert!(
                seen.uri.contains("fieldManager=kgents-operator"),
                "{}",
                seen.uri
            );
            assert!(seen.uri.contains("force=true"), "{}", seen.uri);
        }
    }

    /// Puts the four children, as applied, into the shared caches.
    fn cache_children(feeds: &mut Feeds, children: &UmweltChildren) {
        cache(
            &mut feeds.service_accounts,
            stamped(children.service_account.clone()),
        );
        cache(&mut feeds.roles, stamped(children.role.clone()));
        cache(
            &mut feeds.role_bindings,
            stamped(children.role_binding.clone()),
        );
        cache(&mut feeds.config_maps, stamped(children.config_map.clone()));
    }

    fn stamped<K: Resource + Serialize>(mut k: K) -> K {
        support::stamp(&mut k).expect("hash");
        k
    }

    #[tokio::test]
    async fn a_new_umwelt_gets_its_children_a_status_and_an_event() {
        let (ctx, api, _clock) = mock_context(now());
        let u = umwelt(json!({"affordances": ["void.pheromone.sense"]}));
        let status_reply = serde_json::to_value(&u).expect("JSON");
        let server = serve(api, move |mut api| async move {
            children_applied(&mut api).await;
            let seen = api.answer(|_| (200, status_reply)).await;
            assert!(
                seen.is_exactly(
                    "PATCH",
                    "/apis/kgents.io/v1/namespaces/hive/umwelts/scout/status"
                ),
                "{seen:?}"
            );
            assert_eq!(seen.body["status"]["serviceAccount"], "scout-umwelt");
            assert_eq!(seen.body["status"]["conditions"][0]["reason"], "Compiled");
            let seen = api.echo().await;
            assert!(
                seen.is_exactly("POST", "/apis/events.k8s.io/v1/namespaces/hive/events"),
                "{seen:?}"
            );
            assert_eq!(seen.body["reason"], "Compiled");
        });
        let action = reconcile(Arc::new(u), state(ctx))
            .await
            .expect("reconciled");
        server.finish().await;
        assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    }

    #[tokio::test]
    async fn nothing_changed_means_no_request_at_all() {
        let (ctx, api, _clock, mut feeds) = mock_context_with_feeds(now());
        let mut u = umwelt(json!({"affordances": ["void.pheromone.sense"]}));
        let children = plan(&u).expect("plannable").expect("valid");
        u.status = Some(desired_status(
            &u,
            &Ok(&children.access),
            Observed::default(),
            now(),
        ));
        cache_children(&mut feeds, &children);
        let server = serve(api, move |mut api| async move {
            api.expect_silence().await;
        });
        reconcile(Arc::new(u), state(ctx))
            .await
            .expect("reconciled");
        server.finish().await;
    }

    #[tokio::test]
    async fn invalid_globs_revoke_rbac_and_say_why() {
        let (ctx, api, _clock, mut feeds) = mock_context_with_feeds(now());
        // What an earlier, valid spec granted.
        let valid = plan(&umwelt(json!({"affordances": ["void.pheromone.sense"]})))
            .expect("plannable")
            .expect("valid");
        cache_children(&mut feeds, &valid);
        let u = umwelt(json!({"affordances": ["void..sense"]}));
        let status_reply = serde_json::to_value(&u).expect("JSON");
        let server = serve(api, move |mut api| async move {
            let seen = api
                .answer(|_| (200, failure(200, "Success", "deleted")))
                .await;
            assert!(
                seen.is_exactly(
                    "DELETE",
                    "/apis/rbac.authorization.k8s.io/v1/namespaces/hive/rolebindings/scout-umwelt"
                ),
                "{seen:?}"
            );
            let seen = api
                .answer(|_| (200, failure(200, "Success", "deleted")))
                .await;
            assert!(
                seen.is_exactly(
                    "DELETE",
                    "/apis/rbac.authorization.k8s.io/v1/namespaces/hive/roles/scout-umwelt"
                ),
                "{seen:?}"
            );
            let seen = api.answer(|_| (200, status_reply)).await;
            assert_eq!(seen.body["status"]["conditions"][0]["status"], "False");
            assert_eq!(
                seen.body["status"]["conditions"][0]["reason"],
                "InvalidAffordances"
            );
            let seen = api.echo().await;
            assert_eq!(seen.body["type"], "Warning");
            assert_eq!(seen.body["reason"], "InvalidAffordances");
        });
        reconcile(Arc::new(u), state(ctx))
            .await
            .expect("reconciled");
        server.finish().await;
    }

    #[tokio::test]
    async fn a_missing_secret_is_reported_and_rechecked_soon() {
        let (ctx, api, _clock, mut feeds) = mock_context_with_feeds(now());
        let mut u =
            umwelt(json!({"affordances": ["void.pheromone.sense"], "secretRef": {"name": "llm"}}));
        let children = plan(&u).expect("plannable").expect("valid");
        u.status = Some(desired_status(
            &u,
            &Ok(&children.access),
            Observed {
                secret_exists: Some(true),
                ..Observed::default()
            },
            now(),
        ));
        cache_children(&mut feeds, &children);
        let status_reply = serde_json::to_value(&u).expect("JSON");
        let server = serve(api, move |mut api| async move {
            let seen = api.not_found().await;
            assert!(
                seen.is_exactly("GET", "/api/v1/namespaces/hive/secrets/llm"),
                "{seen:?}"
            );
            let seen = api.answer(|_| (200, status_reply)).await;
            assert_eq!(seen.body["status"]["secretValid"], false);
            assert_eq!(
                seen.body["status"]["conditions"][0]["reason"],
                "SecretNotFound"
            );
            api.echo().await;
        });
        let action = reconcile(Arc::new(u), state(ctx))
            .await
            .expect("reconciled");
        server.finish().await;
        assert_eq!(action, Action::requeue(SECRET_RECHECK));
    }

    #[tokio::test]
    async fn a_refused_apply_fails_the_reconcile() {
        let (ctx, api, _clock) = mock_context(now());
        let u = Arc::new(umwelt(json!({"affordances": ["void.pheromone.sense"]})));
        let server = serve(api, |mut api| async move {
            api.answer(|_| {
                (
                    403,
                    failure(403, "Forbidden", "serviceaccounts is forbidden"),
                )
            })
            .await;
        });
        let error = reconcile(u.clone(), state(ctx.clone()))
            .await
            .expect_err("403");
        server.finish().await;
        assert_eq!(error.metric_label(), "forbidden");
        assert_eq!(
            error_policy(u, &error, state(ctx)),
            Action::requeue(Duration::from_secs(15))
        );
    }
}
