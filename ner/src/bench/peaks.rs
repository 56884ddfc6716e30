//! Vendor peak figures, to turn a measured rate into a fraction of what the
//! chip could do. Only devices whose datasheet numbers we can cite: a peak
//! we would have to guess makes the fraction meaningless.
//!
//! No CPU is listed. A CPU peak is cores × clock × FLOPs per cycle, and from
//! inside a VM neither the sustained clock (`/proc/cpuinfo` shows the current
//! one) nor the number of FMA units per core (1 or 2, by SKU) can be read
//! honestly, so CPU fractions are reported as unknown.

/// Peak fp32 rates of one device.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    /// What the figures are for.
    pub device: &'static str,
    /// Dense fp32 FLOP/s on the non-tensor (CUDA) cores, in GFLOP/s: WGSL
    /// kernels cannot use tensor cores, and TF32 is off in the PyTorch script.
    pub fp32_gflops: f64,
    /// Memory bandwidth, GB/s (10⁹ bytes).
    pub bandwidth_gbps: f64,
    pub source: &'static str,
}

/// Substring of the adapter name → peak; more specific names first, since
/// the SXM part reports itself as plain "NVIDIA H100 80GB HBM3".
const KNOWN: &[(&str, Peak)] = &[
    (
        "H100 PCIe",
        Peak {
            device: "NVIDIA H100 PCIe",
            fp32_gflops: 51_000.0,
            bandwidth_gbps: 2_000.0,
            source: "NVIDIA H100 Tensor Core GPU datasheet (FP32 51 TFLOP/s, 2 TB/s)",
        },
    ),
    (
        "H100 NVL",
        Peak {
            device: "NVIDIA H100 NVL",
            fp32_gflops: 60_000.0,
            bandwidth_gbps: 3_900.0,
            source: "NVIDIA H100 Tensor Core GPU datasheet (FP32 60 TFLOP/s, 3.9 TB/s)",
        },
    ),
    (
        "H100",
        Peak {
            device: "NVIDIA H100 SXM",
            fp32_gflops: 67_000.0,
            bandwidth_gbps: 3_350.0,
            source: "NVIDIA H100 Tensor Core GPU datasheet (FP32 67 TFLOP/s, 3.35 TB/s)",
        },
    ),
    (
        "H200",
        Peak {
            device: "NVIDIA H200 SXM",
            fp32_gflops: 67_000.0,
            bandwidth_gbps: 4_800.0,
            source: "NVIDIA H200 Tensor Core GPU datasheet (FP32 67 TFLOP/s, 4.8 TB/s)",
        },
    ),
];

/// The peak of the device a backend names, if it is one we know.
pub fn lookup(backend_name: &str) -> Option<Peak> {
    KNOWN
        .iter()
        .find(|(pat, _)| backend_name.contains(pat))
        .map(|(_, p)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sxm_and_pcie_are_told_apart() {
        let sxm = lookup("wgpu: NVIDIA H100 80GB HBM3 (Vulkan)").unwrap();
        assert_eq!(sxm.fp32_gflops, 67_000.0);
        let pcie = lookup("wgpu: NVIDIA H100 PCIe (Vulkan)").unwrap();
        assert_eq!(pcie.fp32_gflops, 51_000.0);
        assert!(lookup("cpu").is_none());
        assert!(lookup("wgpu: llvmpipe (LLVM 19.1.7, 256 bits) (Vulkan)").is_none());
    }
}
