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
    let input = out.join("raw.txt");
    std::fs::write(
        &input,
        "Yesterday Marta Quell said the talks in Dravenport went well.\n",
    )
    .unwrap();
    let tagged = run(bin()
        .args(["tag", "--json", "--model", out.to_str().unwrap()])
        .arg(&input));
    let v: serde_json::Value = serde_json::from_str(tagged.lines().next().unwrap()).unwrap();
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
