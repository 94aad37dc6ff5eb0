//! The CLI command ↔ AGENTESE path ↔ Kubernetes operation table of the seed design, as data.
//!
//! | CLI command | AGENTESE path | Kubernetes operation |
//! |---|---|---|
//! | `kgents status` | `world.cluster.agents.manifest` | list Agent resources |
//! | `kgents observe` | `void.pheromone.sense` | watch Pheromone resources |
//! | `kgents propose` | `self.deployment.define` | create a Proposal resource |
//! | `kgents tether` | `world.cluster.agents.<agent>.tether` | port-forward to the agent's pod |
//! | `kgents seance` | `time.witness.<agent>.replay` | reconstruct the agent's history |
//! | `kgents workflow` | `world.cluster.workflow.define` | run a durable workflow |
//! | `kgents get agents NAME` | `world.cluster.agents.<agent>.manifest` | get one Agent resource |
//! | `kgents emit` | `void.pheromone.emit` | create a Pheromone resource |
//! | `kgents get proposals` | `world.cluster.proposals.manifest` | list Proposal resources |
//! | `kgents approve` | `world.cluster.proposals.<proposal>.approve` | record an approval in a Proposal's status |
//! | `kgents reject` | `world.cluster.proposals.<proposal>.reject` | record a rejection in a Proposal's status |
//! | `kgents get memories` | `world.cluster.memories.manifest` | list Memory resources |
//! | `kgents get umwelts` | `world.cluster.umwelts.manifest` | list Umwelt resources |
//! | `kgents concept define` | `concept.define` | none: the model defines a term |
//! | `kgents concept blend` | `concept.blend.forge` | none: the model blends two concepts |
//! | `kgents concept refine` | `concept.refine` | none: the model critiques and improves a text |
//!
//! A command with a space (`get agents`) is written with a hyphen in the table (`get-agent`).
//!
//! Paths are [`PathTemplate`]s: a segment written `<name>` is a placeholder that matches any one
//! segment of a concrete path and is reported in the match's bindings.

use std::fmt;
use std::str::FromStr;

use super::path::{Aspect, Context, Path, Segment, is_segment_byte};
use crate::error::{Error, excerpt};

/// What a registry entry does in Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum K8sOperation {
    /// List Agent resources (`kubectl get agents`).
    ListAgents,
    /// Watch Pheromone resources.
    WatchPheromones,
    /// Create a Proposal resource.
    CreateProposal,
    /// Port-forward to an agent's pod.
    PortForward,
    /// Reconstruct an agent's history from events and snapshots.
    ReconstructHistory,
    /// Run a durable workflow (a resource-backed state machine).
    DurableWorkflow,
    /// Get one Agent resource.
    GetAgent,
    /// Create a Pheromone resource.
    CreatePheromone,
    /// List Proposal resources.
    ListProposals,
    /// Record an approval in a Proposal's status.
    ApproveProposal,
    /// Record a rejection in a Proposal's status.
    RejectProposal,
    /// List Memory resources.
    ListMemories,
    /// List Umwelt resources.
    ListUmwelts,
    /// No Kubernetes operation: the model defines a term (`concept.define`).
    DefineConcept,
    /// No Kubernetes operation: the model blends two concepts (`concept.blend.forge`).
    BlendConcepts,
    /// No Kubernetes operation: the model critiques and improves a text (`concept.refine`).
    RefineText,
}

impl K8sOperation {
    /// A one-line human description.
    pub const fn description(self) -> &'static str {
        match self {
            K8sOperation::ListAgents => "list Agent resources (kubectl get agents)",
            K8sOperation::WatchPheromones => "watch Pheromone resources",
            K8sOperation::CreateProposal => "create a Proposal resource",
            K8sOperation::PortForward => "port-forward to the agent's pod",
            K8sOperation::ReconstructHistory => "reconstruct the agent's history",
            K8sOperation::DurableWorkflow => "run a durable workflow",
            K8sOperation::GetAgent => "get one Agent resource",
            K8sOperation::CreatePheromone => "create a Pheromone resource",
            K8sOperation::ListProposals => "list Proposal resources",
            K8sOperation::ApproveProposal => "record an approval in a Proposal's status",
            K8sOperation::RejectProposal => "record a rejection in a Proposal's status",
            K8sOperation::ListMemories => "list Memory resources",
            K8sOperation::ListUmwelts => "list Umwelt resources",
            K8sOperation::DefineConcept => "none: the model defines a term",
            K8sOperation::BlendConcepts => "none: the model blends two concepts",
            K8sOperation::RefineText => "none: the model critiques and improves a text",
        }
    }
}

impl fmt::Display for K8sOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// One segment position of a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TemplateSegment {
    /// Must equal this segment.
    Literal(Segment),
    /// `<name>`: matches any one segment.
    Placeholder(String),
}

/// An AGENTESE path whose segments may be `<name>` placeholders, e.g.
/// `world.cluster.agents.<agent>.tether`. The aspect follows the same rule as in a [`Path`]: it
/// is the last element when that is an aspect verb after at least one segment. A placeholder is
/// never the aspect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathTemplate {
    context: Context,
    segments: Vec<TemplateSegment>,
    aspect: Option<Aspect>,
}

/// A placeholder's value in a match.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    /// The placeholder name (without angle brackets).
    pub name: String,
    /// The concrete segment it matched.
    pub value: Segment,
}

impl PathTemplate {
    /// Parses a template.
    pub fn parse(input: &str) -> Result<PathTemplate, Error> {
        let fail = |reason: String| Error::InvalidTemplate {
            template: excerpt(input),
            reason,
        };
        let mut elements = input.split('.');
        let first = elements.next().unwrap_or_default();
        let context = first.parse::<Context>().map_err(|e| fail(e.to_string()))?;
        let mut segments = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for text in elements {
            if let Some(name) = text.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
                if name.is_empty() || !name.bytes().all(is_segment_byte) {
                    return Err(fail(format!(
                        "placeholder {text:?} must be `<name>` with a lowercase name"
                    )));
                }
                if names.contains(&name) {
                    return Err(fail(format!("placeholder <{name}> appears twice")));
                }
                names.push(name);
                segments.push(TemplateSegment::Placeholder(name.to_owned()));
            } else {
                let segment = Segment::new(text).map_err(|e| fail(e.to_string()))?;
                segments.push(TemplateSegment::Literal(segment));
            }
        }
        let mut aspect = None;
        if segments.len() >= 2 {
            if let Some(TemplateSegment::Literal(last)) = segments.last() {
                aspect = Aspect::from_verb(last.as_str());
            }
            if aspect.is_some() {
                segments.pop();
            }
        }
        if segments.is_empty() {
            return Err(fail(
                "a template needs at least one segment after the context".into(),
            ));
        }
        Ok(PathTemplate {
            context,
            segments,
            aspect,
        })
    }

    /// The context.
    pub fn context(&self) -> Context {
        self.context
    }

    /// The segment positions.
    pub fn segments(&self) -> &[TemplateSegment] {
        &self.segments
    }

    /// The aspect, if any.
    pub fn aspect(&self) -> Option<Aspect> {
        self.aspect
    }

    /// The placeholder names, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            TemplateSegment::Placeholder(name) => Some(name.as_str()),
            TemplateSegment::Literal(_) => None,
        })
    }

    /// Matches a concrete path: `Some(bindings)` (one per placeholder, in order) when the context,
    /// the aspect, the number of segments and every literal segment agree.
    pub fn matches(&self, path: &Path) -> Option<Vec<Binding>> {
        if path.context() != self.context
            || path.aspect() != self.aspect
            || path.segments().len() != self.segments.len()
        {
            return None;
        }
        let mut bindings = Vec::new();
        for (template, concrete) in self.segments.iter().zip(path.segments()) {
            match template {
                TemplateSegment::Literal(literal) if literal == concrete => {}
                TemplateSegment::Literal(_) => return None,
                TemplateSegment::Placeholder(name) => bindings.push(Binding {
                    name: name.clone(),
                    value: concrete.clone(),
                }),
            }
        }
        Some(bindings)
    }

    /// Fills every placeholder from `bindings` (`(name, value)` pairs) and returns the concrete path.
    pub fn instantiate(&self, bindings: &[(&str, &str)]) -> Result<Path, Error> {
        let mut segments = Vec::with_capacity(self.segments.len());
        for template in &self.segments {
            match template {
                TemplateSegment::Literal(literal) => segments.push(literal.clone()),
                TemplateSegment::Placeholder(name) => {
                    let value = bindings
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| *v)
                        .ok_or_else(|| Error::MissingBinding {
                            template: self.to_string(),
                            placeholder: name.clone(),
                        })?;
                    segments.push(Segment::new(value)?);
                }
            }
        }
        Ok(Path::new(self.context, segments, self.aspect)?)
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.context.as_str())?;
        for segment in &self.segments {
            match segment {
                TemplateSegment::Literal(literal) => write!(f, ".{literal}")?,
                TemplateSegment::Placeholder(name) => write!(f, ".<{name}>")?,
            }
        }
        if let Some(aspect) = self.aspect {
            write!(f, ".{aspect}")?;
        }
        Ok(())
    }
}

impl FromStr for PathTemplate {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PathTemplate::parse(s)
    }
}

/// One row of the table: a CLI command, its path template and its Kubernetes operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEntry {
    command: String,
    template: PathTemplate,
    operation: K8sOperation,
}

impl RegistryEntry {
    /// Builds an entry; `command` is the CLI subcommand without the `kgents` prefix (e.g. `status`).
    pub fn new(
        command: &str,
        template: &str,
        operation: K8sOperation,
    ) -> Result<RegistryEntry, Error> {
        Segment::new(command).map_err(|e| Error::InvalidTemplate {
            template: template.to_owned(),
            reason: format!("command {command:?} is not a lowercase word: {e}"),
        })?;
        Ok(RegistryEntry {
            command: command.to_owned(),
            template: PathTemplate::parse(template)?,
            operation,
        })
    }

    /// The CLI subcommand (without the `kgents` prefix).
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The AGENTESE path template.
    pub fn template(&self) -> &PathTemplate {
        &self.template
    }

    /// The Kubernetes operation.
    pub fn operation(&self) -> K8sOperation {
        self.operation
    }
}

/// A successful path lookup: the entry and the placeholder values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryMatch<'r> {
    /// The matching entry.
    pub entry: &'r RegistryEntry,
    /// One binding per placeholder of the entry's template.
    pub bindings: Vec<Binding>,
}

impl RegistryMatch<'_> {
    /// The value bound to placeholder `name`.
    pub fn binding(&self, name: &str) -> Option<&Segment> {
        self.bindings
            .iter()
            .find(|b| b.name == name)
            .map(|b| &b.value)
    }
}

/// The command ↔ path ↔ operation table. [`Registry::seed`] (also [`Default`]) is the seed design's
/// table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    entries: Vec<RegistryEntry>,
}

impl Registry {
    /// Builds a registry; commands and templates must be unique.
    pub fn new(entries: Vec<RegistryEntry>) -> Result<Registry, Error> {
        for (index, entry) in entries.iter().enumerate() {
            for earlier in &entries[..index] {
                if earlier.command == entry.command {
                    return Err(Error::DuplicateRegistryEntry {
                        what: "command",
                        value: entry.command.clone(),
                    });
                }
                if earlier.template == entry.template {
                    return Err(Error::DuplicateRegistryEntry {
                        what: "path template",
                        value: entry.template.to_string(),
                    });
                }
            }
        }
        Ok(Registry { entries })
    }

    /// The seed design's table (see the [module docs](self)).
    pub fn seed() -> Registry {
        use K8sOperation as Op;
        let rows = [
            ("status", "world.cluster.agents.manifest", Op::ListAgents),
            ("observe", "void.pheromone.sense", Op::WatchPheromones),
            ("propose", "self.deployment.define", Op::CreateProposal),
            (
                "tether",
                "world.cluster.agents.<agent>.tether",
                Op::PortForward,
            ),
            (
                "seance",
                "time.witness.<agent>.replay",
                Op::ReconstructHistory,
            ),
            (
                "workflow",
                "world.cluster.workflow.define",
                Op::DurableWorkflow,
            ),
            (
                "get-agent",
                "world.cluster.agents.<agent>.manifest",
                Op::GetAgent,
            ),
            ("emit", "void.pheromone.emit", Op::CreatePheromone),
            (
                "get-proposals",
                "world.cluster.proposals.manifest",
                Op::ListProposals,
            ),
            (
                "approve",
                "world.cluster.proposals.<proposal>.approve",
                Op::ApproveProposal,
            ),
            (
                "reject",
                "world.cluster.proposals.<proposal>.reject",
                Op::RejectProposal,
            ),
            (
                "get-memories",
                "world.cluster.memories.manifest",
                Op::ListMemories,
            ),
            (
                "get-umwelts",
                "world.cluster.umwelts.manifest",
                Op::ListUmwelts,
            ),
            ("concept-define", "concept.define", Op::DefineConcept),
            ("concept-blend", "concept.blend.forge", Op::BlendConcepts),
            ("concept-refine", "concept.refine", Op::RefineText),
        ];
        let entries = rows
            .into_iter()
            .filter_map(|(command, template, op)| RegistryEntry::new(command, template, op).ok())
            .collect();
        Registry { entries }
    }

    /// All entries, in table order.
    pub fn entries(&self) -> &[RegistryEntry] {
        &self.entries
    }

    /// The entry for a CLI subcommand (e.g. `tether`).
    pub fn by_command(&self, command: &str) -> Option<&RegistryEntry> {
        self.entries.iter().find(|e| e.command == command)
    }

    /// The first entry whose template matches `path`, with its placeholder values.
    pub fn by_path(&self, path: &Path) -> Option<RegistryMatch<'_>> {
        self.entries.iter().find_map(|entry| {
            entry
                .template
                .matches(path)
                .map(|bindings| RegistryMatch { entry, bindings })
        })
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::seed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_table_has_its_commands_and_all_templates_parse() {
        let registry = Registry::seed();
        let commands: Vec<_> = registry
            .entries()
            .iter()
            .map(RegistryEntry::command)
            .collect();
        assert_eq!(
            commands,
            [
                "status",
                "observe",
                "propose",
                "tether",
                "seance",
                "workflow",
                "get-agent",
                "emit",
                "get-proposals",
                "approve",
                "reject",
                "get-memories",
                "get-umwelts",
                "concept-define",
                "concept-blend",
                "concept-refine",
            ]
        );
        assert_eq!(registry.entries().len(), 16, "every seed row parses");
        assert!(Registry::new(registry.entries().to_vec()).is_ok());
    }

    #[test]
    fn lookup_by_command() {
        let registry = Registry::default();
        let tether = registry.by_command("tether").unwrap();
        assert_eq!(
            tether.template().to_string(),
            "world.cluster.agents.<agent>.tether"
        );
        assert_eq!(tether.operation(), K8sOperation::PortForward);
        assert_eq!(
            registry
                .by_command("status")
                .unwrap()
                .template()
                .to_string(),
            "world.cluster.agents.manifest"
        );
        assert!(registry.by_command("teleport").is_none());
    }

    #[test]
    fn lookup_by_concrete_path_binds_placeholders() {
        let registry = Registry::seed();
        let path = Path::parse("world.cluster.agents.b-gent.tether").unwrap();
        let found = registry.by_path(&path).unwrap();
        assert_eq!(found.entry.command(), "tether");
        assert_eq!(found.binding("agent").map(Segment::as_str), Some("b-gent"));

        let seance = registry
            .by_path(&Path::parse("time.witness.k-gent.replay").unwrap())
            .unwrap();
        assert_eq!(seance.entry.operation(), K8sOperation::ReconstructHistory);
        assert_eq!(seance.binding("agent").unwrap(), "k-gent");

        let status = registry
            .by_path(&Path::parse("world.cluster.agents.manifest").unwrap())
            .unwrap();
        assert_eq!(status.entry.command(), "status");
        assert!(status.bindings.is_empty());

        // An agent literally named `manifest` is a segment when another aspect follows.
        let odd = registry
            .by_path(&Path::parse("world.cluster.agents.manifest.tether").unwrap())
            .unwrap();
        assert_eq!(odd.binding("agent").unwrap(), "manifest");

        let one = registry
            .by_path(&Path::parse("world.cluster.agents.b-gent.manifest").unwrap())
            .unwrap();
        assert_eq!(one.entry.command(), "get-agent");
        assert_eq!(one.binding("agent").unwrap(), "b-gent");
        let approve = registry
            .by_path(&Path::parse("world.cluster.proposals.scale-b.approve").unwrap())
            .unwrap();
        assert_eq!(approve.binding("proposal").unwrap(), "scale-b");

        for unmatched in [
            "world.cluster.agents.a.b.manifest",
            "world.cluster.agents.tether",
            "world.cluster.agents.a.b.tether",
            "void.pheromone.refine",
            "self.deployment",
        ] {
            assert!(
                registry.by_path(&Path::parse(unmatched).unwrap()).is_none(),
                "{unmatched}"
            );
        }
    }

    #[test]
    fn every_template_instantiates_to_a_path_that_looks_up_to_itself() {
        let registry = Registry::seed();
        for entry in registry.entries() {
            let bindings: Vec<(&str, &str)> = entry
                .template()
                .placeholders()
                .map(|n| (n, "x-gent"))
                .collect();
            let path = entry.template().instantiate(&bindings).unwrap();
            assert_eq!(registry.by_path(&path).unwrap().entry, entry);
            assert_eq!(
                registry.by_command(entry.command()).unwrap().template(),
                entry.template()
            );
        }
        let tether = registry.by_command("tether").unwrap().template();
        assert!(matches!(
            tether.instantiate(&[]),
            Err(Error::MissingBinding { .. })
        ));
        assert!(matches!(
            tether.instantiate(&[("agent", "Bad Name")]),
            Err(Error::Path(_))
        ));
    }

    #[test]
    fn bad_templates_and_duplicates_are_rejected() {
        for bad in [
            "",
            "world",
            "world.<>.x",
            "world.<A>.x",
            "world.<a>.<a>.x",
            "mars.x",
            "world..x",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
        let op = K8sOperation::ListAgents;
        let a = RegistryEntry::new("a", "world.x.manifest", op).unwrap();
        let b = RegistryEntry::new("a", "world.y.manifest", op).unwrap();
        let c = RegistryEntry::new("c", "world.x.manifest", op).unwrap();
        assert!(matches!(
            Registry::new(vec![a.clone(), b]),
            Err(Error::DuplicateRegistryEntry {
                what: "command",
                ..
            })
        ));
        assert!(matches!(
            Registry::new(vec![a, c]),
            Err(Error::DuplicateRegistryEntry {
                what: "path template",
                ..
            })
        ));
        assert!(RegistryEntry::new("Bad Command", "world.x", op).is_err());
    }
}
