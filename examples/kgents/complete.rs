//! Completion for kubectl's plugin protocol: kubectl (1.26+) completes `kubectl kgents …` by
//! running `kubectl_complete-kgents` with the words after `kgents`, the last one being the word
//! under the cursor (possibly empty), and reads cobra's format back: one candidate per line
//! (an optional tab and description after it), then a line `:<directive>`.
//!
//! The candidates come from the clap definition itself (subcommands, flags, a flag's possible
//! values), so they never drift from what the parser accepts. Pure: [`complete`] maps words to
//! lines; `main` only prints them.

use clap::{Arg, Command};

/// Cobra's `ShellCompDirectiveNoFileComp`: do not fall back to file names.
const NO_FILE_COMPLETION: u8 = 4;

/// The lines kubectl expects for `words` (everything after `kgents`; the last is the word
/// being completed).
pub fn complete(root: &Command, words: &[String]) -> Vec<String> {
    let (current, before) = match words.split_last() {
        Some((current, before)) => (current.as_str(), before),
        None => ("", &[][..]),
    };
    let mut command = root;
    // Global flags (kubeconfig, namespace, …) stay completable below every subcommand.
    let globals: Vec<&Arg> = root.get_arguments().filter(|a| a.is_global_set()).collect();
    let mut pending_value: Option<&Arg> = None;
    for word in before {
        // The word after a flag that takes a value is that value, not a subcommand.
        if pending_value.take().is_some() {
            continue;
        }
        if word.starts_with('-') {
            if !word.contains('=')
                && let Some(arg) = find_flag(command, &globals, word)
                && arg.get_action().takes_values()
            {
                pending_value = Some(arg);
            }
            continue;
        }
        if let Some(sub) = command.find_subcommand(word) {
            command = sub;
        }
    }

    let mut lines: Vec<String> = Vec::new();
    if let Some(arg) = pending_value {
        lines.extend(
            possible_values(arg)
                .into_iter()
                .filter(|v| v.starts_with(current)),
        );
    } else if let Some((flag, value)) = current.split_once('=')
        && flag.starts_with("--")
    {
        if let Some(arg) = find_flag(command, &globals, flag) {
            lines.extend(
                possible_values(arg)
                    .into_iter()
                    .filter(|v| v.starts_with(value))
                    .map(|v| format!("{flag}={v}")),
            );
        }
    } else if current.starts_with('-') {
        let mut flags: Vec<(String, String)> = command
            .get_arguments()
            .chain(globals.iter().copied())
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long().map(|long| (format!("--{long}"), help_of(a))))
            .collect();
        flags.sort();
        flags.dedup_by(|a, b| a.0 == b.0);
        lines.extend(
            flags
                .into_iter()
                .filter(|(flag, _)| flag.starts_with(current))
                .map(|(flag, help)| described(flag, &help)),
        );
    } else {
        lines.extend(
            command
                .get_subcommands()
                .filter(|s| !s.is_hide_set())
                .filter(|s| s.get_name().starts_with(current))
                .map(|s| {
                    let help = s.get_about().map(|a| a.to_string()).unwrap_or_default();
                    described(s.get_name().to_owned(), &help)
                }),
        );
        // A positional with a fixed set of values (e.g. `get agents|pheromones|…`).
        if let Some(positional) = command.get_positionals().find(|a| !a.is_hide_set()) {
            let taken = before
                .iter()
                .skip_while(|w| command.get_name() != w.as_str())
                .skip(1)
                .filter(|w| !w.starts_with('-'))
                .count();
            if taken == 0 {
                lines.extend(
                    possible_values(positional)
                        .into_iter()
                        .filter(|v| v.starts_with(current)),
                );
            }
        }
    }
    lines.push(format!(":{NO_FILE_COMPLETION}"));
    lines
}

fn find_flag<'a>(command: &'a Command, globals: &[&'a Arg], word: &str) -> Option<&'a Arg> {
    let word = word.split_once('=').map_or(word, |(flag, _)| flag);
    let matches = |a: &&Arg| {
        if let Some(long) = word.strip_prefix("--") {
            a.get_long() == Some(long)
                || a.get_all_aliases()
                    .is_some_and(|aliases| aliases.contains(&long))
        } else if let Some(short) = word.strip_prefix('-') {
            let mut chars = short.chars();
            matches!((chars.next(), chars.next()), (Some(c), None) if a.get_short() == Some(c))
        } else {
            false
        }
    };
    command
        .get_arguments()
        .find(matches)
        .or_else(|| globals.iter().copied().find(matches))
}

fn possible_values(arg: &Arg) -> Vec<String> {
    arg.get_possible_values()
        .into_iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_owned())
        .collect()
}

fn help_of(arg: &Arg) -> String {
    arg.get_help().map(|h| h.to_string()).unwrap_or_default()
}

/// `candidate<TAB>first line of help`, as cobra prints descriptions.
fn described(candidate: String, help: &str) -> String {
    match help.lines().next().map(str::trim) {
        Some(first) if !first.is_empty() => format!("{candidate}\t{first}"),
        _ => candidate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn words(line: &str) -> Vec<String> {
        let mut words: Vec<String> = line.split(' ').map(str::to_owned).collect();
        if line.is_empty() {
            words = vec![String::new()];
        }
        words
    }

    fn candidates(line: &str) -> Vec<String> {
        let lines = complete(&crate::cli::Cli::command(), &words(line));
        assert_eq!(lines.last().map(String::as_str), Some(":4"), "{lines:?}");
        lines[..lines.len() - 1]
            .iter()
            .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn an_empty_word_lists_the_subcommands() {
        let found = candidates("");
        for expected in ["status", "get", "emit", "propose", "approve", "tether"] {
            assert!(
                found.iter().any(|c| c == expected),
                "{expected} in {found:?}"
            );
        }
        assert!(!found.iter().any(|c| c.starts_with('-')), "{found:?}");
    }

    #[test]
    fn a_prefix_narrows_and_descriptions_follow_a_tab() {
        assert_eq!(candidates("st"), ["status"]);
        let lines = complete(&crate::cli::Cli::command(), &words("sta"));
        assert!(lines[0].starts_with("status\t"), "{lines:?}");
    }

    #[test]
    fn a_subcommands_positional_values_and_flags_are_offered() {
        let kinds = candidates("get ");
        for expected in ["agents", "pheromones", "proposals"] {
            assert!(kinds.iter().any(|c| c == expected), "{kinds:?}");
        }
        assert!(!candidates("get agents ").contains(&"agents".to_owned()));
        let flags = candidates("get agents --o");
        assert!(flags.contains(&"--output".to_owned()), "{flags:?}");
        // global flags too, below a subcommand
        let flags = candidates("get agents --kube");
        assert!(flags.contains(&"--kubeconfig".to_owned()), "{flags:?}");
    }

    #[test]
    fn a_flags_value_is_completed_from_its_possible_values() {
        let formats = candidates("get agents -o ");
        for expected in ["json", "yaml", "wide", "name"] {
            assert!(formats.contains(&expected.to_owned()), "{formats:?}");
        }
        assert_eq!(candidates("get agents --output=ya"), ["--output=yaml"]);
    }

    #[test]
    fn unknown_words_complete_to_nothing_but_the_directive() {
        assert!(candidates("teleport --zz").is_empty());
    }
}
