// Helper functions for emitted element-wise expressions (spliced into
// elementwise.wgsl and matmul.wgsl at `//@EXPR_FNS`, followed by one
// function per table op, generated from the op tables in src/ir/). They
// reproduce the CPU backend's semantics where plain WGSL would differ.
// No bindings.

// WGSL has no literal for inf/NaN; a function argument is not constant-
// folded by the WGSL front end, so this builds them from bits.
fn dg_bits(b: u32) -> f32 {
    return bitcast<f32>(b);
}

// Compilers may assume `x != x` is false; the bit test cannot be folded.
fn dg_isnan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}
