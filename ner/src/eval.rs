//! Scoring a model: per-token scores, decoding (greedy or Viterbi), and
//! entity-level P/R/F1 exactly as conlleval computes them.

use std::collections::HashSet;

use deltagrad::model::Batch;
use deltagrad::{Device, Error, HostData, Result, Tensor, no_grad};

use crate::conll::{Sentence, Tag, parse_tag};
use crate::conlleval::{ConllEval, evaluate};
use crate::decode::{Viterbi, greedy};
use crate::features::{TagSet, Windows, normalize};
use crate::net::NerModel;

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
    net: &NerModel,
    b: &Batch,
    binary: bool,
    dropout: Option<(f64, &mut rand::rngs::StdRng)>,
) -> Result<Tensor> {
    let logits = net.scores(b, dropout)?;
    if !binary {
        return logits.softmax_cross_entropy(&b.labels);
    }
    let targets: Vec<f32> = b.labels.to_ids()?.iter().map(|&y| y as f32).collect();
    let t = Tensor::from_host(HostData::F32(targets), &[b.size], &logits.device())?;
    logits.reshape(&[b.size])?.logistic_loss(&t)
}

/// Per-token scores `[n_tokens, classes]`: log-probabilities of the
/// word-level model, the CRF's emission scores, or one logit per token for
/// the binary classifier.
pub fn predict(net: &NerModel, w: &Windows, device: &Device) -> Result<Vec<f32>> {
    let ident = |t: u32| t;
    let mut out = Vec::with_capacity(w.n_tokens * net.net.config.classes);
    let idx: Vec<usize> = (0..w.n_tokens).collect();
    no_grad(|| -> Result<()> {
        for chunk in idx.chunks(PREDICT_BATCH) {
            let b = super::data::batch(w, chunk, &ident, device)?;
            let logits = net.scores(&b, None)?;
            let s = if net.net.config.classes == 1 || net.crf.is_some() {
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

/// Decodes scores into tags per sentence: `viterbi` with `viterbi` (the
/// model's decoder, see [`NerModel::viterbi`]), or `greedy`.
pub fn decode(
    scores: &[f32],
    lengths: &[usize],
    tags: &TagSet,
    how: &str,
    viterbi: &Viterbi,
) -> Result<Vec<Vec<String>>> {
    let ids: Vec<Vec<u32>> = match how {
        "viterbi" => viterbi.decode_sentences(scores, lengths)?,
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
    net: &NerModel,
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
    let predicted = decode(
        &s,
        &w.sentence_lengths,
        tags,
        how,
        &net.viterbi(tags.tags())?,
    )?;
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

/// Entities as `(start, end, type)` token spans of IOB2 tags (an `I-X`
/// that continues no `X` starts one, as conlleval reads it).
fn spans<S: AsRef<str>>(tags: &[S]) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, t) in tags.iter().enumerate() {
        let parsed = parse_tag(t.as_ref());
        if let (Some(Tag::I(ty)), Some((_, o))) = (parsed, &open)
            && o == ty
        {
            continue;
        }
        if let Some((s, ty)) = open.take() {
            out.push((s, i, ty));
        }
        if let Some(Tag::B(ty) | Tag::I(ty)) = parsed {
            open = Some((i, ty.to_string()));
        }
    }
    if let Some((s, ty)) = open {
        out.push((s, tags.len(), ty));
    }
    out
}

/// Precision, recall and F1 (percent) on the entities that contain a
/// word `known` does not hold (lowercased): a predicted such entity is
/// right when a gold entity has its exact span and type. Also returns the
/// number of such gold entities.
pub fn oov_scores(
    sentences: &[Sentence],
    predicted: &[Vec<String>],
    known: &HashSet<String>,
) -> (f64, f64, f64, usize) {
    let (mut tp, mut n_pred, mut n_gold) = (0usize, 0usize, 0usize);
    for (s, p) in sentences.iter().zip(predicted) {
        let unseen = |(a, b, _): &&(usize, usize, String)| {
            s.tokens[*a..*b]
                .iter()
                .any(|w| !known.contains(&normalize(w)))
        };
        let gold: Vec<_> = spans(&s.tags);
        let gold: Vec<_> = gold.iter().filter(unseen).collect();
        let pred: Vec<_> = spans(p);
        let pred: Vec<_> = pred.iter().filter(unseen).collect();
        n_gold += gold.len();
        n_pred += pred.len();
        tp += pred.iter().filter(|e| gold.contains(e)).count();
    }
    let pct = |a: usize, b: usize| {
        if b > 0 {
            100.0 * a as f64 / b as f64
        } else {
            0.0
        }
    };
    let (p, r) = (pct(tp, n_pred), pct(tp, n_gold));
    let f = if p + r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    };
    (p, r, f, n_gold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oov_entities_are_scored_alone() {
        let s = Sentence {
            tokens: "Zorblax met Ann in Paris"
                .split(' ')
                .map(String::from)
                .collect(),
            tags: "B-PER O B-PER O B-LOC"
                .split(' ')
                .map(String::from)
                .collect(),
            doc: 0,
        };
        let known: HashSet<String> = ["met", "ann", "in", "paris"]
            .iter()
            .map(|w| w.to_string())
            .collect();
        let right = vec![s.tags.clone()];
        assert_eq!(
            oov_scores(std::slice::from_ref(&s), &right, &known),
            (100.0, 100.0, 100.0, 1)
        );
        // The known-word entities do not count; the unseen one is missed.
        let wrong: Vec<String> = "B-ORG O O O B-LOC".split(' ').map(String::from).collect();
        assert_eq!(oov_scores(&[s], &[wrong], &known), (0.0, 0.0, 0.0, 1));
    }
}
