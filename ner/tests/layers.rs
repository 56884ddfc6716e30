//! The application's modules import downwards only (the order is written
//! at the top of src/lib.rs and in ARCHITECTURE.md).

#[path = "../../tests/common/layers.rs"]
mod layers;

/// Bottom first; `main.rs` (the command line) sits on top.
const ORDER: &[&str] = &[
    "files",
    "conll",
    "conlleval",
    "glove",
    "tokenize",
    "fetch",
    "datadir",
    "lexical",
    "document",
    "gazetteer",
    "namelists",
    "features",
    "decode",
    "net",
    "data",
    "eval",
    "tag",
    "options",
    "checkpoint",
    "model_io",
    "plot",
    "rundir",
    "train",
    "bench",
    "main",
];

#[test]
fn application_layers_import_downwards_only() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = layers::violations(&src, ORDER);
    assert!(
        bad.is_empty(),
        "imports against the layer order:\n{}",
        bad.join("\n")
    );
}
