//! The agent genus: one letter A–Z, or PSI, or OMEGA.
//!
//! Printed and serialized in upper case (`"A"`, `"PSI"`, `"OMEGA"`); parsed case-insensitively.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, excerpt};

/// An agent's genus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
// The schema lists the serialised names; serde is written by hand below.
#[cfg_attr(
    feature = "schemars",
    derive(schemars::JsonSchema),
    schemars(description = "The genus of an agent: one letter A–Z, or PSI or OMEGA.")
)]
#[allow(missing_docs)] // the variants are the letters themselves
pub enum Genus {
    A,
    B,
    C,
    D,
    E,
    F,
    G,
    H,
    I,
    J,
    K,
    L,
    M,
    N,
    O,
    P,
    Q,
    R,
    S,
    T,
    U,
    V,
    W,
    X,
    Y,
    Z,
    /// Ψ.
    #[cfg_attr(feature = "schemars", schemars(rename = "PSI"))]
    Psi,
    /// Ω.
    #[cfg_attr(feature = "schemars", schemars(rename = "OMEGA"))]
    Omega,
}

impl Genus {
    /// Every genus: A–Z, then PSI, then OMEGA.
    pub const ALL: [Genus; 28] = [
        Genus::A,
        Genus::B,
        Genus::C,
        Genus::D,
        Genus::E,
        Genus::F,
        Genus::G,
        Genus::H,
        Genus::I,
        Genus::J,
        Genus::K,
        Genus::L,
        Genus::M,
        Genus::N,
        Genus::O,
        Genus::P,
        Genus::Q,
        Genus::R,
        Genus::S,
        Genus::T,
        Genus::U,
        Genus::V,
        Genus::W,
        Genus::X,
        Genus::Y,
        Genus::Z,
        Genus::Psi,
        Genus::Omega,
    ];

    /// The canonical upper-case name.
    pub const fn as_str(self) -> &'static str {
        const LETTERS: [&str; 26] = [
            "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q",
            "R", "S", "T", "U", "V", "W", "X", "Y", "Z",
        ];
        match self {
            Genus::Psi => "PSI",
            Genus::Omega => "OMEGA",
            // The 26 letters are declared first, in order.
            letter => LETTERS[letter as usize],
        }
    }
}

impl fmt::Display for Genus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Genus {
    type Err = Error;

    /// Parses `A`–`Z`, `PSI` or `OMEGA`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("psi") {
            return Ok(Genus::Psi);
        }
        if s.eq_ignore_ascii_case("omega") {
            return Ok(Genus::Omega);
        }
        match s.as_bytes() {
            [b] if b.is_ascii_alphabetic() => {
                Ok(Genus::ALL[usize::from(b.to_ascii_uppercase() - b'A')])
            }
            _ => Err(Error::UnknownGenus { input: excerpt(s) }),
        }
    }
}

impl serde::Serialize for Genus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Genus {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GenusVisitor;
        impl serde::de::Visitor<'_> for GenusVisitor {
            type Value = Genus;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a genus: one letter A-Z, PSI or OMEGA")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Genus, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(GenusVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_genus_round_trips_through_text_and_serde() {
        for genus in Genus::ALL {
            let text = genus.to_string();
            assert_eq!(text.parse::<Genus>().unwrap(), genus);
            assert_eq!(text.to_lowercase().parse::<Genus>().unwrap(), genus);
            let json = serde_json::to_string(&genus).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Genus>(&json).unwrap(), genus);
        }
        assert_eq!(Genus::ALL.len(), 28);
        assert_eq!(Genus::Z.as_str(), "Z");
        assert_eq!("Psi".parse::<Genus>().unwrap(), Genus::Psi);
    }

    #[test]
    fn bad_genus_is_a_typed_error() {
        for bad in ["", "AA", "1", "Ω", "PSI ", "alpha"] {
            assert!(
                matches!(bad.parse::<Genus>(), Err(Error::UnknownGenus { .. })),
                "{bad}"
            );
        }
        assert!(serde_json::from_str::<Genus>("\"beta\"").is_err());
    }
}
