#![no_main]

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

/// One scratch folder for the whole run; each input overwrites its files.
static DIR: OnceLock<PathBuf> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| common::scratch_dir("fuzz-checkpoint"));
    common::checkpoint(data, dir);
});
