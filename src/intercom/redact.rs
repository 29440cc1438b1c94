//! Striking the access token, whole or in part, from what a server or the transport says back
//! before any of it reaches the results file or the screen.
//!
//! "In part" means: any [`PART`] consecutive bytes of the token (all of it, when shorter),
//! anywhere in the text; and, at an edge where the text was cut (by a server that truncates what
//! it echoes, or by this tool bounding what it keeps), any [`EDGE`] or more bytes that begin the
//! token (at the text's end) or end it (at its start). Text is struck first and cut after, and a
//! cut never splits a `<redacted>` mark, so no cut can leave a piece of the token showing.
use std::ops::Range;

/// What replaces each struck stretch.
pub(crate) const MARK: &str = "<redacted>";
/// The shortest run of the token's bytes that is struck wherever it appears.
pub(crate) const PART: usize = 8;
/// The shortest start or end of the token that is struck at an edge of cut text.
pub(crate) const EDGE: usize = 4;

/// Finds and strikes one token's parts.
pub struct Redactor {
    token: Box<[u8]>,
    /// The token's `part`-byte windows, packed big-endian into a `u64`, sorted.
    grams: Vec<u64>,
    /// Which bytes occur in the token: a window holding any other cannot match.
    in_token: [bool; 256],
    part: usize,
    edge: usize,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor(<redacted>)")
    }
}

fn pack(window: &[u8]) -> u64 {
    window.iter().fold(0u64, |x, &b| (x << 8) | u64::from(b))
}

impl Redactor {
    pub(crate) fn new(token: &str) -> Redactor {
        let token: Box<[u8]> = token.as_bytes().into();
        let part = PART.min(token.len()).max(1);
        let mut grams: Vec<u64> = token.windows(part).map(pack).collect();
        grams.sort_unstable();
        grams.dedup();
        let mut in_token = [false; 256];
        for &b in token.iter() {
            in_token[usize::from(b)] = true;
        }
        Redactor {
            edge: EDGE.min(token.len()).max(1),
            token,
            grams,
            in_token,
            part,
        }
    }

    /// An identifier the server sent (a message id, an error code, a request id): every part of
    /// the token struck, then cut to at most `max` characters.
    pub(crate) fn id(&self, text: &str, max: usize) -> String {
        self.strike(text, false, max)
    }

    /// Free text the server or the transport sent, which the server may have cut: parts of the
    /// token struck, and also its start or end at the text's edges; then cut to at most `max`
    /// characters.
    pub(crate) fn text(&self, text: &str, max: usize) -> String {
        self.strike(text, true, max)
    }

    fn strike(&self, text: &str, edges: bool, max: usize) -> String {
        let marks = self.marks(text, edges);
        if marks.is_empty() && text.len() <= max {
            // Fewer bytes than `max` is fewer characters too: nothing to strike or cut.
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len().min(max * 4));
        let mut chars = 0usize;
        let mut pos = 0usize;
        // The empty range at the end stands for the text after the last mark.
        let ends = marks
            .iter()
            .cloned()
            .chain(std::iter::once(text.len()..text.len()));
        for mark in ends {
            for c in text[pos..mark.start].chars() {
                if chars == max {
                    return self.cut_edge(out, max);
                }
                out.push(c);
                chars += 1;
            }
            if mark.is_empty() {
                break;
            }
            if chars + MARK.len() > max {
                return self.cut_edge(out, max);
            }
            out.push_str(MARK);
            chars += MARK.len();
            pos = mark.end;
        }
        out
    }

    /// Text this tool cut ends at an edge: a start of the token there is struck too.
    fn cut_edge(&self, mut out: String, max: usize) -> String {
        // Cutting one start of the token away can bare another before it (`=_df=_df` for a
        // token `=_df…`): cut until none is left at the end.
        let mut struck = false;
        while let Some(n) = self.start_of_token_ending(out.as_bytes()) {
            let at = floor_boundary(&out, out.len() - n);
            out.truncate(at);
            struck = true;
        }
        if struck && out.chars().count() + MARK.len() <= max {
            out.push_str(MARK);
        }
        out
    }

    /// The byte ranges to strike, sorted, disjoint, on character boundaries.
    fn marks(&self, text: &str, edges: bool) -> Vec<Range<usize>> {
        let b = text.as_bytes();
        let k = self.part;
        let mut marks: Vec<Range<usize>> = Vec::new();
        if edges {
            if let Some(n) = self.end_of_token_starting(b) {
                marks.push(0..n);
            }
        }
        let mut i = 0;
        while i + k <= b.len() {
            if !self.in_token[usize::from(b[i + k - 1])] {
                // Every window holding that byte fails: skip them all.
                i += k;
                continue;
            }
            if self.grams.binary_search(&pack(&b[i..i + k])).is_ok() {
                marks.push(i..i + k);
            }
            i += 1;
        }
        if edges {
            if let Some(n) = self.start_of_token_ending(b) {
                marks.push(b.len() - n..b.len());
            }
        }
        marks.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(marks.len());
        for m in marks {
            let m = floor_boundary(text, m.start)..ceil_boundary(text, m.end);
            match merged.last_mut() {
                Some(last) if m.start <= last.end => last.end = last.end.max(m.end),
                _ => merged.push(m),
            }
        }
        merged
    }

    /// The length of the longest start of the token (at least `edge` bytes) that `b` ends with.
    fn start_of_token_ending(&self, b: &[u8]) -> Option<usize> {
        (self.edge..=self.token.len().min(b.len()))
            .rev()
            .find(|&n| b.ends_with(&self.token[..n]))
    }

    /// The length of the longest end of the token (at least `edge` bytes) that `b` starts with.
    fn end_of_token_starting(&self, b: &[u8]) -> Option<usize> {
        (self.edge..=self.token.len().min(b.len()))
            .rev()
            .find(|&n| b.starts_with(&self.token[self.token.len() - n..]))
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOKEN: &str = "c2FuZGJveDpub3RyZWFsXzk4NzY1NDMyMTBfYWJjZGVm";

    /// Whether `out` shows a part of `token`: a run of `PART` bytes anywhere, or `EDGE` bytes
    /// of its start at the end of `out` (where it was cut) or of its end at the start. The
    /// marks are left out of the search (a short token's letters may be in `<redacted>`); with
    /// no `<` or `>` in the token, no part can span one.
    fn shows_part(out: &str, token: &str) -> Option<String> {
        let t = token.as_bytes();
        let part = PART.min(t.len());
        let pieces: Vec<&[u8]> = out.split(MARK).map(str::as_bytes).collect();
        for o in &pieces {
            if let Some(w) = t.windows(part).find(|w| o.windows(part).any(|x| x == *w)) {
                return Some(format!("the part {:?}", String::from_utf8_lossy(w)));
            }
        }
        let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
        for n in EDGE.min(t.len())..=t.len() {
            if last.ends_with(&t[..n]) {
                return Some(format!("its first {n} bytes at the end"));
            }
            if first.starts_with(&t[t.len() - n..]) {
                return Some(format!("its last {n} bytes at the start"));
            }
        }
        None
    }

    #[test]
    fn a_cut_that_bares_another_start_of_the_token_strikes_it_too() {
        // Found by the property test below: the first strike left `=_df`, the token's start.
        let r = Redactor::new("=_df=m");
        let out = r.text("=_df=_df=_d", 8);
        assert_eq!(shows_part(&out, "=_df=m"), None, "{out:?}");
    }

    #[test]
    fn strikes_the_whole_token_and_its_parts() {
        let r = Redactor::new(TOKEN);
        let said = format!("Access Token Invalid: Bearer {TOKEN}; again {TOKEN}.");
        assert_eq!(
            r.text(&said, 1000),
            "Access Token Invalid: Bearer <redacted>; again <redacted>."
        );
        // Eight bytes from its middle, anywhere; seven are not a part.
        assert_eq!(r.id(&format!("x{}y", &TOKEN[10..18]), 100), "x<redacted>y");
        assert_eq!(r.id(&TOKEN[10..17], 100), &TOKEN[10..17]);
    }

    #[test]
    fn strikes_the_tokens_ends_at_the_edges_of_text_only() {
        let r = Redactor::new(TOKEN);
        let cut_after = format!("echo: Bearer {}", &TOKEN[..5]);
        assert_eq!(r.text(&cut_after, 1000), "echo: Bearer <redacted>");
        let cut_before = format!("{} was the header", &TOKEN[TOKEN.len() - 4..]);
        assert_eq!(r.text(&cut_before, 1000), "<redacted> was the header");
        // Three bytes are not a part; an identifier has no edge the server cut.
        assert_eq!(r.text("dG9", 1000), "dG9");
        assert_eq!(r.id("id c2Fu", 1000), "id c2Fu");
    }

    #[test]
    fn short_tokens_are_struck_whole() {
        let r = Redactor::new("abc");
        assert_eq!(r.text("xabcx ab", 100), "x<redacted>x ab");
    }

    #[test]
    fn the_token_at_every_offset_around_every_cut() {
        let r = Redactor::new(TOKEN);
        for max in [20usize, 200, 1000] {
            for offset in max.saturating_sub(TOKEN.len() + MARK.len() + 2)..max + 2 {
                for (before, after) in [("a", "z"), ("Bearer ", "\"")] {
                    let text = format!("{}{before}{TOKEN}{after}", "x".repeat(offset));
                    for out in [r.text(&text, max), r.id(&text, max)] {
                        assert!(out.chars().count() <= max, "{out}");
                        if let Some(what) = shows_part(&out, TOKEN) {
                            panic!("max {max}, offset {offset}: {what} shows in {out:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn non_ascii_text_is_cut_on_characters() {
        let r = Redactor::new(TOKEN);
        let text = format!("é{TOKEN}ü{}", "ß".repeat(300));
        let out = r.text(&text, 200);
        assert!(out.starts_with("é<redacted>üß"), "{out}");
        assert_eq!(out.chars().count(), 200);
    }

    fn token() -> impl Strategy<Value = String> {
        // Intercom's tokens are base64; `<`, `>` are left out so the mark holds no part.
        "[A-Za-z0-9+/=_-]{1,64}"
    }

    /// Text holding pieces of the token (whole, starts, ends, middles) among other text.
    fn text_with_pieces(token: String) -> impl Strategy<Value = (String, String)> {
        let n = token.len();
        let piece = (0..=n, 0..=n).prop_map(move |(a, b)| (a.min(b), a.max(b)));
        let filler = "[ -~éü\\t]{0,12}";
        proptest::collection::vec((filler, piece), 0..6).prop_map(move |parts| {
            let mut text = String::new();
            for (filler, (a, b)) in parts {
                text.push_str(&filler);
                text.push_str(&token[a..b]);
            }
            (token.clone(), text)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// Every cut of every text: the edge where this tool cut is where pieces would show.
        #[test]
        fn no_part_survives_any_cut((token, text) in token().prop_flat_map(text_with_pieces)) {
            let r = Redactor::new(&token);
            for max in 0..=text.chars().count() + 1 {
                let out = r.text(&text, max);
                prop_assert!(out.chars().count() <= max);
                if let Some(what) = shows_part(&out, &token) {
                    return Err(TestCaseError::fail(format!("cut at {max}: {what} shows in {out:?} (from {text:?})")));
                }
                // An identifier keeps what the server sent at its start and end, so only runs
                // of PART bytes are looked for there.
                let id = r.id(&text, max);
                prop_assert!(id.chars().count() <= max);
                let shown = shows_part(&id, &token);
                prop_assert!(
                    shown.as_deref().is_none_or(|s| !s.starts_with("the part")),
                    "{shown:?} in {id:?} (from {text:?})"
                );
            }
        }

        #[test]
        fn text_without_the_token_is_kept_as_is(text in "[ -~éü]{0,80}", token in token()) {
            prop_assume!(token.len() >= PART);
            let part_in_text = token.as_bytes().windows(PART).any(|w| text.as_bytes().windows(PART).any(|x| x == w));
            prop_assume!(!part_in_text);
            prop_assert_eq!(Redactor::new(&token).id(&text, 1000), text);
        }
    }
}
