//! The vector operations the GEMM needs, for AVX-512 and for AVX2 + FMA.
//!
//! Every method is `#[inline(always)]` and carries no target feature of
//! its own: it is inlined into the GEMM's entry point for its ISA, which
//! enables the features, and the intrinsics are inlined there.

use std::arch::x86_64::*;

/// One ISA's f32 vector.
pub(super) trait Simd {
    /// The vector register.
    type V: Copy;
    /// f32 lanes per vector.
    const LANES: usize;

    /// # Safety
    /// Each method's features are enabled in the caller; pointers address
    /// the lanes the method reads or writes.
    unsafe fn zero() -> Self::V;
    /// # Safety
    /// As `zero`.
    unsafe fn load(p: *const f32) -> Self::V;
    /// # Safety
    /// As `zero`.
    unsafe fn splat(x: f32) -> Self::V;
    /// a·b + c, rounded once.
    /// # Safety
    /// As `zero`.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// # Safety
    /// As `zero`.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// # Safety
    /// As `zero`.
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    /// # Safety
    /// As `zero`.
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// # Safety
    /// As `zero`.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// The first `n` lanes from `p` (nothing past them is read), zeros after.
    /// # Safety
    /// As `zero`; `n ≤ LANES`.
    unsafe fn load_first(p: *const f32, n: usize) -> Self::V;
    /// Writes the first `n` lanes to `p`, nothing past them.
    /// # Safety
    /// As `zero`; `n ≤ LANES`.
    unsafe fn store_first(p: *mut f32, v: Self::V, n: usize);
}

/// 16 lanes, masks in mask registers.
pub(super) struct Avx512;

impl Simd for Avx512 {
    type V = __m512;
    const LANES: usize = 16;

    #[inline(always)]
    unsafe fn zero() -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> __m512 {
        unsafe { _mm512_maskz_loadu_ps(mask16(n), p) }
    }
    #[inline(always)]
    unsafe fn store_first(p: *mut f32, v: __m512, n: usize) {
        unsafe { _mm512_mask_storeu_ps(p, mask16(n), v) }
    }
}

#[inline(always)]
fn mask16(n: usize) -> u16 {
    if n >= 16 { u16::MAX } else { (1u16 << n) - 1 }
}

/// 8 lanes, masks as vectors (the sign bit of each lane).
pub(super) struct Avx2;

impl Avx2 {
    #[inline(always)]
    unsafe fn mask(n: usize) -> __m256i {
        unsafe {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes)
        }
    }
}

impl Simd for Avx2 {
    type V = __m256;
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn zero() -> __m256 {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> __m256 {
        unsafe { _mm256_maskload_ps(p, Self::mask(n)) }
    }
    #[inline(always)]
    unsafe fn store_first(p: *mut f32, v: __m256, n: usize) {
        unsafe { _mm256_maskstore_ps(p, Self::mask(n), v) }
    }
}
