//! Everything the model reads, prepared once: sentences (IOB2), vocabulary,
//! tag set, embedding matrix, and window features per split.

use std::path::Path;

use deltagrad::model::Batch;
use deltagrad::{Device, Error, Result, Tensor};
use rand::Rng;
use rand::rngs::StdRng;

use crate::conll::Sentence;
use crate::datadir;
use crate::features::{
    Caps, Extras, PAD_ID, TagSet, Vocab, Windows, windows_for_sentences_by,
    windows_for_sentences_with,
};
use crate::gazetteer::Gazetteer;
use crate::glove::Embeddings;
use crate::net::SentenceBatch;

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

/// Blocks of training sentences whose gazetteer features come from the
/// names of the other blocks (see [`features`]).
pub const GAZETTEER_FOLDS: usize = 5;

/// Every split's windows with the `extras` features. When `from_train`,
/// the gazetteer was built from the training split's own entities: dev
/// and test read it whole, but a training sentence reads the names of the
/// other [`GAZETTEER_FOLDS`] − 1 blocks of consecutive sentences (whole
/// documents, mostly), or every training name would be in the lists and
/// the model would learn that a name missing from them is no name.
pub fn features(
    c: &Corpus,
    vocab: &Vocab,
    tags: &TagSet,
    half: usize,
    extras: &Extras,
    from_train: bool,
) -> Result<Features> {
    let w = |s| windows_for_sentences_with(s, vocab, tags, half, extras);
    let train = match extras.gazetteer {
        Some(g) if from_train => {
            let n = c.train.len();
            let fold = |i: usize| i * GAZETTEER_FOLDS / n.max(1);
            let lists: Vec<Gazetteer> = (0..GAZETTEER_FOLDS)
                .map(|k| {
                    let others: Vec<Sentence> = c
                        .train
                        .iter()
                        .enumerate()
                        .filter(|&(i, _)| fold(i) != k)
                        .map(|(_, s)| s.clone())
                        .collect();
                    Gazetteer::from_sentences(g.types(), &others)
                })
                .collect();
            let per_fold: Vec<Extras> = lists
                .iter()
                .map(|l| Extras {
                    gazetteer: Some(l),
                    ..*extras
                })
                .collect();
            windows_for_sentences_by(&c.train, vocab, tags, half, &per_fold, fold)?
        }
        _ => w(&c.train)?,
    };
    Ok(Features {
        train,
        valid: w(&c.valid)?,
        test: w(&c.test)?,
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
    let slots: Vec<Option<usize>> = idx.iter().map(|&i| Some(i)).collect();
    padded_batch(w, &slots, labels, device)
}

/// Like [`batch`], where `None` is a padding window: every position
/// beyond the sentence (padding word, capitalization and features), label 0.
fn padded_batch(
    w: &Windows,
    slots: &[Option<usize>],
    labels: &dyn Fn(u32) -> u32,
    device: &Device,
) -> Result<Batch> {
    let width = w.width();
    let n = slots.len() * width;
    let mut words = Vec::with_capacity(n);
    let mut caps = Vec::with_capacity(n);
    let mut extra: Vec<Vec<u32>> = vec![Vec::new(); w.extra.len()];
    let mut ys = Vec::with_capacity(slots.len());
    for slot in slots {
        let Some(i) = *slot else {
            words.extend(std::iter::repeat_n(PAD_ID, width));
            caps.extend(std::iter::repeat_n(Caps::Padding as u32, width));
            for (src, dst) in w.extra.iter().zip(&mut extra) {
                let per = src.len() / w.n_tokens.max(1);
                dst.extend(std::iter::repeat_n(0, per));
            }
            ys.push(0);
            continue;
        };
        words.extend_from_slice(&w.word_ids[i * width..(i + 1) * width]);
        caps.extend_from_slice(&w.caps[i * width..(i + 1) * width]);
        for (src, dst) in w.extra.iter().zip(&mut extra) {
            let per = src.len() / w.n_tokens.max(1);
            dst.extend_from_slice(&src[i * per..(i + 1) * per]);
        }
        ys.push(labels(w.tags.get(i).copied().unwrap_or(0)));
    }
    let features = extra
        .into_iter()
        .map(|v| {
            let len = v.len();
            Tensor::ids(v, &[len], device)
        })
        .collect::<Result<_>>()?;
    Ok(Batch {
        words: Tensor::ids(words, &[n], device)?,
        caps: Some(Tensor::ids(caps, &[n], device)?),
        features,
        labels: Tensor::ids(ys, &[slots.len()], device)?,
        size: slots.len(),
    })
}

/// The lengths sentences are padded to for the sentence-level model: every
/// batch of one bucket has the same shape, so the whole run compiles one
/// training plan per bucket used.
pub const BUCKETS: [usize; 10] = [4, 8, 12, 16, 24, 32, 48, 64, 96, 128];

/// The shortest bucket that holds `len` tokens.
pub fn bucket_of(len: usize) -> Option<usize> {
    BUCKETS.iter().copied().find(|&b| b >= len)
}

/// The sentences of one training step, all padded to `positions`; `None`
/// is a padding sentence that fills the bucket's batch.
#[derive(Clone, Debug, PartialEq)]
pub struct SentenceStep {
    pub positions: usize,
    pub sentences: Vec<Option<usize>>,
}

/// Groups sentences (`order`: ids into `lengths`) by bucket, keeping their
/// order within a bucket, into steps of `tokens / bucket` sentences (at
/// least one), the last step of a bucket filled with padding sentences.
/// Empty sentences are skipped; one longer than the longest bucket is an
/// error naming its index.
pub fn sentence_steps(
    lengths: &[usize],
    order: &[usize],
    tokens: usize,
) -> Result<Vec<SentenceStep>> {
    let mut by_bucket: Vec<Vec<usize>> = vec![Vec::new(); BUCKETS.len()];
    for &s in order {
        let len = lengths[s];
        if len == 0 {
            continue;
        }
        let b = BUCKETS.iter().position(|&b| b >= len).ok_or_else(|| {
            Error::invalid(
                "sentence_steps",
                format!(
                    "sentence {s} has {len} tokens, more than the longest bucket ({})",
                    BUCKETS[BUCKETS.len() - 1]
                ),
            )
        })?;
        by_bucket[b].push(s);
    }
    let mut steps = Vec::new();
    for (ids, &positions) in by_bucket.iter().zip(&BUCKETS) {
        let per = (tokens / positions).max(1);
        for chunk in ids.chunks(per) {
            let mut sentences: Vec<Option<usize>> = chunk.iter().map(|&s| Some(s)).collect();
            sentences.resize(per, None);
            steps.push(SentenceStep {
                positions,
                sentences,
            });
        }
    }
    Ok(steps)
}

/// The batch of one step: sentence `s` of `w` starts at window
/// `offsets[s]` (the running sum of `w.sentence_lengths`).
pub fn sentence_batch(
    w: &Windows,
    offsets: &[usize],
    step: &SentenceStep,
    device: &Device,
) -> Result<SentenceBatch> {
    let t = step.positions;
    let mut slots = Vec::with_capacity(step.sentences.len() * t);
    let mut lengths = Vec::with_capacity(step.sentences.len());
    let mut gold = Vec::with_capacity(step.sentences.len() * t);
    for s in &step.sentences {
        let (start, len) = match s {
            Some(s) => (offsets[*s], w.sentence_lengths[*s]),
            None => (0, 0),
        };
        lengths.push(len);
        for p in 0..t {
            let i = (p < len).then_some(start + p);
            slots.push(i);
            gold.push(i.and_then(|i| w.tags.get(i).copied()).unwrap_or(0));
        }
    }
    let ident = |t: u32| t;
    Ok(SentenceBatch {
        windows: padded_batch(w, &slots, &ident, device)?,
        sentences: step.sentences.len(),
        positions: t,
        lengths,
        gold,
    })
}

/// Where each sentence's windows start in a `Windows`.
pub fn sentence_offsets(w: &Windows) -> Vec<usize> {
    let mut at = 0;
    w.sentence_lengths
        .iter()
        .map(|&l| {
            let o = at;
            at += l;
            o
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_bucket_sentences_and_pad_batches() {
        let lengths = [3, 9, 4, 0, 1, 20];
        let order = [5, 0, 1, 2, 3, 4];
        let steps = sentence_steps(&lengths, &order, 8).unwrap();
        let got: Vec<(usize, Vec<Option<usize>>)> = steps
            .into_iter()
            .map(|s| (s.positions, s.sentences))
            .collect();
        assert_eq!(
            got,
            vec![
                (4, vec![Some(0), Some(2)]),
                (4, vec![Some(4), None]),
                (12, vec![Some(1)]),
                (24, vec![Some(5)]),
            ]
        );
        let e = sentence_steps(&[200], &[0], 8).unwrap_err();
        assert!(e.to_string().contains("200 tokens"), "{e}");
        assert_eq!(bucket_of(128), Some(128));
        assert_eq!(bucket_of(129), None);
    }
}
