//! Training the window NER classifier: minibatch SGD or Adam, learning-rate
//! decay, seeded shuffling, dropout, early stopping on dev F1, the best
//! checkpoint kept, per-epoch metrics and a plot.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;

use serde::{Deserialize, Serialize};

use super::data::{self, Corpus, Features};
use super::eval::{self, Scores};
use super::features::{N_CAPS, TagSet, Vocab};
use super::model_io::{self, Meta};
use deltagrad::Device;
use deltagrad::Tensor;
use deltagrad::model::{Activation, WindowNet, WindowNetConfig};
use deltagrad::{Adam, Sgd};
use deltagrad::{DType, HostData};
use deltagrad::{Error, Result};

/// Hyper-parameters and paths of a training run (also saved in checkpoints).
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct TrainOptions {
    /// Folder with train.txt, valid.txt, test.txt (CoNLL format).
    #[arg(long, default_value = "data/conll2003")]
    pub data: PathBuf,
    /// Do not download CoNLL-2003 when the data folder lacks it.
    #[arg(long)]
    pub no_fetch: bool,
    /// GloVe-format vectors (.txt or .txt.gz); default: the embedded GloVe 6B 50d.
    #[arg(long)]
    pub vectors: Option<PathBuf>,
    /// Where checkpoints, metrics and the plot go.
    #[arg(long, default_value = "runs/ner")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// sgd or adam. With adam the dense layers use lr × 0.02 (so that the
    /// same --lr suits both) and the word vectors keep sparse SGD at lr.
    #[arg(long, default_value = "sgd")]
    pub optimizer: String,
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
    /// lr at epoch e is lr / (1 + decay · e).
    #[arg(long, default_value_t = 0.1)]
    pub lr_decay: f64,
    /// Hidden layer sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "300")]
    pub hidden: Vec<usize>,
    /// tanh, relu or logistic.
    #[arg(long, default_value = "tanh")]
    pub activation: String,
    /// Dropout probability on hidden units.
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    /// Size of the learned capitalization embedding (0: none).
    #[arg(long, default_value_t = 5)]
    pub cap_dim: usize,
    /// Words on each side of the centre word.
    #[arg(long, default_value_t = 2)]
    pub half_window: usize,
    /// Epochs without dev-F1 improvement before stopping.
    #[arg(long, default_value_t = 3)]
    pub patience: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// greedy or viterbi.
    #[arg(long, default_value = "viterbi")]
    pub decode: String,
    /// Train the lecture's binary classifier for one entity type instead
    /// (e.g. LOC): "is the centre word a location?".
    #[arg(long)]
    pub binary: Option<String>,
    /// cpu, gpu or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Use only the first N training sentences (quick runs).
    #[arg(long)]
    pub max_train_sentences: Option<usize>,
    /// Clip the global gradient norm to this value.
    #[arg(long)]
    pub clip_norm: Option<f64>,
    /// Log per-parameter gradient norms every N steps (0: never).
    #[arg(long, default_value_t = 200)]
    pub grad_norm_every: usize,
    /// Continue the run saved in --out (its `last` checkpoint) exactly where
    /// it stopped.
    #[arg(long)]
    pub resume: bool,
    /// No progress bar or per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub dev_precision: f64,
    pub dev_recall: f64,
    pub dev_f1: f64,
    pub seconds: f64,
    pub windows_per_s: f64,
    /// Gradient L2 norm per parameter, at the last logged step of the epoch:
    /// vanishing or exploding gradients show here.
    #[serde(default)]
    pub grad_norms: Vec<(String, f64)>,
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct TrainReport {
    pub best_epoch: usize,
    pub dev: Scores,
    pub test: Scores,
    pub epochs: Vec<EpochMetrics>,
    pub seconds: f64,
    pub device: String,
}

enum Optimizer {
    Sgd(Sgd),
    Adam(Adam),
}

impl Optimizer {
    fn set_lr(&mut self, lr: f64) {
        match self {
            Optimizer::Sgd(o) => o.lr = lr,
            Optimizer::Adam(o) => {
                o.lr = lr * 0.02;
                o.sparse_lr = lr;
            }
        }
    }
    fn step_with(&mut self, outputs: &[&Tensor]) -> Result<()> {
        match self {
            Optimizer::Sgd(o) => o.step_with(outputs),
            Optimizer::Adam(o) => o.step_with(outputs),
        }
    }
}

/// Builds the model for `opts`, with the embedding table set from GloVe.
pub fn build_model(
    opts: &TrainOptions,
    vocab: &Vocab,
    tags: &TagSet,
    device: &Device,
    rng: &mut rand::rngs::StdRng,
) -> Result<WindowNet> {
    let emb = data::load_vectors(opts.vectors.as_deref())?;
    let (matrix, dim) = data::embedding_init(vocab, &emb, rng);
    let config = WindowNetConfig {
        vocab: vocab.len(),
        dim,
        window: 2 * opts.half_window + 1,
        cap_classes: if opts.cap_dim > 0 { N_CAPS } else { 0 },
        cap_dim: opts.cap_dim,
        hidden: opts.hidden.clone(),
        classes: if opts.binary.is_some() { 1 } else { tags.len() },
        activation: Activation::parse(&opts.activation)?,
    };
    let mut net = WindowNet::new(config, DType::F32, device, rng)?;
    net.embeddings = Tensor::from_host(HostData::F32(matrix), &[vocab.len(), dim], device)?
        .requires_grad()
        .with_label("embeddings");
    Ok(net)
}

fn check_options(opts: &TrainOptions) -> Result<()> {
    let bad = |m: String| Err(Error::invalid("train", m));
    if opts.batch == 0 {
        return bad("--batch must be at least 1".into());
    }
    if !(opts.lr > 0.0 && opts.lr.is_finite()) {
        return bad(format!("--lr must be positive, got {}", opts.lr));
    }
    if !matches!(opts.optimizer.as_str(), "sgd" | "adam") {
        return bad(format!(
            "--optimizer must be sgd or adam, got {:?}",
            opts.optimizer
        ));
    }
    if !matches!(opts.decode.as_str(), "greedy" | "viterbi") {
        return bad(format!(
            "--decode must be greedy or viterbi, got {:?}",
            opts.decode
        ));
    }
    if !(0.0..1.0).contains(&opts.dropout) {
        return bad(format!("--dropout must be in [0, 1), got {}", opts.dropout));
    }
    if opts.hidden.is_empty() || opts.hidden.contains(&0) {
        return bad("--hidden needs at least one non-zero layer size".into());
    }
    Activation::parse(&opts.activation)?;
    Ok(())
}

/// Where a run stands: saved with the `last` checkpoint so that `--resume`
/// continues exactly.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    pub epochs_done: usize,
    pub best_f1: f64,
    pub best_epoch: usize,
    pub since_best: usize,
    pub history: Vec<EpochMetrics>,
    pub adam_step: u64,
}

/// The generator of epoch `e`'s shuffle and dropout masks: derived from the
/// seed alone, so that a resumed run draws what an uninterrupted one would.
fn epoch_rng(seed: u64, epoch: usize) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    rand::rngs::StdRng::seed_from_u64(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Names a tensor for error messages.
fn name_of(t: &Tensor, i: usize) -> String {
    t.label().unwrap_or_else(|| format!("param{i}"))
}

/// Parameters holding NaN or Inf, by name.
fn non_finite_params(params: &[Tensor]) -> Result<Vec<String>> {
    let mut bad = Vec::new();
    for (i, p) in params.iter().enumerate() {
        if p.to_vec_f32()?.iter().any(|v| !v.is_finite()) {
            bad.push(name_of(p, i));
        }
    }
    Ok(bad)
}

/// Trains, keeps the best checkpoint (by dev F1) in `opts.out`, and scores
/// it on dev and test. After every epoch the whole state is saved as the
/// `last` checkpoint, which `--resume` continues from.
pub fn train(opts: &TrainOptions) -> Result<TrainReport> {
    check_options(opts)?;
    let start = Instant::now();
    let device = Device::parse(&opts.device)?;
    let mut corpus: Corpus = data::load_corpus(&opts.data, !opts.no_fetch)?;
    if let Some(n) = opts.max_train_sentences {
        corpus.train.truncate(n);
    }
    let emb = data::load_vectors(opts.vectors.as_deref())?;
    let mut vocab = Vocab::from_embeddings(&emb);
    vocab.extend_from_sentences(&corpus.train, 1);
    drop(emb);
    let tags = TagSet::from_sentences(&corpus.train)?;
    let binary = match &opts.binary {
        Some(t) if !tags.tags().iter().any(|x| x.ends_with(&format!("-{t}"))) => {
            return Err(Error::invalid(
                "train",
                format!("--binary {t}: no such entity type in the training data"),
            ));
        }
        other => other.clone(),
    };
    let feats: Features = data::features(&corpus, &vocab, &tags, opts.half_window)?;
    let mut init_rng = Tensor::rng(opts.seed);
    let mut net = build_model(opts, &vocab, &tags, &device, &mut init_rng)?;
    let mut progress = Progress {
        best_f1: -1.0,
        ..Progress::default()
    };
    let mut adam_state = None;
    if opts.resume {
        let (loaded, meta, mut rest) = model_io::load_with(&opts.out, "last", &device)?;
        if meta.config != net.config || meta.vocab != vocab.words() {
            return Err(Error::invalid(
                "train --resume",
                "the saved run was trained with other data or settings",
            ));
        }
        net = loaded;
        progress = meta.progress.unwrap_or_default();
        if opts.optimizer == "adam" {
            adam_state = Some(model_io::take_moments(&mut rest, &net)?);
        }
    }
    let mut optimizer = match opts.optimizer.as_str() {
        "adam" => {
            let mut a = Adam::new(net.params(), opts.lr)?;
            if let Some((m, v)) = adam_state {
                a.set_state(progress.adam_step, m, v)?;
            }
            a.clip_norm = opts.clip_norm;
            Optimizer::Adam(a)
        }
        _ => {
            let mut o = Sgd::new(net.params(), opts.lr);
            o.clip_norm = opts.clip_norm;
            Optimizer::Sgd(o)
        }
    };
    let label_map = eval::label_map(&tags, binary.as_deref());
    let score = |net: &WindowNet, w, s: &[_]| {
        eval::score(net, w, s, &tags, binary.as_deref(), &opts.decode, &device)
    };
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| Error::io(format!("creating {}", opts.out.display()), e))?;
    let metrics_path = opts.out.join("metrics.jsonl");
    let mut metrics_file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(opts.resume)
        .truncate(!opts.resume)
        .open(&metrics_path)
        .map_err(|e| Error::io(format!("opening {}", metrics_path.display()), e))?;
    let n = feats.train.n_tokens;
    let meta = Meta::new(opts, &net, &vocab, &tags);
    let names: Vec<String> = net
        .params()
        .iter()
        .enumerate()
        .map(|(i, p)| name_of(p, i))
        .collect();
    if !opts.quiet {
        eprintln!(
            "training on {device}: {} train windows, vocab {}, {} tags, hidden {:?}",
            n,
            vocab.len(),
            tags.len(),
            opts.hidden
        );
    }
    for epoch in progress.epochs_done..opts.epochs {
        if progress.since_best >= opts.patience.max(1) {
            break;
        }
        let t0 = Instant::now();
        let lr = opts.lr / (1.0 + opts.lr_decay * epoch as f64);
        optimizer.set_lr(lr);
        let mut rng = epoch_rng(opts.seed, epoch);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let bar = progress_bar(n as u64, epoch, opts.quiet);
        let (mut loss_sum, mut loss_n) = (0.0f64, 0usize);
        let mut grad_norms = Vec::new();
        for (step, idx) in order.chunks(opts.batch).enumerate() {
            let b = data::batch(&feats.train, idx, &label_map, &device)?;
            let dropout = (opts.dropout > 0.0).then_some((opts.dropout, &mut rng));
            let loss = eval::loss(&net, &b, binary.is_some(), dropout)?;
            loss.backward()?;
            let log_norms = opts.grad_norm_every > 0 && step % opts.grad_norm_every == 0;
            let norms: Vec<Tensor> = if log_norms {
                deltagrad::graph::no_grad(|| {
                    net.params()
                        .iter()
                        .filter_map(|p| p.grad())
                        .map(|g| deltagrad::optim::grad_norm(&g))
                        .collect::<Result<_>>()
                })?
            } else {
                vec![]
            };
            let mut outputs = vec![&loss];
            outputs.extend(norms.iter());
            optimizer.step_with(&outputs)?;
            let l = loss.item()?;
            if !l.is_finite() {
                let bad = non_finite_params(&net.params())?;
                return Err(Error::Other(format!(
                    "training stopped: loss is {l} at epoch {}, step {step} (lr {lr}); \
                     non-finite parameters: {bad:?}; try a smaller --lr or --clip-norm",
                    epoch + 1
                )));
            }
            if log_norms {
                grad_norms.clear();
                for (name, t) in names.iter().zip(&norms) {
                    let v = t.item()?;
                    if !v.is_finite() {
                        return Err(Error::Other(format!(
                            "training stopped: gradient of {name} is {v} at epoch {}, step {step}",
                            epoch + 1
                        )));
                    }
                    grad_norms.push((name.clone(), v));
                }
            }
            loss_sum += l * idx.len() as f64;
            loss_n += idx.len();
            bar.inc(idx.len() as u64);
            if step % 20 == 0 {
                let rate = bar.position() as f64 / t0.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!(
                    "loss {:.4}  {:.0} windows/s",
                    loss_sum / loss_n as f64,
                    rate
                ));
            }
        }
        bar.finish_and_clear();
        let train_secs = t0.elapsed().as_secs_f64();
        let dev = score(&net, &feats.valid, &corpus.valid)?;
        let m = EpochMetrics {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / loss_n.max(1) as f64,
            dev_precision: dev.precision,
            dev_recall: dev.recall,
            dev_f1: dev.f1,
            seconds: t0.elapsed().as_secs_f64(),
            windows_per_s: n as f64 / train_secs.max(1e-9),
            grad_norms,
        };
        let line = serde_json::to_string(&m).map_err(|e| Error::Other(e.to_string()))?;
        writeln!(metrics_file, "{line}").map_err(|e| Error::io("writing metrics", e))?;
        if !opts.quiet {
            eprintln!(
                "epoch {:>2}  loss {:.4}  dev P {:.2} R {:.2} F1 {:.2}  {:.1}s  {:.0} windows/s",
                m.epoch,
                m.train_loss,
                m.dev_precision,
                m.dev_recall,
                m.dev_f1,
                m.seconds,
                m.windows_per_s
            );
        }
        progress.history.push(m);
        progress.epochs_done = epoch + 1;
        if dev.f1 > progress.best_f1 {
            progress.best_f1 = dev.f1;
            progress.best_epoch = epoch + 1;
            progress.since_best = 0;
            model_io::save(&opts.out, "best", &net, &meta.at_epoch(epoch + 1, dev.f1))?;
        } else {
            progress.since_best += 1;
            if progress.since_best >= opts.patience.max(1) && !opts.quiet {
                eprintln!("no dev improvement for {} epochs: stopping", opts.patience);
            }
        }
        let moments = match &optimizer {
            Optimizer::Adam(a) => {
                let (t, m, v) = a.state();
                progress.adam_step = t;
                model_io::moment_tensors(&names, m, v)
            }
            Optimizer::Sgd(_) => vec![],
        };
        let mut last = meta.at_epoch(epoch + 1, dev.f1);
        last.progress = Some(progress.clone());
        model_io::save_with(&opts.out, "last", &net, &last, &moments)?;
    }
    if let Err(e) = super::plot::write(&opts.out.join("training.png"), &progress.history) {
        eprintln!("warning: no plot written: {e}");
    }
    let (best, _) = model_io::load(&opts.out, "best", &device)?;
    let dev = score(&best, &feats.valid, &corpus.valid)?;
    let test = score(&best, &feats.test, &corpus.test)?;
    Ok(TrainReport {
        best_epoch: progress.best_epoch,
        dev,
        test,
        epochs: progress.history,
        seconds: start.elapsed().as_secs_f64(),
        device: device.to_string(),
    })
}

fn progress_bar(len: u64, epoch: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("epoch {prefix:>2} [{bar:30}] {pos}/{len} {msg} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(format!("{}", epoch + 1));
    bar
}
