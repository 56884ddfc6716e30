//! The benchmark cases as data: their names, what each one computes, and
//! their sizes (full and `--tiny`), plus the [`Case`] interface that each
//! kind implements. Nothing here touches a device.
//!
//! `deltagrad bench --list-cases --json` prints this table;
//! `benches/cases.json` is that output, committed, and
//! `benches/torch_reference.py` reads it, so that both sides run the same
//! cases at the same shapes (a test keeps the file current).

use std::collections::BTreeMap;

use deltagrad::{Error, Result};
use serde::Serialize;

/// Format tag of the case listing.
pub const CASES_FORMAT: &str = "deltagrad-bench-cases/1";

/// Shape parameters of a case, as written to the JSON `shape` object.
pub type Shape = BTreeMap<String, usize>;

/// Which operand a matmul case reads transposed. The backward of `x·W`
/// computes `xᵀ·δ` (`A`) and `δ·Wᵀ` (`B`); the transposes are strided
/// views that the scheduler folds into the kernel, so their speed can
/// differ from `A·B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transpose {
    None,
    A,
    B,
}

/// What a case computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Kind {
    /// The window-NER loss: forward only, or a whole SGD step (`step`), at
    /// the small or the large [`NerShape`].
    Ner { large: bool, step: bool },
    /// `n × n` by `n × n` (`n` is the full size; see [`Sizes`]).
    Matmul { n: usize, transpose: Transpose },
    /// `tanh(x)`, or its backward `g ⊙ (1 − y²)`.
    Tanh { backward: bool },
}

/// One benchmark case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaseSpec {
    pub name: &'static str,
    pub kind: Kind,
}

const fn ner(name: &'static str, large: bool, step: bool) -> CaseSpec {
    CaseSpec {
        name,
        kind: Kind::Ner { large, step },
    }
}

const fn matmul(name: &'static str, n: usize, transpose: Transpose) -> CaseSpec {
    CaseSpec {
        name,
        kind: Kind::Matmul { n, transpose },
    }
}

const fn tanh(name: &'static str, backward: bool) -> CaseSpec {
    CaseSpec {
        name,
        kind: Kind::Tanh { backward },
    }
}

/// Every case, in the order they run.
pub const CASES: &[CaseSpec] = &[
    ner("ner-small-fwd", false, false),
    ner("ner-small-step", false, true),
    ner("ner-large-fwd", true, false),
    ner("ner-large-step", true, true),
    matmul("matmul-1024", 1024, Transpose::None),
    matmul("matmul-2048", 2048, Transpose::None),
    matmul("matmul-4096", 4096, Transpose::None),
    matmul("matmul-1024-tn", 1024, Transpose::A),
    matmul("matmul-1024-nt", 1024, Transpose::B),
    tanh("tanh-fwd", false),
    tanh("tanh-bwd", true),
];

/// The case names, in order.
pub fn case_names() -> Vec<&'static str> {
    CASES.iter().map(|c| c.name).collect()
}

/// The shape of the window-NER model in the `ner-*` cases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NerShape {
    pub batch: usize,
    pub dim: usize,
    pub hidden: usize,
    pub classes: usize,
    pub vocab: usize,
    pub window: usize,
}

impl NerShape {
    fn fields(&self) -> [(&'static str, usize); 6] {
        [
            ("batch", self.batch),
            ("dim", self.dim),
            ("hidden", self.hidden),
            ("classes", self.classes),
            ("vocab", self.vocab),
            ("window", self.window),
        ]
    }

    pub fn validate(&self) -> Result<()> {
        for (name, v) in self.fields() {
            if v == 0 {
                return Err(Error::invalid(
                    "bench",
                    format!("--{name} must be at least 1"),
                ));
            }
        }
        if u32::try_from(self.vocab).is_err() || u32::try_from(self.classes).is_err() {
            return Err(Error::invalid(
                "bench",
                "--vocab and --classes must fit in u32 ids",
            ));
        }
        let elems = [
            self.batch.checked_mul(self.window),
            self.vocab.checked_mul(self.dim),
            self.window
                .checked_mul(self.dim)
                .and_then(|wd| wd.checked_mul(self.batch.max(self.hidden))),
        ];
        if elems
            .iter()
            .any(|e| e.is_none_or(|e| e > u32::MAX as usize))
        {
            return Err(Error::invalid(
                "bench",
                format!("NER shape {self:?} has tensors over 2^32 elements"),
            ));
        }
        Ok(())
    }

    /// Matmul FLOPs of the forward pass: x·W₁ (`[B, w·d]·[w·d, H]`) and
    /// h·U (`[B, H]·[H, C]`). Element-wise work, the gather and the loss
    /// are not counted: they are a few percent and not what GFLOP/s means.
    pub fn forward_flops(&self) -> f64 {
        let (b, wd, h, c) = (
            self.batch as f64,
            (self.window * self.dim) as f64,
            self.hidden as f64,
            self.classes as f64,
        );
        2.0 * b * wd * h + 2.0 * b * h * c
    }

    /// Forward plus backward: each forward product has two backward
    /// products of the same size (∂W = xᵀ·δ and ∂x = δ·Wᵀ; ∂x of the first
    /// layer is needed for the word vectors), so three times the forward.
    pub fn step_flops(&self) -> f64 {
        3.0 * self.forward_flops()
    }

    pub fn shape(&self) -> Shape {
        self.fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }
}

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

    pub fn ner(&self, large: bool) -> &NerShape {
        if large {
            &self.ner_large
        } else {
            &self.ner_small
        }
    }

    /// The matrix size that `matmul-n` runs at.
    pub fn matmul(&self, n: usize) -> usize {
        (n / self.matmul_divisor.max(1)).max(1)
    }
}

impl CaseSpec {
    /// The case named `name`.
    pub fn find(name: &str) -> Result<&'static CaseSpec> {
        CASES
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| unknown_case(name))
    }

    /// The shape this case runs at with `sizes`.
    pub fn shape(&self, sizes: &Sizes) -> Shape {
        match self.kind {
            Kind::Ner { large, .. } => sizes.ner(large).shape(),
            Kind::Matmul { n, .. } => ["m", "k", "n"]
                .into_iter()
                .map(|k| (k.to_string(), sizes.matmul(n)))
                .collect(),
            Kind::Tanh { .. } => [("n".to_string(), sizes.tanh_len)].into_iter().collect(),
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

/// One benchmark, set up on one device.
pub trait Case {
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

fn unknown_case(name: &str) -> Error {
    Error::invalid(
        "bench --cases",
        format!(
            "unknown case {name:?}; known cases: all, {}",
            case_names().join(", ")
        ),
    )
}

/// Parses `--cases`: `all`, or a comma-separated list of names (duplicates
/// dropped, order kept).
pub fn parse_list(spec: &str) -> Result<Vec<&'static CaseSpec>> {
    let mut out: Vec<&'static CaseSpec> = Vec::new();
    for part in spec.split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let named = if part == "all" {
            CASES.iter().collect()
        } else {
            vec![CaseSpec::find(part)?]
        };
        for c in named {
            if !out.contains(&c) {
                out.push(c);
            }
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

/// One case in the listing.
#[derive(Serialize)]
struct Listed {
    name: &'static str,
    #[serde(flatten)]
    kind: Kind,
    /// The shape at full size and with `--tiny`.
    full: Shape,
    tiny: Shape,
}

#[derive(Serialize)]
struct Listing {
    format: &'static str,
    about: &'static str,
    cases: Vec<Listed>,
}

/// The case table as JSON (`deltagrad bench --list-cases --json`; the
/// content of `benches/cases.json`).
pub fn listing_json() -> Result<String> {
    let (full, tiny) = (Sizes::full(), Sizes::tiny());
    let listing = Listing {
        format: CASES_FORMAT,
        about: "The cases of `deltagrad bench`, written by \
                `deltagrad bench --list-cases --json`; read by benches/torch_reference.py.",
        cases: CASES
            .iter()
            .map(|c| Listed {
                name: c.name,
                kind: c.kind,
                full: c.shape(&full),
                tiny: c.shape(&tiny),
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&listing)
        .map_err(|e| Error::Other(format!("writing the case list: {e}")))?;
    text.push('\n');
    Ok(text)
}

/// The case table as text: name, kind and full shape per line.
pub fn listing_text() -> String {
    let full = Sizes::full();
    let mut out = String::new();
    for c in CASES {
        let shape: Vec<String> = c
            .shape(&full)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let what = match c.kind {
            Kind::Ner { step: true, .. } => "NER training step",
            Kind::Ner { step: false, .. } => "NER forward",
            Kind::Matmul { .. } => "matmul",
            Kind::Tanh { backward: false } => "tanh forward",
            Kind::Tanh { backward: true } => "tanh backward",
        };
        out.push_str(&format!("{:<16} {what:<18} {}\n", c.name, shape.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_lists_parse() {
        let names =
            |s: &str| -> Vec<&str> { parse_list(s).unwrap().iter().map(|c| c.name).collect() };
        assert_eq!(names("all"), case_names());
        assert_eq!(
            names(" tanh-fwd, matmul-1024,tanh-fwd "),
            vec!["tanh-fwd", "matmul-1024"]
        );
        let e = parse_list("matmul-999").unwrap_err().to_string();
        assert!(
            e.contains("matmul-999") && e.contains("ner-small-step"),
            "{e}"
        );
        assert!(parse_list(" , ").is_err());
    }

    #[test]
    fn names_are_unique_and_shapes_follow_sizes() {
        let mut names = case_names();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CASES.len());
        let tiny = Sizes::tiny();
        let mm = CaseSpec::find("matmul-4096").unwrap().shape(&tiny);
        assert_eq!(mm["m"], 4096 / 64);
        let ner = CaseSpec::find("ner-large-step").unwrap().shape(&tiny);
        assert_eq!((ner["hidden"], ner["classes"]), (7, 4));
    }

    #[test]
    fn listing_names_every_case() {
        let v: serde_json::Value = serde_json::from_str(&listing_json().unwrap()).unwrap();
        assert_eq!(v["format"], CASES_FORMAT);
        let cases = v["cases"].as_array().unwrap();
        assert_eq!(cases.len(), CASES.len());
        assert_eq!(cases[1]["kind"], "ner");
        assert_eq!(cases[1]["step"], true);
        assert_eq!(cases[7]["transpose"], "a");
        assert_eq!(cases[10]["backward"], true);
        assert_eq!(cases[6]["full"]["n"], 4096);
        assert_eq!(listing_text().lines().count(), CASES.len());
    }
}
