//! Training the window NER classifier: minibatch SGD or Adam, learning-rate
//! decay, seeded shuffling, dropout, early stopping on dev F1, the best
//! checkpoint kept, per-epoch metrics and a plot.
//!
//! [`train`] runs the steps in order: `Setup::prepare` (data, vocabulary,
//! features), `start_or_resume` (model, optimizer, progress), then per
//! epoch `run_epoch` (a pass over the shuffled training windows, then dev
//! scoring), `log_epoch` and `keep_checkpoints`, and at the end the plot
//! and the best model's dev and test scores.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use deltagrad::model::{Activation, WindowNet, WindowNetConfig};
use deltagrad::schedule;
use deltagrad::{Adam, DType, Device, Error, HostData, Result, Sgd, Tensor, no_grad};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::conll::Sentence;
use crate::data::{self, Corpus, Features};
use crate::eval::{self, Scores};
use crate::features::{N_CAPS, TagSet, Vocab, Windows};
use crate::gazetteer::Gazetteer;
use crate::glove::{self, Embeddings};
use crate::model_io::{self, Lists, Meta};
use crate::namelists;
use crate::net::{Crf, NerModel};
use crate::options::{EpochMetrics, Progress, TrainOptions};
use crate::plot;
use crate::rundir::{self, RunDir};

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct TrainReport {
    pub best_epoch: usize,
    pub dev: Scores,
    pub test: Scores,
    pub epochs: Vec<EpochMetrics>,
    pub seconds: f64,
    pub device: String,
    /// Plans the scheduler compiled during the run (training steps of
    /// every bucket, scoring).
    pub plans: u64,
}

/// Trains, keeps the best checkpoint (by dev F1) in `opts.out`, and scores
/// it on dev and test. After every epoch the whole state is saved as the
/// `last` checkpoint, which `--resume` continues from. The run writes into
/// `opts.out/unfinished/` and replaces the folder's files only when it
/// finishes (see `rundir`); a folder holding a model needs `--force` or
/// `--resume`.
pub fn train(opts: &TrainOptions) -> Result<TrainReport> {
    let start = Instant::now();
    let plans_before = schedule::thread_stats().misses;
    let opts = &opts.with_absolute_paths();
    RunDir::check(opts)?;
    let (setup, emb) = Setup::prepare(opts)?;
    let run = RunDir::start(opts)?;
    let (net, mut optimizer, mut progress) = start_or_resume(opts, &setup, &emb, &run)?;
    drop(emb);
    let mut metrics = open_metrics(run.work(), opts.resume, progress.epochs_done)?;
    let meta = Meta::new(opts, &net, &setup.vocab, &setup.tags, &setup.lists);
    let names = model_io::param_names(&net);
    if !opts.quiet {
        let external = match setup.lists.lexicon.len() {
            0 => String::new(),
            n => format!(", {n} names in external lists"),
        };
        eprintln!(
            "training on {}: model {}, {} train windows, vocab {}, {} tags, hidden {:?}, \
             {} gazetteer names{external}",
            setup.device,
            opts.model,
            setup.feats.train.n_tokens,
            setup.vocab.len(),
            setup.tags.len(),
            opts.hidden,
            setup.lists.gazetteer.len(),
        );
    }
    for epoch in progress.epochs_done..opts.epochs {
        if progress.since_best >= opts.patience.max(1) {
            break;
        }
        let m = run_epoch(opts, &setup, &net, &mut optimizer, epoch, &names)?;
        log_epoch(&mut metrics, &m, opts.quiet)?;
        let dir = run.work();
        keep_checkpoints(opts, dir, &net, &optimizer, &meta, &names, &mut progress, m)?;
    }
    if let Err(e) = plot::write(&run.work().join("training.png"), &progress.history) {
        eprintln!("warning: no plot written: {e}");
    }
    let (best, _) = model_io::load(run.best_dir(), "best", &setup.device)?;
    let report = TrainReport {
        best_epoch: progress.best_epoch,
        dev: setup.score(&best, &setup.feats.valid, &setup.corpus.valid)?,
        test: setup.score(&best, &setup.feats.test, &setup.corpus.test)?,
        epochs: progress.history,
        seconds: start.elapsed().as_secs_f64(),
        device: setup.device.to_string(),
        plans: schedule::thread_stats().misses - plans_before,
    };
    run.commit()?;
    Ok(report)
}

/// Everything a run reads, prepared once.
struct Setup {
    device: Device,
    corpus: Corpus,
    vocab: Vocab,
    tags: TagSet,
    feats: Features,
    /// The entity type of a `--binary` run.
    binary: Option<String>,
    /// The name lists of the gazetteer and lexicon features (empty when
    /// unused).
    lists: Lists,
    /// Where each training sentence's windows start.
    offsets: Vec<usize>,
    /// Tag id → the class the model predicts (see `eval::label_map`).
    label_map: Box<dyn Fn(u32) -> u32>,
    decode: String,
}

impl Setup {
    /// Checks the options, then reads the corpus (fetching it if allowed),
    /// builds the vocabulary (the vectors' words plus the training words),
    /// the tag set and every split's windows. Also returns the word vectors,
    /// which the model's embedding table starts from.
    fn prepare(opts: &TrainOptions) -> Result<(Setup, Embeddings)> {
        opts.check()?;
        let device = Device::parse(&opts.device)?;
        let mut corpus = data::load_corpus(&opts.data, !opts.no_fetch)?;
        if let Some(n) = opts.max_train_sentences {
            corpus.train.truncate(n);
        }
        let emb = glove::load_vectors(opts.vectors.as_deref())?;
        let mut vocab = Vocab::from_embeddings(&emb);
        vocab.extend_from_sentences(&corpus.train, 1);
        let tags = TagSet::from_sentences(&corpus.train)?;
        if let Some(t) = &opts.binary
            && !tags.tags().iter().any(|x| x.ends_with(&format!("-{t}")))
        {
            return Err(Error::invalid(
                "train",
                format!("--binary {t}: no such entity type in the training data"),
            ));
        }
        if opts.crf() {
            check_buckets(&opts.data, &corpus.train)?;
        }
        let types: Vec<String> = tags
            .tags()
            .iter()
            .filter_map(|t| t.strip_prefix("B-").map(str::to_string))
            .collect();
        let gazetteer = match &opts.gazetteer {
            Some(path) if opts.extra_dims().gazetteer > 0 => Gazetteer::read(path, &types)?,
            _ => Gazetteer::from_sentences(&types, &corpus.train),
        };
        let lexicon = if opts.extra_dims().lexicon > 0 {
            namelists::load(opts.lexicon.as_deref(), !opts.no_fetch)?
        } else {
            Gazetteer::new(&namelists::LISTS)
        };
        let lists = Lists { gazetteer, lexicon };
        let extras = model_io::extras(opts, &lists);
        let from_train = opts.gazetteer.is_none();
        let feats = data::features(
            &corpus,
            &vocab,
            &tags,
            opts.half_window,
            &extras,
            from_train,
        )?;
        let setup = Setup {
            device,
            offsets: data::sentence_offsets(&feats.train),
            lists,
            label_map: eval::label_map(&tags, opts.binary.as_deref()),
            corpus,
            vocab,
            tags,
            feats,
            binary: opts.binary.clone(),
            decode: opts.decode.clone(),
        };
        Ok((setup, emb))
    }

    /// Precision, recall and F1 of `net` on one split, decoded as the run
    /// decodes.
    fn score(&self, net: &NerModel, w: &Windows, sentences: &[Sentence]) -> Result<Scores> {
        eval::score(
            net,
            w,
            sentences,
            &self.tags,
            self.binary.as_deref(),
            &self.decode,
            &self.device,
        )
    }
}

/// Refuses a training sentence longer than the sentence-level model's
/// longest bucket, naming the file and the line the sentence starts on.
fn check_buckets(data: &Path, train: &[Sentence]) -> Result<()> {
    let Some(i) = train
        .iter()
        .position(|s| data::bucket_of(s.len()).is_none())
    else {
        return Ok(());
    };
    let path = data.join("train.txt");
    let line = crate::conll::read_conll_lines(&path)
        .ok()
        .and_then(|(_, lines)| lines.get(i).copied())
        .unwrap_or(0);
    Err(Error::Parse {
        file: path.display().to_string(),
        line,
        msg: format!(
            "a sentence of {} tokens: the sentence-level model pads sentences to at most {} \
             (split it, or train --model softmax)",
            train[i].len(),
            data::BUCKETS[data::BUCKETS.len() - 1]
        ),
    })
}

/// Builds the model for `opts`, with the embedding table set from `emb`
/// (GloVe rows for the words it has, small random rows for the others)
/// and the extra feature tables `setup`'s windows carry.
fn build_model(
    opts: &TrainOptions,
    setup: &Setup,
    emb: &Embeddings,
    rng: &mut StdRng,
) -> Result<NerModel> {
    let (vocab, tags, device) = (&setup.vocab, &setup.tags, &setup.device);
    let (matrix, dim) = data::embedding_init(vocab, emb, rng);
    let config = WindowNetConfig {
        vocab: vocab.len(),
        dim,
        window: 2 * opts.half_window + 1,
        cap_classes: if opts.cap_dim > 0 { N_CAPS } else { 0 },
        cap_dim: opts.cap_dim,
        hidden: opts.hidden.clone(),
        classes: if opts.binary.is_some() { 1 } else { tags.len() },
        activation: Activation::parse(&opts.activation)?,
        features: model_io::feature_specs(opts, &model_io::extras(opts, &setup.lists)),
    };
    let mut net = WindowNet::new(config, DType::F32, device, rng)?;
    net.embeddings = Tensor::from_host(HostData::F32(matrix), &[vocab.len(), dim], device)?
        .requires_grad()
        .with_label("embeddings");
    let crf = match opts.crf() {
        true => Some(Crf::zeros(tags.len(), device)?),
        false => None,
    };
    Ok(NerModel { net, crf })
}

/// The optimizer `--optimizer` names.
enum Optimizer {
    Sgd(Sgd),
    Adam(Adam),
}

impl Optimizer {
    fn new(opts: &TrainOptions, net: &NerModel) -> Result<Optimizer> {
        Ok(match opts.optimizer.as_str() {
            "adam" => {
                let mut a = Adam::new(net.params(), opts.lr)?;
                a.clip_norm = opts.clip_norm;
                Optimizer::Adam(a)
            }
            _ => {
                let mut o = Sgd::new(net.params(), opts.lr);
                o.clip_norm = opts.clip_norm;
                Optimizer::Sgd(o)
            }
        })
    }

    /// The learning rate of an epoch. With Adam the dense layers use
    /// `lr × 0.02` and the word vectors keep sparse SGD at `lr`.
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

/// A fresh model (seeded by `--seed`), optimizer and progress; with
/// `--resume`, the `last` checkpoint's model, Adam moments and progress.
fn start_or_resume(
    opts: &TrainOptions,
    setup: &Setup,
    emb: &Embeddings,
    run: &RunDir,
) -> Result<(NerModel, Optimizer, Progress)> {
    let mut init_rng = Tensor::rng(opts.seed);
    let fresh = build_model(opts, setup, emb, &mut init_rng)?;
    if !opts.resume {
        let optimizer = Optimizer::new(opts, &fresh)?;
        let progress = Progress {
            best_f1: -1.0,
            ..Progress::default()
        };
        return Ok((fresh, optimizer, progress));
    }
    let from = run.resume_from();
    let (net, meta, mut rest) = model_io::load_with(from, "last", &setup.device)?;
    // The fresh model says what this run's data and flags would build.
    rundir::check_resume(from, &meta, opts, &fresh.net.config, setup.vocab.words())?;
    let progress = meta.progress.unwrap_or_default();
    let mut optimizer = Optimizer::new(opts, &net)?;
    if let Optimizer::Adam(a) = &mut optimizer {
        let (m, v) = model_io::take_moments(&mut rest, &net)?;
        a.set_state(progress.adam_step, m, v)?;
    }
    Ok((net, optimizer, progress))
}

/// `metrics.jsonl` in `dir`: on `--resume`, its first `epochs_done` lines
/// kept and appended to, else new. An interrupt between an epoch's line and
/// its checkpoint leaves one line more than the checkpoint has epochs; the
/// resumed run writes that epoch's line again.
fn open_metrics(dir: &Path, resume: bool, epochs_done: usize) -> Result<File> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let path = dir.join("metrics.jsonl");
    let kept: String = if resume {
        match std::fs::read_to_string(&path) {
            Ok(text) => text
                .lines()
                .take(epochs_done)
                .flat_map(|l| [l, "\n"])
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        }
    } else {
        String::new()
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    file.write_all(kept.as_bytes())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(file)
}

/// The generator of epoch `e`'s shuffle and dropout masks: derived from the
/// seed alone, so that a resumed run draws what an uninterrupted one would.
fn epoch_rng(seed: u64, epoch: usize) -> StdRng {
    StdRng::seed_from_u64(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// One epoch: a pass over the training windows in a seeded random order
/// at the epoch's learning rate, then the dev scores.
fn run_epoch(
    opts: &TrainOptions,
    setup: &Setup,
    net: &NerModel,
    optimizer: &mut Optimizer,
    epoch: usize,
    names: &[String],
) -> Result<EpochMetrics> {
    let t0 = Instant::now();
    let lr = opts.lr / (1.0 + opts.lr_decay * epoch as f64);
    optimizer.set_lr(lr);
    let n = setup.feats.train.n_tokens;
    let mut rng = epoch_rng(opts.seed, epoch);
    let steps = epoch_steps(opts, setup, &mut rng)?;
    let bar = progress_bar(n as u64, epoch, opts.quiet);
    let plans_before = schedule::thread_stats().misses;
    let (mut loss_sum, mut loss_n) = (0.0f64, 0usize);
    let mut grad_norms = Vec::new();
    for (step, what) in steps.iter().enumerate() {
        let at = || format!("epoch {}, step {step}", epoch + 1);
        let dropout = (opts.dropout > 0.0).then_some((opts.dropout, &mut rng));
        let log_norms = opts.grad_norm_every > 0 && step % opts.grad_norm_every == 0;
        let (loss, norms, tokens) = match what {
            Step::Windows(idx) => {
                let batch = data::batch(&setup.feats.train, idx, &setup.label_map, &setup.device)?;
                let loss = eval::loss(net, &batch, setup.binary.is_some(), dropout)?;
                let (l, norms) = train_step(net, optimizer, loss, log_norms)?;
                (l, norms, idx.len())
            }
            Step::Sentences(s) => {
                let b = data::sentence_batch(&setup.feats.train, &setup.offsets, s, &setup.device)?;
                // Summed over the step's sentences and divided by --batch:
                // each token weighs what it weighs in a word-level batch.
                let w: Vec<f32> = b
                    .lengths
                    .iter()
                    .map(|&l| if l > 0 { 1.0 / opts.batch as f32 } else { 0.0 })
                    .collect();
                let tokens: usize = b.lengths.iter().sum();
                let loss = net.sentence_loss(&b, &w, dropout)?;
                let (l, norms) = train_step(net, optimizer, loss, log_norms)?;
                // Reported per token, as the word-level loss is.
                (l * opts.batch as f64 / tokens.max(1) as f64, norms, tokens)
            }
        };
        let idx_len = tokens;
        if !loss.is_finite() {
            let bad = non_finite_params(&net.params())?;
            return Err(Error::Other(format!(
                "training stopped: loss is {loss} at {} (lr {lr}); \
                 non-finite parameters: {bad:?}; try a smaller --lr or --clip-norm",
                at()
            )));
        }
        if log_norms {
            grad_norms = named_norms(names, &norms, at)?;
        }
        loss_sum += loss * idx_len as f64;
        loss_n += idx_len;
        bar.inc(idx_len as u64);
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
    let step_plans = schedule::thread_stats().misses - plans_before;
    let train_secs = t0.elapsed().as_secs_f64();
    let dev = setup.score(net, &setup.feats.valid, &setup.corpus.valid)?;
    Ok(EpochMetrics {
        epoch: epoch + 1,
        lr,
        train_loss: loss_sum / loss_n.max(1) as f64,
        dev_precision: dev.precision,
        dev_recall: dev.recall,
        dev_f1: dev.f1,
        seconds: t0.elapsed().as_secs_f64(),
        windows_per_s: n as f64 / train_secs.max(1e-9),
        step_plans,
        grad_norms,
    })
}

/// What one training step reads.
enum Step {
    /// Token positions of single windows (word-level models).
    Windows(Vec<usize>),
    /// Whole sentences padded to a bucket (the sentence-level model).
    Sentences(data::SentenceStep),
}

/// The epoch's steps in a seeded random order: shuffled windows in
/// batches of --batch, or shuffled sentences grouped by length bucket,
/// --sentence-tokens per step, the steps shuffled again.
fn epoch_steps(opts: &TrainOptions, setup: &Setup, rng: &mut StdRng) -> Result<Vec<Step>> {
    let w = &setup.feats.train;
    if !opts.crf() {
        let mut order: Vec<usize> = (0..w.n_tokens).collect();
        order.shuffle(rng);
        return Ok(order
            .chunks(opts.batch)
            .map(|c| Step::Windows(c.to_vec()))
            .collect());
    }
    let mut order: Vec<usize> = (0..w.sentence_lengths.len()).collect();
    order.shuffle(rng);
    let mut steps = data::sentence_steps(&w.sentence_lengths, &order, opts.sentence_tokens)?;
    steps.shuffle(rng);
    Ok(steps.into_iter().map(Step::Sentences).collect())
}

/// Backward and update for `loss`: returns its value, and with
/// `log_norms` each parameter's gradient norm (computed in the same plan).
fn train_step(
    net: &NerModel,
    optimizer: &mut Optimizer,
    loss: Tensor,
    log_norms: bool,
) -> Result<(f64, Vec<Tensor>)> {
    loss.backward()?;
    let norms: Vec<Tensor> = if log_norms {
        no_grad(|| {
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
    Ok((loss.item()?, norms))
}

/// The gradient norms by parameter name; a non-finite one stops training.
fn named_norms(
    names: &[String],
    norms: &[Tensor],
    at: impl Fn() -> String,
) -> Result<Vec<(String, f64)>> {
    let mut out = Vec::with_capacity(norms.len());
    for (name, t) in names.iter().zip(norms) {
        let v = t.item()?;
        if !v.is_finite() {
            return Err(Error::Other(format!(
                "training stopped: gradient of {name} is {v} at {}",
                at()
            )));
        }
        out.push((name.clone(), v));
    }
    Ok(out)
}

/// Parameters holding NaN or Inf, by name.
fn non_finite_params(params: &[Tensor]) -> Result<Vec<String>> {
    let mut bad = Vec::new();
    for (i, p) in params.iter().enumerate() {
        if p.to_vec_f32()?.iter().any(|v| !v.is_finite()) {
            bad.push(p.label().unwrap_or_else(|| format!("param{i}")));
        }
    }
    Ok(bad)
}

/// Appends the epoch's line to `metrics.jsonl` and, unless quiet, prints it.
fn log_epoch(metrics: &mut File, m: &EpochMetrics, quiet: bool) -> Result<()> {
    let line = serde_json::to_string(m).map_err(|e| Error::Other(e.to_string()))?;
    writeln!(metrics, "{line}").map_err(|e| Error::io("writing metrics", e))?;
    if !quiet {
        eprintln!(
            "epoch {:>2}  loss {:.4}  dev P {:.2} R {:.2} F1 {:.2}  {:.1}s  {:.0} windows/s  \
             {} new step plans",
            m.epoch,
            m.train_loss,
            m.dev_precision,
            m.dev_recall,
            m.dev_f1,
            m.seconds,
            m.windows_per_s,
            m.step_plans
        );
    }
    Ok(())
}

/// Records the epoch in `progress`, saves the model as `best` in `dir`
/// when its dev F1 is the best yet, and saves everything `--resume` needs
/// as `last`.
#[allow(clippy::too_many_arguments)]
fn keep_checkpoints(
    opts: &TrainOptions,
    dir: &Path,
    net: &NerModel,
    optimizer: &Optimizer,
    meta: &Meta,
    names: &[String],
    progress: &mut Progress,
    m: EpochMetrics,
) -> Result<()> {
    let (epoch, dev_f1) = (m.epoch, m.dev_f1);
    progress.history.push(m);
    progress.epochs_done = epoch;
    if dev_f1 > progress.best_f1 {
        progress.best_f1 = dev_f1;
        progress.best_epoch = epoch;
        progress.since_best = 0;
        model_io::save(dir, "best", net, &meta.at_epoch(epoch, dev_f1))?;
    } else {
        progress.since_best += 1;
        if progress.since_best >= opts.patience.max(1) && !opts.quiet {
            eprintln!("no dev improvement for {} epochs: stopping", opts.patience);
        }
    }
    let moments = match optimizer {
        Optimizer::Adam(a) => {
            let (t, m, v) = a.state();
            progress.adam_step = t;
            model_io::moment_tensors(names, m, v)
        }
        Optimizer::Sgd(_) => vec![],
    };
    let mut last = meta.at_epoch(epoch, dev_f1);
    last.progress = Some(progress.clone());
    model_io::save_with(dir, "last", net, &last, &moments)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resuming_keeps_only_the_checkpointed_epochs_metrics() {
        let dir = std::env::temp_dir().join(format!("deltagrad-metrics-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Interrupted after epoch 2's line, before its checkpoint.
        std::fs::write(dir.join("metrics.jsonl"), "{\"epoch\":1}\n{\"epoch\":2}\n").unwrap();
        let mut f = open_metrics(&dir, true, 1).unwrap();
        writeln!(f, "{{\"epoch\":2}}").unwrap();
        drop(f);
        let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        assert_eq!(text, "{\"epoch\":1}\n{\"epoch\":2}\n");
        open_metrics(&dir, false, 1).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap(),
            ""
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
