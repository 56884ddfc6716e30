//! Saving and loading a trained window NER model: its parameters plus the
//! vocabulary, tag set and options needed to use it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::checkpoint::{self, take};
use super::features::{TagSet, Vocab};
use super::train::TrainOptions;
use crate::device::Device;
use crate::dtype::{DType, HostData};
use crate::error::{Error, Result};
use crate::model::{WindowNet, WindowNetConfig};
use crate::tensor::Tensor;

pub const FORMAT: &str = "deltagrad-window-ner/1";

/// The JSON half of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    pub format: String,
    pub config: WindowNetConfig,
    pub vocab: Vec<String>,
    pub tags: Vec<String>,
    pub options: TrainOptions,
    pub epoch: usize,
    pub dev_f1: f64,
}

impl Meta {
    pub fn new(opts: &TrainOptions, net: &WindowNet, vocab: &Vocab, tags: &TagSet) -> Meta {
        Meta {
            format: FORMAT.into(),
            config: net.config.clone(),
            vocab: vocab.words().to_vec(),
            tags: tags.tags().to_vec(),
            options: opts.clone(),
            epoch: 0,
            dev_f1: 0.0,
        }
    }
    pub fn at_epoch(&self, epoch: usize, dev_f1: f64) -> Meta {
        Meta {
            epoch,
            dev_f1,
            ..self.clone()
        }
    }
    pub fn vocab(&self) -> Vocab {
        let mut v = Vocab::new();
        for w in &self.vocab {
            v.insert(w);
        }
        v
    }
    pub fn tagset(&self) -> TagSet {
        let types: Vec<String> = self
            .tags
            .iter()
            .filter_map(|t| t.strip_prefix("B-").map(str::to_string))
            .collect();
        TagSet::from_types(&types)
    }
}

/// Parameter names, in `WindowNet::params` order.
fn names(net: &WindowNet) -> Vec<String> {
    net.params()
        .iter()
        .enumerate()
        .map(|(i, p)| p.label().unwrap_or_else(|| format!("param{i}")))
        .collect()
}

pub fn save(dir: &Path, name: &str, net: &WindowNet, meta: &Meta) -> Result<()> {
    let tensors: Vec<(String, Tensor)> = names(net).into_iter().zip(net.params()).collect();
    let json = serde_json::to_value(meta).map_err(|e| Error::Other(e.to_string()))?;
    checkpoint::save(dir, name, &tensors, json)
}

/// Loads a model saved by `save`, checking every tensor against the config.
pub fn load(dir: &Path, name: &str, device: &Device) -> Result<(WindowNet, Meta)> {
    let (mut stored, json) = checkpoint::load(dir, name)?;
    let mp = checkpoint::meta_path(dir, name);
    let meta: Meta = serde_json::from_value(json).map_err(|e| Error::Parse {
        file: mp.display().to_string(),
        line: 0,
        msg: format!("checkpoint metadata: {e}"),
    })?;
    if meta.format != FORMAT {
        return Err(Error::Parse {
            file: mp.display().to_string(),
            line: 0,
            msg: format!("format {:?}, expected {FORMAT:?}", meta.format),
        });
    }
    if meta.vocab.len() != meta.config.vocab {
        return Err(Error::Parse {
            file: mp.display().to_string(),
            line: 0,
            msg: format!(
                "{} vocabulary words but the config says {}",
                meta.vocab.len(),
                meta.config.vocab
            ),
        });
    }
    // A freshly built net gives the expected names and shapes.
    let mut rng = Tensor::rng(0);
    let mut net = WindowNet::new(meta.config.clone(), DType::F32, device, &mut rng)?;
    let wp = checkpoint::weights_path(dir, name);
    let mut loaded = Vec::new();
    for (n, p) in names(&net).iter().zip(net.params()) {
        let s = take(&mut stored, &wp, n, p.shape())?;
        if let Some(i) = s.values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Parse {
                file: wp.display().to_string(),
                line: 0,
                msg: format!("tensor {n} holds a non-finite value at element {i}"),
            });
        }
        loaded.push(
            Tensor::from_host(HostData::F32(s.values), &s.shape, device)?
                .requires_grad()
                .with_label(n),
        );
    }
    set_params(&mut net, loaded)?;
    Ok((net, meta))
}

/// Replaces the parameters (in `params` order).
pub fn set_params(net: &mut WindowNet, params: Vec<Tensor>) -> Result<()> {
    let mut it = params.into_iter();
    let mut next = || {
        it.next()
            .ok_or_else(|| Error::Other("set_params: too few tensors".into()))
    };
    net.embeddings = next()?;
    if net.cap_embeddings.is_some() {
        net.cap_embeddings = Some(next()?);
    }
    for (w, wc, b) in &mut net.layers {
        *w = next()?;
        if wc.is_some() {
            *wc = Some(next()?);
        }
        *b = next()?;
    }
    net.out_w = next()?;
    net.out_b = next()?;
    Ok(())
}
