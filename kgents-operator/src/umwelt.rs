//! The Umwelt controller: an Umwelt's affordances become a ServiceAccount, a Role and a
//! RoleBinding that grant exactly the Kubernetes access those AGENTESE paths need — nothing
//! more — and its persona, constraints and context a ConfigMap the agent's runtime reads.
//!
//! The access comes from the pure `kgents_core::access::compile` ([`plan`] turns it into the
//! children); a reconcile applies only the children whose desired state changed (a steady state
//! costs reads, never writes), checks that `secretRef` names an existing Secret, and writes the
//! status only when it changed. Affordance globs that do not parse grant nothing: the Role and
//! RoleBinding are removed, the Ready condition turns False with the parse error, and an Event
//! says why.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kgents_core::access::{self, ACCESS_TABLE, CompiledAccess};
use kgents_core::agentese::Affordances;
use kgents_crds::umwelt::UmweltStatus;
use kgents_crds::{Agent, Umwelt};
use kube::api::DeleteParams;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;

use crate::conditions::{self, DesiredCondition};
use crate::support::{self, COMPONENT_LABEL, MANAGED_BY, MANAGED_BY_LABEL, key_of};
use crate::{Context, Error, Result};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "umwelt";

/// Label naming the Umwelt a child belongs to.
pub const UMWELT_LABEL: &str = "kgents.io/umwelt";

/// The key of the ConfigMap entry holding the runtime view (JSON).
pub const CONFIG_KEY: &str = "umwelt.json";

/// The Ready condition: affordances compiled and applied (and the secret, if named, exists).
pub const READY: &str = "Ready";

/// How soon an Umwelt whose Secret is missing is looked at again (Secrets are not watched).
const SECRET_RECHECK: Duration = Duration::from_secs(30);

const SUFFIX: &str = "-umwelt";

/// The name of the ServiceAccount (and Role, RoleBinding and ConfigMap) generated for the
/// Umwelt `umwelt_name`: `<name>-umwelt`, so it never collides with an Agent's own
/// ServiceAccount, which is named after the Agent. A name too long for the suffix is cut and
/// made unique with a hash of the full name.
pub fn service_account_name(umwelt_name: &str) -> String {
    support::suffixed_name(umwelt_name, SUFFIX)
}

/// What the agent's runtime reads from the ConfigMap.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeView<'a> {
    /// The Agent this umwelt belongs to.
    pub agent: &'a str,
    /// Personality dials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persona: Option<&'a kgents_crds::umwelt::Persona>,
    /// Budgets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraints: Option<&'a kgents_crds::umwelt::Constraints>,
    /// Free-form context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// Which pheromone types the agent senses and emits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pheromone_sensitivity: Option<&'a kgents_crds::umwelt::PheromoneSensitivity>,
    /// Share of exploratory work.
    pub slop_budget: f64,
    /// Kind of work.
    pub workload: kgents_crds::umwelt::Workload,
    /// The affordance globs, as written.
    pub affordances: &'a [String],
    /// The cluster-touching AGENTESE paths they grant (what the Role allows).
    pub granted_paths: &'a [&'static str],
}

/// The children an Umwelt compiles to.
#[derive(Debug, Clone, PartialEq)]
pub struct UmweltChildren {
    /// The identity the agent runs as.
    pub service_account: ServiceAccount,
    /// Exactly the access the affordances need.
    pub role: Role,
    /// Binds the Role to the ServiceAccount.
    pub role_binding: RoleBinding,
    /// Persona, constraints and context for the runtime.
    pub config_map: ConfigMap,
    /// The compiled access (to report what was granted).
    pub access: CompiledAccess,
}

/// Why an Umwelt cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanProblem {
    /// PascalCase reason for the condition and Event.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// Turns compiled access into RBAC rules: one rule per API group and resource.
pub fn policy_rules(access: &CompiledAccess) -> Vec<PolicyRule> {
    access
        .rules
        .iter()
        .map(|rule| PolicyRule {
            api_groups: Some(vec![rule.api_group.clone()]),
            resources: Some(vec![rule.resource.clone()]),
            verbs: rule.verbs.iter().map(|v| v.as_str().to_owned()).collect(),
            ..PolicyRule::default()
        })
        .collect()
}

/// Plans an Umwelt's children (pure). Errors when a glob does not parse, or the object was not
/// read from the API server (no namespace or uid).
pub fn plan(umwelt: &Umwelt) -> Result<std::result::Result<UmweltChildren, PlanProblem>> {
    let namespace = umwelt
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let owner = support::owner_reference(umwelt)?;
    let affordances = match Affordances::parse_all(&umwelt.spec.affordances) {
        Ok(affordances) => affordances,
        Err(e) => {
            return Ok(Err(PlanProblem {
                reason: "InvalidAffordances",
                message: format!(
                    "spec.affordances: {e}; nothing is granted until every glob parses (e.g. world.*.manifest, void.pheromone.sense)"
                ),
            }));
        }
    };
    let access = access::compile(&affordances);
    let name = service_account_name(&umwelt.name_any());
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(namespace.clone()),
        labels: Some(
            support::child_labels("umwelt", UMWELT_LABEL, &umwelt.name_any())
                .into_iter()
                .chain([("kgents.io/agent".to_owned(), umwelt.spec.agent.clone())])
                .collect(),
        ),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    };
    let view = RuntimeView {
        agent: &umwelt.spec.agent,
        persona: umwelt.spec.persona.as_ref(),
        constraints: umwelt.spec.constraints.as_ref(),
        context: umwelt.spec.context.as_ref(),
        pheromone_sensitivity: umwelt.spec.pheromone_sensitivity.as_ref(),
        slop_budget: umwelt.spec.slop_budget,
        workload: umwelt.spec.workload,
        affordances: &umwelt.spec.affordances,
        granted_paths: &access.granted_paths,
    };
    let view_json = serde_json::to_string_pretty(&view)?;
    Ok(Ok(UmweltChildren {
        service_account: ServiceAccount {
            metadata: meta.clone(),
            // The agent needs its token to call the API server as itself.
            automount_service_account_token: Some(true),
            ..ServiceAccount::default()
        },
        role: Role {
            metadata: meta.clone(),
            rules: Some(policy_rules(&access)),
        },
        role_binding: RoleBinding {
            metadata: meta.clone(),
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".to_owned()),
                kind: "Role".to_owned(),
                name: name.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".to_owned(),
                name: name.clone(),
                namespace: Some(namespace),
                ..Subject::default()
            }]),
        },
        config_map: ConfigMap {
            metadata: meta,
            data: Some(BTreeMap::from([(CONFIG_KEY.to_owned(), view_json)])),
            ..ConfigMap::default()
        },
        access,
    }))
}

/// What the reconcile observed besides the Umwelt itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Observed {
    /// Whether `spec.secretRef` names an existing Secret (`None`: none named).
    pub secret_exists: Option<bool>,
    /// How many Agents name this Umwelt in `spec.umwelt` (`None`: not known yet — the Agent
    /// cache is still loading — so the last count stays).
    pub active_agents: Option<i32>,
    /// Whether this reconcile applied any child (then `lastApplied` is now).
    pub applied: bool,
}

/// The Agents of `umwelt`'s namespace whose `spec.umwelt` names it.
pub fn active_agents<'a>(umwelt: &Umwelt, agents: impl IntoIterator<Item = &'a Agent>) -> i32 {
    let name = umwelt.name_any();
    let namespace = umwelt.namespace();
    let count = agents
        .into_iter()
        .filter(|a| a.namespace() == namespace && a.spec.umwelt.as_deref() == Some(name.as_str()))
        .count();
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// The Umwelts an Agent watch event concerns: the one the Agent names now and the one it
/// named before (`last` remembers each Agent's Umwelt between events), when they differ; for a
/// deleted Agent the one it named. An unchanged Agent concerns none (no recount).
pub fn umwelts_touched(
    last: &mut HashMap<String, String>,
    event: &watcher::Event<Agent>,
) -> Vec<ObjectRef<Umwelt>> {
    let key = |a: &Agent| format!("{}/{}", a.namespace().unwrap_or_default(), a.name_any());
    let umwelt_ref = |a: &Agent, name: &str| {
        ObjectRef::<Umwelt>::new(name).within(&a.namespace().unwrap_or_default())
    };
    match event {
        watcher::Event::Apply(agent) | watcher::Event::InitApply(agent) => {
            let now = agent.spec.umwelt.clone();
            let before = match &now {
                Some(name) => last.insert(key(agent), name.clone()),
                None => last.remove(&key(agent)),
            };
            if before == now {
                return Vec::new();
            }
            before
                .iter()
                .chain(now.iter())
                .map(|name| umwelt_ref(agent, name))
                .collect()
        }
        watcher::Event::Delete(agent) => last
            .remove(&key(agent))
            .map(|name| umwelt_ref(agent, &name))
            .into_iter()
            .collect(),
        watcher::Event::Init | watcher::Event::InitDone => Vec::new(),
    }
}

/// The status an Umwelt should have. `compiled` is the plan's outcome (`Ok(granted paths)`).
pub fn desired_status(
    umwelt: &Umwelt,
    compiled: &std::result::Result<&CompiledAccess, &PlanProblem>,
    observed: Observed,
    now: jiff::Timestamp,
) -> UmweltStatus {
    let secret_exists = observed.secret_exists;
    let existing = umwelt
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let name = service_account_name(&umwelt.name_any());
    let ready = match (compiled, secret_exists) {
        (Err(problem), _) => DesiredCondition::new(READY, false, problem.reason, &problem.message),
        (Ok(_), Some(false)) => DesiredCondition::new(
            READY,
            false,
            "SecretNotFound",
            format!(
                "spec.secretRef names Secret {:?}, which does not exist in this namespace; create it or remove secretRef",
                umwelt
                    .spec
                    .secret_ref
                    .as_ref()
                    .map(|s| s.name.as_str())
                    .unwrap_or_default()
            ),
        ),
        (Ok(access), _) => DesiredCondition::new(
            READY,
            true,
            "Compiled",
            if access.granted_paths.is_empty() {
                "no affordance touches the cluster: the Role grants nothing".to_owned()
            } else {
                format!(
                    "the Role grants exactly: {}",
                    access.granted_paths.join(", ")
                )
            },
        ),
    };
    let compiled_ok = compiled.is_ok();
    UmweltStatus {
        observed_generation: umwelt.metadata.generation,
        service_account: compiled_ok.then(|| name.clone()),
        role: compiled_ok.then(|| name.clone()),
        config_map_name: compiled_ok.then(|| name.clone()),
        secret_valid: secret_exists,
        active_agents: observed
            .active_agents
            .or_else(|| umwelt.status.as_ref().and_then(|s| s.active_agents)),
        // Only a real apply moves it, so an unchanged Umwelt is never rewritten for it.
        last_applied: if observed.applied {
            Some(kgents_crds::common::Time(now))
        } else {
            umwelt.status.as_ref().and_then(|s| s.last_applied.clone())
        },
        conditions: conditions::merge(existing, &[ready], umwelt.metadata.generation, now),
    }
}

/// What the Umwelt reconciler shares: the operator context and a cache of the Agents (to count
/// those using each Umwelt).
pub struct UmweltState {
    /// The operator context.
    pub ctx: Arc<Context>,
    /// Every Agent the operator watches.
    pub agents: Store<Agent>,
}

impl UmweltState {
    /// The count of Agents naming `umwelt`, once the Agent cache has loaded.
    fn active_agents(&self, umwelt: &Umwelt) -> Option<i32> {
        matches!(self.agents.wait_until_ready().now_or_never(), Some(Ok(())))
            .then(|| active_agents(umwelt, self.agents.state().iter().map(|a| &**a)))
    }
}

/// Reconciles one Umwelt.
pub async fn reconcile(umwelt: Arc<Umwelt>, state: Arc<UmweltState>) -> Result<Action> {
    let ctx = &state.ctx;
    let started = Instant::now();
    ctx.metrics.reconcile_started(CONTROLLER);
    let result = reconcile_inner(&umwelt, &state).await;
    ctx.metrics
        .reconcile_finished(CONTROLLER, started.elapsed());
    result
}

/// Deletes a child if it exists (a 404 is success).
async fn remove<K>(ctx: &Context, namespace: &str, name: &str) -> Result<()>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    if !ctx.leader.is_leader() {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    match ctx
        .api("delete child", api.delete(name, &DeleteParams::default()))
        .await
    {
        Ok(_) => Ok(()),
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 404 => Ok(()),
        Err(other) => Err(other),
    }
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
            applied |= support::ensure(ctx, &namespace, children.service_account.clone())
                .await?
                .applied;
            applied |= support::ensure(ctx, &namespace, children.role.clone())
                .await?
                .applied;
            applied |= support::ensure(ctx, &namespace, children.role_binding.clone())
                .await?
                .applied;
            applied |= support::ensure(ctx, &namespace, children.config_map.clone())
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
            remove::<RoleBinding>(ctx, &namespace, &name).await?;
            remove::<Role>(ctx, &namespace, &name).await?;
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
            let type_ = if ready.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            };
            ctx.event(
                &umwelt.object_ref(&()),
                type_,
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
    let ctx = &state.ctx;
    ctx.metrics
        .reconcile_failed(CONTROLLER, error.metric_label());
    tracing::warn!(umwelt = %key_of(umwelt.as_ref()), %error, "umwelt reconcile failed");
    Action::requeue(support::retry_after(error))
}

/// The Kubernetes permissions the Umwelt controller uses, and nothing more.
///
/// It watches Umwelts and their children, applies children (get to compare, create and patch
/// through server-side apply), deletes the Role and RoleBinding of an Umwelt whose affordances
/// stopped parsing, reads Secret metadata (get only: it checks `secretRef` exists, never lists
/// or reads data it does not name), and publishes Events. Finally it holds every access an
/// Umwelt can grant (the rows of `kgents_core::access::ACCESS_TABLE`): the API server lets a
/// subject create a Role or RoleBinding only with permissions it holds itself, which keeps the
/// operator from needing the broader `escalate` and `bind` verbs.
pub fn required_rules() -> Vec<PolicyRule> {
    let children = ["get", "list", "watch", "create", "patch"];
    let rbac_children = ["get", "list", "watch", "create", "patch", "delete"];
    let mut rules = vec![
        support::rule("kgents.io", &["umwelts"], &["list", "watch"]),
        support::rule("kgents.io", &["umwelts/status"], &["patch"]),
        // Agents are watched to count those using each Umwelt.
        support::rule("kgents.io", &["agents"], &["list", "watch"]),
        support::rule("", &["serviceaccounts", "configmaps"], &children),
        support::rule(
            "rbac.authorization.k8s.io",
            &["roles", "rolebindings"],
            &rbac_children,
        ),
        support::rule("", &["secrets"], &["get"]),
        support::rule("events.k8s.io", &["events"], &["create", "patch"]),
    ];
    let mut grantable: BTreeMap<(&str, &str), std::collections::BTreeSet<&str>> = BTreeMap::new();
    for row in ACCESS_TABLE {
        grantable
            .entry((row.api_group, row.resource))
            .or_default()
            .extend(row.verbs.iter().map(|v| v.as_str()));
    }
    rules.extend(grantable.into_iter().map(|((group, resource), verbs)| {
        let verbs: Vec<&str> = verbs.into_iter().collect();
        support::rule(group, &[resource], &verbs)
    }));
    rules
}

/// Runs the Umwelt controller until `shutdown` resolves; in-flight reconciles finish first.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + 'static) {
    let umwelts = ctx.scoped::<Umwelt>();
    let service_accounts = ctx.scoped::<ServiceAccount>();
    let roles = ctx.scoped::<Role>();
    let role_bindings = ctx.scoped::<RoleBinding>();
    let config_maps = ctx.scoped::<ConfigMap>();
    let children = watcher::Config::default()
        .labels(&format!(
            "{MANAGED_BY_LABEL}={MANAGED_BY},{COMPONENT_LABEL}=umwelt"
        ))
        .any_semantic();
    // Agents: cached to count the users of each Umwelt; an Agent that starts or stops naming
    // an Umwelt (created, changed, deleted) has that Umwelt recounted at once.
    let agent_api: Api<Agent> = ctx.scoped();
    let (agents, agent_writer) = reflector::store::<Agent>();
    let mut last = HashMap::new();
    let recount = watcher(agent_api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|agent: &mut Agent| {
            agent.metadata.managed_fields = None;
            agent.status = None;
        })
        .reflect(agent_writer)
        .filter_map(|event| futures::future::ready(event.ok()))
        .flat_map(move |event| futures::stream::iter(umwelts_touched(&mut last, &event)));
    let state = Arc::new(UmweltState {
        ctx: ctx.clone(),
        agents,
    });
    Controller::new(umwelts, watcher::Config::default().any_semantic())
        .owns(service_accounts, children.clone())
        .owns(roles, children.clone())
        .owns(role_bindings, children.clone())
        .owns(config_maps, children)
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
    use crate::fixtures_controllers::{ApiServer, failure, mock_context, serve};
    use jiff::Timestamp;
    use kgents_crds::UmweltSpec;
    use serde_json::json;

    /// A state whose Agent cache has not loaded (Agent counts unknown).
    fn state(ctx: Arc<Context>) -> Arc<UmweltState> {
        Arc::new(UmweltState {
            ctx,
            agents: reflector::store::<Agent>().0,
        })
    }

    fn agent_named(name: &str, umwelt: Option<&str>) -> Agent {
        let mut agent = Agent::new(
            name,
            serde_json::from_value(json!({"genus": "B", "umwelt": umwelt})).expect("agent spec"),
        );
        agent.metadata.namespace = Some("hive".to_owned());
        agent
    }

    #[test]
    fn active_agents_are_those_naming_the_umwelt_in_its_namespace() {
        let u = umwelt(json!({"affordances": []}));
        let mut elsewhere = agent_named("far", Some("scout"));
        elsewhere.metadata.namespace = Some("other".to_owned());
        let agents = [
            agent_named("a", Some("scout")),
            agent_named("b", Some("scout")),
            agent_named("c", Some("explorer")),
            agent_named("d", None),
            elsewhere,
        ];
        assert_eq!(active_agents(&u, &agents), 2);
    }

    #[test]
    fn an_agent_event_concerns_the_umwelts_it_names_now_and_before() {
        let mut last = HashMap::new();
        let names = |refs: Vec<ObjectRef<Umwelt>>| -> Vec<String> {
            refs.into_iter().map(|r| r.name).collect()
        };
        let apply = |a: Agent| watcher::Event::Apply(a);
        assert_eq!(
            names(umwelts_touched(
                &mut last,
                &apply(agent_named("a", Some("u1")))
            )),
            ["u1"]
        );
        assert!(
            umwelts_touched(&mut last, &apply(agent_named("a", Some("u1")))).is_empty(),
            "unchanged: no recount"
        );
        assert_eq!(
            names(umwelts_touched(
                &mut last,
                &apply(agent_named("a", Some("u2")))
            )),
            ["u1", "u2"],
            "moved: both counts change"
        );
        assert_eq!(
            names(umwelts_touched(&mut last, &apply(agent_named("a", None)))),
            ["u2"]
        );
        assert!(umwelts_touched(&mut last, &apply(agent_named("b", None))).is_empty());
        umwelts_touched(&mut last, &apply(agent_named("c", Some("u3"))));
        assert_eq!(
            names(umwelts_touched(
                &mut last,
                &watcher::Event::Delete(agent_named("c", Some("u3")))
            )),
            ["u3"]
        );
        assert!(
            last.is_empty(),
            "nothing remembered of gone or umwelt-less agents"
        );
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
            children_exchange(&mut api, None).await;
            let seen = api.answer(|_| (200, status_reply)).await;
            assert_eq!(seen.body["status"]["activeAgents"], 2);
            assert_eq!(
                seen.body["status"]["lastApplied"],
                serde_json::to_value(kgents_crds::common::Time(now())).expect("JSON")
            );
            api.echo().await; // the Compiled Event
        });
        reconcile(Arc::new(u), Arc::new(UmweltState { ctx, agents }))
            .await
            .expect("reconciled");
        server.finish().await;
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_000_000).expect("ts")
    }

    fn umwelt(spec: serde_json::Value) -> Umwelt {
        let mut spec = spec;
        spec["agent"] = json!("scout");
        let spec: UmweltSpec = serde_json::from_value(spec).expect("valid spec");
        let mut u = Umwelt::new("scout", spec);
        u.metadata.namespace = Some("hive".into());
        u.metadata.uid = Some("uid-scout-umwelt".into());
        u.metadata.generation = Some(1);
        u
    }

    #[test]
    fn names_carry_a_suffix_and_stay_valid_when_long() {
        assert_eq!(service_account_name("scout"), "scout-umwelt");
        let long = "a".repeat(253);
        let name = service_account_name(&long);
        assert!(name.len() <= 253, "{}", name.len());
        assert!(name.ends_with("-umwelt"));
        assert_ne!(name, service_account_name(&"a".repeat(252)));
    }

    #[test]
    fn sense_only_compiles_to_read_pheromones_bound_to_the_account() {
        let u = umwelt(json!({"affordances": ["void.pheromone.sense"]}));
        let children = plan(&u).expect("plannable").expect("valid globs");
        let rules = children.role.rules.expect("rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].api_groups, Some(vec!["kgents.io".to_owned()]));
        assert_eq!(rules[0].resources, Some(vec!["pheromones".to_owned()]));
        assert_eq!(rules[0].verbs, vec!["get", "list", "watch"]);
        let binding = children.role_binding;
        assert_eq!(binding.role_ref.name, "scout-umwelt");
        let subjects = binding.subjects.expect("subjects");
        assert_eq!(subjects[0].name, "scout-umwelt");
        assert_eq!(subjects[0].namespace.as_deref(), Some("hive"));
        let owner = &children
            .service_account
            .metadata
            .owner_references
            .expect("owned")[0];
        assert_eq!(owner.uid, "uid-scout-umwelt");
        assert_eq!(owner.controller, Some(true));
    }

    #[test]
    fn an_umwelt_without_cluster_affordances_grants_nothing() {
        let u = umwelt(json!({"affordances": ["concept.*.refine"]}));
        let children = plan(&u).expect("plannable").expect("valid globs");
        assert_eq!(children.role.rules, Some(vec![]));
    }

    #[test]
    fn the_config_map_carries_what_the_runtime_reads() {
        let u = umwelt(json!({
            "affordances": ["void.pheromone.*"],
            "persona": {"warmth": 0.9},
            "constraints": {"tokenBudget": 1000},
            "context": {"project": "hive"},
            "workload": "urgent"
        }));
        let children = plan(&u).expect("plannable").expect("valid globs");
        let data = children.config_map.data.expect("data");
        let view: serde_json::Value = serde_json::from_str(&data[CONFIG_KEY]).expect("JSON");
        assert_eq!(view["agent"], "scout");
        assert_eq!(view["persona"]["warmth"], 0.9);
        assert_eq!(view["constraints"]["tokenBudget"], 1000);
        assert_eq!(view["context"]["project"], "hive");
        assert_eq!(view["workload"], "urgent");
        assert_eq!(
            view["grantedPaths"],
            json!(["void.pheromone.sense", "void.pheromone.emit"])
        );
    }

    #[test]
    fn a_bad_glob_is_a_problem_not_a_grant() {
        let u = umwelt(json!({"affordances": ["void.pheromone.sense", "nowhere..x"]}));
        let problem = plan(&u).expect("plannable").expect_err("bad glob");
        assert_eq!(problem.reason, "InvalidAffordances");
        assert!(
            problem.message.contains("spec.affordances"),
            "{}",
            problem.message
        );
        let status = desired_status(&u, &Err(&problem), Observed::default(), now());
        assert_eq!(status.conditions[0].status, "False");
        assert_eq!(status.role, None);
    }

    #[test]
    fn the_operator_may_grant_everything_an_umwelt_can_ask_for() {
        let everything =
            Affordances::parse_all(["world.*", "self.*", "void.*", "time.*", "concept.*"]);
        let granted = policy_rules(&access::compile(&everything.expect("globs")));
        let held = required_rules();
        for rule in granted {
            for verb in &rule.verbs {
                assert!(
                    held.iter().any(|h| h.api_groups == rule.api_groups
                        && h.resources
                            .as_ref()
                            .is_some_and(|r| r.contains(&rule.resources.as_ref().expect("r")[0]))
                        && h.verbs.contains(verb)),
                    "the operator lacks {verb} on {:?}",
                    rule.resources
                );
            }
        }
    }

    /// Answers the four child reads with `live` (or 404) and, when missing, the apply.
    async fn children_exchange(api: &mut ApiServer, live: Option<&UmweltChildren>) {
        let paths = [
            (
                "/api/v1/namespaces/hive/serviceaccounts/scout-umwelt",
                live.map(|c| serde_json::to_value(stamped(c.service_account.clone()))),
            ),
            (
                "/apis/rbac.authorization.k8s.io/v1/namespaces/hive/roles/scout-umwelt",
                live.map(|c| serde_json::to_value(stamped(c.role.clone()))),
            ),
            (
                "/apis/rbac.authorization.k8s.io/v1/namespaces/hive/rolebindings/scout-umwelt",
                live.map(|c| serde_json::to_value(stamped(c.role_binding.clone()))),
            ),
            (
                "/api/v1/namespaces/hive/configmaps/scout-umwelt",
                live.map(|c| serde_json::to_value(stamped(c.config_map.clone()))),
            ),
        ];
        for (path, body) in paths {
            match body {
                Some(body) => {
                    let body = body.expect("JSON");
                    let seen = api.answer(move |_| (200, body)).await;
                    assert!(seen.is_exactly("GET", path), "{seen:?}");
                }
                None => {
                    let seen = api.not_found().await;
                    assert!(seen.is_exactly("GET", path), "{seen:?}");
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
        }
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
            children_exchange(&mut api, None).await;
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
    async fn nothing_changed_means_reads_only() {
        let (ctx, api, _clock) = mock_context(now());
        let mut u = umwelt(json!({"affordances": ["void.pheromone.sense"]}));
        let children = plan(&u).expect("plannable").expect("valid");
        u.status = Some(desired_status(
            &u,
            &Ok(&children.access),
            Observed::default(),
            now(),
        ));
        let server = serve(api, move |mut api| async move {
            children_exchange(&mut api, Some(&children)).await;
            api.expect_silence().await;
        });
        reconcile(Arc::new(u), state(ctx))
            .await
            .expect("reconciled");
        server.finish().await;
    }

    #[tokio::test]
    async fn invalid_globs_revoke_rbac_and_say_why() {
        let (ctx, api, _clock) = mock_context(now());
        let u = umwelt(json!({"affordances": ["void..sense"]}));
        let status_reply = serde_json::to_value(&u).expect("JSON");
        let server = serve(api, move |mut api| async move {
            let seen = api.not_found().await;
            assert!(
                seen.is_exactly(
                    "DELETE",
                    "/apis/rbac.authorization.k8s.io/v1/namespaces/hive/rolebindings/scout-umwelt"
                ),
                "{seen:?}"
            );
            let seen = api.not_found().await;
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
        let (ctx, api, _clock) = mock_context(now());
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
        let status_reply = serde_json::to_value(&u).expect("JSON");
        let server = serve(api, move |mut api| async move {
            children_exchange(&mut api, Some(&children)).await;
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
            api.not_found().await;
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
