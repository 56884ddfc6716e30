//! Scoring a model: per-token scores, decoding (greedy or Viterbi), and
//! entity-level P/R/F1 exactly as conlleval computes them.

use deltagrad::model::{Batch, WindowNet};
use deltagrad::{Device, Error, HostData, Result, Tensor, no_grad};

use crate::conll::Sentence;
use crate::conlleval::{ConllEval, evaluate};
use crate::decode::{Viterbi, greedy};
use crate::features::{TagSet, Windows};

/// Windows scored per forward pass when predicting.
const PREDICT_BATCH: usize = 4096;

/// Precision, recall and F1 (percent), and what produced them.
#[derive(Clone, Debug)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Entity types with their P/R/F1 (multi-class only).
    pub per_type: Vec<(String, f64, f64, f64)>,
    /// The full conlleval result (multi-class only).
    pub conlleval: Option<ConllEval>,
    /// Predicted tags per sentence.
    pub predicted: Vec<Vec<String>>,
}

/// Tag id → class id: identity, or 1/0 for "is an entity of type T".
pub fn label_map(tags: &TagSet, binary: Option<&str>) -> Box<dyn Fn(u32) -> u32> {
    match binary {
        None => Box::new(|t| t),
        Some(ty) => {
            let positive: Vec<bool> = tags
                .tags()
                .iter()
                .map(|t| t.len() > 2 && &t[2..] == ty)
                .collect();
            Box::new(move |t| positive.get(t as usize).copied().unwrap_or(false) as u32)
        }
    }
}

/// The training loss of a batch: softmax cross-entropy, or the logistic
/// loss of the binary classifier.
pub fn loss(
    net: &WindowNet,
    b: &Batch,
    binary: bool,
    dropout: Option<(f64, &mut rand::rngs::StdRng)>,
) -> Result<Tensor> {
    let logits = net.logits(b, dropout)?;
    if !binary {
        return logits.softmax_cross_entropy(&b.labels);
    }
    let targets: Vec<f32> = b.labels.to_ids()?.iter().map(|&y| y as f32).collect();
    let t = Tensor::from_host(HostData::F32(targets), &[b.size], &logits.device())?;
    logits.reshape(&[b.size])?.logistic_loss(&t)
}

/// Log-probabilities `[n_tokens, classes]` (binary: one logit per token).
pub fn predict(net: &WindowNet, w: &Windows, device: &Device) -> Result<Vec<f32>> {
    let ident = |t: u32| t;
    let mut out = Vec::with_capacity(w.n_tokens * net.config.classes);
    let idx: Vec<usize> = (0..w.n_tokens).collect();
    no_grad(|| -> Result<()> {
        for chunk in idx.chunks(PREDICT_BATCH) {
            let b = super::data::batch(w, chunk, &ident, device)?;
            let logits = net.logits(&b, None)?;
            let s = if net.config.classes == 1 {
                logits
            } else {
                logits.log_softmax()?
            };
            out.extend(s.to_vec_f32()?);
        }
        Ok(())
    })?;
    Ok(out)
}

/// Decodes scores into tags per sentence.
pub fn decode(
    scores: &[f32],
    lengths: &[usize],
    tags: &TagSet,
    how: &str,
) -> Result<Vec<Vec<String>>> {
    let ids: Vec<Vec<u32>> = match how {
        "viterbi" => Viterbi::iob2(tags.tags()).decode_sentences(scores, lengths)?,
        "greedy" => {
            let all = greedy(scores, tags.len())?;
            let mut out = Vec::new();
            let mut at = 0;
            for &l in lengths {
                let s = all.get(at..at + l).ok_or_else(|| {
                    Error::invalid("decode", "sentence lengths exceed the scored tokens")
                })?;
                out.push(s.to_vec());
                at += l;
            }
            out
        }
        other => {
            return Err(Error::invalid(
                "decode",
                format!("expected greedy or viterbi, got {other:?}"),
            ));
        }
    };
    ids.iter().map(|s| tags.decode(s)).collect()
}

/// Scores `net` on a split.
pub fn score(
    net: &WindowNet,
    w: &Windows,
    sentences: &[Sentence],
    tags: &TagSet,
    binary: Option<&str>,
    how: &str,
    device: &Device,
) -> Result<Scores> {
    let s = predict(net, w, device)?;
    if let Some(ty) = binary {
        let map = label_map(tags, Some(ty));
        let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
        for (i, &logit) in s.iter().enumerate() {
            let gold = map(w.tags[i]) == 1;
            let pred = logit > 0.0;
            match (gold, pred) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (true, false) => fneg += 1,
                _ => {}
            }
        }
        let p = if tp + fp > 0 {
            100.0 * tp as f64 / (tp + fp) as f64
        } else {
            0.0
        };
        let r = if tp + fneg > 0 {
            100.0 * tp as f64 / (tp + fneg) as f64
        } else {
            0.0
        };
        let f = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        return Ok(Scores {
            precision: p,
            recall: r,
            f1: f,
            per_type: vec![],
            conlleval: None,
            predicted: vec![],
        });
    }
    let predicted = decode(&s, &w.sentence_lengths, tags, how)?;
    let gold: Vec<Vec<String>> = sentences.iter().map(|s| s.tags.clone()).collect();
    let e = evaluate(&gold, &predicted)?;
    let o = e.prf();
    let per_type = e
        .per_type
        .iter()
        .map(|(t, c)| {
            let p = c.prf();
            (t.clone(), p.precision, p.recall, p.f1)
        })
        .collect();
    Ok(Scores {
        precision: o.precision,
        recall: o.recall,
        f1: o.f1,
        per_type,
        conlleval: Some(e),
        predicted,
    })
}
