//! Turning sentences into the integer arrays the window classifier eats:
//! word ids (via [`Vocab`]), capitalization classes, tag ids (via
//! [`TagSet`]), arranged as one ±`half`-token window per token.
//!
//! Words are looked up lowercased because GloVe 6B is lowercased; the case
//! information that lowercasing throws away comes back as the
//! capitalization feature of Collobert et al. (2011).

use std::collections::{BTreeSet, HashMap};

use deltagrad::{Error, Result};

use crate::conll::{Sentence, Tag, parse_tag};
use crate::document::{self, DOC_CLASSES};
use crate::gazetteer::{self, Gazetteer};
use crate::glove::Embeddings;
use crate::lexical::{self, AFFIX_SLOTS};

/// Id of the padding word used beyond sentence edges.
pub const PAD_ID: u32 = 0;
/// Id of every word the vocabulary lacks.
pub const UNK_ID: u32 = 1;
pub const PAD: &str = "<pad>";
pub const UNK: &str = "<unk>";
/// Tokens on each side of the centre word in the lecture's 5-word window.
pub const HALF_WINDOW: usize = 2;

/// Lowercases a token for vocabulary lookup.
pub fn normalize(word: &str) -> String {
    word.to_lowercase()
}

/// Replaces every decimal digit with `0`, the usual second try for numbers
/// that the vectors lack in their exact form.
pub fn digits_to_zero(word: &str) -> String {
    word.chars()
        .map(|c| if c.is_ascii_digit() { '0' } else { c })
        .collect()
}

/// Collobert et al. (2011) capitalization classes, plus one for padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Caps {
    /// Has letters, none uppercase: `house`, `1990s`.
    AllLower = 0,
    /// First letter uppercase, no other: `Paris`, `A`, `I`.
    FirstUpper = 1,
    /// At least two letters, all uppercase: `NATO`, `U.S.`.
    AllUpper = 2,
    /// An uppercase letter after the first: `McDonald`, `iPhone`.
    MixedUpper = 3,
    /// No letters: `1996`, `,`.
    NoLetters = 4,
    /// Window position beyond a sentence edge.
    Padding = 5,
}

/// Number of [`Caps`] classes, padding included.
pub const N_CAPS: usize = 6;

/// The capitalization class of a raw (not lowercased) token. Letters that
/// have no case (CJK, ...) count as not uppercase.
pub fn caps(word: &str) -> Caps {
    let mut letters = word.chars().filter(|c| c.is_alphabetic());
    let Some(first) = letters.next() else {
        return Caps::NoLetters;
    };
    let (mut rest, mut rest_upper) = (0usize, 0usize);
    for c in letters {
        rest += 1;
        rest_upper += usize::from(c.is_uppercase());
    }
    match (first.is_uppercase(), rest_upper) {
        (true, n) if rest > 0 && n == rest => Caps::AllUpper,
        (true, 0) => Caps::FirstUpper,
        (false, 0) => Caps::AllLower,
        _ => Caps::MixedUpper,
    }
}

/// Word → id, with [`PAD_ID`] and [`UNK_ID`] reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    words: Vec<String>,
    index: HashMap<String, u32>,
}

impl Default for Vocab {
    fn default() -> Self {
        Self::new()
    }
}

impl Vocab {
    /// A vocabulary holding only `<pad>` and `<unk>`.
    pub fn new() -> Vocab {
        let mut v = Vocab {
            words: Vec::new(),
            index: HashMap::new(),
        };
        v.insert(PAD);
        v.insert(UNK);
        v
    }

    /// The embedding words in file order, at ids 2, 3, ... . A word equal to
    /// `<pad>`/`<unk>` keeps the reserved id and its row is dropped.
    pub fn from_embeddings(emb: &Embeddings) -> Vocab {
        let mut v = Vocab::new();
        for w in &emb.words {
            v.insert(w);
        }
        v
    }

    /// Adds `word` as is (callers normalize) and returns its id, old or new.
    pub fn insert(&mut self, word: &str) -> u32 {
        if let Some(&id) = self.index.get(word) {
            return id;
        }
        // More than 4 billion words cannot happen with real data; saturate
        // rather than wrap so a bug cannot alias ids silently.
        let id = u32::try_from(self.words.len()).unwrap_or(u32::MAX);
        self.words.push(word.to_string());
        self.index.insert(word.to_string(), id);
        id
    }

    /// Adds the normalized training words seen at least `min_count` times
    /// that the vocabulary lacks, in first-seen order; returns how many.
    pub fn extend_from_sentences(&mut self, sentences: &[Sentence], min_count: usize) -> usize {
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut order = Vec::new();
        for tok in sentences.iter().flat_map(|s| &s.tokens) {
            let w = normalize(tok);
            if self.index.contains_key(&w) {
                continue;
            }
            let c = counts.entry(w.clone()).or_insert(0);
            if *c == 0 {
                order.push(w);
            }
            *c += 1;
        }
        let before = self.words.len();
        for w in order {
            if counts.get(&w).copied().unwrap_or(0) >= min_count {
                self.insert(&w);
            }
        }
        self.words.len() - before
    }

    /// Exact lookup, no normalization.
    pub fn get(&self, word: &str) -> Option<u32> {
        self.index.get(word).copied()
    }

    /// Id of a raw token: lowercased; failing that, lowercased with digits
    /// as `0`; failing that, [`UNK_ID`].
    pub fn lookup(&self, token: &str) -> u32 {
        let lower = normalize(token);
        if let Some(id) = self.get(&lower) {
            return id;
        }
        if lower.bytes().any(|b| b.is_ascii_digit())
            && let Some(id) = self.get(&digits_to_zero(&lower))
        {
            return id;
        }
        UNK_ID
    }

    pub fn word(&self, id: u32) -> Option<&str> {
        self.words.get(id as usize).map(String::as_str)
    }

    pub fn words(&self) -> &[String] {
        &self.words
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Never true: `<pad>` and `<unk>` are always there.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// A `len() x emb.dim` row-major matrix: each word's vector where `emb`
    /// has it, zeros elsewhere (`<pad>`, `<unk>`, added training words), so
    /// the caller decides how to initialise those. Also returns how many
    /// rows came from `emb`.
    pub fn embedding_matrix(&self, emb: &Embeddings) -> (Vec<f32>, usize) {
        let mut row_of: HashMap<&str, usize> = HashMap::with_capacity(emb.len());
        for (i, w) in emb.words.iter().enumerate() {
            row_of.entry(w.as_str()).or_insert(i);
        }
        let mut m = vec![0.0f32; self.words.len() * emb.dim];
        let mut found = 0;
        for (id, w) in self.words.iter().enumerate() {
            if id < 2 {
                continue;
            }
            let src = row_of.get(w.as_str()).and_then(|&r| emb.row(r));
            let dst = m.get_mut(id * emb.dim..(id + 1) * emb.dim);
            if let (Some(src), Some(dst)) = (src, dst) {
                dst.copy_from_slice(src);
                found += 1;
            }
        }
        (m, found)
    }
}

/// Entity types in CoNLL-2003's conventional order.
pub const CONLL_TYPES: [&str; 4] = ["PER", "LOC", "ORG", "MISC"];

/// IOB2 tag ↔ id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSet {
    tags: Vec<String>,
    index: HashMap<String, u32>,
}

impl TagSet {
    /// `O`, then `B-T`, `I-T` for each type in order.
    pub fn from_types<S: AsRef<str>>(types: &[S]) -> TagSet {
        let mut tags = vec!["O".to_string()];
        for t in types {
            tags.push(format!("B-{}", t.as_ref()));
            tags.push(format!("I-{}", t.as_ref()));
        }
        let index = tags
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        TagSet { tags, index }
    }

    /// The 9 CoNLL-2003 tags: O, B-PER, I-PER, B-LOC, I-LOC, B-ORG, I-ORG,
    /// B-MISC, I-MISC.
    pub fn conll() -> TagSet {
        Self::from_types(&CONLL_TYPES)
    }

    /// The types found in the data, ordered as in CoNLL-2003 and then
    /// alphabetically, so that CoNLL data gives [`TagSet::conll`]'s ids.
    /// Every type gets both `B-` and `I-`. Errors on a tag that is not
    /// `O`/`B-X`/`I-X`.
    pub fn from_sentences(sentences: &[Sentence]) -> Result<TagSet> {
        let mut types = BTreeSet::new();
        for (si, s) in sentences.iter().enumerate() {
            for t in &s.tags {
                match parse_tag(t) {
                    Some(Tag::O) => {}
                    Some(Tag::B(ty) | Tag::I(ty)) => {
                        types.insert(ty);
                    }
                    None => {
                        return Err(Error::invalid(
                            "TagSet::from_sentences",
                            format!("sentence {si}: tag {t:?} is not O, B-X or I-X"),
                        ));
                    }
                }
            }
        }
        let rank = |t: &str| {
            CONLL_TYPES
                .iter()
                .position(|c| *c == t)
                .unwrap_or(usize::MAX)
        };
        let mut types: Vec<&str> = types.into_iter().collect();
        types.sort_by_key(|t| (rank(t), *t));
        Ok(Self::from_types(&types))
    }

    pub fn id(&self, tag: &str) -> Option<u32> {
        self.index.get(tag).copied()
    }

    pub fn tag(&self, id: u32) -> Option<&str> {
        self.tags.get(id as usize).map(String::as_str)
    }

    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    pub fn len(&self) -> usize {
        self.tags.len()
    }

    /// Never true: `O` is always there.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// Tag names for ids; errors on an id out of range.
    pub fn decode(&self, ids: &[u32]) -> Result<Vec<String>> {
        ids.iter()
            .enumerate()
            .map(|(i, &id)| {
                self.tag(id).map(str::to_string).ok_or(Error::IdOutOfRange {
                    op: "TagSet::decode",
                    id: u64::from(id),
                    position: i,
                    rows: self.len(),
                })
            })
            .collect()
    }
}

/// Flat window features for a batch of tokens.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Windows {
    /// Tokens on each side of the centre.
    pub half: usize,
    /// Number of tokens (= windows).
    pub n_tokens: usize,
    /// `n_tokens * width()` word ids, window by window.
    pub word_ids: Vec<u32>,
    /// `n_tokens * width()` [`Caps`] classes, aligned with `word_ids`.
    pub caps: Vec<u32>,
    /// `n_tokens` gold tag ids; empty when built without tags.
    pub tags: Vec<u32>,
    /// Tokens per sentence, to split predictions back into sentences.
    pub sentence_lengths: Vec<usize>,
    /// Per extra feature of [`Extras`] (in [`Extras::tables`] order),
    /// `count` ids per window position, window by window; 0 beyond a
    /// sentence's edges.
    pub extra: Vec<Vec<u32>>,
}

/// The per-word features besides the word and its capitalization: the
/// shape class, the affixes, the gazetteer states and the external name
/// lists' states, the characters, what the rest of the document says of
/// the word (see `lexical`, `gazetteer`, `namelists` and `document`).
/// Which are on is the model's choice; their ids come in this order.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extras<'a> {
    pub shape: bool,
    pub affix: bool,
    pub gazetteer: Option<&'a Gazetteer>,
    /// External name lists, read like the gazetteer but through their own
    /// table: they come from elsewhere and deserve their own trust.
    pub lexicon: Option<&'a Gazetteer>,
    /// Each word's characters, read by a convolution (see
    /// `lexical::char_ids`).
    pub chars: bool,
    /// The word's case and place in names elsewhere in its document (see
    /// `document`).
    pub document: bool,
}

impl Extras<'_> {
    /// `(classes, ids per word)` of each feature that is on, in order.
    pub fn tables(&self) -> Vec<(usize, usize)> {
        let mut t = Vec::new();
        if self.shape {
            t.push((lexical::SHAPE_CLASSES, 1));
        }
        if self.affix {
            t.push((lexical::AFFIX_CLASSES, AFFIX_SLOTS));
        }
        if let Some(g) = self.gazetteer {
            let n = g.types().len();
            t.push((n * gazetteer::STATES, n));
        }
        if let Some(g) = self.lexicon {
            let n = g.types().len();
            t.push((n * gazetteer::STATES, n));
        }
        if self.chars {
            t.push((lexical::CHAR_CLASSES, lexical::CHAR_SLOTS));
        }
        if self.document {
            t.push((DOC_CLASSES, 1));
        }
        t
    }

    /// Per feature that is on, the ids of every word of `tokens`, whose
    /// document features are `doc_ids`.
    fn ids(&self, tokens: &[&str], doc_ids: &[u32]) -> Vec<Vec<u32>> {
        let mut out = Vec::new();
        if self.shape {
            out.push(tokens.iter().map(|t| lexical::shape_id(t)).collect());
        }
        if self.affix {
            out.push(tokens.iter().flat_map(|t| lexical::affix_ids(t)).collect());
        }
        for g in [self.gazetteer, self.lexicon].into_iter().flatten() {
            out.push(g.states(tokens));
        }
        if self.chars {
            out.push(tokens.iter().flat_map(|t| lexical::char_ids(t)).collect());
        }
        if self.document {
            out.push(doc_ids.to_vec());
        }
        out
    }
}

impl Windows {
    /// Window width, `2 * half + 1`.
    pub fn width(&self) -> usize {
        2 * self.half + 1
    }
}

/// Largest accepted `half`; wider windows are surely a mistake, and the
/// bound keeps `width()` far from overflow.
pub const MAX_HALF_WINDOW: usize = 64;

fn empty_windows(op: &'static str, half: usize) -> Result<Windows> {
    if half > MAX_HALF_WINDOW {
        return Err(Error::invalid(
            op,
            format!("half window {half} exceeds {MAX_HALF_WINDOW}"),
        ));
    }
    Ok(Windows {
        half,
        ..Windows::default()
    })
}

/// Windows for token sequences without gold tags (raw text to tag).
/// Errors only on `half > MAX_HALF_WINDOW`.
pub fn windows_for_tokens<S: AsRef<str>>(
    sentences: &[Vec<S>],
    vocab: &Vocab,
    half: usize,
) -> Result<Windows> {
    windows_for_tokens_with(sentences, vocab, half, &Extras::default())
}

/// [`windows_for_tokens`] with the `extras` features; the sentences are
/// one document.
pub fn windows_for_tokens_with<S: AsRef<str>>(
    sentences: &[Vec<S>],
    vocab: &Vocab,
    half: usize,
    extras: &Extras,
) -> Result<Windows> {
    let mut w = empty_windows("windows_for_tokens", half)?;
    w.extra = vec![Vec::new(); extras.tables().len()];
    let words: Vec<Vec<&str>> = sentences
        .iter()
        .map(|s| s.iter().map(AsRef::as_ref).collect())
        .collect();
    let doc_ids = doc_ids_of(extras.document, &words, |_| 0);
    for (tokens, ids) in words.iter().zip(&doc_ids) {
        push_sentence(&mut w, tokens, ids, vocab, extras);
    }
    Ok(w)
}

/// The document features of every sentence of `sentences`, where a
/// document is a run of sentences with the same `doc(i)`; empty lists
/// when `on` is false.
fn doc_ids_of(on: bool, sentences: &[Vec<&str>], doc: impl Fn(usize) -> usize) -> Vec<Vec<u32>> {
    if !on {
        return vec![Vec::new(); sentences.len()];
    }
    let mut out = Vec::with_capacity(sentences.len());
    let mut start = 0;
    while start < sentences.len() {
        let end = (start..sentences.len())
            .find(|&i| doc(i) != doc(start))
            .unwrap_or(sentences.len());
        out.extend(document::document_ids(&sentences[start..end]));
        start = end;
    }
    out
}

/// Windows plus gold tag ids for tagged sentences. Errors on a tag missing
/// from `tagset`, a sentence whose tokens and tags differ in length, or
/// `half > MAX_HALF_WINDOW`.
pub fn windows_for_sentences(
    sentences: &[Sentence],
    vocab: &Vocab,
    tagset: &TagSet,
    half: usize,
) -> Result<Windows> {
    windows_for_sentences_with(sentences, vocab, tagset, half, &Extras::default())
}

/// [`windows_for_sentences`] with the `extras` features.
pub fn windows_for_sentences_with(
    sentences: &[Sentence],
    vocab: &Vocab,
    tagset: &TagSet,
    half: usize,
    extras: &Extras,
) -> Result<Windows> {
    windows_for_sentences_by(sentences, vocab, tagset, half, &[*extras], |_| 0)
}

/// [`windows_for_sentences`] where sentence `i` reads the features of
/// `extras[fold(i)]` (all alike but for their gazetteer): a training split
/// whose gazetteer is built from the split itself reads, per block of
/// sentences, a gazetteer built from the other blocks, so that its names
/// are as often missing from the lists as unseen names will be. An error
/// when `fold` leaves `extras`.
pub fn windows_for_sentences_by(
    sentences: &[Sentence],
    vocab: &Vocab,
    tagset: &TagSet,
    half: usize,
    extras: &[Extras],
    fold: impl Fn(usize) -> usize,
) -> Result<Windows> {
    const OP: &str = "windows_for_sentences";
    let mut w = empty_windows(OP, half)?;
    w.extra = vec![Vec::new(); extras.first().map_or(0, |e| e.tables().len())];
    let words: Vec<Vec<&str>> = sentences
        .iter()
        .map(|s| s.tokens.iter().map(String::as_str).collect())
        .collect();
    let on = extras.first().is_some_and(|e| e.document);
    let doc_ids = doc_ids_of(on, &words, |i| sentences[i].doc);
    for (si, s) in sentences.iter().enumerate() {
        let extras = extras.get(fold(si)).ok_or_else(|| {
            Error::invalid(
                OP,
                format!("sentence {si}: fold {} has no features", fold(si)),
            )
        })?;
        if s.tokens.len() != s.tags.len() {
            return Err(Error::invalid(
                OP,
                format!(
                    "sentence {si}: {} tokens but {} tags",
                    s.tokens.len(),
                    s.tags.len()
                ),
            ));
        }
        for t in &s.tags {
            let id = tagset.id(t).ok_or_else(|| {
                Error::invalid(
                    OP,
                    format!(
                        "sentence {si}: tag {t:?} is not in the tag set {:?}",
                        tagset.tags()
                    ),
                )
            })?;
            w.tags.push(id);
        }
        push_sentence(&mut w, &words[si], &doc_ids[si], vocab, extras);
    }
    Ok(w)
}

fn push_sentence(
    w: &mut Windows,
    tokens: &[&str],
    doc_ids: &[u32],
    vocab: &Vocab,
    extras: &Extras,
) {
    let feats: Vec<(u32, u32)> = tokens
        .iter()
        .map(|t| (vocab.lookup(t), caps(t) as u32))
        .collect();
    let n = feats.len();
    for ((ids, out), (_, count)) in extras
        .ids(tokens, doc_ids)
        .iter()
        .zip(&mut w.extra)
        .zip(extras.tables())
    {
        for centre in 0..n {
            for k in 0..=2 * w.half {
                match (centre + k).checked_sub(w.half).filter(|&p| p < n) {
                    Some(p) => out.extend_from_slice(&ids[p * count..(p + 1) * count]),
                    None => out.extend(std::iter::repeat_n(0, count)),
                }
            }
        }
    }
    let half = w.half;
    w.word_ids.reserve(n * w.width());
    w.caps.reserve(n * w.width());
    for centre in 0..n {
        // Positions centre-half ..= centre+half, written as centre+k-half
        // so that no intermediate goes negative.
        for k in 0..=2 * half {
            let pos = (centre + k).checked_sub(half);
            let (id, cap) = pos
                .and_then(|p| feats.get(p).copied())
                .unwrap_or((PAD_ID, Caps::Padding as u32));
            w.word_ids.push(id);
            w.caps.push(cap);
        }
    }
    w.n_tokens += n;
    w.sentence_lengths.push(n);
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

    #[test]
    fn caps_classes() {
        let cases = [
            ("house", Caps::AllLower),
            ("1990s", Caps::AllLower),
            ("Paris", Caps::FirstUpper),
            ("A", Caps::FirstUpper),
            ("'Neill", Caps::FirstUpper),
            ("NATO", Caps::AllUpper),
            ("U.S.", Caps::AllUpper),
            ("McDonald", Caps::MixedUpper),
            ("iPhone", Caps::MixedUpper),
            ("1996-08-22", Caps::NoLetters),
            (",", Caps::NoLetters),
            ("", Caps::NoLetters),
            ("Ölz", Caps::FirstUpper),
            ("ÉTÉ", Caps::AllUpper),
        ];
        for (w, c) in cases {
            assert_eq!(caps(w), c, "{w}");
        }
    }

    #[test]
    fn vocab_lookup_falls_back_to_zeroed_digits() {
        let mut v = Vocab::new();
        assert_eq!((v.get(PAD), v.get(UNK)), (Some(PAD_ID), Some(UNK_ID)));
        let the = v.insert("the");
        let year = v.insert("0000");
        let mixed = v.insert("1,000");
        assert_eq!(v.insert("the"), the);
        assert_eq!(v.lookup("The"), the);
        assert_eq!(v.lookup("1996"), year);
        // The exact (lowercased) form wins over the zeroed one.
        assert_eq!(v.lookup("1,000"), mixed);
        assert_eq!(v.lookup("Zorblax"), UNK_ID);
        assert_eq!(v.word(the), Some("the"));
        assert_eq!(v.word(99), None);
    }

    #[test]
    fn vocab_from_embeddings_and_matrix() {
        let emb = Embeddings {
            words: vec!["the".into(), "cat".into()],
            dim: 2,
            values: vec![1.0, 2.0, 3.0, 4.0],
        };
        let mut v = Vocab::from_embeddings(&emb);
        assert_eq!(v.lookup("Cat"), 3);
        let added = v.extend_from_sentences(&[sent("The Zorb zorb Qux", "O O O O")], 2);
        assert_eq!(added, 1);
        assert_eq!(v.lookup("ZORB"), 4);
        assert_eq!(v.lookup("qux"), UNK_ID);
        let (m, found) = v.embedding_matrix(&emb);
        assert_eq!(found, 2);
        assert_eq!(m, vec![0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0]);
    }

    #[test]
    fn tagsets() {
        let c = TagSet::conll();
        let names: Vec<&str> = c.tags().iter().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"
            ]
        );
        let data = [sent("a b c d", "B-MISC I-ORG O B-PER"), sent("e", "B-LOC")];
        assert_eq!(TagSet::from_sentences(&data).unwrap(), c);
        let other = TagSet::from_sentences(&[sent("a b c", "B-ZZ B-AA I-PER")]).unwrap();
        let names: Vec<&str> = other.tags().iter().map(String::as_str).collect();
        assert_eq!(
            names,
            ["O", "B-PER", "I-PER", "B-AA", "I-AA", "B-ZZ", "I-ZZ"]
        );
        assert!(TagSet::from_sentences(&[sent("a", "X")]).is_err());
        assert_eq!(c.decode(&[0, 3]).unwrap(), vec!["O", "B-LOC"]);
        assert!(matches!(
            c.decode(&[0, 9]),
            Err(Error::IdOutOfRange { position: 1, .. })
        ));
    }

    #[test]
    fn windows_pad_at_sentence_edges() {
        let mut v = Vocab::new();
        let (a, b, c) = (v.insert("a"), v.insert("b"), v.insert("c"));
        let tags = TagSet::conll();
        let data = [sent("A b c", "B-PER O O"), sent("b", "B-LOC")];
        let w = windows_for_sentences(&data, &v, &tags, HALF_WINDOW).unwrap();
        assert_eq!(w.n_tokens, 4);
        assert_eq!(w.width(), 5);
        assert_eq!(w.sentence_lengths, vec![3, 1]);
        let p = PAD_ID;
        #[rustfmt::skip]
        assert_eq!(w.word_ids, vec![
            p, p, a, b, c,
            p, a, b, c, p,
            a, b, c, p, p,
            p, p, b, p, p,
        ]);
        let (l, f, pd) = (
            Caps::AllLower as u32,
            Caps::FirstUpper as u32,
            Caps::Padding as u32,
        );
        assert_eq!(&w.caps[..5], &[pd, pd, f, l, l]);
        assert_eq!(&w.caps[15..], &[pd, pd, l, pd, pd]);
        assert_eq!(w.tags, vec![1, 0, 0, 3]);
        let raw = windows_for_tokens(&[vec!["c", "zz"]], &v, 1).unwrap();
        assert_eq!(raw.word_ids, vec![p, c, UNK_ID, c, UNK_ID, p]);
        assert!(raw.tags.is_empty());
    }

    #[test]
    fn document_features_stay_inside_their_document() {
        let v = Vocab::new();
        let tags = TagSet::conll();
        let mut data = [
            sent("Fans in Japan", "O O B-LOC"),
            sent("JAPAN WIN", "B-LOC O"),
            sent("JAPAN WIN", "B-LOC O"),
        ];
        data[2].doc = 1;
        let extras = Extras {
            document: true,
            ..Extras::default()
        };
        assert_eq!(extras.tables(), vec![(DOC_CLASSES, 1)]);
        let w = windows_for_sentences_with(&data, &v, &tags, 0, &extras).unwrap();
        // "JAPAN" reads "Japan" in its own document only: (capitalised
        // elsewhere, never in a name) is id 1 + 1·4 + 0.
        assert_eq!(w.extra[0], vec![1, 1, 1, 5, 1, 1, 1]);
        // Raw text is one document.
        let raw = [vec!["JAPAN", "WIN"], vec!["Fans", "in", "Japan"]];
        let w = windows_for_tokens_with(&raw, &v, 1, &extras).unwrap();
        assert_eq!(&w.extra[0][..3], &[0, 5, 1]);
    }

    #[test]
    fn windows_reject_unknown_tags_and_ragged_sentences() {
        let v = Vocab::new();
        let tags = TagSet::conll();
        let err = windows_for_sentences(&[sent("a", "I-XYZ")], &v, &tags, 2).unwrap_err();
        assert!(err.to_string().contains("I-XYZ"), "{err}");
        assert!(windows_for_sentences(&[sent("a b", "O")], &v, &tags, 2).is_err());
        assert!(windows_for_tokens(&[vec!["a"]], &v, MAX_HALF_WINDOW + 1).is_err());
    }
}
