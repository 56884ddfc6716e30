//! What a training run is told and where it stands: the options (the
//! `train` command's flags, saved in every checkpoint), the per-epoch
//! metrics, and the progress that `--resume` continues from.

use std::path::PathBuf;

use deltagrad::model::{Activation, ConvSpec};
use deltagrad::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::lexical;

/// Hyper-parameters and paths of a training run (also saved in checkpoints).
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct TrainOptions {
    /// Folder with train.txt, valid.txt, test.txt (CoNLL format). Only
    /// ever read; CoNLL-2003 is fetched only into the default folder.
    #[arg(long, default_value = crate::datadir::DEFAULT_DATA)]
    pub data: PathBuf,
    /// Do not download CoNLL-2003 when the default data folder lacks it.
    #[arg(long)]
    pub no_fetch: bool,
    /// GloVe-format vectors (.txt or .txt.gz; a word2vec/fastText `count
    /// dim` first line is read as a header); default: the embedded GloVe
    /// 6B 50d.
    #[arg(long)]
    pub vectors: Option<PathBuf>,
    /// Where checkpoints, metrics and the plot go. A folder that already
    /// holds a model is refused unless --force or --resume; the run writes
    /// into OUT/unfinished/ and replaces OUT's files only when it finishes.
    #[arg(long, default_value = "runs/ner")]
    pub out: PathBuf,
    /// Train a new model even though --out holds one; it replaces that
    /// model (and its metrics and plot) only once this run finishes.
    #[arg(long, conflicts_with = "resume")]
    #[serde(default)]
    pub force: bool,
    /// crf (the default): the window network with word shape, affix and
    /// gazetteer features and a CRF on top, trained with the
    /// sentence-level likelihood; softmax: the same network and features
    /// with the word-level softmax; window: the lecture's model (words and
    /// capitalization, word-level softmax), which ignores the feature flags.
    /// --binary always trains the lecture's classifier.
    #[arg(long, default_value = "crf")]
    #[serde(default = "lecture_model")]
    pub model: String,
    /// Size of the learned word-shape vector (0: none).
    #[arg(long, default_value_t = 5)]
    #[serde(default)]
    pub shape_dim: usize,
    /// Size of each learned prefix and suffix vector (lengths 1–4; 0: none).
    #[arg(long, default_value_t = 8)]
    #[serde(default)]
    pub affix_dim: usize,
    /// Size of the learned gazetteer-state vector per entity type (0: none).
    #[arg(long, default_value_t = 5)]
    #[serde(default)]
    pub gazetteer_dim: usize,
    /// Name lists (`TYPE<TAB>name` a line) instead of the names of the
    /// training split's entities.
    #[arg(long)]
    #[serde(default)]
    pub gazetteer: Option<PathBuf>,
    /// Size of the learned state vector per external name list — places,
    /// first names, last names (0: none).
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub lexicon_dim: usize,
    /// Size of the learned character vectors read by the character
    /// convolution (0: no convolution).
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub char_dim: usize,
    /// Filters of the character convolution (3 characters wide), i.e.
    /// values per word.
    #[arg(long, default_value_t = 32)]
    #[serde(default)]
    pub char_filters: usize,
    /// Size of the learned vector of what the rest of the document says
    /// of a word: its case and its place in names elsewhere (0: none).
    /// A CoNLL file's documents are its `-DOCSTART-` sections; `tag`
    /// takes its whole input as one document.
    #[arg(long, default_value_t = 5)]
    #[serde(default)]
    pub doc_dim: usize,
    /// External name lists (`LIST<TAB>name` a line, LIST one of LOC,
    /// FIRST, LAST) instead of the ones fetched into the data folder.
    #[arg(long)]
    #[serde(default)]
    pub lexicon: Option<PathBuf>,
    /// Tokens (padding included) per step of the sentence-level model; its
    /// loss is the step's summed sentence losses divided by --batch, so an
    /// update weighs its tokens as the word-level model's do.
    #[arg(long, default_value_t = 256)]
    #[serde(default = "default_sentence_tokens")]
    pub sentence_tokens: usize,
    #[arg(long, default_value_t = 30)]
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
    #[arg(long, default_value_t = 5)]
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
    /// Continue the run saved in --out (its `last` checkpoint; an
    /// unfinished run's if there is one) exactly where it stopped. The
    /// settings must be the saved run's; --epochs, --patience, --device,
    /// --quiet and the paths may change.
    #[arg(long)]
    pub resume: bool,
    /// No progress bar or per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
}

/// Sizes of the per-word feature vectors besides the word's and its
/// capitalization's (0: the feature is off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtraDims {
    pub shape: usize,
    pub affix: usize,
    pub gazetteer: usize,
    pub lexicon: usize,
    pub chars: usize,
    /// Filters of the character convolution.
    pub char_filters: usize,
    pub document: usize,
}

impl ExtraDims {
    /// The vector size of each feature that is on, in `Extras::tables`
    /// order, with the convolution that reads it (the characters' only).
    pub fn on(&self) -> Vec<(usize, Option<ConvSpec>)> {
        let chars = ConvSpec {
            width: lexical::CHAR_WIDTH,
            filters: self.char_filters,
        };
        [
            (self.shape, None),
            (self.affix, None),
            (self.gazetteer, None),
            (self.lexicon, None),
            (self.chars, Some(chars)),
            (self.document, None),
        ]
        .into_iter()
        .filter(|&(d, _)| d > 0)
        .collect()
    }
}

/// A checkpoint written before `--model` existed holds the lecture's model.
fn lecture_model() -> String {
    "window".into()
}

fn default_sentence_tokens() -> usize {
    256
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
    /// Plans compiled for the epoch's training steps (the first epoch
    /// compiles one per bucket and step kind; later ones replay them).
    #[serde(default)]
    pub step_plans: u64,
    /// Gradient L2 norm per parameter, at the last logged step of the epoch:
    /// vanishing or exploding gradients show here.
    #[serde(default)]
    pub grad_norms: Vec<(String, f64)>,
}

/// Parses `train`'s flags alone (for [`TrainOptions::defaults`]).
#[derive(clap::Parser)]
struct TrainFlags {
    #[command(flatten)]
    opts: TrainOptions,
}

impl TrainOptions {
    /// The options of `deltagrad train` without flags: what other commands
    /// (`explain`) take as "the model train builds".
    pub fn defaults() -> TrainOptions {
        <TrainFlags as clap::Parser>::parse_from(["train"]).opts
    }

    /// The options with `data`, `vectors` and `out` as absolute paths, as
    /// a model records them, so that `eval` and `tag` find its data from
    /// any working directory.
    pub fn with_absolute_paths(&self) -> TrainOptions {
        let abs = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
        TrainOptions {
            data: abs(&self.data),
            vectors: self.vectors.as_ref().map(abs),
            gazetteer: self.gazetteer.as_ref().map(abs),
            lexicon: self.lexicon.as_ref().map(abs),
            out: abs(&self.out),
            ..self.clone()
        }
    }

    /// Whether the model has the CRF layer (`--binary` always trains the
    /// lecture's logistic classifier).
    pub fn crf(&self) -> bool {
        self.model == "crf" && self.binary.is_none()
    }

    /// The extra feature sizes the model uses: none for the lecture's
    /// `window` model and the binary classifier.
    pub fn extra_dims(&self) -> ExtraDims {
        if self.model == "window" || self.binary.is_some() {
            ExtraDims::default()
        } else {
            ExtraDims {
                shape: self.shape_dim,
                affix: self.affix_dim,
                gazetteer: self.gazetteer_dim,
                lexicon: self.lexicon_dim,
                chars: self.char_dim,
                char_filters: self.char_filters,
                document: self.doc_dim,
            }
        }
    }

    /// Rejects settings that cannot train, before any data is read.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid("train", m));
        if self.batch == 0 {
            return bad("--batch must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("--lr must be positive, got {}", self.lr));
        }
        if !matches!(self.optimizer.as_str(), "sgd" | "adam") {
            return bad(format!(
                "--optimizer must be sgd or adam, got {:?}",
                self.optimizer
            ));
        }
        if !matches!(self.model.as_str(), "crf" | "softmax" | "window") {
            return bad(format!(
                "--model must be crf, softmax or window, got {:?}",
                self.model
            ));
        }
        if self.sentence_tokens == 0 {
            return bad("--sentence-tokens must be at least 1".into());
        }
        if !matches!(self.decode.as_str(), "greedy" | "viterbi") {
            return bad(format!(
                "--decode must be greedy or viterbi, got {:?}",
                self.decode
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("--dropout must be in [0, 1), got {}", self.dropout));
        }
        if self.char_dim > 0 && self.char_filters == 0 {
            return bad("--char-filters must be at least 1 with --char-dim".into());
        }
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return bad("--hidden needs at least one non-zero layer size".into());
        }
        Activation::parse(&self.activation)?;
        Ok(())
    }
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
