//! GloVe word vectors in GloVe's text format (`word v1 ... vd`, one word a
//! line, single spaces), plain or gzip-compressed.
//!
//! Duplicate words keep their first row and later rows are skipped (and
//! counted in [`GloveStats`]): GloVe files list words by frequency, so the
//! first row is the better-trained one, and refusing the whole file over a
//! duplicate would help nobody.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use deltagrad::{Error, Result};

/// Word vectors, `values` row-major: row `i` is `words[i]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Embeddings {
    pub words: Vec<String>,
    pub dim: usize,
    pub values: Vec<f32>,
}

impl Embeddings {
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The vector of row `i`, if there is one.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        let start = i.checked_mul(self.dim)?;
        self.values.get(start..start.checked_add(self.dim)?)
    }
}

/// The GloVe 6B 50-d vectors shipped with the crate (PDDL-1.0; see
/// `assets/README.md`): the 50,000 most frequent words plus every CoNLL-2003
/// word GloVe has.
pub static DEFAULT_VECTORS: &[u8] = include_bytes!("../assets/glove.6B.50d.top50k-conll.txt.gz");

/// The vectors of the GloVe file at `path`, or the embedded default ones.
pub fn load_vectors(path: Option<&Path>) -> Result<Embeddings> {
    match path {
        Some(p) => read_glove(p),
        None => Ok(parse_glove_file_bytes(
            DEFAULT_VECTORS,
            "assets/glove.6B.50d.top50k-conll.txt.gz",
        )?
        .0),
    }
}

/// What loading saw besides the vectors themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GloveStats {
    /// Non-blank lines read.
    pub lines: usize,
    /// Rows skipped because their word had already appeared.
    pub duplicates_skipped: usize,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads a `.txt` or `.txt.gz` GloVe file; gzip is recognised by its magic
/// bytes, not the file name.
pub fn read_glove(path: impl AsRef<Path>) -> Result<Embeddings> {
    read_glove_with_stats(path).map(|(e, _)| e)
}

/// [`read_glove`], also returning [`GloveStats`].
pub fn read_glove_with_stats(path: impl AsRef<Path>) -> Result<(Embeddings, GloveStats)> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let raw =
        std::fs::read(path).map_err(|e| Error::io(format!("reading GloVe file {name}"), e))?;
    parse_glove_file_bytes(&raw, &name)
}

/// Parses the bytes of a `.txt` or `.txt.gz` GloVe file (gzip recognised by
/// its magic bytes); `file_name` is used in errors only.
pub fn parse_glove_file_bytes(raw: &[u8], file_name: &str) -> Result<(Embeddings, GloveStats)> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return parse_glove(raw, file_name);
    }
    // A multi-member decoder, since `cat a.gz b.gz` is valid gzip too.
    let mut out = Vec::with_capacity(raw.len().saturating_mul(3));
    flate2::read::MultiGzDecoder::new(raw)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(format!("decompressing GloVe file {file_name}"), e))?;
    parse_glove(&out, file_name)
}

/// A word2vec/fastText text header, `400000 50`: the word count and the
/// dimension (positive integers), and nothing else.
fn header(line: &str) -> Option<(usize, usize)> {
    let (count, dim) = line.split_once(' ')?;
    let (count, dim) = (count.parse().ok()?, dim.parse().ok()?);
    (count > 0 && dim > 0).then_some((count, dim))
}

/// Parses GloVe text held in memory; `file_name` is used in errors only.
/// The first row fixes the dimension; every later row must match it. A
/// first line of two positive integers is read as the `count dim` header
/// of the word2vec/fastText text format (GloVe with a header): the rows
/// must then have `dim` values and number `count`. A UTF-8 byte-order mark
/// at the start is skipped.
pub fn parse_glove(bytes: &[u8], file_name: &str) -> Result<(Embeddings, GloveStats)> {
    let err = |line: usize, msg: String| Error::Parse {
        file: file_name.to_string(),
        line,
        msg,
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut emb = Embeddings::default();
    let mut stats = GloveStats::default();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut n_lines = 0;
    // (word count, dimension, line) of a word2vec header.
    let mut w2v: Option<(usize, usize, usize)> = None;

    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        n_lines = line_no;
        let line = std::str::from_utf8(raw).map_err(|e| {
            err(
                line_no,
                format!(
                    "invalid UTF-8 at byte {} of the line; expected UTF-8 text",
                    e.valid_up_to() + 1
                ),
            )
        })?;
        let line = line.trim_end_matches([' ', '\t', '\r']);
        if line.is_empty() {
            continue;
        }
        if stats.lines == 0
            && w2v.is_none()
            && let Some((count, dim)) = header(line)
        {
            w2v = Some((count, dim, line_no));
            continue;
        }
        stats.lines += 1;
        let mut fields = line.split(' ');
        let word = fields.next().unwrap_or_default();
        if word.is_empty() {
            return Err(err(
                line_no,
                "line starts with a space; expected a word".into(),
            ));
        }
        let duplicate = !seen.insert(word);
        let row_start = emb.values.len();
        // Parse even duplicate rows, so a malformed file is reported
        // wherever the fault is.
        let n = push_values(&mut emb.values, word, fields).map_err(|m| err(line_no, m))?;
        if emb.words.is_empty() && !duplicate {
            if n == 0 {
                return Err(err(line_no, format!("{word:?} has no values")));
            }
            if let Some((count, dim, at)) = w2v
                && n != dim
            {
                return Err(err(
                    line_no,
                    format!(
                        "{word:?} has {n} values; expected {dim} as line {at} (`{count} {dim}`, \
                         read as a word2vec header: word count and dimension) says"
                    ),
                ));
            }
            emb.dim = n;
        }
        if n != emb.dim {
            return Err(err(
                line_no,
                format!(
                    "{word:?} has {n} values; expected {} as in the first row",
                    emb.dim
                ),
            ));
        }
        if duplicate {
            emb.values.truncate(row_start);
            stats.duplicates_skipped += 1;
        } else {
            emb.words.push(word.to_string());
        }
    }
    if emb.words.is_empty() {
        return Err(err(
            n_lines.max(1),
            "expected at least one `word v1 ... vd` line, found none (empty file)".into(),
        ));
    }
    if let Some((count, dim, at)) = w2v
        && count != stats.lines
    {
        return Err(err(
            at,
            format!(
                "the word2vec header `{count} {dim}` announces {count} rows but the file has {}; \
                 a truncated file? (a GloVe file has no header line)",
                stats.lines
            ),
        ));
    }
    Ok((emb, stats))
}

/// Parses the values of `word`'s row onto `values`; returns how many.
fn push_values<'a>(
    values: &mut Vec<f32>,
    word: &str,
    fields: impl Iterator<Item = &'a str>,
) -> std::result::Result<usize, String> {
    let mut n = 0usize;
    for f in fields {
        n += 1;
        let v: f32 = f
            .parse()
            .map_err(|_| format!("value {n} of {word:?} is {f:?}; expected a decimal number"))?;
        if !v.is_finite() {
            return Err(format!(
                "value {n} of {word:?} is {f}; expected a finite number"
            ));
        }
        values.push(v);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn parse(text: &str) -> Result<(Embeddings, GloveStats)> {
        parse_glove(text.as_bytes(), "g.txt")
    }

    fn err_line(text: &str) -> (usize, String) {
        match parse(text) {
            Err(Error::Parse { file, line, msg }) => {
                assert_eq!(file, "g.txt");
                (line, msg)
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn parses_rows_in_order() {
        let (e, s) = parse("the 0.418 0.24968\n, -1 2e-3\r\n\n").unwrap();
        assert_eq!(e.words, vec!["the", ","]);
        assert_eq!(e.dim, 2);
        assert_eq!(e.values, vec![0.418, 0.24968, -1.0, 0.002]);
        assert_eq!(e.row(1), Some(&[-1.0f32, 0.002][..]));
        assert_eq!(e.row(2), None);
        assert_eq!(s.lines, 2);
    }

    #[test]
    fn duplicates_keep_first_row() {
        let (e, s) = parse("a 1 2\nb 3 4\na 5 6\n").unwrap();
        assert_eq!(e.words, vec!["a", "b"]);
        assert_eq!(e.values, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.duplicates_skipped, 1);
        // A malformed duplicate is still an error.
        assert_eq!(err_line("a 1 2\na 5\n").0, 2);
    }

    #[test]
    fn reads_a_word2vec_header_and_a_byte_order_mark() {
        let glove = parse("the 1 2 3\nof 4 5 6\n").unwrap();
        assert_eq!(parse("2 3\nthe 1 2 3\nof 4 5 6\n").unwrap(), glove);
        assert_eq!(parse("\u{FEFF}the 1 2 3\nof 4 5 6\n").unwrap(), glove);
        let (line, msg) = err_line("400000 50\nthe 1 2 3\n");
        assert_eq!(line, 2);
        assert!(
            msg.contains(
                "has 3 values; expected 50 as line 1 (`400000 50`, read as a word2vec header"
            ),
            "{msg}"
        );
        let (line, msg) = err_line("3 2\nthe 1 2\nof 4 5\n");
        assert_eq!(line, 1);
        assert!(msg.contains("announces 3 rows but the file has 2"), "{msg}");
        // A one-value GloVe row is still read as one: its value is no count.
        assert_eq!(parse("7 0.5\n8 1.5\n").unwrap().0.dim, 1);
    }

    #[test]
    fn rejects_mixed_dimensions() {
        let (line, msg) = err_line("a 1 2\nb 3 4\nc 1 2 3\n");
        assert_eq!(line, 3);
        assert!(msg.contains("3 values; expected 2"), "{msg}");
        assert_eq!(err_line("a\n").0, 1);
    }

    #[test]
    fn rejects_bad_and_non_finite_numbers() {
        let (line, msg) = err_line("a 1 2\nb 1 x\n");
        assert_eq!(line, 2);
        assert!(msg.contains("\"x\""), "{msg}");
        for bad in ["nan", "NaN", "inf", "-inf", "1e99"] {
            let (line, msg) = err_line(&format!("a 1 2\n\nb 1 {bad}\n"));
            assert_eq!(line, 3, "{bad}");
            assert!(msg.contains("finite"), "{msg}");
        }
        // Two spaces make an empty field, which is not a number.
        assert_eq!(err_line("a 1  2\n").0, 1);
    }

    #[test]
    fn rejects_empty_and_non_utf8() {
        err_line("");
        err_line("\n\n");
        match parse_glove(b"a 1\n\xc3 2\n", "g.txt") {
            Err(Error::Parse { line: 2, msg, .. }) => assert!(msg.contains("UTF-8")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_plain_and_gzip_files() {
        let dir = std::env::temp_dir().join(format!("glove-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = b"x 0.5 1.5\ny -2 3\n";
        let plain = dir.join("v.txt");
        std::fs::write(&plain, text).unwrap();
        // Deliberately misnamed: gzip must be found by its magic bytes.
        let gz = dir.join("v.bin");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let a = read_glove(&plain).unwrap();
        let b = read_glove(&gz).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.words, vec!["x", "y"]);
        assert!(matches!(
            read_glove(dir.join("missing")),
            Err(Error::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The embedded default vectors (`assets/`): the documented size and
    /// first row.
    #[test]
    fn embedded_default_vectors() {
        let (e, s) = parse_glove_file_bytes(DEFAULT_VECTORS, "assets/glove").unwrap();
        assert_eq!((e.len(), e.dim), (56_026, 50));
        assert_eq!(s.duplicates_skipped, 0);
        let the = e.words.iter().position(|w| w == "the").unwrap();
        assert_eq!(&e.row(the).unwrap()[..3], &[0.418, 0.24968, -0.41242]);
    }
}
