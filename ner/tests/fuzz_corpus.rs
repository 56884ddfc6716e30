//! CI cannot run cargo-fuzz, so this replays every file of
//! `fuzz/corpus/<target>/` through the fuzz targets' own entry points
//! (`fuzz/fuzz_targets/common`), then feeds each target a fixed set of
//! seeded mutants of its corpus. Readers may return errors; a panic fails.
//! Crash inputs that the fuzzer found stay in the corpus as `crash-*`
//! files, so they are replayed here for good.

#[path = "../fuzz/fuzz_targets/common/mod.rs"]
mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// Mutants per target: enough to wander off the seeds, few enough for a
/// debug build to finish in seconds.
const MUTANTS: usize = 2_000;

/// xorshift64*: deterministic, so a failing mutant is the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that tend to matter to these readers: separators, signs, digits,
/// the NUL that splits checkpoint inputs, and UTF-8 lead/continuation bytes.
const INTERESTING: &[u8] = b"\0\n\r\t -.e0189\"{}[]:,IBO\xc3\xa9\xe2\x80\xf0\xff";

fn mutate(rng: &mut XorShift, seed: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(m.len() + 1);
        match rng.below(6) {
            0 if at < m.len() => m[at] ^= 1 << rng.below(8),
            1 if at < m.len() => m[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => m.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            3 if at < m.len() => {
                let end = (at + 1 + rng.below(16)).min(m.len());
                m.drain(at..end);
            }
            4 if at < m.len() => {
                // Duplicating a run makes long lines and repeated rows.
                let end = (at + 1 + rng.below(64)).min(m.len());
                let run = m[at..end].to_vec();
                m.splice(at..at, run);
            }
            5 => m.truncate(at),
            _ => m.push(rng.next() as u8),
        }
    }
    m
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let out: Vec<_> = files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// Runs `entry` on every corpus file and on the mutants, reporting which
/// input panicked (a mutant is also written out, to reproduce with).
fn replay(target: &str, entry: impl Fn(&[u8])) {
    let seeds = corpus(target);
    for (path, bytes) in &seeds {
        if catch_unwind(AssertUnwindSafe(|| entry(bytes))).is_err() {
            panic!("{target}: corpus file {} panicked", path.display());
        }
    }
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ target.len() as u64);
    for i in 0..MUTANTS {
        let (path, seed) = &seeds[i % seeds.len()];
        let mutant = mutate(&mut rng, seed);
        if catch_unwind(AssertUnwindSafe(|| entry(&mutant))).is_err() {
            let out = std::env::temp_dir().join(format!("{target}-mutant-{i}"));
            std::fs::write(&out, &mutant).unwrap();
            panic!(
                "{target}: mutant {i} of {} panicked; input saved as {}",
                path.display(),
                out.display()
            );
        }
    }
}

#[test]
fn conll_corpus_and_mutants() {
    replay("conll", common::conll);
}

#[test]
fn glove_corpus_and_mutants() {
    replay("glove", common::glove);
}

#[test]
fn glove_gz_corpus_and_mutants() {
    replay("glove_gz", common::glove_gz);
}

#[test]
fn tokenize_corpus_and_mutants() {
    replay("tokenize", common::tokenize);
}

#[test]
fn checkpoint_corpus_and_mutants() {
    let dir = common::scratch_dir("fuzz-corpus-ckpt");
    replay("checkpoint", |d| common::checkpoint(d, &dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The corpus's checkpoint seeds must load, or the fuzzer would start from
/// inputs that all fail at the first check and never reach the deep ones.
#[test]
fn checkpoint_seeds_are_loadable() {
    let dir = common::scratch_dir("fuzz-seed-ckpt");
    for (path, bytes) in corpus("checkpoint") {
        let name = path.file_name().unwrap().to_string_lossy();
        if !name.contains("valid-") {
            continue;
        }
        let (json, weights) = common::split_checkpoint(&bytes);
        std::fs::write(dir.join("s.json"), json).unwrap();
        std::fs::write(dir.join("s.safetensors"), weights).unwrap();
        let r = deltagrad_ner::model_io::load(&dir, "s", &deltagrad::Device::cpu());
        assert!(r.is_ok(), "{name}: {:?}", r.err());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Rewrites the checkpoint seeds from a freshly saved tiny model:
/// `cargo test --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes fuzz/corpus/checkpoint; run by hand after a format change"]
fn regenerate_checkpoint_seeds() {
    let dir = common::scratch_dir("fuzz-regen");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/checkpoint");
    let binary = [common::TINY, &["--binary", "PER"]].concat();
    let variants: [(&str, &[&str]); 3] = [
        ("valid-tiny", common::TINY),
        (
            "valid-nocaps-2layers",
            &["--cap-dim", "0", "--hidden", "2,2"],
        ),
        ("valid-binary", &binary),
    ];
    for (name, flags) in variants {
        common::save_tiny_model(&dir, name, flags).unwrap();
        let json = std::fs::read(dir.join(format!("{name}.json"))).unwrap();
        let weights = std::fs::read(dir.join(format!("{name}.safetensors"))).unwrap();
        let sha = deltagrad_ner::files::sha256_hex(&weights);
        let text = String::from_utf8(json).unwrap();
        let placeholder = std::str::from_utf8(common::SHA_PLACEHOLDER).unwrap();
        let json = text.replace(&sha, placeholder);
        let seed = [json.as_bytes(), b"\0", &weights].concat();
        std::fs::write(out.join(name), seed).unwrap();
        // One seed keeps the real checksum, so the fuzzer also starts from
        // input where tampering with the weights trips the checksum check.
        if name == "valid-tiny" {
            let seed = [text.as_bytes(), b"\0", &weights].concat();
            std::fs::write(out.join(format!("sha-{name}")), seed).unwrap();
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
