//! Gazetteers: lists of known names per entity type, read as one feature
//! per type and word — outside any listed name, the first word of one, or
//! a later word of one (Collobert et al. 2011 §6.2).
//!
//! The lists come from the training split's own entities, or from a file
//! given with `--gazetteer`: one name a line, `TYPE<TAB>name`, the name's
//! words separated by spaces; `#` starts a comment line. They are never
//! built from dev or test. (External lists of places and personal names,
//! which say nothing of organisations or MISC, are a feature of their own:
//! see `namelists`.)

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use deltagrad::{Error, Result};

use crate::conll::{Sentence, Tag, parse_tag};

/// Feature states per type: 0 outside (and padding), 1 the first word of
/// a listed name, 2 a later word.
pub const STATES: usize = 3;

/// Names per entity type, matched word for word (case-sensitive).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gazetteer {
    types: Vec<String>,
    /// Per type, the names as word sequences.
    names: Vec<HashSet<Vec<String>>>,
    /// Per type, the words in the longest name that starts with a word:
    /// most words start no name, and `states` then looks no further.
    longest_from: Vec<HashMap<String, usize>>,
}

impl Gazetteer {
    /// An empty gazetteer over `types` (in feature order).
    pub fn new<S: AsRef<str>>(types: &[S]) -> Gazetteer {
        Gazetteer {
            types: types.iter().map(|t| t.as_ref().to_string()).collect(),
            names: vec![HashSet::new(); types.len()],
            longest_from: vec![HashMap::new(); types.len()],
        }
    }

    /// Adds a name of type `ty`; false when the type is not one of ours.
    pub fn insert(&mut self, ty: &str, words: Vec<String>) -> bool {
        let Some(i) = self.types.iter().position(|t| t == ty) else {
            return false;
        };
        if let Some(first) = words.first() {
            let most = self.longest_from[i].entry(first.clone()).or_insert(0);
            *most = (*most).max(words.len());
            self.names[i].insert(words);
        }
        true
    }

    /// Every entity of the (IOB2) `sentences`, under its type.
    pub fn from_sentences<S: AsRef<str>>(types: &[S], sentences: &[Sentence]) -> Gazetteer {
        let mut g = Gazetteer::new(types);
        for s in sentences {
            let mut open: Option<(&str, Vec<String>)> = None;
            for (word, tag) in s.tokens.iter().zip(&s.tags) {
                match parse_tag(tag) {
                    Some(Tag::I(ty)) if open.as_ref().is_some_and(|(t, _)| *t == ty) => {
                        if let Some((_, w)) = open.as_mut() {
                            w.push(word.clone());
                        }
                        continue;
                    }
                    Some(Tag::B(ty) | Tag::I(ty)) => {
                        if let Some((t, w)) = open.replace((ty, vec![word.clone()])) {
                            g.insert(t, w);
                        }
                        continue;
                    }
                    _ => {}
                }
                if let Some((t, w)) = open.take() {
                    g.insert(t, w);
                }
            }
            if let Some((t, w)) = open {
                g.insert(t, w);
            }
        }
        g
    }

    /// Reads a `TYPE<TAB>name` file; a line with no tab, an empty name or
    /// a type not in `types` is an error naming the file and line.
    pub fn read<S: AsRef<str>>(path: &Path, types: &[S]) -> Result<Gazetteer> {
        let bytes =
            std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let text = String::from_utf8(bytes).map_err(|e| Error::Parse {
            file: path.display().to_string(),
            line: 0,
            msg: format!("not UTF-8: {e}"),
        })?;
        Gazetteer::parse(&text, &path.display().to_string(), types)
    }

    /// [`Gazetteer::read`] on text already read; `file` names it in errors.
    pub fn parse<S: AsRef<str>>(text: &str, file: &str, types: &[S]) -> Result<Gazetteer> {
        let mut g = Gazetteer::new(types);
        let bad = |line: usize, msg: String| Error::Parse {
            file: file.to_string(),
            line,
            msg,
        };
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((ty, name)) = line.split_once('\t') else {
                return Err(bad(i + 1, format!("expected TYPE<TAB>name, got {line:?}")));
            };
            let words: Vec<String> = name.split_whitespace().map(str::to_string).collect();
            if words.is_empty() {
                return Err(bad(i + 1, "empty name".into()));
            }
            if !g.insert(ty, words) {
                return Err(bad(
                    i + 1,
                    format!("type {ty:?} is not one of the model's {:?}", g.types),
                ));
            }
        }
        Ok(g)
    }

    pub fn types(&self) -> &[String] {
        &self.types
    }

    /// Names in all lists.
    pub fn len(&self) -> usize {
        self.names.iter().map(HashSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lists as `(type, name)` pairs in a fixed order (for checkpoints).
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut out = BTreeSet::new();
        for (ty, names) in self.types.iter().zip(&self.names) {
            for n in names {
                out.insert((ty.clone(), n.join(" ")));
            }
        }
        out.into_iter().collect()
    }

    /// The inverse of [`Gazetteer::to_pairs`]; an error on an unknown type.
    pub fn from_pairs<S: AsRef<str>>(types: &[S], pairs: &[(String, String)]) -> Result<Gazetteer> {
        let mut g = Gazetteer::new(types);
        for (ty, name) in pairs {
            let words = name.split(' ').map(str::to_string).collect();
            if !g.insert(ty, words) {
                return Err(Error::invalid(
                    "gazetteer",
                    format!("name {name:?} has type {ty:?}, not one of {:?}", g.types),
                ));
            }
        }
        Ok(g)
    }

    /// Per word of `tokens`, one state id per type, word by word:
    /// `type · STATES + state`. Each type's names are matched left to
    /// right, longest first, without overlaps.
    pub fn states<S: AsRef<str>>(&self, tokens: &[S]) -> Vec<u32> {
        let n = self.types.len();
        let mut out = vec![0u32; tokens.len() * n];
        for (ti, (names, longest_from)) in self.names.iter().zip(&self.longest_from).enumerate() {
            let base = (ti * STATES) as u32;
            for v in out.iter_mut().skip(ti).step_by(n.max(1)) {
                *v = base;
            }
            let mut at = 0;
            while at < tokens.len() {
                let Some(&most) = longest_from.get(tokens[at].as_ref()) else {
                    at += 1;
                    continue;
                };
                let longest = most.min(tokens.len() - at);
                let hit = (1..=longest).rev().find(|&len| {
                    let key: Vec<String> = tokens[at..at + len]
                        .iter()
                        .map(|t| t.as_ref().to_string())
                        .collect();
                    names.contains(&key)
                });
                match hit {
                    Some(len) => {
                        out[at * n + ti] = base + 1;
                        for k in 1..len {
                            out[(at + k) * n + ti] = base + 2;
                        }
                        at += len;
                    }
                    None => at += 1,
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(tokens: &str, tags: &str) -> Sentence {
        Sentence {
            tokens: tokens.split_whitespace().map(String::from).collect(),
            tags: tags.split_whitespace().map(String::from).collect(),
            doc: 0,
        }
    }

    /// Names that share a first word: the longest that the words match
    /// wins, a longer one cut off by the sentence's end does not, and a
    /// word that starts no name is outside even where it ends one.
    #[test]
    fn names_sharing_a_first_word_match_the_longest_that_fits() {
        let g = Gazetteer::parse(
            "LOC\tNew York City\nLOC\tNew York\nLOC\tNew\nLOC\tYork Minster\n",
            "names.tsv",
            &["LOC"],
        )
        .unwrap();
        assert_eq!(g.states(&["New", "York", "City"]), [1, 2, 2]);
        assert_eq!(g.states(&["New", "York"]), [1, 2]);
        assert_eq!(g.states(&["New", "Delhi", "New"]), [1, 0, 1]);
        assert_eq!(g.states(&["York", "New", "York", "Minster"]), [0, 1, 2, 0]);
        assert_eq!(g.states(&["City", "York", "Minster"]), [0, 1, 2]);
    }

    #[test]
    fn names_from_training_sentences_match_longest_first() {
        let types = ["PER", "LOC"];
        let train = [
            sent("New York and York", "B-LOC I-LOC O B-LOC"),
            sent("John Smith met Ann", "B-PER I-PER O B-PER"),
        ];
        let g = Gazetteer::from_sentences(&types, &train);
        assert_eq!(g.len(), 4);
        let s = g.states(&["in", "New", "York", "York", "Smith"]);
        // PER ids 0..3, LOC ids 3..6; word by word.
        assert_eq!(s, vec![0, 3, 0, 4, 0, 5, 0, 4, 0, 3]);
        let back = Gazetteer::from_pairs(&types, &g.to_pairs()).unwrap();
        assert_eq!(back, g);
    }

    #[test]
    fn malformed_files_name_the_line() {
        let types = ["PER", "LOC"];
        let g = Gazetteer::parse("# names\nLOC\tNew York\n\nPER\tAnn\n", "g.txt", &types);
        assert_eq!(g.unwrap().len(), 2);
        for (text, line) in [
            ("LOC\tParis\nno tab here\n", 2),
            ("LOC\t  \n", 1),
            ("LOC\tParis\r\nCITY\tParis\n", 2),
        ] {
            let e = Gazetteer::parse(text, "g.txt", &types).unwrap_err();
            assert!(
                matches!(&e, Error::Parse { file, line: l, .. } if file == "g.txt" && *l == line),
                "{text:?}: {e}"
            );
        }
        let missing = Gazetteer::read(Path::new("/nonexistent/g.txt"), &types).unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/g.txt"),
            "{missing}"
        );
    }
}
