//! The flags of `deltagrad bench`, checked and resolved to what will run.

use std::path::{Path, PathBuf};

use deltagrad::{Error, Result};

use super::spec::{self, CaseSpec, Sizes};

/// `--json` without a FILE, or with `-`: standard output.
const STDOUT: &str = "-";

/// Which backends to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceChoice {
    Cpu,
    Gpu,
    /// The CPU, then the GPU if one is available (skipped with a note if not).
    All,
}

/// Flags of `deltagrad bench`.
#[derive(Clone, Debug, PartialEq, clap::Args)]
pub struct BenchArgs {
    /// Backends to measure.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// Comma-separated case names (see --list-cases), or `all`.
    #[arg(long, default_value = "all")]
    pub cases: String,
    /// Print the cases (name, kind, full-size shape) instead of measuring;
    /// with --json, as JSON (what benches/cases.json holds).
    #[arg(long)]
    pub list_cases: bool,
    /// Untimed iterations before measuring [default: 3; 1 with --tiny].
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Timed iterations [default: 20; 1 with --tiny].
    #[arg(long)]
    pub iters: Option<usize>,
    /// NER cases: windows per batch (overrides every ner-* case).
    #[arg(long)]
    pub batch: Option<usize>,
    /// NER cases: word-vector dimension.
    #[arg(long)]
    pub dim: Option<usize>,
    /// NER cases: hidden units.
    #[arg(long)]
    pub hidden: Option<usize>,
    /// NER cases: output classes.
    #[arg(long)]
    pub classes: Option<usize>,
    /// NER cases: vocabulary size.
    #[arg(long)]
    pub vocab: Option<usize>,
    /// NER cases: words per window.
    #[arg(long)]
    pub window: Option<usize>,
    /// Every case at tiny sizes, one iteration (keeps the code paths tested).
    #[arg(long)]
    pub tiny: bool,
    /// Run with kernel fusion off (one launch per primitive op).
    #[arg(long)]
    pub unfused: bool,
    /// After timing, profile more iterations and print each launch's median
    /// time: GPU time from timestamp queries (where the adapter has them),
    /// wall time on the CPU backend.
    #[arg(long)]
    pub kernel_times: bool,
    /// Write the results as JSON (schema deltagrad-bench/1) to FILE. With
    /// --list-cases, the case list; a bare --json (or `-`) prints it.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = STDOUT)]
    pub json: Option<PathBuf>,
    /// Print each case's median against a JSON file from
    /// benches/torch_reference.py, matched by case name and device kind.
    #[arg(long, value_name = "FILE")]
    pub compare: Option<PathBuf>,
}

impl Default for BenchArgs {
    fn default() -> BenchArgs {
        BenchArgs {
            device: DeviceChoice::Cpu,
            cases: "all".to_string(),
            list_cases: false,
            warmup: None,
            iters: None,
            batch: None,
            dim: None,
            hidden: None,
            classes: None,
            vocab: None,
            window: None,
            tiny: false,
            unfused: false,
            kernel_times: false,
            json: None,
            compare: None,
        }
    }
}

/// The arguments checked and resolved to what will run.
pub(super) struct Resolved {
    pub cases: Vec<&'static CaseSpec>,
    pub sizes: Sizes,
    pub warmup: usize,
    pub iters: usize,
    pub kernel_times: bool,
}

impl BenchArgs {
    /// Where `--json` writes: `None` for stdout.
    pub(super) fn json_file(&self) -> Option<&Path> {
        self.json.as_deref().filter(|p| p.as_os_str() != STDOUT)
    }

    pub(super) fn resolve(&self) -> Result<Resolved> {
        if self.list_cases {
            return Err(Error::invalid(
                "bench",
                "--list-cases lists the cases; it measures nothing",
            ));
        }
        if self.json.is_some() && self.json_file().is_none() {
            return Err(Error::invalid(
                "bench",
                "--json needs a FILE for the results (a bare --json goes with --list-cases)",
            ));
        }
        let cases = spec::parse_list(&self.cases)?;
        let mut sizes = if self.tiny {
            Sizes::tiny()
        } else {
            Sizes::full()
        };
        for ner in [&mut sizes.ner_small, &mut sizes.ner_large] {
            let fields = [
                (&mut ner.batch, self.batch),
                (&mut ner.dim, self.dim),
                (&mut ner.hidden, self.hidden),
                (&mut ner.classes, self.classes),
                (&mut ner.vocab, self.vocab),
                (&mut ner.window, self.window),
            ];
            for (field, given) in fields {
                if let Some(v) = given {
                    *field = v;
                }
            }
            ner.validate()?;
        }
        let (warmup, iters) = if self.tiny { (1, 1) } else { (3, 20) };
        let iters = self.iters.unwrap_or(iters);
        if iters == 0 {
            return Err(Error::invalid("bench", "--iters must be at least 1"));
        }
        Ok(Resolved {
            cases,
            sizes,
            warmup: self.warmup.unwrap_or(warmup),
            iters,
            kernel_times: self.kernel_times,
        })
    }
}
