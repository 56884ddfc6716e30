//! Every WGSL shader parses and validates with naga (no adapter needed),
//! and every kernel id's module declares the entry point, overrides and
//! bindings that the backend's pipeline layout assumes.

use std::collections::BTreeSet;
use std::path::Path;

use deltagrad::backend::wgpu::emit::{self, Access};
use deltagrad::backend::wgpu::kernels::Binding;
use deltagrad::backend::wgpu::{KernelId, shader_sources};
use deltagrad::ir::{BinaryOp, Expr, UnaryOp};

fn validate(name: &str, src: &str) -> (naga::Module, naga::valid::ModuleInfo) {
    validate_with(name, src, false)
}

/// Validates with the default capabilities, or with `subgroups` those of
/// a device created with `Features::SUBGROUP` (compute stage).
fn validate_with(
    name: &str,
    src: &str,
    subgroups: bool,
) -> (naga::Module, naga::valid::ModuleInfo) {
    use naga::valid::{Capabilities, ShaderStages, SubgroupOperationSet, ValidationFlags};
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}: parse error:\n{}\n{src}", e.emit_to_string(src)));
    let caps = if subgroups {
        Capabilities::SUBGROUP
    } else {
        Capabilities::default()
    };
    let mut v = naga::valid::Validator::new(ValidationFlags::all(), caps);
    if subgroups {
        v.subgroup_stages(ShaderStages::COMPUTE)
            .subgroup_operations(SubgroupOperationSet::all());
    }
    let info = v
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: invalid:\n{}\n{src}", e.emit_to_string(src)));
    (module, info)
}

/// The shader folder, found next to this file so that the test works from
/// any crate that includes it.
fn shader_dir() -> std::path::PathBuf {
    Path::new(file!())
        .parent()
        .expect("test file has a folder")
        .join("../shaders")
}

#[test]
fn every_shader_file_is_embedded_and_validates() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(shader_dir())
        .expect("shaders/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let embedded: BTreeSet<String> = shader_sources()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(on_disk, embedded, "shaders/ and shader_sources() disagree");
    for (name, src) in shader_sources() {
        let disk = std::fs::read_to_string(shader_dir().join(format!("{name}.wgsl"))).unwrap();
        assert_eq!(&disk, src, "{name}.wgsl differs from the embedded copy");
        // Bare templates are valid WGSL too (placeholders are comments or
        // have a default); the subgroup reductions need subgroups.
        let _ = validate_with(name, src, name == "subgroup");
    }
}

#[test]
fn every_kernel_id_compiles_with_its_entry_point_and_bindings() {
    let examples = KernelId::all_examples();
    assert!(examples.len() >= 12);
    for id in examples {
        let label = format!("{id:?}");
        let src = id.source().unwrap_or_else(|e| panic!("{label}: {e}"));
        // Only the ids that use subgroups may need them.
        let (m, info) = validate_with(&label, &src, id.uses_subgroups());
        assert_eq!(
            id.uses_subgroups(),
            src.contains("subgroupAdd"),
            "{label}: subgroup use"
        );
        let (ep_index, ep) = m
            .entry_points
            .iter()
            .enumerate()
            .find(|(_, e)| e.name == id.entry_point())
            .unwrap_or_else(|| panic!("{label}: no entry point {}", id.entry_point()));
        assert_eq!(ep.stage, naga::ShaderStage::Compute, "{label}");
        for (name, _) in id.overrides() {
            assert!(
                m.overrides
                    .iter()
                    .any(|(_, o)| o.name.as_deref() == Some(name)),
                "{label}: no override {name}"
            );
        }
        // Each binding the layout declares exists with the same kind.
        for (i, b) in id.bindings().iter().enumerate() {
            let var = m
                .global_variables
                .iter()
                .map(|(_, v)| v)
                .find(|v| {
                    v.binding
                        .as_ref()
                        .is_some_and(|r| r.group == 0 && r.binding == i as u32)
                })
                .unwrap_or_else(|| panic!("{label}: no variable at binding {i}"));
            let ok = match (b, var.space) {
                (Binding::Uniform, naga::AddressSpace::Uniform) => true,
                (Binding::Read, naga::AddressSpace::Storage { access }) => {
                    !access.contains(naga::StorageAccess::STORE)
                }
                (Binding::ReadWrite, naga::AddressSpace::Storage { access }) => {
                    access.contains(naga::StorageAccess::STORE)
                }
                _ => false,
            };
            assert!(
                ok,
                "{label}: binding {i} is {:?}, layout says {b:?}",
                var.space
            );
        }
        // And the entry point uses no binding beyond the layout.
        let uses = info.get_entry_point(ep_index);
        for (h, v) in m.global_variables.iter() {
            if let Some(r) = &v.binding
                && !uses[h].is_empty()
            {
                assert!(
                    (r.binding as usize) < id.bindings().len(),
                    "{label}: uses binding {} outside the layout",
                    r.binding
                );
            }
        }
    }
}

#[test]
fn emitted_elementwise_shaders_validate() {
    let x = Expr::Input;
    let exprs = [
        Expr::binary(BinaryOp::Add, x(0), x(1)),
        Expr::unary(
            UnaryOp::Relu,
            Expr::binary(BinaryOp::Sub, x(0), Expr::constant(-3.25)),
        ),
        Expr::binary(
            BinaryOp::Eq,
            Expr::binary(BinaryOp::Max, x(0), Expr::constant(f64::NAN)),
            Expr::unary(UnaryOp::Sqrt, Expr::constant(1e-40)),
        ),
        Expr::constant(f64::NEG_INFINITY),
    ];
    for e in exprs {
        for access in [
            vec![Access::Contiguous, Access::Strided],
            vec![Access::InPlace, Access::Broadcast],
        ] {
            let id = KernelId::Elementwise {
                expr: e.clone(),
                access,
            };
            let src = id.source().unwrap();
            let _ = validate(&format!("{e}"), &src);
            let body = emit::expr(&e, 2, false).unwrap();
            assert!(src.contains(&body), "{e}: emitted body missing");
        }
    }
}

#[test]
fn emitted_expression_text_is_exact() {
    let e = Expr::binary(
        BinaryOp::Mul,
        Expr::unary(UnaryOp::Tanh, Expr::Input(0)),
        Expr::binary(BinaryOp::Ge, Expr::Acc, Expr::constant(0.5)),
    );
    assert_eq!(
        emit::expr(&e, 1, true).unwrap(),
        "op_mul(op_tanh(x0), op_ge(acc, 0.5f))"
    );
    assert!(
        emit::expr(&e, 1, false).is_err(),
        "acc outside an epilogue must fail"
    );
}
