//! The bench code paths at tiny sizes, one iteration, on the CPU: every case
//! runs, the JSON it writes parses, and `--compare` reads a PyTorch file;
//! on the GPU where there is one, with `--kernel-times`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use deltagrad::backend::wgpu::{WgpuBackend, WgpuOptions};
use deltagrad_ner::bench::{self, BenchArgs, Report, SCHEMA, case_names, compare::compare, table};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn parse(flags: &[&str]) -> Result<BenchArgs, clap::Error> {
    let argv = std::iter::once("bench").chain(flags.iter().copied());
    Cli::try_parse_from(argv).map(|c| c.args)
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("deltagrad-bench-{}-{name}", std::process::id()))
}

/// A PyTorch-script file with one eager and one compiled ner-small-step on
/// the CPU, at the shape `shape` was measured with.
fn torch_json(shape: &serde_json::Value) -> String {
    let result = |variant: &str, ms: f64| {
        serde_json::json!({
            "case": "ner-small-step", "device": "cpu", "backend": "torch 2.5.1 cpu",
            "variant": variant, "shape": shape, "warmup": 1, "iters": 1,
            "median_ms": ms, "min_ms": ms, "max_ms": ms, "p10_ms": ms, "p90_ms": ms,
        })
    };
    serde_json::json!({
        "schema": "deltagrad-bench/1",
        "tool": "torch 2.5.1",
        "host": { "os": "linux", "torch_threads": 2 },
        "results": [
            result("eager", 2.0),
            result("compile", 1.0),
            // Same case on another device kind: must not be matched.
            { "case": "ner-small-step", "device": "gpu", "backend": "cuda", "variant": "eager",
              "shape": shape, "iters": 1, "median_ms": 0.5, "min_ms": 0.5,
              "max_ms": 0.5, "p10_ms": 0.5, "p90_ms": 0.5 },
        ]
    })
    .to_string()
}

#[test]
fn every_case_runs_tiny_and_writes_json() {
    let json = temp("all.json");
    let args = parse(&[
        "--tiny",
        "--device",
        "cpu",
        "--json",
        json.to_str().unwrap(),
    ])
    .unwrap();
    bench::run(&args).unwrap();

    let text = std::fs::read_to_string(&json).unwrap();
    let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(raw["schema"], SCHEMA);
    let report = Report::read(&json).unwrap();
    let names = case_names();
    assert_eq!(report.results.len(), names.len());
    for (r, name) in report.results.iter().zip(names) {
        assert_eq!(&r.case, name);
        assert_eq!(r.device, "cpu");
        let threads = deltagrad::Device::cpu().cpu_threads().unwrap();
        let plural = if threads == 1 { "" } else { "s" };
        let gemm = deltagrad::backend::cpu::f32_gemm_kernel();
        assert_eq!(
            r.backend,
            format!("cpu, {threads} thread{plural}, f32 GEMM {gemm}")
        );
        assert_eq!(r.iters, 1);
        for v in [r.median_ms, r.min_ms, r.max_ms, r.p10_ms, r.p90_ms] {
            assert!(v.is_finite() && v > 0.0, "{name}: {v}");
        }
        // The CPU backend tracks no device memory.
        assert_eq!(r.peak_bytes, None, "{name}");
        assert_eq!(r.peak_fraction, None, "{name}: no known CPU peak");
        let rate = r.gflops.or(r.gbps).unwrap();
        assert!(rate.is_finite() && rate > 0.0, "{name}");
        assert_eq!(r.windows_per_s.is_some(), name.starts_with("ner"), "{name}");
    }
    let _ = std::fs::remove_file(&json);
}

#[test]
fn compare_matches_case_device_and_shape() {
    let ours_path = temp("ours.json");
    let torch_path = temp("torch.json");
    let args = parse(&[
        "--tiny",
        "--unfused",
        "--cases",
        "ner-small-step,tanh-fwd",
        "--json",
        ours_path.to_str().unwrap(),
    ])
    .unwrap();
    let ours = bench::run_report(&args).unwrap();
    assert_eq!(ours.results[0].variant, "unfused");
    let shape = serde_json::to_value(&ours.results[0].shape).unwrap();
    std::fs::write(&torch_path, torch_json(&shape)).unwrap();

    // The full path: loads the file before measuring, prints the table.
    let with_compare = BenchArgs {
        compare: Some(torch_path.clone()),
        ..args.clone()
    };
    bench::run(&with_compare).unwrap();

    let torch = Report::read(&torch_path).unwrap();
    let rows = compare(&ours, &torch);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let ours_ms = ours.results[0].median_ms;
    for (row, (variant, ms)) in rows.iter().zip([("eager", 2.0), ("compile", 1.0)]) {
        assert_eq!(
            (row.case.as_str(), row.device.as_str()),
            ("ner-small-step", "cpu")
        );
        assert_eq!(row.theirs_variant, variant);
        assert!((row.ratio - ms / ours_ms).abs() < 1e-9);
    }

    // Different shapes are not compared.
    let full = bench::Sizes::full().ner_small;
    let other = serde_json::json!({ "batch": full.batch, "dim": full.dim });
    std::fs::write(&torch_path, torch_json(&other)).unwrap();
    assert!(compare(&ours, &Report::read(&torch_path).unwrap()).is_empty());

    let _ = std::fs::remove_file(&ours_path);
    let _ = std::fs::remove_file(&torch_path);
}

#[test]
fn bad_flags_are_clear_errors() {
    let err = |flags: &[&str]| {
        let args = parse(flags).unwrap();
        bench::run(&args).unwrap_err().to_string()
    };
    let e = err(&["--cases", "matmul-1024,conv-3x3"]);
    assert!(e.contains("conv-3x3") && e.contains("known cases"), "{e}");
    let e = err(&["--tiny", "--iters", "0"]);
    assert!(e.contains("--iters"), "{e}");
    let e = err(&["--tiny", "--hidden", "0", "--cases", "ner-small-fwd"]);
    assert!(e.contains("--hidden"), "{e}");
    let missing = temp("missing.json");
    let e = err(&["--tiny", "--compare", missing.to_str().unwrap()]);
    assert!(e.contains("missing.json"), "{e}");

    let not_ours = temp("not-ours.json");
    std::fs::write(&not_ours, r#"{"schema": "other/2", "results": []}"#).unwrap();
    let e = err(&["--tiny", "--compare", not_ours.to_str().unwrap()]);
    assert!(e.contains("other/2"), "{e}");
    let _ = std::fs::remove_file(&not_ours);

    assert!(parse(&["--device", "tpu"]).is_err());
    let e = err(&["--tiny", "--json"]);
    assert!(e.contains("--json needs a FILE"), "{e}");
    let e = err(&["--tiny", "--json", "-"]);
    assert!(e.contains("--json needs a FILE"), "{e}");
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ner/ is in the repository")
}

/// `benches/cases.json`, which `benches/torch_reference.py` reads, is what
/// `deltagrad bench --list-cases --json` prints: the PyTorch side runs the
/// cases and shapes that this side runs.
#[test]
fn committed_case_list_is_current() {
    let out = Command::new(env!("CARGO_BIN_EXE_deltagrad"))
        .args(["bench", "--list-cases", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let path = repo_root().join("benches/cases.json");
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed == printed,
        "{} differs from `deltagrad bench --list-cases --json`; rewrite it from the repository root with\n    \
         cargo run -- bench --list-cases --json > benches/cases.json",
        path.display()
    );

    // --list-cases --json FILE writes the same; the plain list names each case.
    let file = temp("cases.json");
    let args = parse(&["--list-cases", "--json", file.to_str().unwrap()]).unwrap();
    bench::run(&args).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), printed);
    let _ = std::fs::remove_file(&file);
    assert!(
        bench::run_report(&args).is_err(),
        "--list-cases measures nothing"
    );
}

/// Runs python3 on `args` (a script in the repository first); `None`, the
/// test skipped, where there is no python3, unless
/// `DELTAGRAD_REQUIRE_PYTHON=1` (as in CI).
fn python(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("python3")
        .arg(repo_root().join(args[0]))
        .args(&args[1..])
        .output()
    {
        Ok(out) => Some(out),
        Err(e) => {
            assert!(
                std::env::var("DELTAGRAD_REQUIRE_PYTHON").as_deref() != Ok("1"),
                "DELTAGRAD_REQUIRE_PYTHON=1 but no python3: {e}"
            );
            eprintln!("skipping: no python3 ({e})");
            None
        }
    }
}

/// The Python script reads the committed list (it needs no PyTorch for
/// `--list-cases`).
#[test]
fn torch_reference_reads_the_case_list() {
    let Some(out) = python(&["benches/torch_reference.py", "--list-cases"]) else {
        return;
    };
    assert!(out.status.success(), "{out:?}");
    let names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(names, case_names());
}

/// The GPU path (sync before the timer stops, memory counters, per-launch
/// times) where an adapter exists; lavapipe counts. Three cases keep shader
/// compilation short. The only GPU test here: `--kernel-times` switches
/// profiling on the process-wide device, which would mix with another's.
#[test]
fn gpu_cases_run_tiny_when_a_gpu_exists() {
    if common::gpu().is_none() {
        return;
    }
    let json = temp("gpu.json");
    let args = parse(&[
        "--tiny",
        "--device",
        "gpu",
        "--cases",
        "ner-small-step,matmul-1024-tn,tanh-bwd",
        "--kernel-times",
        "--json",
        json.to_str().unwrap(),
    ])
    .unwrap();
    bench::run(&args).unwrap();
    let report = Report::read(&json).unwrap();
    assert_eq!(report.results.len(), 3);
    let probe = WgpuBackend::with_options(WgpuOptions::software_ok()).unwrap();
    let (timestamps, software) = (probe.has_timestamps(), probe.is_software());
    // A software adapter's timings measure the CPU: it says so wherever
    // the device is named.
    assert_eq!(
        table::header(&report).contains("[software adapter]"),
        software,
        "{}",
        table::header(&report)
    );
    for r in &report.results {
        assert_eq!(r.device, "gpu");
        assert_eq!(
            r.backend.ends_with(" [software adapter]"),
            software,
            "{}",
            r.backend
        );
        assert!(r.median_ms.is_finite() && r.median_ms > 0.0, "{}", r.case);
        assert!(r.peak_bytes.is_some_and(|b| b > 0), "{}", r.case);
        let Some(times) = &r.kernel_times else {
            assert!(!timestamps, "{}: the adapter has timestamp queries", r.case);
            continue;
        };
        assert!(!times.is_empty(), "{}", r.case);
        for t in times {
            assert!(t.ms.is_finite() && t.ms >= 0.0, "{}: {t:?}", r.case);
        }
        let matmuls = times
            .iter()
            .filter(|t| t.label.starts_with("matmul "))
            .count();
        match r.case.as_str() {
            "ner-small-step" => assert!(matmuls >= 4, "{times:?}"),
            "matmul-1024-tn" => assert_eq!(matmuls, 1, "{times:?}"),
            _ => assert_eq!(matmuls, 0, "{times:?}"),
        }
    }
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    if timestamps {
        let first = &raw["results"][0]["kernel_times"][0];
        assert!(
            first["label"].is_string() && first["ms"].is_number(),
            "{first}"
        );
    }
    let _ = std::fs::remove_file(&json);
}

/// `--kernel-times` on the CPU: wall time per launch in the result, none
/// without the flag. (The process-wide CPU device is shared with the other
/// tests here, so which launches land in the profile is not checked;
/// `tests/train_tiny.rs` checks that on a device of its own.)
#[test]
fn kernel_times_on_the_cpu_are_wall_times_per_launch() {
    let args = parse(&["--tiny", "--device", "cpu", "--cases", "ner-small-step"]).unwrap();
    let plain = bench::run_report(&args).unwrap();
    assert_eq!(plain.results[0].kernel_times, None);
    let text = serde_json::to_string(&plain).unwrap();
    assert!(!text.contains("kernel_times\":["), "{text}");
    let profiled = bench::run_report(&BenchArgs {
        kernel_times: true,
        ..args
    })
    .unwrap();
    let times = profiled.results[0].kernel_times.as_ref().expect("times");
    assert!(!times.is_empty());
    assert!(
        times.iter().all(|t| t.ms.is_finite() && t.ms >= 0.0),
        "{times:?}"
    );
    let table = table::kernel_times(&profiled.results).expect("a table");
    assert!(table.contains("launches; median step"), "{table}");
}

/// The interleaving script's medians, ratios and round order (its
/// doctests; they need no PyTorch).
#[test]
fn interleave_script_passes_its_doctests() {
    let Some(out) = python(&["benches/interleave.py", "--self-test"]) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("doctests passed"), "{text}");
}
