//! The dashboard on a fixed data set, in the real terminal: for measuring idle CPU and peak
//! RSS at a given size without a cluster, and for looking at it.
//!
//! ```sh
//! cargo run -p kgents-terrarium --example fixture -- 1000 10000   # agents, pheromones
//! ```
//!
//! The data is `kgents_terrarium::fixture` at the current time, so intensities decay live.

use std::sync::Arc;

use kgents_core::clock::{Clock, SystemClock};
use kgents_logos::{Scope, Source};
use kgents_terrarium::fixture;
use kgents_terrarium::source::FixtureFeed;
use kgents_terrarium::state::App;
use kgents_terrarium::terminal::{self, Options};

fn count(arg: Option<String>, default: usize, what: &str) -> Result<usize, String> {
    match arg {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            format!("{what}: {text:?} is not a count (usage: fixture [AGENTS] [PHEROMONES])")
        }),
    }
}

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let sizes = count(args.next(), 1_000, "agents")
        .and_then(|agents| Ok((agents, count(args.next(), 10 * agents, "pheromones")?)));
    let (agents, pheromones) = match sizes {
        Ok(sizes) => sizes,
        Err(message) => {
            eprintln!("error: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    let feed = FixtureFeed {
        dashboard: fixture::dashboard(
            agents,
            pheromones,
            agents.min(50),
            now,
            Source::live("fixture", now),
        ),
        thoughts: (0..agents * 3)
            .map(|i| fixture::thought(i, agents, now))
            .collect(),
    };
    let app = App::new(now, Scope::All, false);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(terminal::run(
        app,
        Box::new(feed),
        clock,
        Options::default(),
    )) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: the terminal: {error}");
            std::process::ExitCode::from(1)
        }
    }
}
