//! The closest registered paths to an unknown one, by edit distance over the path text.

use kgents_core::agentese::Registry;

/// Levenshtein distance between `a` and `b`, counted in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// Up to `limit` registered templates closest to `path`, closest first (ties in table order).
/// Placeholders are compared with the concrete segment the user wrote in their place when the
/// shapes agree, so `world.cluster.agent.b-gent.tether` suggests
/// `world.cluster.agents.<agent>.tether`.
pub fn closest(registry: &Registry, path: &str, limit: usize) -> Vec<String> {
    let mut scored: Vec<(usize, usize, String)> = registry
        .entries()
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let template = entry.template().to_string();
            let filled = fill_placeholders(&template, path);
            (edit_distance(path, &filled), index, template)
        })
        .collect();
    scored.sort();
    scored.into_iter().take(limit).map(|(_, _, t)| t).collect()
}

/// `template` with each `<name>` element replaced by the element of `path` at the same position
/// (when `path` has one).
fn fill_placeholders(template: &str, path: &str) -> String {
    let given: Vec<&str> = path.split('.').collect();
    template
        .split('.')
        .enumerate()
        .map(|(i, element)| {
            if element.starts_with('<') {
                given.get(i).copied().unwrap_or(element)
            } else {
                element
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            edit_distance("void.pheromone.sens", "void.pheromone.sense"),
            1
        );
    }

    #[test]
    fn typos_find_their_path() {
        let registry = Registry::seed();
        assert_eq!(
            closest(&registry, "void.pheromon.sense", 1),
            ["void.pheromone.sense"]
        );
        assert_eq!(
            closest(&registry, "world.cluster.agent.b-gent.tether", 1),
            ["world.cluster.agents.<agent>.tether"]
        );
        assert_eq!(closest(&registry, "self.deployment.defin", 3).len(), 3);
    }
}
