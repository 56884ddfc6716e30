//! A run folder (`train --out`): what a run may replace, and when.
//!
//! A new run never replaces a trained model unasked: an `--out` that holds
//! one (a `best` or `last` checkpoint) is refused unless `--force` (train a
//! new model in its place) or `--resume` (continue it). Either way the
//! folder's files stay as they are until the run finishes: the run writes
//! into `OUT/unfinished/` and, at the end, moves its files into `OUT`,
//! replacing the earlier ones (a new run also removes earlier run files it
//! did not write, such as a plot it could not draw). A run that fails —
//! bad data, a crash, Ctrl-C — leaves `OUT` as it was, and `--resume`
//! continues an unfinished run from `OUT/unfinished/`.
//!
//! The move is a small commit: the list of moves is written first
//! (`unfinished/COMMIT`), so that a commit cut short is completed by the
//! next `train` on the folder.

use std::path::{Path, PathBuf};

use deltagrad::model::WindowNetConfig;
use deltagrad::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checkpoint;
use crate::files::write_atomic;
use crate::model_io::Meta;
use crate::options::TrainOptions;

/// The subfolder a run writes into until it finishes.
pub const UNFINISHED: &str = "unfinished";
/// The files a run leaves in its folder.
pub const RUN_FILES: [&str; 6] = [
    "best.safetensors",
    "best.json",
    "last.safetensors",
    "last.json",
    "metrics.jsonl",
    "training.png",
];
/// Written into the work folder when the run starts: whether it is a new
/// run (which replaces every earlier run file) or continues one.
const RUN_MARKER: &str = "run.json";
/// Written into the work folder when the run commits: the moves to make.
const COMMIT_MARKER: &str = "COMMIT";

#[derive(Serialize, Deserialize)]
struct RunMarker {
    fresh: bool,
}

#[derive(Serialize, Deserialize)]
struct CommitMarker {
    /// Files moved from the work folder into the run folder.
    moves: Vec<String>,
    /// Earlier run files removed from the run folder.
    removes: Vec<String>,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::io(what, e)
}

/// Whether `dir` holds a checkpoint.
fn has_model(dir: &Path) -> bool {
    ["best", "last"].iter().any(|n| {
        checkpoint::meta_path(dir, n).exists() || checkpoint::weights_path(dir, n).exists()
    })
}

/// `epoch 10, dev F1 90.14`, read from checkpoint `name` in `dir`, or the
/// file name when it cannot be read.
fn describe(dir: &Path, name: &str) -> String {
    let path = checkpoint::meta_path(dir, name);
    let meta: Option<Value> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let field = |k: &str| meta.as_ref().and_then(|m| m.get(k)).and_then(Value::as_f64);
    match (field("epoch"), field("dev_f1")) {
        (Some(e), Some(f)) => format!("{}: epoch {e}, dev F1 {f:.2}", path.display()),
        _ => path.display().to_string(),
    }
}

/// The run folder of a training run and the folder it writes into.
pub struct RunDir {
    out: PathBuf,
    work: PathBuf,
    fresh: bool,
}

impl RunDir {
    /// Checks that the run `opts` asks for may use `opts.out`, after
    /// completing a commit that was cut short there. Writes nothing else, so
    /// it runs before any data is read.
    pub fn check(opts: &TrainOptions) -> Result<()> {
        let out = &opts.out;
        if out.exists() && !out.is_dir() {
            return Err(Error::Other(format!(
                "--out {} is a file; expected a folder for the run's model, metrics and plot",
                out.display()
            )));
        }
        finish_commit(out)?;
        let work = out.join(UNFINISHED);
        let unfinished = checkpoint::meta_path(&work, "last").exists();
        if opts.resume && opts.force {
            return Err(Error::Other(
                "--resume continues the run in --out and --force starts a new one: choose one"
                    .into(),
            ));
        }
        if opts.resume {
            if unfinished || checkpoint::meta_path(out, "last").exists() {
                return Ok(());
            }
            return Err(Error::Other(format!(
                "--resume: {} holds no run to continue (no last.json in it or in {}); \
                 leave out --resume to start one",
                out.display(),
                work.display()
            )));
        }
        if opts.force {
            return Ok(());
        }
        if has_model(out) {
            return Err(Error::Other(format!(
                "{} already holds a trained model ({}); nothing was changed. Pass --force to train \
                 a new model that replaces it when the run finishes, --resume to continue training \
                 it, or --out DIR to train into another folder",
                out.display(),
                describe(out, "best")
            )));
        }
        if unfinished {
            return Err(Error::Other(format!(
                "{} holds an unfinished run ({}); pass --resume to continue it, --force to start \
                 over, or --out DIR to train into another folder",
                out.display(),
                describe(&work, "last")
            )));
        }
        Ok(())
    }

    /// Prepares the folder the run writes into: for a new run an empty
    /// `OUT/unfinished/` (discarding an unfinished run there, which
    /// [`RunDir::check`] allowed only with `--force` or when it had no
    /// checkpoint); for `--resume` the unfinished run's folder as it is, or
    /// else a new one holding a copy of `OUT/metrics.jsonl` to append to.
    pub fn start(opts: &TrainOptions) -> Result<RunDir> {
        let out = opts.out.clone();
        let work = out.join(UNFINISHED);
        let continuing = opts.resume && checkpoint::meta_path(&work, "last").exists();
        let fresh = if continuing {
            read_json::<RunMarker>(&work.join(RUN_MARKER)).is_none_or(|m| m.fresh)
        } else {
            if work.exists() {
                std::fs::remove_dir_all(&work)
                    .map_err(io(format!("removing {}", work.display())))?;
            }
            std::fs::create_dir_all(&work).map_err(io(format!("creating {}", work.display())))?;
            let metrics = out.join("metrics.jsonl");
            if opts.resume && metrics.exists() {
                std::fs::copy(&metrics, work.join("metrics.jsonl"))
                    .map_err(io(format!("copying {}", metrics.display())))?;
            }
            let fresh = !opts.resume;
            write_json(&work.join(RUN_MARKER), &RunMarker { fresh })?;
            fresh
        };
        Ok(RunDir { out, work, fresh })
    }

    /// Where the run writes its checkpoints, metrics and plot.
    pub fn work(&self) -> &Path {
        &self.work
    }

    /// The folder whose `last` checkpoint `--resume` continues: the
    /// unfinished run's, else the run folder's.
    pub fn resume_from(&self) -> &Path {
        if checkpoint::meta_path(&self.work, "last").exists() {
            &self.work
        } else {
            &self.out
        }
    }

    /// The folder holding the run's best model so far: the work folder once
    /// this run saved one, else the run folder (a resumed run that has not
    /// improved on the earlier best).
    pub fn best_dir(&self) -> &Path {
        if checkpoint::meta_path(&self.work, "best").exists() {
            &self.work
        } else {
            &self.out
        }
    }

    /// Moves the finished run's files into the run folder.
    pub fn commit(self) -> Result<()> {
        let mut moves = Vec::new();
        let entries = std::fs::read_dir(&self.work)
            .map_err(io(format!("listing {}", self.work.display())))?;
        for e in entries {
            let e = e.map_err(io(format!("listing {}", self.work.display())))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let temp = name.starts_with('.');
            if e.path().is_file() && !temp && name != RUN_MARKER && name != COMMIT_MARKER {
                moves.push(name);
            }
        }
        // Weights before metadata, so that a `.json` never names weights
        // that are not there yet.
        moves.sort_by_key(|n| (n.ends_with(".json"), n.clone()));
        let removes = if self.fresh {
            RUN_FILES
                .iter()
                .filter(|f| !moves.iter().any(|m| m == *f))
                .map(|f| f.to_string())
                .collect()
        } else {
            vec![]
        };
        write_json(
            &self.work.join(COMMIT_MARKER),
            &CommitMarker { moves, removes },
        )?;
        finish_commit(&self.out)
    }
}

/// Completes the commit recorded in `out/unfinished/COMMIT`, if any: moves
/// what is still to move, removes what is to remove, then the work folder.
/// Safe to repeat after an interruption at any point.
fn finish_commit(out: &Path) -> Result<()> {
    let work = out.join(UNFINISHED);
    let marker = work.join(COMMIT_MARKER);
    if !marker.exists() {
        return Ok(());
    }
    let commit: CommitMarker = read_json(&marker).ok_or_else(|| {
        Error::Other(format!(
            "{} is unreadable: a run finished but moving its files into {} was cut short; \
             move them by hand and remove {}",
            marker.display(),
            out.display(),
            work.display()
        ))
    })?;
    for name in &commit.moves {
        let from = work.join(name);
        if from.exists() {
            let to = out.join(name);
            std::fs::rename(&from, &to).map_err(io(format!(
                "moving {} to {}",
                from.display(),
                to.display()
            )))?;
        }
    }
    for name in &commit.removes {
        let p = out.join(name);
        if p.exists() {
            std::fs::remove_file(&p).map_err(io(format!("removing {}", p.display())))?;
        }
    }
    std::fs::remove_dir_all(&work).map_err(io(format!("removing {}", work.display())))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Other(e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Options a resumed run may change: how long, where and how verbosely it
/// runs, and paths (a different corpus or vectors shows as a different
/// vocabulary).
const MAY_CHANGE: &[&str] = &[
    "epochs",
    "patience",
    "device",
    "quiet",
    "resume",
    "force",
    "out",
    "data",
    "vectors",
    "no_fetch",
    "grad_norm_every",
];

fn show(v: &Value) -> String {
    match v {
        Value::Null => "unset".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(show).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// `name was → now` for every field of two JSON objects that differs,
/// except `skip`; `flag` turns a field name into how the user knows it.
fn differences(
    was: &Value,
    now: &Value,
    skip: &[&str],
    flag: impl Fn(&str) -> String,
) -> Vec<String> {
    let (Some(was), Some(now)) = (was.as_object(), now.as_object()) else {
        return vec![];
    };
    let mut keys: Vec<&String> = was.keys().chain(now.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !skip.contains(&k.as_str()))
        .filter_map(|k| {
            let (a, b) = (
                was.get(k).unwrap_or(&Value::Null),
                now.get(k).unwrap_or(&Value::Null),
            );
            (a != b).then(|| format!("{} {} (now {})", flag(k), show(a), show(b)))
        })
        .collect()
}

/// The settings in which `now` differs from the saved run's, as flags:
/// `--lr 0.05 (now 0.1)`.
pub fn option_differences(saved: &TrainOptions, now: &TrainOptions) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(saved), serde_json::to_value(now)) else {
        return vec![];
    };
    differences(&a, &b, MAY_CHANGE, |k| format!("--{}", k.replace('_', "-")))
}

/// Refuses to resume the run saved in `from` (its `last` checkpoint's
/// `saved` metadata) with settings, model shape or vocabulary other than
/// those `opts` and the data give, naming each difference.
pub fn check_resume(
    from: &Path,
    saved: &Meta,
    opts: &TrainOptions,
    config: &WindowNetConfig,
    vocab: &[String],
) -> Result<()> {
    let mut diffs = option_differences(&saved.options, opts);
    if diffs.is_empty()
        && let (Ok(a), Ok(b)) = (
            serde_json::to_value(&saved.config),
            serde_json::to_value(config),
        )
    {
        diffs = differences(&a, &b, &[], |k| format!("model {k}"));
    }
    if saved.vocab != vocab {
        diffs.push(format!(
            "a vocabulary of {} words (now {}: the training data or the vectors changed)",
            saved.vocab.len(),
            vocab.len()
        ));
    }
    if diffs.is_empty() {
        return Ok(());
    }
    Err(Error::Other(format!(
        "train --resume: the run in {} was trained with {}; resume with the saved settings \
         (the \"options\" of {}), or train a new model with --force or another --out",
        from.display(),
        diffs.join(", "),
        checkpoint::meta_path(from, "last").display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        opts: TrainOptions,
    }

    fn opts(flags: &[&str]) -> TrainOptions {
        Cli::parse_from(std::iter::once("train").chain(flags.iter().copied())).opts
    }

    #[test]
    fn differences_are_named_as_flags() {
        let saved = opts(&["--lr", "0.05", "--hidden", "300"]);
        let now = opts(&[
            "--lr", "0.1", "--hidden", "16,8", "--epochs", "40", "--resume", "--device", "gpu",
        ]);
        assert_eq!(
            option_differences(&saved, &now),
            ["--hidden 300 (now 16,8)", "--lr 0.05 (now 0.1)"]
        );
        let binary = opts(&["--binary", "LOC"]);
        assert_eq!(
            option_differences(&binary, &opts(&[])),
            ["--binary LOC (now unset)"]
        );
        assert!(option_differences(&saved, &saved).is_empty());
    }
}
