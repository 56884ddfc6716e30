//! Helpers shared by the application's integration tests (the engine's
//! tests have their own, larger set in the root `tests/common`).
#![allow(dead_code)]

use deltagrad::Device;

/// The GPU device (software adapters allowed), or `None` to skip: under
/// `DELTAGRAD_REQUIRE_GPU=1` (as in CI) a missing adapter fails instead.
pub fn gpu() -> Option<Device> {
    match Device::gpu() {
        Ok(d) => Some(d),
        Err(e) => {
            assert!(
                std::env::var("DELTAGRAD_REQUIRE_GPU").as_deref() != Ok("1"),
                "DELTAGRAD_REQUIRE_GPU=1 but no GPU adapter: {e}"
            );
            eprintln!("skipping: no GPU adapter ({e})");
            None
        }
    }
}

/// The `deltagrad` command, with the environment of a machine without a
/// display (no XDG_RUNTIME_DIR) and without the switch `main` sets, so
/// that what it prints is what a user sees.
pub fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_deltagrad"));
    c.env_remove("NODEVICE_SELECT");
    c
}

/// The invented fixture corpus (not CoNLL text).
pub fn fixtures() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ner")
}

/// An empty scratch folder under the temp dir, unique to this process.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("deltagrad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `cmd`; returns (success, stdout, stderr).
pub fn output(cmd: &mut std::process::Command) -> (bool, String, String) {
    let out = cmd.output().expect("running deltagrad");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `cmd`, which must succeed; returns (stdout, stderr).
pub fn ok(cmd: &mut std::process::Command) -> (String, String) {
    let (success, stdout, stderr) = output(cmd);
    assert!(success, "{cmd:?} failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// Runs `cmd`, which must fail; returns its stderr.
pub fn fails(cmd: &mut std::process::Command) -> String {
    let (success, stdout, stderr) = output(cmd);
    assert!(!success, "{cmd:?} succeeded:\n{stdout}\n{stderr}");
    stderr
}

/// Asserts that `text` holds every one of `needles`.
pub fn assert_has(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "{n:?} missing from:\n{text}");
    }
}

/// Every file under `dir` (recursively) with its bytes.
pub fn snapshot(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(name, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// `train` flags for a quick run on the fixture corpus on the CPU (add
/// `--epochs`).
pub const QUICK: &[&str] = &[
    "--quiet", "--device", "cpu", "--hidden", "8", "--batch", "32",
];
