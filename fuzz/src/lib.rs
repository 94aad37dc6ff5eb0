//! Helpers shared by the fuzz targets of K8-gents: turning fuzz bytes into the inputs the
//! pure crates take (times around a fixed "now", short strings, namespaces), so every target
//! builds its inputs the same way.
//!
//! | item | what it gives |
//! |---|---|
//! | [`now`] | the fixed instant every target takes as "now" |
//! | [`timestamp_near`] | an instant within about two days of [`now`] (the windows the risk calculus reads) |
//! | [`timestamp_any`] | any instant jiff can represent (the edges of time arithmetic) |
//! | [`small_string`] | a short string from a small alphabet, so that names collide often |

#![forbid(unsafe_code)]

use arbitrary::{Result, Unstructured};
use jiff::{SignedDuration, Timestamp};

/// The fixed "now" of every target (2027-01-15T08:00:00Z): inputs are dated around it.
pub fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("a valid timestamp")
}

/// An instant within ±50 hours of [`now`], to the millisecond.
pub fn timestamp_near(u: &mut Unstructured<'_>) -> Result<Timestamp> {
    let offset_ms = u.int_in_range(-50 * 3_600_000i64..=50 * 3_600_000)?;
    Ok(now() + SignedDuration::from_millis(offset_ms))
}

/// Any instant jiff can represent (its range is about ±9999 years), to the nanosecond.
pub fn timestamp_any(u: &mut Unstructured<'_>) -> Result<Timestamp> {
    let min = Timestamp::MIN.as_nanosecond();
    let max = Timestamp::MAX.as_nanosecond();
    let nanos = u.int_in_range(min..=max)?;
    Ok(Timestamp::from_nanosecond(nanos).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// A string of 0–`max` characters from a small alphabet (`a`, `b`, `-`, `.`, `:`, `*`, a
/// digit, a space and a non-ASCII letter), so that names, namespaces and proposers collide
/// and the separators the parsers look for appear often.
pub fn small_string(u: &mut Unstructured<'_>, max: usize) -> Result<String> {
    const ALPHABET: [char; 10] = ['a', 'b', '-', '.', ':', '*', '7', ' ', 'é', '_'];
    let len = u.int_in_range(0..=max)?;
    let mut text = String::with_capacity(len);
    for _ in 0..len {
        text.push(*u.choose(&ALPHABET)?);
    }
    Ok(text)
}
