//! Rendering: a pure function of [`App`] into a ratatui [`Buffer`]. No I/O, no clock: the
//! instant is `app.now`, so the same state always draws the same frame (snapshot tests).
//!
//! Layout: a header line, a `[GHOST]` banner when the data is not live, the four panels
//! (Agents | Pheromones over Proposals | Thought stream, or one panel alone after `:agents`,
//! ...), and a footer (key hints, the notice, or the `:` / `/` line). Overlays: help, a
//! proposal's detail, the confirmation of a decision. Under [`MIN_WIDTH`] × [`MIN_HEIGHT`] the
//! whole screen says "terminal too small".

use std::collections::HashMap;
use std::time::Duration;

use kgents_core::field::PheromoneType;
use kgents_ghost::freshness::format_age;
use kgents_logos::outcome::ProposalRecord;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Widget};

use crate::state::{App, Link, Mode, Panel, Thought};

/// The smallest screen the dashboard draws; below it, a "terminal too small" message.
pub const MIN_WIDTH: u16 = 60;
/// See [`MIN_WIDTH`].
pub const MIN_HEIGHT: u16 = 15;

/// How to paint: in colour, or with characters only (`NO_COLOR`, monochrome terminals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Colours on; off: shade glyphs (`░▒▓█`) carry the heat and styles are bold/reverse only.
    pub color: bool,
}

impl Theme {
    /// Colour unless `NO_COLOR` is set (any value, <https://no-color.org>) or `TERM=dumb`.
    pub fn from_env() -> Theme {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Theme {
            color: !(no_color || dumb),
        }
    }

    fn fg(self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    fn accent(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    fn error(self) -> Style {
        if self.color {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }

    fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
}

/// Draws the whole screen into `buf` over `area`.
pub fn render(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(area, buf);
        return;
    }
    let ghost = app.is_ghost();
    let [header, banner, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(u16::from(ghost)),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    render_header(app, theme, header, buf);
    if ghost {
        render_banner(app, theme, banner, buf);
    }
    match app.zoom {
        Some(panel) => render_panel(app, theme, panel, body, buf),
        None => {
            let [top, bottom] =
                Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                    .areas(body);
            let [agents, heat] =
                Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .areas(top);
            let [proposals, thoughts] =
                Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .areas(bottom);
            render_panel(app, theme, Panel::Agents, agents, buf);
            render_panel(app, theme, Panel::Pheromones, heat, buf);
            render_panel(app, theme, Panel::Proposals, proposals, buf);
            render_panel(app, theme, Panel::Thoughts, thoughts, buf);
        }
    }
    render_footer(app, theme, footer, buf);
    match &app.mode {
        Mode::Help => render_help(app, theme, area, buf),
        Mode::Detail { namespace, name } => {
            render_detail(app, theme, app.proposal(namespace, name), area, buf);
        }
        Mode::Confirm(c) => render_confirm(app, theme, c, area, buf),
        _ => {}
    }
}

/// Draws into a ratatui frame (the terminal loop's entry point).
pub fn draw(app: &App, theme: Theme, frame: &mut ratatui::Frame<'_>) {
    let area = frame.area();
    render(app, theme, area, frame.buffer_mut());
}

fn put(buf: &mut Buffer, x: u16, y: u16, width: u16, text: &str, style: Style) -> u16 {
    if width == 0 {
        return x;
    }
    buf.set_stringn(x, y, text, usize::from(width), style).0
}

/// Why the ghost cache had no `kind` to show (the feed's warning, `"<kind>: <why>"`).
fn missing<'a>(app: &'a App, kind: &str) -> Option<&'a str> {
    app.data
        .source
        .warnings
        .iter()
        .find_map(|w| w.strip_prefix(kind)?.strip_prefix(": "))
}

/// Writes `text` from the second column of `inner`, wrapped over the rows there are.
fn note_wrapped(buf: &mut Buffer, inner: Rect, text: &str, style: Style) {
    let width = usize::from(inner.width.saturating_sub(1)).max(1);
    let chars: Vec<char> = text.chars().collect();
    for (row, chunk) in chars.chunks(width).enumerate() {
        let Ok(dy) = u16::try_from(row) else { break };
        if dy >= inner.height {
            break;
        }
        let line: String = chunk.iter().collect();
        put(
            buf,
            inner.x + 1,
            inner.y + dy,
            inner.width.saturating_sub(1),
            &line,
            style,
        );
    }
}

fn too_small(area: Rect, buf: &mut Buffer) {
    let lines = [
        "terminal too small".to_owned(),
        format!(
            "{}×{}, needs {MIN_WIDTH}×{MIN_HEIGHT}",
            area.width, area.height
        ),
    ];
    for (i, line) in lines.iter().enumerate() {
        let Ok(dy) = u16::try_from(i) else { break };
        if dy >= area.height {
            break;
        }
        let len = u16::try_from(line.chars().count()).unwrap_or(u16::MAX);
        let x = area.x + area.width.saturating_sub(len) / 2;
        let y = area.y + (area.height.saturating_sub(2)) / 2 + dy;
        if y < area.bottom() {
            put(
                buf,
                x,
                y,
                area.right().saturating_sub(x),
                line,
                Style::new(),
            );
        }
    }
}

fn scope_label(app: &App) -> String {
    match app.scope.namespace() {
        Some(ns) => format!("ns {ns}"),
        None => "all namespaces".to_owned(),
    }
}

fn render_header(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    let (dot, link, link_style) = match &app.link {
        // Served by the Cortex daemon rather than the dashboard's own watches: said, since
        // the daemon's view is what is shown.
        Link::Live if app.data.source.live && app.data.source.layer == "cortex" => {
            ("●", "LIVE via cortex", theme.fg(Color::Green))
        }
        Link::Live if app.data.source.live => ("●", "LIVE", theme.fg(Color::Green)),
        Link::Connecting => ("○", "CONNECTING", theme.fg(Color::Yellow)),
        Link::Fixture => ("◆", "FIXTURE", theme.fg(Color::Blue)),
        _ => ("◌", "GHOST", theme.fg(Color::Yellow)),
    };
    let pending = app
        .data
        .proposals
        .iter()
        .filter(|p| app.scope.contains(&p.summary.namespace) && p.is_pending())
        .count();
    let agents = app
        .data
        .agents
        .iter()
        .filter(|a| app.scope.contains(&a.summary.namespace))
        .count();
    let signals = app
        .data
        .pheromones
        .iter()
        .filter(|p| app.scope.contains(&p.record.summary.namespace))
        .count();
    let mut x = area.x;
    let end = area.right();
    x = put(buf, x, area.y, end - x, " Terrarium ", theme.accent());
    x = put(buf, x, area.y, end - x, "│ ", theme.dim());
    if let Some(context) = &app.context {
        x = put(
            buf,
            x,
            area.y,
            end - x,
            &format!("{context} "),
            Style::new(),
        );
    }
    x = put(buf, x, area.y, end - x, &scope_label(app), Style::new());
    x = put(buf, x, area.y, end - x, " │ ", theme.dim());
    x = put(
        buf,
        x,
        area.y,
        end - x,
        &format!("{dot} {link}"),
        link_style,
    );
    x = put(buf, x, area.y, end - x, " │ ", theme.dim());
    x = put(
        buf,
        x,
        area.y,
        end - x,
        &format!("{agents} agents · {signals} signals · {pending} pending"),
        Style::new(),
    );
    if app.readonly {
        x = put(buf, x, area.y, end - x, " │ ", theme.dim());
        x = put(
            buf,
            x,
            area.y,
            end - x,
            "READ-ONLY",
            theme.fg(Color::Yellow),
        );
    }
    let help = " ?:help ";
    let help_len = help.len() as u16;
    if end.saturating_sub(x) > help_len {
        put(buf, end - help_len, area.y, help_len, help, theme.dim());
    }
}

fn render_banner(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    let age = format_age(Duration::from_secs_f64(app.data_age_seconds()));
    let retry = |retry_at: &Option<jiff::Timestamp>, attempt: u32| match retry_at {
        Some(at) => {
            let wait = at.duration_since(app.now).as_secs().max(0);
            format!("reconnecting (attempt {attempt}) in {wait}s")
        }
        None => format!("reconnecting (attempt {attempt})"),
    };
    let text = match &app.link {
        Link::Lost {
            since,
            reason,
            attempt,
            retry_at,
        } => {
            let lost = format_age(app.now.duration_since(*since).unsigned_abs());
            format!(
                " [GHOST] connection lost {lost} ago · data from {age} ago · read-only · {} · {reason} ",
                retry(retry_at, *attempt)
            )
        }
        Link::Ghost {
            reason,
            attempt,
            retry_at,
        } => format!(
            " [GHOST] data from {age} ago{} · read-only · {} · {reason} ({} answered) ",
            if app.data.source.stale {
                " (stale)"
            } else {
                ""
            },
            if retry_at.is_some() {
                retry(retry_at, *attempt)
            } else {
                "no cluster configured".into()
            },
            app.data.source.layer,
        ),
        _ => format!(
            " [GHOST] data from {age} ago ({}) · read-only ",
            app.data.source.layer
        ),
    };
    let style = if theme.color {
        Style::new()
            .fg(Color::Black)
            .bg(Color::Yellow)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    };
    buf.set_style(area, style);
    put(buf, area.x, area.y, area.width, &text, style);
}

fn panel_block(app: &App, theme: Theme, panel: Panel, title: String) -> Block<'static> {
    let focused = app.focus == panel;
    let filter = &app.filters[Panel::ALL.iter().position(|p| *p == panel).unwrap_or(0)];
    let mut block = Block::default()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Rounded
        })
        .border_style(if focused { theme.accent() } else { theme.dim() })
        .title(format!(" {title} "));
    if !filter.is_empty() {
        block = block.title_bottom(format!(" /{filter} "));
    }
    block
}

fn render_panel(app: &App, theme: Theme, panel: Panel, area: Rect, buf: &mut Buffer) {
    match panel {
        Panel::Agents => render_agents(app, theme, area, buf),
        Panel::Pheromones => render_heatmap(app, theme, area, buf),
        Panel::Proposals => render_proposals(app, theme, area, buf),
        Panel::Thoughts => render_thoughts(app, theme, area, buf),
    }
}

/// A column: header, width, and whether it is dropped first when space is short (higher
/// `drop_order` first; 0 never).
struct Column {
    header: &'static str,
    width: u16,
    drop_order: u8,
}

/// Picks the columns that fit `width` (one space between them); the first column takes up to
/// [`FIRST_COLUMN_GROWTH`] of what is left over.
fn fit(columns: &[Column], width: u16) -> Vec<(usize, u16)> {
    let mut kept: Vec<usize> = (0..columns.len()).collect();
    let total = |kept: &[usize]| -> u16 {
        kept.iter().map(|&i| columns[i].width).sum::<u16>() + kept.len().saturating_sub(1) as u16
    };
    while total(&kept) > width {
        let Some(pos) = kept
            .iter()
            .enumerate()
            .filter(|(_, i)| columns[**i].drop_order > 0)
            .max_by_key(|(_, i)| columns[**i].drop_order)
            .map(|(pos, _)| pos)
        else {
            break;
        };
        kept.remove(pos);
    }
    let spare = width.saturating_sub(total(&kept)).min(FIRST_COLUMN_GROWTH);
    kept.iter()
        .enumerate()
        .map(|(n, &i)| {
            (
                i,
                if n == 0 {
                    columns[i].width + spare
                } else {
                    columns[i].width
                },
            )
        })
        .collect()
}

/// How much wider than its minimum the first column (the name) grows on a wide screen.
const FIRST_COLUMN_GROWTH: u16 = 24;

/// The first row shown so that `selected` is visible in `height` rows.
fn window_start(selected: usize, rows: usize, height: usize) -> usize {
    if height == 0 || rows <= height {
        return 0;
    }
    selected.saturating_sub(height - 1).min(rows - height)
}

fn render_table(
    buf: &mut Buffer,
    area: Rect,
    columns: &[Column],
    theme: Theme,
    row_count: usize,
    selected: Option<usize>,
    mut cell: impl FnMut(usize, usize) -> (String, Style),
) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let layout = fit(columns, area.width);
    let mut x = area.x;
    for &(i, w) in &layout {
        put(
            buf,
            x,
            area.y,
            w,
            columns[i].header,
            theme.dim().add_modifier(Modifier::BOLD),
        );
        x += w + 1;
    }
    let height = usize::from(area.height - 1);
    let start = window_start(selected.unwrap_or(0), row_count, height);
    for (line, row) in (start..row_count.min(start + height)).enumerate() {
        let y = area.y + 1 + line as u16;
        let mut x = area.x;
        for &(i, w) in &layout {
            let (text, style) = cell(row, i);
            put(buf, x, y, w, &text, style);
            x += w + 1;
        }
        if selected == Some(row) {
            buf.set_style(Rect::new(area.x, y, area.width, 1), theme.selected());
        }
    }
}

const SPARK: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

fn sparkline(series: &[u32]) -> String {
    let max = series.iter().copied().max().unwrap_or(0);
    series
        .iter()
        .map(|&v| {
            if v == 0 || max == 0 {
                ' '
            } else {
                let level = (u64::from(v) * 7).div_ceil(u64::from(max)) as usize;
                SPARK[level.min(7)]
            }
        })
        .collect()
}

fn health_style(theme: Theme, health: &str, phase: &str) -> Style {
    match (phase, health) {
        ("Failed", _) | (_, "UNRESPONSIVE") => theme.fg(Color::Red),
        ("Degraded", _) | (_, "DEGRADED") => theme.fg(Color::Yellow),
        ("Running", "HEALTHY") => theme.fg(Color::Green),
        _ => Style::new(),
    }
}

fn render_agents(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    let rows = app.visible_agents();
    let block = panel_block(
        app,
        theme,
        Panel::Agents,
        format!("Agents ({})", rows.len()),
    );
    let inner = block.inner(area);
    block.render(area, buf);
    if rows.is_empty() {
        if let Some(why) = missing(app, "agents") {
            note_wrapped(
                buf,
                inner,
                &format!("not in the ghost cache: {why}"),
                theme.dim(),
            );
            return;
        }
        let text = if app.filters[0].is_empty() {
            "no agents in this scope"
        } else {
            "no agent matches the filter (Esc clears it)"
        };
        put(
            buf,
            inner.x + 1,
            inner.y,
            inner.width.saturating_sub(1),
            text,
            theme.dim(),
        );
        return;
    }
    let all = app.scope.namespace().is_none();
    let columns = [
        Column {
            header: "NAME",
            width: 10,
            drop_order: 0,
        },
        Column {
            header: "NAMESPACE",
            width: 10,
            drop_order: 5,
        },
        Column {
            header: "PHASE",
            width: 8,
            drop_order: 0,
        },
        Column {
            header: "READY",
            width: 5,
            drop_order: 4,
        },
        Column {
            header: "HEALTH",
            width: 9,
            drop_order: 3,
        },
        Column {
            header: "ACTIVITY",
            width: 12,
            drop_order: 2,
        },
        Column {
            header: "PROBE",
            width: 5,
            drop_order: 6,
        },
    ];
    let columns: Vec<Column> = columns
        .into_iter()
        .filter(|c| all || c.header != "NAMESPACE")
        .collect();
    let selected = app.selected(Panel::Agents).min(rows.len() - 1);
    render_table(
        buf,
        inner,
        &columns,
        theme,
        rows.len(),
        Some(selected),
        |row, col| {
            let (agent, series) = &rows[row];
            let s = &agent.summary;
            match columns[col].header {
                "NAME" => (
                    s.name.to_string(),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                "NAMESPACE" => (s.namespace.clone(), theme.dim()),
                "PHASE" => (s.phase.clone(), health_style(theme, "", &s.phase)),
                "READY" => (format!("{}/{}", s.ready_replicas, s.replicas), Style::new()),
                "HEALTH" => (
                    s.cognitive_health.clone(),
                    health_style(theme, &s.cognitive_health, ""),
                ),
                "ACTIVITY" => (sparkline(series), theme.fg(Color::Cyan)),
                "PROBE" => (
                    agent
                        .last_probe
                        .map(|t| format_age(app.now.duration_since(t).unsigned_abs()))
                        .unwrap_or_else(|| "-".into()),
                    theme.dim(),
                ),
                _ => (String::new(), Style::new()),
            }
        },
    );
}

/// The heatmap's data at `app.now`: sources by total heat, the strongest intensity per cell.
struct Heat<'a> {
    sources: Vec<(&'a str, f64)>,
    /// By source column, then type: the strongest current intensity (0: none).
    cells: Vec<[f64; 13]>,
    by_type: [f64; 13],
    live: usize,
    evaporated: usize,
}

fn type_index(t: PheromoneType) -> usize {
    PheromoneType::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

fn heat(app: &App) -> Heat<'_> {
    // Sources get dense ids in order of appearance; the hash is skipped while consecutive
    // signals share a source (the common case: lists come grouped).
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut names: Vec<&str> = Vec::new();
    let mut totals: Vec<f64> = Vec::new();
    let mut raw: Vec<(usize, usize, f64)> = Vec::new();
    let mut last: Option<(&str, usize)> = None;
    let mut evaporated = 0;
    for p in app.visible_pheromones() {
        let value = p.intensity_at(app.now);
        if value <= 0.0 {
            evaporated += 1;
            continue;
        }
        let s = &p.record.summary;
        let source = s.source.as_str();
        let id = match last {
            Some((name, id)) if name == source => id,
            _ => {
                let id = *ids.entry(source).or_insert_with(|| {
                    names.push(source);
                    totals.push(0.0);
                    names.len() - 1
                });
                last = Some((source, id));
                id
            }
        };
        totals[id] += value;
        raw.push((type_index(s.pheromone_type), id, value));
    }
    // Columns: sources by total heat, strongest first (ties by name).
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|&a, &b| {
        totals[b]
            .total_cmp(&totals[a])
            .then_with(|| names[a].cmp(names[b]))
    });
    let mut column_of = vec![0; names.len()];
    for (column, &id) in order.iter().enumerate() {
        column_of[id] = column;
    }
    let mut cells: Vec<[f64; 13]> = vec![[0.0; 13]; names.len()];
    let mut by_type = [0.0; 13];
    for &(t, id, value) in &raw {
        let cell = &mut cells[column_of[id]][t];
        *cell = cell.max(value);
        by_type[t] = f64::max(by_type[t], value);
    }
    Heat {
        sources: order.iter().map(|&id| (names[id], totals[id])).collect(),
        cells,
        by_type,
        live: raw.len(),
        evaporated,
    }
}

/// A dark-to-bright gradient (black → purple → orange → yellow).
fn heat_color(value: f64) -> Color {
    if value <= 0.0 {
        return Color::Rgb(28, 28, 36);
    }
    let stops = [
        (0.0, (40.0, 20.0, 70.0)),
        (0.35, (150.0, 30.0, 120.0)),
        (0.7, (240.0, 110.0, 40.0)),
        (1.0, (255.0, 235.0, 90.0)),
    ];
    let v = value.clamp(0.0, 1.0);
    let mut color = stops[3].1;
    for pair in stops.windows(2) {
        let (a, ca) = pair[0];
        let (b, cb) = pair[1];
        if v <= b {
            let t = (v - a) / (b - a);
            color = (
                ca.0 + (cb.0 - ca.0) * t,
                ca.1 + (cb.1 - ca.1) * t,
                ca.2 + (cb.2 - ca.2) * t,
            );
            break;
        }
    }
    Color::Rgb(color.0 as u8, color.1 as u8, color.2 as u8)
}

fn shade(value: f64) -> char {
    match value {
        v if v <= 0.0 => '·',
        v if v < 0.25 => '░',
        v if v < 0.5 => '▒',
        v if v < 0.75 => '▓',
        _ => '█',
    }
}

fn short(t: PheromoneType) -> &'static str {
    match t {
        PheromoneType::Metaphor => "MET",
        PheromoneType::Warning => "WRN",
        PheromoneType::Memory => "MEM",
        PheromoneType::Narrative => "NAR",
        PheromoneType::Opportunity => "OPP",
        PheromoneType::Scarcity => "SCA",
        PheromoneType::Capability => "CAP",
        PheromoneType::State => "STA",
        PheromoneType::Test => "TST",
        PheromoneType::Intent => "INT",
        PheromoneType::Dream => "DRM",
        PheromoneType::Chaos => "CHS",
        PheromoneType::ReviewRequest => "REV",
    }
}

const LABEL_WIDTH: u16 = 11;

fn render_heatmap(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    let heat = heat(app);
    let block = panel_block(
        app,
        theme,
        Panel::Pheromones,
        format!("Pheromones: type × source ({} live)", heat.live),
    );
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height == 0 || inner.width <= LABEL_WIDTH {
        return;
    }
    if heat.live == 0 {
        if let Some(why) = missing(app, "pheromones") {
            note_wrapped(
                buf,
                inner,
                &format!("not in the ghost cache: {why}"),
                theme.dim(),
            );
            return;
        }
        put(
            buf,
            inner.x + 1,
            inner.y,
            inner.width - 1,
            "no live signals in this scope",
            theme.dim(),
        );
        if heat.evaporated > 0 {
            let text = format!("{} evaporated", heat.evaporated);
            put(
                buf,
                inner.x + 1,
                inner.y + 1,
                inner.width - 1,
                &text,
                theme.dim(),
            );
        }
        return;
    }
    let columns = usize::from(inner.width - LABEL_WIDTH);
    let selected = app.selected(Panel::Pheromones).min(heat.sources.len() - 1);
    // Keep the selected source on screen.
    let first = selected.saturating_sub(columns.saturating_sub(1));
    let shown = heat.sources.len().saturating_sub(first).min(columns);
    // Rows: the map, then the selected source's line and a legend, as height allows.
    let mut y = inner.y;
    let bottom = inner.bottom();
    let marker_row = inner.height >= 10;
    if marker_row {
        let x = inner.x + LABEL_WIDTH + (selected - first) as u16;
        put(buf, x, y, 1, "▼", theme.accent());
        y += 1;
    }
    let footer_rows: u16 = match bottom - y {
        0..=2 => 0,
        3..=7 => 1,
        _ => 2,
    };
    let map_rows = bottom - y - footer_rows;
    let mut hidden_types = 0;
    if theme.color {
        // Half-blocks: each line is two types, `▀` painted fg = upper, bg = lower.
        let pairs: Vec<(PheromoneType, Option<PheromoneType>)> = PheromoneType::ALL
            .chunks(2)
            .map(|c| (c[0], c.get(1).copied()))
            .collect();
        for (n, (upper, lower)) in pairs.iter().enumerate() {
            if n as u16 >= map_rows {
                hidden_types += 1 + usize::from(lower.is_some());
                continue;
            }
            let label = match lower {
                Some(lower) => format!("▀{} ▄{}", short(*upper), short(*lower)),
                None => format!("▀{}", short(*upper)),
            };
            put(buf, inner.x, y, LABEL_WIDTH, &label, theme.dim());
            for c in 0..shown {
                let col = first + c;
                let up = heat.cells[col][type_index(*upper)];
                let down = lower.map_or(0.0, |l| heat.cells[col][type_index(l)]);
                let x = inner.x + LABEL_WIDTH + c as u16;
                if let Some(cell) = buf.cell_mut((x, y)) {
                    cell.set_char('▀')
                        .set_fg(heat_color(up))
                        .set_bg(if lower.is_some() {
                            heat_color(down)
                        } else {
                            Color::Reset
                        });
                }
            }
            y += 1;
        }
    } else {
        // Characters only: one line per type that has heat, strongest first.
        let mut types: Vec<usize> = (0..13).filter(|&t| heat.by_type[t] > 0.0).collect();
        types.sort_by(|&a, &b| heat.by_type[b].total_cmp(&heat.by_type[a]).then(a.cmp(&b)));
        for (n, &t) in types.iter().enumerate() {
            if n as u16 >= map_rows {
                hidden_types += 1;
                continue;
            }
            put(
                buf,
                inner.x,
                y,
                LABEL_WIDTH - 1,
                PheromoneType::ALL[t].as_str(),
                Style::new(),
            );
            let line: String = (0..shown)
                .map(|c| shade(heat.cells[first + c][t]))
                .collect();
            put(
                buf,
                inner.x + LABEL_WIDTH,
                y,
                inner.width - LABEL_WIDTH,
                &line,
                Style::new(),
            );
            y += 1;
        }
    }
    y = bottom - footer_rows;
    if footer_rows >= 1 {
        let (source, total) = &heat.sources[selected];
        let mut strongest: Vec<(usize, f64)> = (0..13)
            .map(|t| (t, heat.cells[selected][t]))
            .filter(|(_, v)| *v > 0.0)
            .collect();
        strongest.sort_by(|a, b| b.1.total_cmp(&a.1));
        let types: Vec<String> = strongest
            .iter()
            .take(3)
            .map(|(t, v)| format!("{} {v:.2}", PheromoneType::ALL[*t].as_str()))
            .collect();
        let line = format!(
            "▸ {source} ({}/{}) Σ{total:.2}: {}",
            selected + 1,
            heat.sources.len(),
            types.join(" ")
        );
        put(buf, inner.x, y, inner.width, &line, theme.accent());
        y += 1;
    }
    if footer_rows >= 2 {
        let legend = format!(
            "{}0→1 · {} sources{}{} · h/l",
            if theme.color {
                "▁▃▅▇ "
            } else {
                "·░▒▓█ "
            },
            heat.sources.len(),
            if hidden_types > 0 {
                format!(" · +{hidden_types} types")
            } else {
                String::new()
            },
            if heat.evaporated > 0 {
                format!(" · {} evaporated", heat.evaporated)
            } else {
                String::new()
            },
        );
        put(buf, inner.x, y, inner.width, &legend, theme.dim());
    }
}

fn level_style(theme: Theme, level: &str) -> Style {
    match level {
        "LOW" => theme.fg(Color::Green),
        "MEDIUM" => theme.fg(Color::Yellow),
        "HIGH" => theme.fg(Color::LightRed),
        "CRITICAL" => theme.fg(Color::Red).add_modifier(Modifier::BOLD),
        _ => theme.dim(),
    }
}

fn risk_bar(score: f64, width: usize) -> String {
    let filled = ((score.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    let mut bar = "█".repeat(filled);
    bar.push_str(&"·".repeat(width - filled));
    bar
}

fn render_proposals(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    let rows = app.visible_proposals();
    let pending = rows.iter().filter(|p| p.is_pending()).count();
    let block = panel_block(
        app,
        theme,
        Panel::Proposals,
        format!("Proposals ({pending} pending / {})", rows.len()),
    );
    let inner = block.inner(area);
    block.render(area, buf);
    if rows.is_empty() {
        if let Some(why) = missing(app, "proposals") {
            note_wrapped(
                buf,
                inner,
                &format!("not in the ghost cache: {why}"),
                theme.dim(),
            );
            return;
        }
        put(
            buf,
            inner.x + 1,
            inner.y,
            inner.width.saturating_sub(1),
            "no proposals in this scope",
            theme.dim(),
        );
        return;
    }
    let columns = [
        Column {
            header: "NAME",
            width: 14,
            drop_order: 0,
        },
        Column {
            header: "RISK",
            width: 15,
            drop_order: 0,
        },
        Column {
            header: "PHASE",
            width: 9,
            drop_order: 0,
        },
        Column {
            header: "TYPE",
            width: 13,
            drop_order: 3,
        },
        Column {
            header: "PROPOSER",
            width: 10,
            drop_order: 4,
        },
    ];
    let selected = app.selected(Panel::Proposals).min(rows.len() - 1);
    render_table(
        buf,
        inner,
        &columns,
        theme,
        rows.len(),
        Some(selected),
        |row, col| {
            let p = &rows[row].summary;
            let pending = rows[row].is_pending();
            match columns[col].header {
                "NAME" => (
                    p.name.clone(),
                    if pending {
                        Style::new().add_modifier(Modifier::BOLD)
                    } else {
                        theme.dim()
                    },
                ),
                "RISK" => (
                    format!(
                        "{} {:.2} {}",
                        risk_bar(p.risk_score, 5),
                        p.risk_score,
                        p.risk_level.get(..3).unwrap_or(&p.risk_level)
                    ),
                    level_style(theme, &p.risk_level),
                ),
                "PHASE" => (
                    p.phase.clone(),
                    if pending { Style::new() } else { theme.dim() },
                ),
                "TYPE" => (p.change_type.clone(), theme.dim()),
                "PROPOSER" => (p.proposer.clone(), theme.dim()),
                _ => (String::new(), Style::new()),
            }
        },
    );
}

fn thought_line(t: &Thought) -> String {
    format!(
        "{} {} {}: {}",
        t.at.strftime("%H:%M:%S"),
        t.object,
        t.reason,
        t.text
    )
}

fn render_thoughts(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    let dropped = app.thoughts.dropped();
    let title = if dropped > 0 {
        format!(
            "Thought stream ({} kept, {dropped} dropped)",
            app.thoughts.lines().len()
        )
    } else {
        format!("Thought stream ({})", app.thoughts.lines().len())
    };
    let title = match &app.following {
        Some((namespace, agent)) => format!("{title} · logs of {namespace}/{agent}"),
        None => title,
    };
    let block = panel_block(app, theme, Panel::Thoughts, title);
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height == 0 {
        return;
    }
    // Newest at the bottom; `selected` scrolls up from the newest line.
    let height = usize::from(inner.height);
    let scroll = app.selected(Panel::Thoughts);
    let lines: Vec<&Thought> = app
        .visible_thoughts()
        .rev()
        .skip(scroll)
        .take(height)
        .collect();
    if lines.is_empty() {
        put(
            buf,
            inner.x + 1,
            inner.y,
            inner.width.saturating_sub(1),
            "no events yet",
            theme.dim(),
        );
        return;
    }
    let top = inner.bottom() - lines.len() as u16;
    for (i, t) in lines.iter().rev().enumerate() {
        let style = if t.warning {
            theme.fg(Color::Yellow)
        } else {
            Style::new()
        };
        put(
            buf,
            inner.x,
            top + i as u16,
            inner.width,
            &thought_line(t),
            style,
        );
    }
}

fn render_footer(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    match &app.mode {
        Mode::Command(text) => {
            put(
                buf,
                area.x,
                area.y,
                area.width,
                &format!(":{text}▏"),
                theme.accent(),
            );
        }
        Mode::Filter(text) => {
            let line = format!(
                "/{text}▏ (filtering {}; Enter keeps, Esc clears)",
                app.focus.title()
            );
            put(buf, area.x, area.y, area.width, &line, theme.accent());
        }
        _ => match &app.notice {
            Some(notice) => {
                let style = if notice.error {
                    theme.error()
                } else {
                    theme.fg(Color::Green)
                };
                put(
                    buf,
                    area.x,
                    area.y,
                    area.width,
                    &format!(" {}", notice.text),
                    style,
                );
            }
            None => {
                let hints = match app.focus {
                    Panel::Proposals => {
                        " Tab panel · j/k move · Enter detail · a approve · r reject · / filter · : cmd · ? help · q quit"
                    }
                    Panel::Pheromones => {
                        " Tab panel · h/l source · / filter · :pheromones zoom · ? help · q quit"
                    }
                    _ => " Tab panel · j/k move · / filter · : command · ? help · q quit",
                };
                put(buf, area.x, area.y, area.width, hints, theme.dim());
            }
        },
    }
}

fn popup(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width.saturating_sub(2));
    let height = height.min(area.height.saturating_sub(2));
    Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    )
}

fn overlay(theme: Theme, title: &str, area: Rect, buf: &mut Buffer) -> Rect {
    Clear.render(area, buf);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Double)
        .border_style(theme.accent())
        .title(format!(" {title} "));
    let inner = block.inner(area);
    block.render(area, buf);
    inner
}

fn render_lines(buf: &mut Buffer, inner: Rect, lines: &[(String, Style)]) {
    for (i, (text, style)) in lines.iter().enumerate() {
        let Ok(dy) = u16::try_from(i) else { break };
        if dy >= inner.height {
            break;
        }
        put(
            buf,
            inner.x + 1,
            inner.y + dy,
            inner.width.saturating_sub(1),
            text,
            *style,
        );
    }
}

fn render_help(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    let inner = overlay(theme, "Help", popup(area, 76, 21), buf);
    let key = Style::new().add_modifier(Modifier::BOLD);
    let mut lines: Vec<(String, Style)> = [
        ("Tab / Shift-Tab", "next / previous panel"),
        ("j k ↓ ↑  g G", "move (heatmap: h l pick a source)"),
        ("Enter", "a proposal's risk factors and patch"),
        ("a / r", "approve / reject the proposal (confirm, comment)"),
        (
            "l (Agents)",
            "follow its logs in the thought stream (again: stop)",
        ),
        ("/", "filter the focused panel (Esc clears)"),
        (":", "command: :agents :pheromones :proposals :thoughts"),
        ("", ":all  :ns NAME  :ns all  :q"),
        ("Esc", "close, clear the filter, back to all panels"),
        ("?", "this help"),
        ("q  Ctrl-C", "quit"),
    ]
    .iter()
    .map(|(k, v)| (format!("{k:<16} {v}"), key))
    .collect();
    lines.push((
        "Heat: ▀ paints the upper type, ▄ the lower; brighter is stronger.".into(),
        theme.dim(),
    ));
    lines.push((
        "Agents are ordered by activity: Events, signals and probes.".into(),
        theme.dim(),
    ));
    if let Some(why) = app.decisions_refused() {
        lines.push((why.to_owned(), theme.fg(Color::Yellow)));
    }
    render_lines(buf, inner, &lines);
}

fn render_detail(
    app: &App,
    theme: Theme,
    proposal: Option<&ProposalRecord>,
    area: Rect,
    buf: &mut Buffer,
) {
    let width = area.width.saturating_sub(8).min(100);
    let height = area.height.saturating_sub(4);
    let Some(p) = proposal else {
        let inner = overlay(theme, "Proposal", popup(area, width, 5), buf);
        render_lines(
            buf,
            inner,
            &[(
                "the proposal is gone (deleted, or out of scope)".into(),
                theme.error(),
            )],
        );
        return;
    };
    let s = &p.summary;
    let inner = overlay(
        theme,
        &format!("Proposal {}/{}", s.namespace, s.name),
        popup(area, width, height),
        buf,
    );
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines: Vec<(String, Style)> = vec![
        (
            format!("{} on {} by {}", s.change_type, s.target, s.proposer),
            bold,
        ),
        (
            format!(
                "phase {} · risk {} {:.2} {}",
                s.phase,
                risk_bar(s.risk_score, 10),
                s.risk_score,
                s.risk_level
            ),
            level_style(theme, &s.risk_level),
        ),
    ];
    if let Some(reason) = &s.reason {
        lines.push((format!("why: {reason}"), Style::new()));
    }
    lines.push((String::new(), Style::new()));
    lines.push((
        "RISK FACTORS".into(),
        theme.dim().add_modifier(Modifier::BOLD),
    ));
    if s.risk_factors.is_empty() {
        lines.push((
            "  not assessed yet (or not kept by the ghost snapshot)".into(),
            theme.dim(),
        ));
    } else {
        for f in &s.risk_factors {
            lines.push((
                format!("  {:<11}{:>6.3}  {}", f.name, f.value, f.detail),
                Style::new(),
            ));
        }
        if let Some(explanation) = p.risk.as_ref().and_then(|r| r.explanation.as_ref()) {
            lines.push((format!("  = {explanation}"), theme.dim()));
        }
        if let Some(risk) = &p.risk {
            lines.push((format!("  decision: {:?}", risk.decision), theme.dim()));
        }
    }
    if !p.approvals.is_empty() || !p.rejections.is_empty() {
        lines.push((
            format!(
                "approved by: {} · rejected by: {}",
                if p.approvals.is_empty() {
                    "-".into()
                } else {
                    p.approvals.join(", ")
                },
                if p.rejections.is_empty() {
                    "-".into()
                } else {
                    p.rejections.join(", ")
                }
            ),
            Style::new(),
        ));
    }
    lines.push((String::new(), Style::new()));
    lines.push(("PATCH".into(), theme.dim().add_modifier(Modifier::BOLD)));
    match &s.patch {
        None => lines.push(("  (none)".into(), theme.dim())),
        Some(patch) => {
            let wrap = usize::from(inner.width.saturating_sub(3)).max(1);
            for raw in patch.lines() {
                let chars: Vec<char> = raw.chars().collect();
                for chunk in chars.chunks(wrap) {
                    lines.push((
                        format!("  {}", chunk.iter().collect::<String>()),
                        theme.fg(Color::Cyan),
                    ));
                }
            }
        }
    }
    let hint = match app.decisions_refused() {
        Some(why) => (why.to_owned(), theme.fg(Color::Yellow)),
        None if p.is_pending() => ("a approve · r reject · Esc back".to_owned(), theme.accent()),
        None => ("Esc back".to_owned(), theme.accent()),
    };
    let room = usize::from(inner.height);
    if lines.len() >= room && room > 0 {
        lines.truncate(room - 1);
        if let Some(last) = lines.last_mut() {
            last.0 = "  …".into();
        }
    }
    render_lines(buf, inner, &lines);
    if inner.height > 0 {
        put(
            buf,
            inner.x + 1,
            inner.bottom() - 1,
            inner.width.saturating_sub(1),
            &hint.0,
            hint.1,
        );
    }
}

fn render_confirm(
    app: &App,
    theme: Theme,
    c: &crate::state::Confirmation,
    area: Rect,
    buf: &mut Buffer,
) {
    let verb = if c.approve { "Approve" } else { "Reject" };
    let inner = overlay(theme, &format!("{verb}?"), popup(area, 60, 8), buf);
    let risk = app
        .proposal(&c.namespace, &c.name)
        .map(|p| format!("risk {:.2} {}", p.summary.risk_score, p.summary.risk_level))
        .unwrap_or_default();
    let lines = vec![
        (
            format!("{verb} {}/{} as yourself? {risk}", c.namespace, c.name),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        (
            if c.approve {
                "comment (optional):".to_owned()
            } else {
                "reason (required):".to_owned()
            },
            theme.dim(),
        ),
        (format!("> {}▏", c.comment), theme.accent()),
        (String::new(), Style::new()),
        (
            "Enter confirms · Esc cancels (nothing is sent)".into(),
            theme.dim(),
        ),
    ];
    render_lines(buf, inner, &lines);
}
