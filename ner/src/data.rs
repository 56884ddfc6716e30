//! Everything the model reads, prepared once: sentences (IOB2), vocabulary,
//! tag set, embedding matrix, and window features per split.

use std::path::Path;

use deltagrad::model::Batch;
use deltagrad::{Device, Result, Tensor};
use rand::Rng;
use rand::rngs::StdRng;

use crate::conll::Sentence;
use crate::datadir;
use crate::features::{PAD_ID, TagSet, Vocab, Windows, windows_for_sentences};
use crate::glove::Embeddings;

/// The three splits of a CoNLL-style corpus, tags converted to IOB2.
pub struct Corpus {
    pub train: Vec<Sentence>,
    pub valid: Vec<Sentence>,
    pub test: Vec<Sentence>,
}

/// Reads `dir/{train,valid,test}.txt` (see `datadir`: only the default
/// folder is fetched into, when `fetch` is set and it lacks the files).
pub fn load_corpus(dir: &Path, fetch: bool) -> Result<Corpus> {
    datadir::ensure_splits(dir, fetch)?;
    let [train, valid, test] = datadir::read_splits(dir)?;
    Ok(Corpus { train, valid, test })
}

/// The embedding matrix for `vocab`: GloVe rows where the word has one,
/// small random rows for the others, zeros for padding.
pub fn embedding_init(vocab: &Vocab, emb: &Embeddings, rng: &mut StdRng) -> (Vec<f32>, usize) {
    let (mut m, _found) = vocab.embedding_matrix(emb);
    let dim = emb.dim;
    let known: std::collections::HashSet<&str> = emb.words.iter().map(String::as_str).collect();
    for (i, w) in vocab.words().iter().enumerate() {
        if i as u32 == PAD_ID || known.contains(w.as_str()) {
            continue;
        }
        for v in &mut m[i * dim..(i + 1) * dim] {
            *v = rng.random_range(-0.25..0.25);
        }
    }
    (m, dim)
}

/// Windows for each split.
pub struct Features {
    pub train: Windows,
    pub valid: Windows,
    pub test: Windows,
}

pub fn features(c: &Corpus, vocab: &Vocab, tags: &TagSet, half: usize) -> Result<Features> {
    Ok(Features {
        train: windows_for_sentences(&c.train, vocab, tags, half)?,
        valid: windows_for_sentences(&c.valid, vocab, tags, half)?,
        test: windows_for_sentences(&c.test, vocab, tags, half)?,
    })
}

/// The batch of windows `idx` (token positions) of `w`. `labels` maps a tag
/// id to the class the model predicts (identity, or binary for `--binary`).
pub fn batch(
    w: &Windows,
    idx: &[usize],
    labels: &dyn Fn(u32) -> u32,
    device: &Device,
) -> Result<Batch> {
    let width = w.width();
    let mut words = Vec::with_capacity(idx.len() * width);
    let mut caps = Vec::with_capacity(idx.len() * width);
    let mut ys = Vec::with_capacity(idx.len());
    for &i in idx {
        words.extend_from_slice(&w.word_ids[i * width..(i + 1) * width]);
        caps.extend_from_slice(&w.caps[i * width..(i + 1) * width]);
        ys.push(labels(w.tags.get(i).copied().unwrap_or(0)));
    }
    let n = idx.len() * width;
    Ok(Batch {
        words: Tensor::ids(words, &[n], device)?,
        caps: Some(Tensor::ids(caps, &[n], device)?),
        labels: Tensor::ids(ys, &[idx.len()], device)?,
        size: idx.len(),
    })
}
