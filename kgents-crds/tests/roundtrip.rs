//! Serde round trips and the property that any valid spec serializes into something the
//! generated schema accepts.
//!
//! What "accepts" means here, precisely: (1) the structural checker in `common` (types, enums,
//! required, nullable, unknown fields, lengths, list uniqueness, date-time) finds nothing against
//! the CRD's openAPIV3Schema, and (2) kube-cel's client-side evaluation of every
//! `x-kubernetes-validations` rule (`validate_cel`) passes, and (3) the JSON deserializes back
//! into an equal value. The API server's own validation of the same shapes is exercised by the
//! samples in tests/apiserver.rs, not by this property.

mod common;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kgents_crds::agent::*;
use kgents_crds::common::{SecretKeyRef, SecretRef};
use kgents_crds::memory::*;
use kgents_crds::pheromone::*;
use kgents_crds::proposal::*;
use kgents_crds::umwelt::*;
use kgents_crds::{Genus, PheromoneType, Time};
use kube::{CustomResourceExt, Resource};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,20}"
}

fn time() -> impl Strategy<Value = Time> {
    (0i64..4_000_000_000).prop_map(|s| Time(jiff::Timestamp::from_second(s).unwrap()))
}

fn quantity() -> impl Strategy<Value = Quantity> {
    (
        1u32..4096,
        prop::sample::select(vec!["Mi", "Gi", "Ki", "M", ""]),
    )
        .prop_map(|(n, unit)| Quantity(format!("{n}{unit}")))
}

fn genus() -> impl Strategy<Value = Genus> {
    prop::sample::select(Genus::ALL.to_vec())
}

fn pheromone_type() -> impl Strategy<Value = PheromoneType> {
    prop::sample::select(PheromoneType::ALL.to_vec())
}

fn health() -> impl Strategy<Value = HealthSpec> {
    (
        prop_oneof![
            Just(HealthCheckType::Http),
            Just(HealthCheckType::CognitiveProbe)
        ],
        5i32..=600,
        1i32..=100,
        1i32..=100,
        any::<bool>(),
        prop::sample::subsequence(
            vec![ProbeKind::Echo, ProbeKind::Reasoning, ProbeKind::Json],
            0..=3,
        ),
    )
        .prop_flat_map(|(kind, interval, unhealthy, healthy, safemode, probes)| {
            (1i32..interval.min(601)).prop_map(move |timeout| HealthSpec {
                kind,
                interval_seconds: interval,
                timeout_seconds: timeout,
                unhealthy_threshold: unhealthy,
                healthy_threshold: healthy,
                degrade_to_safemode: safemode,
                probes: probes.clone(),
            })
        })
}

fn model() -> impl Strategy<Value = ModelSpec> {
    (
        prop::sample::select(vec![
            ModelProvider::Anthropic,
            ModelProvider::OpenAi,
            ModelProvider::OpenRouter,
            ModelProvider::Ollama,
            ModelProvider::ClaudeCli,
            ModelProvider::None,
        ]),
        proptest::option::of(name()),
        proptest::option::of(name().prop_map(|n| format!("http://{n}:11434"))),
        proptest::option::of((name(), name()).prop_map(|(name, key)| SecretKeyRef { name, key })),
    )
        .prop_map(|(provider, name, endpoint, secret_ref)| {
            // Ollama has no public endpoint: the rule requires one.
            let endpoint = if provider == ModelProvider::Ollama {
                endpoint.or(Some("http://ollama:11434".into()))
            } else {
                endpoint
            };
            ModelSpec {
                provider,
                name,
                endpoint,
                secret_ref,
            }
        })
}

fn agent_spec() -> impl Strategy<Value = AgentSpec> {
    let memory_type = prop::sample::select(vec![
        MemoryType::Relational,
        MemoryType::Vector,
        MemoryType::Bicameral,
        MemoryType::Ephemeral,
    ]);
    let retention = prop::sample::select(vec![
        RetentionPolicy::Delete,
        RetentionPolicy::Retain,
        RetentionPolicy::Compost,
    ]);
    (
        (
            genus(),
            proptest::option::of(name().prop_map(|n| format!("ghcr.io/kgents/{n}:1"))),
            0i32..=10,
            prop::sample::select(vec![
                DeployMode::Full,
                DeployMode::Placeholder,
                DeployMode::DryRun,
            ]),
        ),
        (
            prop::collection::vec(name(), 0..3),
            prop::collection::vec(name(), 0..3),
            prop::collection::btree_map("[A-Za-z_][A-Za-z0-9_]{0,10}", "[ -~]{0,20}", 0..4),
        ),
        (
            proptest::option::of(model()),
            proptest::option::of(health()),
        ),
        (
            proptest::option::of((any::<bool>(), memory_type, quantity(), retention)),
            proptest::option::of((prop::collection::btree_set(genus(), 0..5), any::<bool>())),
        ),
        (
            proptest::option::of(name()),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (genus, image, replicas, mode),
                (command, args, config),
                (model, health),
                (memory, network),
                (umwelt, sequential, idempotent, with_env),
            )| {
                // FULL needs an image; give one rather than filter the case away.
                let image = if mode == DeployMode::Full {
                    image.or(Some("ghcr.io/kgents/x:1".into()))
                } else {
                    image
                };
                AgentSpec {
                    genus,
                    image,
                    replicas,
                    deploy_mode: mode,
                    command,
                    args,
                    env: if with_env {
                        vec![EnvVar {
                            name: "RUST_LOG".into(),
                            value: Some("info".into()),
                            value_from: None,
                        }]
                    } else {
                        vec![]
                    },
                    config,
                    resources: with_env.then(|| ResourceRequirements {
                        requests: Some(BTreeMap::from([("cpu".into(), Quantity("100m".into()))])),
                        limits: Some(BTreeMap::from([(
                            "memory".into(),
                            Quantity("512Mi".into()),
                        )])),
                        ..Default::default()
                    }),
                    model,
                    health,
                    symbiont: memory.map(|(enabled, kind, size, retention_policy)| SymbiontSpec {
                        enabled,
                        image: enabled.then(|| "ghcr.io/kgents/symbiont:0.1.0".to_owned()),
                        resources: None,
                        memory: Some(SymbiontMemorySpec {
                            enabled,
                            kind,
                            size,
                            retention_policy,
                        }),
                    }),
                    network_policy: network.map(|(peers, allow_egress)| NetworkPolicySpec {
                        allowed_peers: peers.into_iter().collect(),
                        allow_egress,
                    }),
                    umwelt,
                    reconciliation: ReconciliationSpec {
                        sequential,
                        idempotent,
                    },
                }
            },
        )
}

fn pheromone_spec() -> impl Strategy<Value = PheromoneSpec> {
    (
        (pheromone_type(), name(), proptest::option::of(name())),
        (
            1e-6f64..=1.0,
            0.1f64..1e6,
            proptest::option::of(time()),
            proptest::option::of(1i64..10_000_000),
        ),
        (
            proptest::option::of("\\PC{0,200}"),
            proptest::option::of((-1e3f64..1e3, -1e3f64..1e3, -1e3f64..1e3)),
        ),
    )
        .prop_map(
            |(
                (kind, source, target),
                (initial_intensity, half_life_minutes, emitted_at, ttl_seconds),
                (payload, position),
            )| PheromoneSpec {
                kind,
                source,
                target,
                initial_intensity,
                half_life_minutes,
                emitted_at,
                ttl_seconds,
                payload,
                position: position.map(|(x, y, z)| Position { x, y, z }),
            },
        )
}

fn cron() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "@daily",
            "@hourly",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually"
        ])
        .prop_map(str::to_owned),
        (0u8..60, 0u8..24, 1u8..32, 1u8..13, 0u8..8)
            .prop_map(|(m, h, d, mo, w)| format!("{m} {h} {d} {mo} {w}")),
        (1u8..60, 0u8..23).prop_map(|(step, h)| format!("*/{step} {h}-23 * * MON-FRI")),
    ]
}

fn memory_spec() -> impl Strategy<Value = MemorySpec> {
    (
        name(),
        prop::sample::select(vec![
            MemoryType::Relational,
            MemoryType::Vector,
            MemoryType::Bicameral,
            MemoryType::Ephemeral,
        ]),
        quantity(),
        proptest::option::of(name()),
        prop::collection::btree_set(name(), 0..3),
        prop::collection::btree_set(name(), 0..3),
        prop::sample::select(vec![
            RetentionPolicy::Delete,
            RetentionPolicy::Retain,
            RetentionPolicy::Compost,
        ]),
        1i32..=8760,
        proptest::option::of(cron()),
    )
        .prop_map(
            |(
                owner,
                kind,
                size,
                storage_class_name,
                shared,
                write,
                retention_policy,
                compost_after_hours,
                backup,
            )| MemorySpec {
                owner,
                kind,
                size,
                storage_class_name,
                shared_with: shared.into_iter().collect(),
                write_access: write.into_iter().collect(),
                retention_policy,
                compost_after_hours,
                // EPHEMERAL memories have nothing to back up.
                backup_schedule: if kind == MemoryType::Ephemeral {
                    None
                } else {
                    backup
                },
            },
        )
}

fn glob() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["world", "self", "concept", "void", "time", "*"]),
        prop::collection::vec(prop_oneof![Just("*".to_owned()), "[a-z0-9_-]{1,8}"], 0..5),
    )
        .prop_map(|(context, rest)| {
            std::iter::once(context.to_owned())
                .chain(rest)
                .collect::<Vec<_>>()
                .join(".")
        })
}

fn umwelt_spec() -> impl Strategy<Value = UmweltSpec> {
    let unit = || 0.0f64..=1.0;
    (
        (
            name(),
            proptest::option::of((unit(), unit(), unit(), unit())),
            prop::collection::btree_set(glob(), 0..6),
        ),
        proptest::option::of((
            proptest::option::of(0i64..1 << 40),
            proptest::option::of(0i64..1 << 20),
            proptest::option::of(0i64..64_000),
            proptest::option::of(0i64..10_000),
        )),
        proptest::option::of((
            prop::collection::btree_set(pheromone_type(), 0..13),
            prop::collection::btree_set(pheromone_type(), 0..13),
        )),
        (
            proptest::option::of(prop::collection::btree_map(
                "[a-z]{1,8}",
                any::<i32>(),
                0..4,
            )),
            proptest::option::of(name()),
            unit(),
            prop::sample::select(vec![
                Workload::Routine,
                Workload::Exploration,
                Workload::Urgent,
            ]),
        ),
    )
        .prop_map(
            |(
                (agent, persona, affordances),
                constraints,
                sensitivity,
                (context, secret, slop_budget, workload),
            )| UmweltSpec {
                agent,
                persona: persona.map(|(warmth, directness, humor, verbosity)| Persona {
                    warmth,
                    directness,
                    humor,
                    verbosity,
                }),
                affordances: affordances.into_iter().collect(),
                constraints: constraints.map(
                    |(
                        token_budget,
                        memory_budget_mb,
                        cpu_budget_millicores,
                        rate_limit_per_minute,
                    )| Constraints {
                        token_budget,
                        memory_budget_mb,
                        cpu_budget_millicores,
                        rate_limit_per_minute,
                    },
                ),
                pheromone_sensitivity: sensitivity.map(|(sense, emit)| PheromoneSensitivity {
                    sense: sense.into_iter().collect(),
                    emit: emit.into_iter().collect(),
                }),
                context: context.map(|c| {
                    c.into_iter()
                        .map(|(k, v)| (k, serde_json::json!(v)))
                        .collect()
                }),
                secret_ref: secret.map(|name| SecretRef { name }),
                slop_budget,
                workload,
            },
        )
}

fn proposal_spec() -> impl Strategy<Value = ProposalSpec> {
    let patch = (
        prop::sample::select(vec![PatchType::Merge, PatchType::Json, PatchType::Apply]),
        0u32..100,
    )
        .prop_map(|(kind, n)| PatchSpec {
            kind,
            content: match kind {
                PatchType::Json => {
                    format!(r#"[{{"op":"replace","path":"/spec/replicas","value":{n}}}]"#)
                }
                PatchType::Merge => format!(r#"{{"spec":{{"replicas":{n}}}}}"#),
                PatchType::Apply => format!("spec:\n  replicas: {n}\n"),
            },
        });
    (
        (
            name(),
            prop::sample::select(ChangeType::ALL.to_vec()),
            proptest::option::of(prop::sample::select(vec!["kgents.io/v1", "v1", "apps/v1"])),
            name(),
            name(),
            proptest::option::of(name()),
        ),
        (
            proptest::option::of(patch),
            proptest::option::of("[ -~]{0,80}"),
            proptest::option::of("[ -~]{0,80}"),
            prop::sample::select(vec![
                Urgency::Low,
                Urgency::Medium,
                Urgency::High,
                Urgency::Critical,
            ]),
            prop::collection::vec("[ -~]{1,40}", 0..4),
        ),
        (
            [0i64..100_000, 0..100_000, 0..1_000, 0..1_000, 0..1_000],
            (
                any::<bool>(),
                0i32..=10,
                prop::collection::btree_set(name(), 0..3),
                any::<bool>(),
            ),
            60i64..10_000_000,
        ),
    )
        .prop_map(
            |(
                (proposer, change_type, api_version, kind, target_name, namespace),
                (patch, description, rationale, urgency, evidence),
                (m, (auto_merge, approvers, reviewers, t_gent), ttl_seconds),
            )| {
                // A patch needs an apiVersion to be applied.
                let api_version = api_version
                    .map(str::to_owned)
                    .or_else(|| patch.as_ref().map(|_| "kgents.io/v1".to_owned()));
                ProposalSpec {
                    proposer,
                    change_type,
                    target: TargetRef {
                        api_version,
                        kind,
                        name: target_name,
                        namespace,
                    },
                    patch,
                    description,
                    rationale,
                    urgency,
                    evidence,
                    magnitude: Magnitude {
                        lines_added: m[0],
                        lines_removed: m[1],
                        files_changed: m[2],
                        tests_added: m[3],
                        tests_removed: m[4],
                    },
                    review_requirements: ReviewRequirements {
                        auto_merge,
                        required_approvers: approvers,
                        required_reviewers: reviewers.into_iter().collect(),
                        t_gent_validation: t_gent,
                    },
                    ttl_seconds,
                }
            },
        )
}

/// Serializes `resource`, checks the JSON against the CRD schema and the CEL rules, and reads it
/// back.
fn accepted<K>(
    resource: &K,
    validate: fn(&K) -> Result<(), kube::core::cel::ValidationErrors>,
) -> Result<(), TestCaseError>
where
    K: Resource + CustomResourceExt + Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut json = serde_json::to_value(resource).unwrap();
    if let Some(fields) = json.as_object_mut() {
        // Validated by the API server itself, not declared in the CRD schema.
        for implicit in ["apiVersion", "kind", "metadata"] {
            fields.remove(implicit);
        }
    }
    let errors = common::structural_errors(&common::open_api_schema(&K::crd()), &json);
    prop_assert!(errors.is_empty(), "schema refuses {json}: {errors:#?}");
    if let Err(errors) = validate(resource) {
        let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        return Err(TestCaseError::fail(format!(
            "CEL refuses {json}: {messages:#?}"
        )));
    }
    let back: K = serde_json::from_value(serde_json::to_value(resource).unwrap()).unwrap();
    prop_assert_eq!(&back, resource);
    let yaml = serde_saphyr::to_string(resource).unwrap();
    let from_yaml: K = serde_saphyr::from_str(&yaml).unwrap();
    prop_assert_eq!(&from_yaml, resource);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_valid_agent_is_accepted(spec in agent_spec()) {
        accepted(&Agent::new("a", spec), |r| r.validate_cel())?;
    }

    #[test]
    fn any_valid_pheromone_is_accepted(spec in pheromone_spec()) {
        accepted(&Pheromone::new("p", spec), |r| r.validate_cel())?;
    }

    #[test]
    fn any_valid_memory_is_accepted(spec in memory_spec()) {
        accepted(&Memory::new("m", spec), |r| r.validate_cel())?;
    }

    #[test]
    fn any_valid_umwelt_is_accepted(spec in umwelt_spec()) {
        accepted(&Umwelt::new("u", spec), |r| r.validate_cel())?;
    }

    #[test]
    fn any_valid_proposal_is_accepted(spec in proposal_spec()) {
        accepted(&Proposal::new("p", spec), |r| r.validate_cel())?;
    }
}

#[test]
fn minimal_specs_take_the_documented_defaults_and_round_trip() {
    let agent: Agent = serde_saphyr::from_str(
        "apiVersion: kgents.io/v1\nkind: Agent\nmetadata: {name: b-gent}\nspec: {genus: B}\n",
    )
    .unwrap();
    let json = serde_json::to_value(&agent).unwrap();
    assert_eq!(
        json["spec"],
        serde_json::json!({"genus": "B", "replicas": 1, "deployMode": "PLACEHOLDER", "reconciliation": {"sequential": true, "idempotent": true}})
    );
    assert_eq!(serde_json::from_value::<Agent>(json).unwrap(), agent);
}
