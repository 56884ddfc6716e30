//! The README's pipeline on the small fixture corpus (invented sentences,
//! not CoNLL text), through the same CLI: train, eval, tag.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deltagrad"))
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ner")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("deltagrad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run deltagrad");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{:?} failed:\n{}\n{}",
        cmd,
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Tags `text` with the model in `model` (`tag --json`, the text written
/// to a file in `dir`) and returns the first output line.
fn tag_json(dir: &std::path::Path, model: &std::path::Path, text: &str) -> String {
    let input = dir.join("raw.txt");
    std::fs::write(&input, text).unwrap();
    let tagged = run(bin()
        .args(["tag", "--json", "--model", model.to_str().unwrap()])
        .arg(&input));
    tagged.lines().next().unwrap_or_default().to_string()
}

/// Trains 4 epochs on the fixture corpus into `out` with a small network
/// and `extra` flags; returns the report.
fn train_fixture(out: &std::path::Path, extra: &[&str]) -> String {
    run(bin()
        .args(["train", "--no-fetch", "--device", "cpu", "--quiet"])
        .args(["--data", fixtures().to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--epochs", "4"])
        .args(["--hidden", "32", "--lr", "0.1"])
        .args(extra))
}

/// The `best.json` a run wrote into `out`.
fn best_meta(out: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("best.json")).unwrap()).unwrap()
}

/// The F1 on a `name: precision … F1 x` line.
fn f1(text: &str, name: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} line in:\n{text}"));
    line.rsplit("F1").next().unwrap().trim().parse().unwrap()
}

#[test]
fn train_eval_tag_on_fixture_corpus() {
    let out = scratch("ner-cli");
    let text = run(bin()
        .args(["train", "--no-fetch", "--device", "cpu", "--quiet"])
        .args([
            "--data",
            fixtures().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "6",
            "--hidden",
            "64",
            "--lr",
            "0.1",
        ]));
    let test_f1 = f1(&text, "test");
    assert!(test_f1 > 70.0, "test F1 {test_f1}\n{text}");
    for f in [
        "best.safetensors",
        "best.json",
        "metrics.jsonl",
        "training.png",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(metrics.lines().count() >= 1);
    for l in metrics.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["dev_f1"].as_f64().unwrap() >= 0.0);
    }

    // eval: conlleval's report, plus the `token gold predicted` file.
    let preds = out.join("pred.txt");
    let report = run(bin()
        .args(["eval", "--device", "cpu", "--model", out.to_str().unwrap()])
        .args(["--output", preds.to_str().unwrap(), "--oov"]));
    assert!(
        report.contains("accuracy:") && report.contains("FB1:"),
        "{report}"
    );
    assert!(
        report.contains("entities with a word unseen in") && report.contains("train.txt"),
        "{report}"
    );
    let lines = std::fs::read_to_string(&preds).unwrap();
    let first = lines.lines().next().unwrap();
    assert_eq!(first.split(' ').count(), 3, "{first}");

    // tag: raw text in, entities out (JSON lines).
    let tagged = tag_json(
        &out,
        &out,
        "Yesterday Marta Quell said the talks in Dravenport went well.\n",
    );
    let v: serde_json::Value = serde_json::from_str(&tagged).unwrap();
    assert!(v.is_object(), "{tagged}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn missing_data_folder_is_a_clear_error() {
    let out = bin()
        .args([
            "train",
            "--no-fetch",
            "--quiet",
            "--data",
            "/nonexistent/conll",
            "--device",
            "cpu",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/conll") && err.contains("--data"),
        "{err}"
    );
}

#[test]
fn explain_prints_the_fused_step() {
    let text = run(bin().args([
        "explain", "--batch", "16", "--vocab", "100", "--dim", "4", "--hidden", "8",
    ]));
    assert!(text.contains("plan: 11 launches"), "{text}");
    assert!(text.contains("index_add_in_place"), "{text}");
}

#[test]
fn binary_location_classifier_reports_precision_recall_f1() {
    let out = scratch("ner-binary");
    let text = run(bin()
        .args([
            "train",
            "--no-fetch",
            "--device",
            "cpu",
            "--quiet",
            "--binary",
            "LOC",
        ])
        .args([
            "--data",
            fixtures().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--epochs", "4", "--hidden", "32", "--lr", "0.1"]));
    let test_f1 = f1(&text, "test");
    assert!(test_f1 > 60.0, "binary LOC test F1 {test_f1}\n{text}");
    let _ = std::fs::remove_dir_all(&out);
}

/// External name lists: given as a file, saved inside the model (tagging
/// works once the file is gone), and missing ones are a clear error.
#[test]
fn external_name_lists_travel_with_the_model() {
    let out = scratch("ner-lexicon");
    std::fs::create_dir_all(&out).unwrap();
    let lists = out.join("lists.tsv");
    std::fs::write(&lists, "LOC\tDravenport\nFIRST\tMarta\nLAST\tQuell\n").unwrap();
    let model = out.join("model");
    let train = |extra: &[&str]| {
        let mut c = bin();
        c.args(["train", "--no-fetch", "--device", "cpu", "--quiet"])
            .args(["--data", fixtures().to_str().unwrap()])
            .args(["--out", model.to_str().unwrap(), "--epochs", "2"])
            .args(["--hidden", "16", "--lexicon-dim", "3"])
            .args(extra)
            .current_dir(&out);
        c
    };
    let text = run(&mut train(&["--lexicon", lists.to_str().unwrap()]));
    assert!(f1(&text, "test") >= 0.0, "{text}");
    let meta = best_meta(&model);
    let pairs = meta["lexicon"].as_array().unwrap();
    assert_eq!(pairs.len(), 3, "{pairs:?}");
    let features = meta["config"]["features"].as_array().unwrap();
    // Three lists, three states each (outside, first word, inside).
    let lists_table =
        |f: &&serde_json::Value| (f["classes"].as_u64(), f["count"].as_u64()) == (Some(9), Some(3));
    assert!(features.iter().any(|f| lists_table(&f)), "{features:?}");
    std::fs::remove_file(&lists).unwrap();
    let tagged = tag_json(&out, &model, "Marta Quell flew to Dravenport.\n");
    let v: serde_json::Value = serde_json::from_str(&tagged).unwrap();
    assert!(v.is_object(), "{tagged}");

    // No --lexicon, nothing fetched and fetching forbidden: say what to do.
    let err = run_err(&mut train(&["--force"]));
    assert!(
        err.contains("data/namelists/lexicon.tsv") && err.contains("deltagrad data fetch"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// The character convolution: trained, saved, and read back by eval and
/// tag; its weights are in the checkpoint.
#[test]
fn character_convolution_trains_and_round_trips() {
    let out = scratch("ner-chars");
    let text = train_fixture(&out, &["--char-dim", "6", "--char-filters", "10"]);
    let test_f1 = f1(&text, "test");
    assert!(test_f1 > 50.0, "test F1 {test_f1}\n{text}");
    let meta = best_meta(&out);
    let features = meta["config"]["features"].as_array().unwrap();
    let chars = features
        .iter()
        .find(|f| !f["conv"].is_null())
        .unwrap_or_else(|| panic!("no convolution in {features:?}"));
    assert_eq!(chars["conv"]["filters"].as_u64(), Some(10), "{features:?}");
    assert_eq!(chars["count"].as_u64(), Some(16));
    let report = run(bin().args(["eval", "--device", "cpu", "--model", out.to_str().unwrap()]));
    assert!(report.contains("FB1:"), "{report}");
    let tagged = tag_json(&out, &out, "Marta Quell flew to Dravenport.\n");
    let v: serde_json::Value = serde_json::from_str(&tagged).unwrap();
    assert!(v.is_object(), "{tagged}");
    let bad = run_err(
        bin()
            .args([
                "train",
                "--no-fetch",
                "--quiet",
                "--char-dim",
                "4",
                "--char-filters",
                "0",
            ])
            .args(["--data", fixtures().to_str().unwrap(), "--out"])
            .arg(out.join("other")),
    );
    assert!(bad.contains("--char-filters"), "{bad}");
    let _ = std::fs::remove_dir_all(&out);
}

/// The document features train, are recorded in the model, and are read
/// again by `eval` and by `tag` (which takes its whole input as one
/// document).
#[test]
fn document_features_train_and_round_trip() {
    let out = scratch("ner-document");
    let text = train_fixture(&out, &["--doc-dim", "3"]);
    let test_f1 = f1(&text, "test");
    assert!(test_f1 > 50.0, "test F1 {test_f1}\n{text}");
    let meta = best_meta(&out);
    let features = meta["config"]["features"].as_array().unwrap();
    let document = features.last().unwrap();
    assert_eq!(document["classes"].as_u64(), Some(17), "{features:?}");
    assert_eq!(document["dim"].as_u64(), Some(3));
    assert_eq!(meta["options"]["doc_dim"].as_u64(), Some(3));
    let report = run(bin().args(["eval", "--device", "cpu", "--model", out.to_str().unwrap()]));
    assert!(report.contains("FB1:"), "{report}");
    let tagged = tag_json(
        &out,
        &out,
        "MARTA QUELL WINS.\nMarta Quell flew to Dravenport.\n",
    );
    let v: serde_json::Value = serde_json::from_str(&tagged).unwrap();
    assert!(v.is_object(), "{tagged}");
    let _ = std::fs::remove_dir_all(&out);
}

fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run deltagrad");
    assert!(!out.status.success(), "{cmd:?} should have failed");
    String::from_utf8_lossy(&out.stderr).to_string()
}
