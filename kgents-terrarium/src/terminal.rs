//! The terminal loop: crossterm input, the feed's events and the decay tick go through
//! [`update`]; a frame is drawn only when something changed (a key, data, a tick of
//! [`Options::tick`]). It sleeps in `select!` between them — never a busy loop — and restores
//! the terminal on exit, on error and on panic (ratatui's `try_init` installs the panic hook).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event as TermEvent, EventStream};
use futures::StreamExt;
use kgents_core::clock::Clock;
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;

use crate::source::{Command, Feed};
use crate::state::{App, Effect, Event, update};
use crate::view::{self, Theme};

/// How the loop runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The decay tick: intensities and ages are redrawn this often (a few Hz).
    pub tick: Duration,
    /// Colour or characters only.
    pub theme: Theme,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tick: Duration::from_millis(333),
            theme: Theme::from_env(),
        }
    }
}

/// The most feed events applied between two frames (input stays responsive under a flood).
pub const MAX_EVENTS_PER_FRAME: usize = 256;

/// Runs the dashboard on the process's terminal until the user quits.
///
/// # Errors
/// The terminal could not be set up, read or drawn (it is restored in every case).
pub async fn run(
    mut app: App,
    feed: Box<dyn Feed>,
    clock: Arc<dyn Clock>,
    options: Options,
) -> io::Result<()> {
    let (events, mut fed) = mpsc::channel::<Event>(64);
    let (commands, requests) = mpsc::channel::<Command>(16);
    let feed_task = tokio::spawn(feed.run(events, requests));
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(
        &mut terminal,
        &mut app,
        &mut fed,
        &commands,
        clock.as_ref(),
        options,
    )
    .await;
    let restored = ratatui::try_restore();
    feed_task.abort();
    result.and(restored)
}

/// Applies `event`; returns `false` when the user quit.
async fn apply(app: &mut App, event: Event, commands: &mpsc::Sender<Command>) -> bool {
    for effect in update(app, event) {
        let command = match effect {
            Effect::Quit => return false,
            Effect::Decide {
                approve,
                namespace,
                name,
                comment,
            } => Command::Decide {
                approve,
                namespace,
                name,
                comment,
            },
            Effect::Rescope(scope) => Command::Rescope(scope),
            Effect::FollowLogs { namespace, agent } => Command::FollowLogs { namespace, agent },
            Effect::StopLogs => Command::StopLogs,
        };
        // The feed ended (it logged why): the dashboard keeps showing what it has.
        let _ = commands.send(command).await;
    }
    true
}

/// The loop over any backend (the process's terminal in [`run`]).
///
/// # Errors
/// Reading input or drawing failed.
pub async fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    fed: &mut mpsc::Receiver<Event>,
    commands: &mpsc::Sender<Command>,
    clock: &dyn Clock,
    options: Options,
) -> io::Result<()>
where
    B::Error: Into<io::Error>,
{
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(options.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut feed_open = true;
    loop {
        if app.dirty {
            terminal
                .draw(|frame| view::draw(app, options.theme, frame))
                .map_err(Into::into)?;
            app.dirty = false;
        }
        let event = tokio::select! {
            biased;
            input = keys.next() => match input {
                Some(Ok(TermEvent::Key(key))) => Event::Key(key),
                Some(Ok(TermEvent::Resize(..))) => Event::Resize,
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            },
            fed_event = fed.recv(), if feed_open => match fed_event {
                Some(event) => event,
                None => {
                    feed_open = false;
                    continue;
                }
            },
            _ = tick.tick() => Event::Tick(clock.now()),
        };
        if !apply(app, event, commands).await {
            return Ok(());
        }
        // A flood from the feed is applied in bounded batches, one frame per batch.
        for _ in 0..MAX_EVENTS_PER_FRAME {
            match fed.try_recv() {
                Ok(event) => {
                    if !apply(app, event, commands).await {
                        return Ok(());
                    }
                }
                Err(_) => break,
            }
        }
    }
}
