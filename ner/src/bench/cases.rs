//! The benchmark cases: what each one runs per iteration and how much work
//! that is, so that rates are computed the same way everywhere.

use std::collections::BTreeMap;

use deltagrad::{Device, Error, Result};

use super::kernels::{MatmulCase, TanhCase, Transpose};
use super::ner::{NerCase, NerShape};

/// Every case, in the order they run.
pub const CASE_NAMES: &[&str] = &[
    "ner-small-fwd",
    "ner-small-step",
    "ner-large-fwd",
    "ner-large-step",
    "matmul-1024",
    "matmul-2048",
    "matmul-4096",
    "matmul-1024-tn",
    "matmul-1024-nt",
    "tanh-fwd",
    "tanh-bwd",
];

/// Problem sizes. Case names stay fixed when sizes shrink (`--tiny`, the
/// criterion benches) so results remain comparable by name; the `shape` of
/// each result says what actually ran.
#[derive(Clone, Debug, PartialEq)]
pub struct Sizes {
    pub ner_small: NerShape,
    pub ner_large: NerShape,
    /// `matmul-N` multiplies N/`matmul_divisor`-sized matrices.
    pub matmul_divisor: usize,
    /// Elements of the tanh vectors.
    pub tanh_len: usize,
}

impl Sizes {
    /// The sizes the case names describe.
    pub fn full() -> Sizes {
        Sizes {
            ner_small: NerShape {
                batch: 1024,
                dim: 50,
                hidden: 100,
                classes: 5,
                vocab: 20_000,
                window: 5,
            },
            ner_large: NerShape {
                batch: 16_384,
                dim: 300,
                hidden: 1024,
                classes: 9,
                vocab: 20_000,
                window: 5,
            },
            matmul_divisor: 1,
            tanh_len: 1 << 24,
        }
    }

    /// Just big enough to run every code path (CI, smoke tests).
    pub fn tiny() -> Sizes {
        let ner = NerShape {
            batch: 8,
            dim: 4,
            hidden: 6,
            classes: 3,
            vocab: 50,
            window: 5,
        };
        Sizes {
            ner_small: ner.clone(),
            ner_large: NerShape {
                hidden: 7,
                classes: 4,
                ..ner
            },
            matmul_divisor: 64,
            tanh_len: 1 << 10,
        }
    }
}

/// How much work one iteration does; rates are these over the median time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Work {
    /// Floating-point operations counted (see each case for what counts).
    pub flops: Option<f64>,
    /// Bytes that must cross memory at least once (read + written).
    pub bytes: Option<f64>,
    /// NER windows classified.
    pub windows: Option<usize>,
}

/// Shape parameters of a case, as written to the JSON `shape` object.
pub type Shape = BTreeMap<String, usize>;

/// One benchmark, set up on one device.
pub trait Case {
    fn name(&self) -> &str;
    fn shape(&self) -> Shape;
    fn work(&self) -> Work;
    /// Untimed host-side preparation of the next iteration.
    fn prepare(&mut self) -> Result<()> {
        Ok(())
    }
    /// One timed iteration. Returns only once the device has finished it
    /// (`Device::sync`): GPU submission is asynchronous, and a timer stopped
    /// at submission measures nothing.
    fn run(&mut self) -> Result<()>;
}

/// Sets up the named case (uploads its inputs and parameters; untimed).
pub fn build(name: &str, sizes: &Sizes, device: &Device) -> Result<Box<dyn Case>> {
    let mm = |n: usize| (n / sizes.matmul_divisor.max(1)).max(1);
    Ok(match name {
        "ner-small-fwd" => Box::new(NerCase::new(name, &sizes.ner_small, false, device)?),
        "ner-small-step" => Box::new(NerCase::new(name, &sizes.ner_small, true, device)?),
        "ner-large-fwd" => Box::new(NerCase::new(name, &sizes.ner_large, false, device)?),
        "ner-large-step" => Box::new(NerCase::new(name, &sizes.ner_large, true, device)?),
        "matmul-1024" => Box::new(MatmulCase::new(name, mm(1024), Transpose::None, device)?),
        "matmul-2048" => Box::new(MatmulCase::new(name, mm(2048), Transpose::None, device)?),
        "matmul-4096" => Box::new(MatmulCase::new(name, mm(4096), Transpose::None, device)?),
        "matmul-1024-tn" => Box::new(MatmulCase::new(name, mm(1024), Transpose::A, device)?),
        "matmul-1024-nt" => Box::new(MatmulCase::new(name, mm(1024), Transpose::B, device)?),
        "tanh-fwd" => Box::new(TanhCase::new(name, sizes.tanh_len, false, device)?),
        "tanh-bwd" => Box::new(TanhCase::new(name, sizes.tanh_len, true, device)?),
        other => return Err(unknown_case(other)),
    })
}

fn unknown_case(name: &str) -> Error {
    Error::invalid(
        "bench --cases",
        format!(
            "unknown case {name:?}; known cases: all, {}",
            CASE_NAMES.join(", ")
        ),
    )
}

/// Parses `--cases`: `all`, or a comma-separated list of names (duplicates
/// dropped, order kept).
pub fn parse_list(spec: &str) -> Result<Vec<&'static str>> {
    let mut out: Vec<&'static str> = Vec::new();
    for part in spec.split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        if part == "all" {
            for n in CASE_NAMES {
                if !out.contains(n) {
                    out.push(n);
                }
            }
            continue;
        }
        let n = CASE_NAMES
            .iter()
            .find(|n| **n == part)
            .ok_or_else(|| unknown_case(part))?;
        if !out.contains(n) {
            out.push(n);
        }
    }
    if out.is_empty() {
        return Err(Error::invalid(
            "bench --cases",
            format!("no case named in {spec:?}"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_lists_parse() {
        assert_eq!(parse_list("all").unwrap().len(), CASE_NAMES.len());
        assert_eq!(
            parse_list(" tanh-fwd, matmul-1024,tanh-fwd ").unwrap(),
            vec!["tanh-fwd", "matmul-1024"]
        );
        let e = parse_list("matmul-999").unwrap_err().to_string();
        assert!(
            e.contains("matmul-999") && e.contains("ner-small-step"),
            "{e}"
        );
        assert!(parse_list(" , ").is_err());
    }
}
