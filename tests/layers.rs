//! The engine's layers import downwards only (ARCHITECTURE.md lists them).

mod common;
use common::layers::violations;

/// Bottom first.
const ORDER: &[&str] = &[
    "dtype",
    "error",
    "flags",
    "hash",
    "ir",
    "backend",
    "device",
    "schedule",
    "graph",
    "tensor",
    "ops",
    "autograd",
    "functional",
    "nn",
    "crf",
    "optim",
    "gradcheck",
    "model",
    "state_dict",
];

#[test]
fn engine_layers_import_downwards_only() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src, ORDER);
    assert!(
        bad.is_empty(),
        "imports against the layer order:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    let dir = std::env::temp_dir().join(format!("layers-check-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("ir")).unwrap();
    std::fs::write(
        dir.join("ir/plan.rs"),
        "// crate::tensor in a comment\nuse crate::{dtype, tensor::Tensor};\nlet s = \"crate::ops\";\n",
    )
    .unwrap();
    std::fs::write(dir.join("tensor.rs"), "use crate::ir::Plan;\n").unwrap();
    let bad = violations(&dir, ORDER);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(bad, vec!["ir/plan.rs (ir) -> tensor".to_string()]);
}
