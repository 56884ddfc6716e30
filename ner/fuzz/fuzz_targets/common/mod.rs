//! Entry points shared by the cargo-fuzz targets and by
//! `ner/tests/fuzz_corpus.rs` / `ner/tests/bad_input.rs` (which include this file by
//! path), so that CI replays the corpus through exactly the code the fuzzer
//! ran. Readers returning errors is the expected outcome; a panic is a
//! finding. The `assert!`s check invariants that must hold for whatever a
//! reader accepts, so that "accepted but inconsistent" is a finding too.

#![allow(dead_code)] // each fuzz target uses one entry point

use std::io::Write;
use std::path::Path;

use clap::Parser;
use deltagrad::model::{Activation, WindowNet, WindowNetConfig};
use deltagrad::{DType, Device, Result, Tensor};
use deltagrad_ner::features::{self, N_CAPS, TagSet, Vocab};
use deltagrad_ner::gazetteer::Gazetteer;
use deltagrad_ner::model_io::{self, Meta};
use deltagrad_ner::net::{Crf, NerModel};
use deltagrad_ner::options::TrainOptions;
use deltagrad_ner::{conll, eval, files, glove, namelists, tokenize};

/// Name of the checkpoint that [`checkpoint`] writes and loads.
pub const CKPT: &str = "fuzz";

/// In checkpoint inputs, this text in the JSON half is replaced by the
/// weights' real SHA-256, so mutated weights get past the checksum and
/// reach the safetensors parser and the shape checks.
pub const SHA_PLACEHOLDER: &[u8] = b"SHA256";

/// CoNLL bytes → sentences → IOB2 → tag set → windows → conlleval lines.
pub fn conll(data: &[u8]) {
    let Ok(mut sentences) = conll::parse_conll_bytes(data, "fuzz.txt") else {
        return;
    };
    for s in &sentences {
        assert!(!s.is_empty() && s.tokens.len() == s.tags.len());
    }
    conll::to_iob2(&mut sentences);
    let tags = TagSet::from_sentences(&sentences).expect("accepted tags form a tag set");
    let mut vocab = Vocab::new();
    vocab.extend_from_sentences(&sentences, 1);
    let w = features::windows_for_sentences(&sentences, &vocab, &tags, 2)
        .expect("IOB2 sentences make windows");
    assert_eq!(w.tags.len(), w.n_tokens);
    let gold: Vec<Vec<String>> = sentences.iter().map(|s| s.tags.clone()).collect();
    // Tokens may hold whitespace other than space/tab, which this rejects.
    let _ = conll::write_predictions(Vec::new(), &sentences, &gold);
}

/// GloVe file bytes as read from disk: plain text, or gzip when the input
/// starts with gzip's magic bytes (then the decompressor sees fuzzed data).
pub fn glove(data: &[u8]) {
    if let Ok((emb, _)) = glove::parse_glove_file_bytes(data, "fuzz.txt") {
        check_embeddings(&emb);
    }
}

/// The gzip path with well-formed compression: the input is the text,
/// compressed here, and must read exactly as the plain text does.
pub fn glove_gz(data: &[u8]) {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("writing to a Vec");
    let gz = enc.finish().expect("writing to a Vec");
    let packed = glove::parse_glove_file_bytes(&gz, "fuzz.txt");
    let plain = glove::parse_glove(data, "fuzz.txt");
    match (&packed, &plain) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b);
            check_embeddings(&a.0);
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("gzip and plain disagree: {packed:?} vs {plain:?}"),
    }
}

fn check_embeddings(emb: &glove::Embeddings) {
    assert!(emb.dim > 0 && !emb.is_empty());
    assert_eq!(emb.values.len(), emb.len() * emb.dim);
    assert!(emb.values.iter().all(|v| v.is_finite()));
    let vocab = Vocab::from_embeddings(emb);
    let (m, _) = vocab.embedding_matrix(emb);
    assert_eq!(m.len(), vocab.len() * emb.dim);
}

/// Raw text for `tag`: bytes → UTF-8 (or an error) → sentences of tokens,
/// each token the exact source text at its offsets.
pub fn tokenize(data: &[u8]) {
    let Ok(text) = tokenize::text_from_bytes(data.to_vec(), "fuzz.txt") else {
        assert!(std::str::from_utf8(data).is_err(), "valid UTF-8 rejected");
        return;
    };
    let mut last_end = 0;
    for sentence in tokenize::tokenize(&text) {
        assert!(!sentence.is_empty());
        for t in sentence {
            assert!(t.start >= last_end && t.start < t.end, "{t:?}");
            assert_eq!(text.get(t.start..t.end), Some(t.text.as_str()));
            last_end = t.end;
        }
    }
}

/// A checkpoint input: the JSON half, a NUL byte (which valid JSON never
/// holds), then the safetensors half. Without a NUL the weights are empty.
pub fn split_checkpoint(data: &[u8]) -> (Vec<u8>, &[u8]) {
    let (json, weights) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let sha = files::sha256_hex(weights);
    let json = match json
        .windows(SHA_PLACEHOLDER.len())
        .position(|w| w == SHA_PLACEHOLDER)
    {
        Some(i) => [
            &json[..i],
            sha.as_bytes(),
            &json[i + SHA_PLACEHOLDER.len()..],
        ]
        .concat(),
        None => json.to_vec(),
    };
    (json, weights)
}

/// Writes a checkpoint input into `dir` as [`CKPT`], loads it as `tag`
/// would, and tags a sentence with whatever loads.
pub fn checkpoint(data: &[u8], dir: &Path) {
    let (json, weights) = split_checkpoint(data);
    std::fs::write(dir.join(format!("{CKPT}.json")), json).expect("writing temp file");
    std::fs::write(dir.join(format!("{CKPT}.safetensors")), weights).expect("writing temp file");
    let Ok((net, meta)) = model_io::load(dir, CKPT, &Device::cpu()) else {
        return;
    };
    if meta.options.binary.is_some() {
        return;
    }
    // What the loader accepted must be usable: `tag` does exactly this.
    let sentence = [vec!["Ann", "visited", "Rome", "."]];
    let lists = meta.lists().expect("the loader checked the name lists");
    let extras = model_io::extras(&meta.options, &lists);
    let w = features::windows_for_tokens_with(
        &sentence,
        &meta.vocab(),
        meta.options.half_window,
        &extras,
    )
    .expect("the loader checked half_window");
    let scores = eval::predict(&net, &w, &Device::cpu()).expect("loaded model predicts");
    let viterbi = net
        .viterbi(meta.tagset().tags())
        .expect("loaded CRF decodes");
    for how in ["greedy", "viterbi"] {
        eval::decode(&scores, &w.sentence_lengths, &meta.tagset(), how, &viterbi)
            .expect("loaded model's scores decode");
    }
}

/// A fresh, unique scratch folder for one test or fuzz process.
pub fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "deltagrad-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).expect("creating scratch folder");
    dir
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    opts: TrainOptions,
}

/// `train` flags for a tiny model: window 3, one hidden layer of 3, the
/// lecture's word-level model.
pub const TINY: &[&str] = &[
    "--hidden",
    "3",
    "--half-window",
    "1",
    "--cap-dim",
    "2",
    "--model",
    "window",
];

/// Saves a tiny real model (4 words plus `<pad>`/`<unk>`, PER and LOC, dim
/// 2) built from `train` flags (such as [`TINY`]) as `build_model` reads
/// them, as checkpoint `name` in `dir`.
pub fn save_tiny_model(dir: &Path, name: &str, flags: &[&str]) -> Result<()> {
    let argv = std::iter::once(&"train").chain(flags);
    let opts = Cli::try_parse_from(argv)
        .map_err(|e| deltagrad::Error::Other(e.to_string()))?
        .opts;
    let mut vocab = Vocab::new();
    for w in ["ann", "visited", "rome", "."] {
        vocab.insert(w);
    }
    let tags = TagSet::from_types(&["PER", "LOC"]);
    let mut gazetteer = Gazetteer::new(&["PER", "LOC"]);
    gazetteer.insert("LOC", vec!["Rome".into()]);
    let mut lexicon = Gazetteer::new(&namelists::LISTS);
    lexicon.insert("FIRST", vec!["Ann".into()]);
    let lists = model_io::Lists { gazetteer, lexicon };
    let config = WindowNetConfig {
        vocab: vocab.len(),
        dim: 2,
        window: 2 * opts.half_window + 1,
        cap_classes: if opts.cap_dim > 0 { N_CAPS } else { 0 },
        cap_dim: opts.cap_dim,
        hidden: opts.hidden.clone(),
        classes: if opts.binary.is_some() { 1 } else { tags.len() },
        activation: Activation::Tanh,
        features: model_io::feature_specs(&opts, &model_io::extras(&opts, &lists)),
    };
    let net = WindowNet::new(config, DType::F32, &Device::cpu(), &mut Tensor::rng(7))?;
    let crf = match opts.crf() {
        true => Some(Crf::zeros(tags.len(), &Device::cpu())?),
        false => None,
    };
    let net = NerModel { net, crf };
    model_io::save(
        dir,
        name,
        &net,
        &Meta::new(&opts, &net, &vocab, &tags, &lists),
    )
}
