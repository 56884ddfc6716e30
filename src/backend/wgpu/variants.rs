//! Matmul variants: the tilings of the one matmul template
//! (`shaders/matmul.wgsl`), split-K, the candidates the tuner times for a
//! shape, and the fixed heuristic used when tuning is off.
//!
//! A variant is `BMxBN/TMxTN/kTK` (a BM×BN output tile per workgroup, a
//! TM×TN block per thread, K advanced TK at a time), with `/sS` when K is
//! split into S ranges summed by a second pass in a fixed order. Every
//! variant computes every shape, transpose and epilogue; variants differ
//! only in speed and in the order of the float additions.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::ir::Kernel;

/// One tiling of the matmul template, and how many ways K is split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulVariant {
    /// Output rows per workgroup.
    pub bm: u32,
    /// Output columns per workgroup.
    pub bn: u32,
    /// Output rows per thread (a multiple of 4).
    pub tm: u32,
    /// Output columns per thread (a multiple of 4).
    pub tn: u32,
    /// K step through workgroup memory (a multiple of 4).
    pub tk: u32,
    /// K split into this many ranges (1: no split), each a layer of
    /// workgroups writing partial products that a second dispatch sums.
    pub split: u32,
}

impl MatmulVariant {
    const fn new(bm: u32, bn: u32, tm: u32, tn: u32, tk: u32) -> MatmulVariant {
        MatmulVariant {
            bm,
            bn,
            tm,
            tn,
            tk,
            split: 1,
        }
    }

    /// The same tiling with K split `split` ways.
    pub const fn with_split(self, split: u32) -> MatmulVariant {
        MatmulVariant { split, ..self }
    }

    /// The tiling only (split 1): what a shader module depends on.
    pub const fn tile(self) -> MatmulVariant {
        self.with_split(1)
    }

    /// The default tiling (the template's own constants): 64×64 tiles,
    /// 8×8 per thread, 64 threads, K step 16.
    pub const DEFAULT: MatmulVariant = MatmulVariant::new(64, 64, 8, 8, 16);

    /// Every tiling the backend knows. Sized for the per-shape costs on an
    /// H100 quoted in the project's brief (128×128 with 8×8 per thread for
    /// large squares; 64×64 with 4×4 per thread, 256 threads, at 1024³),
    /// plus smaller tiles for the skinny products of a training step.
    pub const TILINGS: [MatmulVariant; 7] = [
        MatmulVariant::new(128, 128, 8, 8, 8),
        MatmulVariant::new(128, 128, 8, 8, 16),
        MatmulVariant::new(128, 64, 8, 8, 8),
        MatmulVariant::DEFAULT,
        MatmulVariant::new(64, 64, 4, 4, 16),
        MatmulVariant::new(32, 32, 4, 4, 16),
        MatmulVariant::new(64, 16, 4, 4, 16),
    ];

    /// Splits of K the tuner tries for tall-K shapes.
    pub const SPLITS: [u32; 3] = [4, 8, 16];

    /// Threads per workgroup.
    pub fn threads(self) -> u32 {
        (self.bm / self.tm) * (self.bn / self.tn)
    }

    /// Workgroup memory, bytes.
    pub fn shared_bytes(self) -> u32 {
        self.tk * (self.bm + self.bn) * 4
    }

    /// Whether the template can be instantiated with this tiling: each
    /// thread stages whole runs of four of both tiles.
    pub fn is_valid(self) -> bool {
        let v = self;
        let pos = [v.bm, v.bn, v.tm, v.tn, v.tk, v.split]
            .iter()
            .all(|&x| x > 0);
        let fours = [v.tm, v.tn, v.tk, v.bm, v.bn]
            .iter()
            .all(|x| x.is_multiple_of(4));
        if !pos || !fours || !v.bm.is_multiple_of(v.tm) || !v.bn.is_multiple_of(v.tn) {
            return false;
        }
        let t = v.threads();
        let (runs_a, runs_b) = (v.bm * v.tk / 4, v.bn * v.tk / 4);
        runs_a >= t && runs_a.is_multiple_of(t) && runs_b >= t && runs_b.is_multiple_of(t)
    }

    /// Whether the adapter can run this tiling.
    pub fn fits(self, limits: &wgpu::Limits) -> bool {
        self.is_valid()
            && self.threads() <= limits.max_compute_invocations_per_workgroup
            && self.threads() <= limits.max_compute_workgroup_size_x
            && self.shared_bytes() <= limits.max_compute_workgroup_storage_size
    }

    /// The WGSL constants of this tiling, spliced over the template's.
    pub fn wgsl_constants(self) -> String {
        format!(
            "const BM: u32 = {}u;\nconst BN: u32 = {}u;\nconst TM: u32 = {}u;\n\
             const TN: u32 = {}u;\nconst TK: u32 = {}u;\n",
            self.bm, self.bn, self.tm, self.tn, self.tk
        )
    }

    /// Workgroups of one K layer for an m×n output.
    pub fn groups(self, m: usize, n: usize) -> (u64, u64) {
        (
            n.div_ceil(self.bn as usize) as u64,
            m.div_ceil(self.bm as usize) as u64,
        )
    }

    /// K per split (a multiple of TK) and the number of non-empty splits.
    pub fn k_chunks(self, k: usize) -> (usize, usize) {
        let tk = self.tk as usize;
        let split = (self.split as usize).max(1);
        if split == 1 || k == 0 {
            return (k.max(1), 1);
        }
        let chunk = k.div_ceil(split).div_ceil(tk).max(1) * tk;
        (chunk, k.div_ceil(chunk))
    }
}

impl fmt::Display for MatmulVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x{}/{}x{}/k{}",
            self.bm, self.bn, self.tm, self.tn, self.tk
        )?;
        if self.split > 1 {
            write!(f, "/s{}", self.split)?;
        }
        Ok(())
    }
}

impl FromStr for MatmulVariant {
    type Err = Error;

    /// Parses `BMxBN/TMxTN/kTK[/sS]`, e.g. `128x128/8x8/k8` or
    /// `64x16/4x4/k16/s8`.
    fn from_str(s: &str) -> Result<MatmulVariant> {
        let bad = || {
            Error::invalid(
                "matmul variant",
                format!("expected BMxBN/TMxTN/kTK[/sS] (e.g. 128x128/8x8/k8), got {s:?}"),
            )
        };
        let parts: Vec<&str> = s.trim().split('/').collect();
        if parts.len() < 3 || parts.len() > 4 {
            return Err(bad());
        }
        let pair = |p: &str| -> Result<(u32, u32)> {
            let (a, b) = p.split_once('x').ok_or_else(bad)?;
            Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
        };
        let (bm, bn) = pair(parts[0])?;
        let (tm, tn) = pair(parts[1])?;
        let tk = parts[2]
            .strip_prefix('k')
            .and_then(|x| x.parse().ok())
            .ok_or_else(bad)?;
        let split = match parts.get(3) {
            Some(p) => p
                .strip_prefix('s')
                .and_then(|x| x.parse().ok())
                .ok_or_else(bad)?,
            None => 1,
        };
        let v = MatmulVariant {
            bm,
            bn,
            tm,
            tn,
            tk,
            split,
        };
        if !v.is_valid() {
            return Err(Error::invalid(
                "matmul variant",
                format!(
                    "{s}: tile sizes must be multiples of the per-thread block, blocks and K step multiples of 4, and each thread must stage whole runs of four"
                ),
            ));
        }
        Ok(v)
    }
}

/// A matmul's shape as the variant choice sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulShape {
    /// Rows of A and of the output.
    pub m: usize,
    /// The contracted dimension.
    pub k: usize,
    /// Columns of B and of the output.
    pub n: usize,
    /// A is stored as `[k, m]`.
    pub trans_a: bool,
    /// B is stored as `[n, k]`.
    pub trans_b: bool,
}

impl MatmulShape {
    /// The shape of a matmul kernel; `None` for any other kernel.
    pub fn of(k: &Kernel) -> Option<MatmulShape> {
        match *k {
            Kernel::Matmul {
                m,
                k,
                n,
                trans_a,
                trans_b,
                ..
            } => Some(MatmulShape {
                m,
                k,
                n,
                trans_a,
                trans_b,
            }),
            _ => None,
        }
    }
}

impl MatmulShape {
    /// The tuning key: each size rounded up to a power of two, and the
    /// transposes. Shapes of one class share a tuned choice.
    pub fn class(&self) -> String {
        let b = |x: usize| x.max(1).next_power_of_two();
        format!(
            "m{}-k{}-n{}-{}{}",
            b(self.m),
            b(self.k),
            b(self.n),
            if self.trans_a { 't' } else { 'n' },
            if self.trans_b { 't' } else { 'n' }
        )
    }

    /// Whether K is long against the output: the shapes where splitting K
    /// gives a GPU enough workgroups (∂W = xᵀδ with K the batch).
    pub fn tall_k(&self) -> bool {
        self.k >= 512 && self.k >= 4 * self.m.max(self.n)
    }
}

/// Workgroups a GPU needs in flight to be busy (an H100 has 132 SMs).
const BUSY: u64 = 128;

/// The fixed choice when tuning is off: the largest tile that still gives
/// the GPU enough workgroups, and for tall-K shapes with few output tiles a
/// split of K that brings the workgroup count up.
pub fn heuristic(s: &MatmulShape, limits: &wgpu::Limits) -> MatmulVariant {
    let fits = |v: &MatmulVariant| v.fits(limits);
    let count = |v: &MatmulVariant| {
        let (x, y) = v.groups(s.m, s.n);
        x * y
    };
    let by_name = |bm, bn, tm, tn, tk| {
        let v = MatmulVariant::new(bm, bn, tm, tn, tk);
        fits(&v).then_some(v)
    };
    let big = by_name(128, 128, 8, 8, 8).filter(|v| count(v) >= 2 * BUSY);
    let mid = by_name(64, 64, 4, 4, 16).filter(|v| count(v) >= BUSY / 2);
    let skinny = by_name(64, 16, 4, 4, 16).filter(|_| s.n <= 16);
    let v = big
        .or(mid)
        .or(skinny)
        .or_else(|| by_name(32, 32, 4, 4, 16))
        .unwrap_or(MatmulVariant::DEFAULT);
    let groups = count(&v);
    if s.tall_k() && groups < BUSY {
        // Enough layers of K to fill the GPU, each at least 128 long.
        let want = BUSY.div_ceil(groups.max(1)) as usize;
        let split = want.min(s.k / 128).clamp(1, 16);
        return v.with_split(split.next_power_of_two().min(16) as u32);
    }
    v
}

/// The variants the tuner times for `s`: every tiling the adapter can run
/// that does not leave most of a tile empty, and splits of K for tall-K
/// shapes; the heuristic's choice first.
pub fn candidates(s: &MatmulShape, limits: &wgpu::Limits) -> Vec<MatmulVariant> {
    let first = heuristic(s, limits);
    let mut v = vec![first];
    for t in MatmulVariant::TILINGS {
        // A tile more than four times the output on a side is mostly idle.
        let waste = t.bm as usize > 4 * s.m.max(4) || t.bn as usize > 4 * s.n.max(4);
        if !t.fits(limits) || waste {
            continue;
        }
        if !v.contains(&t) {
            v.push(t);
        }
        if s.tall_k() && t.bm * t.bn <= 64 * 64 {
            for sp in MatmulVariant::SPLITS {
                let c = t.with_split(sp);
                if c.k_chunks(s.k).1 > 1 && !v.contains(&c) {
                    v.push(c);
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_tilings_are_valid() {
        for t in MatmulVariant::TILINGS {
            assert!(t.is_valid(), "{t}");
            for s in [1, 4, 16] {
                let v = t.with_split(s);
                assert_eq!(v.to_string().parse::<MatmulVariant>().unwrap(), v);
            }
        }
        assert_eq!(MatmulVariant::DEFAULT.to_string(), "64x64/8x8/k16");
        assert_eq!(
            "64x16/4x4/k16/s8".parse::<MatmulVariant>().unwrap(),
            MatmulVariant::new(64, 16, 4, 4, 16).with_split(8)
        );
        for bad in [
            "",
            "64x64/8x8",
            "64x64/8x8/16",
            "64x64/6x8/k16",
            "64x64/8x8/k16/8",
        ] {
            assert!(bad.parse::<MatmulVariant>().is_err(), "{bad}");
        }
        // 8×8 per thread over 16×16: 4 threads, but 16·4/4 = 16 runs is fine;
        // 128×128 with 4×4 per thread and K step 4: 1024 threads, 128 runs.
        assert!(!MatmulVariant::new(128, 128, 4, 4, 4).is_valid());
    }

    #[test]
    fn k_chunks_cover_k_with_non_empty_splits() {
        let v = MatmulVariant::new(32, 32, 4, 4, 16);
        for k in [1, 15, 16, 17, 100, 1024, 1000, 4097] {
            for s in [1, 2, 4, 8, 16, 64] {
                let (chunk, n) = v.with_split(s).k_chunks(k);
                assert!(chunk * n >= k && chunk * (n - 1) < k, "k {k} s {s}");
                assert!(n <= s as usize);
                if s > 1 {
                    assert_eq!(chunk % 16, 0);
                }
            }
        }
    }

    #[test]
    fn heuristic_and_candidates() {
        let l = wgpu::Limits::default();
        let shape = |m, k, n| MatmulShape {
            m,
            k,
            n,
            trans_a: false,
            trans_b: false,
        };
        let big = heuristic(&shape(4096, 4096, 4096), &l);
        assert_eq!(big.to_string(), "128x128/8x8/k8");
        assert_eq!(
            heuristic(&shape(1024, 1024, 1024), &l).to_string(),
            "64x64/4x4/k16"
        );
        // ∂W₂ = xᵀδ of the small NER step: 100×1024×5, tall K.
        let dw = heuristic(&shape(100, 1024, 5), &l);
        assert!(dw.split > 1 && dw.bn == 16, "{dw}");
        for s in [
            shape(250, 1024, 100),
            shape(1, 1, 1),
            shape(4096, 4096, 4096),
        ] {
            let c = candidates(&s, &l);
            assert_eq!(c[0], heuristic(&s, &l));
            assert!(c.iter().all(|v| v.fits(&l)));
            let mut d = c.clone();
            d.dedup();
            assert_eq!(d.len(), c.len());
        }
        assert_eq!(shape(250, 1000, 100).class(), "m256-k1024-n128-nn");
    }
}
