//! Every reader of user files rejects malformed input with an error that
//! names the file, the line (or tensor, or field) and what was expected,
//! and never panics: CoNLL, GloVe (plain and gzip), checkpoints (weights
//! and JSON), and the raw text that `tag` reads.

#[path = "../fuzz/fuzz_targets/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use deltagrad::state_dict::StateDict;
use deltagrad::{DType, Device, Error, Tensor};
use deltagrad_ner::checkpoint;
use deltagrad_ner::{conll, files, glove, model_io, tokenize};
use serde_json::Value;

/// Asserts that `err` mentions every one of `needles`.
fn assert_mentions(err: &Error, needles: &[&str]) {
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "{n:?} missing from: {msg}");
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

// ---- CoNLL -------------------------------------------------------------

fn conll_err(bytes: &[u8]) -> (Error, String) {
    let dir = common::scratch_dir("bad-conll");
    let p = write(&dir, "train.txt", bytes);
    let err = conll::read_conll(&p).expect_err("malformed CoNLL accepted");
    std::fs::remove_dir_all(&dir).unwrap();
    (err, p.display().to_string())
}

#[test]
fn conll_wrong_column_count() {
    let (e, file) = conll_err(b"Treax NNP B-NP B-PER\n\nRunddoumgrour NNP I-PER\n");
    assert_mentions(
        &e,
        &[&format!("{file}:3:"), "expected 4 columns", "found 3"],
    );
    let (e, file) = conll_err(b"Treax NNP B-PER\n");
    assert_mentions(&e, &[&format!("{file}:1:"), "expected 2 columns", "or 4"]);
}

#[test]
fn conll_unknown_tag() {
    let (e, file) = conll_err(b"Treax B-PER\njoined\tE-ORG\n");
    assert_mentions(
        &e,
        &[
            &format!("{file}:2:"),
            "\"E-ORG\"",
            "expected O, B-TYPE or I-TYPE",
        ],
    );
}

#[test]
fn conll_non_utf8() {
    let (e, file) = conll_err(b"a O\n\nTr\xe9ax B-PER\n");
    assert_mentions(
        &e,
        &[
            &format!("{file}:3:"),
            "byte 3 of the line",
            "expected UTF-8",
        ],
    );
}

#[test]
fn conll_empty_file() {
    for empty in [&b""[..], b"\n\n", b"-DOCSTART- -X- -X- O\n\n"] {
        let (e, file) = conll_err(empty);
        assert_mentions(&e, &[&file, "expected at least one token line"]);
    }
}

// ---- GloVe -------------------------------------------------------------

/// Reads `text` as a plain and as a gzip file; both must fail alike.
fn glove_errs(text: &[u8]) -> Vec<(Error, String)> {
    let dir = common::scratch_dir("bad-glove");
    let errs = [("v.txt", text.to_vec()), ("v.txt.gz", gzip(text))]
        .into_iter()
        .map(|(name, bytes)| {
            let p = write(&dir, name, &bytes);
            let e = glove::read_glove(&p).expect_err("malformed GloVe accepted");
            (e, p.display().to_string())
        })
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    errs
}

#[test]
fn glove_mixed_dimensions() {
    for (e, file) in glove_errs(b"the 0.1 0.2\nof 0.3 0.4\ntrolkelland 1 2 3\n") {
        assert_mentions(
            &e,
            &[
                &format!("{file}:3:"),
                "has 3 values; expected 2 as in the first row",
            ],
        );
    }
}

/// A word2vec/fastText header is read as one; its dimension must then hold.
#[test]
fn glove_word2vec_header_of_another_dimension() {
    for (e, file) in glove_errs(b"400000 50\nthe 0.1 0.2\n") {
        assert_mentions(
            &e,
            &[
                &format!("{file}:2:"),
                "has 2 values; expected 50 as line 1",
                "word2vec header",
            ],
        );
    }
}

#[test]
fn glove_bad_number() {
    for (e, file) in glove_errs(b"the 0.1 0.2\nof 0.3 0,4\n") {
        assert_mentions(
            &e,
            &[
                &format!("{file}:2:"),
                "\"0,4\"",
                "expected a decimal number",
            ],
        );
    }
}

#[test]
fn glove_nan_and_infinity() {
    for bad in ["NaN", "inf", "1e39"] {
        let text = format!("the 0.1 0.2\n\nof 0.3 {bad}\n");
        for (e, file) in glove_errs(text.as_bytes()) {
            assert_mentions(&e, &[&format!("{file}:3:"), "expected a finite number"]);
        }
    }
}

#[test]
fn glove_empty_file() {
    for (e, file) in glove_errs(b"") {
        assert_mentions(&e, &[&file, "expected at least one `word v1 ... vd` line"]);
    }
}

#[test]
fn glove_corrupt_gzip() {
    let dir = common::scratch_dir("bad-glove-gz");
    let mut gz = gzip(b"the 0.1 0.2\nof 0.3 0.4\n");
    gz.truncate(gz.len() / 2);
    let p = write(&dir, "v.txt.gz", &gz);
    let e = glove::read_glove(&p).expect_err("truncated gzip accepted");
    assert_mentions(&e, &[&format!("decompressing GloVe file {}", p.display())]);
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- checkpoints ---------------------------------------------------------

/// A freshly saved tiny model: its folder, and the two file paths.
struct Ckpt {
    dir: PathBuf,
    json: PathBuf,
    weights: PathBuf,
}

const NAME: &str = "best";

fn tiny() -> Ckpt {
    let dir = common::scratch_dir("bad-ckpt");
    common::save_tiny_model(&dir, NAME, common::TINY).unwrap();
    model_io::load(&dir, NAME, &Device::cpu()).expect("the undamaged checkpoint loads");
    Ckpt {
        json: checkpoint::meta_path(&dir, NAME),
        weights: checkpoint::weights_path(&dir, NAME),
        dir,
    }
}

impl Drop for Ckpt {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Ckpt {
    fn load_err(&self) -> Error {
        let e = model_io::load(&self.dir, NAME, &Device::cpu())
            .err()
            .expect("damaged checkpoint loaded");
        // A whole-file problem has no line to show: never `file:0:`.
        assert!(!e.to_string().contains(":0:"), "{e}");
        e
    }

    fn json_path(&self) -> String {
        self.json.display().to_string()
    }

    fn weights_path(&self) -> String {
        self.weights.display().to_string()
    }

    /// Edits the JSON half (the weights' checksum stays valid).
    fn edit_meta(&self, f: impl FnOnce(&mut Value)) {
        let mut meta: Value = serde_json::from_slice(&std::fs::read(&self.json).unwrap()).unwrap();
        f(&mut meta);
        std::fs::write(&self.json, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
    }

    /// Rewrites the weights as `f` leaves them, with a matching checksum:
    /// damage that the checksum cannot catch, as from a buggy writer.
    fn edit_weights(&self, f: impl FnOnce(&mut StateDict)) {
        let (mut weights, meta) = checkpoint::load(&self.dir, NAME, &Device::cpu()).unwrap();
        f(&mut weights);
        checkpoint::save(&self.dir, NAME, &weights, meta).unwrap();
    }

    /// Replaces the weights file by `bytes` and records their checksum.
    fn set_weights_bytes(&self, bytes: &[u8]) {
        std::fs::write(&self.weights, bytes).unwrap();
        let sha = files::sha256_hex(bytes);
        self.edit_meta(|m| m["weights_sha256"] = Value::String(sha));
    }
}

/// Sets element `i` of tensor `name` to `value`.
fn poke(weights: &mut StateDict, name: &str, i: usize, value: f32) {
    let t = weights.remove(name).unwrap();
    let mut values = t.to_vec_f32().unwrap();
    values[i] = value;
    weights.insert(name, Tensor::from_vec(values, t.shape()).unwrap());
}

#[test]
fn checkpoint_truncated_weights() {
    let c = tiny();
    let bytes = std::fs::read(&c.weights).unwrap();
    std::fs::write(&c.weights, &bytes[..bytes.len() - 7]).unwrap();
    assert_mentions(
        &c.load_err(),
        &[
            &c.weights_path(),
            "checksum mismatch",
            "truncated or modified",
        ],
    );
}

#[test]
fn checkpoint_tampered_bytes() {
    let c = tiny();
    let mut bytes = std::fs::read(&c.weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&c.weights, &bytes).unwrap();
    assert_mentions(&c.load_err(), &[&c.weights_path(), "checksum mismatch"]);
}

#[test]
fn checkpoint_tampered_header_with_matching_checksum() {
    let c = tiny();
    let mut bytes = std::fs::read(&c.weights).unwrap();
    bytes[9] = b'!'; // inside the safetensors JSON header
    c.set_weights_bytes(&bytes);
    assert_mentions(
        &c.load_err(),
        &[&c.weights_path(), "not a safetensors file"],
    );
    c.set_weights_bytes(&bytes[..5]);
    assert_mentions(
        &c.load_err(),
        &[&c.weights_path(), "not a safetensors file"],
    );
}

#[test]
fn checkpoint_bad_json() {
    let c = tiny();
    let text = std::fs::read_to_string(&c.json).unwrap();
    // Drop the comma ending line 3, so line 4 starts where `,` or `}` is due.
    let broken: Vec<&str> = text.lines().collect();
    let mut lines: Vec<String> = broken.iter().map(|l| l.to_string()).collect();
    lines[2] = lines[2].trim_end_matches(',').to_string();
    std::fs::write(&c.json, lines.join("\n")).unwrap();
    assert_mentions(
        &c.load_err(),
        &[
            &format!("{}:4:", c.json_path()),
            "invalid checkpoint metadata",
            "expected `,` or `}`",
        ],
    );
    std::fs::write(&c.json, b"").unwrap();
    assert_mentions(&c.load_err(), &[&c.json_path(), "EOF"]);
}

#[test]
fn checkpoint_json_of_the_wrong_type() {
    let c = tiny();
    let text = std::fs::read_to_string(&c.json).unwrap();
    let line = 1 + text.lines().position(|l| l.contains("\"epoch\"")).unwrap();
    std::fs::write(&c.json, text.replace("\"epoch\": 0", "\"epoch\": \"zero\"")).unwrap();
    assert_mentions(
        &c.load_err(),
        &[
            &format!("{}:{line}:", c.json_path()),
            "invalid type: string \"zero\", expected usize",
        ],
    );
}

#[test]
fn checkpoint_missing_checksum_field() {
    let c = tiny();
    c.edit_meta(|m| {
        m.as_object_mut().unwrap().remove("weights_sha256");
    });
    assert_mentions(&c.load_err(), &[&c.json_path(), "no weights_sha256 field"]);
}

#[test]
fn checkpoint_missing_tensor() {
    let c = tiny();
    c.edit_weights(|t| {
        t.remove("U");
    });
    assert_mentions(&c.load_err(), &[&c.weights_path(), "tensor U is missing"]);
}

/// A CRF checkpoint whose transition matrix belongs to another tag set,
/// and one whose feature tables disagree with its options.
#[test]
fn checkpoint_crf_of_another_tag_set() {
    let dir = common::scratch_dir("bad-crf");
    common::save_tiny_model(&dir, NAME, &common::TINY[..6]).unwrap();
    let c = Ckpt {
        json: checkpoint::meta_path(&dir, NAME),
        weights: checkpoint::weights_path(&dir, NAME),
        dir,
    };
    let (model, _) = model_io::load(&c.dir, NAME, &Device::cpu()).expect("the CRF model loads");
    assert!(model.crf.is_some() && !model.net.feature_embeddings.is_empty());
    c.edit_weights(|t| {
        t.insert(
            "crf_transitions",
            Tensor::from_vec(vec![0f32; 49], &[7, 7]).unwrap(),
        );
    });
    assert_mentions(
        &c.load_err(),
        &[&c.weights_path(), "crf_transitions", "[7, 7]", "[5, 5]"],
    );
    c.edit_meta(|m| m["options"]["affix_dim"] = serde_json::json!(3));
    assert_mentions(&c.load_err(), &[&c.json_path(), "config features"]);
}

#[test]
fn checkpoint_wrong_shape_vs_config() {
    let c = tiny();
    c.edit_meta(|m| m["config"]["hidden"] = serde_json::json!([2]));
    assert_mentions(
        &c.load_err(),
        &[
            &c.weights_path(),
            "tensor W1 has shape [6, 3], expected [6, 2]",
        ],
    );
}

#[test]
fn checkpoint_config_larger_than_the_weights() {
    let c = tiny();
    // Building this net would need petabytes; the loader must say no first.
    c.edit_meta(|m| m["config"]["dim"] = serde_json::json!(1u64 << 50));
    assert_mentions(
        &c.load_err(),
        &[&c.json_path(), "config implies", "the weights file holds"],
    );
    c.edit_meta(|m| m["config"]["dim"] = serde_json::json!(u64::MAX));
    assert_mentions(&c.load_err(), &[&c.json_path(), "too many parameters"]);
}

#[test]
fn checkpoint_vocab_length_mismatch() {
    let c = tiny();
    c.edit_meta(|m| {
        m["vocab"].as_array_mut().unwrap().pop();
    });
    assert_mentions(
        &c.load_err(),
        &[&c.json_path(), "5 vocabulary words but the config says 6"],
    );
}

/// Found by fuzzing: a vocabulary list without `<pad>` loaded, and `tag`
/// then looked up a word id past the embedding rows.
#[test]
fn checkpoint_vocab_without_reserved_words() {
    let c = tiny();
    c.edit_meta(|m| m["vocab"][0] = Value::String("<p1ad>".into()));
    assert_mentions(
        &c.load_err(),
        &[
            &c.json_path(),
            "vocabulary word 0 is \"<p1ad>\", expected \"<pad>\"",
        ],
    );
    c.edit_meta(|m| m["vocab"] = serde_json::json!(["<pad>", "<unk>", "a", "b", "a", "c"]));
    assert_mentions(
        &c.load_err(),
        &[&c.json_path(), "vocabulary word 4 is \"a\""],
    );
}

#[test]
fn checkpoint_tags_inconsistent_with_config() {
    let c = tiny();
    c.edit_meta(|m| m["tags"] = serde_json::json!(["O", "B-PER", "I-PER"]));
    assert_mentions(
        &c.load_err(),
        &[
            &c.json_path(),
            "config has 5 classes, expected 3 from the tags",
        ],
    );
    c.edit_meta(|m| m["tags"] = serde_json::json!(["O", "B-PER", "I-PER", "I-LOC", "B-LOC"]));
    assert_mentions(&c.load_err(), &[&c.json_path(), "expected O then B-X, I-X"]);
}

#[test]
fn checkpoint_window_inconsistent_with_options() {
    let c = tiny();
    c.edit_meta(|m| m["options"]["half_window"] = serde_json::json!(2));
    assert_mentions(
        &c.load_err(),
        &[
            &c.json_path(),
            "config window 3 does not match half_window 2",
        ],
    );
}

#[test]
fn checkpoint_half_window_too_wide_to_tag_with() {
    let c = tiny();
    c.edit_meta(|m| {
        m["options"]["half_window"] = serde_json::json!(65);
        m["config"]["window"] = serde_json::json!(131);
    });
    assert_mentions(
        &c.load_err(),
        &[&c.json_path(), "half_window 65, expected at most 64"],
    );
}

#[test]
fn checkpoint_non_finite_values() {
    let c = tiny();
    c.edit_weights(|t| poke(t, "b1", 2, f32::NAN));
    assert_mentions(
        &c.load_err(),
        &[
            &c.weights_path(),
            "tensor b1 holds a non-finite value at element 2",
        ],
    );
    let c = tiny();
    c.edit_weights(|t| poke(t, "embeddings", 0, f32::NEG_INFINITY));
    assert_mentions(&c.load_err(), &[&c.weights_path(), "tensor embeddings"]);
}

#[test]
fn checkpoint_wrong_dtype() {
    let c = tiny();
    c.edit_weights(|t| {
        let b1 = t.remove("b1").unwrap();
        t.insert("b1", b1.to_dtype(DType::F64).unwrap());
    });
    assert_mentions(
        &c.load_err(),
        &[&c.weights_path(), "tensor b1 is f64, expected f32"],
    );
}

#[test]
fn checkpoint_wrong_format_string() {
    let c = tiny();
    c.edit_meta(|m| m["format"] = Value::String("deltagrad-window-ner/0".into()));
    assert_mentions(
        &c.load_err(),
        &[
            &c.json_path(),
            "format \"deltagrad-window-ner/0\", expected \"deltagrad-window-ner/1\"",
        ],
    );
}

#[test]
fn checkpoint_missing_files() {
    let c = tiny();
    std::fs::remove_file(&c.weights).unwrap();
    assert_mentions(&c.load_err(), &[&c.weights_path()]);
    std::fs::remove_file(&c.json).unwrap();
    assert_mentions(&c.load_err(), &[&c.json_path()]);
}

// ---- raw text for `tag` ---------------------------------------------------

#[test]
fn tag_text_non_utf8() {
    let e = tokenize::text_from_bytes(b"Ann went home.\n\nTr\xe9ax too.\n".to_vec(), "in.txt")
        .expect_err("Latin-1 accepted");
    assert_mentions(
        &e,
        &[
            "in.txt:3:",
            "invalid UTF-8 at byte 3 of the line",
            "expected UTF-8",
        ],
    );
    // A UTF-8 sequence cut short at the very end.
    let e = tokenize::text_from_bytes(b"caf\xc3".to_vec(), "-").unwrap_err();
    assert_mentions(&e, &["-:1:", "byte 4 of the line"]);
}

/// Tokenizes `text` through the fuzz entry, which checks that every token
/// is the source text at its offsets and that tokens do not overlap.
fn tokenizes(text: &str) -> Vec<Vec<String>> {
    common::tokenize(text.as_bytes());
    tokenize::tokenize_to_strings(text)
}

#[test]
fn tag_text_any_utf8_tokenizes() {
    let cases = [
        "cafe\u{301} nai\u{308}ve \u{5e9}\u{5dc}\u{5d5}\u{5dd} \u{627}\u{644}\u{639}\u{627}\u{644}\u{645}!",
        "\u{202e}Ann\u{202c} \u{200f}visited\u{200e} Rome",
        "\u{1F469}\u{200D}\u{1F52C} went to \u{1F1EB}\u{1F1F7}\u{FE0F} \u{1F44D}\u{1F3FD}.",
        "Ann\0visited \0 Rome\0.",
        "\u{301}\u{301} \u{200D} \u{FEFF}x \u{0130}stanbul \u{1E9E}",
        "it\u{2019}S \u{0130}'S \u{212A}'s \u{2019}s'",
    ];
    for text in cases {
        let sentences = tokenizes(text);
        assert!(!sentences.is_empty(), "{text:?}");
    }
    assert_eq!(tokenizes("Ann\0visited")[0], ["Ann", "\0", "visited"]);
}

#[test]
fn tag_text_very_long_lines() {
    let n = 200_000;
    let cases = [
        "a".repeat(n),
        "Ann visited Rome. ".repeat(n / 18),
        ".,".repeat(n / 2),
        // Each trailing `.` once made the tokenizer rescan the whole chunk
        // for an abbreviation: quadratic time.
        format!("{}{}", "a.".repeat(n / 4), ",.".repeat(n / 4)),
        "\u{301}".repeat(n / 2),
        "don't".repeat(n / 5),
    ];
    for text in &cases {
        let start = std::time::Instant::now();
        let tokens: usize = tokenizes(text).iter().map(Vec::len).sum();
        assert!(tokens > 0);
        let took = start.elapsed();
        assert!(took.as_secs() < 10, "{} bytes took {took:?}", text.len());
    }
}
