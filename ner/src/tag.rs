//! `tag`: raw text in, entities out.
//!
//! The text is tokenized ([`crate::tokenize`]), by default with every line
//! break ending a sentence, the model's tags are predicted and decoded, and
//! each sentence is written as bracketed text or as one JSON object. JSON
//! gives the sentence's line and every token's and entity's character
//! offsets in the input (Unicode scalar values, as Python indexes a `str`:
//! `text[start:end]` is the token; a leading byte-order mark counts as one).
//!
//! Plain output keeps the input's lines: with line breaks ending sentences,
//! line `n` of the output is line `n` of the input tagged (its sentences
//! side by side, a blank line for a blank one), so the two can be pasted
//! side by side; with `--paragraphs`, one sentence a line.

use std::io::Write;

use deltagrad::{Device, Error, Result};
use serde::Serialize;

use crate::eval;
use crate::features::{self, Extras, TagSet, Vocab};
use crate::net::NerModel;
use crate::tokenize::{self, Breaks, Token};

/// A tokenized sentence with its predicted tags.
#[derive(Debug, Clone)]
pub struct Tagged {
    pub tokens: Vec<Token>,
    pub tags: Vec<String>,
}

/// A trained model as `tag` uses it.
pub struct Tagger<'a> {
    pub net: &'a NerModel,
    pub vocab: &'a Vocab,
    /// The features besides words and capitalization the model reads.
    pub extras: Extras<'a>,
    pub tags: &'a TagSet,
    pub half_window: usize,
    /// `greedy` or `viterbi`.
    pub decode: &'a str,
    pub device: &'a Device,
}

impl Tagger<'_> {
    /// Tokenizes `text` (`breaks` saying whether a line break ends a
    /// sentence) and tags every sentence; the whole text is one document
    /// to the document features.
    pub fn tag_text(&self, text: &str, breaks: Breaks) -> Result<Vec<Tagged>> {
        let sentences = tokenize::tokenize_by(text, breaks);
        if sentences.is_empty() {
            return Ok(vec![]);
        }
        let words: Vec<Vec<&str>> = sentences
            .iter()
            .map(|s| s.iter().map(|t| t.text.as_str()).collect())
            .collect();
        let w =
            features::windows_for_tokens_with(&words, self.vocab, self.half_window, &self.extras)?;
        let scores = eval::predict(self.net, &w, self.device)?;
        let viterbi = self.net.viterbi(self.tags.tags())?;
        let predicted = eval::decode(
            &scores,
            &w.sentence_lengths,
            self.tags,
            self.decode,
            &viterbi,
        )?;
        Ok(sentences
            .into_iter()
            .zip(predicted)
            .map(|(tokens, tags)| Tagged { tokens, tags })
            .collect())
    }
}

/// Walks a text front to back, turning byte offsets into character offsets
/// and line numbers; asked for ever larger offsets, it takes linear time.
struct Cursor<'a> {
    text: &'a str,
    byte: usize,
    chars: usize,
    line: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Cursor<'a> {
        Cursor {
            text,
            byte: 0,
            chars: 0,
            line: 1,
        }
    }

    /// (character offset, 1-based line) of byte offset `to` (not before the
    /// last one asked for).
    fn at(&mut self, to: usize) -> (usize, usize) {
        if to > self.byte {
            let part = self.text.get(self.byte..to).unwrap_or_default();
            self.chars += part.chars().count();
            self.line += part.bytes().filter(|&b| b == b'\n').count();
            self.byte = to;
        }
        (self.chars, self.line)
    }
}

#[derive(Serialize)]
struct JsonEntity<'a> {
    #[serde(rename = "type")]
    label: &'a str,
    /// Token indices, `start..end`.
    start: usize,
    end: usize,
    /// The input text the entity covers.
    text: &'a str,
    /// Character offsets in the input, `start_char..end_char`.
    start_char: usize,
    end_char: usize,
}

#[derive(Serialize)]
struct JsonSentence<'a> {
    /// The input line (1-based) the sentence starts on.
    line: usize,
    tokens: Vec<&'a str>,
    tags: &'a [String],
    /// Each token's `[start, end)` character offsets in the input.
    offsets: Vec<[usize; 2]>,
    entities: Vec<JsonEntity<'a>>,
}

fn io(e: std::io::Error) -> Error {
    Error::io("writing the tagged text", e)
}

/// One JSON object a line per sentence:
/// `{"line":1,"tokens":[…],"tags":[…],"offsets":[[0,4],…],"entities":[{"type":"PER","start":0,"end":2,"text":"Ann Lee","start_char":0,"end_char":7}]}`.
pub fn write_json(out: &mut impl Write, text: &str, sentences: &[Tagged]) -> Result<()> {
    let mut cursor = Cursor::new(text);
    for s in sentences {
        let mut offsets = Vec::with_capacity(s.tokens.len());
        let mut line = 0;
        for (i, t) in s.tokens.iter().enumerate() {
            let (start, l) = cursor.at(t.start);
            if i == 0 {
                line = l;
            }
            let (end, _) = cursor.at(t.end);
            offsets.push([start, end]);
        }
        let words: Vec<&str> = s.tokens.iter().map(|t| t.text.as_str()).collect();
        let spans = tokenize::extract_entities(&words, &s.tags)?;
        let entities: Vec<JsonEntity> = spans
            .iter()
            .filter_map(|e| {
                let first = s.tokens.get(e.start)?;
                let last = s.tokens.get(e.end.checked_sub(1)?)?;
                Some(JsonEntity {
                    label: &e.label,
                    start: e.start,
                    end: e.end,
                    text: text.get(first.start..last.end).unwrap_or_default(),
                    start_char: offsets.get(e.start)?[0],
                    end_char: offsets.get(e.end - 1)?[1],
                })
            })
            .collect();
        let json = JsonSentence {
            line,
            tokens: words,
            tags: &s.tags,
            offsets,
            entities,
        };
        serde_json::to_writer(&mut *out, &json)
            .map_err(|e| Error::Other(format!("writing a tagged sentence as JSON: {e}")))?;
        writeln!(out).map_err(io)?;
    }
    Ok(())
}

/// Bracketed text (`[PER Ann Lee] visited [LOC Rome] .`): with
/// [`Breaks::Lines`] one output line per input line, else one per sentence.
pub fn write_plain(
    out: &mut impl Write,
    text: &str,
    sentences: &[Tagged],
    breaks: Breaks,
) -> Result<()> {
    let inline = |s: &Tagged| {
        let words: Vec<&str> = s.tokens.iter().map(|t| t.text.as_str()).collect();
        tokenize::inline(&words, &s.tags)
    };
    if breaks == Breaks::Paragraphs {
        for s in sentences {
            writeln!(out, "{}", inline(s)?).map_err(io)?;
        }
        return Ok(());
    }
    let mut cursor = Cursor::new(text);
    let mut next = sentences.iter().peekable();
    for line in 1..=text.lines().count() {
        let mut parts = Vec::new();
        while let Some(s) = next.next_if(|s| {
            s.tokens
                .first()
                .is_some_and(|t| cursor.at(t.start).1 == line)
        }) {
            parts.push(inline(s)?);
        }
        writeln!(out, "{}", parts.join(" ")).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tags every capitalised token B-PER, like a (bad) model would.
    fn fake_tag(text: &str, breaks: Breaks) -> Vec<Tagged> {
        tokenize::tokenize_by(text, breaks)
            .into_iter()
            .map(|tokens| Tagged {
                tags: tokens
                    .iter()
                    .map(|t| {
                        if t.text.starts_with(char::is_uppercase) {
                            "B-PER".to_string()
                        } else {
                            "O".to_string()
                        }
                    })
                    .collect(),
                tokens,
            })
            .collect()
    }

    #[test]
    fn json_carries_lines_and_character_offsets() {
        let text = "\u{FEFF}Zoë met Ann.\n\nthen Émile left";
        let tagged = fake_tag(text, Breaks::Lines);
        let mut out = Vec::new();
        write_json(&mut out, text, &tagged).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["line"], 1);
        assert_eq!(lines[1]["line"], 3);
        // Character offsets, as Python indexes the text (BOM included).
        let chars: Vec<char> = text.chars().collect();
        for l in &lines {
            for (tok, off) in l["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .zip(l["offsets"].as_array().unwrap())
            {
                let (a, b) = (off[0].as_u64().unwrap(), off[1].as_u64().unwrap());
                let span: String = chars[a as usize..b as usize].iter().collect();
                assert_eq!(tok.as_str().unwrap(), span);
            }
        }
        assert_eq!(lines[0]["offsets"][0], serde_json::json!([1, 4]));
        let e = &lines[1]["entities"][0];
        assert_eq!(
            (e["type"].as_str(), e["text"].as_str()),
            (Some("PER"), Some("Émile"))
        );
        assert_eq!(
            (e["start_char"].as_u64(), e["end_char"].as_u64()),
            (Some(20), Some(25))
        );
        assert_eq!((e["start"].as_u64(), e["end"].as_u64()), (Some(1), Some(2)));
    }

    #[test]
    fn plain_output_keeps_the_input_lines() {
        let text = "Ann left. Bob stayed\n\nCarl\nx\n";
        let mut out = Vec::new();
        write_plain(
            &mut out,
            text,
            &fake_tag(text, Breaks::Lines),
            Breaks::Lines,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[PER Ann] left . [PER Bob] stayed\n\n[PER Carl]\nx\n"
        );
        let mut out = Vec::new();
        let para = fake_tag(text, Breaks::Paragraphs);
        write_plain(&mut out, text, &para, Breaks::Paragraphs).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[PER Ann] left .\n[PER Bob] stayed\n[PER Carl] x\n"
        );
    }
}
