// Workgroup reductions with subgroup operations, for adapters that offer
// them (wgpu's SUBGROUP feature). The emitter splices this file over the
// workgroup-tree version between WG_REDUCE_BEGIN and WG_REDUCE_END in
// reduce.wgsl and softmax.wgsl, with the same `wg_reduce` signature, and
// has each entry point set `SG` from its subgroup builtins first. naga 30
// rejects `enable subgroups;` as unimplemented; the builtins and functions
// are accepted without it (the device feature gates them).
//
// Each subgroup combines its values (subgroupAdd, or subgroupMax with NaN
// propagated through subgroupAny, as the CPU's max does), its first lane
// stores the result at the subgroup's index, and the first subgroup
// combines those in index order. The order is fixed for a given adapter
// and pipeline, so results repeat bit for bit; it differs from the tree's,
// so sums may differ from the fallback's in the last bits.

// (subgroup_id, num_subgroups, subgroup_invocation_id, subgroup_size).
var<private> SG: vec4<u32>;
// One entry per subgroup: at most 256 threads in subgroups of at least 4.
var<workgroup> sg_part: array<f32, 64>;
var<workgroup> sg_total: f32;

fn sg_is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn sg_combine(v: f32, is_max: bool) -> f32 {
    if (is_max) {
        let nan = subgroupAny(sg_is_nan(v));
        let m = subgroupMax(select(v, bitcast<f32>(0xff800000u), sg_is_nan(v)));
        return select(m, bitcast<f32>(0x7fc00000u), nan);
    }
    return subgroupAdd(v);
}

// The combination (max or sum) of `v` over the workgroup; every thread
// gets it. Called in uniform control flow by every thread of the
// workgroup (`t` and `count` are the tree version's; unused here).
fn wg_reduce(v: f32, t: u32, count: u32, is_max: bool) -> f32 {
    let s = sg_combine(v, is_max);
    // Earlier readers of sg_part / sg_total are done.
    workgroupBarrier();
    if (SG.z == 0u) {
        sg_part[SG.x] = s;
    }
    workgroupBarrier();
    if (SG.x == 0u) {
        var acc = select(0.0, bitcast<f32>(0xff800000u), is_max);
        for (var i = SG.z; i < SG.y; i += SG.w) {
            let x = sg_part[i];
            acc = select(acc + x, select(x, acc, sg_is_nan(acc) || acc >= x), is_max);
        }
        let total = sg_combine(acc, is_max);
        if (SG.z == 0u) {
            sg_total = total;
        }
    }
    return workgroupUniformLoad(&sg_total);
}
