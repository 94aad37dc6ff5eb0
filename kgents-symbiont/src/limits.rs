//! The Memory's rules, pure: which keys are allowed, how large a value may be, and how the
//! bytes a Memory uses are counted against its size limit.

use crate::{Error, Result};

/// The longest key, in bytes: 256. Keys name things; anything longer is data and belongs in a
/// value.
pub const MAX_KEY_BYTES: usize = 256;
/// The default largest value, in bytes (1 MiB).
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;
/// Bytes counted for each entry beyond its key and value: the store's per-entry bookkeeping,
/// so that a million empty values are not free.
pub const ENTRY_OVERHEAD: u64 = 32;

/// Whether `c` may appear in a key: ASCII letters, digits, `.`, `_`, `-`, `:` and `@`. No path
/// characters (`/`, `\`), no whitespace, no control characters.
pub fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@')
}

/// Checks a memory key: 1 to [`MAX_KEY_BYTES`] characters from [`is_key_char`], and not `.` or
/// `..` (which read as paths).
pub fn check_key(key: &str) -> Result<()> {
    let bad = |reason: String| Error::BadKey {
        key: shorten(key),
        reason,
    };
    if key.is_empty() {
        return Err(bad("a key is 1 to 256 characters; this one is empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(bad(format!(
            "a key is at most {MAX_KEY_BYTES} bytes; this one is {} bytes: use a shorter key (a hash of a long name, say)",
            key.len()
        )));
    }
    if key == "." || key == ".." {
        return Err(bad(
            "'.' and '..' read as paths and are not keys: use letters or digits".into(),
        ));
    }
    if let Some(c) = key.chars().find(|c| !is_key_char(*c)) {
        return Err(bad(format!(
            "{c:?} is not allowed: keys use ASCII letters, digits and . _ - : @ (no path characters such as / or \\, no spaces); use ':' to build hierarchies"
        )));
    }
    Ok(())
}

/// Checks a prefix for listing: empty (everything) or characters from [`is_key_char`], at most
/// [`MAX_KEY_BYTES`] bytes.
pub fn check_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    if prefix.len() > MAX_KEY_BYTES || prefix.chars().any(|c| !is_key_char(c)) {
        return Err(Error::BadKey {
            key: shorten(prefix),
            reason: format!(
                "a prefix follows the key rules (ASCII letters, digits and . _ - : @, at most {MAX_KEY_BYTES} bytes)"
            ),
        });
    }
    Ok(())
}

/// Checks a value's size against `limit`.
pub fn check_value(value: &[u8], limit: usize) -> Result<()> {
    if value.len() > limit {
        return Err(Error::ValueTooLarge {
            size: value.len(),
            limit,
        });
    }
    Ok(())
}

/// The bytes an entry counts for: key, value and [`ENTRY_OVERHEAD`].
pub fn entry_cost(key: &str, value_len: usize) -> u64 {
    key.len() as u64 + value_len as u64 + ENTRY_OVERHEAD
}

/// What a Memory uses against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Bytes used (entries and journal records, each with [`ENTRY_OVERHEAD`]).
    pub used: u64,
    /// The Memory's size limit in bytes.
    pub limit: u64,
}

impl Usage {
    /// The usage after replacing an entry of `old_cost` bytes (0: none) by one of `new_cost`,
    /// or [`Error::Full`] when that would go over the limit. Shrinking writes and deletes are
    /// always allowed, so a full Memory can be emptied.
    pub fn replace(self, old_cost: u64, new_cost: u64) -> Result<Usage> {
        let used = self.used.saturating_sub(old_cost).saturating_add(new_cost);
        if new_cost > old_cost && used > self.limit {
            return Err(Error::Full {
                used: self.used,
                limit: self.limit,
                needed: new_cost - old_cost,
            });
        }
        Ok(Usage {
            used,
            limit: self.limit,
        })
    }
}

/// Bytes kept free on the volume under the store: writes stop short of them, so that deleting
/// keys (a copy-on-write commit of its own) always has room, and the store never meets an
/// out-of-space error mid-commit (after one, redb refuses every operation until reopened).
pub const VOLUME_RESERVE_BYTES: u64 = 256 << 10;

/// Whether a write of `value_len` bytes fits on the volume: `free` bytes free on it, `reusable`
/// bytes the store file holds but no longer uses (pages freed by deletes). A copy-on-write
/// commit may write the value twice over (new pages before the old are released) beside
/// [`VOLUME_RESERVE_BYTES`].
pub fn fits_on_volume(value_len: usize, free: u64, reusable: u64) -> bool {
    let need = (value_len as u64)
        .saturating_mul(2)
        .saturating_add(VOLUME_RESERVE_BYTES);
    free.saturating_add(reusable) >= need
}

/// Parses a Kubernetes quantity of bytes (`256Mi`, `1Gi`, `500M`, `1024`) into bytes, or `None`
/// when it is not one.
pub fn parse_quantity_bytes(quantity: &str) -> Option<u64> {
    let q = quantity.trim();
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (digits, suffix) = q.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(factor)
}

fn shorten(s: &str) -> String {
    if s.len() <= 64 {
        return s.to_owned();
    }
    let mut end = 64;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_with_path_characters_are_refused() {
        for key in [
            "a/b",
            "..",
            ".",
            "a\\b",
            "a b",
            "",
            "é",
            "a\0b",
            "../etc/passwd",
        ] {
            assert!(check_key(key).is_err(), "{key:?} accepted");
        }
        for key in ["a", "notes:2026-12-03", "x.y_z-1@agent", "..a"] {
            check_key(key).unwrap();
        }
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        let msg = check_key(&long).unwrap_err().to_string();
        assert!(msg.contains("at most 256 bytes"), "{msg}");
        check_key(&"k".repeat(MAX_KEY_BYTES)).unwrap();
    }

    #[test]
    fn values_over_the_limit_are_refused() {
        check_value(&[0; 10], 10).unwrap();
        let e = check_value(&[0; 11], 10).unwrap_err();
        assert_eq!(e.status(), 413);
    }

    #[test]
    fn a_full_memory_refuses_growth_but_allows_shrinking() {
        let usage = Usage {
            used: 90,
            limit: 100,
        };
        let e = usage.replace(0, 20).unwrap_err();
        assert_eq!(e.status(), 507);
        assert!(e.to_string().contains("90 of 100 bytes"), "{e}");
        assert_eq!(usage.replace(0, 10).unwrap().used, 100);
        assert_eq!(usage.replace(50, 10).unwrap().used, 50);
        // over the limit already (a smaller limit after a restart): shrinking still works
        let over = Usage {
            used: 150,
            limit: 100,
        };
        assert_eq!(over.replace(40, 30).unwrap().used, 140);
    }

    #[test]
    fn a_write_fits_on_the_volume_only_above_the_reserve() {
        assert!(fits_on_volume(1000, VOLUME_RESERVE_BYTES + 2000, 0));
        assert!(!fits_on_volume(1000, VOLUME_RESERVE_BYTES + 1999, 0));
        assert!(
            fits_on_volume(1000, VOLUME_RESERVE_BYTES, 2000),
            "freed pages count"
        );
        assert!(!fits_on_volume(0, 0, 0));
        assert!(!fits_on_volume(usize::MAX, u64::MAX / 2, 0));
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity_bytes("256Mi"), Some(256 << 20));
        assert_eq!(parse_quantity_bytes("1G"), Some(1_000_000_000));
        assert_eq!(parse_quantity_bytes("4096"), Some(4096));
        assert_eq!(parse_quantity_bytes("1.5Gi"), None);
        assert_eq!(parse_quantity_bytes("Mi"), None);
    }

    proptest! {
        #[test]
        fn accepted_keys_have_no_path_characters(key in "\\PC{0,300}") {
            if check_key(&key).is_ok() {
                prop_assert!(!key.contains('/') && !key.contains('\\'));
                prop_assert!(key != "." && key != "..");
                prop_assert!(!key.is_empty() && key.len() <= MAX_KEY_BYTES);
            }
        }

        #[test]
        fn usage_never_exceeds_the_limit_through_growth(
            ops in proptest::collection::vec((0u64..50, 0u64..50), 0..50)
        ) {
            let mut usage = Usage { used: 0, limit: 200 };
            for (old, new) in ops {
                let old = old.min(usage.used);
                if let Ok(next) = usage.replace(old, new) {
                    prop_assert!(next.used <= usage.limit.max(usage.used));
                    usage = next;
                }
            }
            prop_assert!(usage.used <= usage.limit);
        }
    }
}
