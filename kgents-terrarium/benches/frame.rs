//! Building a frame (state → buffer) at 1,000 agents and 10,000 pheromones, 50 proposals and a
//! full thought stream: the target is a median of at most 5 ms. Also the reducer on a flood of
//! thought-stream lines.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kgents_logos::{Scope, Source};
use kgents_terrarium::fixture;
use kgents_terrarium::state::{App, Event, Link, update};
use kgents_terrarium::view::{self, Theme};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

fn big_app() -> App {
    let now = fixture::epoch();
    let mut app = App::new(now, Scope::All, false);
    update(&mut app, Event::Link(Link::Live));
    update(
        &mut app,
        Event::Thoughts(
            (0..3_000)
                .map(|i| fixture::thought(i, 1_000, now))
                .collect(),
        ),
    );
    update(
        &mut app,
        Event::Data(Box::new(fixture::dashboard(
            1_000,
            10_000,
            50,
            now,
            Source::live("kubernetes", now),
        ))),
    );
    app
}

fn frame(c: &mut Criterion) {
    let app = big_app();
    for (width, height) in [(200u16, 50u16), (80, 24)] {
        for theme in [Theme { color: true }, Theme { color: false }] {
            let name = format!(
                "frame_1000_agents_10000_pheromones_{width}x{height}_{}",
                if theme.color { "color" } else { "mono" }
            );
            let mut buffer = Buffer::empty(Rect::new(0, 0, width, height));
            c.bench_function(&name, |b| {
                b.iter(|| {
                    buffer.reset();
                    view::render(black_box(&app), theme, buffer.area, &mut buffer);
                    black_box(&buffer);
                })
            });
        }
    }
}

fn flood(c: &mut Criterion) {
    let now = fixture::epoch();
    let batch: Vec<_> = (0..250).map(|i| fixture::thought(i, 1_000, now)).collect();
    let mut app = big_app();
    c.bench_function("update_250_thoughts", |b| {
        b.iter(|| update(&mut app, Event::Thoughts(black_box(batch.clone()))))
    });
}

criterion_group!(benches, frame, flood);
criterion_main!(benches);
