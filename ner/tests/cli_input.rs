//! What the command line does with a user's input: byte-order marks, tag
//! sets that differ from the model's, split names, line breaks in `tag`,
//! JSON offsets, quiet stderr without a GPU, `explain`'s defaults, and
//! messages that say what to do.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{QUICK, assert_has, bin, fails, fixtures, ok, scratch};
use deltagrad_ner::options::TrainOptions;

/// One quick model for the whole file, trained on the fixture corpus.
fn model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let out = scratch("cli-input-model").join("run");
        ok(bin()
            .arg("train")
            .arg("--data")
            .arg(fixtures())
            .arg("--out")
            .arg(&out)
            .args(QUICK)
            .args(["--epochs", "2"]));
        out
    })
}

fn eval(extra: &[&str]) -> std::process::Command {
    let mut c = bin();
    c.args(["eval", "--device", "cpu", "--model"])
        .arg(model())
        .args(extra);
    c
}

fn tag(extra: &[&str], input: &str) -> std::process::Command {
    let dir = scratch(&format!("tag-input-{}", input.len()));
    let file = dir.join("in.txt");
    std::fs::write(&file, input).unwrap();
    let mut c = bin();
    c.args(["tag", "--device", "cpu", "--model"])
        .arg(model())
        .args(extra)
        .arg(file);
    c
}

#[test]
fn a_byte_order_mark_changes_nothing() {
    let dir = scratch("bom");
    let test = std::fs::read(fixtures().join("test.txt")).unwrap();
    let with_bom = dir.join("test-bom.txt");
    std::fs::write(&with_bom, [b"\xEF\xBB\xBF".as_slice(), &test].concat()).unwrap();
    let (plain, _) = ok(&mut eval(&["--split", "test"]));
    let (bom, _) = ok(&mut eval(&["--split", with_bom.to_str().unwrap()]));
    assert!(plain.starts_with("processed "), "{plain}");
    assert_eq!(plain, bom, "the BOM changed the counts");

    // Training sees the same windows and vocabulary.
    for f in ["valid.txt", "test.txt"] {
        std::fs::copy(fixtures().join(f), dir.join(f)).unwrap();
    }
    let train = std::fs::read(fixtures().join("train.txt")).unwrap();
    std::fs::write(
        dir.join("train.txt"),
        [b"\xEF\xBB\xBF".as_slice(), &train].concat(),
    )
    .unwrap();
    let summary = |data: &Path, out: &str| {
        let (_, err) = ok(bin()
            .arg("train")
            .arg("--data")
            .arg(data)
            .arg("--out")
            .arg(dir.join(out))
            .args(["--device", "cpu", "--hidden", "4", "--epochs", "1"]));
        err.lines()
            .find(|l| l.starts_with("training on"))
            .unwrap_or_else(|| panic!("no summary in {err}"))
            .to_string()
    };
    assert_eq!(summary(&dir, "a"), summary(&fixtures(), "b"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_names_file_line_and_tag_outside_the_models_tag_set() {
    let dir = scratch("tagset");
    let file = dir.join("cities.txt");
    std::fs::write(&file, "-DOCSTART- O\n\nAnn B-PER\nsaw O\n\nOslo B-CITY\n").unwrap();
    let err = fails(&mut eval(&["--split", file.to_str().unwrap()]));
    assert_has(
        &err,
        &[
            &format!("{}:6:", file.display()),
            "tag \"B-CITY\" is not in the model's tag set",
            "knows O, B-PER, I-PER, B-LOC, I-LOC, B-ORG, I-ORG, B-MISC, I-MISC",
        ],
    );
    assert!(!err.contains("IOB1"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn train_names_file_and_line_of_a_type_the_training_split_lacks() {
    let dir = scratch("train-tagset");
    for f in ["train.txt", "test.txt"] {
        std::fs::copy(fixtures().join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("valid.txt"), "Ann B-PER\n\nin O\nOslo I-CITY\n").unwrap();
    let err = fails(
        bin()
            .arg("train")
            .arg("--data")
            .arg(&dir)
            .arg("--out")
            .arg(dir.join("run"))
            .args(QUICK),
    );
    assert_has(
        &err,
        &[
            &format!("{}:4:", dir.join("valid.txt").display()),
            "\"I-CITY\"",
            "entity type CITY does not occur in",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn split_names() {
    let (dev, _) = ok(&mut eval(&["--split", "dev"]));
    let (valid, _) = ok(&mut eval(&["--split", "valid"]));
    assert_eq!(dev, valid);
    let err = fails(&mut eval(&["--split", "devel"]));
    assert_has(
        &err,
        &["--split devel: expected test, valid (or dev), train, or the path of a CoNLL file"],
    );
}

/// Ten lines, none ending in end punctuation, some lowercase: ten
/// sentences, one output line each.
#[test]
fn tag_ends_a_sentence_at_every_line_break() {
    let lines: Vec<String> = (0..10)
        .map(|i| format!("line {i} mentions Marta Quell in Dravenport"))
        .collect();
    let text = lines.join("\n") + "\n";
    let (plain, _) = ok(&mut tag(&[], &text));
    assert_eq!(plain.lines().count(), 10, "{plain}");
    for (i, l) in plain.lines().enumerate() {
        assert!(l.starts_with(&format!("line {i} ")), "{l}");
    }
    let (json, _) = ok(&mut tag(&["--json"], &text));
    let got: Vec<u64> = json
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["line"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(got, (1..=10).collect::<Vec<u64>>());
    let (joined, _) = ok(&mut tag(&["--paragraphs"], &text));
    assert_eq!(joined.lines().count(), 1, "{joined}");
    let (help, _) = ok(bin().args(["tag", "--help"]));
    assert_has(
        &help,
        &[
            "Every line break ends a sentence",
            "--paragraphs",
            "[default: auto]",
        ],
    );
    assert!(help.contains("greedy or viterbi"), "{help}");
}

#[test]
fn tag_json_has_character_offsets() {
    let text = "Zoë said:\n  Marta Quell flew to Dravenport.\n";
    let (json, _) = ok(&mut tag(&["--json"], text));
    let chars: Vec<char> = text.chars().collect();
    let mut seen = 0;
    for l in json.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let toks = v["tokens"].as_array().unwrap();
        let offs = v["offsets"].as_array().unwrap();
        assert_eq!(toks.len(), offs.len());
        for (t, o) in toks.iter().zip(offs) {
            let (a, b) = (
                o[0].as_u64().unwrap() as usize,
                o[1].as_u64().unwrap() as usize,
            );
            assert_eq!(chars[a..b].iter().collect::<String>(), t.as_str().unwrap());
            seen += 1;
        }
        for e in v["entities"].as_array().unwrap() {
            let (a, b) = (
                e["start_char"].as_u64().unwrap() as usize,
                e["end_char"].as_u64().unwrap() as usize,
            );
            assert_eq!(
                chars[a..b].iter().collect::<String>(),
                e["text"].as_str().unwrap()
            );
        }
    }
    assert_eq!(seen, 9, "Zoë said : / Marta Quell flew to Dravenport .");
}

/// No graphics-stack chatter when no GPU is used: with `--device cpu`
/// nothing on stderr, with `auto` one line naming the device.
#[test]
fn stderr_is_quiet_without_a_gpu() {
    let (_, err) = ok(bin()
        .args(["eval", "--device", "cpu", "--model"])
        .arg(model())
        .env_remove("XDG_RUNTIME_DIR"));
    assert_eq!(err, "", "with --device cpu");
    let (_, err) = ok(bin()
        .args(["eval", "--device", "auto", "--model"])
        .arg(model())
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("DELTAGRAD_DEVICE"));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("deltagrad: device "), "{err}");
    assert!(
        !err.contains("XDG_RUNTIME_DIR") && !err.contains("error"),
        "{err}"
    );
}

/// The same line names a software adapter as one.
#[test]
fn a_software_adapter_is_labelled() {
    let Some(gpu) = common::gpu() else {
        return;
    };
    let (_, err) = ok(bin()
        .args(["eval", "--device", "gpu", "--model"])
        .arg(model())
        .env_remove("XDG_RUNTIME_DIR"));
    assert!(err.starts_with("deltagrad: device wgpu: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let software = err.contains("llvmpipe") || err.contains("lavapipe");
    assert_eq!(
        err.trim_end().ends_with("[software adapter]"),
        software,
        "{err}"
    );
    assert_eq!(
        gpu.to_string().ends_with("[software adapter]"),
        software,
        "{gpu}"
    );
}

#[test]
fn explain_shows_the_model_train_builds() {
    let train = TrainOptions::defaults();
    let (text, _) = ok(bin().arg("explain"));
    let first = text.lines().next().unwrap();
    let hidden: Vec<String> = train.hidden.iter().map(usize::to_string).collect();
    assert_has(
        first,
        &[
            &format!("B={} ", train.batch),
            "d=50 ",
            &format!("H={} ", hidden.join(",")),
            "C=9 ",
            &format!("caps={}", train.cap_dim),
            &train.activation,
        ],
    );
    assert_has(
        &text,
        &["the lecture's model as `train --model window` builds it"],
    );
    // The benchmark's small step, as documented.
    let (small, _) = ok(bin().args([
        "explain",
        "--batch",
        "1024",
        "--dim",
        "50",
        "--hidden",
        "100",
        "--classes",
        "5",
        "--vocab",
        "20000",
    ]));
    assert_has(
        &small,
        &[
            "B=1024 d=50 H=100 C=5 vocab=20000,",
            "without the capitalization feature",
            "plan: 11 launches",
        ],
    );
}

/// `explain --device gpu` adds, under each matmul, the variant the GPU
/// backend chose and how; the CPU has no notes and the plan is the same.
#[test]
fn explain_on_a_device_shows_the_matmul_variants() {
    let sizes = [
        "explain",
        "--batch",
        "64",
        "--dim",
        "8",
        "--hidden",
        "16",
        "--classes",
        "5",
        "--vocab",
        "100",
    ];
    let (plain, _) = ok(bin().args(sizes));
    let (cpu, _) = ok(bin().args(sizes).args(["--device", "cpu"]));
    assert_has(&cpu, &["launch notes from the cpu backend"]);
    fn plan(t: &str) -> Vec<&str> {
        t.lines()
            .filter(|l| !l.starts_with("(launch notes"))
            .collect()
    }
    assert_eq!(plan(&plain), plan(&cpu));
    if common::gpu().is_none() {
        return;
    }
    let (gpu, _) = ok(bin()
        .args(sizes)
        .args(["--device", "gpu"])
        .env("DELTAGRAD_TUNE", "off"));
    let matmuls = plain.lines().filter(|l| l.contains("matmul")).count();
    let variants = gpu
        .lines()
        .filter(|l| l.contains("/k") && l.contains("(heuristic)"))
        .count();
    assert!(matmuls > 0 && variants >= matmuls / 2, "{gpu}");
    assert!(gpu.lines().count() > plain.lines().count(), "{gpu}");
}

/// A resumed run that differs from the saved one says in what.
#[test]
fn resume_with_other_settings_names_them() {
    let dir = scratch("resume-diff");
    let out = dir.join("run");
    let run = |extra: &[&str]| {
        let mut c = bin();
        c.arg("train")
            .arg("--data")
            .arg(fixtures())
            .arg("--out")
            .arg(&out)
            .args(QUICK)
            .args(extra);
        c
    };
    ok(&mut run(&["--epochs", "1"]));
    let err = fails(&mut run(&[
        "--epochs",
        "2",
        "--resume",
        "--lr",
        "0.1",
        "--dropout",
        "0.5",
    ]));
    assert_has(
        &err,
        &[
            "--dropout 0.0 (now 0.5)",
            "--lr 0.05 (now 0.1)",
            "last.json",
            "--force",
        ],
    );
    ok(&mut run(&["--epochs", "2", "--resume"]));
    let _ = std::fs::remove_dir_all(&dir);
}
