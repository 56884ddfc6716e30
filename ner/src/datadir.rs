//! Where a corpus is read from, and the checks on what is read.
//!
//! `train` reads `train.txt`, `valid.txt` and `test.txt` from `--data`. The
//! default folder, `data/conll2003`, is the only one anything is written
//! to: when it lacks the splits, `train` fetches CoNLL-2003 into it (and
//! fetching never overwrites a file). A folder the user names is only ever
//! read; a split missing there is an error naming the folder and the files.
//!
//! Splits are read with the line each sentence starts on, so that a tag the
//! model cannot know (an entity type that the training split lacks, or that
//! a saved model was not trained on) is reported at its file and line.

use std::path::{Component, Path, PathBuf};

use deltagrad::{Error, Result};

use crate::conll::{self, Sentence, Tag, parse_tag};
use crate::fetch;

/// The data folder used when `--data` is not given (relative to the
/// working directory); the only one CoNLL-2003 is fetched into unasked.
pub const DEFAULT_DATA: &str = "data/conll2003";

/// The files of a data folder.
pub const SPLIT_FILES: [&str; 3] = ["train.txt", "valid.txt", "test.txt"];

/// Whether `dir` is the default data folder, however it is spelled
/// (`data/conll2003`, `./data/conll2003/`, or its absolute path).
pub fn is_default(dir: &Path) -> bool {
    normalize(dir) == normalize(Path::new(DEFAULT_DATA))
}

fn normalize(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    abs.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// The split files `dir` lacks (all three when it is not a folder).
pub fn missing_splits(dir: &Path) -> Vec<&'static str> {
    SPLIT_FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect()
}

/// `a`, `a and b`, `a, b and c`.
fn and_list<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

/// Makes sure `dir` holds the three splits. Only the default folder is
/// fetched into (when `fetch` is set); for any other folder a missing split
/// is an error and nothing is written.
pub fn ensure_splits(dir: &Path, fetch: bool) -> Result<()> {
    let missing = missing_splits(dir);
    if missing.is_empty() {
        return Ok(());
    }
    let d = dir.display();
    if !is_default(dir) {
        return Err(user_folder_error(dir, &missing));
    }
    if !fetch {
        return Err(Error::Other(format!(
            "{d} (the default data folder) lacks {}; run `deltagrad data fetch` to download \
             CoNLL-2003 into it (or train without --no-fetch), or pass --data DIR naming a folder \
             that holds train.txt, valid.txt and test.txt",
            and_list(&missing)
        )));
    }
    eprintln!(
        "{d} (the default data folder) lacks {}: fetching CoNLL-2003 into it",
        and_list(&missing)
    );
    fetch::fetch_conll2003(dir)?;
    Ok(())
}

fn user_folder_error(dir: &Path, missing: &[&str]) -> Error {
    let d = dir.display();
    let need = "a data folder holds train.txt, valid.txt and test.txt (CoNLL format)";
    let what = if dir.is_dir() {
        format!("--data {d} lacks {}; {need}", and_list(missing))
    } else if dir.exists() {
        format!("--data {d} is a file, not a folder; {need}")
    } else {
        format!("--data {d}: no such folder; {need}")
    };
    Error::Other(format!(
        "{what}. A folder given with --data is only read, never fetched into: for CoNLL-2003, \
         leave out --data (it is fetched into {DEFAULT_DATA}) or run `deltagrad data fetch --into DIR`"
    ))
}

/// One split as read: tags as in the file (IOB1 or IOB2), and the line
/// each sentence starts on.
#[derive(Debug, Clone)]
pub struct Split {
    pub path: PathBuf,
    pub sentences: Vec<Sentence>,
    /// `lines[k]` is the line of sentence `k`'s first token; its token `i`
    /// is on line `lines[k] + i`.
    pub lines: Vec<usize>,
}

impl Split {
    pub fn read(path: &Path) -> Result<Split> {
        let (sentences, lines) = conll::read_conll_lines(path)?;
        Ok(Split {
            path: path.to_path_buf(),
            sentences,
            lines,
        })
    }

    /// The entity types of the tags, in first-seen order.
    pub fn types(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in self.sentences.iter().flat_map(|s| &s.tags) {
            if let Some(Tag::B(ty) | Tag::I(ty)) = parse_tag(t)
                && !out.iter().any(|o| o == ty)
            {
                out.push(ty.to_string());
            }
        }
        out
    }

    /// The first tag whose entity type is not in `known`, as (line, tag).
    pub fn first_unknown(&self, known: &[String]) -> Option<(usize, &str)> {
        self.sentences
            .iter()
            .zip(&self.lines)
            .flat_map(|(s, &line)| s.tags.iter().enumerate().map(move |(i, t)| (line + i, t)))
            .find(|(_, t)| {
                matches!(parse_tag(t), Some(Tag::B(ty) | Tag::I(ty)) if !known.iter().any(|k| k == ty))
            })
            .map(|(line, t)| (line, t.as_str()))
    }

    /// Errors at the first tag whose type is not in `known`; `why` turns
    /// the tag into the rest of the message.
    pub fn check_types(&self, known: &[String], why: impl Fn(&str) -> String) -> Result<()> {
        match self.first_unknown(known) {
            None => Ok(()),
            Some((line, tag)) => Err(Error::Parse {
                file: self.path.display().to_string(),
                line,
                msg: why(tag),
            }),
        }
    }

    /// The sentences with IOB2 tags.
    pub fn into_iob2(mut self) -> Vec<Sentence> {
        conll::to_iob2(&mut self.sentences);
        self.sentences
    }
}

/// The entity type of a tag (`B-LOC` → `LOC`), or the tag itself.
fn type_of(tag: &str) -> &str {
    match parse_tag(tag) {
        Some(Tag::B(ty) | Tag::I(ty)) => ty,
        _ => tag,
    }
}

/// Reads `dir`'s train, valid and test splits (IOB2). Every entity type of
/// valid and test must occur in train: the model can only predict tags it
/// was trained on.
pub fn read_splits(dir: &Path) -> Result<[Vec<Sentence>; 3]> {
    let [train, valid, test] = SPLIT_FILES.map(|f| dir.join(f));
    let train = Split::read(&train)?;
    let valid = Split::read(&valid)?;
    let test = Split::read(&test)?;
    let types = train.types();
    let listed = if types.is_empty() {
        "none: every tag is O".to_string()
    } else {
        types.join(", ")
    };
    for split in [&valid, &test] {
        split.check_types(&types, |tag| {
            format!(
                "tag {tag:?}: entity type {} does not occur in {} (its types: {listed}), so a model \
                 trained on it can never predict this tag; add {} examples to the training split, or \
                 retag them here",
                type_of(tag),
                train.path.display(),
                type_of(tag)
            )
        })?;
    }
    Ok([train.into_iob2(), valid.into_iob2(), test.into_iob2()])
}

/// The split names `eval --split` accepts, and the files they mean.
const SPLIT_NAMES: [(&str, &str); 4] = [
    ("test", "test.txt"),
    ("valid", "valid.txt"),
    ("dev", "valid.txt"),
    ("train", "train.txt"),
];

/// The file `eval --split` names: `test`, `valid` (or `dev`), `train` in
/// `data` (the `--data` flag) or else in `trained_on` (the folder the model
/// records), or the path of a CoNLL file.
pub fn split_path(split: &str, data: Option<&Path>, trained_on: &Path) -> Result<PathBuf> {
    let Some((_, file)) = SPLIT_NAMES.iter().find(|(n, _)| *n == split) else {
        let p = PathBuf::from(split);
        if p.is_file() {
            return Ok(p);
        }
        return Err(Error::Other(format!(
            "--split {split}: expected test, valid (or dev), train, or the path of a CoNLL file, \
             and there is no file {split}"
        )));
    };
    if let Some(dir) = data {
        return Ok(dir.join(file));
    }
    let path = trained_on.join(file);
    if path.is_file() {
        return Ok(path);
    }
    let how = if trained_on.is_relative() {
        format!(
            "the model records its data folder as {}, a path relative to the folder it was trained \
             from (models trained now record absolute paths)",
            trained_on.display()
        )
    } else {
        format!(
            "the model was trained on {}, which holds no {file} now",
            trained_on.display()
        )
    };
    Err(Error::Other(format!(
        "--split {split}: {} not found: {how}; pass --data DIR naming the folder that holds {file}",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nerdata-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_default_folder_however_spelled() {
        assert!(is_default(Path::new("data/conll2003")));
        assert!(is_default(Path::new("./data/conll2003/")));
        assert!(is_default(&std::path::absolute("data/conll2003").unwrap()));
        assert!(!is_default(Path::new("data/other")));
        assert!(!is_default(Path::new("/data/conll2003")));
    }

    #[test]
    fn a_user_folder_is_never_fetched_into() {
        let dir = scratch("partial");
        std::fs::write(dir.join("train.txt"), b"Ann B-PER\n").unwrap();
        let err = ensure_splits(&dir, true).unwrap_err().to_string();
        for needle in [
            &dir.display().to_string(),
            "lacks valid.txt and test.txt",
            "only read",
            "data fetch --into",
        ] {
            assert!(err.contains(needle), "{needle:?} missing from: {err}");
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let file = dir.join("train.txt");
        let err = ensure_splits(&file, true).unwrap_err().to_string();
        assert!(err.contains("is a file, not a folder"), "{err}");
        let err = ensure_splits(&dir.join("typo"), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such folder"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_type_missing_from_train_is_named_with_file_and_line() {
        let dir = scratch("types");
        std::fs::write(dir.join("train.txt"), "Ann B-PER\nsaw O\nRome B-LOC\n").unwrap();
        std::fs::write(dir.join("valid.txt"), "Ann B-PER\n").unwrap();
        std::fs::write(
            dir.join("test.txt"),
            "Ann B-PER\n\n-DOCSTART- O\n\nin O\nOslo I-CITY\n",
        )
        .unwrap();
        let err = read_splits(&dir).unwrap_err().to_string();
        let test = dir.join("test.txt").display().to_string();
        for needle in [
            format!("{test}:6:"),
            "\"I-CITY\"".to_string(),
            "entity type CITY does not occur in".to_string(),
            "its types: PER, LOC".to_string(),
        ] {
            assert!(err.contains(&needle), "{needle:?} missing from: {err}");
        }
        std::fs::write(dir.join("test.txt"), "Oslo I-LOC\n").unwrap();
        let [train, _, test] = read_splits(&dir).unwrap();
        assert_eq!(train[0].tags, ["B-PER", "O", "B-LOC"]);
        assert_eq!(test[0].tags, ["B-LOC"], "converted to IOB2");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn eval_split_names_and_paths() {
        let dir = scratch("split");
        std::fs::write(dir.join("valid.txt"), "a O\n").unwrap();
        assert_eq!(
            split_path("dev", None, &dir).unwrap(),
            dir.join("valid.txt")
        );
        assert_eq!(
            split_path("valid", Some(Path::new("/x")), &dir).unwrap(),
            Path::new("/x/valid.txt")
        );
        let file = dir.join("valid.txt");
        assert_eq!(
            split_path(file.to_str().unwrap(), None, Path::new("/nowhere")).unwrap(),
            file
        );
        let err = split_path("devel", None, &dir).unwrap_err().to_string();
        assert!(
            err.contains("expected test, valid (or dev), train, or the path"),
            "{err}"
        );
        let err = split_path("test", None, Path::new("data/conll2003-moved"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("relative to the folder it was trained from"),
            "{err}"
        );
        assert!(err.contains("--data DIR"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
