//! A user's files are never overwritten: a `--data` folder is only read,
//! `data fetch --into` never replaces a file, and a run folder's model,
//! metrics and plot stay as they were unless a run told to replace them
//! (`--force`, `--resume`) finishes. Everything here works offline.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{QUICK, assert_has, bin, fails, fixtures, ok, scratch, snapshot};

/// `deltagrad train --data DATA --out OUT` with [`QUICK`] and `extra`
/// (one epoch unless `extra` says otherwise).
fn train(data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = bin();
    c.arg("train")
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(QUICK)
        .args(extra);
    if !extra.contains(&"--epochs") {
        c.args(["--epochs", "1"]);
    }
    c
}

fn copy(from: &Path, to: &Path, names: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for n in names {
        std::fs::copy(from.join(n), to.join(n)).unwrap();
    }
}

#[test]
fn a_partial_user_folder_is_an_error_and_stays_byte_identical() {
    let root = scratch("partial-data");
    let data = root.join("mine");
    copy(&fixtures(), &data, &["train.txt", "valid.txt"]);
    let before = snapshot(&data);
    let out = root.join("run");
    // No --no-fetch: the folder is the user's, so nothing may be fetched.
    let err = fails(&mut train(&data, &out, &[]));
    assert_has(
        &err,
        &[
            &data.display().to_string(),
            "lacks test.txt",
            "only read, never fetched into",
            "data fetch --into DIR",
        ],
    );
    assert_eq!(snapshot(&data), before, "the user's files changed");
    assert!(
        !out.exists(),
        "a run folder was made for a run that never started"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_mistyped_or_file_data_path_trains_nothing() {
    let root = scratch("typo-data");
    let out = root.join("run");
    let err = fails(&mut train(&root.join("conll2003-typo"), &out, &[]));
    assert_has(
        &err,
        &[
            "conll2003-typo: no such folder",
            "train.txt, valid.txt and test.txt",
        ],
    );
    let file = fixtures().join("train.txt");
    let err = fails(&mut train(&file, &out, &[]));
    assert_has(&err, &["is a file, not a folder"]);
    assert!(!err.contains("fetching"), "{err}");
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn data_fetch_into_refuses_to_overwrite_before_downloading() {
    let dir = scratch("fetch-into");
    copy(&fixtures(), &dir, &["train.txt"]);
    let before = snapshot(&dir);
    let err = fails(
        bin()
            .args(["data", "fetch", "--into"])
            .arg(&dir)
            .env("PATH", ""), // no python3: a download attempt would say so
    );
    assert_has(
        &err,
        &[
            "refusing to fetch CoNLL-2003 into",
            "train.txt",
            "never overwrites",
        ],
    );
    assert!(!err.contains("python3"), "it tried to download: {err}");
    assert_eq!(snapshot(&dir), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run folder holding a finished quick run, and a snapshot of it.
fn trained_run(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let root = scratch(name);
    let out = root.join("run");
    ok(&mut train(&fixtures(), &out, &["--seed", "1"]));
    for f in [
        "best.safetensors",
        "best.json",
        "last.json",
        "metrics.jsonl",
        "training.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(!out.join("unfinished").exists());
    (root, out)
}

#[test]
fn a_trained_model_is_replaced_only_when_told() {
    let (root, out) = trained_run("no-overwrite");
    let before = snapshot(&out);
    let err = fails(&mut train(&fixtures(), &out, &["--seed", "2"]));
    assert_has(
        &err,
        &[
            "already holds a trained model",
            "epoch 1",
            "nothing was changed",
            "--force",
            "--resume",
            "--out DIR",
        ],
    );
    assert_eq!(snapshot(&out), before);

    // A forced run that fails — on bad data, or diverging mid-epoch —
    // leaves every earlier file as it was, the plot included.
    let bad = root.join("bad-data");
    copy(&fixtures(), &bad, &["train.txt", "valid.txt", "test.txt"]);
    std::fs::write(bad.join("test.txt"), "Ann B-PER\nin O\nOslo B-CITY\n").unwrap();
    let err = fails(&mut train(&bad, &out, &["--force"]));
    assert_has(&err, &["test.txt:3:", "\"B-CITY\""]);
    assert_eq!(snapshot(&out), before, "bad data changed the run folder");
    // A sentence longer than the sentence-level model's longest bucket,
    // a gazetteer file that is malformed or missing: the file and line.
    let long = std::iter::repeat_n("w NN I-NP O\n", 130).collect::<String>();
    let train_txt = std::fs::read_to_string(fixtures().join("train.txt")).unwrap();
    std::fs::write(bad.join("train.txt"), format!("{train_txt}\n{long}")).unwrap();
    std::fs::copy(fixtures().join("test.txt"), bad.join("test.txt")).unwrap();
    let line = train_txt.lines().count() + 2;
    let err = fails(&mut train(&bad, &out, &["--force"]));
    assert_has(&err, &[&format!("train.txt:{line}:"), "130 tokens"]);
    let gaz = root.join("names.txt");
    std::fs::write(&gaz, "LOC\tOslo\nPER Ann\n").unwrap();
    let gaz_flag = ["--force", "--gazetteer", gaz.to_str().unwrap()];
    let err = fails(&mut train(&fixtures(), &out, &gaz_flag));
    assert_has(&err, &["names.txt:2:", "TYPE<TAB>name"]);
    std::fs::remove_file(&gaz).unwrap();
    let err = fails(&mut train(&fixtures(), &out, &gaz_flag));
    assert_has(&err, &["names.txt"]);
    assert_eq!(
        snapshot(&out),
        before,
        "a failed run changed the run folder"
    );
    let err = fails(&mut train(
        &fixtures(),
        &out,
        &["--force", "--lr", "1e30", "--lr-decay", "0"],
    ));
    assert_has(&err, &["training stopped", "epoch 1, step"]);
    let left: std::collections::BTreeMap<_, _> = snapshot(&out)
        .into_iter()
        .filter(|(name, _)| !name.starts_with("unfinished"))
        .collect();
    assert_eq!(left, before, "a crashed run changed the run folder");

    // A forced run that finishes replaces them all.
    ok(&mut train(&fixtures(), &out, &["--force", "--seed", "2"]));
    let after = snapshot(&out);
    assert_ne!(after["best.safetensors"], before["best.safetensors"]);
    assert_ne!(after["metrics.jsonl"], before["metrics.jsonl"]);
    assert!(!out.join("unfinished").exists());
    let _ = std::fs::remove_dir_all(&root);
}

/// Interrupted with SIGINT, as Ctrl-C would (hence Unix only).
#[cfg(unix)]
#[test]
fn an_interrupted_run_leaves_the_earlier_model_and_can_resume() {
    let (root, out) = trained_run("interrupt");
    let before = snapshot(&out);
    let mut child = train(
        &fixtures(),
        &out,
        &["--force", "--epochs", "200", "--patience", "200"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // Wait for its first checkpoint, then interrupt it as Ctrl-C would.
    let unfinished = out.join("unfinished/last.json");
    let start = Instant::now();
    while !unfinished.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint after 2 minutes"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(!child.wait().unwrap().success());
    let left: std::collections::BTreeMap<_, _> = snapshot(&out)
        .into_iter()
        .filter(|(name, _)| !name.starts_with("unfinished"))
        .collect();
    assert_eq!(left, before, "an interrupted run changed the run folder");

    // The unfinished run is there to continue; `--resume` finishes it and
    // only then are the folder's files replaced.
    let err = fails(&mut train(&fixtures(), &out, &[]));
    assert_has(&err, &["already holds a trained model", "--force"]);
    ok(&mut train(
        &fixtures(),
        &out,
        &["--resume", "--epochs", "2", "--patience", "200"],
    ));
    assert!(!out.join("unfinished").exists());
    let after = snapshot(&out);
    assert_ne!(after["last.safetensors"], before["last.safetensors"]);
    let metrics = String::from_utf8(after["metrics.jsonl"].clone()).unwrap();
    assert_eq!(metrics.lines().count(), 2, "{metrics}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn resume_without_a_run_and_resume_with_force_are_errors() {
    let root = scratch("resume-nothing");
    let out = root.join("run");
    let err = fails(&mut train(&fixtures(), &out, &["--resume"]));
    assert_has(&err, &["holds no run to continue"]);
    let err = fails(&mut train(&fixtures(), &out, &["--resume", "--force"]));
    assert_has(&err, &["--force", "cannot be used with"]);
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&root);
}

/// Relative paths at training time; `eval` and `tag` from elsewhere.
#[test]
fn eval_and_tag_work_from_any_directory() {
    let root = scratch("anywhere");
    let project = root.join("project");
    copy(
        &fixtures(),
        &project.join("data"),
        &["train.txt", "valid.txt", "test.txt"],
    );
    ok(train(Path::new("data"), Path::new("run"), &[]).current_dir(&project));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(project.join("run/best.json")).unwrap()).unwrap();
    let recorded = Path::new(meta["options"]["data"].as_str().unwrap());
    assert!(recorded.is_absolute(), "{recorded:?}");

    let elsewhere = root.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let model = project.join("run");
    let (report, _) = ok(bin()
        .args(["eval", "--device", "cpu", "--model"])
        .arg(&model)
        .current_dir(&elsewhere));
    assert_has(&report, &["accuracy:", "FB1:"]);
    let (report, _) = ok(bin()
        .args(["eval", "--device", "cpu", "--split", "dev", "--model"])
        .arg(&model)
        .current_dir(&elsewhere));
    assert_has(&report, &["accuracy:"]);
    let input = elsewhere.join("in.txt");
    std::fs::write(&input, "Marta Quell went to Dravenport.\n").unwrap();
    let (tagged, _) = ok(bin()
        .args(["tag", "--device", "cpu", "--model"])
        .arg(&model)
        .arg("in.txt")
        .current_dir(&elsewhere));
    assert_eq!(tagged.lines().count(), 1, "{tagged}");
    let _ = std::fs::remove_dir_all(&root);
}
