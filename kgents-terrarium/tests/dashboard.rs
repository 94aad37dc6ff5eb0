//! The dashboard without a terminal: key sequences through the reducer, and every panel and
//! the whole screen rendered into ratatui's `TestBackend` and compared with the committed insta
//! snapshots (`tests/snapshots/`), at 80×24 and 200×50, live and ghost, with 0, 1 and 1,000
//! agents. The clock is fixed (`fixture::epoch`): no wall time reaches a snapshot.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use jiff::SignedDuration;
use kgents_logos::{Scope, Source};
use kgents_terrarium::fixture;
use kgents_terrarium::state::{
    App, DecisionOutcome, Effect, Event, Link, Mode, Panel, THOUGHT_CAPACITY, update,
};
use kgents_terrarium::view::{self, Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;

const COLOR: Theme = Theme { color: true };
const MONO: Theme = Theme { color: false };

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn keys(app: &mut App, text: &str) -> Vec<Effect> {
    let mut effects = Vec::new();
    for c in text.chars() {
        effects.extend(update(app, key(KeyCode::Char(c))));
    }
    effects
}

/// A dashboard of `agents` agents (10 pheromones each, a proposal per agent up to 50, 3
/// thoughts per agent), live or from a 4-minute-old ghost snapshot.
fn app(agents: usize, ghost: bool) -> App {
    let now = fixture::epoch();
    let mut app = App::new(now, Scope::All, false);
    app.context = Some("testbed".into());
    let source = if ghost {
        fixture::ghost_source(now, 240)
    } else {
        Source::live("kubernetes", now)
    };
    let link = if ghost {
        Link::Ghost {
            reason: "connection refused (127.0.0.1:6443)".into(),
            attempt: 3,
            retry_at: Some(now + SignedDuration::from_secs(4)),
        }
    } else {
        Link::Live
    };
    update(&mut app, Event::Link(link));
    let thoughts = (0..agents * 3)
        .map(|i| fixture::thought(i, agents, now))
        .collect();
    update(&mut app, Event::Thoughts(thoughts));
    update(
        &mut app,
        Event::Data(Box::new(fixture::dashboard(
            agents,
            agents * 10,
            match agents {
                0 => 0,
                1 => 5,
                n => n.min(50),
            },
            now,
            source,
        ))),
    );
    update(&mut app, Event::Tick(now));
    app
}

fn screen(app: &App, theme: Theme, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal
        .draw(|frame| view::draw(app, theme, frame))
        .expect("drawn");
    terminal
}

#[test]
fn snapshots_of_every_panel_and_the_whole_screen() {
    let panels = [
        (None, "screen"),
        (Some(Panel::Agents), "agents"),
        (Some(Panel::Pheromones), "pheromones"),
        (Some(Panel::Proposals), "proposals"),
        (Some(Panel::Thoughts), "thoughts"),
    ];
    for agents in [0, 1, 1_000] {
        for ghost in [false, true] {
            let base = app(agents, ghost);
            for (panel, panel_name) in panels {
                let mut app = base.clone();
                if let Some(panel) = panel {
                    app.focus = panel;
                    app.zoom = Some(panel);
                }
                for (width, height) in [(80, 24), (200, 50)] {
                    let name = format!(
                        "{panel_name}_{}_{agents}_agents_{width}x{height}",
                        if ghost { "ghost" } else { "live" }
                    );
                    insta::assert_snapshot!(name, screen(&app, COLOR, width, height).backend());
                }
            }
        }
    }
}

#[test]
fn snapshots_of_the_character_only_heatmap_and_the_overlays() {
    for agents in [1, 1_000] {
        let mut app = app(agents, false);
        app.focus = Panel::Pheromones;
        app.zoom = Some(Panel::Pheromones);
        insta::assert_snapshot!(
            format!("pheromones_mono_{agents}_agents_80x24"),
            screen(&app, MONO, 80, 24).backend()
        );
    }
    let mut app = app(1, false);
    update(&mut app, key(KeyCode::Char('?')));
    insta::assert_snapshot!("help_80x24", screen(&app, COLOR, 80, 24).backend());
    update(&mut app, key(KeyCode::Esc));
    update(&mut app, key(KeyCode::Tab));
    update(&mut app, key(KeyCode::Tab));
    update(&mut app, key(KeyCode::Enter));
    assert!(matches!(app.mode, Mode::Detail { .. }), "{:?}", app.mode);
    insta::assert_snapshot!("detail_80x24", screen(&app, COLOR, 80, 24).backend());
    update(&mut app, key(KeyCode::Char('a')));
    keys(&mut app, "looks right");
    insta::assert_snapshot!("confirm_80x24", screen(&app, COLOR, 80, 24).backend());
}

#[test]
fn the_heatmap_paints_half_blocks_in_colour_and_shades_without() {
    let mut app = app(1, false);
    app.focus = Panel::Pheromones;
    app.zoom = Some(Panel::Pheromones);
    let terminal = screen(&app, COLOR, 80, 24);
    let buffer = terminal.backend().buffer();
    let painted = buffer
        .content()
        .iter()
        .filter(|c| c.symbol() == "▀" && matches!(c.fg, Color::Rgb(..)))
        .count();
    assert!(painted > 0, "coloured half-blocks in the heatmap");
    let mono = screen(&app, MONO, 80, 24);
    let buffer = mono.backend().buffer();
    assert!(
        buffer
            .content()
            .iter()
            .all(|c| c.fg == Color::Reset && c.bg == Color::Reset),
        "no colour at all under NO_COLOR"
    );
    assert!(
        buffer
            .content()
            .iter()
            .any(|c| ["░", "▒", "▓", "█"].contains(&c.symbol())),
        "shade glyphs carry the heat"
    );
}

#[test]
fn intensities_decay_as_the_clock_ticks() {
    let mut app = app(1, false);
    app.focus = Panel::Pheromones;
    app.zoom = Some(Panel::Pheromones);
    let before = screen(&app, MONO, 80, 24).backend().to_string();
    update(
        &mut app,
        Event::Tick(fixture::epoch() + SignedDuration::from_hours(3)),
    );
    let after = screen(&app, MONO, 80, 24).backend().to_string();
    assert_ne!(before, after);
    assert!(after.contains("no live signals"), "{after}");
}

#[test]
fn approving_needs_a_confirmation_and_sends_the_comment() {
    let mut app = app(1, false);
    update(&mut app, key(KeyCode::Tab));
    update(&mut app, key(KeyCode::Tab));
    assert_eq!(app.focus, Panel::Proposals);
    let target = app.selected_proposal().expect("a proposal").summary.clone();
    assert!(
        update(&mut app, key(KeyCode::Char('a'))).is_empty(),
        "nothing sent yet"
    );
    assert!(matches!(app.mode, Mode::Confirm(_)));
    assert!(keys(&mut app, "ok by me").is_empty());
    let effects = update(&mut app, key(KeyCode::Enter));
    assert_eq!(
        effects,
        [Effect::Decide {
            approve: true,
            namespace: target.namespace.clone(),
            name: target.name.clone(),
            comment: Some("ok by me".into()),
        }]
    );
    assert_eq!(app.mode, Mode::Normal);
    // While it is in flight, a second decision waits.
    update(&mut app, key(KeyCode::Char('a')));
    assert_eq!(app.mode, Mode::Normal);
    // The API server's denial is shown; nothing changed.
    update(
        &mut app,
        Event::Decided(DecisionOutcome {
            namespace: target.namespace.clone(),
            name: target.name.clone(),
            approve: true,
            result: Err("denied by the API server (403): approving your own proposal".into()),
        }),
    );
    let notice = app.notice.clone().expect("a notice");
    assert!(notice.error && notice.text.contains("403") && notice.text.contains("nothing changed"));
    let text = screen(&app, COLOR, 120, 30).backend().to_string();
    assert!(text.contains("denied by the API server (403)"), "{text}");
    assert!(app.in_flight.is_none());

    // Esc cancels: nothing is sent.
    update(&mut app, key(KeyCode::Char('r')));
    keys(&mut app, "no");
    assert!(update(&mut app, key(KeyCode::Esc)).is_empty());
    assert_eq!(app.mode, Mode::Normal);
    // A rejection needs a reason.
    update(&mut app, key(KeyCode::Char('r')));
    assert!(update(&mut app, key(KeyCode::Enter)).is_empty());
    assert!(matches!(app.mode, Mode::Confirm(_)));
    keys(&mut app, "too risky");
    let effects = update(&mut app, key(KeyCode::Enter));
    assert!(
        matches!(&effects[..], [Effect::Decide { approve: false, comment: Some(c), .. }] if c == "too risky")
    );
}

#[test]
fn read_only_and_ghost_dashboards_refuse_decisions() {
    for (readonly, ghost) in [(true, false), (false, true)] {
        let mut app = app(1, ghost);
        app.readonly = readonly;
        app.focus = Panel::Proposals;
        for k in ['a', 'r'] {
            assert!(update(&mut app, key(KeyCode::Char(k))).is_empty());
            assert_eq!(app.mode, Mode::Normal);
            let notice = app.notice.clone().expect("refusal shown");
            assert!(notice.error, "{notice:?}");
            assert!(
                notice
                    .text
                    .contains(if readonly { "read-only" } else { "[GHOST]" }),
                "{notice:?}"
            );
        }
        // From the detail view too.
        update(&mut app, key(KeyCode::Esc));
        update(&mut app, key(KeyCode::Enter));
        update(&mut app, key(KeyCode::Char('a')));
        assert!(matches!(app.mode, Mode::Detail { .. }));
    }
}

#[test]
fn l_follows_the_selected_agents_logs_and_stops_again_read_only_too() {
    let mut live = app(3, false);
    live.readonly = true;
    live.focus = Panel::Agents;
    update(&mut live, key(KeyCode::Char('j')));
    let (namespace, agent) = {
        let selected = live.selected_agent().expect("an agent is selected");
        (
            selected.summary.namespace.clone(),
            selected.summary.name.to_string(),
        )
    };
    let follow = keys(&mut live, "l");
    assert_eq!(
        follow,
        [Effect::FollowLogs {
            namespace: namespace.clone(),
            agent: agent.clone()
        }]
    );
    assert_eq!(live.following, Some((namespace.clone(), agent.clone())));
    let title = format!("logs of {namespace}/{agent}");
    let shown = screen(&live, COLOR, 120, 40).backend().to_string();
    assert!(shown.contains(&title), "{shown}");
    assert_eq!(keys(&mut live, "l"), [Effect::StopLogs]);
    assert_eq!(live.following, None);
    // Only on the Agents panel: elsewhere `l` moves or does nothing.
    live.focus = Panel::Proposals;
    assert!(keys(&mut live, "l").is_empty());

    let mut ghost = app(3, true);
    ghost.focus = Panel::Agents;
    assert!(keys(&mut ghost, "l").is_empty());
    assert!(
        ghost
            .notice
            .as_ref()
            .is_some_and(|n| n.error && n.text.contains("[GHOST]"))
    );
    assert_eq!(ghost.following, None);
}

#[test]
fn filters_commands_and_movement() {
    let mut app = app(1_000, false);
    // `/` filters the focused panel as you type; Esc clears it.
    update(&mut app, key(KeyCode::Char('/')));
    keys(&mut app, "b-gent-3");
    assert!(matches!(app.mode, Mode::Filter(_)));
    let rows = app.visible_agents();
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|(a, _)| a.summary.name.as_str().contains("b-gent-3"))
    );
    update(&mut app, key(KeyCode::Enter));
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(app.filters[0], "b-gent-3");
    update(&mut app, key(KeyCode::Esc));
    assert!(app.filters[0].is_empty());
    assert_eq!(app.visible_agents().len(), 1_000);

    // j/k stay inside the list.
    update(&mut app, key(KeyCode::Char('k')));
    assert_eq!(app.selected(Panel::Agents), 0);
    keys(&mut app, "jjj");
    assert_eq!(app.selected(Panel::Agents), 3);
    update(&mut app, key(KeyCode::Char('G')));
    assert_eq!(app.selected(Panel::Agents), 999);

    // `:` commands.
    update(&mut app, key(KeyCode::Char(':')));
    keys(&mut app, "proposals");
    update(&mut app, key(KeyCode::Enter));
    assert_eq!(
        (app.focus, app.zoom),
        (Panel::Proposals, Some(Panel::Proposals))
    );
    update(&mut app, key(KeyCode::Char(':')));
    keys(&mut app, "ns lab");
    let effects = update(&mut app, key(KeyCode::Enter));
    assert_eq!(effects, [Effect::Rescope(Scope::Namespace("lab".into()))]);
    assert!(
        app.visible_agents()
            .iter()
            .all(|(a, _)| a.summary.namespace == "lab")
    );
    update(&mut app, key(KeyCode::Char(':')));
    keys(&mut app, "ns Not_A_Name");
    assert!(update(&mut app, key(KeyCode::Enter)).is_empty());
    assert!(app.notice.as_ref().is_some_and(|n| n.error));
    update(&mut app, key(KeyCode::Char(':')));
    keys(&mut app, "bogus");
    update(&mut app, key(KeyCode::Enter));
    assert!(
        app.notice
            .as_ref()
            .is_some_and(|n| n.text.contains(":agents"))
    );
    update(&mut app, key(KeyCode::Esc));
    update(&mut app, key(KeyCode::Esc));
    assert_eq!(app.zoom, None);
    // Tab cycles; `?` opens help and Esc closes it; q quits.
    update(&mut app, key(KeyCode::Tab));
    assert_eq!(app.focus, Panel::Thoughts);
    update(&mut app, key(KeyCode::Char('?')));
    assert_eq!(app.mode, Mode::Help);
    update(&mut app, key(KeyCode::Esc));
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(update(&mut app, key(KeyCode::Char('q'))), [Effect::Quit]);
    assert_eq!(
        update(
            &mut app,
            Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL))
        ),
        [Effect::Quit]
    );
}

#[test]
fn tiny_terminals_say_so_and_never_panic() {
    let small_app = app(1, true);
    let app = app(1_000, true);
    let small = screen(&app, COLOR, 10, 5).backend().to_string();
    assert!(small.contains("terminal"), "{small}");
    let wide = screen(&app, COLOR, 70, 12).backend().to_string();
    assert!(wide.contains("terminal too small"), "{wide}");
    // Every size up to the minimum and past it on a small data set, and the edges on the big
    // one (a full debug-build frame of 1,000 agents is slow enough to sample).
    for width in 0..=90 {
        for height in 0..=30 {
            let mut buffer = Buffer::empty(Rect::new(0, 0, width, height));
            view::render(&small_app, COLOR, buffer.area, &mut buffer);
            view::render(&small_app, MONO, buffer.area, &mut buffer);
        }
    }
    for width in [0, 1, 2, 10, 59, 60, 61, 80, 200] {
        for height in [0, 1, 2, 5, 14, 15, 16, 24, 50] {
            let mut buffer = Buffer::empty(Rect::new(0, 0, width, height));
            view::render(&app, COLOR, buffer.area, &mut buffer);
            view::render(&app, MONO, buffer.area, &mut buffer);
        }
    }
}

#[test]
fn a_flood_of_events_keeps_the_stream_bounded_and_counts_drops() {
    let mut app = app(1, false);
    let now = fixture::epoch();
    let before = app.thoughts.lines().len();
    // 10,000 Events in one second, as the feed batches them.
    for batch in 0..40 {
        let thoughts = (0..250)
            .map(|i| fixture::thought(batch * 250 + i, 1, now))
            .collect();
        update(&mut app, Event::Thoughts(thoughts));
    }
    assert_eq!(app.thoughts.lines().len(), THOUGHT_CAPACITY);
    assert_eq!(
        app.thoughts.dropped(),
        (before + 10_000 - THOUGHT_CAPACITY) as u64
    );
    let text = screen(&app, COLOR, 120, 30).backend().to_string();
    assert!(
        text.contains(&format!("{} dropped", app.thoughts.dropped())),
        "{text}"
    );
    // Input still works right after.
    assert_eq!(update(&mut app, key(KeyCode::Char('q'))), [Effect::Quit]);
}

/// With no cluster at all, the ghost snapshots are shown with their age, read-only, and a
/// decision sent anyway is answered with why not.
#[tokio::test]
async fn the_ghost_feed_shows_the_snapshots_read_only() {
    use std::sync::Arc;

    use kgents_core::clock::ManualClock;
    use kgents_ghost::snapshot::{ActivePheromones, AgentsIndex, ProposalList};
    use kgents_ghost::{GhostStore, InMemoryGhostStore, Payload, Snapshot};
    use kgents_terrarium::source::{Command, Feed, GhostFeed};

    let taken = fixture::epoch();
    let data = fixture::dashboard(3, 12, 4, taken, Source::live("kubernetes", taken));
    let store = Arc::new(InMemoryGhostStore::new());
    // What a live feed writes through is what the ghost feed reads back.
    let written = kgents_terrarium::source::ghost_snapshots(&data, taken);
    let agents: Vec<_> = data.agents.iter().map(|a| a.summary.clone()).collect();
    // Strongest first, as the cache keeps them.
    let mut pheromones: Vec<_> = data
        .pheromones
        .iter()
        .map(|p| {
            let mut s = p.record.summary.clone();
            s.intensity = p.intensity_at(taken);
            s
        })
        .collect();
    pheromones.sort_by(|a, b| b.intensity.total_cmp(&a.intensity));
    let pending: Vec<_> = data
        .proposals
        .iter()
        .filter(|p| p.is_pending())
        .map(|p| p.summary.clone())
        .collect();
    let expected = [
        Payload::StatusDigest(kgents_ghost::digest::StatusDigest::build(
            &agents,
            &pheromones,
            &pending,
            taken,
        )),
        Payload::AgentsIndex(AgentsIndex { agents }),
        Payload::ActivePheromones(ActivePheromones { pheromones }),
        Payload::PendingProposals(ProposalList { proposals: pending }),
    ];
    let mut written = written;
    written.rotate_right(1);
    for (snapshot, payload) in written.iter().zip(&expected) {
        assert_eq!(snapshot.taken_at, taken);
        assert_eq!(&snapshot.payload, payload);
        store.write(snapshot).expect("stored");
    }
    assert_eq!(written.len(), expected.len());
    // 45 s old: past the pheromones' freshness threshold (30 s), served as stale.
    let now = taken + SignedDuration::from_secs(45);
    let feed = GhostFeed {
        store,
        clock: Arc::new(ManualClock::new(now)),
        scope: Scope::All,
        reason: "no kubeconfig (KUBECONFIG unset, ~/.kube/config missing)".into(),
    };
    let (events, mut fed) = tokio::sync::mpsc::channel(16);
    let (commands, requests) = tokio::sync::mpsc::channel(4);
    let task = tokio::spawn(Box::new(feed).run(events, requests));
    let mut app = App::new(now, Scope::All, false);
    while !matches!(app.link, Link::Ghost { .. }) {
        let event = fed.recv().await.expect("the feed sends");
        update(&mut app, event);
    }
    assert!(app.is_ghost());
    assert_eq!(app.data.agents.len(), 3);
    assert_eq!(app.data.pheromones.len(), 12);
    assert!(!app.data.proposals.is_empty());
    assert!(app.data.proposals.iter().all(|p| p.is_pending()));
    assert!(
        (app.data_age_seconds() - 45.0).abs() < 1.0,
        "{}",
        app.data_age_seconds()
    );
    let text = screen(&app, COLOR, 120, 30).backend().to_string();
    assert!(text.contains("[GHOST] data from 45s ago (stale)"), "{text}");
    assert!(text.contains("no kubeconfig"), "{text}");
    // Refused in the dashboard, and by the feed if sent all the same.
    app.focus = Panel::Proposals;
    assert!(update(&mut app, key(KeyCode::Char('a'))).is_empty());
    commands
        .send(Command::Decide {
            approve: true,
            namespace: "team".into(),
            name: "x".into(),
            comment: None,
        })
        .await
        .expect("sent");
    loop {
        match fed.recv().await.expect("the feed answers") {
            Event::Decided(outcome) => {
                assert!(outcome.result.is_err_and(|e| e.contains("no cluster")));
                break;
            }
            other => {
                update(&mut app, other);
            }
        }
    }
    drop(commands);
    task.await.expect("the feed ends when the dashboard goes");

    // 90 s old: the pheromones are refused (past twice their 30 s threshold) and the panel
    // says why; the agents (60 s threshold) are still shown, as stale.
    let store = Arc::new(InMemoryGhostStore::new());
    store
        .write(&Snapshot::new(
            taken,
            Payload::AgentsIndex(AgentsIndex {
                agents: data.agents.iter().map(|a| a.summary.clone()).collect(),
            }),
        ))
        .expect("stored");
    store
        .write(&Snapshot::new(
            taken,
            Payload::ActivePheromones(ActivePheromones {
                pheromones: Vec::new(),
            }),
        ))
        .expect("stored");
    let later = taken + SignedDuration::from_secs(90);
    let ghost = kgents_terrarium::source::ghost_dashboard(
        store,
        Arc::new(ManualClock::new(later)),
        &Scope::All,
    )
    .await
    .expect("the agents are there");
    assert_eq!(ghost.agents.len(), 3);
    let mut app = App::new(later, Scope::All, false);
    update(
        &mut app,
        Event::Link(Link::Ghost {
            reason: "no kubeconfig".into(),
            attempt: 0,
            retry_at: None,
        }),
    );
    update(&mut app, Event::Data(Box::new(ghost)));
    let text = screen(&app, COLOR, 120, 30).backend().to_string();
    assert!(
        text.contains("not in the ghost cache") && text.contains("over twice the 30s"),
        "{text}"
    );
}
