//! Every CEL rule, evaluated client-side with `validate_cel` (kube-cel), once passing and once
//! failing with its message. The same rules run in the API server (tests/apiserver.rs).

use std::collections::BTreeMap;

use kgents_crds::agent::*;
use kgents_crds::common::SecretKeyRef;
use kgents_crds::memory::*;
use kgents_crds::pheromone::*;
use kgents_crds::proposal::*;
use kgents_crds::umwelt::*;
use kgents_crds::{Genus, PheromoneType};
use kube::core::cel::ValidationErrors;

fn ok(result: Result<(), ValidationErrors>) {
    if let Err(errors) = result {
        panic!(
            "expected no violations, got {:#?}",
            errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        );
    }
}

/// Exactly one rule fails and its message contains `expected`.
fn rejects(result: Result<(), ValidationErrors>, expected: &str) {
    let errors = result.expect_err("expected a violation");
    let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        messages.len(),
        1,
        "exactly one violation expected: {messages:#?}"
    );
    assert!(
        messages[0].contains(expected),
        "{:?} does not mention {expected:?}",
        messages[0]
    );
}

fn agent(spec: AgentSpec) -> Agent {
    Agent::new("a", spec)
}

fn base_agent() -> AgentSpec {
    serde_json::from_value(serde_json::json!({"genus": "B"})).expect("minimal Agent spec")
}

fn health() -> HealthSpec {
    serde_json::from_value(serde_json::json!({})).expect("defaulted health")
}

#[test]
fn agent_defaults_are_valid() {
    let spec = base_agent();
    assert_eq!(spec.replicas, 1);
    assert_eq!(spec.deploy_mode, DeployMode::Placeholder);
    assert!(spec.reconciliation.sequential && spec.reconciliation.idempotent);
    ok(agent(spec).validate_cel());
}

#[test]
fn agent_full_requires_an_image() {
    let mut spec = base_agent();
    spec.deploy_mode = DeployMode::Full;
    rejects(
        agent(spec.clone()).validate_cel(),
        "deployMode FULL requires spec.image",
    );
    spec.image = Some(String::new());
    rejects(
        agent(spec.clone()).validate_cel(),
        "deployMode FULL requires spec.image",
    );
    spec.image = Some("ghcr.io/kgents/b-gent:1".into());
    ok(agent(spec.clone()).validate_cel());
    // Other modes do not need one.
    spec.image = None;
    spec.deploy_mode = DeployMode::DryRun;
    ok(agent(spec).validate_cel());
}

#[test]
fn agent_replicas_between_0_and_10() {
    for (replicas, valid) in [(-1, false), (0, true), (10, true), (11, false)] {
        let mut spec = base_agent();
        spec.replicas = replicas;
        let result = agent(spec).validate_cel();
        if valid {
            ok(result)
        } else {
            rejects(result, "replicas must be between 0 and 10")
        }
    }
}

#[test]
fn agent_config_keys_are_env_suffixes() {
    for (key, valid) in [
        ("fooBar", true),
        ("_x9", true),
        ("MAX_RESULTS", true),
        ("9lives", false),
        ("log-level", false),
        ("a.b", false),
    ] {
        let mut spec = base_agent();
        spec.config = BTreeMap::from([(key.to_owned(), "v".to_owned())]);
        let result = agent(spec).validate_cel();
        if valid {
            ok(result)
        } else {
            rejects(
                result,
                "config keys must be letters, digits and underscores",
            )
        }
    }
}

#[test]
fn agent_ollama_needs_an_endpoint() {
    let mut spec = base_agent();
    let mut model = ModelSpec {
        provider: ModelProvider::Ollama,
        name: Some("llama3".into()),
        endpoint: None,
        secret_ref: None,
    };
    spec.model = Some(model.clone());
    rejects(
        agent(spec.clone()).validate_cel(),
        "provider ollama needs spec.model.endpoint",
    );
    model.endpoint = Some("http://ollama:11434".into());
    spec.model = Some(model);
    ok(agent(spec.clone()).validate_cel());
    spec.model = Some(ModelSpec {
        provider: ModelProvider::Anthropic,
        name: None,
        endpoint: None,
        secret_ref: Some(SecretKeyRef {
            name: "anthropic".into(),
            key: "api-key".into(),
        }),
    });
    ok(agent(spec).validate_cel());
}

#[test]
fn agent_health_rules() {
    let with = |h: HealthSpec| {
        let mut spec = base_agent();
        spec.health = Some(h);
        agent(spec).validate_cel()
    };
    ok(with(health()));
    rejects(
        with(HealthSpec {
            timeout_seconds: 30,
            ..health()
        }),
        "timeoutSeconds must be less than health.intervalSeconds",
    );
    rejects(
        with(HealthSpec {
            interval_seconds: 4,
            timeout_seconds: 2,
            ..health()
        }),
        "intervalSeconds must be between 5 and 3600",
    );
    rejects(
        with(HealthSpec {
            interval_seconds: 3601,
            ..health()
        }),
        "intervalSeconds must be between 5 and 3600",
    );
    rejects(
        with(HealthSpec {
            timeout_seconds: 0,
            ..health()
        }),
        "timeoutSeconds must be between 1 and 600",
    );
    rejects(
        with(HealthSpec {
            interval_seconds: 3600,
            timeout_seconds: 601,
            ..health()
        }),
        "timeoutSeconds must be between 1 and 600",
    );
    ok(with(HealthSpec {
        interval_seconds: 3600,
        timeout_seconds: 600,
        ..health()
    }));
    rejects(
        with(HealthSpec {
            unhealthy_threshold: 0,
            ..health()
        }),
        "unhealthyThreshold must be between 1 and 100",
    );
    rejects(
        with(HealthSpec {
            unhealthy_threshold: 101,
            ..health()
        }),
        "unhealthyThreshold must be between 1 and 100",
    );
    rejects(
        with(HealthSpec {
            healthy_threshold: 0,
            ..health()
        }),
        "healthyThreshold must be between 1 and 100",
    );
    ok(with(HealthSpec {
        healthy_threshold: 100,
        unhealthy_threshold: 1,
        ..health()
    }));
}

fn pheromone_spec() -> PheromoneSpec {
    serde_json::from_value(serde_json::json!({"type": "WARNING", "source": "d-gent"}))
        .expect("minimal Pheromone spec")
}

fn pheromone(spec: PheromoneSpec) -> Pheromone {
    Pheromone::new("p", spec)
}

#[test]
fn pheromone_defaults_are_valid() {
    let spec = pheromone_spec();
    assert_eq!(spec.initial_intensity, 1.0);
    assert_eq!(spec.half_life_minutes, 10.0);
    ok(pheromone(spec).validate_cel());
}

#[test]
fn pheromone_spec_is_immutable() {
    let old = pheromone(pheromone_spec());
    ok(old.validate_cel_update(&old.clone()));
    let mut new = old.clone();
    new.spec.initial_intensity = 0.5;
    rejects(
        new.validate_cel_update(&old),
        "a Pheromone's spec is immutable",
    );
    let mut retargeted = old.clone();
    retargeted.spec.target = Some("l-gent".into());
    rejects(
        retargeted.validate_cel_update(&old),
        "a Pheromone's spec is immutable",
    );
    // Status and metadata may change.
    let mut labelled = old.clone();
    labelled.metadata.labels = Some(BTreeMap::from([("seen".into(), "yes".into())]));
    labelled.status = Some(PheromoneStatus {
        phase: Some(PheromonePhase::Evaporated),
        evaporates_at: None,
    });
    ok(labelled.validate_cel_update(&old));
}

#[test]
fn pheromone_source_must_not_be_empty() {
    rejects(
        pheromone(PheromoneSpec {
            source: String::new(),
            ..pheromone_spec()
        })
        .validate_cel(),
        "source must name the emitting agent",
    );
}

#[test]
fn pheromone_intensity_in_open_closed_unit_interval() {
    for (x, valid) in [
        (0.0, false),
        (-0.1, false),
        (1e-9, true),
        (1.0, true),
        (1.000001, false),
    ] {
        let result = pheromone(PheromoneSpec {
            initial_intensity: x,
            ..pheromone_spec()
        })
        .validate_cel();
        if valid {
            ok(result)
        } else {
            rejects(
                result,
                "initialIntensity must be greater than 0 and at most 1",
            )
        }
    }
}

#[test]
fn pheromone_half_life_at_least_a_tenth_of_a_minute() {
    for (x, valid) in [(0.0, false), (0.09, false), (0.1, true), (1e6, true)] {
        let result = pheromone(PheromoneSpec {
            half_life_minutes: x,
            ..pheromone_spec()
        })
        .validate_cel();
        if valid {
            ok(result)
        } else {
            rejects(result, "halfLifeMinutes must be at least 0.1")
        }
    }
}

#[test]
fn pheromone_ttl_positive() {
    ok(pheromone(PheromoneSpec {
        ttl_seconds: Some(1),
        ..pheromone_spec()
    })
    .validate_cel());
    rejects(
        pheromone(PheromoneSpec {
            ttl_seconds: Some(0),
            ..pheromone_spec()
        })
        .validate_cel(),
        "ttlSeconds must be at least 1",
    );
}

#[test]
fn pheromone_payload_limit_counts_bytes() {
    let at_limit = "x".repeat(MAX_PAYLOAD_BYTES);
    ok(pheromone(PheromoneSpec {
        payload: Some(at_limit),
        ..pheromone_spec()
    })
    .validate_cel());
    let over = "x".repeat(MAX_PAYLOAD_BYTES + 1);
    rejects(
        pheromone(PheromoneSpec {
            payload: Some(over),
            ..pheromone_spec()
        })
        .validate_cel(),
        "payload must be at most 32 KiB",
    );
    // 11 000 three-byte characters: few characters, too many bytes.
    let multibyte = "€".repeat(11_000);
    rejects(
        pheromone(PheromoneSpec {
            payload: Some(multibyte),
            ..pheromone_spec()
        })
        .validate_cel(),
        "payload must be at most 32 KiB",
    );
}

fn memory_spec() -> MemorySpec {
    serde_json::from_value(serde_json::json!({"owner": "b-gent"})).expect("minimal Memory spec")
}

fn memory(spec: MemorySpec) -> Memory {
    Memory::new("m", spec)
}

#[test]
fn memory_defaults_are_valid() {
    let spec = memory_spec();
    assert_eq!(spec.kind, MemoryType::Bicameral);
    assert_eq!(spec.retention_policy, RetentionPolicy::Retain);
    assert_eq!(spec.compost_after_hours, 72);
    assert_eq!(spec.size.0, "256Mi");
    ok(memory(spec).validate_cel());
}

#[test]
fn memory_owner_must_not_be_empty() {
    rejects(
        memory(MemorySpec {
            owner: String::new(),
            ..memory_spec()
        })
        .validate_cel(),
        "owner must name the Agent",
    );
}

#[test]
fn memory_compost_hours_range() {
    for (h, valid) in [(0, false), (1, true), (8760, true), (8761, false)] {
        let result = memory(MemorySpec {
            compost_after_hours: h,
            ..memory_spec()
        })
        .validate_cel();
        if valid {
            ok(result)
        } else {
            rejects(result, "compostAfterHours must be between 1 and 8760")
        }
    }
}

#[test]
fn memory_backup_schedule_is_cron() {
    let valid = [
        "0 3 * * *",
        "*/15 * * * *",
        "30 3 * * MON-FRI",
        "0 0 1 JAN,JUL *",
        "0,30 8-18/2 1-15 1-12 0-6",
        "59 23 31 12 7",
        "@daily",
        "@hourly",
        "@yearly",
        "0\t3 * * *",
    ];
    for schedule in valid {
        ok(memory(MemorySpec {
            backup_schedule: Some(schedule.into()),
            ..memory_spec()
        })
        .validate_cel());
    }
    let invalid = [
        "61 3 * * *",
        "0 24 * * *",
        "0 0 0 * *",
        "0 0 32 * *",
        "0 0 * 13 *",
        "0 0 * * 8",
        "* * * *",
        "* * * * * *",
        "@every 5m",
        "@reboot",
        "daily",
        "",
        "0 3 * * * ; rm -rf /",
        "0 3 * * MONDAY",
    ];
    for schedule in invalid {
        rejects(
            memory(MemorySpec {
                backup_schedule: Some(schedule.into()),
                ..memory_spec()
            })
            .validate_cel(),
            "backupSchedule must be a five-field cron expression",
        );
    }
}

#[test]
fn memory_ephemeral_has_no_backups() {
    let ephemeral = MemorySpec {
        kind: MemoryType::Ephemeral,
        ..memory_spec()
    };
    ok(memory(ephemeral.clone()).validate_cel());
    rejects(
        memory(MemorySpec {
            backup_schedule: Some("@daily".into()),
            ..ephemeral
        })
        .validate_cel(),
        "an EPHEMERAL memory has no storage to back up",
    );
    ok(memory(MemorySpec {
        backup_schedule: Some("@daily".into()),
        ..memory_spec()
    })
    .validate_cel());
}

fn umwelt_spec() -> UmweltSpec {
    serde_json::from_value(serde_json::json!({"agent": "l-gent"})).expect("minimal Umwelt spec")
}

fn umwelt(spec: UmweltSpec) -> Umwelt {
    Umwelt::new("u", spec)
}

#[test]
fn umwelt_defaults_are_valid() {
    let spec = umwelt_spec();
    assert_eq!(spec.slop_budget, 0.1);
    assert_eq!(spec.workload, Workload::Routine);
    ok(umwelt(spec).validate_cel());
}

#[test]
fn umwelt_agent_must_not_be_empty() {
    rejects(
        umwelt(UmweltSpec {
            agent: String::new(),
            ..umwelt_spec()
        })
        .validate_cel(),
        "agent must name the Agent",
    );
}

#[test]
fn umwelt_affordances_are_agentese_globs() {
    let valid = [
        "world.*.manifest",
        "self.memory.*",
        "concept.*.refine",
        "void.pheromone.sense",
        "time.witness.b-gent.replay",
        "world.cluster.agents",
        "self.a_b.c9",
        "*",
        "*.manifest",
        "world",
        "world.-x",
    ];
    ok(umwelt(UmweltSpec {
        affordances: valid.iter().map(|s| s.to_string()).collect(),
        ..umwelt_spec()
    })
    .validate_cel());
    let invalid = [
        "cluster.agents.delete",
        "",
        "world.",
        "world..manifest",
        "World.x",
        "world.X",
        "world.a b",
        "world.**",
        "self.memory.*x",
        ".world.x",
        "wor*.x",
        "world.caf\u{e9}",
    ];
    for glob in invalid {
        rejects(
            umwelt(UmweltSpec {
                affordances: vec!["world.*.manifest".into(), glob.into()],
                ..umwelt_spec()
            })
            .validate_cel(),
            "every affordance must be an AGENTESE glob",
        );
    }
    // The same verdicts from the kgents-core parser the webhook uses.
    assert!(kgents_crds::validate_affordances(&valid).is_ok());
    for glob in invalid {
        assert!(
            kgents_crds::validate_affordances(&[glob]).is_err(),
            "{glob:?}"
        );
    }
}

#[test]
fn umwelt_persona_dials_in_unit_interval() {
    let p = Persona::default();
    ok(umwelt(UmweltSpec {
        persona: Some(p.clone()),
        ..umwelt_spec()
    })
    .validate_cel());
    ok(umwelt(UmweltSpec {
        persona: Some(Persona {
            warmth: 0.0,
            directness: 1.0,
            ..p.clone()
        }),
        ..umwelt_spec()
    })
    .validate_cel());
    for bad in [
        Persona {
            warmth: 1.5,
            ..p.clone()
        },
        Persona {
            directness: -0.1,
            ..p.clone()
        },
        Persona {
            humor: 2.0,
            ..p.clone()
        },
        Persona {
            verbosity: -1.0,
            ..p.clone()
        },
    ] {
        rejects(
            umwelt(UmweltSpec {
                persona: Some(bad),
                ..umwelt_spec()
            })
            .validate_cel(),
            "persona warmth, directness, humor and verbosity must each be between 0 and 1",
        );
    }
}

#[test]
fn umwelt_slop_budget_in_unit_interval() {
    for (x, valid) in [(-0.01, false), (0.0, true), (1.0, true), (1.01, false)] {
        let result = umwelt(UmweltSpec {
            slop_budget: x,
            ..umwelt_spec()
        })
        .validate_cel();
        if valid {
            ok(result)
        } else {
            rejects(result, "slopBudget must be between 0 and 1")
        }
    }
}

#[test]
fn umwelt_budgets_not_negative() {
    let zero = Constraints {
        token_budget: Some(0),
        memory_budget_mb: Some(0),
        cpu_budget_millicores: Some(0),
        rate_limit_per_minute: Some(0),
    };
    ok(umwelt(UmweltSpec {
        constraints: Some(zero.clone()),
        ..umwelt_spec()
    })
    .validate_cel());
    let cases = [
        (
            Constraints {
                token_budget: Some(-1),
                ..zero.clone()
            },
            "tokenBudget must not be negative",
        ),
        (
            Constraints {
                memory_budget_mb: Some(-1),
                ..zero.clone()
            },
            "memoryBudgetMb must not be negative",
        ),
        (
            Constraints {
                cpu_budget_millicores: Some(-1),
                ..zero.clone()
            },
            "cpuBudgetMillicores must not be negative",
        ),
        (
            Constraints {
                rate_limit_per_minute: Some(-1),
                ..zero.clone()
            },
            "rateLimitPerMinute must not be negative",
        ),
    ];
    for (constraints, message) in cases {
        rejects(
            umwelt(UmweltSpec {
                constraints: Some(constraints),
                ..umwelt_spec()
            })
            .validate_cel(),
            message,
        );
    }
}

#[test]
fn umwelt_pheromone_sensitivity_accepts_every_type() {
    let all = PheromoneType::ALL.to_vec();
    let spec = UmweltSpec {
        pheromone_sensitivity: Some(PheromoneSensitivity {
            sense: all.clone(),
            emit: all,
        }),
        ..umwelt_spec()
    };
    ok(umwelt(spec).validate_cel());
}

fn proposal_spec() -> ProposalSpec {
    serde_json::from_value(serde_json::json!({
        "proposer": "b-gent",
        "changeType": "AGENT_SCALE",
        "target": {"apiVersion": "kgents.io/v1", "kind": "Agent", "name": "b-gent"},
        "patch": {"content": "{\"spec\":{\"replicas\":3}}"}
    }))
    .expect("Proposal spec")
}

fn proposal(spec: ProposalSpec) -> Proposal {
    Proposal::new("p", spec)
}

#[test]
fn proposal_defaults_are_valid() {
    let spec = proposal_spec();
    assert_eq!(spec.ttl_seconds, 86_400);
    assert!(spec.review_requirements.auto_merge && spec.review_requirements.t_gent_validation);
    assert_eq!(spec.review_requirements.required_approvers, 0);
    assert_eq!(spec.patch.as_ref().unwrap().kind, PatchType::Merge);
    ok(proposal(spec).validate_cel());
}

#[test]
fn proposal_spec_is_immutable() {
    let old = proposal(proposal_spec());
    ok(old.validate_cel_update(&old.clone()));
    let mut new = old.clone();
    new.spec.ttl_seconds = 120;
    rejects(
        new.validate_cel_update(&old),
        "a Proposal's spec is immutable",
    );
    let mut approved = old.clone();
    approved.status = Some(ProposalStatus {
        phase: Some(ProposalPhase::Approved),
        ..Default::default()
    });
    ok(approved.validate_cel_update(&old));
}

#[test]
fn proposal_required_strings_not_empty() {
    rejects(
        proposal(ProposalSpec {
            proposer: String::new(),
            ..proposal_spec()
        })
        .validate_cel(),
        "proposer must name who files the proposal",
    );
    let mut spec = proposal_spec();
    spec.target.kind = String::new();
    rejects(
        proposal(spec).validate_cel(),
        "target.kind must name the kind",
    );
    let mut spec = proposal_spec();
    spec.target.name = String::new();
    rejects(
        proposal(spec).validate_cel(),
        "target.name must name the object",
    );
}

#[test]
fn proposal_patch_needs_target_api_version() {
    let mut spec = proposal_spec();
    spec.target.api_version = None;
    rejects(
        proposal(spec.clone()).validate_cel(),
        "a proposal with a patch must set target.apiVersion",
    );
    // Without a patch (a recorded CODE_* change) no apiVersion is needed.
    spec.patch = None;
    spec.change_type = ChangeType::CodePatch;
    ok(proposal(spec).validate_cel());
}

#[test]
fn proposal_patch_content_rules() {
    let with = |kind: PatchType, content: &str| {
        proposal(ProposalSpec {
            patch: Some(PatchSpec {
                kind,
                content: content.into(),
            }),
            ..proposal_spec()
        })
        .validate_cel()
    };
    ok(with(
        PatchType::Json,
        r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
    ));
    ok(with(PatchType::Json, "  \n[]"));
    rejects(
        with(PatchType::Json, r#"{"spec":{}}"#),
        "a json patch must be a JSON array",
    );
    ok(with(PatchType::Apply, "spec:\n  replicas: 3\n"));
    rejects(
        with(PatchType::Merge, "   "),
        "patch.content must not be empty",
    );
    ok(with(PatchType::Merge, &"x".repeat(MAX_PATCH_BYTES)));
    rejects(
        with(PatchType::Merge, &"x".repeat(MAX_PATCH_BYTES + 1)),
        "patch.content must be at most 128 KiB",
    );
}

#[test]
fn proposal_ttl_at_least_a_minute() {
    for (ttl, valid) in [(59, false), (60, true), (86_400, true)] {
        let result = proposal(ProposalSpec {
            ttl_seconds: ttl,
            ..proposal_spec()
        })
        .validate_cel();
        if valid {
            ok(result)
        } else {
            rejects(result, "ttlSeconds must be at least 60")
        }
    }
}

#[test]
fn proposal_magnitude_not_negative() {
    let m = Magnitude {
        lines_added: 10,
        lines_removed: 2,
        files_changed: 1,
        tests_added: 1,
        tests_removed: 0,
    };
    ok(proposal(ProposalSpec {
        magnitude: m.clone(),
        ..proposal_spec()
    })
    .validate_cel());
    for bad in [
        Magnitude {
            lines_added: -1,
            ..m.clone()
        },
        Magnitude {
            lines_removed: -1,
            ..m.clone()
        },
        Magnitude {
            files_changed: -1,
            ..m.clone()
        },
        Magnitude {
            tests_added: -1,
            ..m.clone()
        },
        Magnitude {
            tests_removed: -1,
            ..m.clone()
        },
    ] {
        rejects(
            proposal(ProposalSpec {
                magnitude: bad,
                ..proposal_spec()
            })
            .validate_cel(),
            "magnitude counts",
        );
    }
}

#[test]
fn proposal_required_approvers_range() {
    for (n, valid) in [(-1, false), (0, true), (10, true), (11, false)] {
        let mut spec = proposal_spec();
        spec.review_requirements.required_approvers = n;
        let result = proposal(spec).validate_cel();
        if valid {
            ok(result)
        } else {
            rejects(result, "requiredApprovers must be between 0 and 10")
        }
    }
}

#[test]
fn every_genus_and_change_type_is_in_the_schema() {
    use kube::CustomResourceExt;
    let agent = serde_json::to_value(Agent::crd()).unwrap();
    let genus_enum = &agent["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["genus"]["enum"];
    let names: Vec<&str> = Genus::ALL.iter().map(|g| g.as_str()).collect();
    assert_eq!(genus_enum, &serde_json::json!(names));
    let proposal = serde_json::to_value(Proposal::crd()).unwrap();
    let change_enum = &proposal["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["changeType"]["enum"];
    assert_eq!(change_enum.as_array().unwrap().len(), 15);
    let pheromone = serde_json::to_value(Pheromone::crd()).unwrap();
    let type_enum = &pheromone["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["type"]["enum"];
    assert_eq!(type_enum.as_array().unwrap().len(), 13);
    assert!(
        type_enum
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("REVIEW_REQUEST"))
    );
}

#[test]
fn a_file_target_is_only_for_patchless_code_changes() {
    let mut spec = proposal_spec();
    spec.patch = None;
    spec.target.api_version = None;
    spec.target.kind = "File".into();
    for change in ChangeType::ALL {
        let mut spec = spec.clone();
        spec.change_type = change;
        let outcome = proposal(spec).validate_cel();
        if change.is_code() {
            ok(outcome);
        } else {
            rejects(outcome, "target kind File (without apiVersion)");
        }
    }
    // A patch needs an apiVersion, and with one the target is a Kubernetes kind named File
    // (no longer a file outside the cluster).
    let mut with_patch = proposal_spec();
    with_patch.change_type = ChangeType::CodePatch;
    with_patch.target.kind = "File".into();
    with_patch.target.api_version = None;
    rejects(
        proposal(with_patch.clone()).validate_cel(),
        "a proposal with a patch must set target.apiVersion",
    );
    assert!(with_patch.target.is_external_file());
    with_patch.target.api_version = Some("example.com/v1".into());
    assert!(!with_patch.target.is_external_file());
    ok(proposal(with_patch).validate_cel());
}
