//! Crash-safe training: resuming continues bit for bit; the same seed gives
//! the same model; a fault stops training with a message.

mod common;

use std::path::{Path, PathBuf};

use clap::Parser;
use deltagrad_ner::options::TrainOptions;
use deltagrad_ner::train::train;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    opts: TrainOptions,
}

fn opts(out: &Path, extra: &[&str]) -> TrainOptions {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ner");
    let mut argv: Vec<String> = [
        "train",
        "--no-fetch",
        "--quiet",
        "--hidden",
        "16",
        "--batch",
        "16",
        "--grad-norm-every",
        "7",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.extend(["--data".into(), fixtures.display().to_string()]);
    argv.extend(["--out".into(), out.display().to_string()]);
    if !extra.contains(&"--device") {
        argv.extend(["--device".into(), "cpu".into()]);
    }
    argv.extend(extra.iter().map(|s| s.to_string()));
    Args::parse_from(argv).opts
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("deltagrad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("last.safetensors")).unwrap()
}

/// "2 epochs" and "1 epoch, then `--resume` for the second" must give the
/// same weights, bit for bit, with SGD and with Adam (whose moments and step
/// count the checkpoint carries), dropout on (its masks come from the
/// epoch's seeded generator), on `device`.
fn resume_is_bit_identical(device: &str, extra: &[&str]) {
    for optimizer in ["sgd", "adam"] {
        let a = scratch(&format!("resume-a-{device}-{optimizer}"));
        let b = scratch(&format!("resume-b-{device}-{optimizer}"));
        let mut common = vec![
            "--optimizer",
            optimizer,
            "--patience",
            "9",
            "--dropout",
            "0.2",
            "--device",
            device,
        ];
        common.extend(extra);
        let mut two = common.clone();
        two.extend(["--epochs", "2"]);
        let r = train(&opts(&a, &two)).unwrap();
        assert_eq!(
            r.device.starts_with("wgpu"),
            device == "gpu",
            "{}",
            r.device
        );
        let mut one = common.clone();
        one.extend(["--epochs", "1"]);
        train(&opts(&b, &one)).unwrap();
        assert_ne!(
            weights(&a),
            weights(&b),
            "{device} {optimizer}: one epoch already equals two?"
        );
        let mut resume = two.clone();
        resume.push("--resume");
        train(&opts(&b, &resume)).unwrap();
        assert!(
            weights(&a) == weights(&b),
            "{device} {optimizer}: resumed run differs"
        );
        let lines = std::fs::read_to_string(b.join("metrics.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 2, "metrics kept across the resume");
        let _ = std::fs::remove_dir_all(&a);
        let _ = std::fs::remove_dir_all(&b);
    }
}

#[test]
fn two_epochs_equal_one_then_resume_one_bit_for_bit() {
    resume_is_bit_identical("cpu", &[]);
}

/// The same on the GPU (a software adapter in CI), on a smaller corpus.
#[test]
fn two_epochs_equal_one_then_resume_one_bit_for_bit_on_the_gpu() {
    if common::gpu().is_none() {
        return;
    }
    resume_is_bit_identical("gpu", &["--max-train-sentences", "120"]);
}

#[test]
fn same_seed_same_model_other_seed_other_model() {
    let a = scratch("seed-a");
    let b = scratch("seed-b");
    let c = scratch("seed-c");
    train(&opts(&a, &["--epochs", "1", "--seed", "3"])).unwrap();
    train(&opts(&b, &["--epochs", "1", "--seed", "3"])).unwrap();
    train(&opts(&c, &["--epochs", "1", "--seed", "4"])).unwrap();
    assert!(weights(&a) == weights(&b));
    assert!(weights(&a) != weights(&c));
    for d in [a, b, c] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn divergence_stops_with_the_step_and_the_tensors() {
    let out = scratch("diverge");
    let err = train(&opts(
        &out,
        &["--epochs", "1", "--lr", "1e30", "--lr-decay", "0"],
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("epoch 1, step"), "{err}");
    assert!(
        err.contains("non-finite") || err.contains("gradient of"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn gradient_norms_are_logged_and_clipping_runs() {
    let out = scratch("norms");
    let r = train(&opts(&out, &["--epochs", "1", "--clip-norm", "0.5"])).unwrap();
    let norms = &r.epochs[0].grad_norms;
    assert!(norms.iter().any(|(n, _)| n == "embeddings"), "{norms:?}");
    assert!(norms.iter().any(|(n, _)| n == "W1"), "{norms:?}");
    assert!(norms.iter().all(|(_, v)| v.is_finite() && *v >= 0.0));
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn same_seed_same_model_on_the_gpu() {
    if common::gpu().is_none() {
        return;
    }
    let a = scratch("gpu-seed-a");
    let b = scratch("gpu-seed-b");
    let gpu = [
        "--epochs",
        "1",
        "--device",
        "gpu",
        "--max-train-sentences",
        "120",
    ];
    train(&opts(&a, &gpu)).unwrap();
    train(&opts(&b, &gpu)).unwrap();
    assert!(
        weights(&a) == weights(&b),
        "two GPU runs with one seed differ"
    );
    for d in [a, b] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Two epochs of `train` on the CPU with `var` set to `value` (removed
/// when empty): the train losses' bits, the checkpoint and stderr.
fn cpu_run(var: &str, value: &str) -> (Vec<u64>, Vec<u8>, String) {
    let out = scratch(&format!("{var}-{value}"));
    let mut cmd = common::bin();
    cmd.args(["train", "--no-fetch", "--quiet", "--device", "cpu"])
        .args(["--epochs", "2", "--batch", "512", "--hidden", "128"])
        .arg("--data")
        .arg(common::fixtures())
        .arg("--out")
        .arg(&out)
        .env_remove(var);
    if !value.is_empty() {
        cmd.env(var, value);
    }
    let o = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{var}={value}: {stderr}");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let losses: Vec<u64> = metrics
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["train_loss"].as_f64().unwrap().to_bits()
        })
        .collect();
    assert_eq!(losses.len(), 2, "{metrics}");
    let model = weights(&out);
    let _ = std::fs::remove_dir_all(&out);
    (losses, model, stderr)
}

/// `train` on the CPU writes the same losses and the same checkpoint, byte
/// for byte, on 1 thread, the default count and 3 threads: the batch and
/// hidden layer are large enough that every step splits its matmuls,
/// element-wise work and reductions over threads. An unusable
/// `DELTAGRAD_THREADS` is a warning, then the default.
#[test]
fn same_model_at_any_cpu_thread_count() {
    let mut runs = Vec::new();
    for threads in ["1", "", "3", "abc"] {
        let (losses, model, stderr) = cpu_run("DELTAGRAD_THREADS", threads);
        assert_eq!(
            stderr.contains("DELTAGRAD_THREADS=\"abc\""),
            threads == "abc",
            "{stderr}"
        );
        runs.push((threads, losses, model));
    }
    let (_, losses, model) = &runs[0];
    for (threads, l, m) in &runs[1..] {
        assert_eq!(l, losses, "losses with DELTAGRAD_THREADS={threads:?}");
        assert!(m == model, "checkpoint with DELTAGRAD_THREADS={threads:?}");
    }
}

/// The same, byte for byte, whichever GEMM multiplies f32 on the CPU: the
/// crate's AVX-512 and AVX2 kernels sum in `matrixmultiply`'s order. A
/// kernel this CPU lacks, or a name that is none, is a warning, then the
/// widest kernel the CPU has.
#[test]
fn same_model_whichever_cpu_gemm() {
    let (losses, model, _) = cpu_run("DELTAGRAD_CPU_GEMM", "matrixmultiply");
    for kernel in ["avx512", "avx2", "", "bogus"] {
        let (l, m, stderr) = cpu_run("DELTAGRAD_CPU_GEMM", kernel);
        assert_eq!(
            stderr.contains("DELTAGRAD_CPU_GEMM=\"bogus\" is none of"),
            kernel == "bogus",
            "{stderr}"
        );
        assert_eq!(l, losses, "losses with DELTAGRAD_CPU_GEMM={kernel:?}");
        assert!(m == model, "checkpoint with DELTAGRAD_CPU_GEMM={kernel:?}");
    }
    // The choice takes: `bench` names the kernel that ran.
    let o = common::bin()
        .args([
            "bench",
            "--device",
            "cpu",
            "--cases",
            "matmul-1024",
            "--tiny",
        ])
        .env("DELTAGRAD_CPU_GEMM", "matrixmultiply")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("f32 GEMM matrixmultiply"), "{stdout}");
}
