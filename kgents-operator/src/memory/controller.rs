//! The Memory controller: reconcile, the compost finalizer and sweep, the error policy and the
//! watch wiring.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kgents_crds::Memory;
use kgents_crds::common::Time;
use kgents_crds::memory::MemoryPhase;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};

use super::plan::{
    Grant, agent_account_changed, compost_deadline, names_agent, needs_finalizer, plan, plan_sweep,
    pvc_name, reader_role_name, sweep_delay, writer_role_name,
};
use super::status::{StorageState, desired_status};
use super::{
    COMPOST_AFTER_ANNOTATION, COMPOST_LABEL, CONTROLLER, DEFAULT_SWEEP_INTERVAL, FINALIZER,
    MEMORY_LABEL, READY,
};
use crate::conditions;
use crate::shared::Event;
use crate::support::{self, MANAGED_BY, MANAGED_BY_LABEL, key_of};
use crate::{Context, Error, Result};

/// Settings of the Memory controller beyond the shared [`crate::OperatorConfig`].
#[derive(Clone, Debug)]
pub struct MemoryOptions {
    /// How often the compost sweep runs at the latest (it also wakes at the earliest known
    /// deadline).
    pub sweep_interval: Duration,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        Self {
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
        }
    }
}

/// Reconciles one Memory.
pub async fn reconcile(memory: Arc<Memory>, ctx: Arc<Context>) -> Result<Action> {
    support::reconcile(
        &ctx,
        CONTROLLER,
        memory.as_ref(),
        reconcile_inner(&memory, &ctx),
    )
    .await
}

fn has_finalizer(memory: &Memory) -> bool {
    memory.finalizers().iter().any(|f| f == FINALIZER)
}

/// Adds or removes the finalizer with a merge patch carrying the resourceVersion it was
/// computed from: a concurrent change makes the API server answer 409 instead of losing it.
async fn set_finalizer(ctx: &Context, memory: &Memory, present: bool) -> Result<()> {
    if !ctx.leader.is_leader() {
        return Ok(());
    }
    let namespace = memory
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let api: Api<Memory> = Api::namespaced(ctx.client.clone(), &namespace);
    let wanted: Vec<&str> = memory
        .finalizers()
        .iter()
        .map(String::as_str)
        .filter(|f| *f != FINALIZER)
        .chain(present.then_some(FINALIZER))
        .collect();
    let body = serde_json::json!({"metadata": {
        "resourceVersion": memory.resource_version(),
        "finalizers": wanted,
    }});
    ctx.api(
        "patch memory finalizers",
        api.patch(
            &memory.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&body),
        ),
    )
    .await?;
    Ok(())
}

/// Marks (or, with `deadline = None`, unmarks) a claim for the compost sweep. A merge patch
/// under its own field manager: the claim's applied fields stay with the main manager.
async fn mark_claim(
    ctx: &Context,
    namespace: &str,
    name: &str,
    deadline: Option<Timestamp>,
) -> Result<()> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
    let body = match deadline {
        Some(deadline) => serde_json::json!({"metadata": {
            "labels": {COMPOST_LABEL: "true"},
            "annotations": {COMPOST_AFTER_ANNOTATION: deadline.to_string()},
        }}),
        None => serde_json::json!({"metadata": {
            "labels": {COMPOST_LABEL: null},
            "annotations": {COMPOST_AFTER_ANNOTATION: null},
        }}),
    };
    let params = PatchParams {
        field_manager: Some(format!("{}-compost", ctx.config.field_manager)),
        ..PatchParams::default()
    };
    ctx.api(
        "mark claim for compost",
        api.patch(name, &params, &Patch::Merge(&body)),
    )
    .await?;
    Ok(())
}

/// The ServiceAccount each agent the Memory names runs as: its Umwelt's when it names one,
/// else its own (named after the Agent). An Agent that does not exist (yet) gets its own name.
/// Read from the shared Agent cache (waiting, within the API budget, for its first list).
async fn account_map(
    ctx: &Context,
    namespace: &str,
    memory: &Memory,
) -> Result<BTreeMap<String, String>> {
    let agents = ctx.watches.agents.store();
    if tokio::time::timeout(ctx.config.api_timeout, ctx.watches.agents.until_ready())
        .await
        .is_err()
    {
        return Err(Error::Timeout {
            call: "list agents (shared cache)",
            budget: ctx.config.api_timeout,
        });
    }
    let spec = &memory.spec;
    let names: BTreeSet<&String> = std::iter::once(&spec.owner)
        .chain(&spec.shared_with)
        .chain(&spec.write_access)
        .filter(|a| !a.is_empty())
        .collect();
    let mut accounts = BTreeMap::new();
    for agent in names {
        let found = agents.get(&ObjectRef::new(agent).within(namespace));
        let account = match found.and_then(|a| a.spec.umwelt.clone()) {
            Some(umwelt) => crate::umwelt::service_account_name(&umwelt),
            None => agent.clone(),
        };
        accounts.insert(agent.clone(), account);
    }
    Ok(accounts)
}

async fn ensure_grant(
    ctx: &Context,
    namespace: &str,
    name: String,
    grant: Option<Grant>,
) -> Result<()> {
    let watches = &ctx.watches;
    match grant {
        Some(grant) => {
            support::ensure_from(ctx, &watches.roles.store(), grant.role).await?;
            support::ensure_from(ctx, &watches.role_bindings.store(), grant.binding).await?;
        }
        None => {
            support::remove_cached(ctx, &watches.role_bindings.store(), namespace, &name).await?;
            support::remove_cached(ctx, &watches.roles.store(), namespace, &name).await?;
        }
    }
    Ok(())
}

async fn cleanup(memory: &Memory, ctx: &Context, namespace: &str) -> Result<Action> {
    if needs_finalizer(&memory.spec) {
        let now = ctx.clock.now();
        let deadline = compost_deadline(memory, now);
        let name = pvc_name(&memory.name_any());
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
        let claim = ctx.api("read claim", claims.get_opt(&name)).await?;
        // A claim already marked keeps its first deadline (a repeated cleanup must not push
        // it back).
        let marked = claim.as_ref().and_then(|c| {
            c.annotations()
                .get(COMPOST_AFTER_ANNOTATION)
                .and_then(|t| t.parse::<Timestamp>().ok())
        });
        let deadline = marked.unwrap_or(deadline);
        if claim.is_some() && marked.is_none() && ctx.leader.is_leader() {
            mark_claim(ctx, namespace, &name, Some(deadline)).await?;
        }
        if claim.is_some() {
            let mut status = memory.status.clone().unwrap_or_default();
            status.phase = Some(MemoryPhase::Composting);
            status.compost_at = Some(Time(deadline));
            if memory.status.as_ref() != Some(&status) {
                support::apply_status(ctx, memory, "Memory", &status).await?;
            }
            ctx.event(
                &memory.object_ref(&()),
                EventType::Normal,
                "Composting",
                "Compost",
                format!("claim {name} is kept until {deadline}, then deleted"),
            )
            .await;
        }
    }
    if has_finalizer(memory) {
        set_finalizer(ctx, memory, false).await?;
    }
    ctx.metrics.forget_object("Memory", &key_of(memory));
    Ok(Action::await_change())
}

async fn reconcile_inner(memory: &Memory, ctx: &Context) -> Result<Action> {
    let namespace = memory
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    if memory.meta().deletion_timestamp.is_some() {
        return if has_finalizer(memory) {
            cleanup(memory, ctx, &namespace).await
        } else {
            Ok(Action::await_change())
        };
    }
    let wants_finalizer = needs_finalizer(&memory.spec);
    if wants_finalizer != has_finalizer(memory) {
        set_finalizer(ctx, memory, wants_finalizer).await?;
    }
    let accounts = account_map(ctx, &namespace, memory).await?;
    let children = plan(memory, |agent| {
        accounts
            .get(agent)
            .cloned()
            .unwrap_or_else(|| agent.to_owned())
    })?;
    let name = memory.name_any();
    // Children are read from the shared caches: a steady state costs no request.
    support::ensure_from(ctx, &ctx.watches.config_maps.store(), children.config_map).await?;
    let storage = match children.pvc {
        None => StorageState::None,
        Some(pvc) => {
            let claims = ctx.watches.claims.store();
            let claim_name = pvc_name(&name);
            let existing = claims.get(&ObjectRef::new(&claim_name).within(&namespace));
            if existing.is_some_and(|c| c.labels().contains_key(COMPOST_LABEL))
                && ctx.leader.is_leader()
            {
                // Re-created before the sweep: the memory takes its storage back.
                mark_claim(ctx, &namespace, &claim_name, None).await?;
            }
            match support::ensure_from(ctx, &claims, pvc).await {
                Ok(ensured) => match ensured.live {
                    Some(live) => StorageState::Claim(live.status.and_then(|s| s.phase)),
                    None => StorageState::NotCreated,
                },
                Err(Error::Kube(kube::Error::Api(status))) if status.code == 422 => {
                    StorageState::Rejected(status.message.clone())
                }
                Err(other) => return Err(other),
            }
        }
    };
    ensure_grant(ctx, &namespace, reader_role_name(&name), children.readers).await?;
    ensure_grant(ctx, &namespace, writer_role_name(&name), children.writers).await?;

    let desired = desired_status(memory, &storage, ctx.clock.now());
    let phase = desired.phase.map_or("UNKNOWN", MemoryPhase::as_str);
    ctx.metrics.observe_phase("Memory", &key_of(memory), phase);
    if memory.status.as_ref() != Some(&desired) {
        support::apply_status(ctx, memory, "Memory", &desired).await?;
        let before = memory.status.as_ref().and_then(|s| s.phase);
        if before != desired.phase {
            let ready = conditions::find(&desired.conditions, READY);
            let failing = desired.phase == Some(MemoryPhase::Degraded);
            support::transition_event(
                ctx,
                memory,
                failing,
                ready.map(|c| c.reason.as_str()).unwrap_or(phase),
                "Provision",
                format!(
                    "{phase}: {}",
                    ready.map(|c| c.message.as_str()).unwrap_or_default()
                ),
            )
            .await;
        }
    }
    Ok(Action::requeue(ctx.config.resync_interval))
}

/// What happens after a failed reconcile: counted, logged and retried
/// ([`support::error_policy`]).
pub fn error_policy(memory: Arc<Memory>, error: &Error, ctx: Arc<Context>) -> Action {
    support::error_policy(&ctx, CONTROLLER, memory.as_ref(), error)
}

/// Deletes the marked claims past their deadline; returns the earliest deadline still ahead.
pub async fn sweep_once(ctx: &Context) -> Result<Option<Timestamp>> {
    if !ctx.leader.is_leader() {
        return Ok(None);
    }
    let api: Api<PersistentVolumeClaim> = ctx.scoped();
    let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY},{COMPOST_LABEL}=true");
    let claims = ctx
        .api(
            "list composting claims",
            api.list(&ListParams::default().labels(&selector)),
        )
        .await?;
    let plan = plan_sweep(&claims.items, ctx.clock.now());
    for key in &plan.unreadable {
        tracing::warn!(claim = %key, "composting claim has no readable {COMPOST_AFTER_ANNOTATION}; left alone");
    }
    for (namespace, name, uid) in plan.due {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid,
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match ctx
            .api("delete composted claim", api.delete(&name, &params))
            .await
        {
            Ok(_) => tracing::info!(claim = %format!("{namespace}/{name}"), "composted"),
            Err(Error::Kube(kube::Error::Api(status)))
                if status.code == 404 || status.code == 409 => {}
            Err(other) => return Err(other),
        }
    }
    Ok(plan.next)
}

/// Runs the Memory controller with default [`MemoryOptions`] until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + 'static) {
    run_with(ctx, shutdown, MemoryOptions::default()).await;
}

/// Runs the Memory controller and its compost sweep until `shutdown` resolves; in-flight
/// reconciles finish first.
pub async fn run_with(
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: MemoryOptions,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        // A dropped sender (the runtime is going away) also means "stop".
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let sweep = {
        let ctx = ctx.clone();
        let stop = stopped(stop_rx.clone());
        async move {
            tokio::pin!(stop);
            let mut delay = Duration::ZERO;
            loop {
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(delay) => {}
                }
                let next = match sweep_once(&ctx).await {
                    Ok(next) => next,
                    Err(error) => {
                        ctx.metrics
                            .reconcile_failed("memory-sweep", error.metric_label());
                        tracing::warn!(%error, "compost sweep failed");
                        None
                    }
                };
                delay = sweep_delay(next, ctx.clock.now(), options.sweep_interval);
            }
        }
    };

    // Memories, Agents and children all come from the process's shared watches.
    let watches = &ctx.watches;
    let memory_store = watches.memories.store();
    let applied = watches.memories.subscribe().filter_map(|event| {
        futures::future::ready(match event {
            Event::Applied(memory) => Some(memory),
            Event::Deleted(_) | Event::Relisted => None,
        })
    });
    let controller = Controller::for_shared_stream(applied, memory_store.clone());
    // An Agent that changes the account it runs as (its Umwelt) has the Memories that grant
    // it access re-granted at once, not at the next resync.
    let mut last = HashMap::new();
    let regrant = ctx.watches.agents.subscribe().flat_map(move |event| {
        let touched: Vec<ObjectRef<Memory>> = agent_account_changed(&mut last, &event)
            .map(|(namespace, agent)| {
                memory_store
                    .state()
                    .iter()
                    .filter(|m| {
                        m.namespace().as_deref() == Some(namespace.as_str())
                            && names_agent(m, &agent)
                    })
                    .map(|m| ObjectRef::from_obj(&**m))
                    .collect()
            })
            .unwrap_or_default();
        futures::stream::iter(touched)
    });
    let controller = controller
        .reconcile_on(regrant)
        // Retained and composting claims have no owner: the label names their Memory.
        .watches_shared_stream(
            support::of_component(watches.claims.touched(), "memory"),
            |claim| {
                let memory = claim.labels().get(MEMORY_LABEL)?.clone();
                Some(ObjectRef::<Memory>::new(&memory).within(&claim.namespace()?))
            },
        )
        .owns_shared_stream(support::of_component(
            watches.config_maps.touched(),
            "memory",
        ))
        .owns_shared_stream(support::of_component(watches.roles.touched(), "memory"))
        .owns_shared_stream(support::of_component(
            watches.role_bindings.touched(),
            "memory",
        ))
        .with_config(ControllerConfig::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(stopped(stop_rx))
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move { support::log_outcome(CONTROLLER, &result) });
    futures::join!(controller, sweep);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::tests::{memory, now, own};
    use crate::tests::fixtures::cache;
    use crate::tests::fixtures_controllers::{
        failure, mock_context, mock_context_with_feeds, serve,
    };
    use serde::Serialize;
    use serde_json::json;

    fn stamped<K: Resource + Serialize>(mut k: K) -> K {
        support::stamp(&mut k).expect("hash");
        k
    }

    #[tokio::test]
    async fn a_new_delete_memory_gets_config_map_claim_writer_grant_and_status() {
        let (ctx, api, _clock, mut feeds) = mock_context_with_feeds(now());
        // The owner runs as its Umwelt's account, as the shared Agent cache says.
        let mut owner = kgents_crds::Agent::new(
            "scout",
            serde_json::from_value(json!({"genus": "B", "umwelt": "den"})).expect("agent spec"),
        );
        owner.metadata.namespace = Some("hive".to_owned());
        cache(&mut feeds.agents, owner);
        let m = memory(json!({"retentionPolicy": "DELETE"}));
        let status_reply = serde_json::to_value(&m).expect("JSON");
        // Nothing is cached: every child is applied, none is read from the API server.
        let server = serve(api, move |mut api| async move {
            let seen = api.echo().await;
            assert!(
                seen.is_exactly(
                    "PATCH",
                    "/api/v1/namespaces/hive/configmaps/scout-memory-meta"
                ),
                "{seen:?}"
            );
            let seen = api.echo().await;
            assert!(
                seen.is_exactly(
                    "PATCH",
                    "/api/v1/namespaces/hive/persistentvolumeclaims/scout-memory"
                ),
                "{seen:?}"
            );
            assert_eq!(
                seen.body["metadata"]["ownerReferences"][0]["uid"],
                "uid-mem"
            );
            // No readers, and no reader grant in the cache: nothing to remove. The owner writes.
            for kind in ["roles", "rolebindings"] {
                let seen = api.echo().await;
                assert!(seen.is_exactly("PATCH", &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/hive/{kind}/scout-memory-meta-write")), "{seen:?}");
                if kind == "rolebindings" {
                    assert_eq!(seen.body["subjects"][0]["name"], "den-umwelt");
                }
            }
            let seen = api.answer(|_| (200, status_reply)).await;
            assert!(
                seen.is_exactly(
                    "PATCH",
                    "/apis/kgents.io/v1/namespaces/hive/memories/scout-memory/status"
                ),
                "{seen:?}"
            );
            assert_eq!(seen.body["status"]["phase"], "PROVISIONING");
            assert_eq!(seen.body["status"]["pvcName"], "scout-memory");
            assert_eq!(seen.body["status"]["configMapName"], "scout-memory-meta");
            let seen = api.echo().await;
            assert_eq!(seen.body["reason"], "ClaimPending");
        });
        reconcile(Arc::new(m), ctx).await.expect("reconciled");
        server.finish().await;
    }

    #[tokio::test]
    async fn nothing_changed_means_no_request_at_all() {
        let (ctx, api, _clock, mut feeds) = mock_context_with_feeds(now());
        let mut m = memory(json!({"retentionPolicy": "RETAIN"}));
        let children = plan(&m, own).expect("plan");
        let mut bound = stamped(children.pvc.clone().expect("claim"));
        bound.status = Some(k8s_openapi::api::core::v1::PersistentVolumeClaimStatus {
            phase: Some("Bound".to_owned()),
            ..Default::default()
        });
        m.status = Some(desired_status(
            &m,
            &StorageState::Claim(Some("Bound".into())),
            now(),
        ));
        let writers = children.writers.clone().expect("owner writes");
        cache(&mut feeds.config_maps, stamped(children.config_map.clone()));
        cache(&mut feeds.claims, bound);
        cache(&mut feeds.roles, stamped(writers.role));
        cache(&mut feeds.role_bindings, stamped(writers.binding));
        let server = serve(api, move |mut api| async move {
            api.expect_silence().await;
        });
        reconcile(Arc::new(m), ctx).await.expect("reconciled");
        server.finish().await;
    }

    #[tokio::test]
    async fn a_compost_memory_gets_its_finalizer_first() {
        let (ctx, api, _clock) = mock_context(now());
        let m = memory(json!({"retentionPolicy": "COMPOST"}));
        let server = serve(api, move |mut api| async move {
            let seen = api
                .answer(|_| {
                    (
                        409,
                        failure(409, "Conflict", "the object has been modified"),
                    )
                })
                .await;
            assert!(
                seen.is_exactly(
                    "PATCH",
                    "/apis/kgents.io/v1/namespaces/hive/memories/scout-memory"
                ),
                "{seen:?}"
            );
            assert_eq!(seen.body["metadata"]["finalizers"], json!([FINALIZER]));
            assert_eq!(seen.body["metadata"]["resourceVersion"], "11");
        });
        let m = Arc::new(m);
        let error = reconcile(m.clone(), ctx.clone())
            .await
            .expect_err("conflict");
        server.finish().await;
        assert_eq!(error.metric_label(), "conflict");
        assert_eq!(
            error_policy(m, &error, ctx),
            Action::requeue(Duration::from_secs(2))
        );
    }

    #[tokio::test]
    async fn deleting_a_compost_memory_marks_its_claim_and_lets_go() {
        let (ctx, api, _clock) = mock_context(now());
        let mut m = memory(json!({"retentionPolicy": "COMPOST", "compostAfterHours": 3}));
        m.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
        m.metadata.deletion_timestamp = Some(Time(now()));
        let claim =
            serde_json::to_value(plan(&m, own).expect("plan").pvc.expect("claim")).expect("JSON");
        let reply = serde_json::to_value(&m).expect("JSON");
        let server = serve(api, move |mut api| async move {
            api.answer(move |_| (200, claim.clone())).await;
            let seen = api.echo().await;
            assert!(
                seen.is_exactly(
                    "PATCH",
                    "/api/v1/namespaces/hive/persistentvolumeclaims/scout-memory"
                ),
                "{seen:?}"
            );
            assert!(
                seen.uri.contains("fieldManager=kgents-operator-compost"),
                "{}",
                seen.uri
            );
            assert_eq!(seen.body["metadata"]["labels"][COMPOST_LABEL], "true");
            assert_eq!(
                seen.body["metadata"]["annotations"][COMPOST_AFTER_ANNOTATION],
                "1970-01-24T06:33:20Z"
            );
            let r = reply.clone();
            let seen = api.answer(move |_| (200, r)).await;
            assert_eq!(seen.body["status"]["phase"], "COMPOSTING");
            assert_eq!(seen.body["status"]["compostAt"], "1970-01-24T06:33:20Z");
            let seen = api.echo().await;
            assert_eq!(seen.body["reason"], "Composting");
            let seen = api.answer(move |_| (200, reply)).await;
            assert_eq!(seen.body["metadata"]["finalizers"], json!([]));
        });
        let action = reconcile(Arc::new(m), ctx).await.expect("reconciled");
        server.finish().await;
        assert_eq!(action, Action::await_change());
    }
}
