//! Raw text → sentences of tokens, for tagging text that is not already in
//! CoNLL form; and tags → entity spans, with JSON-lines and plain output.
//!
//! Tokens follow the CoNLL-2003 / Penn Treebank conventions closely enough
//! for a model trained on CoNLL: punctuation is split off (`(Reuters)` →
//! `(` `Reuters` `)`), numbers keep internal `.`/`,`/`:`/`/` (`1,000.5`,
//! `10:30`), words and numbers keep internal hyphens (`1996-08-22`,
//! `German-based`), initials and dotted abbreviations keep their periods
//! (`U.S.`, `J.`, `Mr.`), clitics split off (`don't` → `do` `n't`,
//! `Smith's` → `Smith` `'s`). URLs (with their trailing `/`), e-mail
//! addresses, `@handles`, `#hashtags` and emoji sequences (ZWJ sequences,
//! flags, skin tones) stay whole. Every token is a substring of the input
//! and carries its byte offsets. A byte-order mark separates tokens like
//! whitespace.
//!
//! Sentences end at a line break (with [`Breaks::Lines`]) or a blank line
//! (with [`Breaks::Paragraphs`]), or after `.`/`!`/`?` (plus closing quotes
//! or brackets) followed by whitespace and a capitalised word. A sentence
//! ending in an abbreviation (`... in the U.S. The ...`) is not split: the
//! period belongs to the abbreviation.

use deltagrad::{Error, Result};
use serde::Serialize;

use crate::conll::{Tag, parse_tag};

/// A token and its byte range `start..end` in the tokenized text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// Abbreviations that keep their period (compared case-insensitively,
/// without the period). Single letters (initials) are handled separately.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "sen", "rep", "gov", "gen", "col", "lt",
    "capt", "sgt", "rev", "inc", "corp", "co", "ltd", "bros", "vs", "etc", "jan", "feb", "mar",
    "apr", "aug", "sep", "sept", "oct", "nov", "dec", "mt", "ft",
];

/// Clitics split off the end of a word, lowercase (apostrophe-initial ones
/// are also matched with a typographic apostrophe).
const CLITICS: &[&str] = &["n't", "'s", "'m", "'d", "'re", "'ve", "'ll"];

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '\u{2019}'
}

/// Word characters: letters, digits, and combining marks (which the
/// standard library cannot classify, hence the ranges) plus the zero-width
/// joiners some scripts need inside words. Everything else that is not
/// whitespace (punctuation, currency and other symbols) is split off.
fn is_word(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(
            c,
            '\u{0300}'..='\u{036F}'
                | '\u{1AB0}'..='\u{1AFF}'
                | '\u{1DC0}'..='\u{1DFF}'
                | '\u{20D0}'..='\u{20FF}'
                | '\u{FE20}'..='\u{FE2F}'
                | '\u{200C}'
                | '\u{200D}'
        )
}

fn is_punct(c: char) -> bool {
    !c.is_whitespace() && !is_word(c)
}

/// URLs (`https://…`, `www.…`, `example.com/…`) and e-mail addresses
/// stay whole.
fn is_address(s: &str) -> bool {
    s.contains("://")
        || s.get(..4).is_some_and(|w| w.eq_ignore_ascii_case("www."))
            && s.chars().skip(4).any(char::is_alphanumeric)
        || s.split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
        || s.split_once('/').is_some_and(|(host, _)| is_domain(host))
}

/// `example.com`, `news.bbc.co.uk`: dot-separated labels of letters,
/// digits and hyphens, the last (the top-level domain) at least two
/// letters.
fn is_domain(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && labels
            .last()
            .is_some_and(|t| t.len() >= 2 && t.chars().all(|c| c.is_ascii_alphabetic()))
}

/// Whether a URL keeps `c` as its last character: a path's `/`, a query's
/// `=`, and the like; `)` when it closes a `(` of the URL (`s` is the URL
/// up to and including `c`). Other punctuation after a URL is the
/// sentence's.
fn url_keeps_end(c: char, s: &str) -> bool {
    match c {
        '/' | '=' | '_' | '-' | '#' | '~' | '+' | '&' | '*' => true,
        ')' => s.matches('(').count() >= s.matches(')').count(),
        _ => false,
    }
}

/// The byte length of a `@handle` or `#hashtag` at the start of `s`: the
/// sign, then letters, digits and `_` (a hashtag needs a letter or `_`, so
/// `#1` is not one).
fn handle_len(s: &str) -> Option<usize> {
    let mut chars = s.chars();
    let sign = chars.next().filter(|&c| c == '@' || c == '#')?;
    let body: String = chars.take_while(|&c| is_word(c) || c == '_').collect();
    let named = match sign {
        '#' => body.chars().any(|c| c.is_alphabetic() || c == '_'),
        _ => !body.is_empty(),
    };
    named.then(|| sign.len_utf8() + body.len())
}

/// Emoji that can start a sequence: the blocks holding Unicode's
/// Extended_Pictographic characters (an approximation that needs no
/// tables), regional indicators included.
fn is_pictographic(c: char) -> bool {
    matches!(
        c,
        '\u{1F000}'..='\u{1FAFF}'
            | '\u{1FC00}'..='\u{1FFFD}'
            | '\u{2600}'..='\u{27BF}'
            | '\u{2300}'..='\u{23FF}'
            | '\u{2B00}'..='\u{2BFF}'
            | '\u{2194}'..='\u{21AA}'
            | '\u{00A9}'
            | '\u{00AE}'
            | '\u{203C}'
            | '\u{2049}'
            | '\u{2122}'
            | '\u{2139}'
            | '\u{3030}'
            | '\u{303D}'
            | '\u{3297}'
            | '\u{3299}'
    )
}

fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

/// What may follow an emoji within its sequence: skin tones, variation
/// selectors, the keycap mark, tag characters (subdivision flags).
fn is_emoji_modifier(c: char) -> bool {
    matches!(
        c,
        '\u{1F3FB}'..='\u{1F3FF}' | '\u{FE0E}' | '\u{FE0F}' | '\u{20E3}' | '\u{E0020}'..='\u{E007F}'
    )
}

/// The byte length of the emoji sequence at the start of `s`: an emoji (or
/// a flag: two regional indicators) with its modifiers, and further emoji
/// joined to it by zero-width joiners (`👨‍👩‍👧`).
fn emoji_len(s: &str) -> Option<usize> {
    if let Some(n) = keycap_len(s) {
        return Some(n);
    }
    let mut it = s.char_indices().peekable();
    let (_, first) = it.next().filter(|&(_, c)| is_pictographic(c))?;
    let mut end = first.len_utf8();
    if is_regional_indicator(first)
        && let Some((i, c)) = it.next_if(|&(_, c)| is_regional_indicator(c))
    {
        end = i + c.len_utf8();
    }
    loop {
        while let Some((i, c)) = it.next_if(|&(_, c)| is_emoji_modifier(c)) {
            end = i + c.len_utf8();
        }
        let mut ahead = it.clone();
        match (ahead.next(), ahead.next()) {
            (Some((_, '\u{200D}')), Some((i, c))) if is_pictographic(c) => {
                end = i + c.len_utf8();
                it = ahead;
            }
            _ => return Some(end),
        }
    }
}

/// The byte length of a keycap sequence at the start of `s` (`1️⃣`, `#⃣`):
/// a digit, `#` or `*`, an optional variation selector, the keycap mark.
/// Its base is not pictographic, so `emoji_len` would not start on it.
fn keycap_len(s: &str) -> Option<usize> {
    let mut it = s.chars();
    let base = it
        .next()
        .filter(|c| c.is_ascii_digit() || matches!(c, '#' | '*'))?;
    let mut n = base.len_utf8();
    let mut next = it.next()?;
    if next == '\u{FE0F}' {
        n += next.len_utf8();
        next = it.next()?;
    }
    (next == '\u{20E3}').then_some(n + next.len_utf8())
}

/// The text of a file (or stdin) to tag. Non-UTF-8 input is an error that
/// names the line and the byte within it, so that a Latin-1 file is found
/// where it goes wrong rather than reported as a bare "invalid UTF-8".
pub fn text_from_bytes(bytes: Vec<u8>, file_name: &str) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let bad = e.utf8_error().valid_up_to();
        let before = e.as_bytes().get(..bad).unwrap_or_default();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        Error::Parse {
            file: file_name.to_string(),
            line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
            msg: format!(
                "invalid UTF-8 at byte {} of the line; expected UTF-8 text",
                bad - line_start + 1
            ),
        }
    })
}

/// What ends a sentence besides end punctuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Breaks {
    /// Every line break (one sentence, or more, per line).
    #[default]
    Lines,
    /// Blank lines only: a sentence may run across line breaks, as in
    /// wrapped prose.
    Paragraphs,
}

/// Tokenizes and splits into sentences, a blank line ending one
/// ([`Breaks::Paragraphs`]); empty sentences are dropped.
pub fn tokenize(text: &str) -> Vec<Vec<Token>> {
    tokenize_by(text, Breaks::Paragraphs)
}

/// Tokenizes and splits into sentences, `breaks` saying whether every
/// line break ends one; empty sentences are dropped.
pub fn tokenize_by(text: &str, breaks: Breaks) -> Vec<Vec<Token>> {
    let mut sentences = Vec::new();
    let units = match breaks {
        Breaks::Lines => lines(text),
        Breaks::Paragraphs => paragraphs(text),
    };
    for (start, end) in units {
        let tokens = tokenize_words(text.get(start..end).unwrap_or_default(), start);
        split_sentences(tokens, &mut sentences);
    }
    sentences
}

/// Byte ranges of the lines that are not blank.
fn lines(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if !line.trim().is_empty() {
            out.push((offset, offset + line.len()));
        }
        offset += line.len();
    }
    out
}

/// Tokens as plain strings, sentence by sentence.
pub fn tokenize_to_strings(text: &str) -> Vec<Vec<String>> {
    tokenize(text)
        .into_iter()
        .map(|s| s.into_iter().map(|t| t.text).collect())
        .collect()
}

/// Byte ranges of the paragraphs: text between lines that are blank.
fn paragraphs(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut para_start = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let blank = line.trim().is_empty();
        match (blank, para_start) {
            (true, Some(s)) => {
                out.push((s, offset));
                para_start = None;
            }
            (false, None) => para_start = Some(offset),
            _ => {}
        }
        offset += line.len();
    }
    if let Some(s) = para_start {
        out.push((s, text.len()));
    }
    out
}

/// Tokens of one piece of text, no sentence splitting; offsets are shifted
/// by `base`.
pub fn tokenize_words(text: &str, base: usize) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chunk_start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_whitespace() || c == '\u{FEFF}', chunk_start) {
            (true, Some(s)) => {
                split_emoji(text.get(s..i).unwrap_or_default(), base + s, &mut out);
                chunk_start = None;
            }
            (false, None) => chunk_start = Some(i),
            _ => {}
        }
    }
    out
}

fn push(out: &mut Vec<Token>, chunk: &str, base: usize, start: usize, end: usize) {
    if start < end
        && let Some(text) = chunk.get(start..end)
    {
        out.push(Token {
            text: text.to_string(),
            start: base + start,
            end: base + end,
        });
    }
}

/// `U.S.`, `e.g.`, `J.` (letters each followed by a period), or a known
/// abbreviation followed by a period.
fn is_abbreviation(s: &str) -> bool {
    let Some(stem) = s.strip_suffix('.') else {
        return false;
    };
    // The tokenizer asks this of ever shorter prefixes of one chunk, so it
    // must fail fast on long non-abbreviations or a long chunk takes
    // quadratic time: lowercase only stems short enough to be listed
    // (lowercasing never makes fewer chars), and check the letter-period
    // pairs from the end, where a non-abbreviation fails at once.
    let longest = ABBREVIATIONS.iter().map(|a| a.len()).max().unwrap_or(0);
    if stem.chars().nth(longest).is_none() && ABBREVIATIONS.contains(&stem.to_lowercase().as_str())
    {
        return true;
    }
    let mut chars = s.chars().rev();
    let mut pairs = 0;
    while let Some(c) = chars.next() {
        if c != '.' || !chars.next().is_some_and(char::is_alphabetic) {
            return false;
        }
        pairs += 1;
    }
    pairs > 0
}

/// Splits one whitespace-free chunk into tokens: each emoji sequence is a
/// token, and so is a `@handle` or `#hashtag` that starts the chunk or
/// follows only punctuation (`(@ann)`, not `ann@example.com`); the text
/// between them goes to [`split_chunk`].
fn split_emoji(chunk: &str, base: usize, out: &mut Vec<Token>) {
    let mut seg = 0;
    let mut i = 0;
    // Whether chunk[seg..i] is all punctuation.
    let mut punct_only = true;
    while let Some(rest) = chunk.get(i..).filter(|r| !r.is_empty()) {
        let c = rest.chars().next().unwrap_or_default();
        let special = emoji_len(rest).or_else(|| {
            (punct_only && matches!(c, '@' | '#'))
                .then(|| handle_len(rest))
                .flatten()
        });
        match special {
            Some(n) => {
                if seg < i {
                    split_chunk(&chunk[seg..i], base + seg, out);
                }
                push(out, chunk, base, i, i + n);
                i += n;
                seg = i;
                punct_only = true;
            }
            None => {
                punct_only &= is_punct(c);
                i += c.len_utf8();
            }
        }
    }
    if seg < chunk.len() {
        split_chunk(&chunk[seg..], base + seg, out);
    }
}

/// Splits one whitespace-free chunk without emoji or handles into tokens.
fn split_chunk(chunk: &str, base: usize, out: &mut Vec<Token>) {
    let lower = chunk.to_lowercase();
    if CLITICS
        .iter()
        .any(|c| lower == *c || lower == c.replace('\'', "\u{2019}"))
    {
        push(out, chunk, base, 0, chunk.len());
        return;
    }
    let chars: Vec<(usize, char)> = chunk.char_indices().collect();
    let byte_at = |i: usize| chars.get(i).map_or(chunk.len(), |&(b, _)| b);
    let char_at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let (mut lo, mut hi) = (0, chars.len());

    // Leading punctuation, runs of one character (`--`, `...`) together.
    while let Some(c) = char_at(lo).filter(|&c| is_punct(c) && lo < hi) {
        let mut j = lo + 1;
        while j < hi && char_at(j) == Some(c) {
            j += 1;
        }
        push(out, chunk, base, byte_at(lo), byte_at(j));
        lo = j;
    }
    // Trailing punctuation, except an abbreviation's period and what ends
    // a URL.
    let address = is_address(chunk.get(byte_at(lo)..byte_at(hi)).unwrap_or_default());
    let mut trailing = Vec::new();
    while hi > lo {
        let Some(c) = char_at(hi - 1).filter(|&c| is_punct(c)) else {
            break;
        };
        let so_far = chunk.get(byte_at(lo)..byte_at(hi)).unwrap_or_default();
        if c == '.' && is_abbreviation(so_far) || address && url_keeps_end(c, so_far) {
            break;
        }
        let mut j = hi - 1;
        // A URL's closing brackets are weighed one at a time.
        while j > lo && char_at(j - 1) == Some(c) && !(address && c == ')') {
            j -= 1;
        }
        trailing.push((byte_at(j), byte_at(hi)));
        hi = j;
    }
    let (core_start, mut core_end) = (byte_at(lo), byte_at(hi));
    let core = chunk.get(core_start..core_end).unwrap_or_default();
    if is_address(core) {
        push(out, chunk, base, core_start, core_end);
        for (s, e) in trailing.into_iter().rev() {
            push(out, chunk, base, s, e);
        }
        return;
    }

    // A clitic at the end of the core becomes its own token.
    let mut clitic = None;
    if !is_abbreviation(core) {
        let core_lower = core.to_lowercase();
        for c in CLITICS {
            let typographic = c.replace('\'', "\u{2019}");
            for form in [c.to_string(), typographic] {
                // Lowercasing can change byte lengths (rarely); compare only
                // when it did not.
                if core_lower.len() == core.len()
                    && core_lower.len() > form.len()
                    && core_lower.ends_with(&form)
                    && clitic.is_none()
                {
                    let at = core_end - form.len();
                    if core.is_char_boundary(at - core_start) {
                        clitic = Some((at, core_end));
                        core_end = at;
                    }
                }
            }
        }
    }
    split_core(chunk, base, core_start, core_end, out);
    if let Some((s, e)) = clitic {
        push(out, chunk, base, s, e);
    }
    for (s, e) in trailing.into_iter().rev() {
        push(out, chunk, base, s, e);
    }
}

/// Splits the middle of a chunk at punctuation that does not join its
/// neighbours (see the module docs for which does).
fn split_core(chunk: &str, base: usize, start: usize, end: usize, out: &mut Vec<Token>) {
    let core = chunk.get(start..end).unwrap_or_default();
    if is_abbreviation(core) {
        push(out, chunk, base, start, end);
        return;
    }
    let chars: Vec<(usize, char)> = core.char_indices().collect();
    let mut seg = 0usize;
    let mut i = 0usize;
    while let Some(&(b, c)) = chars.get(i) {
        if is_word(c) {
            i += 1;
            continue;
        }
        let prev = i.checked_sub(1).and_then(|k| chars.get(k)).map(|&(_, c)| c);
        let next = chars.get(i + 1).map(|&(_, c)| c);
        let digit = |x: Option<char>| x.is_some_and(|c| c.is_ascii_digit());
        let word = |x: Option<char>| x.is_some_and(is_word);
        let letter = |x: Option<char>| x.is_some_and(char::is_alphabetic);
        let joins = match c {
            '.' | ',' | ':' | '/' => digit(prev) && digit(next),
            '-' | '&' => word(prev) && word(next),
            c if is_apostrophe(c) => letter(prev) && letter(next),
            _ => false,
        };
        if joins {
            i += 1;
            continue;
        }
        push(out, chunk, base, start + seg, start + b);
        let mut j = i + 1;
        while chars.get(j).is_some_and(|&(_, d)| d == c) {
            j += 1;
        }
        let after = chars.get(j).map_or(core.len(), |&(b, _)| b);
        push(out, chunk, base, start + b, start + after);
        seg = after;
        i = j;
    }
    push(out, chunk, base, start + seg, end);
}

fn is_terminal(t: &str) -> bool {
    !t.is_empty() && t.chars().all(|c| matches!(c, '.' | '!' | '?' | '\u{2026}'))
}

fn is_closer(t: &str) -> bool {
    matches!(
        t,
        "\"" | "'" | ")" | "]" | "}" | "\u{201D}" | "\u{2019}" | "\u{00BB}"
    )
}

fn is_opener(t: &str) -> bool {
    matches!(
        t,
        "\"" | "'" | "(" | "[" | "{" | "\u{201C}" | "\u{2018}" | "\u{00AB}"
    )
}

fn starts_upper(t: &str) -> bool {
    t.chars().next().is_some_and(char::is_uppercase)
}

/// Splits one paragraph's tokens into sentences, appending to `out`.
fn split_sentences(tokens: Vec<Token>, out: &mut Vec<Vec<Token>>) {
    let mut current: Vec<Token> = Vec::new();
    let mut iter = tokens.into_iter().peekable();
    let mut ended = false;
    while let Some(tok) = iter.next() {
        let gap_after = |t: &Token, next: Option<&Token>| next.is_some_and(|n| n.start > t.end);
        if ended && !(is_closer(&tok.text) && current.last().is_some_and(|l| l.end == tok.start)) {
            ended = false;
        }
        let terminal = is_terminal(&tok.text);
        current.push(tok);
        if terminal {
            ended = true;
        }
        if ended {
            let (Some(last), Some(next)) = (current.last(), iter.peek()) else {
                continue;
            };
            if !gap_after(last, Some(next)) {
                continue;
            }
            let capital = starts_upper(&next.text) || is_opener(&next.text);
            if capital {
                out.push(std::mem::take(&mut current));
                ended = false;
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
}

/// An entity: `label` (type) over tokens `start..end` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entity {
    #[serde(rename = "type")]
    pub label: String,
    pub start: usize,
    pub end: usize,
    /// The tokens joined by single spaces.
    pub text: String,
}

/// Entity spans from IOB2 tags. Lenient like conlleval: an `I-X` that does
/// not continue an `X` entity starts one; tags that are not `O`/`B-X`/`I-X`
/// act as `O`.
pub fn extract_entities<S: AsRef<str>, T: AsRef<str>>(
    tokens: &[S],
    tags: &[T],
) -> Result<Vec<Entity>> {
    if tokens.len() != tags.len() {
        return Err(Error::invalid(
            "extract_entities",
            format!("{} tokens but {} tags", tokens.len(), tags.len()),
        ));
    }
    let mut spans: Vec<(String, usize, usize)> = Vec::new();
    let mut open: Option<(String, usize)> = None;
    for (i, t) in tags.iter().enumerate() {
        let tag = parse_tag(t.as_ref());
        let continues = matches!((&open, tag), (Some((ty, _)), Some(Tag::I(t))) if ty == t);
        if continues {
            continue;
        }
        if let Some((ty, s)) = open.take() {
            spans.push((ty, s, i));
        }
        if let Some(Tag::B(ty) | Tag::I(ty)) = tag {
            open = Some((ty.to_string(), i));
        }
    }
    if let Some((ty, s)) = open {
        spans.push((ty, s, tags.len()));
    }
    Ok(spans
        .into_iter()
        .map(|(label, start, end)| Entity {
            text: tokens
                .get(start..end)
                .unwrap_or_default()
                .iter()
                .map(AsRef::as_ref)
                .collect::<Vec<&str>>()
                .join(" "),
            label,
            start,
            end,
        })
        .collect())
}

#[derive(Serialize)]
struct JsonSentence<'a, S: Serialize, T: Serialize> {
    tokens: &'a [S],
    tags: &'a [T],
    entities: Vec<Entity>,
}

/// One JSON object (no newline): `{"tokens":[..],"tags":[..],"entities":
/// [{"type":"PER","start":0,"end":2,"text":"John Smith"}]}`.
pub fn json_line<S, T>(tokens: &[S], tags: &[T]) -> Result<String>
where
    S: AsRef<str> + Serialize,
    T: AsRef<str> + Serialize,
{
    let entities = extract_entities(tokens, tags)?;
    serde_json::to_string(&JsonSentence {
        tokens,
        tags,
        entities,
    })
    .map_err(|e| Error::Other(format!("serializing tagged sentence to JSON: {e}")))
}

/// Plain text with entities bracketed: `[PER John Smith] visited [LOC Paris] .`
pub fn inline<S: AsRef<str>, T: AsRef<str>>(tokens: &[S], tags: &[T]) -> Result<String> {
    let entities = extract_entities(tokens, tags)?;
    let mut parts: Vec<String> = Vec::with_capacity(tokens.len());
    let mut next = entities.iter().peekable();
    let mut i = 0;
    while let Some(tok) = tokens.get(i) {
        match next.peek() {
            Some(e) if e.start == i => {
                parts.push(format!("[{} {}]", e.label, e.text));
                i = e.end.max(i + 1);
                next.next();
            }
            _ => {
                parts.push(tok.as_ref().to_string());
                i += 1;
            }
        }
    }
    Ok(parts.join(" "))
}

/// Byte range in the source text covered by an entity, from token offsets.
pub fn source_span(tokens: &[Token], e: &Entity) -> Option<(usize, usize)> {
    let first = tokens.get(e.start)?;
    let last = tokens.get(e.end.checked_sub(1)?)?;
    Some((first.start, last.end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<String> {
        tokenize_to_strings(text).concat()
    }

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn splits_punctuation_and_keeps_numbers() {
        assert_eq!(
            toks("(Reuters) Shares rose 1,000.50 points, or 3.5%, on 1996-08-22 at 10:30."),
            words("( Reuters ) Shares rose 1,000.50 points , or 3.5 % , on 1996-08-22 at 10:30 .")
        );
        assert_eq!(
            toks("\"Hello,\" he said..."),
            words("\" Hello , \" he said ...")
        );
        assert_eq!(
            toks("a -- b $5 £10 German-based 3-2 café"),
            words("a -- b $ 5 £ 10 German-based 3-2 café")
        );
        assert_eq!(
            toks("Mail a.b@c.com or see http://x.org/y?z=1."),
            words("Mail a.b@c.com or see http://x.org/y?z=1 .")
        );
        // A combining accent stays inside its word.
        assert_eq!(toks("cafe\u{301}!"), words("cafe\u{301} !"));
    }

    #[test]
    fn urls_keep_their_trailing_slash() {
        assert_eq!(
            toks("See https://example.com/a/b/ and www.x.org/, or reuters.com/world."),
            words("See https://example.com/a/b/ and www.x.org/ , or reuters.com/world .")
        );
        assert_eq!(
            toks("(https://en.wikipedia.org/wiki/Rome_(city)) and http://x.org/?q=a&b="),
            words("( https://en.wikipedia.org/wiki/Rome_(city) ) and http://x.org/?q=a&b=")
        );
        // Not addresses: no top-level domain of letters before the `/`.
        assert_eq!(toks("and/or 3.5/4"), words("and / or 3.5/4"));
    }

    #[test]
    fn handles_and_hashtags_stay_whole() {
        assert_eq!(
            toks("@user_name: loving #Hashtag2026! (@ann) \"#NER_2\""),
            words("@user_name : loving #Hashtag2026 ! ( @ann ) \" #NER_2 \"")
        );
        // An e-mail address is not a handle; `#1` is a number, not a tag.
        assert_eq!(
            toks("ann@example.com is #1 @user's"),
            words("ann@example.com is # 1 @user 's")
        );
    }

    #[test]
    fn emoji_sequences_stay_whole() {
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        let flag_de = "\u{1F1E9}\u{1F1EA}";
        let flag_fr = "\u{1F1EB}\u{1F1F7}";
        let thumbs = "\u{1F44D}\u{1F3FD}";
        let wave = "\u{1F44B}\u{1F3FF}";
        let heart = "\u{2764}\u{FE0F}";
        let scientist = "\u{1F469}\u{1F3FE}\u{200D}\u{1F52C}";
        let text = format!(
            "The {family} flew {flag_de}{flag_fr} to Paris {thumbs}. Hi{wave}there {heart}! {scientist}"
        );
        assert_eq!(
            toks(&text),
            [
                "The", family, "flew", flag_de, flag_fr, "to", "Paris", thumbs, ".", "Hi", wave,
                "there", heart, "!", scientist,
            ]
        );
        // Keycaps start on a digit, '#' or '*', with or without the
        // variation selector.
        let one = "1\u{FE0F}\u{20E3}";
        let hash = "#\u{20E3}";
        assert_eq!(
            toks(&format!("Press {one} or {hash}, not 12.")),
            ["Press", one, "or", hash, ",", "not", "12", "."]
        );
        // A lone joiner or modifier is not swallowed into a neighbour.
        assert_eq!(toks("a\u{200D} \u{1F3FD}"), ["a\u{200D}", "\u{1F3FD}"]);
    }

    #[test]
    fn the_existing_conventions_still_hold() {
        assert_eq!(
            toks(
                "Mr. O'Neill's U.S. German-based firm don't sell 1,000.50 \"state-of-the-art\" cars."
            ),
            words(
                "Mr. O'Neill 's U.S. German-based firm do n't sell 1,000.50 \" state-of-the-art \" cars ."
            )
        );
    }

    #[test]
    fn line_breaks_end_sentences_unless_paragraphs() {
        let text = "Ann went home\nBob stayed in Rome. He liked it\n\n\nCarl too";
        let by = |b| -> Vec<String> {
            tokenize_by(text, b)
                .iter()
                .map(|s| {
                    s.iter()
                        .map(|t| t.text.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect()
        };
        assert_eq!(
            by(Breaks::Lines),
            [
                "Ann went home",
                "Bob stayed in Rome .",
                "He liked it",
                "Carl too"
            ]
        );
        assert_eq!(
            by(Breaks::Paragraphs),
            [
                "Ann went home Bob stayed in Rome .",
                "He liked it",
                "Carl too"
            ]
        );
        // A byte-order mark is not a token.
        assert_eq!(toks("\u{FEFF}Ann left"), words("Ann left"));
    }

    #[test]
    fn abbreviations_and_clitics() {
        assert_eq!(
            toks("The U.S. and Mr. O'Neill's firm don't; J. Smith can't, won't."),
            words("The U.S. and Mr. O'Neill 's firm do n't ; J. Smith ca n't , wo n't .")
        );
        assert_eq!(toks("They're here 's"), words("They 're here 's"));
        assert_eq!(toks("Jones' cars"), words("Jones ' cars"));
        assert_eq!(toks("it\u{2019}s"), words("it \u{2019}s"));
    }

    #[test]
    fn offsets_point_into_the_source() {
        let text = "  Ölz (Graz)\n\nis here.";
        for s in tokenize(text) {
            for t in s {
                assert_eq!(&text[t.start..t.end], t.text);
            }
        }
    }

    #[test]
    fn sentence_splitting() {
        let s = tokenize_to_strings(
            "John lives in Paris. He works for Acme Corp. in Lyon! \"Really?\" Yes.\n\
             Dr. Who said 3.5 is fine? no split here.\n\n   \nNew paragraph",
        );
        let joined: Vec<String> = s.iter().map(|x| x.join(" ")).collect();
        assert_eq!(
            joined,
            vec![
                "John lives in Paris .",
                "He works for Acme Corp. in Lyon !",
                "\" Really ? \"",
                "Yes .",
                "Dr. Who said 3.5 is fine ? no split here .",
                "New paragraph",
            ]
        );
        assert!(tokenize("").is_empty());
        assert!(tokenize(" \n\n \t").is_empty());
    }

    #[test]
    fn entities_from_tags() {
        let t = words("John Smith visited New York and Acme Corp");
        let tags = words("B-PER I-PER O B-LOC I-LOC O I-ORG I-ORG");
        let e = extract_entities(&t, &tags).unwrap();
        let got: Vec<(&str, usize, usize, &str)> = e
            .iter()
            .map(|e| (e.label.as_str(), e.start, e.end, e.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("PER", 0, 2, "John Smith"),
                ("LOC", 3, 5, "New York"),
                ("ORG", 6, 8, "Acme Corp"),
            ]
        );
        // B- after same-type I- and I- of another type both start entities.
        let e = extract_entities(&words("a b c d"), &words("B-PER B-PER I-LOC X")).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!((e[2].start, e[2].end), (2, 3));
        assert!(extract_entities(&words("a b"), &words("O")).is_err());
    }

    #[test]
    fn json_and_inline_output() {
        let t = words("John visited Paris .");
        let tags = words("B-PER O B-LOC O");
        let j = json_line(&t, &tags).unwrap();
        assert_eq!(
            j,
            r#"{"tokens":["John","visited","Paris","."],"tags":["B-PER","O","B-LOC","O"],"entities":[{"type":"PER","start":0,"end":1,"text":"John"},{"type":"LOC","start":2,"end":3,"text":"Paris"}]}"#
        );
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["entities"][1]["text"], "Paris");
        assert_eq!(
            inline(&t, &tags).unwrap(),
            "[PER John] visited [LOC Paris] ."
        );
        let src = "John visited Paris.";
        let tk = tokenize(src).concat();
        let e = extract_entities(&t, &tags).unwrap();
        assert_eq!(source_span(&tk, &e[1]), Some((13, 18)));
    }
}
