//! The window classifier of the lecture: the word vectors of a window
//! (x = Le, concatenated), hidden layers h = f(Wx + b), and a softmax (or a
//! single logistic unit) on top. Word vectors are parameters too.

use rand::Rng;
use rand::rngs::StdRng;

use crate::device::Device;
use crate::dtype::{DType, HostData};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The hidden layers' non-linearity f.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// tanh (the lecture's choice and the default).
    Tanh,
    /// max(z, 0).
    Relu,
    /// The logistic function σ(z) = 1/(1 + e⁻ᶻ).
    Logistic,
}

impl Activation {
    /// f(z), element-wise; its gradient is the op's (see [`Tensor::tanh`],
    /// [`Tensor::relu`], [`Tensor::sigmoid`]).
    pub fn apply(self, z: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Tanh => z.tanh(),
            Activation::Relu => z.relu(),
            Activation::Logistic => z.sigmoid(),
        }
    }
    /// `"tanh"`, `"relu"`, or `"logistic"` (also `"sigmoid"`); anything
    /// else is an [`Error::Invalid`].
    pub fn parse(s: &str) -> Result<Activation> {
        match s {
            "tanh" => Ok(Activation::Tanh),
            "relu" => Ok(Activation::Relu),
            "logistic" | "sigmoid" => Ok(Activation::Logistic),
            o => Err(Error::invalid(
                "activation",
                format!("expected tanh, relu or logistic, got {o:?}"),
            )),
        }
    }
}

/// The window classifier's sizes. Saved with a model (serde), so that it
/// can be rebuilt.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WindowNetConfig {
    /// Rows of the word-vector table (word ids are `< vocab`).
    pub vocab: usize,
    /// Word-vector dimension.
    pub dim: usize,
    /// Words per window (5 for a ±2 window).
    pub window: usize,
    /// Number of capitalization classes (0: no capitalization feature).
    pub cap_classes: usize,
    /// Dimension of a capitalization feature vector.
    pub cap_dim: usize,
    /// Units per hidden layer, first layer first (empty: a linear model on
    /// the window vector).
    pub hidden: Vec<usize>,
    /// Number of output classes (tags).
    pub classes: usize,
    /// The hidden layers' non-linearity.
    pub activation: Activation,
    /// More categorical features per word, each read through its own
    /// learned table (word shape, affixes, gazetteer matches, …); empty for
    /// the lecture's model.
    #[serde(default)]
    pub features: Vec<FeatureSpec>,
}

/// One extra categorical feature table of a [`WindowNet`]: each word of a
/// window carries `count` ids into a `[classes, dim]` table (several ids
/// when one table serves several slots, e.g. prefixes of lengths 1–4), and
/// their `count · dim` values join the first layer's input beside the
/// capitalization vectors.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeatureSpec {
    /// Rows of the table (ids are `< classes`).
    pub classes: usize,
    /// Values per id.
    pub dim: usize,
    /// Ids per word.
    pub count: usize,
    /// Read the word's `count` vectors as a sequence through a
    /// convolution, max-pooled over positions (a character CNN, dos
    /// Santos and Zadrozny 2014), instead of concatenating them.
    #[serde(default)]
    pub conv: Option<ConvSpec>,
}

/// A 1-D convolution over one word's sequence of feature vectors, then the
/// maximum over positions and tanh: `filters` values per word, whatever
/// its length.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConvSpec {
    /// Positions each filter reads (≤ the feature's `count`).
    pub width: usize,
    /// Filters, i.e. values per word.
    pub filters: usize,
}

impl FeatureSpec {
    /// Values per word this feature adds to the side input.
    pub fn side_dim(&self) -> usize {
        match self.conv {
            Some(c) => c.filters,
            None => self.count * self.dim,
        }
    }
}

impl WindowNetConfig {
    /// Values per word that enter the first layer through `W1_cap`: the
    /// capitalization vector and every extra feature's vectors.
    pub fn side_dim(&self) -> usize {
        let caps = if self.cap_classes > 0 {
            self.cap_dim
        } else {
            0
        };
        caps + self
            .features
            .iter()
            .map(FeatureSpec::side_dim)
            .sum::<usize>()
    }

    /// Whether the first layer has a side input (capitalization or extra
    /// features) and so a `W1_cap` matrix.
    pub fn has_side(&self) -> bool {
        self.cap_classes > 0 || !self.features.is_empty()
    }
}

/// The model's parameters.
pub struct WindowNet {
    /// The sizes it was built with.
    pub config: WindowNetConfig,
    /// The `[vocab, dim]` word vectors L.
    pub embeddings: Tensor,
    /// The `[cap_classes, cap_dim]` capitalization vectors, when
    /// `config.cap_classes > 0`.
    pub cap_embeddings: Option<Tensor>,
    /// The extra feature tables, `[classes, dim]` each, in
    /// `config.features` order.
    pub feature_embeddings: Vec<Tensor>,
    /// Per extra feature with a convolution, its `[width · dim, filters]`
    /// weights and `[filters]` bias (`None` for the others).
    pub feature_convs: Vec<Option<(Tensor, Tensor)>>,
    /// Per hidden layer: the weights reading the word vectors, the weights
    /// reading the side input — capitalization and extra feature vectors —
    /// (first layer only), and the bias.
    /// Splitting W over the two inputs is W·[x; c] = W_x·x + W_c·c: the
    /// concatenation without a copy.
    /// Shapes: `[in, h]`, `[window · side_dim, h]`, `[h]`, where `in` is
    /// `window · dim` for the first layer and the previous layer's width
    /// after.
    pub layers: Vec<(Tensor, Option<Tensor>, Tensor)>,
    /// The `[last hidden width, classes]` output weights U.
    pub out_w: Tensor,
    /// The `[classes]` output bias.
    pub out_b: Tensor,
}

/// One batch of windows, as the model reads it.
pub struct Batch {
    /// `[batch · window]` word ids.
    pub words: Tensor,
    /// `[batch · window]` capitalization classes (when the model uses them).
    pub caps: Option<Tensor>,
    /// Per extra feature of the model, `[batch · window · count]` ids, word
    /// by word (empty for a model without extra features).
    pub features: Vec<Tensor>,
    /// `[batch]` class labels.
    pub labels: Tensor,
    /// Number of windows in the batch.
    pub size: usize,
}

impl WindowNet {
    /// Xavier-uniform weights, zero biases, word and capitalization vectors
    /// uniform in ±0.1; every parameter requires grad and carries a label
    /// (`embeddings`, `W1`, `b1`, …, `U`, `b_out`). An [`Error::Invalid`]
    /// when `vocab`, `dim`, `window` or `classes` is 0.
    pub fn new(
        config: WindowNetConfig,
        dtype: DType,
        device: &Device,
        rng: &mut StdRng,
    ) -> Result<WindowNet> {
        if config.window == 0 || config.dim == 0 || config.classes == 0 || config.vocab == 0 {
            return Err(Error::invalid(
                "WindowNet",
                format!("degenerate config {config:?}"),
            ));
        }
        let embeddings =
            Tensor::rand_uniform(&[config.vocab, config.dim], -0.1, 0.1, dtype, device, rng)?
                .requires_grad()
                .with_label("embeddings");
        let cap_embeddings = if config.cap_classes > 0 {
            Some(
                Tensor::rand_uniform(
                    &[config.cap_classes, config.cap_dim],
                    -0.1,
                    0.1,
                    dtype,
                    device,
                    rng,
                )?
                .requires_grad()
                .with_label("cap_embeddings"),
            )
        } else {
            None
        };
        let mut feature_embeddings = Vec::new();
        let mut feature_convs = Vec::new();
        for (i, f) in config.features.iter().enumerate() {
            let bad_conv = f
                .conv
                .is_some_and(|c| c.width == 0 || c.width > f.count || c.filters == 0);
            if f.classes == 0 || f.dim == 0 || f.count == 0 || bad_conv {
                return Err(Error::invalid(
                    "WindowNet",
                    format!("feature {i} is degenerate: {f:?}"),
                ));
            }
            feature_embeddings.push(
                Tensor::rand_uniform(&[f.classes, f.dim], -0.1, 0.1, dtype, device, rng)?
                    .requires_grad()
                    .with_label(&format!("feature{i}_embeddings")),
            );
            // Drawn only for a convolution, so that a model without one
            // draws the same weights as before convolutions existed.
            feature_convs.push(match f.conv {
                Some(c) => {
                    let fan_in = c.width * f.dim;
                    let w = xavier(fan_in, c.filters, fan_in, dtype, device, rng)?
                        .with_label(&format!("feature{i}_conv_w"));
                    let b = zeros(&[c.filters], dtype, device)?
                        .with_label(&format!("feature{i}_conv_b"));
                    Some((w, b))
                }
                None => None,
            });
        }
        let mut layers = Vec::new();
        let mut fan_in = config.window * config.dim;
        let cap_in = config.window * config.side_dim();
        let side = config.has_side();
        for (l, &h) in config.hidden.iter().enumerate() {
            let total_in = fan_in + if l == 0 && side { cap_in } else { 0 };
            let w =
                xavier(total_in, h, fan_in, dtype, device, rng)?.with_label(&format!("W{}", l + 1));
            let wc = if l == 0 && side {
                Some(xavier(total_in, h, cap_in, dtype, device, rng)?.with_label("W1_cap"))
            } else {
                None
            };
            let b = zeros(&[h], dtype, device)?.with_label(&format!("b{}", l + 1));
            layers.push((w, wc, b));
            fan_in = h;
        }
        let out_w = xavier(fan_in, config.classes, fan_in, dtype, device, rng)?.with_label("U");
        let out_b = zeros(&[config.classes], dtype, device)?.with_label("b_out");
        Ok(WindowNet {
            config,
            embeddings,
            cap_embeddings,
            feature_embeddings,
            feature_convs,
            layers,
            out_w,
            out_b,
        })
    }

    /// All parameters, in a fixed order (checkpoints rely on it).
    pub fn params(&self) -> Vec<Tensor> {
        let mut p = vec![self.embeddings.clone()];
        p.extend(self.cap_embeddings.clone());
        p.extend(self.feature_embeddings.iter().cloned());
        for (w, b) in self.feature_convs.iter().flatten() {
            p.push(w.clone());
            p.push(b.clone());
        }
        for (w, wc, b) in &self.layers {
            p.push(w.clone());
            p.extend(wc.clone());
            p.push(b.clone());
        }
        p.push(self.out_w.clone());
        p.push(self.out_b.clone());
        p
    }

    /// `[batch, classes]` scores. `dropout` zeroes hidden units with
    /// probability p during training (inverted dropout). A shape error
    /// when `batch.words` does not hold `size · window` ids; an error when
    /// the model has capitalization vectors and the batch no `caps`.
    pub fn logits(&self, batch: &Batch, mut dropout: Option<(f64, &mut StdRng)>) -> Result<Tensor> {
        let (b, w) = (batch.size, self.config.window);
        if batch.words.numel() != b * w {
            return Err(Error::shape_detail(
                "WindowNet::logits",
                batch.words.shape(),
                &[b * w],
                "expected batch·window word ids",
            ));
        }
        let x = self
            .embeddings
            .gather_rows(&batch.words)?
            .reshape(&[b, w * self.config.dim])?;
        let mut h = x;
        for (wt, wc, bias) in &self.layers {
            let mut z = h.matmul(wt)?;
            if let Some(wc) = wc {
                z = z.add(&self.side_input(batch)?.matmul(wc)?)?;
            }
            h = self.config.activation.apply(&z.add(bias)?)?;
            if let Some((p, rng)) = dropout.as_mut() {
                h = h.mul(&dropout_mask(h.shape(), *p, h.dtype(), &h.device(), rng)?)?;
            }
        }
        h.linear(&self.out_w, &self.out_b)
    }

    /// The `[batch, window · side_dim]` side input: per word its
    /// capitalization vector, then each extra feature's `count` vectors,
    /// concatenated. An error when the batch lacks ids the model reads.
    fn side_input(&self, batch: &Batch) -> Result<Tensor> {
        const OP: &str = "WindowNet::logits";
        let words = batch.size * self.config.window;
        let mut parts = Vec::new();
        if let Some(ce) = &self.cap_embeddings {
            let caps = batch
                .caps
                .as_ref()
                .ok_or_else(|| Error::invalid(OP, "model needs capitalization ids"))?;
            parts.push(
                ce.gather_rows(caps)?
                    .reshape(&[words, self.config.cap_dim])?,
            );
        }
        if batch.features.len() != self.feature_embeddings.len() {
            return Err(Error::invalid(
                OP,
                format!(
                    "model reads {} extra features, the batch has {}",
                    self.feature_embeddings.len(),
                    batch.features.len()
                ),
            ));
        }
        for (((table, ids), f), conv) in self
            .feature_embeddings
            .iter()
            .zip(&batch.features)
            .zip(&self.config.features)
            .zip(&self.feature_convs)
        {
            if ids.numel() != words * f.count {
                return Err(Error::shape_detail(
                    OP,
                    ids.shape(),
                    &[words * f.count],
                    "expected batch·window·count feature ids",
                ));
            }
            let vectors = table.gather_rows(ids)?;
            parts.push(match (f.conv, conv) {
                (Some(spec), Some((w, b))) => conv_max(&vectors, words, f, spec, w, b)?,
                (None, None) => vectors.reshape(&[words, f.count * f.dim])?,
                _ => {
                    return Err(Error::invalid(
                        OP,
                        "a feature's convolution and its weights disagree (config against feature_convs)",
                    ));
                }
            });
        }
        let refs: Vec<&Tensor> = parts.iter().collect();
        let side = if refs.len() == 1 {
            parts[0].clone()
        } else {
            Tensor::concat(&refs, 1)?
        };
        side.reshape(&[batch.size, self.config.window * self.config.side_dim()])
    }

    /// Mean softmax cross-entropy of the batch.
    pub fn loss(&self, batch: &Batch, dropout: Option<(f64, &mut StdRng)>) -> Result<Tensor> {
        self.logits(batch, dropout)?
            .softmax_cross_entropy(&batch.labels)
    }
}

/// The convolution of each word's `count` vectors (`[words · count, dim]`,
/// word by word) with `w` and `b`, max-pooled over the `count − width + 1`
/// positions, through tanh: `[words, filters]`. The unfolding into
/// windows of `width` positions is `width` shifted views, concatenated.
fn conv_max(
    vectors: &Tensor,
    words: usize,
    f: &FeatureSpec,
    spec: ConvSpec,
    w: &Tensor,
    b: &Tensor,
) -> Result<Tensor> {
    let positions = f.count + 1 - spec.width;
    let seq = vectors.reshape(&[words, f.count, f.dim])?;
    let shifted: Vec<Tensor> = (0..spec.width)
        .map(|j| seq.narrow(1, j, positions))
        .collect::<Result<_>>()?;
    let refs: Vec<&Tensor> = shifted.iter().collect();
    Tensor::concat(&refs, 2)?
        .reshape(&[words * positions, spec.width * f.dim])?
        .linear(w, b)?
        .reshape(&[words, positions, spec.filters])?
        .max_axis(1)?
        .tanh()
}

fn zeros(shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    let n = shape.iter().product();
    Ok(Tensor::from_host(HostData::from_f64(&vec![0.0; n], dtype), shape, device)?.requires_grad())
}

/// Xavier-uniform over the layer's full fan-in, for the `rows` that one
/// input block contributes.
fn xavier(
    fan_in: usize,
    fan_out: usize,
    rows: usize,
    dtype: DType,
    device: &Device,
    rng: &mut StdRng,
) -> Result<Tensor> {
    let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
    Ok(Tensor::rand_uniform(&[rows, fan_out], -a, a, dtype, device, rng)?.requires_grad())
}

/// An inverted-dropout mask of `shape`: each element is 0 with probability
/// `p`, else 1/(1−p), so that evaluation needs no rescaling. Multiply it
/// into activations (it is data: no gradient of its own). `p` must be in
/// [0, 1).
pub fn dropout_mask(
    shape: &[usize],
    p: f64,
    dtype: DType,
    device: &Device,
    rng: &mut StdRng,
) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::invalid(
            "dropout",
            format!("p must be in [0, 1), got {p}"),
        ));
    }
    let n: usize = shape.iter().product();
    let keep = 1.0 / (1.0 - p);
    let v: Vec<f64> = (0..n)
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
        .collect();
    Tensor::from_host(HostData::from_f64(&v, dtype), shape, device)
}

/// A synthetic batch of `size` windows for benchmarks and tests: uniformly
/// random word ids, capitalization classes (when the config has them) and
/// labels.
pub fn random_batch(
    config: &WindowNetConfig,
    size: usize,
    device: &Device,
    rng: &mut StdRng,
) -> Result<Batch> {
    let words: Vec<u32> = (0..size * config.window)
        .map(|_| rng.random_range(0..config.vocab as u32))
        .collect();
    let labels: Vec<u32> = (0..size)
        .map(|_| rng.random_range(0..config.classes as u32))
        .collect();
    let caps = if config.cap_classes > 0 {
        let c: Vec<u32> = (0..size * config.window)
            .map(|_| rng.random_range(0..config.cap_classes as u32))
            .collect();
        Some(Tensor::ids(c, &[size * config.window], device)?)
    } else {
        None
    };
    let features = config
        .features
        .iter()
        .map(|f| {
            let n = size * config.window * f.count;
            let v: Vec<u32> = (0..n)
                .map(|_| rng.random_range(0..f.classes as u32))
                .collect();
            Tensor::ids(v, &[n], device)
        })
        .collect::<Result<_>>()?;
    Ok(Batch {
        words: Tensor::ids(words, &[size * config.window], device)?,
        caps,
        features,
        labels: Tensor::ids(labels, &[size], device)?,
        size,
    })
}
