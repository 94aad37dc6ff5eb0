//! Printing: kubectl-style tables (UPPERCASE headers, borderless, `<none>` for empty cells),
//! JSON, YAML and `-o name`. Data goes to stdout; diagnostics to stderr (see [`note`]).

use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::cli::Output;

/// A table: headers, and rows (the first `narrow` columns in `table`, all in `wide`).
pub struct Table {
    /// Column headers.
    pub headers: Vec<&'static str>,
    /// Columns shown without `-o wide`.
    pub narrow: usize,
    /// Rows.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Renders the table as text.
    pub fn render(&self, wide: bool) -> String {
        let columns = if wide {
            self.headers.len()
        } else {
            self.narrow.min(self.headers.len())
        };
        let cell = |s: &str| {
            if s.is_empty() {
                "<none>".to_owned()
            } else {
                s.to_owned()
            }
        };
        let mut widths: Vec<usize> = self.headers[..columns].iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (i, value) in row.iter().take(columns).enumerate() {
                widths[i] = widths[i].max(cell(value).chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |values: Vec<String>| {
            let mut text = String::new();
            for (i, value) in values.iter().enumerate() {
                if i + 1 == values.len() {
                    text.push_str(value);
                } else {
                    text.push_str(&format!("{value:<width$}   ", width = widths[i]));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(
            self.headers[..columns]
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
        );
        for row in &self.rows {
            line(row.iter().take(columns).map(|v| cell(v)).collect());
        }
        out
    }
}

/// Prints `value` as JSON or YAML, or `table` / `names` for the other formats.
pub fn print<T: Serialize>(
    output: Output,
    value: &T,
    table: impl FnOnce() -> Table,
    names: impl FnOnce() -> Vec<String>,
) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match output {
        Output::Json => {
            let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
            writeln!(stdout, "{text}")
        }
        Output::Yaml => {
            let text = serde_saphyr::to_string(value).map_err(std::io::Error::other)?;
            write!(stdout, "{text}")
        }
        Output::Name => {
            for name in names() {
                writeln!(stdout, "{name}")?;
            }
            Ok(())
        }
        Output::Table | Output::Wide => {
            let table = table();
            if table.rows.is_empty() {
                note("No resources found.");
                Ok(())
            } else {
                write!(stdout, "{}", table.render(output == Output::Wide))
            }
        }
    }
}

/// Whether to colour stderr: a terminal, and `NO_COLOR` unset or empty.
pub fn colour() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// A diagnostic line on stderr.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// The `[GHOST]` mark, yellow when colour is on.
pub fn ghost_mark() -> &'static str {
    if colour() {
        "\x1b[33m[GHOST]\x1b[0m"
    } else {
        "[GHOST]"
    }
}

/// `0.42`.
pub fn fixed(value: f64) -> String {
    format!("{value:.2}")
}

/// A humanized duration: `42s`, `5m`, `2h3m`, `4d`.
pub fn human(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return String::new();
    }
    let s = seconds as u64;
    match s {
        0..120 => format!("{s}s"),
        120..3_600 => format!("{}m", s / 60),
        3_600..86_400 => format!("{}h{}m", s / 3_600, (s % 3_600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3_600),
    }
}

/// The age of `at` now, humanized.
pub fn age(at: jiff::Timestamp) -> String {
    human(jiff::Timestamp::now().duration_since(at).as_secs_f64())
}

/// `print!` to stdout that returns the write's error instead of panicking: a reader that closes
/// the pipe early (`kgents get agents | head -1`) ends the command quietly (see `main`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `println!` to stdout that returns the write's error instead of panicking (see [`out!`]).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

pub(crate) use {out, outln};
