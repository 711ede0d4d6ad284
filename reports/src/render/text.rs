//! Numbers and text for people, shared by the renderers.

/// Nanoseconds: `812ns`, `23.4µs`, `1.20ms`, `2.50s` (as the terminal
/// summary prints them).
pub(crate) fn ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

/// Calls per second: `812`, `23.4k`, `1.20M`.
pub(crate) fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() {
        return "-".into();
    }
    match per_sec {
        r if r < 10_000.0 => format!("{r:.0}"),
        r if r < 1e6 => format!("{:.1}k", r / 1e3),
        r => format!("{:.2}M", r / 1e6),
    }
}

/// A ratio: `0.42×`, `3.1×`, `120×`.
pub(crate) fn ratio(r: f64) -> String {
    if !r.is_finite() {
        return "-".into();
    }
    match r {
        r if r < 10.0 => format!("{r:.2}×"),
        r if r < 100.0 => format!("{r:.1}×"),
        r => format!("{r:.0}×"),
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Makes text safe inside a Markdown table cell: one line, no `|`, no
/// raw HTML.
pub(crate) fn md_cell(s: &str) -> String {
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    one_line.replace('\\', "\\\\").replace('|', "\\|").replace('<', "&lt;").replace('>', "&gt;")
}

/// The first 12 characters of a commit id.
pub(crate) fn short_commit(commit: &str) -> &str {
    match commit.char_indices().nth(12) {
        Some((i, _)) if commit.chars().all(|c| c.is_ascii_hexdigit()) => &commit[..i],
        _ => commit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_read_well() {
        assert_eq!(ns(812), "812ns");
        assert_eq!(ns(23_450), "23.4µs");
        assert_eq!(ns(1_200_000), "1.20ms");
        assert_eq!(rate(4233.2), "4233");
        assert_eq!(rate(239_443.0), "239.4k");
        assert_eq!(rate(2_137_408.0), "2.14M");
        assert_eq!(ratio(0.4234), "0.42×");
        assert_eq!(html("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(md_cell("a|b\nc<d>"), "a\\|b c&lt;d&gt;");
        assert_eq!(short_commit("d5dfb5e4df76738cd7464461ffa991fa2d58bd26"), "d5dfb5e4df76");
        assert_eq!(short_commit("unknown"), "unknown");
    }
}
