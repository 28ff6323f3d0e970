//! Lua 5.4 string patterns (reference manual §6.4.1) and the four
//! functions that use them (`string.find`, `string.match`,
//! `string.gmatch`, `string.gsub`, §6.4), in Rust, with a step budget.
//!
//! Lua's own matcher runs in C: the instruction hook never fires inside
//! it, and its patterns backtrack, so one call can take quadratic or
//! exponential time. This one counts its elementary steps (every match
//! attempt, every backtrack, every byte a scan or comparison goes over)
//! and asks a stop callback every [`STEPS_PER_CHECK`] steps whether to go
//! on; when the callback says stop, the call ends with
//! [`PatternError::Stopped`].
//!
//! Everything else follows Lua 5.4: the same matches, the same captures,
//! the same recursion limit (200 nested matches, "pattern too complex"),
//! the same 32 captures, and the same error texts, raised at the same
//! moment (a malformed piece of a pattern is an error only once the
//! matcher reaches it, as in Lua). The subject and the pattern are bytes;
//! classes are those of the C locale (ASCII).

use std::fmt;
use std::ops::Range;

/// Elementary steps between two calls of the stop callback.
pub(crate) const STEPS_PER_CHECK: u32 = 1000;

/// Lua's `LUA_MAXCAPTURES`.
const MAX_CAPTURES: usize = 32;

/// Lua's `MAXCCALLS`: how deeply matches may nest.
const MAX_DEPTH: u32 = 200;

/// The escape character of patterns and replacement strings.
const ESC: u8 = b'%';

/// A pattern with none of these bytes is searched for as plain text.
const SPECIALS: &[u8] = b"^$*+?.([%-";

/// Capture length marks (as in Lua): still open, or a position capture.
const CAP_UNFINISHED: isize = -1;
const CAP_POSITION: isize = -2;

/// Why a pattern function gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PatternError {
    /// The stop callback said stop.
    Stopped,
    /// An error Lua raises, with Lua's text: a malformed pattern, "pattern
    /// too complex", "too many captures", a bad replacement string...
    Malformed(String),
    /// The result of `gsub` would be longer than the limit it was given.
    OutputTooLarge,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::Stopped => f.write_str("pattern matching stopped"),
            PatternError::Malformed(message) => f.write_str(message),
            PatternError::OutputTooLarge => f.write_str("resulting string too large"),
        }
    }
}

impl std::error::Error for PatternError {}

fn error<T>(message: &str) -> Result<T, PatternError> {
    Err(PatternError::Malformed(message.to_owned()))
}

/// One captured value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Capture {
    /// A substring of the subject (0-based byte range).
    Bytes(Range<usize>),
    /// A position capture `()`: a 1-based position in the subject.
    Position(usize),
}

impl Capture {
    /// The value, borrowing from `subject` (the string that was matched).
    pub(crate) fn value<'s>(&self, subject: &'s [u8]) -> CaptureValue<'s> {
        match self {
            Capture::Bytes(range) => CaptureValue::Bytes(&subject[range.clone()]),
            Capture::Position(at) => CaptureValue::Position(*at),
        }
    }
}

/// A captured value as handed to a `gsub` callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CaptureValue<'s> {
    /// A substring of the subject (a Lua string).
    Bytes(&'s [u8]),
    /// A 1-based position (a Lua integer).
    Position(usize),
}

/// A match of [`find`]: 1-based inclusive bounds and the captures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) captures: Vec<Capture>,
}

/// Counts steps and asks the stop callback every [`STEPS_PER_CHECK`].
struct Budget<'a> {
    left: u32,
    stop: &'a mut dyn FnMut() -> bool,
}

impl Budget<'_> {
    #[inline]
    fn charge(&mut self, steps: usize) -> Result<(), PatternError> {
        match u32::try_from(steps) {
            Ok(steps) if steps < self.left => {
                self.left -= steps;
                Ok(())
            }
            _ => {
                self.left = STEPS_PER_CHECK;
                if (self.stop)() {
                    Err(PatternError::Stopped)
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Lua's `posrelatI`: a 1-based start position, negative counting from the
/// end, clipped to 1 at the low end (not at the high end).
fn start_position(pos: i64, len: usize) -> u64 {
    let len = len as u64;
    if pos > 0 {
        pos.unsigned_abs()
    } else if pos == 0 || pos.unsigned_abs() > len {
        1
    } else {
        len - pos.unsigned_abs() + 1
    }
}

/// `isspace` of the C locale (Rust's ASCII whitespace lacks `\v`).
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t'..=b'\r')
}

/// Whether `c` is in the class of `%cl` (`cl` a letter of a class, or any
/// other byte, which stands for itself).
fn match_class(c: u8, cl: u8) -> bool {
    let res = match cl.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'g' => c.is_ascii_graphic(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        b's' => is_space(c),
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        // Not in the 5.4 manual, but still in its implementation.
        b'z' => c == 0,
        _ => return cl == c,
    };
    if cl.is_ascii_uppercase() { !res } else { res }
}

/// The state of one match attempt.
struct Matcher<'s, 'b> {
    src: &'s [u8],
    pat: &'s [u8],
    /// Captures started so far.
    level: usize,
    /// (start, length or one of the `CAP_` marks) of each capture.
    caps: [(usize, isize); MAX_CAPTURES],
    /// Nested matches still allowed.
    depth: u32,
    budget: Budget<'b>,
}

impl<'s, 'b> Matcher<'s, 'b> {
    fn new(src: &'s [u8], pat: &'s [u8], budget: Budget<'b>) -> Self {
        Matcher {
            src,
            pat,
            level: 0,
            caps: [(0, 0); MAX_CAPTURES],
            depth: MAX_DEPTH,
            budget,
        }
    }

    /// Ready for an attempt at another position.
    fn reset(&mut self) {
        self.level = 0;
        self.depth = MAX_DEPTH;
    }

    /// The pattern byte at `i`; past the end, 0 (Lua strings end with a NUL
    /// that its matcher reads).
    #[inline]
    fn pat_at(&self, i: usize) -> u8 {
        self.pat.get(i).copied().unwrap_or(0)
    }

    /// Where the single-character class starting at `p` ends.
    fn class_end(&mut self, p: usize) -> Result<usize, PatternError> {
        let len = self.pat.len();
        let first = self.pat_at(p);
        let mut p = p + 1;
        match first {
            ESC => {
                if p >= len {
                    return error("malformed pattern (ends with '%')");
                }
                Ok(p + 1)
            }
            b'[' => {
                let start = p;
                if self.pat_at(p) == b'^' {
                    p += 1;
                }
                // The first byte of the set is taken as it is, so a `]` there
                // does not close it.
                loop {
                    if p >= len {
                        return error("malformed pattern (missing ']')");
                    }
                    let c = self.pat[p];
                    p += 1;
                    if c == ESC && p < len {
                        p += 1;
                    }
                    if self.pat_at(p) == b']' {
                        break;
                    }
                }
                self.budget.charge((p - start) >> 5)?;
                Ok(p + 1)
            }
            _ => Ok(p),
        }
    }

    /// Whether `c` is in the set `[...]` from `p` (the `[`) to `ec` (the
    /// `]`).
    fn match_set(&mut self, c: u8, p: usize, ec: usize) -> Result<bool, PatternError> {
        self.budget.charge((ec - p) >> 5)?;
        let mut p = p + 1;
        let mut found = true; // what a member answers
        if self.pat_at(p) == b'^' {
            found = false;
            p += 1;
        }
        while p < ec {
            let b = self.pat[p];
            if b == ESC {
                p += 1;
                if match_class(c, self.pat_at(p)) {
                    return Ok(found);
                }
                p += 1;
            } else if self.pat_at(p + 1) == b'-' && p + 2 < ec {
                if b <= c && c <= self.pat[p + 2] {
                    return Ok(found);
                }
                p += 3;
            } else {
                if b == c {
                    return Ok(found);
                }
                p += 1;
            }
        }
        Ok(!found)
    }

    /// Whether the subject byte at `s` matches the class from `p` to `ep`.
    #[inline]
    fn single_match(&mut self, s: usize, p: usize, ep: usize) -> Result<bool, PatternError> {
        let Some(&c) = self.src.get(s) else {
            return Ok(false);
        };
        Ok(match self.pat_at(p) {
            b'.' => true,
            ESC => match_class(c, self.pat_at(p + 1)),
            b'[' => self.match_set(c, p, ep - 1)?,
            literal => literal == c,
        })
    }

    /// `%bxy` at `s`, `p` being the `x`: where the balanced run ends.
    fn match_balance(&mut self, s: usize, p: usize) -> Result<Option<usize>, PatternError> {
        if p + 1 >= self.pat.len() {
            return error("malformed pattern (missing arguments to '%b')");
        }
        let (open, close) = (self.pat[p], self.pat[p + 1]);
        if self.src.get(s) != Some(&open) {
            return Ok(None);
        }
        let mut depth = 1usize;
        for (i, &c) in self.src.iter().enumerate().skip(s + 1) {
            self.budget.charge(1)?;
            if c == close {
                depth -= 1;
                if depth == 0 {
                    return Ok(Some(i + 1));
                }
            } else if c == open {
                depth += 1;
            }
        }
        Ok(None)
    }

    /// A back-reference `%d` (`digit` its byte) at `s`.
    fn match_capture(&mut self, s: usize, digit: u8) -> Result<Option<usize>, PatternError> {
        let index = usize::from(digit).wrapping_sub(usize::from(b'1'));
        if index >= self.level || self.caps[index].1 == CAP_UNFINISHED {
            let shown = i32::from(digit) - i32::from(b'0');
            return Err(PatternError::Malformed(format!(
                "invalid capture index %{shown}"
            )));
        }
        let (start, len) = self.caps[index];
        // A position capture never matches (Lua compares a length that does
        // not fit the subject).
        let Ok(len) = usize::try_from(len) else {
            return Ok(None);
        };
        self.budget.charge(len >> 5)?;
        let end = s.saturating_add(len);
        if end <= self.src.len() && self.src[s..end] == self.src[start..start + len] {
            Ok(Some(end))
        } else {
            Ok(None)
        }
    }

    fn start_capture(
        &mut self,
        s: usize,
        p: usize,
        what: isize,
    ) -> Result<Option<usize>, PatternError> {
        if self.level >= MAX_CAPTURES {
            return error("too many captures");
        }
        self.caps[self.level] = (s, what);
        self.level += 1;
        let res = self.do_match(s, p)?;
        if res.is_none() {
            self.level -= 1;
        }
        Ok(res)
    }

    fn end_capture(&mut self, s: usize, p: usize) -> Result<Option<usize>, PatternError> {
        let Some(l) = (0..self.level)
            .rev()
            .find(|&l| self.caps[l].1 == CAP_UNFINISHED)
        else {
            return error("invalid pattern capture");
        };
        let len = isize::try_from(s - self.caps[l].0).unwrap_or(isize::MAX);
        self.caps[l].1 = len;
        let res = self.do_match(s, p)?;
        if res.is_none() {
            self.caps[l].1 = CAP_UNFINISHED;
        }
        Ok(res)
    }

    /// Greedy repetition of the class from `p` to `ep`, from `s`.
    fn max_expand(&mut self, s: usize, p: usize, ep: usize) -> Result<Option<usize>, PatternError> {
        let mut i = 0;
        while self.single_match(s + i, p, ep)? {
            self.budget.charge(1)?;
            i += 1;
        }
        loop {
            if let Some(res) = self.do_match(s + i, ep + 1)? {
                return Ok(Some(res));
            }
            if i == 0 {
                return Ok(None);
            }
            i -= 1;
        }
    }

    /// Lazy repetition of the class from `p` to `ep`, from `s`.
    fn min_expand(
        &mut self,
        mut s: usize,
        p: usize,
        ep: usize,
    ) -> Result<Option<usize>, PatternError> {
        loop {
            if let Some(res) = self.do_match(s, ep + 1)? {
                return Ok(Some(res));
            }
            if self.single_match(s, p, ep)? {
                s += 1;
            } else {
                return Ok(None);
            }
        }
    }

    /// Match the pattern from `p` against the subject from `s`: where the
    /// match ends, if it does.
    fn do_match(&mut self, s: usize, p: usize) -> Result<Option<usize>, PatternError> {
        if self.depth == 0 {
            return error("pattern too complex");
        }
        self.depth -= 1;
        let res = self.match_here(s, p);
        self.depth += 1;
        res
    }

    /// The body of [`Self::do_match`]; the steps that end the match with
    /// the next piece loop instead of nesting (they do not count against
    /// the depth, as in Lua).
    fn match_here(&mut self, mut s: usize, mut p: usize) -> Result<Option<usize>, PatternError> {
        loop {
            self.budget.charge(1)?;
            let Some(&pc) = self.pat.get(p) else {
                return Ok(Some(s)); // end of pattern
            };
            match pc {
                b'(' => {
                    return if self.pat_at(p + 1) == b')' {
                        self.start_capture(s, p + 2, CAP_POSITION)
                    } else {
                        self.start_capture(s, p + 1, CAP_UNFINISHED)
                    };
                }
                b')' => return self.end_capture(s, p + 1),
                b'$' if p + 1 == self.pat.len() => {
                    return Ok((s == self.src.len()).then_some(s));
                }
                ESC => match self.pat_at(p + 1) {
                    b'b' => match self.match_balance(s, p + 2)? {
                        Some(end) => {
                            s = end;
                            p += 4;
                            continue;
                        }
                        None => return Ok(None),
                    },
                    b'f' => {
                        p += 2;
                        if self.pat_at(p) != b'[' {
                            return error("missing '[' after '%f' in pattern");
                        }
                        let ep = self.class_end(p)?;
                        let previous = if s == 0 { 0 } else { self.src[s - 1] };
                        let current = self.src.get(s).copied().unwrap_or(0);
                        if !self.match_set(previous, p, ep - 1)?
                            && self.match_set(current, p, ep - 1)?
                        {
                            p = ep;
                            continue;
                        }
                        return Ok(None);
                    }
                    digit @ b'0'..=b'9' => match self.match_capture(s, digit)? {
                        Some(end) => {
                            s = end;
                            p += 2;
                            continue;
                        }
                        None => return Ok(None),
                    },
                    _ => {}
                },
                _ => {}
            }
            // A single-character class and its optional quantifier.
            let ep = self.class_end(p)?;
            let suffix = self.pat_at(ep);
            if !self.single_match(s, p, ep)? {
                if matches!(suffix, b'*' | b'?' | b'-') {
                    p = ep + 1; // zero repetitions are fine
                    continue;
                }
                return Ok(None);
            }
            match suffix {
                b'?' => {
                    if let Some(res) = self.do_match(s + 1, ep + 1)? {
                        return Ok(Some(res));
                    }
                    p = ep + 1;
                }
                b'+' => return self.max_expand(s + 1, p, ep),
                b'*' => return self.max_expand(s, p, ep),
                b'-' => return self.min_expand(s, p, ep),
                _ => {
                    s += 1;
                    p = ep;
                }
            }
        }
    }

    /// Capture `i` of a match from `s` to `e` (the whole match when the
    /// pattern has no captures and `i` is 0).
    fn capture(&self, i: usize, s: usize, e: usize) -> Result<Capture, PatternError> {
        if i >= self.level {
            if i != 0 {
                return Err(PatternError::Malformed(format!(
                    "invalid capture index %{}",
                    i + 1
                )));
            }
            return Ok(Capture::Bytes(s..e));
        }
        let (start, len) = self.caps[i];
        match len {
            CAP_UNFINISHED => error("unfinished capture"),
            CAP_POSITION => Ok(Capture::Position(start + 1)),
            _ => Ok(Capture::Bytes(start..start + len.unsigned_abs())),
        }
    }

    /// How many values a match answers: its captures, or the whole match
    /// when it has none and `whole` says so.
    fn capture_count(&self, whole: bool) -> usize {
        if self.level == 0 && whole {
            1
        } else {
            self.level
        }
    }

    /// The values a match from `s` to `e` answers; `s` is `None` for
    /// `find`, which answers no whole match.
    fn captures(&self, s: Option<usize>, e: usize) -> Result<Vec<Capture>, PatternError> {
        let start = s.unwrap_or(0);
        (0..self.capture_count(s.is_some()))
            .map(|i| self.capture(i, start, e))
            .collect()
    }
}

/// Plain search of `needle` in `hay`: the offset of the first occurrence.
fn find_plain(
    hay: &[u8],
    needle: &[u8],
    budget: &mut Budget<'_>,
) -> Result<Option<usize>, PatternError> {
    let Some((&first, rest)) = needle.split_first() else {
        return Ok(Some(0));
    };
    if needle.len() > hay.len() {
        return Ok(None);
    }
    /// How far the first byte is looked for between two charges.
    const CHUNK: usize = 4096;
    let last = hay.len() - needle.len();
    let mut at = 0;
    while at <= last {
        let end = last.min(at + CHUNK);
        let Some(skip) = hay[at..=end].iter().position(|&b| b == first) else {
            budget.charge((end - at) >> 5)?;
            at = end + 1;
            continue;
        };
        budget.charge(1 + (skip >> 5) + (rest.len() >> 5))?;
        at += skip;
        if &hay[at + 1..at + needle.len()] == rest {
            return Ok(Some(at));
        }
        at += 1;
    }
    Ok(None)
}

/// The pattern without a leading `^`, and whether it had one.
fn split_anchor(pattern: &[u8]) -> (bool, &[u8]) {
    match pattern.split_first() {
        Some((b'^', rest)) => (true, rest),
        _ => (false, pattern),
    }
}

/// What `string.find` and `string.match` share.
enum Search {
    Found(Found),
    Matched(Vec<Capture>),
}

fn search(
    s: &[u8],
    pattern: &[u8],
    init: i64,
    plain: Option<bool>,
    stop: &mut dyn FnMut() -> bool,
) -> Result<Option<Search>, PatternError> {
    let len = s.len();
    let init = start_position(init, len) - 1;
    let Ok(init) = usize::try_from(init) else {
        return Ok(None);
    };
    if init > len {
        return Ok(None);
    }
    let mut budget = Budget {
        left: STEPS_PER_CHECK,
        stop,
    };
    let find = plain.is_some();
    if plain == Some(true) || (find && !pattern.iter().any(|b| SPECIALS.contains(b))) {
        return Ok(find_plain(&s[init..], pattern, &mut budget)?.map(|at| {
            Search::Found(Found {
                start: init + at + 1,
                end: init + at + pattern.len(),
                captures: Vec::new(),
            })
        }));
    }
    let (anchor, pattern) = split_anchor(pattern);
    let mut m = Matcher::new(s, pattern, budget);
    let mut start = init;
    loop {
        m.reset();
        if let Some(end) = m.do_match(start, 0)? {
            return Ok(Some(if find {
                Search::Found(Found {
                    start: start + 1,
                    end,
                    captures: m.captures(None, end)?,
                })
            } else {
                Search::Matched(m.captures(Some(start), end)?)
            }));
        }
        if anchor || start >= len {
            return Ok(None);
        }
        start += 1;
    }
}

/// `string.find(s, pattern, init, plain)`: `init` is Lua's (1-based,
/// negative from the end; the caller passes 1 for nil), `plain` turns off
/// patterns. Answers the bounds of the match (1-based, inclusive) and the
/// pattern's captures (none for a plain search), or `None` (`nil`).
pub(crate) fn find(
    s: &[u8],
    pattern: &[u8],
    init: i64,
    plain: bool,
    stop: &mut dyn FnMut() -> bool,
) -> Result<Option<Found>, PatternError> {
    Ok(match search(s, pattern, init, Some(plain), stop)? {
        Some(Search::Found(found)) => Some(found),
        _ => None,
    })
}

/// `string.match(s, pattern, init)`: the captures of the first match, or
/// the whole match as the only value when the pattern has none.
pub(crate) fn match_(
    s: &[u8],
    pattern: &[u8],
    init: i64,
    stop: &mut dyn FnMut() -> bool,
) -> Result<Option<Vec<Capture>>, PatternError> {
    Ok(match search(s, pattern, init, None, stop)? {
        Some(Search::Matched(captures)) => Some(captures),
        _ => None,
    })
}

/// The state of a `string.gmatch` iterator. It keeps positions only: every
/// call of [`GMatch::next`] must be given the subject and pattern the
/// iterator was made for. A `^` in the pattern is an ordinary character, as
/// in Lua 5.4. Steps are counted across calls, so a loop of cheap calls
/// still reaches the stop callback.
#[derive(Debug, Clone)]
pub(crate) struct GMatch {
    /// Where the next search starts.
    src: usize,
    /// The end of the last match: an empty match there is skipped.
    last_match: Option<usize>,
    /// Steps left before the stop callback is asked.
    left: u32,
}

impl GMatch {
    /// `string.gmatch(s, pattern, init)` (the caller passes 1 for nil).
    pub(crate) fn new(s: &[u8], init: i64) -> Self {
        let len = s.len();
        let init = usize::try_from(start_position(init, len) - 1).unwrap_or(usize::MAX);
        GMatch {
            src: init.min(len + 1),
            last_match: None,
            left: STEPS_PER_CHECK,
        }
    }

    /// The values of the next match (captures, or the whole match), or
    /// `None` when there are no more.
    pub(crate) fn next(
        &mut self,
        s: &[u8],
        pattern: &[u8],
        stop: &mut dyn FnMut() -> bool,
    ) -> Result<Option<Vec<Capture>>, PatternError> {
        let budget = Budget {
            left: self.left,
            stop,
        };
        let mut m = Matcher::new(s, pattern, budget);
        let res = self.next_with(&mut m);
        self.left = m.budget.left;
        res
    }

    fn next_with(&mut self, m: &mut Matcher<'_, '_>) -> Result<Option<Vec<Capture>>, PatternError> {
        let mut start = self.src;
        while start <= m.src.len() {
            m.reset();
            if let Some(end) = m.do_match(start, 0)?
                && Some(end) != self.last_match
            {
                self.src = end;
                self.last_match = Some(end);
                return m.captures(Some(start), end).map(Some);
            }
            start += 1;
        }
        Ok(None)
    }
}

/// What a replacement callback answers: the replacement text, or `None`
/// to keep the matched text.
pub(crate) type ReplResult<E> = Result<Option<Vec<u8>>, E>;

/// The replacement of `string.gsub`. A callback answers the replacement
/// text, or `None` (Lua's nil or false) to keep the matched text.
pub(crate) enum Repl<'r, E> {
    /// A string (or number), where `%0`-`%9` stand for captures and `%%`
    /// for `%`.
    Str(&'r [u8]),
    /// A table: called with the first capture (or the whole match), the
    /// key to look up.
    Table(&'r mut dyn FnMut(CaptureValue<'_>) -> ReplResult<E>),
    /// A function: called with all captures (or the whole match).
    Function(&'r mut dyn FnMut(&[CaptureValue<'_>]) -> ReplResult<E>),
}

/// Why `gsub` gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GsubError<E> {
    Pattern(PatternError),
    /// The error of a replacement callback.
    Repl(E),
}

impl<E> From<PatternError> for GsubError<E> {
    fn from(error: PatternError) -> Self {
        GsubError::Pattern(error)
    }
}

/// The result of `gsub` being built, within its length limit.
struct Output {
    bytes: Vec<u8>,
    max: usize,
}

impl Output {
    fn push(&mut self, more: &[u8], budget: &mut Budget<'_>) -> Result<(), PatternError> {
        if more.len() > self.max - self.bytes.len() {
            return Err(PatternError::OutputTooLarge);
        }
        budget.charge(more.len() >> 6)?;
        self.bytes.extend_from_slice(more);
        Ok(())
    }
}

/// Append the replacement string `repl` for the match from `s` to `e`.
fn add_string(
    m: &mut Matcher<'_, '_>,
    out: &mut Output,
    repl: &[u8],
    s: usize,
    e: usize,
) -> Result<(), PatternError> {
    let src = m.src;
    let mut rest = repl;
    while let Some(at) = rest.iter().position(|&b| b == ESC) {
        out.push(&rest[..at], &mut m.budget)?;
        let c = rest.get(at + 1).copied().unwrap_or(0);
        match c {
            ESC => out.push(&[ESC], &mut m.budget)?,
            b'0' => out.push(&src[s..e], &mut m.budget)?,
            b'1'..=b'9' => match m.capture(usize::from(c - b'1'), s, e)? {
                Capture::Bytes(range) => out.push(&src[range], &mut m.budget)?,
                Capture::Position(p) => out.push(p.to_string().as_bytes(), &mut m.budget)?,
            },
            _ => return error("invalid use of '%' in replacement string"),
        }
        rest = &rest[at + 2..];
    }
    out.push(rest, &mut m.budget)
}

/// Append the replacement for the match from `s` to `e`.
fn add_value<E>(
    m: &mut Matcher<'_, '_>,
    out: &mut Output,
    repl: &mut Repl<'_, E>,
    s: usize,
    e: usize,
) -> Result<(), GsubError<E>> {
    let src = m.src;
    let new = match repl {
        Repl::Str(text) => return Ok(add_string(m, out, text, s, e)?),
        Repl::Table(lookup) => lookup(m.capture(0, s, e)?.value(src)),
        Repl::Function(call) => {
            let mut values = [CaptureValue::Position(0); MAX_CAPTURES];
            let count = m.capture_count(true);
            for (i, value) in values.iter_mut().enumerate().take(count) {
                *value = m.capture(i, s, e)?.value(src);
            }
            call(&values[..count])
        }
    };
    match new.map_err(GsubError::Repl)? {
        Some(text) => out.push(&text, &mut m.budget)?,
        None => out.push(&src[s..e], &mut m.budget)?,
    }
    Ok(())
}

/// `string.gsub(s, pattern, repl, max_n)`: `max_n` `None` for nil (no
/// limit). Answers the new string and the number of matches. `max_len`
/// bounds the length of the result ([`PatternError::OutputTooLarge`]
/// past it): the result is built outside Lua's allocator, so Lua's memory
/// limit does not see it.
pub(crate) fn gsub<E>(
    s: &[u8],
    pattern: &[u8],
    mut repl: Repl<'_, E>,
    max_n: Option<i64>,
    max_len: usize,
    stop: &mut dyn FnMut() -> bool,
) -> Result<(Vec<u8>, usize), GsubError<E>> {
    let max_n = max_n.unwrap_or(i64::MAX);
    let (anchor, pattern) = split_anchor(pattern);
    let budget = Budget {
        left: STEPS_PER_CHECK,
        stop,
    };
    let mut m = Matcher::new(s, pattern, budget);
    let mut out = Output {
        bytes: Vec::new(),
        max: max_len,
    };
    let mut src = 0;
    let mut last_match = None;
    let mut n: usize = 0;
    while i64::try_from(n).unwrap_or(i64::MAX) < max_n {
        m.reset();
        match m.do_match(src, 0)? {
            Some(end) if Some(end) != last_match => {
                n += 1;
                add_value(&mut m, &mut out, &mut repl, src, end)?;
                src = end;
                last_match = Some(end);
            }
            _ if src < s.len() => {
                out.push(&s[src..=src], &mut m.budget)?;
                src += 1;
            }
            _ => break,
        }
        if anchor {
            break;
        }
    }
    out.push(&s[src..], &mut m.budget)?;
    Ok((out.bytes, n))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::{Duration, Instant};

    use mlua::{Function, Lua, Table};

    use super::*;

    /// Runs the real string functions under pcall and serialises what they
    /// answer: `ok` and `,`-separated values (`s<len>:<bytes>`, `i<int>`,
    /// `n`), or `err:<message>`.
    const HARNESS: &str = r#"
local function ser(out, ...)
  for i = 1, select('#', ...) do
    local v = select(i, ...)
    if type(v) == 'string' then out[#out + 1] = 's' .. #v .. ':' .. v
    elseif math.type(v) == 'integer' then out[#out + 1] = 'i' .. v
    elseif v == nil then out[#out + 1] = 'n'
    else out[#out + 1] = '?' .. tostring(v) end
  end
end
local function result(ok, ...)
  if not ok then return 'err:' .. tostring((...)) end
  local out = {'ok'}
  ser(out, ...)
  return table.concat(out, ',')
end
local H = {}
function H.find(s, p, init, plain) return result(pcall(string.find, s, p, init, plain)) end
function H.match(s, p, init) return result(pcall(string.match, s, p, init)) end
function H.gmatch(s, p, init)
  local parts = {}
  local it = string.gmatch(s, p, init)
  for _ = 1, 100 do
    -- called through pcall, as string.find is: an error raised by a
    -- library function is located at its caller, a Lua function here
    local r = table.pack(pcall(it))
    if not r[1] then
      parts[#parts + 1] = 'err:' .. tostring(r[2])
      return table.concat(parts, ';')
    end
    if r[2] == nil then
      parts[#parts + 1] = 'end'
      return table.concat(parts, ';')
    end
    local out = {'ok'}
    ser(out, table.unpack(r, 2, r.n))
    parts[#parts + 1] = table.concat(out, ',')
  end
  parts[#parts + 1] = 'more'
  return table.concat(parts, ';')
end
function H.gsub_str(s, p, r, n) return result(pcall(string.gsub, s, p, r, n)) end
local function f(...)
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  local k = #parts[1] % 3
  if k == 0 then return nil
  elseif k == 1 then return '<' .. table.concat(parts, '|', 1, parts.n) .. '>'
  else return false end
end
function H.gsub_fn(s, p, n) return result(pcall(string.gsub, s, p, f, n)) end
local T = { a = '[A]', b = false, ab = 'AB', [''] = '{}', ['1'] = 'str1', [1] = 'one', [2] = 'two' }
function H.gsub_tbl(s, p, n) return result(pcall(string.gsub, s, p, T, n)) end
return H
"#;

    struct Real {
        lua: Lua,
        find: Function,
        match_: Function,
        gmatch: Function,
        gsub_str: Function,
        gsub_fn: Function,
        gsub_tbl: Function,
    }

    impl Real {
        fn new() -> Real {
            let lua = Lua::new();
            let h: Table = lua.load(HARNESS).eval().expect("harness");
            let get = |name: &str| -> Function { h.get(name).expect("harness function") };
            Real {
                find: get("find"),
                match_: get("match"),
                gmatch: get("gmatch"),
                gsub_str: get("gsub_str"),
                gsub_fn: get("gsub_fn"),
                gsub_tbl: get("gsub_tbl"),
                lua,
            }
        }

        fn string(&self, bytes: &[u8]) -> mlua::LuaString {
            self.lua.create_string(bytes).expect("string")
        }

        fn call(&self, f: &Function, args: impl mlua::IntoLuaMulti) -> Vec<u8> {
            let out: mlua::LuaString = f.call(args).expect("harness call");
            out.as_bytes().to_vec()
        }

        fn find(&self, s: &[u8], p: &[u8], init: i64, plain: bool) -> Vec<u8> {
            self.call(&self.find, (self.string(s), self.string(p), init, plain))
        }

        fn match_(&self, s: &[u8], p: &[u8], init: i64) -> Vec<u8> {
            self.call(&self.match_, (self.string(s), self.string(p), init))
        }

        fn gmatch(&self, s: &[u8], p: &[u8], init: i64) -> Vec<u8> {
            self.call(&self.gmatch, (self.string(s), self.string(p), init))
        }

        fn gsub_str(&self, s: &[u8], p: &[u8], r: &[u8], n: Option<i64>) -> Vec<u8> {
            self.call(
                &self.gsub_str,
                (self.string(s), self.string(p), self.string(r), n),
            )
        }

        fn gsub_fn(&self, s: &[u8], p: &[u8], n: Option<i64>) -> Vec<u8> {
            self.call(&self.gsub_fn, (self.string(s), self.string(p), n))
        }

        fn gsub_tbl(&self, s: &[u8], p: &[u8], n: Option<i64>) -> Vec<u8> {
            self.call(&self.gsub_tbl, (self.string(s), self.string(p), n))
        }
    }

    fn ser_bytes(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(format!(",s{}:", b.len()).as_bytes());
        out.extend_from_slice(b);
    }

    fn ser_int(out: &mut Vec<u8>, n: usize) {
        out.extend_from_slice(format!(",i{n}").as_bytes());
    }

    fn ser_caps(out: &mut Vec<u8>, s: &[u8], caps: &[Capture]) {
        for c in caps {
            match c.value(s) {
                CaptureValue::Bytes(b) => ser_bytes(out, b),
                CaptureValue::Position(p) => ser_int(out, p),
            }
        }
    }

    fn ser_err(e: &PatternError) -> Vec<u8> {
        match e {
            PatternError::Malformed(m) => format!("err:{m}").into_bytes(),
            other => format!("err:<{other:?}>").into_bytes(),
        }
    }

    fn never() -> impl FnMut() -> bool {
        || false
    }

    fn ours_find(s: &[u8], p: &[u8], init: i64, plain: bool) -> Vec<u8> {
        match find(s, p, init, plain, &mut never()) {
            Err(e) => ser_err(&e),
            Ok(None) => b"ok,n".to_vec(),
            Ok(Some(f)) => {
                let mut out = b"ok".to_vec();
                ser_int(&mut out, f.start);
                ser_int(&mut out, f.end);
                ser_caps(&mut out, s, &f.captures);
                out
            }
        }
    }

    fn ours_match(s: &[u8], p: &[u8], init: i64) -> Vec<u8> {
        match match_(s, p, init, &mut never()) {
            Err(e) => ser_err(&e),
            Ok(None) => b"ok,n".to_vec(),
            Ok(Some(caps)) => {
                let mut out = b"ok".to_vec();
                ser_caps(&mut out, s, &caps);
                out
            }
        }
    }

    fn ours_gmatch(s: &[u8], p: &[u8], init: i64) -> Vec<u8> {
        let mut it = GMatch::new(s, init);
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut done = false;
        for _ in 0..100 {
            match it.next(s, p, &mut never()) {
                Err(e) => {
                    parts.push(ser_err(&e));
                    done = true;
                    break;
                }
                Ok(None) => {
                    parts.push(b"end".to_vec());
                    done = true;
                    break;
                }
                Ok(Some(caps)) => {
                    let mut out = b"ok".to_vec();
                    ser_caps(&mut out, s, &caps);
                    parts.push(out);
                }
            }
        }
        if !done {
            parts.push(b"more".to_vec());
        }
        parts.join(&b';')
    }

    fn ours_gsub(s: &[u8], p: &[u8], repl: Repl<'_, Infallible>, n: Option<i64>) -> Vec<u8> {
        match gsub(s, p, repl, n, usize::MAX, &mut never()) {
            Err(GsubError::Pattern(e)) => ser_err(&e),
            Err(GsubError::Repl(never)) => match never {},
            Ok((text, count)) => {
                let mut out = b"ok".to_vec();
                ser_bytes(&mut out, &text);
                ser_int(&mut out, count);
                out
            }
        }
    }

    fn tostring(v: &CaptureValue<'_>) -> Vec<u8> {
        match v {
            CaptureValue::Bytes(b) => b.to_vec(),
            CaptureValue::Position(p) => p.to_string().into_bytes(),
        }
    }

    /// The Rust side of the harness's function `f`.
    fn repl_fn(values: &[CaptureValue<'_>]) -> Result<Option<Vec<u8>>, Infallible> {
        let parts: Vec<Vec<u8>> = values.iter().map(tostring).collect();
        Ok(match parts[0].len() % 3 {
            1 => {
                let mut out = b"<".to_vec();
                out.extend_from_slice(&parts.join(&b'|'));
                out.push(b'>');
                Some(out)
            }
            _ => None,
        })
    }

    /// The Rust side of the harness's table `T`.
    fn repl_tbl(key: CaptureValue<'_>) -> Result<Option<Vec<u8>>, Infallible> {
        let value: Option<&[u8]> = match key {
            CaptureValue::Bytes(b"a") => Some(b"[A]"),
            CaptureValue::Bytes(b"ab") => Some(b"AB"),
            CaptureValue::Bytes(b"") => Some(b"{}"),
            CaptureValue::Bytes(b"1") => Some(b"str1"),
            CaptureValue::Position(1) => Some(b"one"),
            CaptureValue::Position(2) => Some(b"two"),
            _ => None,
        };
        Ok(value.map(<[u8]>::to_vec))
    }

    /// Collects the cases where the real Lua and this module differ.
    struct Diff {
        real: Real,
        cases: usize,
        /// Cases whose real answer was a match, no match, an error.
        found: usize,
        nil: usize,
        errors: usize,
        failures: Vec<String>,
    }

    impl Diff {
        fn new() -> Diff {
            Diff {
                real: Real::new(),
                cases: 0,
                found: 0,
                nil: 0,
                errors: 0,
                failures: Vec::new(),
            }
        }

        fn check(&mut self, what: String, real: Vec<u8>, ours: Vec<u8>) {
            self.cases += 1;
            if real.starts_with(b"err:") || real.windows(5).any(|w| w == b";err:") {
                self.errors += 1;
            } else if real == b"ok,n" || real == b"end" {
                self.nil += 1;
            } else {
                self.found += 1;
            }
            if real != ours && self.failures.len() < 40 {
                self.failures.push(format!(
                    "{what}\n    lua:  {}\n    ours: {}",
                    String::from_utf8_lossy(&real).escape_debug(),
                    String::from_utf8_lossy(&ours).escape_debug()
                ));
            }
        }

        /// Every function on one subject and pattern.
        fn all(
            &mut self,
            s: &[u8],
            p: &[u8],
            inits: &[i64],
            repls: &[&[u8]],
            max_ns: &[Option<i64>],
        ) {
            let show = |b: &[u8]| format!("{:?}", String::from_utf8_lossy(b));
            for &init in inits {
                for plain in [false, true] {
                    let what = format!("find({}, {}, {init}, {plain})", show(s), show(p));
                    let (real, ours) = (
                        self.real.find(s, p, init, plain),
                        ours_find(s, p, init, plain),
                    );
                    self.check(what, real, ours);
                }
                let what = format!("match({}, {}, {init})", show(s), show(p));
                let (real, ours) = (self.real.match_(s, p, init), ours_match(s, p, init));
                self.check(what, real, ours);
                let what = format!("gmatch({}, {}, {init})", show(s), show(p));
                let (real, ours) = (self.real.gmatch(s, p, init), ours_gmatch(s, p, init));
                self.check(what, real, ours);
            }
            for &n in max_ns {
                for &r in repls {
                    let what = format!("gsub({}, {}, {}, {n:?})", show(s), show(p), show(r));
                    let (real, ours) = (
                        self.real.gsub_str(s, p, r, n),
                        ours_gsub(s, p, Repl::Str(r), n),
                    );
                    self.check(what, real, ours);
                }
                let what = format!("gsub({}, {}, f, {n:?})", show(s), show(p));
                let (real, ours) = (
                    self.real.gsub_fn(s, p, n),
                    ours_gsub(s, p, Repl::Function(&mut repl_fn), n),
                );
                self.check(what, real, ours);
                let what = format!("gsub({}, {}, T, {n:?})", show(s), show(p));
                let (real, ours) = (
                    self.real.gsub_tbl(s, p, n),
                    ours_gsub(s, p, Repl::Table(&mut repl_tbl), n),
                );
                self.check(what, real, ours);
            }
        }

        fn finish(self) {
            eprintln!(
                "{} cases: {} found, {} nothing found, {} errors",
                self.cases, self.found, self.nil, self.errors
            );
            // The corpus is not degenerate: many cases find something, and
            // some raise errors.
            assert!(self.found * 100 > self.cases * 35, "too few matches");
            assert!(self.errors * 100 > self.cases * 3, "too few errors");
            assert!(
                self.failures.is_empty(),
                "{} differences in {} cases:\n{}",
                self.failures.len(),
                self.cases,
                self.failures.join("\n")
            );
        }
    }

    const REPLS: &[&[u8]] = &[
        b"%0", b"%1", b"%2", b"<%1|%2>", b"%%", b"%", b"x%", b"%a", b"", b"-", b"%9", b"%0%0",
        b"[%1]",
    ];

    /// (subject, pattern) pairs written by hand, by topic.
    fn corpus() -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut cases: Vec<(&[u8], &[u8])> = vec![
            // literals, the empty pattern, plain text with specials
            (b"hello world", b"o w"),
            (b"hello world", b"l"),
            (b"hello world", b""),
            (b"", b""),
            (b"", b"a"),
            (b"abc", b"abcd"),
            (b"a.b", b"."),
            (b"a.b", b"%."),
            (b"a+b", b"a+b"),
            (b"a+b", b"a%+b"),
            (b"x^y", b"^"),
            (b"x^y", b"x^"),
            (b"x$y", b"$y"),
            (b"x$y", b"x$"),
            (b"x$", b"x$"),
            (b"$$", b"$$"),
            (b"a\0b", b"\0"),
            (b"a\0b", b"a%zb"),
            (b"a\0b", b"%z"),
            (b"a\0b\0", b"[\0]+"),
            (b"a\xffb", b"[\x80-\xff]"),
            (b"a\xffb", b"%A+"),
            // classes
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%a+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%A+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%c+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%C+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%d+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%D+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%g+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%G+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%l+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%L+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%p+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%P+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%s+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%S+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%u+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%U+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%w+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%W+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%x+"),
            (b"Hello, World! 123 \t\n\x0b\x0c\r_~\x7f\x01", b"%X+"),
            (b"Hello, World! 123", b"%q"),
            (b"%%q", b"%%"),
            (b"a]b", b"%]"),
            (b"a-b", b"%-"),
            // sets
            (b"abc-]^xyz", b"[abc]+"),
            (b"abc-]^xyz", b"[^abc]+"),
            (b"abc-]^xyz", b"[a-c]+"),
            (b"abc-]^xyz", b"[c-a]+"),
            (b"abc-]^xyz", b"[]]"),
            (b"abc-]^xyz", b"[^]]+"),
            (b"abc-]^xyz", b"[]a]+"),
            (b"abc-]^xyz", b"[a-]+"),
            (b"abc-]^xyz", b"[-a]+"),
            (b"abc-]^xyz", b"[%-]"),
            (b"abc-]^xyz", b"[%]]"),
            (b"abc-]^xyz", b"[%a%-]+"),
            (b"abc-]^xyz", b"[%^]"),
            (b"abc-]^xyz", b"[x^]+"),
            (b"abc-]^xyz", b"[^^]+"),
            (b"abc-]^xyz", b"[a-c-z]+"),
            (b"abc-]^xyz", b"[%w_]+"),
            (b"abc-]^xyz", b"[^%W]+"),
            (b"abc-]^xyz", b"[a%-z]+"),
            (b"abc 123", b"[%d%s]+"),
            (b"abc 123", b"[%D]+"),
            (b"a%b", b"[%%]"),
            (b"abc", b"[]"),
            (b"abc", b"[^]"),
            (b"abc", b"[a"),
            (b"abc", b"[a%"),
            (b"abc", b"[a%]"),
            (b"abc", b"[^"),
            (b"abc", b"["),
            (b"abc", b"x["),
            (b"abc", b"[[]"),
            (b"a[b", b"[[]"),
            (b"abc", b"[%z]"),
            // quantifiers
            (b"aaab", b"a*"),
            (b"aaab", b"a+"),
            (b"aaab", b"a-"),
            (b"aaab", b"a-b"),
            (b"aaab", b"a?"),
            (b"aaab", b"a?a?a?a?b"),
            (b"aaab", b"b*"),
            (b"aaab", b"b+"),
            (b"aaab", b".*"),
            (b"aaab", b".-"),
            (b"aaab", b".-$"),
            (b"aaab", b"^.-b"),
            (b"aaab", b"%a*b"),
            (b"aaab", b"[ab]*b"),
            (b"aaab", b"a**"),
            (b"aaab", b"*a"),
            (b"aaab", b"+"),
            (b"aaab", b"-"),
            (b"aaab", b"?"),
            (b"  trim me  ", b"^%s*(.-)%s*$"),
            (b"key = value", b"(%w+)%s*=%s*(%w+)"),
            (b"int x; int y;", b"int%s+(%a+);"),
            (b"2024-01-31", b"(%d+)-(%d+)-(%d+)"),
            (b"a,b,,c", b"([^,]*)"),
            (b"a,b,,c", b"[^,]+"),
            // anchors
            (b"abcabc", b"^abc"),
            (b"abcabc", b"^bc"),
            (b"abcabc", b"abc$"),
            (b"abcabc", b"^abc$"),
            (b"abc", b"^abc$"),
            (b"abc", b"^$"),
            (b"", b"^$"),
            (b"", b"$"),
            (b"", b"^"),
            (b"abc", b"^"),
            (b"abc", b"$"),
            (b"^abc", b"^^"),
            (b"^abc", b"^^a"),
            (b"a$b", b"a$b"),
            (b"ab", b"b$$"),
            (b"ab$", b"b$$"),
            // captures
            (b"hello world", b"(h)(e)(l)(l)(o)"),
            (b"hello world", b"((h)(e))"),
            (b"hello world", b"(o)"),
            (b"hello world", b"()o()"),
            (b"hello world", b"()"),
            (b"hello world", b"()ll()"),
            (b"hello world", b"(()ll())"),
            (b"hello", b"(l*)"),
            (b"hello", b"(x*)"),
            (b"hello", b"(h"),
            (b"hello", b"(h)(e"),
            (b"hello", b"h)"),
            (b"hello", b")"),
            (b"hello", b"(()"),
            (b"hello", b"(()))"),
            (b"hello", b"%("),
            (b"(x)", b"%((.)%)"),
            (b"THE (quick) fox", b"%((%a+)%)"),
            (b"a", b"()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()"),
            (b"a", b"()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()"),
            (b"a", b"x()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()()"),
            (b"abcdefghijklmnopqrstuvwxyz0123456789", b"(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)(m)(n)(o)(p)(q)(r)(s)(t)(u)(v)(w)(x)(y)(z)(0)(1)(2)(3)(4)(5)"),
            (b"abcdefghijklmnopqrstuvwxyz0123456789", b"(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)(m)(n)(o)(p)(q)(r)(s)(t)(u)(v)(w)(x)(y)(z)(0)(1)(2)(3)(4)(5)(6)"),
            // back-references
            (b"hello", b"(l)%1"),
            (b"hello", b"(.)%1"),
            (b"abab", b"(ab)%1"),
            (b"abab", b"(a)(b)%1%2"),
            (b"abab", b"(a)(b)%2"),
            (b"abab", b"%1"),
            (b"abab", b"%0"),
            (b"abab", b"(a)%2"),
            (b"abab", b"(a%1)"),
            (b"abab", b"()%1"),
            (b"abab", b"(a)()%2"),
            (b"abab", b"(a*)%1"),
            (b"xx", b"(x?)%1$"),
            (b"say \"hi\" or 'yo'", b"([\"'])(.-)%1"),
            (b"aaaa", b"(a)%1*"),
            (b"a", b"(a)%9"),
            // %b
            (b"THE (quick (brown)) fox", b"%b()"),
            (b"THE (quick (brown) fox", b"%b()"),
            (b"if x then y end end", b"%bie"),
            (b"''''", b"%b''"),
            (b"[[x]]", b"%b[]"),
            (b"(x)", b"%b("),
            (b"(x)", b"%b"),
            (b"(x)", b"a%b"),
            (b"(x)(y)", b"%b()%b()"),
            (b"(x)(y)", b"(%b())"),
            (b"(x)(y)", b"%b()*"),
            (b"f(a(b)c)d", b"%w%b()"),
            // %f
            (b"THE (quick) fox", b"%f[%a]%a+"),
            (b"THE (quick) fox", b"%f[%A]"),
            (b"THE (quick) fox", b"%f[%a]"),
            (b"hello world", b"%f[%w]%w+%f[%W]"),
            (b"hello", b"%f[%z]"),
            (b"hello", b"%f[^%z]"),
            (b"hello\0world", b"%f[%z]"),
            (b"hello", b"%f[\0]"),
            (b"hello", b"%f[^\0]"),
            (b"hello", b"%fa"),
            (b"hello", b"%f"),
            (b"hello", b"%f["),
            (b"hello", b"%f[a"),
            (b"hello", b"x%f"),
            (b"aaa", b"%f[a]a"),
            (b"the cat", b"%f[%l]%l"),
            // malformed patterns, reached or not
            (b"abc", b"%"),
            (b"abc", b"a%"),
            (b"abc", b"x%"),
            (b"abc", b"%g%"),
            (b"", b"%"),
            (b"abc", b"(%"),
            (b"abc", b"a[%"),
            // depth
            (b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", b"a?a?a?a?a?a?a?a?a?a?a?a?a?a?a?a?a?a?a?a?a?a?a?a?a?a?"),
            // empty matches for gmatch and gsub
            (b"abc", b".-"),
            (b"abc", b"x*"),
            (b"abc", b"()"),
            (b"abc", b"%f[%w]"),
            (b"abc", b"b*"),
            (b"a b", b"%s*"),
            (b"hello world from Lua", b"%a+"),
            (b"hello world from Lua", b"(%w+)%s*(%w+)"),
            (b"from=world, to=Lua", b"(%w+)=(%w+)"),
            (b"abc", b"^a"),
            (b"^abc", b"^a"),
            (b"abc", b"^"),
            (b"abc", b"$"),
            (b"abc", b"^$"),
            (b"aaa", b"a-"),
            (b"aaa", b"a"),
            (b"aaa", b"^a*"),
            (b"ab", b"()b*"),
            (b"1", b"1"),
            (b"ab", b"a"),
            (b"b", b"b"),
        ];
        let long_set = {
            let mut p = b"[".to_vec();
            p.extend(std::iter::repeat_n(b'x', 100));
            p.extend_from_slice(b"a]+");
            p
        };
        let deep: Vec<u8> = b"a?".repeat(250);
        let deep_subject = b"a".repeat(250);
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = cases
            .drain(..)
            .map(|(s, p)| (s.to_vec(), p.to_vec()))
            .collect();
        out.push((b"xxaaxa".to_vec(), long_set));
        out.push((deep_subject.clone(), deep));
        out.push((deep_subject, b"(a".repeat(33)));
        out.push((b"a".repeat(199), b"a?".repeat(199)));
        out.push((b"a".repeat(210), b"a?".repeat(199)));
        out.push((b"a".repeat(210), b"(a?".repeat(40)));
        out
    }

    fn inits(len: usize) -> Vec<i64> {
        let len = i64::try_from(len).expect("length");
        let mut v = vec![
            1,
            0,
            2,
            -1,
            -2,
            len,
            len + 1,
            len + 2,
            -len,
            -len - 1,
            i64::MIN,
            i64::MAX,
        ];
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn differential_corpus() {
        let mut diff = Diff::new();
        for (s, p) in corpus() {
            diff.all(
                &s,
                &p,
                &inits(s.len()),
                REPLS,
                &[None, Some(1), Some(0), Some(-1), Some(2)],
            );
        }
        diff.finish();
    }

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).expect("small")
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    const PIECES: &[&[u8]] = &[
        b"a", b"b", b"c", b"x", b" ", b"1", b"(", b")", b"()", b".", b"%a", b"%A", b"%d", b"%D",
        b"%s", b"%S", b"%w", b"%W", b"%p", b"%P", b"%l", b"%u", b"%c", b"%x", b"%g", b"%G", b"%%",
        b"%.", b"%(", b"%)", b"%z", b"[ab]", b"[^ab]", b"[a-c]", b"[%d%s]", b"[]]", b"[^]a]",
        b"[a-]", b"[%a_]", b"[", b"]", b"*", b"*", b"+", b"+", b"-", b"-", b"?", b"?", b"%1",
        b"%2", b"%0", b"%b()", b"%bab", b"%b", b"%f[%w]", b"%f[%W]", b"%f[^a]", b"%f[ab]", b"%f",
        b"^", b"$", b"%", b"\0", b"a", b"b", b"(", b")",
    ];

    const SUBJECT_BYTES: &[u8] = b"aaabbc x(1)2 A.\0_\xff%";

    #[test]
    fn differential_random() {
        let mut diff = Diff::new();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let s: Vec<u8> = (0..rng.below(14))
                .map(|_| rng.pick(SUBJECT_BYTES))
                .collect();
            let mut p = Vec::new();
            if rng.below(4) == 0 {
                p.push(b'^');
            }
            if round % 2 == 0 || s.is_empty() {
                // Pieces at random.
                for _ in 0..rng.below(7) {
                    p.extend_from_slice(rng.pick(PIECES));
                }
            } else {
                // A piece of the subject, some bytes turned into classes
                // and quantified: these tend to match.
                let from = rng.below(s.len());
                let to = from + rng.below(s.len() - from + 1);
                for &c in &s[from..to] {
                    match rng.below(8) {
                        0 => p.push(b'.'),
                        1 => p.extend_from_slice(rng.pick(PIECES)),
                        2 if c.is_ascii_alphanumeric() => p.extend_from_slice(b"%w"),
                        3 => p.extend_from_slice(format!("[{}b]", char::from(c)).as_bytes()),
                        _ if c.is_ascii_alphanumeric() || c == b' ' => p.push(c),
                        _ => {
                            p.push(b'%');
                            p.push(c);
                        }
                    }
                    if rng.below(3) == 0 {
                        p.push(rng.pick(b"*+-?"));
                    }
                    if rng.below(6) == 0 {
                        p.push(rng.pick(b"()"));
                    }
                }
            }
            if rng.below(5) == 0 {
                p.push(b'$');
            }
            let len = i64::try_from(s.len()).expect("length");
            let init = i64::try_from(rng.below(2 * s.len() + 5)).expect("small") - len - 2;
            let repl: &[u8] = rng.pick(REPLS);
            let n = rng.pick(&[None, None, Some(1), Some(2), Some(0)]);
            diff.all(&s, &p, &[1, init], &[repl], &[n]);
        }
        diff.finish();
    }

    /// The error texts of Lua 5.4, as the real Lua raises them.
    #[test]
    fn error_texts_are_lua_s() {
        let real = Real::new();
        let cases: &[(&[u8], &str)] = &[
            (b"%", "malformed pattern (ends with '%')"),
            (b"[a", "malformed pattern (missing ']')"),
            (b"%b", "malformed pattern (missing arguments to '%b')"),
            (b"%fa", "missing '[' after '%f' in pattern"),
            (b"%1", "invalid capture index %1"),
            (b"%0", "invalid capture index %0"),
            (b")", "invalid pattern capture"),
            (b"(", "unfinished capture"),
        ];
        for &(p, message) in cases {
            let expected = format!("err:{message}").into_bytes();
            assert_eq!(real.match_(b"abc", p, 1), expected, "lua, {p:?}");
            assert_eq!(ours_match(b"abc", p, 1), expected, "ours, {p:?}");
        }
        let expected = b"err:invalid use of '%' in replacement string".to_vec();
        assert_eq!(real.gsub_str(b"abc", b"b", b"%x", None), expected);
        assert_eq!(ours_gsub(b"abc", b"b", Repl::Str(b"%x"), None), expected);
        let expected = b"err:invalid capture index %2".to_vec();
        assert_eq!(real.gsub_str(b"abc", b"b", b"%2", None), expected);
        assert_eq!(ours_gsub(b"abc", b"b", Repl::Str(b"%2"), None), expected);
        let p = b"()".repeat(33);
        let expected = b"err:too many captures".to_vec();
        assert_eq!(real.match_(b"abc", &p, 1), expected);
        assert_eq!(ours_match(b"abc", &p, 1), expected);
        let (s, p) = (b"a".repeat(300), b"a?".repeat(300));
        let expected = b"err:pattern too complex".to_vec();
        assert_eq!(real.match_(&s, &p, 1), expected);
        assert_eq!(ours_match(&s, &p, 1), expected);
    }

    /// A stop callback that says stop on its `k`-th call, and counts calls.
    fn stop_after(k: usize, calls: &mut usize) -> impl FnMut() -> bool + '_ {
        move || {
            *calls += 1;
            *calls >= k
        }
    }

    const K: usize = 5;

    fn assert_stopped<T: fmt::Debug>(
        what: &str,
        run: impl FnOnce(&mut dyn FnMut() -> bool) -> Result<T, PatternError>,
    ) {
        let mut calls = 0;
        let started = Instant::now();
        let res = run(&mut stop_after(K, &mut calls));
        let took = started.elapsed();
        assert_eq!(res.err(), Some(PatternError::Stopped), "{what}");
        assert_eq!(calls, K, "{what}");
        eprintln!("{what}: stopped after {took:?}");
        assert!(took < Duration::from_secs(2), "{what} took {took:?}");
    }

    #[test]
    fn pathological_patterns_are_stopped() {
        let at = b"@".repeat(100_000);
        assert_stopped("quadratic find", |stop| {
            find(&at, b"^(.-)@(.-)%.(.-)$", 1, false, stop)
        });
        assert_stopped("quadratic match", |stop| {
            match_(&at, b"(.-)@(.-)%.(.-)$", 1, stop)
        });
        let a30 = b"a".repeat(30);
        let mut expo = b"a?".repeat(30);
        expo.extend_from_slice(&a30);
        assert_stopped("exponential match", |stop| match_(&a30, &expo, 1, stop));
        let open = b"(".repeat(100_000);
        assert_stopped("quadratic %b", |stop| find(&open, b"%b()", 1, false, stop));
        let a = b"a".repeat(100_000);
        assert_stopped("back-reference", |stop| {
            find(&a, b"(a*)%1b", 1, false, stop)
        });
        assert_stopped("greedy backtracking", |stop| {
            find(&a, b"a*a*b", 1, false, stop)
        });
        let mut needle = b"a".repeat(50_000);
        needle.push(b'b');
        let hay = b"a".repeat(1_000_000);
        assert_stopped("plain find", |stop| find(&hay, &needle, 1, true, stop));
        let mut long_set = b"[".to_vec();
        long_set.extend(b"x".repeat(200_000));
        long_set.extend_from_slice(b"]");
        assert_stopped("long set", |stop| find(&a, &long_set, 1, false, stop));
        assert_stopped("gmatch", |stop| {
            let mut it = GMatch::new(&at, 1);
            it.next(&at, b"(.-)@(.-)%.(.-)$", stop)
        });
        assert_stopped("gsub", |stop| {
            gsub::<Infallible>(
                &at,
                b"(.-)@(.-)%.",
                Repl::Str(b"%1"),
                None,
                usize::MAX,
                stop,
            )
            .map_err(|e| match e {
                GsubError::Pattern(e) => e,
                GsubError::Repl(never) => match never {},
            })
        });
        let mut called = 0;
        let mut function = |_: &[CaptureValue<'_>]| -> Result<Option<Vec<u8>>, Infallible> {
            called += 1;
            Ok(None)
        };
        assert_stopped("gsub with a function", |stop| {
            gsub(
                &a,
                b"a-$",
                Repl::Function(&mut function),
                None,
                usize::MAX,
                stop,
            )
            .map_err(|e| match e {
                GsubError::Pattern(e) => e,
                GsubError::Repl(never) => match never {},
            })
        });
        assert_eq!(called, 0);
    }

    #[test]
    fn gmatch_counts_steps_across_calls() {
        // Each call is cheap, but the calls together reach the callback.
        let s = b"ab".repeat(5000);
        let mut it = GMatch::new(&s, 1);
        let mut calls = 0;
        let mut matches = 0;
        {
            let mut stop = stop_after(usize::MAX, &mut calls);
            while it.next(&s, b"a", &mut stop).expect("no error").is_some() {
                matches += 1;
            }
        }
        assert_eq!(matches, 5000);
        assert!((5..=60).contains(&calls), "{calls} calls");
    }

    #[test]
    fn normal_matches_rarely_ask() {
        // Small cases never reach the callback.
        for (s, p) in corpus().into_iter().take(150) {
            let mut calls = 0;
            let _ = find(&s, &p, 1, false, &mut stop_after(usize::MAX, &mut calls));
            let _ = match_(&s, &p, 1, &mut stop_after(usize::MAX, &mut calls));
            assert_eq!(calls, 0, "{s:?} {p:?}");
        }
        // Linear work asks about once per thousand steps.
        let mut s = b"x".repeat(100_000);
        s.extend_from_slice(b"123");
        let mut calls = 0;
        let found = find(
            &s,
            b"%d+",
            1,
            false,
            &mut stop_after(usize::MAX, &mut calls),
        )
        .expect("no error");
        assert_eq!(found.map(|f| (f.start, f.end)), Some((100_001, 100_003)));
        eprintln!("find %d+ in 100k: {calls} calls");
        assert!((50..=400).contains(&calls), "{calls} calls");
        let mut calls = 0;
        let found = find(
            &s,
            b"123",
            1,
            false,
            &mut stop_after(usize::MAX, &mut calls),
        )
        .expect("no error");
        assert_eq!(found.map(|f| f.start), Some(100_001));
        eprintln!("plain find in 100k: {calls} calls");
        assert!(calls <= 10, "{calls} calls");
        let mut calls = 0;
        let (out, n) = gsub::<Infallible>(
            &s,
            b"x",
            Repl::Str(b"yy"),
            None,
            usize::MAX,
            &mut stop_after(usize::MAX, &mut calls),
        )
        .map_err(|_| ())
        .expect("no error");
        assert_eq!((out.len(), n), (200_003, 100_000));
        eprintln!("gsub x in 100k: {calls} calls");
        assert!((100..=600).contains(&calls), "{calls} calls");
    }

    #[test]
    fn gsub_output_is_bounded() {
        let s = b"x".repeat(1000);
        let res = gsub::<Infallible>(
            &s,
            b"",
            Repl::Str(b"%0%0yyyyyyyyyy"),
            None,
            5000,
            &mut never(),
        );
        assert_eq!(
            res.err(),
            Some(GsubError::Pattern(PatternError::OutputTooLarge))
        );
        let res = gsub::<Infallible>(&s, b"x", Repl::Str(b"ab"), None, 2000, &mut never());
        assert_eq!(res.ok().map(|(out, n)| (out.len(), n)), Some((2000, 1000)));
    }

    #[test]
    fn callback_errors_pass_through() {
        let mut fail =
            |_: CaptureValue<'_>| -> Result<Option<Vec<u8>>, &'static str> { Err("bad value") };
        let res = gsub(
            b"abc",
            b"b",
            Repl::Table(&mut fail),
            None,
            usize::MAX,
            &mut never(),
        );
        assert_eq!(res.err(), Some(GsubError::Repl("bad value")));
    }
}
