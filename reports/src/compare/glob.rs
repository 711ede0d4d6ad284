//! The `--ignore` patterns: shell-style globs over `{cell key}:{metric}`,
//! checked when they are parsed so a typo is refused rather than matching
//! nothing.

use std::fmt;

/// Why a pattern is not a glob.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid glob {pattern:?}: {reason}")]
pub struct GlobError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// `*`: any run of characters, `/` and `:` included.
    Any,
    /// `?`: one character.
    One,
    /// `[...]` or `[!...]`: one character in (or not in) the ranges.
    Class { negated: bool, ranges: Vec<(char, char)> },
    /// Anything else, or a character escaped with `\`.
    Literal(char),
}

/// A parsed glob: `*` any run of characters, `?` one character, `[abc]`,
/// `[a-z]` and `[!abc]` one character of a set, `\` escapes the next one.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    tokens: Vec<Token>,
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.pattern)
    }
}

impl Glob {
    /// Parses `pattern`.
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        let error = |reason| GlobError { pattern: pattern.to_owned(), reason };
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::Any,
                '?' => Token::One,
                '\\' => Token::Literal(chars.next().ok_or_else(|| error("it ends with a lone `\\`"))?),
                '[' => {
                    let negated = chars.next_if_eq(&'!').is_some();
                    let mut ranges = Vec::new();
                    let mut closed = false;
                    // A `]` first in the set is a member, as in shells.
                    let mut first = true;
                    while let Some(c) = chars.next() {
                        if c == ']' && !first {
                            closed = true;
                            break;
                        }
                        first = false;
                        let start =
                            if c == '\\' { chars.next().ok_or_else(|| error("it ends with a lone `\\`"))? } else { c };
                        let end = if chars.peek() == Some(&'-') {
                            let mut ahead = chars.clone();
                            ahead.next();
                            match ahead.peek() {
                                Some(&e) if e != ']' => {
                                    chars.next();
                                    chars.next();
                                    e
                                }
                                _ => start,
                            }
                        } else {
                            start
                        };
                        if end < start {
                            return Err(error("a `[...]` range runs backwards"));
                        }
                        ranges.push((start, end));
                    }
                    if !closed {
                        return Err(error("a `[` is not closed by `]`"));
                    }
                    Token::Class { negated, ranges }
                }
                c => Token::Literal(c),
            });
        }
        Ok(Glob { pattern: pattern.to_owned(), tokens })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        // Iterative matching with one backtrack point for the last `*`:
        // linear in practice, never exponential.
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            let step = match self.tokens.get(p) {
                Some(Token::Any) => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                Some(Token::One) => true,
                Some(Token::Literal(c)) => *c == text[t],
                Some(Token::Class { negated, ranges }) => {
                    ranges.iter().any(|(a, b)| (*a..=*b).contains(&text[t])) != *negated
                }
                None => false,
            };
            if step {
                p += 1;
                t += 1;
            } else if let Some((sp, st)) = star {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        self.tokens[p..].iter().all(|t| *t == Token::Any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).unwrap().matches(text)
    }

    #[test]
    fn globs_match_like_a_shell() {
        assert!(m("*/json/*", "echo-1KiB/json/tcp/c1:p50"));
        assert!(m("*:p99", "multiply/raw/udp/c64:p99"));
        assert!(!m("*:p99", "multiply/raw/udp/c64:p50"));
        assert!(m("a?c", "abc") && !m("a?c", "ac"));
        assert!(m("*/[jm]*/*", "multiply/msgpack/tcp/c1:p50"));
        assert!(!m("[!jm]*", "multiply/json/tcp/c1:p50") && m("[!j]*", "multiply"));
        assert!(m("c[0-9][0-9]", "c64") && !m("c[0-9][0-9]", "c6x"));
        assert!(m("\\*", "*") && !m("\\*", "a"));
        assert!(m("[]]", "]"));
        assert!(m("*", "") && m("**a**", "xay") && !m("a*b", "ac"));
    }

    #[test]
    fn bad_globs_are_refused() {
        for (pattern, reason) in
            [("[", "not closed"), ("*/[json", "not closed"), ("a\\", "lone"), ("[z-a]", "backwards")]
        {
            let err = Glob::new(pattern).unwrap_err();
            assert!(err.to_string().contains(reason), "{pattern}: {err}");
            assert!(err.to_string().contains(&format!("{pattern:?}")), "{err}");
        }
    }
}
