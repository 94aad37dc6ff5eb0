//! The pod's annotations as the downward API writes them to a file, and the safe mode they
//! carry (pure parsing; the server reads the file on each request, so a flip is seen at once
//! once the kubelet has rewritten it).
//!
//! The file holds one `key="value"` line per annotation, the value a Go-quoted string.

use std::collections::BTreeMap;

/// The annotation that puts an agent in safe mode (`"true"`), set by the operator's cognitive
/// probes.
pub const SAFE_MODE_ANNOTATION: &str = "kgents.io/safe-mode";

/// Safe mode as `GET /safe-mode` answers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SafeMode {
    /// Whether the agent is in safe mode: stop taking new work and filing Proposals, answer
    /// only from what it already knows.
    pub safe_mode: bool,
    /// The annotation's raw value, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
}

/// Parses the downward-API annotations file. Lines that do not parse are skipped: the kubelet
/// writes this file, and one odd line must not hide the others.
pub fn parse_annotations(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (key, quoted) = line.split_once('=')?;
            Some((key.trim().to_owned(), unquote(quoted.trim())?))
        })
        .collect()
}

/// Safe mode from the parsed annotations.
pub fn safe_mode(annotations: &BTreeMap<String, String>) -> SafeMode {
    let annotation = annotations.get(SAFE_MODE_ANNOTATION).cloned();
    SafeMode {
        safe_mode: annotation.as_deref().map(str::trim) == Some("true"),
        annotation,
    }
}

/// A Go-quoted string (`strconv.Quote`): the escapes the kubelet writes.
fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            'x' => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&hex, 16).ok()?));
            }
            other => out.push(other),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_downward_api_file_parses_and_safe_mode_reads_from_it() {
        let text = "kgents.io/safe-mode=\"true\"\nkubernetes.io/config.seen=\"2026-12-03T04:00:00.1Z\"\nnote=\"a \\\"quoted\\\" line\\nand more\"\nbroken line\n";
        let annotations = parse_annotations(text);
        assert_eq!(annotations.len(), 3);
        assert_eq!(annotations["note"], "a \"quoted\" line\nand more");
        assert!(safe_mode(&annotations).safe_mode);
        let off = parse_annotations("kgents.io/safe-mode=\"false\"\n");
        assert!(!safe_mode(&off).safe_mode);
        assert_eq!(
            safe_mode(&BTreeMap::new()),
            SafeMode {
                safe_mode: false,
                annotation: None
            }
        );
    }
}
