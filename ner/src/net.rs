//! The tagger's network: the lecture's window network, which scores every
//! token's tags from its window, and — for the sentence-level model — a
//! linear-chain CRF on top (a learned tag-transition matrix and start and
//! end scores; Collobert et al. 2011's sentence-level log-likelihood).
//!
//! Without the CRF the per-token scores go through a softmax and the
//! word-level cross-entropy; with it, a sentence's tags are scored
//! together and decoded by Viterbi with the learned transitions.

use deltagrad::crf::{self, CrfParams};
use deltagrad::model::{Batch, WindowNet};
use deltagrad::{Device, HostData, Result, Tensor};
use rand::rngs::StdRng;

use crate::decode::Viterbi;

/// A CRF's learned scores over `K` tags.
pub struct Crf {
    /// `[K, K]`, `[from, to]`.
    pub transitions: Tensor,
    /// `[K]`.
    pub start: Tensor,
    /// `[K]`.
    pub end: Tensor,
}

/// Checkpoint names of the CRF's tensors, in `Crf::params` order.
pub const CRF_NAMES: [&str; 3] = ["crf_transitions", "crf_start", "crf_end"];

impl Crf {
    /// All scores 0: at first the CRF adds nothing to the window scores.
    pub fn zeros(tags: usize, device: &Device) -> Result<Crf> {
        let z = |shape: &[usize], name: &str| -> Result<Tensor> {
            let n = shape.iter().product();
            Ok(
                Tensor::from_host(HostData::F32(vec![0.0; n]), shape, device)?
                    .requires_grad()
                    .with_label(name),
            )
        };
        Ok(Crf {
            transitions: z(&[tags, tags], CRF_NAMES[0])?,
            start: z(&[tags], CRF_NAMES[1])?,
            end: z(&[tags], CRF_NAMES[2])?,
        })
    }

    pub fn params(&self) -> Vec<Tensor> {
        vec![
            self.transitions.clone(),
            self.start.clone(),
            self.end.clone(),
        ]
    }

    fn as_params(&self) -> CrfParams<'_> {
        CrfParams {
            transitions: &self.transitions,
            start: &self.start,
            end: &self.end,
        }
    }
}

/// The window network, with or without a CRF.
pub struct NerModel {
    pub net: WindowNet,
    pub crf: Option<Crf>,
}

/// A batch of whole sentences padded to one length: the window network's
/// batch holds `sentences · positions` windows, sentence by sentence.
pub struct SentenceBatch {
    pub windows: Batch,
    /// Sentences, padding sentences included.
    pub sentences: usize,
    /// Positions per sentence (the bucket's length).
    pub positions: usize,
    /// True lengths (0 for a padding sentence).
    pub lengths: Vec<usize>,
    /// `sentences · positions` gold tag ids (0 past a sentence's end).
    pub gold: Vec<u32>,
}

impl NerModel {
    /// Every parameter: the window network's, then the CRF's.
    pub fn params(&self) -> Vec<Tensor> {
        let mut p = self.net.params();
        if let Some(c) = &self.crf {
            p.extend(c.params());
        }
        p
    }

    /// `[windows, tags]` per-token scores.
    pub fn scores(&self, b: &Batch, dropout: Option<(f64, &mut StdRng)>) -> Result<Tensor> {
        self.net.logits(b, dropout)
    }

    /// The sentence-level loss of a batch: each sentence's CRF negative
    /// log-likelihood times its `weight` (data, not plan structure, so
    /// that every batch of a bucket replays one plan), summed.
    pub fn sentence_loss(
        &self,
        b: &SentenceBatch,
        weights: &[f32],
        dropout: Option<(f64, &mut StdRng)>,
    ) -> Result<Tensor> {
        let crf = self.crf.as_ref().ok_or_else(|| {
            deltagrad::Error::invalid("sentence_loss", "the model has no CRF layer")
        })?;
        let k = self.net.config.classes;
        let e = self
            .scores(&b.windows, dropout)?
            .reshape(&[b.sentences, b.positions, k])?;
        let nll = crf::nll(&e, &b.lengths, &b.gold, &crf.as_params())?;
        let w = Tensor::from_host(
            HostData::F32(weights.to_vec()),
            &[b.sentences],
            &nll.device(),
        )?;
        nll.mul(&w)?.sum()
    }

    /// The Viterbi decoder for `tags`: valid IOB2 only, plus the CRF's
    /// learned scores when there is a CRF.
    pub fn viterbi<S: AsRef<str>>(&self, tags: &[S]) -> Result<Viterbi> {
        let v = Viterbi::iob2(tags);
        let Some(c) = &self.crf else {
            return Ok(v);
        };
        v.with_transitions(&c.transitions.to_vec_f32()?)?
            .with_start_end(&c.start.to_vec_f32()?, &c.end.to_vec_f32()?)
    }
}
