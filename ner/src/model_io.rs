//! Saving and loading a trained window NER model: its parameters plus the
//! vocabulary, tag set and options needed to use it.

use std::path::Path;

use deltagrad::model::{FeatureSpec, WindowNet, WindowNetConfig};
use deltagrad::state_dict::StateDict;
use deltagrad::{DType, Device, Error, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::features::{Extras, MAX_HALF_WINDOW, N_CAPS, TagSet, Vocab};
use crate::gazetteer::Gazetteer;
use crate::namelists;
use crate::net::{Crf, NerModel};
use crate::options::{Progress, TrainOptions};

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
    /// Training state, in `last` checkpoints only.
    #[serde(default)]
    pub progress: Option<Progress>,
    /// The gazetteer's `(type, name)` pairs, when the model reads one.
    #[serde(default)]
    pub gazetteer: Vec<(String, String)>,
    /// The external name lists' `(list, name)` pairs, when the model reads
    /// them.
    #[serde(default)]
    pub lexicon: Vec<(String, String)>,
}

/// The name lists a model reads: the gazetteer (entity types) and the
/// external lists (see `namelists`).
pub struct Lists {
    pub gazetteer: Gazetteer,
    pub lexicon: Gazetteer,
}

/// The extra features `opts` asks for, reading `lists`.
pub fn extras<'a>(opts: &TrainOptions, lists: &'a Lists) -> Extras<'a> {
    let d = opts.extra_dims();
    Extras {
        shape: d.shape > 0,
        affix: d.affix > 0,
        gazetteer: (d.gazetteer > 0).then_some(&lists.gazetteer),
        lexicon: (d.lexicon > 0).then_some(&lists.lexicon),
        chars: d.chars > 0,
        document: d.document > 0,
    }
}

/// The network's extra feature tables for `extras`, sized by `opts` (the
/// characters' read through a convolution).
pub fn feature_specs(opts: &TrainOptions, extras: &Extras) -> Vec<FeatureSpec> {
    extras
        .tables()
        .into_iter()
        .zip(opts.extra_dims().on())
        .map(|((classes, count), (dim, conv))| FeatureSpec {
            classes,
            dim,
            count,
            conv,
        })
        .collect()
}

impl Meta {
    pub fn new(
        opts: &TrainOptions,
        model: &NerModel,
        vocab: &Vocab,
        tags: &TagSet,
        lists: &Lists,
    ) -> Meta {
        let d = opts.extra_dims();
        let pairs = |on: bool, g: &Gazetteer| if on { g.to_pairs() } else { Vec::new() };
        Meta {
            format: FORMAT.into(),
            config: model.net.config.clone(),
            vocab: vocab.words().to_vec(),
            tags: tags.tags().to_vec(),
            options: opts.clone(),
            epoch: 0,
            dev_f1: 0.0,
            progress: None,
            gazetteer: pairs(d.gazetteer > 0, &lists.gazetteer),
            lexicon: pairs(d.lexicon > 0, &lists.lexicon),
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
    /// The name lists the model reads (empty ones where it reads none).
    pub fn lists(&self) -> Result<Lists> {
        let types: Vec<String> = self
            .tags
            .iter()
            .filter_map(|t| t.strip_prefix("B-").map(str::to_string))
            .collect();
        Ok(Lists {
            gazetteer: Gazetteer::from_pairs(&types, &self.gazetteer)?,
            lexicon: Gazetteer::from_pairs(&namelists::LISTS, &self.lexicon)?,
        })
    }
}

/// Parameter names (labels), in `NerModel::params` order.
pub fn param_names(net: &NerModel) -> Vec<String> {
    net.params()
        .iter()
        .enumerate()
        .map(|(i, p)| p.label().unwrap_or_else(|| format!("param{i}")))
        .collect()
}

pub fn save(dir: &Path, name: &str, net: &NerModel, meta: &Meta) -> Result<()> {
    save_with(dir, name, net, meta, &[])
}

/// Like `save`, with extra tensors (optimizer state) beside the parameters.
pub fn save_with(
    dir: &Path,
    name: &str,
    net: &NerModel,
    meta: &Meta,
    extra: &[(String, Tensor)],
) -> Result<()> {
    let mut weights = StateDict::new();
    for (n, p) in param_names(net).into_iter().zip(net.params()) {
        weights.insert(n, p);
    }
    for (n, t) in extra {
        weights.insert(n.clone(), t.clone());
    }
    let json = serde_json::to_value(meta).map_err(|e| Error::Other(e.to_string()))?;
    checkpoint::save(dir, name, &weights, json)
}

/// Loads a model saved by `save`, checking every tensor against the config.
pub fn load(dir: &Path, name: &str, device: &Device) -> Result<(NerModel, Meta)> {
    let (net, meta, _) = load_with(dir, name, device)?;
    Ok((net, meta))
}

/// Adam's moments as checkpoint tensors.
pub fn moment_tensors(names: &[String], m: &[Tensor], v: &[Tensor]) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    for (n, (a, b)) in names.iter().zip(m.iter().zip(v)) {
        out.push((format!("adam.m.{n}"), a.clone()));
        out.push((format!("adam.v.{n}"), b.clone()));
    }
    out
}

/// Takes Adam's moments (saved by `moment_tensors`) from a loaded checkpoint.
pub fn take_moments(rest: &mut StateDict, net: &NerModel) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
    let (mut m, mut v) = (Vec::new(), Vec::new());
    for (n, p) in param_names(net).iter().zip(net.params()) {
        for (prefix, out) in [("adam.m.", &mut m), ("adam.v.", &mut v)] {
            out.push(rest.take(&format!("{prefix}{n}"), p.shape(), DType::F32)?);
        }
    }
    Ok((m, v))
}

/// Loads a model and returns the checkpoint's other tensors too.
pub fn load_with(dir: &Path, name: &str, device: &Device) -> Result<(NerModel, Meta, StateDict)> {
    read_checked(dir, name, device).map_err(checkpoint::without_line_zero)
}

fn read_checked(dir: &Path, name: &str, device: &Device) -> Result<(NerModel, Meta, StateDict)> {
    let (mut stored, json) = checkpoint::load(dir, name, device)?;
    let mp = checkpoint::meta_path(dir, name);
    let meta: Meta = serde_json::from_value(json).map_err(|e| {
        // `from_value` knows no positions; the file's text gives the line.
        let line = std::fs::read(&mp)
            .ok()
            .and_then(|b| serde_json::from_slice::<Meta>(&b).err())
            .map_or(0, |e| e.line());
        Error::Parse {
            file: mp.display().to_string(),
            line,
            msg: format!("checkpoint metadata: {e}"),
        }
    })?;
    if meta.format != FORMAT {
        return Err(Error::Parse {
            file: mp.display().to_string(),
            line: 0,
            msg: format!("format {:?}, expected {FORMAT:?}", meta.format),
        });
    }
    check_meta(&meta, stored.numel())
        .and_then(|()| check_features(&meta))
        .map_err(|msg| Error::Parse {
            file: mp.display().to_string(),
            line: 0,
            msg,
        })?;
    // A freshly built net gives the expected names and shapes.
    let mut rng = Tensor::rng(0);
    let net = WindowNet::new(meta.config.clone(), DType::F32, device, &mut rng)?;
    let crf = match meta.options.crf() {
        true => Some(Crf::zeros(meta.config.classes, device)?),
        false => None,
    };
    let mut net = NerModel { net, crf };
    let wp = checkpoint::weights_path(dir, name);
    let mut loaded = Vec::new();
    for (n, p) in param_names(&net).iter().zip(net.params()) {
        let t = stored.take(n, p.shape(), DType::F32)?;
        if let Some(i) = t.to_vec_f32()?.iter().position(|v| !v.is_finite()) {
            return Err(Error::Parse {
                file: wp.display().to_string(),
                line: 0,
                msg: format!("tensor {n} holds a non-finite value at element {i}"),
            });
        }
        loaded.push(t.requires_grad().with_label(n));
    }
    set_params(&mut net, loaded)?;
    Ok((net, meta, stored))
}

/// Checks that the metadata agrees with itself before anything is built
/// from it; `stored_values` is the number of values the weights file holds.
fn check_meta(meta: &Meta, stored_values: usize) -> std::result::Result<(), String> {
    let c = &meta.config;
    if meta.vocab.len() != c.vocab {
        return Err(format!(
            "{} vocabulary words but the config says {}",
            meta.vocab.len(),
            c.vocab
        ));
    }
    // `vocab()` keeps <pad> and <unk> at ids 0 and 1 and drops repeats,
    // whatever the list says; any other list would give word ids that miss
    // or run past the embedding rows.
    let vocab = meta.vocab();
    if let Some(i) = (0..meta.vocab.len()).find(|&i| vocab.words().get(i) != meta.vocab.get(i)) {
        return Err(format!(
            "vocabulary word {i} is {:?}, expected {:?} (the list starts with <pad>, <unk> and holds no repeats)",
            meta.vocab[i],
            vocab.words().get(i).map_or("nothing", String::as_str)
        ));
    }
    // `tag` decodes with `tagset()`, rebuilt from the B- tags: the stored
    // list must be what it rebuilds, and the class count must match it,
    // or score rows and tag names would not line up.
    let tagset = meta.tagset();
    if tagset.tags() != meta.tags.as_slice() {
        return Err(format!(
            "tags {:?}, expected O then B-X, I-X for each type X, as in {:?}",
            meta.tags,
            tagset.tags()
        ));
    }
    let classes = match meta.options.binary {
        Some(_) => 1,
        None => tagset.len(),
    };
    if c.classes != classes {
        return Err(format!(
            "config has {} classes, expected {classes} from the tags {:?}",
            c.classes, meta.tags
        ));
    }
    if meta.options.half_window > MAX_HALF_WINDOW {
        return Err(format!(
            "half_window {}, expected at most {MAX_HALF_WINDOW}",
            meta.options.half_window
        ));
    }
    let window = meta.options.half_window.checked_mul(2).map(|w| w + 1);
    if window != Some(c.window) {
        return Err(format!(
            "config window {} does not match half_window {} (expected 2·half_window + 1)",
            c.window, meta.options.half_window
        ));
    }
    if !matches!(c.cap_classes, 0 | N_CAPS) {
        return Err(format!(
            "config has {} capitalization classes, expected 0 or {N_CAPS}",
            c.cap_classes
        ));
    }
    if c.hidden.contains(&0) {
        return Err(format!(
            "config hidden sizes {:?}, expected no zero",
            c.hidden
        ));
    }
    // Building the net allocates what the config says; a tampered config
    // must not make it allocate (or overflow computing) far more than the
    // weights file holds. The slack lets a small shortfall through, so that
    // the tensor checks name the missing or misshapen tensor.
    const SLACK: usize = 1 << 20;
    match param_count(c) {
        Some(n) if n <= stored_values.saturating_add(SLACK) => Ok(()),
        n => Err(format!(
            "config implies {} parameters but the weights file holds only {stored_values} values; \
             expected weights that fill the config",
            n.map_or("too many".to_string(), |n| n.to_string())
        )),
    }
}

/// Checks that the network's feature tables are those its options and
/// gazetteer make the windows for, so that ids and tables line up.
fn check_features(meta: &Meta) -> std::result::Result<(), String> {
    let lists = meta.lists().map_err(|e| e.to_string())?;
    let want = feature_specs(&meta.options, &extras(&meta.options, &lists));
    if meta.config.features != want {
        return Err(format!(
            "config features {:?}, but the options and gazetteer give {want:?}",
            meta.config.features
        ));
    }
    Ok(())
}

/// The number of values in a `WindowNet` built from `c` (mirrors
/// `WindowNet::new`), or `None` on overflow.
fn param_count(c: &WindowNetConfig) -> Option<usize> {
    let caps = c.cap_classes > 0;
    let mut n = c.vocab.checked_mul(c.dim)?;
    if caps {
        n = n.checked_add(c.cap_classes.checked_mul(c.cap_dim)?)?;
    }
    let mut side = if caps { c.cap_dim } else { 0 };
    for f in &c.features {
        n = n.checked_add(f.classes.checked_mul(f.dim)?)?;
        // FeatureSpec::side_dim, with every product checked.
        let per_word = match f.conv {
            Some(cv) => {
                let w = cv.width.checked_mul(f.dim)?.checked_mul(cv.filters)?;
                n = n.checked_add(w)?.checked_add(cv.filters)?;
                cv.filters
            }
            None => f.count.checked_mul(f.dim)?,
        };
        side = side.checked_add(per_word)?;
    }
    let mut fan_in = c.window.checked_mul(c.dim)?;
    let cap_in = c.window.checked_mul(side)?;
    for (l, &h) in c.hidden.iter().enumerate() {
        let rows = if l == 0 && c.has_side() {
            fan_in.checked_add(cap_in)?
        } else {
            fan_in
        };
        n = n.checked_add(rows.checked_mul(h)?)?.checked_add(h)?;
        fan_in = h;
    }
    n.checked_add(fan_in.checked_mul(c.classes)?)?
        .checked_add(c.classes)
}

/// Replaces the parameters (in `params` order).
pub fn set_params(model: &mut NerModel, params: Vec<Tensor>) -> Result<()> {
    let mut it = params.into_iter();
    let mut next = || {
        it.next()
            .ok_or_else(|| Error::Other("set_params: too few tensors".into()))
    };
    let net = &mut model.net;
    net.embeddings = next()?;
    if net.cap_embeddings.is_some() {
        net.cap_embeddings = Some(next()?);
    }
    for f in &mut net.feature_embeddings {
        *f = next()?;
    }
    for (w, b) in net.feature_convs.iter_mut().flatten() {
        *w = next()?;
        *b = next()?;
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
    if let Some(c) = &mut model.crf {
        c.transitions = next()?;
        c.start = next()?;
        c.end = next()?;
    }
    Ok(())
}
