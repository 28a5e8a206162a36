//! Requester text made safe for chat. Argv, reason, cwd, env values (and, when an added policy
//! file wrote them, rule names) come from whoever asks for approval; an approver must never read
//! text that looks like gate's, a link or a mention because the requester typed it.
//!
//! Every value goes through [`visible`] first (one line: controls, bidi and zero-width
//! characters shown as `\n`, `\u{202e}`, … exactly as `output::escape` shows them on a
//! terminal — a unit test keeps the two equal; this layer cannot import `output`), then through
//! the target's own escaping:
//! - Slack mrkdwn ([`mrkdwn`]): `&`, `<`, `>` become `&amp;`, `&lt;`, `&gt;` (Slack's documented
//!   escaping), so `<!channel>`, `<@U…>` and `<https://…|label>` are shown, never parsed; `@`
//!   becomes the full-width `＠` so `@here`/`@channel` text cannot notify anyone even where a
//!   client would link names; and a backtick becomes `ˋ` (U+02CB MODIFIER LETTER GRAVE ACCENT).
//!   mrkdwn has no escape for a backtick and a code block ends at the first "```" inside it, so
//!   no fence gate could choose is safe against text that may contain fences: replacing the
//!   character is the only way the block cannot be closed early. The message says so when it
//!   happened ([`Escaped::replaced`]).
//! - Adaptive Card markdown ([`card_md`]): CommonMark's backslash escapes for every character
//!   the Teams subset gives meaning to (`*`, `_`, `[`, `]`, `(`, `)`, `` ` ``, `>`, `<`, `~`,
//!   `|`, `&`, `\`; a leading `-`, `+`, `#`), so no emphasis, list or `[label](url)` link forms.

use std::fmt::Write as _;

/// Text after escaping, with what was changed so the message can say so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Escaped {
    pub text: String,
    /// A backtick or `@` was replaced by its look-alike.
    pub replaced: bool,
    /// Characters of the input not shown because of a length limit.
    pub cut: usize,
}

/// Shows every control and invisible formatting character as an escape; one line out.
pub fn visible(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_visible(&mut out, c);
    }
    out
}

fn push_visible(out: &mut String, c: char) {
    if !needs_escape(c) {
        out.push(c);
        return;
    }
    match c {
        '\x1b' => out.push_str("\\e"),
        '\r' => out.push_str("\\r"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// The characters `output::escape` makes visible (kept equal by a test).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c as u32,
            0x00AD
                | 0x0600..=0x0605
                | 0x061C
                | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
                | 0x115F | 0x1160 | 0x3164 | 0xFFA0
                | 0x180E
                | 0x200B..=0x200F
                | 0x2028 | 0x2029
                | 0x202A..=0x202E
                | 0x2060..=0x206F
                | 0xFEFF
                | 0xFFF9..=0xFFFB
                | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
                | 0xE0001 | 0xE0020..=0xE007F
        )
}

/// Requester text for Slack mrkdwn, at most `max` characters out (an ellipsis marks a cut).
pub fn mrkdwn(s: &str, max: usize) -> Escaped {
    escape_into(s, max, |c, out, replaced| match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '`' => {
            *replaced = true;
            out.push('\u{02CB}');
        }
        '@' => {
            *replaced = true;
            out.push('\u{FF20}');
        }
        c => push_visible(out, c),
    })
}

/// Text for a Slack `plain_text` object (headers, button labels): shown as written, so only
/// the invisible characters are made visible.
pub fn plain(s: &str, max: usize) -> Escaped {
    escape_into(s, max, |c, out, _| push_visible(out, c))
}

/// Requester text for Adaptive Card markdown (TextBlock and FactSet text). A `-`, `+` or `#`
/// is escaped only where it would start a list or heading (the start of the text).
pub fn card_md(s: &str, max: usize) -> Escaped {
    let mut first = true;
    escape_into(s, max, |c, out, _| {
        let lead = std::mem::replace(&mut first, false);
        match c {
            '\\' | '*' | '_' | '[' | ']' | '(' | ')' | '`' | '>' | '<' | '~' | '|' | '&' => {
                out.push('\\');
                out.push(c);
            }
            '-' | '+' | '#' if lead => {
                out.push('\\');
                out.push(c);
            }
            c => push_visible(out, c),
        }
    })
}

/// Escapes `s` char by char; when the result passes `max` characters it is cut between two
/// escaped characters (never inside an entity or an escape) and ends in `…`.
fn escape_into(s: &str, max: usize, mut one: impl FnMut(char, &mut String, &mut bool)) -> Escaped {
    let mut out = Escaped::default();
    let mut pieces: Vec<(String, bool)> = Vec::new();
    let mut total = 0usize;
    for c in s.chars() {
        let mut piece = String::new();
        let mut replaced = false;
        one(c, &mut piece, &mut replaced);
        total += piece.chars().count();
        pieces.push((piece, replaced));
    }
    let budget = if total <= max {
        max
    } else {
        max.saturating_sub(1)
    };
    let mut len = 0usize;
    for (i, (piece, replaced)) in pieces.iter().enumerate() {
        let n = piece.chars().count();
        if len + n > budget {
            out.cut = pieces.len() - i;
            out.text.push('…');
            return out;
        }
        len += n;
        out.replaced |= replaced;
        out.text.push_str(piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_matches_the_terminal_escape() {
        let sample: String = (0u32..0x3000)
            .chain(0xFE00..0x10000)
            .chain([0x110BD, 0x13430, 0x1D173, 0xE0001, 0xE0041, 0x1F600])
            .filter_map(char::from_u32)
            .collect();
        assert_eq!(visible(&sample), crate::output::escape(&sample));
    }

    #[test]
    fn mrkdwn_defuses_links_mentions_and_fences() {
        let e = mrkdwn(
            "<!channel> <@U0ALICE01> <https://evil|ok> ```x``` @here a&b",
            500,
        );
        assert!(!e.text.contains('<') && !e.text.contains('>') && !e.text.contains('`'));
        assert!(!e.text.contains("@here") && !e.text.contains("a&b"));
        assert!(e.text.contains("&lt;!channel&gt;") && e.text.contains("a&amp;b"));
        assert!(e.replaced);
        assert!(!mrkdwn("plain", 10).replaced);
    }

    #[test]
    fn cuts_never_split_an_entity_and_are_counted() {
        let e = mrkdwn("ab<<<<", 6);
        assert_eq!(e.text, "ab…");
        assert_eq!(e.cut, 4);
        assert_eq!(mrkdwn("abcdef", 6).text, "abcdef");
        assert_eq!(mrkdwn("abcdefg", 6).text, "abcde…");
        assert_eq!(mrkdwn("abcdefg", 6).cut, 2);
        assert!(mrkdwn(&"x".repeat(10_000), 3000).text.chars().count() <= 3000);
    }

    #[test]
    fn controls_become_visible_in_every_target() {
        for f in [mrkdwn, plain, card_md] {
            let e = f("a\nb\u{202e}c\x1b", 100);
            assert!(!e.text.contains('\n') && !e.text.contains('\u{202e}'));
            assert!(e.text.contains("\\u{202e}"), "{}", e.text);
        }
    }

    #[test]
    fn card_markdown_cannot_link_or_emphasise() {
        let e = card_md("[ok](https://evil) **bold** _i_ - item", 200);
        assert!(!e.text.contains("]("));
        assert!(e.text.contains("\\[ok\\]\\(https://evil\\)"));
        assert!(e.text.contains("\\*\\*bold\\*\\*"));
    }
}
