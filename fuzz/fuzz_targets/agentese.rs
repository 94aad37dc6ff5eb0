//! AGENTESE paths, path templates and affordance globs.
//!
//! Properties: a path that parses prints back to exactly its input and re-parses equal; a
//! template likewise; a glob prints back to its input; a glob made of a path's own elements
//! grants that path, and with its last element replaced by `*` still does; a path's registry
//! match, when there is one, instantiates back to the same path. Nothing panics.
#![no_main]

use kgents_core::agentese::{AffordanceGlob, Affordances, Path, PathTemplate, Registry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Two inputs in one: "<path>\n<glob>" (a missing glob half is the path itself).
    let (path_text, glob_text) = text.split_once('\n').unwrap_or((text, text));

    if let Ok(path) = Path::parse(path_text) {
        let printed = path.to_string();
        assert_eq!(printed, path_text, "a parsed path prints back as written");
        assert_eq!(
            Path::parse(&printed).as_ref(),
            Ok(&path),
            "print → parse round trip"
        );
        assert!(path.element_count() >= 2 && !path.segments().is_empty());
        assert_eq!(path.elements().count(), path.element_count());

        // The path's own elements as a glob grant it; so do the same with a trailing `*`
        // (when there is something after the prefix) and `*` alone.
        let own = AffordanceGlob::parse(&printed).expect("a path is a valid glob");
        assert!(own.matches(&path), "{own} must grant {path}");
        let elements: Vec<&str> = path.elements().collect();
        let prefix = elements[..elements.len() - 1].join(".");
        let widened = AffordanceGlob::parse(&format!("{prefix}.*")).expect("a valid glob");
        assert!(widened.matches(&path), "{widened} must grant {path}");
        assert!(AffordanceGlob::parse("*").expect("valid").matches(&path));
        // Nothing granted means denied.
        assert!(!Affordances::deny_all().allows(&path));

        // The seed registry: a match instantiates back to the same path.
        let registry = Registry::seed();
        if let Some(found) = registry.by_path(&path) {
            let bindings: Vec<(&str, &str)> = found
                .entry
                .template()
                .placeholders()
                .filter_map(|name| found.binding(name).map(|s| (name, s.as_str())))
                .collect();
            let again = found
                .entry
                .template()
                .instantiate(&bindings)
                .expect("a matched template instantiates with its own bindings");
            assert_eq!(again, path, "registry match → instantiate round trip");
        }
    }

    if let Ok(template) = PathTemplate::parse(path_text) {
        let printed = template.to_string();
        let again = PathTemplate::parse(&printed).expect("a printed template parses");
        assert_eq!(again, template, "template print → parse round trip");
    }

    if let Ok(glob) = AffordanceGlob::parse(glob_text) {
        assert_eq!(
            glob.to_string(),
            glob_text,
            "a parsed glob prints back as written"
        );
        let affordances = Affordances::parse_all([glob_text]).expect("one valid glob");
        if let Ok(path) = Path::parse(path_text) {
            assert_eq!(glob.matches(&path), affordances.allows(&path));
            assert_eq!(
                affordances.granting(&path).is_some(),
                affordances.allows(&path)
            );
        }
    }
});
