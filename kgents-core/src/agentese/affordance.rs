//! Affordance globs: which AGENTESE paths an agent may use. **Nothing matching means denied.**
//!
//! A glob is dot-separated elements like a path. Each element is a literal (a context name in first
//! position, otherwise a segment or aspect verb) or `*`:
//!
//! - a `*` that is **not** last matches **exactly one** element: `world.*.manifest` matches
//!   `world.cluster.manifest` but not `world.cluster.agents.manifest`;
//! - a `*` that **is** last matches **any non-empty suffix**: `self.memory.*` matches
//!   `self.memory.store.manifest` and `self.memory.define` but not `self.memory`;
//! - a glob that is just `*` therefore matches every path (grant it deliberately).
//!
//! `*` must be a whole element (`wor*` is rejected), so a typo cannot silently widen a grant.

use std::fmt;
use std::str::FromStr;

use super::path::{Context, MAX_PATH_LEN, MAX_SEGMENTS, Path, is_segment_byte};
use crate::error::{Error, excerpt};

/// One element of a glob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum GlobElement {
    /// `*`.
    Any,
    /// A literal element that must be equal.
    Literal(String),
}

/// A parsed affordance glob, e.g. `world.*.manifest` or `self.memory.*`. See the
/// [module docs](self) for the matching rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AffordanceGlob {
    elements: Vec<GlobElement>,
}

impl AffordanceGlob {
    /// Parses a glob. Errors say which element was wrong and why.
    pub fn parse(input: &str) -> Result<AffordanceGlob, Error> {
        let fail = |element: usize, found: &str, reason: &'static str| Error::InvalidGlob {
            glob: excerpt(input),
            element,
            found: excerpt(found),
            reason,
        };
        if input.len() > MAX_PATH_LEN {
            return Err(fail(0, "", "makes the glob longer than 1024 bytes"));
        }
        let mut elements = Vec::new();
        for (index, text) in input.split('.').enumerate() {
            if index >= MAX_SEGMENTS + 2 {
                return Err(fail(index, text, "exceeds the limit of 34 elements"));
            }
            if text == "*" {
                elements.push(GlobElement::Any);
                continue;
            }
            if text.is_empty() {
                return Err(fail(
                    index,
                    text,
                    "is empty (two dots in a row, a leading or trailing dot, or an empty glob)",
                ));
            }
            if text.contains('*') {
                return Err(fail(
                    index,
                    text,
                    "mixes `*` with other characters; `*` must be a whole element",
                ));
            }
            if !text.bytes().all(is_segment_byte) {
                return Err(fail(
                    index,
                    text,
                    "contains a character other than lowercase a-z, 0-9, '-' or '_'",
                ));
            }
            if index == 0 && text.parse::<Context>().is_err() {
                return Err(fail(
                    index,
                    text,
                    "is not a context (world, self, concept, void, time) or `*`",
                ));
            }
            elements.push(GlobElement::Literal(text.to_owned()));
        }
        Ok(AffordanceGlob { elements })
    }

    /// Whether this glob grants `path`.
    pub fn matches(&self, path: &Path) -> bool {
        let Some((last, fixed)) = self.elements.split_last() else {
            return false;
        };
        let mut path_elements = path.elements();
        for glob_element in fixed {
            match path_elements.next() {
                Some(element) if element_matches(glob_element, element) => {}
                _ => return false,
            }
        }
        match last {
            // Trailing `*`: any non-empty suffix.
            GlobElement::Any => path_elements.next().is_some(),
            GlobElement::Literal(literal) => {
                path_elements.next() == Some(literal.as_str()) && path_elements.next().is_none()
            }
        }
    }
}

fn element_matches(glob: &GlobElement, element: &str) -> bool {
    match glob {
        GlobElement::Any => true,
        GlobElement::Literal(literal) => literal == element,
    }
}

impl fmt::Display for AffordanceGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, element) in self.elements.iter().enumerate() {
            if index > 0 {
                f.write_str(".")?;
            }
            match element {
                GlobElement::Any => f.write_str("*")?,
                GlobElement::Literal(literal) => f.write_str(literal)?,
            }
        }
        Ok(())
    }
}

impl FromStr for AffordanceGlob {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AffordanceGlob::parse(s)
    }
}

impl serde::Serialize for AffordanceGlob {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for AffordanceGlob {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GlobVisitor;
        impl serde::de::Visitor<'_> for GlobVisitor {
            type Value = AffordanceGlob;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an affordance glob such as `world.*.manifest`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AffordanceGlob, E> {
                AffordanceGlob::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(GlobVisitor)
    }
}

/// A set of affordance globs. [`allows`](Affordances::allows) is true only when some glob matches:
/// an empty set denies everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Affordances {
    globs: Vec<AffordanceGlob>,
}

impl Affordances {
    /// The empty set, which denies every path.
    pub fn deny_all() -> Affordances {
        Affordances::default()
    }

    /// Parses every glob; the first malformed one is the error.
    pub fn parse_all<I>(globs: I) -> Result<Affordances, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        globs
            .into_iter()
            .map(|g| AffordanceGlob::parse(g.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(|globs| Affordances { globs })
    }

    /// Adds a glob.
    pub fn push(&mut self, glob: AffordanceGlob) {
        self.globs.push(glob);
    }

    /// Whether some glob grants `path`. **False when nothing matches** (deny by default).
    pub fn allows(&self, path: &Path) -> bool {
        self.granting(path).is_some()
    }

    /// The first glob that grants `path`, to explain a decision; `None` means denied.
    pub fn granting(&self, path: &Path) -> Option<&AffordanceGlob> {
        self.globs.iter().find(|glob| glob.matches(path))
    }

    /// The globs, in the order given.
    pub fn globs(&self) -> &[AffordanceGlob] {
        &self.globs
    }

    /// Whether there are no globs (and so everything is denied).
    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }
}

impl FromIterator<AffordanceGlob> for Affordances {
    fn from_iter<T: IntoIterator<Item = AffordanceGlob>>(iter: T) -> Self {
        Affordances {
            globs: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> Path {
        Path::parse(s).unwrap()
    }

    fn glob(s: &str) -> AffordanceGlob {
        AffordanceGlob::parse(s).unwrap()
    }

    #[test]
    fn nothing_matching_is_denied() {
        assert!(!Affordances::deny_all().allows(&path("void.pheromone.sense")));
        let some = Affordances::parse_all(["world.*.manifest"]).unwrap();
        assert!(!some.allows(&path("void.pheromone.sense")));
        assert!(some.allows(&path("world.cluster.manifest")));
        assert_eq!(
            some.granting(&path("world.cluster.manifest"))
                .map(ToString::to_string),
            Some("world.*.manifest".to_owned())
        );
    }

    #[test]
    fn inner_star_matches_exactly_one_element() {
        let g = glob("world.*.manifest");
        assert!(g.matches(&path("world.cluster.manifest")));
        assert!(!g.matches(&path("world.cluster.agents.manifest")));
        assert!(!g.matches(&path("world.cluster.witness")));
        assert!(!g.matches(&path("self.cluster.manifest")));
        let g = glob("concept.*.refine");
        assert!(g.matches(&path("concept.idea.refine")));
        assert!(!g.matches(&path("concept.refine")));
    }

    #[test]
    fn trailing_star_matches_any_non_empty_suffix() {
        let g = glob("self.memory.*");
        assert!(g.matches(&path("self.memory.define")));
        assert!(g.matches(&path("self.memory.store.manifest")));
        assert!(g.matches(&path("self.memory.a.b.c.d")));
        assert!(!g.matches(&path("self.memory")));
        assert!(!g.matches(&path("self.memoryx.define")));
        assert!(glob("*").matches(&path("time.witness")));
        assert!(glob("*.pheromone.sense").matches(&path("void.pheromone.sense")));
    }

    #[test]
    fn literal_glob_matches_only_itself() {
        let g = glob("void.pheromone.sense");
        assert!(g.matches(&path("void.pheromone.sense")));
        assert!(!g.matches(&path("void.pheromone.sense.emit")));
        assert!(!g.matches(&path("void.pheromone")));
    }

    #[test]
    fn malformed_globs_are_rejected_with_the_element() {
        for (bad, element) in [
            ("", 0),
            ("world..manifest", 1),
            ("world.clu*.manifest", 1),
            ("wrld.*", 0),
            ("world.Cluster", 1),
            ("world.**", 1),
            ("world.*.", 2),
        ] {
            match AffordanceGlob::parse(bad) {
                Err(Error::InvalidGlob { element: e, .. }) => assert_eq!(e, element, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(AffordanceGlob::parse(&"a.".repeat(600)).is_err());
        assert!(Affordances::parse_all(["world.*", "bad glob"]).is_err());
    }

    #[test]
    fn globs_round_trip_through_text_and_serde() {
        for text in ["world.*.manifest", "self.memory.*", "*", "*.x.*"] {
            assert_eq!(glob(text).to_string(), text);
        }
        let set = Affordances::parse_all(["world.*.manifest", "self.memory.*"]).unwrap();
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["world.*.manifest","self.memory.*"]"#);
        assert_eq!(serde_json::from_str::<Affordances>(&json).unwrap(), set);
        assert!(serde_json::from_str::<Affordances>(r#"["wor*"]"#).is_err());
    }
}
