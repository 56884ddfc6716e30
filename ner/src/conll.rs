//! CoNLL-2003-style NER files: reading, IOB1/IOB2 handling, and writing the
//! `token gold predicted` lines that the conlleval script reads.
//!
//! Input format: one token a line, columns separated by spaces or tabs, the
//! NER tag in the last column; either 2 columns (token, tag) or 4 (token,
//! POS, chunk, tag), the same count throughout a file. Blank lines end
//! sentences; `-DOCSTART-` lines are document separators and are skipped.

use std::io::Write;
use std::path::Path;

use deltagrad::{Error, Result};

/// One sentence: tokens and their NER tags, always the same length.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sentence {
    pub tokens: Vec<String>,
    pub tags: Vec<String>,
    /// The document it belongs to: the number of `-DOCSTART-` lines before
    /// it in its file (so a file without them is one document).
    pub doc: usize,
}

impl Sentence {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// The two chunk-tag encodings met in CoNLL-2003 copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagScheme {
    /// Original CoNLL-2003 release: `I-X` opens an entity; `B-X` only marks
    /// the second of two adjacent same-type entities.
    Iob1,
    /// Every entity opens with `B-X`.
    Iob2,
}

/// A tag split into its prefix and type: `O`, or (`'B'`|`'I'`, type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag<'a> {
    O,
    B(&'a str),
    I(&'a str),
}

/// Parses `O`, `B-X` or `I-X` (X non-empty); anything else is `None`.
pub fn parse_tag(tag: &str) -> Option<Tag<'_>> {
    if tag == "O" {
        return Some(Tag::O);
    }
    let (prefix, ty) = tag.split_once('-')?;
    if ty.is_empty() {
        return None;
    }
    match prefix {
        "B" => Some(Tag::B(ty)),
        "I" => Some(Tag::I(ty)),
        _ => None,
    }
}

/// The UTF-8 encoding of U+FEFF, which some editors write at the start of
/// a file.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads and parses a CoNLL file. Bytes are checked for UTF-8 line by line
/// so that an error can point at the offending line.
pub fn read_conll(path: impl AsRef<Path>) -> Result<Vec<Sentence>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path)
        .map_err(|e| Error::io(format!("reading CoNLL file {}", path.display()), e))?;
    parse_conll_bytes(&bytes, &path.display().to_string())
}

/// Parses CoNLL text; `file_name` is only used in error messages.
pub fn parse_conll(text: &str, file_name: &str) -> Result<Vec<Sentence>> {
    parse_conll_bytes(text.as_bytes(), file_name)
}

/// Parses CoNLL bytes, rejecting non-UTF-8 lines with their line number.
/// A UTF-8 byte-order mark at the start is skipped.
pub fn parse_conll_bytes(bytes: &[u8], file_name: &str) -> Result<Vec<Sentence>> {
    parse_conll_lines(bytes, file_name).map(|(s, _)| s)
}

/// A CoNLL file's sentences and the line each starts on (1-based): token
/// `i` of sentence `k` is on line `lines[k] + i`, since a sentence is a run
/// of consecutive token lines.
pub fn read_conll_lines(path: impl AsRef<Path>) -> Result<(Vec<Sentence>, Vec<usize>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path)
        .map_err(|e| Error::io(format!("reading CoNLL file {}", path.display()), e))?;
    parse_conll_lines(&bytes, &path.display().to_string())
}

/// [`parse_conll_bytes`], also returning each sentence's first line.
pub fn parse_conll_lines(bytes: &[u8], file_name: &str) -> Result<(Vec<Sentence>, Vec<usize>)> {
    let err = |line: usize, msg: String| Error::Parse {
        file: file_name.to_string(),
        line,
        msg,
    };
    // Editors on Windows start UTF-8 files with a byte-order mark; it is
    // not part of the first token.
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let mut sentences = Vec::new();
    let mut starts = Vec::new();
    let mut current = Sentence::default();
    // Fixed by the first token line, so that a stray 3-column line in a
    // 4-column file is caught rather than silently read.
    let mut n_columns: Option<(usize, usize)> = None;
    let mut n_lines = 0;
    let mut doc = 0;

    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        n_lines = line_no;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|e| {
            err(
                line_no,
                format!(
                    "invalid UTF-8 at byte {} of the line; expected UTF-8 text",
                    e.valid_up_to() + 1
                ),
            )
        })?;
        let cols: Vec<&str> = line.split([' ', '\t']).filter(|c| !c.is_empty()).collect();
        let Some((&first, _)) = cols.split_first() else {
            if !current.is_empty() {
                sentences.push(std::mem::take(&mut current));
            }
            continue;
        };
        if first == "-DOCSTART-" {
            if !current.is_empty() {
                sentences.push(std::mem::take(&mut current));
            }
            doc += 1;
            continue;
        }
        if current.is_empty() {
            starts.push(line_no);
            current.doc = doc;
        }
        check_columns(&mut n_columns, cols.len(), line_no).map_err(|m| err(line_no, m))?;
        let tag = cols.last().copied().unwrap_or_default();
        if parse_tag(tag).is_none() {
            return Err(err(
                line_no,
                format!("unknown tag {tag:?}; expected O, B-TYPE or I-TYPE"),
            ));
        }
        current.tokens.push(first.to_string());
        current.tags.push(tag.to_string());
    }
    if !current.is_empty() {
        sentences.push(current);
    }
    if sentences.is_empty() {
        return Err(err(
            n_lines.max(1),
            "expected at least one token line, found none (empty file, or only blank/-DOCSTART- lines)"
                .to_string(),
        ));
    }
    Ok((sentences, starts))
}

/// Checks a token line's column count: 2 or 4 on the first token line
/// (`line`), which fixes it for the rest of the file (`n_columns` holds the
/// count and that line's number).
fn check_columns(
    n_columns: &mut Option<(usize, usize)>,
    found: usize,
    line: usize,
) -> std::result::Result<(), String> {
    match *n_columns {
        None if found != 2 && found != 4 => Err(format!(
            "expected 2 columns (token tag) or 4 (token POS chunk tag), found {found}"
        )),
        None => {
            *n_columns = Some((found, line));
            Ok(())
        }
        Some((n, first_line)) if n != found => Err(format!(
            "expected {n} columns as on line {first_line}, found {found}"
        )),
        Some(_) => Ok(()),
    }
}

/// IOB1 if some `I-X` opens an entity (follows sentence start, `O` or
/// another type); otherwise IOB2. Tags that do not parse are ignored.
pub fn detect_scheme(sentences: &[Sentence]) -> TagScheme {
    let iob1 = sentences.iter().any(|s| {
        let mut prev = Tag::O;
        s.tags.iter().any(|t| {
            let Some(tag) = parse_tag(t) else {
                return false;
            };
            let opens = matches!(tag, Tag::I(ty) if !continues(prev, ty));
            prev = tag;
            opens
        })
    });
    if iob1 {
        TagScheme::Iob1
    } else {
        TagScheme::Iob2
    }
}

/// Whether an `I-ty` after `prev` continues the entity `prev` belongs to.
fn continues(prev: Tag<'_>, ty: &str) -> bool {
    matches!(prev, Tag::B(p) | Tag::I(p) if p == ty)
}

/// Converts one sentence's IOB1 tags to IOB2: an `I-X` that opens an entity
/// becomes `B-X`. Idempotent, so harmless on IOB2 input. Unparsable tags
/// are copied and act like `O`.
pub fn iob1_to_iob2(tags: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(tags.len());
    let mut prev = Tag::O;
    for t in tags {
        let tag = parse_tag(t);
        match tag {
            Some(Tag::I(ty)) if !continues(prev, ty) => out.push(format!("B-{ty}")),
            _ => out.push(t.clone()),
        }
        prev = tag.unwrap_or(Tag::O);
    }
    out
}

/// Detects the scheme and converts the sentences to IOB2 in place; returns
/// the scheme found so the caller can report it.
pub fn to_iob2(sentences: &mut [Sentence]) -> TagScheme {
    let scheme = detect_scheme(sentences);
    if scheme == TagScheme::Iob1 {
        for s in sentences.iter_mut() {
            s.tags = iob1_to_iob2(&s.tags);
        }
    }
    scheme
}

/// Writes conlleval input: `token gold predicted` per token, a blank line
/// after each sentence. Tokens with spaces would shift conlleval's columns,
/// so they are rejected rather than written.
pub fn write_predictions<W: Write, S: AsRef<str>>(
    mut out: W,
    sentences: &[Sentence],
    predicted: &[Vec<S>],
) -> Result<()> {
    const OP: &str = "write_predictions";
    if sentences.len() != predicted.len() {
        return Err(Error::invalid(
            OP,
            format!(
                "{} sentences but {} predicted tag sequences",
                sentences.len(),
                predicted.len()
            ),
        ));
    }
    let io = |e| Error::io("writing conlleval predictions", e);
    for (si, (s, pred)) in sentences.iter().zip(predicted).enumerate() {
        if s.tokens.len() != pred.len() || s.tags.len() != pred.len() {
            return Err(Error::invalid(
                OP,
                format!(
                    "sentence {si}: {} tokens, {} gold tags, {} predicted tags",
                    s.tokens.len(),
                    s.tags.len(),
                    pred.len()
                ),
            ));
        }
        for ((tok, gold), p) in s.tokens.iter().zip(&s.tags).zip(pred) {
            let p = p.as_ref();
            for field in [tok.as_str(), gold, p] {
                if field.is_empty() || field.contains(char::is_whitespace) {
                    return Err(Error::invalid(
                        OP,
                        format!("sentence {si}: field {field:?} is empty or holds whitespace"),
                    ));
                }
            }
            writeln!(out, "{tok} {gold} {p}").map_err(io)?;
        }
        writeln!(out).map_err(io)?;
    }
    out.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn parse_err(text: &str) -> (usize, String) {
        match parse_conll(text, "f.txt") {
            Err(Error::Parse { file, line, msg }) => {
                assert_eq!(file, "f.txt");
                (line, msg)
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn reads_four_columns_docstart_and_blank_lines() {
        let text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP I-ORG\nrejects VBZ B-VP O\n\
                    German JJ B-NP I-MISC\n\n\nPeter NNP B-NP I-PER\r\nBlackburn NNP I-NP I-PER\n";
        let s = parse_conll(text, "t").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].tokens, tags("EU rejects German"));
        assert_eq!(s[0].tags, tags("I-ORG O I-MISC"));
        assert_eq!(s[1].tokens, tags("Peter Blackburn"));
        assert_eq!(s[1].tags, tags("I-PER I-PER"));
    }

    #[test]
    fn reads_two_tab_separated_columns_without_final_newline() {
        let s = parse_conll("John\tB-PER\nsaid\tO", "t").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].tags, tags("B-PER O"));
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_token() {
        let plain = "Ann B-PER\nsaid O\n\nRome B-LOC\n";
        let with_bom = [UTF8_BOM, plain.as_bytes()].concat();
        let (s, lines) = parse_conll_lines(&with_bom, "t").unwrap();
        assert_eq!(s, parse_conll(plain, "t").unwrap());
        assert_eq!(s[0].tokens[0], "Ann");
        assert_eq!(lines, vec![1, 4]);
        // Only at the start: elsewhere U+FEFF is text like any other.
        let mid = [plain.as_bytes(), UTF8_BOM, b"x O\n"].concat();
        let s = parse_conll_bytes(&mid, "t").unwrap();
        assert_eq!(s[1].tokens[1], "\u{FEFF}x");
    }

    #[test]
    fn sentence_start_lines_skip_blank_and_docstart_lines() {
        let text = "-DOCSTART- O\n\na O\nb O\n\n\nc O\n-DOCSTART- O\nd O\n";
        let (s, lines) = parse_conll_lines(text.as_bytes(), "t").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(lines, vec![3, 7, 9]);
        // Each -DOCSTART- opens the next document.
        let docs: Vec<usize> = s.iter().map(|s| s.doc).collect();
        assert_eq!(docs, vec![1, 1, 2]);
    }

    #[test]
    fn docstart_ends_a_sentence() {
        let s = parse_conll("a O\n-DOCSTART- O\nb O\n", "t").unwrap();
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn rejects_column_count_changes() {
        let (line, msg) = parse_err("a NN B-NP O\nb NN O\n");
        assert_eq!(line, 2);
        assert!(msg.contains("expected 4 columns"), "{msg}");
        let (line, _) = parse_err("\nword\n");
        assert_eq!(line, 2);
        let (line, msg) = parse_err("a b O\n");
        assert_eq!(line, 1);
        assert!(msg.contains("found 3"), "{msg}");
    }

    #[test]
    fn rejects_unknown_tags() {
        for bad in ["B-", "X-PER", "PER", "E-PER", "o"] {
            let (line, msg) = parse_err(&format!("a O\nb {bad}\n"));
            assert_eq!(line, 2, "{bad}");
            assert!(msg.contains("unknown tag"), "{msg}");
        }
    }

    #[test]
    fn rejects_non_utf8_naming_the_line() {
        let bytes = b"a O\n\nb O\nc\xff O\n";
        match parse_conll_bytes(bytes, "bad.txt") {
            Err(Error::Parse { file, line, msg }) => {
                assert_eq!(file, "bad.txt");
                assert_eq!(line, 4);
                assert!(msg.contains("UTF-8"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_files_without_sentences() {
        parse_err("");
        parse_err("-DOCSTART- -X- -X- O\n\n\n");
    }

    #[test]
    fn read_conll_reports_missing_file_as_io() {
        let err = read_conll("/nonexistent/dir/x.txt").unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
    }

    #[test]
    fn iob1_conversion() {
        assert_eq!(
            iob1_to_iob2(&tags("I-PER I-PER B-PER O I-LOC I-ORG I-ORG O B-MISC")),
            tags("B-PER I-PER B-PER O B-LOC B-ORG I-ORG O B-MISC")
        );
        let iob2 = tags("B-PER I-PER B-PER O B-LOC");
        assert_eq!(iob1_to_iob2(&iob2), iob2);
    }

    #[test]
    fn scheme_detection_and_in_place_conversion() {
        let mk = |t: &str| Sentence {
            tokens: tags(t).iter().map(|_| "w".to_string()).collect(),
            tags: tags(t),
            doc: 0,
        };
        let mut iob2 = vec![mk("B-PER I-PER O"), mk("O B-LOC")];
        assert_eq!(to_iob2(&mut iob2), TagScheme::Iob2);
        assert_eq!(iob2[0].tags, tags("B-PER I-PER O"));
        // An I- after a different type reveals IOB1 even without I- after O.
        let mut iob1 = vec![mk("B-PER I-PER O"), mk("B-LOC I-ORG")];
        assert_eq!(to_iob2(&mut iob1), TagScheme::Iob1);
        assert_eq!(iob1[1].tags, tags("B-LOC B-ORG"));
        assert_eq!(detect_scheme(&[mk("I-PER")]), TagScheme::Iob1);
    }

    /// The committed invented corpus (tests/fixtures/ner).
    fn fixture_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ner")
    }

    #[test]
    fn reads_the_fixture_corpus() {
        let dir = fixture_dir();
        let mut train = read_conll(dir.join("train.txt")).unwrap();
        let valid = read_conll(dir.join("valid.txt")).unwrap();
        let test = read_conll(dir.join("test.txt")).unwrap();
        assert_eq!((train.len(), valid.len(), test.len()), (300, 60, 60));
        assert_eq!(detect_scheme(&train), TagScheme::Iob1);
        assert_eq!(detect_scheme(&valid), TagScheme::Iob2);
        assert_eq!(detect_scheme(&test), TagScheme::Iob2);
        assert_eq!(to_iob2(&mut train), TagScheme::Iob1);
        assert_eq!(detect_scheme(&train), TagScheme::Iob2);
        for s in train.iter().chain(&valid).chain(&test) {
            assert_eq!(s.tokens.len(), s.tags.len());
        }
    }

    #[test]
    fn writes_conlleval_lines() {
        let s = vec![Sentence {
            tokens: tags("John lives"),
            tags: tags("B-PER O"),
            doc: 0,
        }];
        let mut out = Vec::new();
        write_predictions(&mut out, &s, &[tags("B-PER B-LOC")]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "John B-PER B-PER\nlives O B-LOC\n\n"
        );
        let mut out = Vec::new();
        assert!(write_predictions(&mut out, &s, &[tags("O")]).is_err());
        assert!(write_predictions(&mut out, &s, &[tags("O B-X Y")]).is_err());
        let spaced = vec![Sentence {
            tokens: vec!["a b".into()],
            tags: tags("O"),
            doc: 0,
        }];
        assert!(write_predictions(&mut out, &spaced, &[tags("O")]).is_err());
    }
}
