//! # kgents-terrarium: the terminal dashboard of the hive
//!
//! Four panels over the cluster: **Agents** by activity (Events, signals and probes; phase,
//! readiness, cognitive health, replicas, a sparkline), the **Pheromone heatmap** (type ×
//! source, intensities decaying live; half-blocks in colour, shade glyphs for `NO_COLOR`),
//! **Proposals** (pending first, risk bar and level; Enter shows the factors and the patch;
//! `a`/`r` approve or reject through the Logos as the user, after a confirmation with a
//! comment) and the **Thought stream** (Events of kgents objects and, after `l` on an agent,
//! its log lines; filterable, bounded). k9s habits: `?`, `:agents` `:pheromones` `:proposals` `:ns NAME`, `/`, `esc`, `j/k`, Tab, `q`.
//!
//! State is separate from rendering, as in gitui:
//!
//! ```text
//!  keys, ticks ──┐
//!                ▼
//!  Feed ──Event──▶ state::update(&mut App, Event) ──Effect──▶ Feed (decide, rescope, logs) / quit
//!  (source)                  │
//!                            ▼
//!                  view::render(&App) ──▶ Buffer ──▶ terminal (only when something changed)
//! ```
//!
//! | module | what it holds |
//! |---|---|
//! | [`state`] | [`App`], [`Event`], [`Effect`], the pure reducer [`update`]: keys, filters, the confirmation flow, read-only refusal, the bounded thought stream with its dropped-lines counter |
//! | [`view`] | pure rendering of an [`App`] into a ratatui buffer: panels, the half-block heatmap and its character fallback, overlays, "terminal too small" |
//! | [`source`] | the I/O edge: the [`Feed`] trait, [`ClusterFeed`] (watches through the Logos' conversions, a followed agent's log lines, ghost snapshots when unreachable, reconnect with backoff), [`GhostFeed`], [`FixtureFeed`] |
//! | [`terminal`] | the crossterm event loop: redraw on change and on the decay tick, terminal restored on exit and panic |
//! | `cortex` | (feature `cortex`) the Cortex daemon's `Observe` stream as the live feed's source when a daemon answers; the pure decoding of its events |
//! | [`fixture`] | deterministic data sets for tests, the benchmark and demos |
//!
//! Data comes from the live cluster when it answers, else from the ghost snapshots (read-only,
//! with a `[GHOST]` banner and the data's age). With the `cortex` feature and a daemon running,
//! the live data comes from the daemon's `Observe` stream instead of the dashboard's own
//! watches.
#![forbid(unsafe_code)]

#[cfg(feature = "cortex")]
pub mod cortex;
pub mod fixture;
pub mod source;
pub mod state;
pub mod terminal;
pub mod view;

pub use source::{ClusterFeed, Command, Feed, FixtureFeed, GhostFeed};
pub use state::{App, Effect, Event, update};
pub use view::{Theme, render};
