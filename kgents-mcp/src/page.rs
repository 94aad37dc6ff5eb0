//! Bounded output (pure): opaque cursors, pages that stop at a count or a byte budget, and the
//! final byte cap of a rendering.
//!
//! A cursor is bound to the listing it came from (a cursor of `kgents://agents` in `team` is
//! refused by the proposals listing) and carries either the key of the last item shown
//! (key-ordered listings: an agent created or deleted between pages shifts nothing) or an
//! offset (rank-ordered listings such as the pheromone field, whose order changes as
//! intensities decay). It is hex, so it needs no escaping in a URI query.

use serde::Serialize;
use serde_json::Value;

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// After the item with this key.
    After(String),
    /// At this offset.
    Offset(usize),
}

/// A decoded cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The listing it belongs to.
    pub listing: String,
    /// Where the next page starts.
    pub position: Position,
}

/// A cursor this server did not issue (or issued for another listing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cursor {shown:?}: {reason}; pass the next_cursor of the previous page unchanged, or none for the first page"
)]
pub struct CursorError {
    /// The cursor (shortened).
    pub shown: String,
    /// What is wrong.
    pub reason: String,
}

const VERSION: &str = "k1";

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

impl Cursor {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        let position = match &self.position {
            Position::After(key) => format!("a\n{key}"),
            Position::Offset(n) => format!("o\n{n}"),
        };
        hex(format!("{VERSION}\n{}\n{position}", self.listing).as_bytes())
    }

    /// Decodes `text` for `listing`.
    ///
    /// # Errors
    /// [`CursorError`] when it is not a cursor of this server or belongs to another listing.
    pub fn decode(text: &str, listing: &str) -> Result<Cursor, CursorError> {
        let bad = |reason: &str| CursorError {
            shown: text.chars().take(40).collect(),
            reason: reason.to_owned(),
        };
        let bytes = unhex(text).ok_or_else(|| bad("it is not a cursor this server issued"))?;
        let decoded =
            String::from_utf8(bytes).map_err(|_| bad("it is not a cursor this server issued"))?;
        let mut parts = decoded.splitn(4, '\n');
        let (Some(VERSION), Some(from), Some(kind), Some(value)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("it is not a cursor this server issued"));
        };
        if from != listing {
            return Err(bad(&format!(
                "it belongs to another listing ({from}), not this one ({listing})"
            )));
        }
        let position = match kind {
            "a" => Position::After(value.to_owned()),
            "o" => Position::Offset(
                value
                    .parse()
                    .map_err(|_| bad("it is not a cursor this server issued"))?,
            ),
            _ => return Err(bad("it is not a cursor this server issued")),
        };
        Ok(Cursor {
            listing: listing.to_owned(),
            position,
        })
    }
}

/// What a page may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// At most this many items.
    pub limit: usize,
    /// At most this many bytes of serialised items (the envelope's reserve already taken off).
    pub item_bytes: usize,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// The items shown.
    pub items: Vec<Value>,
    /// How many items the whole listing has.
    pub total: usize,
    /// The cursor of the next page, if any.
    pub next_cursor: Option<String>,
    /// Whether the page stopped at the byte budget (rather than the count or the end).
    pub cut_by_bytes: bool,
}

impl Page {
    /// A one-line note when the listing continues, saying why and how to read on.
    pub fn note(&self) -> Option<String> {
        self.next_cursor.as_ref()?;
        let why = if self.cut_by_bytes {
            "the page stopped at the byte cap"
        } else {
            "the page is full"
        };
        // The cursor itself is in `next_cursor`; repeating it here would spend the cap twice.
        Some(format!(
            "{} of {} shown ({why}); pass next_cursor as cursor for the next page",
            self.items.len(),
            self.total
        ))
    }
}

fn fill<'a, T: 'a>(
    items: impl Iterator<Item = (usize, &'a T)>,
    render: &impl Fn(&T) -> Value,
    bounds: Bounds,
) -> (Vec<Value>, Option<usize>, bool) {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for (index, item) in items {
        if out.len() >= bounds.limit {
            return (out, Some(index), false);
        }
        let value = render(item);
        // One comma between items; serialising a Value cannot fail.
        let size = serde_json::to_vec(&value).map_or(0, |v| v.len()) + 1;
        // The first item is always shown, so a page always makes progress; the final cap
        // ([`cap_value`]) still bounds a single oversized item.
        if !out.is_empty() && bytes + size > bounds.item_bytes {
            return (out, Some(index), true);
        }
        bytes += size;
        out.push(value);
    }
    (out, None, false)
}

/// A page of `items` (sorted by `key`) after the cursor's key.
///
/// # Errors
/// [`CursorError`] for a foreign or malformed cursor.
pub fn page_by_key<T>(
    items: &[T],
    key: impl Fn(&T) -> String,
    render: impl Fn(&T) -> Value,
    listing: &str,
    cursor: Option<&str>,
    bounds: Bounds,
) -> Result<Page, CursorError> {
    let start = match cursor {
        None => 0,
        Some(text) => match Cursor::decode(text, listing)?.position {
            Position::After(after) => items.partition_point(|item| key(item) <= after),
            Position::Offset(_) => {
                return Err(CursorError {
                    shown: text.chars().take(40).collect(),
                    reason: "it is not a cursor of this listing".into(),
                });
            }
        },
    };
    let (shown, next, cut) = fill(items.iter().enumerate().skip(start), &render, bounds);
    let next_cursor = next.map(|index| {
        Cursor {
            listing: listing.to_owned(),
            position: Position::After(key(&items[index - 1])),
        }
        .encode()
    });
    Ok(Page {
        items: shown,
        total: items.len(),
        next_cursor,
        cut_by_bytes: cut,
    })
}

/// Where a page of a ranked listing starts: 0 without a cursor, else the cursor's offset (so
/// a source can rank only the items up to the page's end).
///
/// # Errors
/// [`CursorError`] for a foreign or malformed cursor, or one that is not an offset.
pub fn offset_of(cursor: Option<&str>, listing: &str) -> Result<usize, CursorError> {
    match cursor {
        None => Ok(0),
        Some(text) => match Cursor::decode(text, listing)?.position {
            Position::Offset(n) => Ok(n),
            Position::After(_) => Err(CursorError {
                shown: text.chars().take(40).collect(),
                reason: "it is not a cursor of this listing".into(),
            }),
        },
    }
}

/// A page of `items` (in rank order) from the cursor's offset.
///
/// # Errors
/// [`CursorError`] for a foreign or malformed cursor.
pub fn page_by_offset<T>(
    items: &[T],
    render: impl Fn(&T) -> Value,
    listing: &str,
    cursor: Option<&str>,
    bounds: Bounds,
) -> Result<Page, CursorError> {
    let start = offset_of(cursor, listing)?.min(items.len());
    let (shown, next, cut) = fill(items.iter().enumerate().skip(start), &render, bounds);
    let next_cursor = next.map(|index| {
        Cursor {
            listing: listing.to_owned(),
            position: Position::Offset(index),
        }
        .encode()
    });
    Ok(Page {
        items: shown,
        total: items.len(),
        next_cursor,
        cut_by_bytes: cut,
    })
}

/// The byte budget of a page's items inside a document capped at `max_bytes`: what is left
/// after a reserve for the envelope (counts, heat, notes), itself bounded.
pub fn item_budget(max_bytes: usize) -> usize {
    let reserve = (max_bytes / 8).clamp(512, 8 * 1024);
    max_bytes.saturating_sub(reserve).max(256)
}

/// Bounds a JSON document to `max_bytes` when serialised: returned unchanged when it fits,
/// else replaced by an object saying it was cut, with as much of its text as fits.
pub fn cap_value(value: Value, max_bytes: usize) -> (Value, bool) {
    let text = value.to_string();
    if text.len() <= max_bytes {
        return (value, false);
    }
    let note = format!(
        "result cut: {} bytes exceed the cap of {max_bytes}; ask for less (a smaller limit, detail=summary, one namespace)",
        text.len()
    );
    // Escaping inside the preview string can grow it, so shrink until the whole fits.
    let mut keep = max_bytes.saturating_sub(note.len() + 64);
    loop {
        let capped = serde_json::json!({
            "truncated": true,
            "note": note,
            "preview": truncate_at_char(&text, keep),
        });
        if keep == 0 || capped.to_string().len() <= max_bytes {
            return (capped, true);
        }
        keep = keep * 3 / 4;
    }
}

/// Bounds a text rendering to `max_bytes`, ending it with a note when cut.
pub fn cap_text(text: String, max_bytes: usize) -> (String, bool) {
    if text.len() <= max_bytes {
        return (text, false);
    }
    let note = format!(
        "\n… [cut: {} bytes exceed the cap of {max_bytes}; ask for less]",
        text.len()
    );
    let keep = max_bytes.saturating_sub(note.len());
    let mut out = truncate_at_char(&text, keep).to_owned();
    out.push_str(&note);
    (out, true)
}

fn truncate_at_char(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("agent-{i:04}")).collect()
    }

    fn all_pages(items: &[String], bounds: Bounds) -> Vec<Page> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = page_by_key(
                items,
                Clone::clone,
                |s| json!(s),
                "agents:team",
                cursor.as_deref(),
                bounds,
            )
            .unwrap();
            cursor = page.next_cursor.clone();
            pages.push(page);
            if cursor.is_none() {
                return pages;
            }
        }
    }

    #[test]
    fn key_pages_cover_every_item_once_in_order() {
        let items = names(1000);
        let pages = all_pages(
            &items,
            Bounds {
                limit: 100,
                item_bytes: usize::MAX,
            },
        );
        assert_eq!(pages.len(), 10);
        let seen: Vec<Value> = pages.iter().flat_map(|p| p.items.clone()).collect();
        assert_eq!(seen, items.iter().map(|s| json!(s)).collect::<Vec<_>>());
        assert!(pages.iter().all(|p| p.total == 1000));
        assert!(pages[0].note().unwrap().contains("100 of 1000"));
        assert!(pages[9].note().is_none());
    }

    #[test]
    fn the_byte_budget_cuts_a_page_and_says_so() {
        let items = names(1000);
        // "agent-0000" serialises to 12 bytes plus a comma.
        let pages = all_pages(
            &items,
            Bounds {
                limit: 1000,
                item_bytes: 13 * 50,
            },
        );
        assert_eq!(pages[0].items.len(), 50);
        assert!(pages[0].cut_by_bytes);
        assert!(pages[0].note().unwrap().contains("byte cap"));
        let seen: usize = pages.iter().map(|p| p.items.len()).sum();
        assert_eq!(seen, 1000);
    }

    #[test]
    fn a_key_cursor_survives_an_insertion_before_it() {
        let mut items = names(10);
        let bounds = Bounds {
            limit: 5,
            item_bytes: usize::MAX,
        };
        let first = page_by_key(&items, Clone::clone, |s| json!(s), "l", None, bounds).unwrap();
        items.insert(0, "agent-0000a".into());
        items.sort();
        let second = page_by_key(
            &items,
            Clone::clone,
            |s| json!(s),
            "l",
            first.next_cursor.as_deref(),
            bounds,
        )
        .unwrap();
        assert_eq!(second.items[0], json!("agent-0005"));
    }

    #[test]
    fn foreign_and_malformed_cursors_are_refused_with_the_reason() {
        let other = Cursor {
            listing: "proposals:team".into(),
            position: Position::After("x".into()),
        }
        .encode();
        let err = Cursor::decode(&other, "agents:team").unwrap_err();
        assert!(err.to_string().contains("another listing"), "{err}");
        for junk in ["zz", "abc", "", "6b310a"] {
            let err = Cursor::decode(junk, "agents:team").unwrap_err();
            assert!(err.to_string().contains("not a cursor"), "{junk}: {err}");
        }
        let offset = Cursor {
            listing: "l".into(),
            position: Position::Offset(3),
        }
        .encode();
        let items = names(5);
        let bounds = Bounds {
            limit: 5,
            item_bytes: usize::MAX,
        };
        assert!(
            page_by_key(
                &items,
                Clone::clone,
                |s| json!(s),
                "l",
                Some(&offset),
                bounds
            )
            .is_err()
        );
        let page = page_by_offset(&items, |s| json!(s), "l", Some(&offset), bounds).unwrap();
        assert_eq!(page.items, vec![json!("agent-0003"), json!("agent-0004")]);
    }

    #[test]
    fn caps_keep_small_documents_and_cut_large_ones_with_a_note() {
        let small = json!({"a": 1});
        assert_eq!(cap_value(small.clone(), 100), (small, false));
        let big = json!({"text": "é\"".repeat(10_000)});
        let (capped, cut) = cap_value(big, 1000);
        assert!(cut);
        assert!(
            capped.to_string().len() <= 1000,
            "{}",
            capped.to_string().len()
        );
        assert!(capped["note"].as_str().unwrap().contains("cap of 1000"));
        let (text, cut) = cap_text("ü".repeat(5000), 500);
        assert!(cut && text.len() <= 500 && text.ends_with("ask for less]"));
    }
}
