//! Typed AGENTESE paths: `context.segment[.segment…][.aspect]`.
//!
//! # Grammar
//!
//! A path is dot-separated elements. The first element is the [`Context`] (`world`, `self`,
//! `concept`, `void`, `time`). Every further element is a [`Segment`]: non-empty, made of lowercase
//! ASCII letters, digits, `-` and `_` (agent names such as `b-gent` are segments).
//!
//! # How the aspect is told apart from segments
//!
//! The **last** element is the [`Aspect`] when it is one of the known aspect verbs
//! ([`Aspect::ALL`]: `manifest`, `witness`, `sense`, `emit`, …) **and** at least one segment
//! precedes it. Otherwise every element after the context is a segment. So:
//!
//! | path | segments | aspect |
//! |---|---|---|
//! | `void.pheromone.sense` | `pheromone` | `sense` |
//! | `world.cluster.agents.manifest` | `cluster`, `agents` | `manifest` |
//! | `time.witness.b-gent.replay` | `witness`, `b-gent` | `replay` |
//! | `time.witness` | `witness` | — |
//! | `world.cluster.agents` | `cluster`, `agents` | — |
//!
//! The consequence, kept as an invariant so that printing and parsing round-trip: a [`Path`]
//! without an aspect cannot end in an aspect verb after two or more segments
//! ([`PathError::AmbiguousAspect`]). Name such a thing with an explicit aspect instead.
//!
//! # Limits
//!
//! At most [`MAX_PATH_LEN`] bytes and [`MAX_SEGMENTS`] segments (the aspect is not counted).

use std::fmt;
use std::str::FromStr;

use crate::error::excerpt;

/// The longest accepted path, in bytes (valid paths are ASCII, so also in characters).
pub const MAX_PATH_LEN: usize = 1024;

/// The most segments a path may have (the context and the aspect are not counted).
pub const MAX_SEGMENTS: usize = 32;

/// What characters a segment may contain (used in error messages).
const SEGMENT_CHARSET: &str = "lowercase ASCII letters a-z, digits 0-9, '-' or '_'";

/// Why an AGENTESE path (or one of its parts) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The input was empty.
    #[error(
        "empty AGENTESE path; expected `context.segment[.segment…][.aspect]`, e.g. `void.pheromone.sense`"
    )]
    Empty,

    /// The input was longer than [`MAX_PATH_LEN`].
    #[error("AGENTESE path is {length} bytes long; at most {max} are allowed")]
    TooLong {
        /// Length of the input in bytes.
        length: usize,
        /// The limit.
        max: usize,
    },

    /// The path had more than [`MAX_SEGMENTS`] segments.
    #[error("AGENTESE path has {count} segments; at most {max} are allowed")]
    TooManySegments {
        /// Number of segments found (at least `max + 1`).
        count: usize,
        /// The limit.
        max: usize,
    },

    /// The first element was not a context.
    #[error(
        "unknown AGENTESE context {found:?}; the first element must be one of world, self, \
         concept, void, time (lowercase)"
    )]
    UnknownContext {
        /// The rejected first element (shortened when very long).
        found: String,
    },

    /// The path was only a context.
    #[error("AGENTESE path {context:?} has no segment; expected at least `{context}.<segment>`")]
    MissingSegment {
        /// The context that was given alone.
        context: String,
    },

    /// Two dots in a row, or a leading/trailing dot.
    #[error(
        "empty element {element} at character {position} of the AGENTESE path (two dots in a row, \
         or a leading or trailing dot); expected a segment of {SEGMENT_CHARSET}",
        SEGMENT_CHARSET = SEGMENT_CHARSET
    )]
    EmptySegment {
        /// Zero-based index of the empty element (0 is the context).
        element: usize,
        /// Zero-based character offset where the element should start.
        position: usize,
    },

    /// A segment contained a character outside its charset.
    #[error(
        "invalid character {character:?} at character {position} in element {element} ({segment:?}) \
         of the AGENTESE path; expected {SEGMENT_CHARSET}",
        SEGMENT_CHARSET = SEGMENT_CHARSET
    )]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Zero-based character offset of it in the whole input.
        position: usize,
        /// Zero-based index of the element holding it (0 is the context).
        element: usize,
        /// The element holding it (shortened when very long).
        segment: String,
    },

    /// A path was built without an aspect but its last segment is an aspect verb, so it would print
    /// as a path that parses back with an aspect.
    #[error(
        "segment {segment:?} is an aspect verb and cannot end a path without an aspect (it would be \
         read back as the aspect); give it as the aspect instead"
    )]
    AmbiguousAspect {
        /// The trailing segment.
        segment: String,
    },

    /// A string did not name an aspect.
    #[error("unknown aspect {found:?}; expected one of {expected}")]
    UnknownAspect {
        /// The rejected input (shortened when very long).
        found: String,
        /// The known aspects, comma-separated.
        expected: &'static str,
    },
}

/// The five AGENTESE contexts: where a path points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Context {
    /// `world`: the cluster and everything outside the agent.
    World,
    /// `self`: the agent's own memory, governance and umwelt.
    Self_,
    /// `concept`: ideas and abstractions.
    Concept,
    /// `void`: the shared medium (pheromones).
    Void,
    /// `time`: history, traces and replay.
    Time,
}

impl Context {
    /// All contexts, in declaration order.
    pub const ALL: [Context; 5] = [
        Context::World,
        Context::Self_,
        Context::Concept,
        Context::Void,
        Context::Time,
    ];

    /// The lowercase name used in paths.
    pub const fn as_str(self) -> &'static str {
        match self {
            Context::World => "world",
            Context::Self_ => "self",
            Context::Concept => "concept",
            Context::Void => "void",
            Context::Time => "time",
        }
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Context {
    type Err = PathError;

    /// Parses a lowercase context name (`world`, `self`, `concept`, `void`, `time`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "world" => Ok(Context::World),
            "self" => Ok(Context::Self_),
            "concept" => Ok(Context::Concept),
            "void" => Ok(Context::Void),
            "time" => Ok(Context::Time),
            _ => Err(PathError::UnknownContext { found: excerpt(s) }),
        }
    }
}

/// The known aspect verbs: what is done at a path. See the [module docs](self) for how an aspect is
/// told apart from a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Aspect {
    /// `manifest`: show the current state.
    Manifest,
    /// `witness`: show history, logs or events.
    Witness,
    /// `sense`: read signals from the medium.
    Sense,
    /// `emit`: write a signal into the medium.
    Emit,
    /// `define`: create something (e.g. file a proposal).
    Define,
    /// `refine`: change something that exists.
    Refine,
    /// `tether`: attach to a running agent.
    Tether,
    /// `replay`: reconstruct a past course of events.
    Replay,
    /// `scale`: change the number of replicas.
    Scale,
    /// `terminate`: stop and remove.
    Terminate,
    /// `rollback`: return to an earlier version.
    Rollback,
    /// `compost`: retire with a grace period.
    Compost,
    /// `approve`: record an approval.
    Approve,
    /// `reject`: record a rejection.
    Reject,
}

/// Comma-separated names of all aspects, for error messages.
const ASPECT_NAMES: &str = "manifest, witness, sense, emit, define, refine, tether, replay, scale, \
                            terminate, rollback, compost, approve, reject";

impl Aspect {
    /// All aspects, in declaration order.
    pub const ALL: [Aspect; 14] = [
        Aspect::Manifest,
        Aspect::Witness,
        Aspect::Sense,
        Aspect::Emit,
        Aspect::Define,
        Aspect::Refine,
        Aspect::Tether,
        Aspect::Replay,
        Aspect::Scale,
        Aspect::Terminate,
        Aspect::Rollback,
        Aspect::Compost,
        Aspect::Approve,
        Aspect::Reject,
    ];

    /// The lowercase verb used in paths.
    pub const fn as_str(self) -> &'static str {
        match self {
            Aspect::Manifest => "manifest",
            Aspect::Witness => "witness",
            Aspect::Sense => "sense",
            Aspect::Emit => "emit",
            Aspect::Define => "define",
            Aspect::Refine => "refine",
            Aspect::Tether => "tether",
            Aspect::Replay => "replay",
            Aspect::Scale => "scale",
            Aspect::Terminate => "terminate",
            Aspect::Rollback => "rollback",
            Aspect::Compost => "compost",
            Aspect::Approve => "approve",
            Aspect::Reject => "reject",
        }
    }

    /// The aspect named exactly `s` (lowercase), if any.
    pub fn from_verb(s: &str) -> Option<Aspect> {
        Some(match s {
            "manifest" => Aspect::Manifest,
            "witness" => Aspect::Witness,
            "sense" => Aspect::Sense,
            "emit" => Aspect::Emit,
            "define" => Aspect::Define,
            "refine" => Aspect::Refine,
            "tether" => Aspect::Tether,
            "replay" => Aspect::Replay,
            "scale" => Aspect::Scale,
            "terminate" => Aspect::Terminate,
            "rollback" => Aspect::Rollback,
            "compost" => Aspect::Compost,
            "approve" => Aspect::Approve,
            "reject" => Aspect::Reject,
            _ => return None,
        })
    }
}

impl fmt::Display for Aspect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Aspect {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Aspect::from_verb(s).ok_or_else(|| PathError::UnknownAspect {
            found: excerpt(s),
            expected: ASPECT_NAMES,
        })
    }
}

/// One validated path segment: non-empty; lowercase ASCII letters, digits, `-`, `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Segment(String);

impl Segment {
    /// Validates `s` as a segment.
    pub fn new(s: impl Into<String>) -> Result<Segment, PathError> {
        let s = s.into();
        validate_segment(&s, 1, 0)?;
        Ok(Segment(s))
    }

    /// The segment text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this segment's text is one of the aspect verbs.
    pub fn is_aspect_verb(&self) -> bool {
        Aspect::from_verb(&self.0).is_some()
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Segment {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Segment::new(s)
    }
}

impl AsRef<str> for Segment {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Segment {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Segment {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Whether `b` may appear in a segment.
#[inline]
pub(crate) fn is_segment_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
}

/// Checks one element of a path. `element` is its index (0 = context) and `byte_offset` where it
/// starts in `whole` (used to report a character position).
fn validate_segment_in(
    whole: &str,
    text: &str,
    element: usize,
    byte_offset: usize,
) -> Result<(), PathError> {
    if text.is_empty() {
        return Err(PathError::EmptySegment {
            element,
            position: whole[..byte_offset].chars().count(),
        });
    }
    if let Some(bad) = text.bytes().position(|b| !is_segment_byte(b)) {
        // `bad` is a byte index of a non-segment byte; every byte before it is ASCII, so it is also
        // a char boundary.
        let character = text[bad..].chars().next().unwrap_or('\u{FFFD}');
        return Err(PathError::InvalidCharacter {
            character,
            position: whole[..byte_offset].chars().count() + bad,
            element,
            segment: excerpt(text),
        });
    }
    Ok(())
}

fn validate_segment(text: &str, element: usize, byte_offset: usize) -> Result<(), PathError> {
    validate_segment_in(text, text, element, byte_offset)
}

/// A parsed AGENTESE path. Construct with [`Path::parse`] / [`str::parse`] or [`Path::new`]; every
/// value prints (via [`Display`](fmt::Display)) to a string that parses back to an equal value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path {
    context: Context,
    segments: Vec<Segment>,
    aspect: Option<Aspect>,
}

impl Path {
    /// Builds a path from parts, checking the invariants of the [module docs](self): at least one
    /// segment, at most [`MAX_SEGMENTS`], at most [`MAX_PATH_LEN`] bytes printed, and no trailing
    /// aspect verb after two or more segments when `aspect` is `None`.
    pub fn new(
        context: Context,
        segments: Vec<Segment>,
        aspect: Option<Aspect>,
    ) -> Result<Path, PathError> {
        if segments.is_empty() {
            return Err(PathError::MissingSegment {
                context: context.as_str().to_owned(),
            });
        }
        if segments.len() > MAX_SEGMENTS {
            return Err(PathError::TooManySegments {
                count: segments.len(),
                max: MAX_SEGMENTS,
            });
        }
        if aspect.is_none()
            && segments.len() >= 2
            && let Some(last) = segments.last().filter(|s| s.is_aspect_verb())
        {
            return Err(PathError::AmbiguousAspect {
                segment: last.as_str().to_owned(),
            });
        }
        let path = Path {
            context,
            segments,
            aspect,
        };
        let length = path.printed_len();
        if length > MAX_PATH_LEN {
            return Err(PathError::TooLong {
                length,
                max: MAX_PATH_LEN,
            });
        }
        Ok(path)
    }

    /// Parses `input` as an AGENTESE path. Never panics; see [`PathError`] for what is rejected.
    pub fn parse(input: &str) -> Result<Path, PathError> {
        if input.is_empty() {
            return Err(PathError::Empty);
        }
        if input.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong {
                length: input.len(),
                max: MAX_PATH_LEN,
            });
        }
        let mut elements = input.split('.');
        // `split` always yields at least one element.
        let first = elements.next().unwrap_or_default();
        let context = match Context::from_str(first) {
            Ok(context) => context,
            Err(err) => {
                // A context with a bad character deserves the precise message.
                if first.is_empty() {
                    return Err(PathError::EmptySegment {
                        element: 0,
                        position: 0,
                    });
                }
                validate_segment_in(input, first, 0, 0)?;
                return Err(err);
            }
        };
        let mut segments: Vec<Segment> = Vec::with_capacity(4);
        let mut offset = first.len() + 1;
        for (index, text) in elements.enumerate() {
            let element = index + 1;
            validate_segment_in(input, text, element, offset)?;
            // One extra element is allowed for the aspect.
            if segments.len() > MAX_SEGMENTS {
                return Err(PathError::TooManySegments {
                    count: segments.len() + 1,
                    max: MAX_SEGMENTS,
                });
            }
            segments.push(Segment(text.to_owned()));
            offset += text.len() + 1;
        }
        if segments.is_empty() {
            return Err(PathError::MissingSegment {
                context: context.as_str().to_owned(),
            });
        }
        let mut aspect = None;
        if segments.len() >= 2
            && let Some(verb) = segments.last().and_then(|s| Aspect::from_verb(&s.0))
        {
            aspect = Some(verb);
            segments.pop();
        }
        if segments.len() > MAX_SEGMENTS {
            return Err(PathError::TooManySegments {
                count: segments.len(),
                max: MAX_SEGMENTS,
            });
        }
        Ok(Path {
            context,
            segments,
            aspect,
        })
    }

    /// The context (first element).
    pub fn context(&self) -> Context {
        self.context
    }

    /// The segments between the context and the aspect (never empty).
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The aspect, when the path names one.
    pub fn aspect(&self) -> Option<Aspect> {
        self.aspect
    }

    /// Every element as text, in order: the context, the segments, then the aspect if any.
    pub fn elements(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        std::iter::once(self.context.as_str())
            .chain(self.segments.iter().map(Segment::as_str))
            .chain(self.aspect.map(Aspect::as_str))
    }

    /// Number of elements (context + segments + aspect).
    pub fn element_count(&self) -> usize {
        1 + self.segments.len() + usize::from(self.aspect.is_some())
    }

    /// The same path with `aspect` as its aspect (replacing any).
    pub fn with_aspect(&self, aspect: Aspect) -> Path {
        Path {
            context: self.context,
            segments: self.segments.clone(),
            aspect: Some(aspect),
        }
    }

    /// Length of the printed form in bytes.
    fn printed_len(&self) -> usize {
        self.elements().map(|e| e.len() + 1).sum::<usize>() - 1
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.context.as_str())?;
        for segment in &self.segments {
            f.write_str(".")?;
            f.write_str(&segment.0)?;
        }
        if let Some(aspect) = self.aspect {
            f.write_str(".")?;
            f.write_str(aspect.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for Path {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Path::parse(s)
    }
}

impl TryFrom<&str> for Path {
    type Error = PathError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Path::parse(s)
    }
}

impl serde::Serialize for Path {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Path {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PathVisitor;
        impl serde::de::Visitor<'_> for PathVisitor {
            type Value = Path;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an AGENTESE path such as `void.pheromone.sense`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Path, E> {
                Path::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(PathVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        Path::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_documented_examples_parse_and_round_trip() {
        let cases: [(&str, Context, &[&str], Option<Aspect>); 7] = [
            (
                "void.pheromone.sense",
                Context::Void,
                &["pheromone"],
                Some(Aspect::Sense),
            ),
            (
                "world.cluster.agents.manifest",
                Context::World,
                &["cluster", "agents"],
                Some(Aspect::Manifest),
            ),
            (
                "self.governance.proposal.define",
                Context::Self_,
                &["governance", "proposal"],
                Some(Aspect::Define),
            ),
            (
                "time.witness.b-gent.replay",
                Context::Time,
                &["witness", "b-gent"],
                Some(Aspect::Replay),
            ),
            ("time.witness", Context::Time, &["witness"], None),
            (
                "world.cluster.agents",
                Context::World,
                &["cluster", "agents"],
                None,
            ),
            (
                "concept.x_1.refine",
                Context::Concept,
                &["x_1"],
                Some(Aspect::Refine),
            ),
        ];
        for (text, context, segments, aspect) in cases {
            let path = p(text);
            assert_eq!(path.context(), context, "{text}");
            assert_eq!(
                path.segments()
                    .iter()
                    .map(Segment::as_str)
                    .collect::<Vec<_>>(),
                segments,
                "{text}"
            );
            assert_eq!(path.aspect(), aspect, "{text}");
            assert_eq!(path.to_string(), text);
            assert_eq!(path.elements().collect::<Vec<_>>().join("."), text);
            assert_eq!(path.element_count(), text.split('.').count());
        }
    }

    #[test]
    fn errors_name_the_bad_character_and_element() {
        match Path::parse("world.clUster.manifest") {
            Err(PathError::InvalidCharacter {
                character,
                position,
                element,
                segment,
            }) => {
                assert_eq!(character, 'U');
                assert_eq!(position, 8);
                assert_eq!(element, 1);
                assert_eq!(segment, "clUster");
            }
            other => panic!("unexpected {other:?}"),
        }
        match Path::parse("void.phé.sense") {
            Err(PathError::InvalidCharacter {
                character,
                position,
                ..
            }) => {
                assert_eq!(character, 'é');
                assert_eq!(position, 7);
            }
            other => panic!("unexpected {other:?}"),
        }
        let message = Path::parse("world.a b").unwrap_err().to_string();
        assert!(
            message.contains("' '") && message.contains("lowercase"),
            "{message}"
        );
    }

    #[test]
    fn structural_errors() {
        assert_eq!(Path::parse(""), Err(PathError::Empty));
        assert_eq!(
            Path::parse("world"),
            Err(PathError::MissingSegment {
                context: "world".into()
            })
        );
        assert_eq!(
            Path::parse("world..manifest"),
            Err(PathError::EmptySegment {
                element: 1,
                position: 6
            })
        );
        assert_eq!(
            Path::parse(".world.x"),
            Err(PathError::EmptySegment {
                element: 0,
                position: 0
            })
        );
        assert_eq!(
            Path::parse("world.x."),
            Err(PathError::EmptySegment {
                element: 2,
                position: 8
            })
        );
        assert!(matches!(
            Path::parse("earth.x"),
            Err(PathError::UnknownContext { .. })
        ));
        assert!(matches!(
            Path::parse("World.x"),
            Err(PathError::InvalidCharacter { character: 'W', .. })
        ));
        let long = format!("world.{}", "a".repeat(2000));
        assert_eq!(
            Path::parse(&long),
            Err(PathError::TooLong {
                length: 2006,
                max: MAX_PATH_LEN
            })
        );
    }

    #[test]
    fn segment_limit_counts_segments_not_the_aspect() {
        let segs = vec!["s"; MAX_SEGMENTS].join(".");
        let ok = p(&format!("world.{segs}.manifest"));
        assert_eq!(ok.segments().len(), MAX_SEGMENTS);
        assert!(p(&format!("world.{segs}")).aspect().is_none());
        assert_eq!(
            Path::parse(&format!("world.{segs}.s")),
            Err(PathError::TooManySegments {
                count: MAX_SEGMENTS + 1,
                max: MAX_SEGMENTS
            })
        );
        assert!(matches!(
            Path::parse(&format!("world.{segs}.s.s.s.s")),
            Err(PathError::TooManySegments { .. })
        ));
    }

    #[test]
    fn new_rejects_what_would_not_round_trip() {
        let seg = |s: &str| Segment::new(s).unwrap();
        assert!(matches!(
            Path::new(Context::World, vec![seg("cluster"), seg("manifest")], None),
            Err(PathError::AmbiguousAspect { .. })
        ));
        let lone = Path::new(Context::Time, vec![seg("witness")], None).unwrap();
        assert_eq!(p(&lone.to_string()), lone);
        let explicit = Path::new(
            Context::World,
            vec![seg("cluster"), seg("manifest")],
            Some(Aspect::Witness),
        )
        .unwrap();
        assert_eq!(explicit.to_string(), "world.cluster.manifest.witness");
        assert_eq!(p(&explicit.to_string()), explicit);
        assert!(matches!(
            Path::new(Context::World, vec![], Some(Aspect::Manifest)),
            Err(PathError::MissingSegment { .. })
        ));
        assert!(matches!(
            Path::new(Context::World, vec![seg(&"a".repeat(1100))], None),
            Err(PathError::TooLong { .. })
        ));
        assert!(Segment::new("").is_err());
        assert!(Segment::new("a.b").is_err());
        assert_eq!(Segment::new("b-gent").unwrap(), "b-gent");
        assert_eq!(
            p("void.pheromone").with_aspect(Aspect::Emit).to_string(),
            "void.pheromone.emit"
        );
    }

    #[test]
    fn context_and_aspect_names_round_trip() {
        for c in Context::ALL {
            assert_eq!(c.as_str().parse::<Context>(), Ok(c));
            assert_eq!(c.to_string(), c.as_str());
        }
        for a in Aspect::ALL {
            assert_eq!(a.as_str().parse::<Aspect>(), Ok(a));
            assert!(ASPECT_NAMES.contains(a.as_str()));
        }
        assert!("Manifest".parse::<Aspect>().is_err());
    }

    #[test]
    fn serde_uses_the_string_form() {
        let path = p("world.cluster.agents.b-gent.tether");
        let json = serde_json::to_string(&path).unwrap();
        assert_eq!(json, "\"world.cluster.agents.b-gent.tether\"");
        assert_eq!(serde_json::from_str::<Path>(&json).unwrap(), path);
        let err = serde_json::from_str::<Path>("\"world\"").unwrap_err();
        assert!(err.to_string().contains("no segment"), "{err}");
    }
}
