//! Raw text → sentences of tokens, for tagging text that is not already in
//! CoNLL form; and tags → entity spans, with JSON-lines and plain output.
//!
//! Tokens follow the CoNLL-2003 / Penn Treebank conventions closely enough
//! for a model trained on CoNLL: punctuation is split off (`(Reuters)` →
//! `(` `Reuters` `)`), numbers keep internal `.`/`,`/`:`/`/` (`1,000.5`,
//! `10:30`), words and numbers keep internal hyphens (`1996-08-22`,
//! `German-based`), initials and dotted abbreviations keep their periods
//! (`U.S.`, `J.`, `Mr.`), clitics split off (`don't` → `do` `n't`,
//! `Smith's` → `Smith` `'s`), and URLs and e-mail addresses stay whole.
//! Every token is a substring of the input and carries its byte offsets.
//!
//! Sentences end at a blank line, or after `.`/`!`/`?` (plus closing quotes
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

/// URLs and e-mail addresses stay whole.
fn is_address(s: &str) -> bool {
    s.contains("://")
        || s.split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
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

/// Tokenizes and splits into sentences; empty sentences are dropped.
pub fn tokenize(text: &str) -> Vec<Vec<Token>> {
    let mut sentences = Vec::new();
    for (start, end) in paragraphs(text) {
        let tokens = tokenize_words(text.get(start..end).unwrap_or_default(), start);
        split_sentences(tokens, &mut sentences);
    }
    sentences
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
        match (c.is_whitespace(), chunk_start) {
            (true, Some(s)) => {
                split_chunk(text.get(s..i).unwrap_or_default(), base + s, &mut out);
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

/// Splits one whitespace-free chunk into tokens.
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
    // Trailing punctuation, except an abbreviation's period.
    let mut trailing = Vec::new();
    while hi > lo {
        let Some(c) = char_at(hi - 1).filter(|&c| is_punct(c)) else {
            break;
        };
        if c == '.' && is_abbreviation(chunk.get(byte_at(lo)..byte_at(hi)).unwrap_or_default()) {
            break;
        }
        let mut j = hi - 1;
        while j > lo && char_at(j - 1) == Some(c) {
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
