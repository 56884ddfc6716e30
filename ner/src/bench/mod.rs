//! `deltagrad bench`: forward/backward throughput of the window-NER model
//! and of the kernels it is made of, per backend, in a JSON format shared
//! with `benches/torch_reference.py` so the two can be compared case by
//! case. BENCHMARKS.md describes the method and the schema.

mod args;
pub mod cases;
pub mod compare;
pub mod kernels;
mod measure;
pub mod ner;
pub mod peaks;
pub mod schema;
pub mod spec;
pub mod stats;
pub mod table;

use std::collections::BTreeMap;

use deltagrad::{Device, Error, Result, schedule};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use args::Resolved;
use measure::measure_case;

pub use args::{BenchArgs, DeviceChoice};
pub use measure::time_case;
pub use schema::{CaseResult, Report, SCHEMA};
pub use spec::{CASES, Case, CaseSpec, Sizes, case_names};

/// Runs the benchmarks, prints the results table (and the comparison with
/// `--compare`), writes `--json`. A failing case does not stop the others;
/// the run then ends with an error naming it, after writing what it has.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.list_cases {
        return list_cases(args);
    }
    let out = execute(args)?;
    println!("{}", table::header(&out.report));
    println!("{}", table::results(&out.report.results));
    if let Some(t) = table::kernel_times(&out.report.results) {
        println!(
            "per-launch time, median of {} extra profiled iterations (GPU: timestamp queries; CPU: wall clock):",
            measure::PROFILE_ITERS
        );
        println!("{t}");
    } else if args.kernel_times {
        println!("kernel times: none (no case ran, or the adapter has no timestamp queries)");
    }
    if let (Some(reference), Some(path)) = (&out.reference, &args.compare) {
        print_comparison(&out.report, reference, path);
    }
    out.check()
}

/// Like `run`, returning the report instead of printing it.
pub fn run_report(args: &BenchArgs) -> Result<Report> {
    let out = execute(args)?;
    out.check()?;
    Ok(out.report)
}

/// `--list-cases`: the case table as text, or as JSON with `--json`.
fn list_cases(args: &BenchArgs) -> Result<()> {
    match (&args.json, args.json_file()) {
        (None, _) => print!("{}", spec::listing_text()),
        (Some(_), None) => print!("{}", spec::listing_json()?),
        (Some(_), Some(path)) => std::fs::write(path, spec::listing_json()?)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?,
    }
    Ok(())
}

struct Outcome {
    report: Report,
    reference: Option<Report>,
    failures: Vec<String>,
}

impl Outcome {
    fn check(&self) -> Result<()> {
        if self.failures.is_empty() {
            return Ok(());
        }
        Err(Error::Other(format!(
            "{} benchmark case(s) failed: {}",
            self.failures.len(),
            self.failures.join("; ")
        )))
    }
}

fn execute(args: &BenchArgs) -> Result<Outcome> {
    let setup = args.resolve()?;
    // Inputs and outputs are checked before minutes of measuring.
    let reference = args.compare.as_deref().map(Report::read).transpose()?;
    let mut json_out = match args.json_file() {
        Some(p) => Some((
            p,
            std::fs::File::create(p)
                .map_err(|e| Error::io(format!("creating {}", p.display()), e))?,
        )),
        None => None,
    };
    let devices = devices(args.device)?;

    let per_case = (setup.warmup + setup.iters) as u64;
    let bar = ProgressBar::new(per_case * (setup.cases.len() * devices.len()) as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} iterations  {msg}",
    ) {
        bar.set_style(style);
    }
    let mut host = schema::Host::detect();
    let mut results = Vec::new();
    let mut failures = Vec::new();
    schedule::with_fusion(!args.unfused, || {
        for device in &devices {
            for spec in &setup.cases {
                let name = spec.name;
                bar.set_message(format!("{name} on {device}"));
                match measure_case(spec, device, &setup, &bar) {
                    Ok(mut r) => {
                        r.variant = variant(args).to_string();
                        results.push(r);
                    }
                    Err(e) => {
                        bar.suspend(|| eprintln!("bench: {name} on {device} failed: {e}"));
                        failures.push(format!("{name} on {device}: {e}"));
                    }
                }
            }
        }
    });
    bar.finish_and_clear();
    host.loadavg_end = schema::loadavg();

    let report = Report {
        schema: SCHEMA.to_string(),
        tool: format!("deltagrad {}", env!("CARGO_PKG_VERSION")),
        host,
        settings: settings(args, &setup),
        results,
    };
    if let Some((path, file)) = json_out.as_mut() {
        use std::io::Write;
        let text = report.to_json()?;
        file.write_all(text.as_bytes())
            .and_then(|_| file.write_all(b"\n"))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    Ok(Outcome {
        report,
        reference,
        failures,
    })
}

fn variant(args: &BenchArgs) -> &'static str {
    if args.unfused { "unfused" } else { "fused" }
}

fn devices(choice: DeviceChoice) -> Result<Vec<Device>> {
    Ok(match choice {
        DeviceChoice::Cpu => vec![Device::cpu()],
        DeviceChoice::Gpu => vec![Device::gpu()?],
        DeviceChoice::All => match Device::gpu() {
            Ok(g) => vec![Device::cpu(), g],
            Err(e) => {
                eprintln!("bench: no GPU ({e}); measuring the CPU only");
                vec![Device::cpu()]
            }
        },
    })
}

fn settings(args: &BenchArgs, setup: &Resolved) -> BTreeMap<String, Value> {
    [
        ("warmup", Value::from(setup.warmup)),
        ("iters", Value::from(setup.iters)),
        ("fused", Value::from(!args.unfused)),
        ("tiny", Value::from(args.tiny)),
        ("kernel_times", Value::from(args.kernel_times)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn print_comparison(ours: &Report, theirs: &Report, path: &std::path::Path) {
    let rows = compare::compare(ours, theirs);
    let file = path.display();
    if rows.is_empty() {
        println!(
            "compare: no result in {file} has the case name, device and shape of a result here"
        );
        return;
    }
    println!(
        "compare with {file} ({}); theirs/ours above 1 means this run is faster:",
        theirs.tool
    );
    println!("{}", table::comparisons(&rows));
}
