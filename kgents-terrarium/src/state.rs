//! The dashboard's state and its reducer: pure, no terminal and no cluster.
//!
//! [`update`] takes an [`App`] and one [`Event`] (a key, a clock tick, data from the feed, the
//! answer to a decision) and returns the [`Effect`]s the I/O edge must carry out (quit, send an
//! approval, watch another namespace). Everything the screen shows is derived from [`App`] by
//! [`crate::view`], so every key sequence can be tested without a terminal.

use std::collections::{BTreeMap, VecDeque};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use jiff::Timestamp;
use kgents_core::decay::{self, HalfLife, Intensity};
use kgents_ghost::snapshot::AgentSummary;
use kgents_logos::outcome::{PheromoneRecord, ProposalRecord};
use kgents_logos::{Scope, Source};

/// How many thoughts the stream keeps; older ones are dropped (and counted).
pub const THOUGHT_CAPACITY: usize = 2_000;
/// Seconds per bucket of an agent's activity sparkline.
pub const ACTIVITY_BUCKET_SECONDS: i64 = 10;
/// Buckets of an agent's activity sparkline (the last two minutes).
pub const ACTIVITY_BUCKETS: usize = 12;
/// A probe this recent counts as activity.
pub const PROBE_RECENT_SECONDS: i64 = 120;

/// The four panels, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Panel {
    /// Agents by activity.
    Agents,
    /// The pheromone heatmap (type × source).
    Pheromones,
    /// Proposals, pending first.
    Proposals,
    /// Events of kgents objects.
    Thoughts,
}

impl Panel {
    /// Every panel in Tab order.
    pub const ALL: [Panel; 4] = [
        Panel::Agents,
        Panel::Pheromones,
        Panel::Proposals,
        Panel::Thoughts,
    ];

    fn index(self) -> usize {
        match self {
            Panel::Agents => 0,
            Panel::Pheromones => 1,
            Panel::Proposals => 2,
            Panel::Thoughts => 3,
        }
    }

    /// The panel's title.
    pub fn title(self) -> &'static str {
        match self {
            Panel::Agents => "Agents",
            Panel::Pheromones => "Pheromones",
            Panel::Proposals => "Proposals",
            Panel::Thoughts => "Thought stream",
        }
    }
}

/// An agent row: its summary and when it was last probed.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRow {
    /// Name, namespace, genus, phase, health, replicas.
    pub summary: AgentSummary,
    /// When its cognitive probe last ran (live data only).
    pub last_probe: Option<Timestamp>,
}

/// A pheromone with the instant its `intensity` was observed at; the view decays it to `now`.
#[derive(Debug, Clone, PartialEq)]
pub struct PheromoneRow {
    /// The record (intensity at `observed_at`, base half-life, TTL deadline when known).
    pub record: PheromoneRecord,
    /// When `record.summary.intensity` held.
    pub observed_at: Timestamp,
}

impl PheromoneRow {
    /// The intensity at `now`: decayed with the type's effective half-life (DREAM doubled),
    /// zero past the TTL or below the evaporation threshold.
    pub fn intensity_at(&self, now: Timestamp) -> f64 {
        let p = &self.record.summary;
        if self.record.summary.expires_at.is_some_and(|at| at <= now) {
            return 0.0;
        }
        let Ok(base) = HalfLife::from_seconds(p.half_life_seconds) else {
            return 0.0;
        };
        let half_life = decay::effective_half_life(p.pheromone_type, base);
        let value = decay::intensity_at(
            Intensity::clamped(p.intensity),
            half_life,
            self.observed_at,
            now,
        )
        .get();
        if value < decay::EVAPORATION_THRESHOLD {
            0.0
        } else {
            value
        }
    }
}

/// Everything the feed knows about the cluster at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    /// Agents.
    pub agents: Vec<AgentRow>,
    /// Pheromones.
    pub pheromones: Vec<PheromoneRow>,
    /// Proposals (every phase the source has).
    pub proposals: Vec<ProposalRecord>,
    /// Where the data came from (live, or a ghost snapshot with its age).
    pub source: Source,
}

impl Dashboard {
    /// No data yet, as of `at`.
    pub fn empty(at: Timestamp) -> Dashboard {
        Dashboard {
            agents: Vec::new(),
            pheromones: Vec::new(),
            proposals: Vec::new(),
            source: Source::live("none", at),
        }
    }
}

pub use kgents_logos::summary::Thought;

/// The bounded thought stream: the newest [`THOUGHT_CAPACITY`] lines and how many were dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThoughtStream {
    lines: VecDeque<Thought>,
    dropped: u64,
    capacity: usize,
}

impl ThoughtStream {
    /// A stream keeping at most `capacity` lines (at least one).
    pub fn with_capacity(capacity: usize) -> ThoughtStream {
        ThoughtStream {
            lines: VecDeque::with_capacity(capacity.clamp(1, 4_096)),
            dropped: 0,
            capacity: capacity.max(1),
        }
    }

    /// Appends a line, dropping the oldest when full.
    pub fn push(&mut self, thought: Thought) {
        if self.lines.len() >= self.capacity {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back(thought);
    }

    /// The lines, oldest first.
    pub fn lines(&self) -> &VecDeque<Thought> {
        &self.lines
    }

    /// How many lines were dropped to keep the bound.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Per-agent activity: Events and pheromones counted in [`ACTIVITY_BUCKETS`] time buckets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    /// Bucket number (`seconds / ACTIVITY_BUCKET_SECONDS`) of `counts[last]`.
    newest_bucket: i64,
    /// Counts, a ring indexed by bucket number.
    counts: [u32; ACTIVITY_BUCKETS],
}

impl Activity {
    fn bucket(at: Timestamp) -> i64 {
        at.as_second().div_euclid(ACTIVITY_BUCKET_SECONDS)
    }

    /// Counts one happening at `at` (ignored when older than the window).
    pub fn record(&mut self, at: Timestamp) {
        let bucket = Self::bucket(at);
        if bucket > self.newest_bucket {
            let gap = (bucket - self.newest_bucket).min(ACTIVITY_BUCKETS as i64);
            for step in 1..=gap {
                let slot = (self.newest_bucket + step).rem_euclid(ACTIVITY_BUCKETS as i64);
                self.counts[slot as usize] = 0;
            }
            self.newest_bucket = bucket;
        }
        if self.newest_bucket - bucket < ACTIVITY_BUCKETS as i64 {
            let slot = bucket.rem_euclid(ACTIVITY_BUCKETS as i64) as usize;
            self.counts[slot] = self.counts[slot].saturating_add(1);
        }
    }

    /// The counts of the window ending at `now`, oldest first.
    pub fn series(&self, now: Timestamp) -> [u32; ACTIVITY_BUCKETS] {
        let newest = Self::bucket(now);
        let mut out = [0; ACTIVITY_BUCKETS];
        for (i, slot) in out.iter_mut().enumerate() {
            let bucket = newest - (ACTIVITY_BUCKETS as i64 - 1) + i as i64;
            if bucket <= self.newest_bucket && self.newest_bucket - bucket < ACTIVITY_BUCKETS as i64
            {
                *slot = self.counts[bucket.rem_euclid(ACTIVITY_BUCKETS as i64) as usize];
            }
        }
        out
    }
}

/// The connection to the cluster, as the feed reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// Connecting for the first time.
    Connecting,
    /// Watching the live cluster.
    Live,
    /// Showing ghost snapshots (no connection); reconnecting in the background.
    Ghost {
        /// Why the live cluster is not reachable.
        reason: String,
        /// Reconnect attempts so far.
        attempt: u32,
        /// When the next attempt is due.
        retry_at: Option<Timestamp>,
    },
    /// The connection was lost after data came in: the data stays, marked as ghost.
    Lost {
        /// When it was lost.
        since: Timestamp,
        /// Why.
        reason: String,
        /// Reconnect attempts so far.
        attempt: u32,
        /// When the next attempt is due.
        retry_at: Option<Timestamp>,
    },
    /// A fixed data set (demo, measurements): no cluster at all.
    Fixture,
}

/// What the user is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Moving around.
    Normal,
    /// The help screen.
    Help,
    /// Typing a `:` command.
    Command(String),
    /// Typing a `/` filter for the focused panel.
    Filter(String),
    /// The selected proposal's factor breakdown and patch.
    Detail {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Confirming an approval or rejection, with a comment.
    Confirm(Confirmation),
}

/// A decision waiting for its confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// Approve (`true`) or reject.
    pub approve: bool,
    /// The proposal's namespace.
    pub namespace: String,
    /// The proposal.
    pub name: String,
    /// The comment (approve: optional; reject: the reason, required).
    pub comment: String,
}

/// A message in the footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The text.
    pub text: String,
    /// An error (shown in red).
    pub error: bool,
}

/// What the I/O edge must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Leave (restore the terminal).
    Quit,
    /// Record a decision through the Logos as the user.
    Decide {
        /// Approve (`true`) or reject.
        approve: bool,
        /// Namespace.
        namespace: String,
        /// Proposal.
        name: String,
        /// Comment or reason.
        comment: Option<String>,
    },
    /// Watch another scope.
    Rescope(Scope),
    /// Follow an agent's log lines into the thought stream (replacing any other).
    FollowLogs {
        /// Namespace.
        namespace: String,
        /// The agent.
        agent: String,
    },
    /// Stop following logs.
    StopLogs,
}

/// The answer to a [`Effect::Decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionOutcome {
    /// Namespace.
    pub namespace: String,
    /// Proposal.
    pub name: String,
    /// Approve (`true`) or reject.
    pub approve: bool,
    /// Who the API server recorded, or why it refused (nothing changed).
    pub result: Result<String, String>,
}

/// Everything [`update`] reacts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A key press.
    Key(KeyEvent),
    /// The clock moved (the decay tick).
    Tick(Timestamp),
    /// The terminal was resized (nothing to store: the view reads the area).
    Resize,
    /// New data from the feed.
    Data(Box<Dashboard>),
    /// New thought-stream lines from the feed.
    Thoughts(Vec<Thought>),
    /// The connection changed.
    Link(Link),
    /// A decision's answer.
    Decided(DecisionOutcome),
}

/// The dashboard's whole state.
#[derive(Debug, Clone)]
pub struct App {
    /// The focused panel.
    pub focus: Panel,
    /// One panel shown alone (`:agents`, ...), or all four.
    pub zoom: Option<Panel>,
    /// What the user is doing.
    pub mode: Mode,
    /// Started with `--readonly`: no approvals.
    pub readonly: bool,
    /// The namespaces shown.
    pub scope: Scope,
    /// The kubeconfig context (header).
    pub context: Option<String>,
    /// The data.
    pub data: Dashboard,
    /// The connection.
    pub link: Link,
    /// The thought stream.
    pub thoughts: ThoughtStream,
    /// Activity by `namespace/agent`.
    pub activity: BTreeMap<String, Activity>,
    /// The current instant (set by ticks; injected, never read from the wall clock here).
    pub now: Timestamp,
    /// The filter of each panel (Tab order).
    pub filters: [String; 4],
    /// The selected row of each panel (Tab order; for the heatmap: the source column).
    pub selected: [usize; 4],
    /// The footer message.
    pub notice: Option<Notice>,
    /// A decision sent and not answered yet.
    pub in_flight: Option<(String, String)>,
    /// The agent whose log lines are followed into the thought stream (`namespace`, `agent`).
    pub following: Option<(String, String)>,
    /// Whether something changed since the last frame.
    pub dirty: bool,
}

impl App {
    /// A dashboard at `now`, showing `scope`.
    pub fn new(now: Timestamp, scope: Scope, readonly: bool) -> App {
        App {
            focus: Panel::Agents,
            zoom: None,
            mode: Mode::Normal,
            readonly,
            scope,
            context: None,
            data: Dashboard::empty(now),
            link: Link::Connecting,
            thoughts: ThoughtStream::with_capacity(THOUGHT_CAPACITY),
            activity: BTreeMap::new(),
            now,
            filters: Default::default(),
            selected: [0; 4],
            notice: None,
            in_flight: None,
            following: None,
            dirty: true,
        }
    }

    /// Whether the data shown is not the live cluster's (ghost snapshots, or a lost connection).
    pub fn is_ghost(&self) -> bool {
        match self.link {
            Link::Live => !self.data.source.live,
            Link::Fixture => !self.data.source.live,
            Link::Connecting => false,
            Link::Ghost { .. } | Link::Lost { .. } => true,
        }
    }

    /// Age of the data shown, in seconds (0 for live data).
    pub fn data_age_seconds(&self) -> f64 {
        if let Link::Lost { .. } = self.link {
            return (self.now.duration_since(self.data.source.taken_at))
                .as_secs_f64()
                .max(0.0);
        }
        if self.data.source.live {
            0.0
        } else {
            // The age the source reported, plus the time since it was received.
            self.now
                .duration_since(self.data.source.taken_at)
                .as_secs_f64()
                .max(self.data.source.age_seconds)
                .max(0.0)
        }
    }

    /// Why approvals are off, if they are.
    pub fn decisions_refused(&self) -> Option<&'static str> {
        if self.readonly {
            Some("read-only (--readonly): approving and rejecting are off")
        } else if self.is_ghost() || self.link == Link::Fixture {
            Some("[GHOST] data: approving and rejecting need the live cluster")
        } else {
            None
        }
    }

    fn filter(&self, panel: Panel) -> &str {
        &self.filters[panel.index()]
    }

    /// The selected row of `panel`.
    pub fn selected(&self, panel: Panel) -> usize {
        self.selected[panel.index()]
    }

    /// Agents in scope that pass the filter, most active first (then namespace and name).
    pub fn visible_agents(&self) -> Vec<(&AgentRow, [u32; ACTIVITY_BUCKETS])> {
        let filter = self.filter(Panel::Agents).to_lowercase();
        let rows: Vec<_> = self
            .data
            .agents
            .iter()
            .filter(|a| self.scope.contains(&a.summary.namespace))
            .filter(|a| {
                filter.is_empty()
                    || contains_lower(a.summary.name.as_str(), &filter)
                    || contains_lower(&a.summary.namespace, &filter)
                    || contains_lower(&a.summary.phase, &filter)
                    || contains_lower(&a.summary.cognitive_health, &filter)
            })
            .map(|a| {
                let key = activity_key(&a.summary.namespace, a.summary.name.as_str());
                let series = self
                    .activity
                    .get(&key)
                    .map(|act| act.series(self.now))
                    .unwrap_or_default();
                (a, series)
            })
            .collect();
        // The score is computed once per row (a comparison sort would compute it ~log n times).
        let score = |(a, series): &(&AgentRow, [u32; ACTIVITY_BUCKETS])| {
            let probe = a
                .last_probe
                .is_some_and(|t| self.now.duration_since(t).as_secs() < PROBE_RECENT_SECONDS);
            series.iter().map(|c| u64::from(*c)).sum::<u64>() + u64::from(probe)
        };
        let mut scored: Vec<_> = rows.into_iter().map(|row| (score(&row), row)).collect();
        scored.sort_by(|(sa, a), (sb, b)| {
            sb.cmp(sa).then_with(|| {
                (&a.0.summary.namespace, a.0.summary.name.as_str())
                    .cmp(&(&b.0.summary.namespace, b.0.summary.name.as_str()))
            })
        });
        let rows: Vec<_> = scored.into_iter().map(|(_, row)| row).collect();
        rows
    }

    /// Proposals in scope that pass the filter: pending first, then newest first.
    pub fn visible_proposals(&self) -> Vec<&ProposalRecord> {
        let filter = self.filter(Panel::Proposals).to_lowercase();
        let mut rows: Vec<_> = self
            .data
            .proposals
            .iter()
            .filter(|p| self.scope.contains(&p.summary.namespace))
            .filter(|p| {
                filter.is_empty()
                    || contains_lower(&p.summary.name, &filter)
                    || contains_lower(&p.summary.phase, &filter)
                    || contains_lower(&p.summary.change_type, &filter)
                    || contains_lower(&p.summary.proposer, &filter)
                    || contains_lower(&p.summary.risk_level, &filter)
            })
            .collect();
        rows.sort_by(|a, b| {
            b.is_pending()
                .cmp(&a.is_pending())
                .then_with(|| b.summary.created_at.cmp(&a.summary.created_at))
                .then_with(|| a.summary.name.cmp(&b.summary.name))
        });
        rows
    }

    /// Pheromones in scope that pass the filter (type, source or target).
    pub fn visible_pheromones(&self) -> impl Iterator<Item = &PheromoneRow> {
        let filter = self.filter(Panel::Pheromones).to_lowercase();
        self.data
            .pheromones
            .iter()
            .filter(|p| self.scope.contains(&p.record.summary.namespace))
            .filter(move |p| {
                let s = &p.record.summary;
                filter.is_empty()
                    || contains_lower(&s.source, &filter)
                    || contains_lower(s.pheromone_type.as_str(), &filter)
                    || s.target
                        .as_deref()
                        .is_some_and(|t| contains_lower(t, &filter))
            })
    }

    /// Thoughts in scope that pass the filter, oldest first.
    pub fn visible_thoughts(&self) -> impl DoubleEndedIterator<Item = &Thought> {
        let filter = self.filter(Panel::Thoughts).to_lowercase();
        self.thoughts
            .lines()
            .iter()
            // A line of no namespace is about the dashboard itself (Events not visible, ...).
            .filter(|t| t.namespace.is_empty() || self.scope.contains(&t.namespace))
            .filter(move |t| {
                filter.is_empty()
                    || contains_lower(&t.text, &filter)
                    || contains_lower(&t.object, &filter)
                    || contains_lower(&t.reason, &filter)
            })
    }

    /// The agent under the cursor (most active first, as listed).
    pub fn selected_agent(&self) -> Option<&AgentRow> {
        let rows = self.visible_agents();
        rows.get(
            self.selected(Panel::Agents)
                .min(rows.len().saturating_sub(1)),
        )
        .map(|(row, _)| *row)
    }

    /// The proposal under the cursor.
    pub fn selected_proposal(&self) -> Option<&ProposalRecord> {
        let rows = self.visible_proposals();
        rows.get(
            self.selected(Panel::Proposals)
                .min(rows.len().saturating_sub(1)),
        )
        .copied()
    }

    /// A proposal by namespace and name.
    pub fn proposal(&self, namespace: &str, name: &str) -> Option<&ProposalRecord> {
        self.data
            .proposals
            .iter()
            .find(|p| p.summary.namespace == namespace && p.summary.name == name)
    }

    fn rows_of(&self, panel: Panel) -> usize {
        match panel {
            Panel::Agents => self.visible_agents().len(),
            Panel::Proposals => self.visible_proposals().len(),
            Panel::Thoughts => self.visible_thoughts().count(),
            Panel::Pheromones => {
                let mut sources: Vec<&str> = self
                    .visible_pheromones()
                    .map(|p| p.record.summary.source.as_str())
                    .collect();
                sources.sort_unstable();
                sources.dedup();
                sources.len()
            }
        }
    }

    fn notice(&mut self, text: impl Into<String>, error: bool) {
        self.notice = Some(Notice {
            text: text.into(),
            error,
        });
    }
}

/// The key of an agent's activity.
pub fn activity_key(namespace: &str, agent: &str) -> String {
    format!("{namespace}/{agent}")
}

fn contains_lower(haystack: &str, needle_lower: &str) -> bool {
    haystack.to_lowercase().contains(needle_lower)
}

/// The `:` commands, for the help screen and errors.
pub const COMMANDS: &str =
    ":agents  :pheromones  :proposals  :thoughts  :all  :ns NAME  :ns all  :q";

/// Applies one event; returns what the I/O edge must do.
pub fn update(app: &mut App, event: Event) -> Vec<Effect> {
    match event {
        Event::Tick(now) => {
            app.now = now;
            app.dirty = true;
            Vec::new()
        }
        Event::Resize => {
            app.dirty = true;
            Vec::new()
        }
        Event::Data(data) => {
            // Pheromones count as their source's activity (once each, when first seen).
            let known: std::collections::HashSet<&str> = app
                .data
                .pheromones
                .iter()
                .map(|p| p.record.summary.name.as_str())
                .collect();
            let mut fresh = Vec::new();
            for p in &data.pheromones {
                let s = &p.record.summary;
                if !known.contains(s.name.as_str()) {
                    fresh.push((activity_key(&s.namespace, &s.source), s.emitted_at));
                }
            }
            for (key, at) in fresh {
                app.activity.entry(key).or_default().record(at);
            }
            app.data = *data;
            app.dirty = true;
            Vec::new()
        }
        Event::Thoughts(thoughts) => {
            for thought in thoughts {
                if let Some(agent) = &thought.agent {
                    app.activity
                        .entry(activity_key(&thought.namespace, agent))
                        .or_default()
                        .record(thought.at);
                }
                app.thoughts.push(thought);
            }
            app.dirty = true;
            Vec::new()
        }
        Event::Link(link) => {
            if app.link != link {
                app.link = link;
                app.dirty = true;
            }
            Vec::new()
        }
        Event::Decided(outcome) => {
            app.in_flight = None;
            let verb = if outcome.approve {
                "approved"
            } else {
                "rejected"
            };
            match outcome.result {
                Ok(by) => app.notice(
                    format!("{verb} {}/{} as {by}", outcome.namespace, outcome.name),
                    false,
                ),
                Err(reason) => app.notice(format!("not {verb}: {reason} (nothing changed)"), true),
            }
            app.dirty = true;
            Vec::new()
        }
        Event::Key(key) => {
            if key.kind == KeyEventKind::Release {
                return Vec::new();
            }
            app.dirty = true;
            if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
                return vec![Effect::Quit];
            }
            let mode = std::mem::replace(&mut app.mode, Mode::Normal);
            match mode {
                Mode::Normal => normal_key(app, key),
                Mode::Help => {
                    if !matches!(
                        key.code,
                        KeyCode::Esc | KeyCode::Char('?' | 'q') | KeyCode::Enter
                    ) {
                        app.mode = Mode::Help;
                    }
                    Vec::new()
                }
                Mode::Command(buffer) => command_key(app, buffer, key),
                Mode::Filter(buffer) => filter_key(app, buffer, key),
                Mode::Detail { namespace, name } => detail_key(app, namespace, name, key),
                Mode::Confirm(confirmation) => confirm_key(app, confirmation, key),
            }
        }
    }
}

fn move_selection(app: &mut App, delta: isize) {
    let panel = app.focus;
    // The thought stream counts its scroll up from the newest line: "down" is newer.
    let delta = if panel == Panel::Thoughts {
        delta.saturating_neg()
    } else {
        delta
    };
    let rows = app.rows_of(panel);
    let slot = &mut app.selected[panel.index()];
    let current = (*slot).min(rows.saturating_sub(1));
    *slot = if delta < 0 {
        current.saturating_sub(delta.unsigned_abs())
    } else {
        (current + delta.unsigned_abs()).min(rows.saturating_sub(1))
    };
}

fn normal_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    match key.code {
        KeyCode::Char('q') => return vec![Effect::Quit],
        KeyCode::Char('?') => app.mode = Mode::Help,
        KeyCode::Char(':') => app.mode = Mode::Command(String::new()),
        KeyCode::Char('/') => app.mode = Mode::Filter(app.filter(app.focus).to_owned()),
        KeyCode::Tab => {
            app.focus = Panel::ALL[(app.focus.index() + 1) % 4];
            if app.zoom.is_some() {
                app.zoom = Some(app.focus);
            }
        }
        KeyCode::BackTab => {
            app.focus = Panel::ALL[(app.focus.index() + 3) % 4];
            if app.zoom.is_some() {
                app.zoom = Some(app.focus);
            }
        }
        KeyCode::Char('j') | KeyCode::Down => move_selection(app, 1),
        KeyCode::Char('k') | KeyCode::Up => move_selection(app, -1),
        KeyCode::Char('l') | KeyCode::Right if app.focus == Panel::Pheromones => {
            move_selection(app, 1)
        }
        KeyCode::Char('h') | KeyCode::Left if app.focus == Panel::Pheromones => {
            move_selection(app, -1)
        }
        KeyCode::PageDown => move_selection(app, 10),
        KeyCode::PageUp => move_selection(app, -10),
        KeyCode::Char('g') | KeyCode::Home => app.selected[app.focus.index()] = 0,
        KeyCode::Char('G') | KeyCode::End => move_selection(app, isize::MAX),
        KeyCode::Esc => {
            if app.notice.is_some() {
                app.notice = None;
            } else if !app.filter(app.focus).is_empty() {
                app.filters[app.focus.index()].clear();
                app.selected[app.focus.index()] = 0;
            } else {
                app.zoom = None;
            }
        }
        KeyCode::Enter if app.focus == Panel::Proposals => {
            if let Some(p) = app.selected_proposal() {
                app.mode = Mode::Detail {
                    namespace: p.summary.namespace.clone(),
                    name: p.summary.name.clone(),
                };
            }
        }
        KeyCode::Char('l') if app.focus == Panel::Agents => return toggle_logs(app),
        KeyCode::Char(c @ ('a' | 'r')) if app.focus == Panel::Proposals => {
            if let Some((namespace, name)) = app
                .selected_proposal()
                .map(|p| (p.summary.namespace.clone(), p.summary.name.clone()))
            {
                begin_decision(app, c == 'a', namespace, name);
            }
        }
        _ => app.dirty = false,
    }
    Vec::new()
}

/// `l` on the Agents panel: follow the selected agent's logs, or stop when it is followed.
fn toggle_logs(app: &mut App) -> Vec<Effect> {
    let Some((namespace, agent)) = app
        .selected_agent()
        .map(|a| (a.summary.namespace.clone(), a.summary.name.to_string()))
    else {
        app.notice("no agent selected", true);
        return Vec::new();
    };
    if app.following.as_ref() == Some(&(namespace.clone(), agent.clone())) {
        app.following = None;
        app.notice(
            format!("stopped following the logs of {namespace}/{agent}"),
            false,
        );
        return vec![Effect::StopLogs];
    }
    if app.is_ghost() || app.link == Link::Fixture {
        app.notice("[GHOST] data: following logs needs the live cluster", true);
        return Vec::new();
    }
    app.notice(
        format!("following the logs of {namespace}/{agent} in the thought stream (l: stop)"),
        false,
    );
    app.following = Some((namespace.clone(), agent.clone()));
    vec![Effect::FollowLogs { namespace, agent }]
}

fn begin_decision(app: &mut App, approve: bool, namespace: String, name: String) {
    if let Some(why) = app.decisions_refused() {
        app.notice(why, true);
        return;
    }
    if app.in_flight.is_some() {
        app.notice("a decision is still being sent; wait for its answer", true);
        return;
    }
    if let Some(p) = app.proposal(&namespace, &name)
        && !p.is_pending()
    {
        let phase = p.summary.phase.clone();
        app.notice(
            format!("{namespace}/{name} is {phase}: nothing to decide"),
            true,
        );
        return;
    }
    app.mode = Mode::Confirm(Confirmation {
        approve,
        namespace,
        name,
        comment: String::new(),
    });
}

fn command_key(app: &mut App, mut buffer: String, key: KeyEvent) -> Vec<Effect> {
    match key.code {
        KeyCode::Esc => {}
        KeyCode::Enter => return run_command(app, buffer.trim()),
        KeyCode::Backspace => {
            if buffer.pop().is_some() {
                app.mode = Mode::Command(buffer);
            }
        }
        KeyCode::Char(c) => {
            if buffer.chars().count() < 200 {
                buffer.push(c);
            }
            app.mode = Mode::Command(buffer);
        }
        _ => app.mode = Mode::Command(buffer),
    }
    Vec::new()
}

fn run_command(app: &mut App, command: &str) -> Vec<Effect> {
    let mut words = command.split_whitespace();
    let head = words.next().unwrap_or("");
    let rest: Vec<&str> = words.collect();
    let zoom = |app: &mut App, panel: Panel| {
        app.focus = panel;
        app.zoom = Some(panel);
    };
    match (head, rest.as_slice()) {
        ("", []) => {}
        ("agents" | "agent" | "ag", []) => zoom(app, Panel::Agents),
        ("pheromones" | "pheromone" | "ph", []) => zoom(app, Panel::Pheromones),
        ("proposals" | "proposal" | "prop", []) => zoom(app, Panel::Proposals),
        ("thoughts" | "events" | "ev", []) => zoom(app, Panel::Thoughts),
        ("all", []) => app.zoom = None,
        ("q" | "quit" | "q!", []) => return vec![Effect::Quit],
        ("ns" | "namespace", [name]) => {
            let scope = if matches!(*name, "all" | "-A" | "*") {
                Scope::All
            } else if kgents_logos::summary::check_name("Namespace", name).is_ok() {
                Scope::Namespace((*name).to_owned())
            } else {
                app.notice(
                    format!("{name:?} is not a namespace name; try :ns NAME or :ns all"),
                    true,
                );
                return Vec::new();
            };
            app.selected = [0; 4];
            app.notice(
                format!(
                    "namespace: {}",
                    scope.namespace().unwrap_or("all namespaces")
                ),
                false,
            );
            app.scope = scope.clone();
            return vec![Effect::Rescope(scope)];
        }
        ("ns" | "namespace", _) => app.notice("usage: :ns NAME, or :ns all", true),
        _ => app.notice(
            format!("unknown command :{command}; the commands are {COMMANDS}"),
            true,
        ),
    }
    Vec::new()
}

fn filter_key(app: &mut App, mut buffer: String, key: KeyEvent) -> Vec<Effect> {
    let panel = app.focus.index();
    match key.code {
        KeyCode::Esc => {
            app.filters[panel].clear();
        }
        KeyCode::Enter => {}
        KeyCode::Backspace => {
            buffer.pop();
            app.filters[panel].clone_from(&buffer);
            app.mode = Mode::Filter(buffer);
        }
        KeyCode::Char(c) => {
            if buffer.chars().count() < 100 {
                buffer.push(c);
            }
            app.filters[panel].clone_from(&buffer);
            app.mode = Mode::Filter(buffer);
        }
        _ => app.mode = Mode::Filter(buffer),
    }
    app.selected[panel] = 0;
    Vec::new()
}

fn detail_key(app: &mut App, namespace: String, name: String, key: KeyEvent) -> Vec<Effect> {
    match key.code {
        KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') => {}
        KeyCode::Char(c @ ('a' | 'r')) => {
            app.mode = Mode::Detail {
                namespace: namespace.clone(),
                name: name.clone(),
            };
            begin_decision(app, c == 'a', namespace, name);
        }
        _ => app.mode = Mode::Detail { namespace, name },
    }
    Vec::new()
}

fn confirm_key(app: &mut App, mut confirmation: Confirmation, key: KeyEvent) -> Vec<Effect> {
    match key.code {
        KeyCode::Esc => {
            app.notice("cancelled: nothing was sent", false);
        }
        KeyCode::Enter => {
            let comment = confirmation.comment.trim().to_owned();
            if !confirmation.approve && comment.is_empty() {
                app.notice("a rejection needs a reason: type it, then Enter", true);
                app.mode = Mode::Confirm(confirmation);
                return Vec::new();
            }
            app.in_flight = Some((confirmation.namespace.clone(), confirmation.name.clone()));
            app.notice(
                format!(
                    "{} {}/{}…",
                    if confirmation.approve {
                        "approving"
                    } else {
                        "rejecting"
                    },
                    confirmation.namespace,
                    confirmation.name
                ),
                false,
            );
            return vec![Effect::Decide {
                approve: confirmation.approve,
                namespace: confirmation.namespace,
                name: confirmation.name,
                comment: (!comment.is_empty()).then_some(comment),
            }];
        }
        KeyCode::Backspace => {
            confirmation.comment.pop();
            app.mode = Mode::Confirm(confirmation);
        }
        KeyCode::Char(c) => {
            if confirmation.comment.chars().count() < 500 {
                confirmation.comment.push(c);
            }
            app.mode = Mode::Confirm(confirmation);
        }
        _ => app.mode = Mode::Confirm(confirmation),
    }
    Vec::new()
}
