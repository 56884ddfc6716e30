//! End to end: a window classifier learns a tiny inline corpus.

use std::collections::HashMap;

use deltagrad::model::{Activation, Batch, WindowNet, WindowNetConfig};
use deltagrad::{DType, Device, Result, Sgd, Tensor};

/// "Is the centre word a location?" as a 3-class problem (O, PER, LOC).
const CORPUS: &[(&str, &str)] = &[
    ("alice lives in paris", "PER O O LOC"),
    ("bob went to london yesterday", "PER O O LOC O"),
    ("in rome carol met dave", "O LOC PER O PER"),
    ("erin flew to berlin", "PER O O LOC"),
    ("frank stayed in madrid with grace", "PER O O LOC O PER"),
    ("the museum in vienna hired heidi", "O O O LOC O PER"),
    ("ivan visited oslo and lisbon", "PER O LOC O LOC"),
    ("judy said prague is cold", "PER O LOC O O"),
];

fn windows() -> (Vec<u32>, Vec<u32>, usize) {
    let mut vocab: HashMap<&str, u32> = HashMap::from([("<pad>", 0)]);
    let tag_id = |t: &str| match t {
        "O" => 0,
        "PER" => 1,
        _ => 2,
    };
    let (mut words, mut labels) = (Vec::new(), Vec::new());
    for (text, tags) in CORPUS {
        let toks: Vec<&str> = text.split(' ').collect();
        let ids: Vec<u32> = toks
            .iter()
            .map(|w| {
                let n = vocab.len() as u32;
                *vocab.entry(w).or_insert(n)
            })
            .collect();
        for (i, t) in tags.split(' ').enumerate() {
            for off in -2i64..=2 {
                let j = i as i64 + off;
                words.push(if j < 0 || j >= ids.len() as i64 {
                    0
                } else {
                    ids[j as usize]
                });
            }
            labels.push(tag_id(t));
        }
    }
    (words, labels, vocab.len())
}

#[test]
fn window_classifier_learns_tiny_corpus() -> Result<()> {
    let (words, labels, vocab) = windows();
    let n = labels.len();
    let device = Device::cpu();
    let cfg = WindowNetConfig {
        vocab,
        dim: 8,
        window: 5,
        cap_classes: 0,
        cap_dim: 0,
        hidden: vec![16],
        classes: 3,
        activation: Activation::Tanh,
        features: vec![],
    };
    let mut rng = Tensor::rng(7);
    let net = WindowNet::new(cfg, DType::F32, &device, &mut rng)?;
    let mut sgd = Sgd::new(net.params(), 0.5);
    let batch = Batch {
        words: Tensor::ids(words, &[n * 5], &device)?,
        caps: None,
        features: vec![],
        labels: Tensor::ids(labels.clone(), &[n], &device)?,
        size: n,
    };
    let mut first = None;
    let mut last = f64::NAN;
    for _ in 0..300 {
        let loss = net.loss(&batch, None)?;
        loss.backward()?;
        sgd.step_with(&[&loss])?;
        last = loss.item()?;
        first.get_or_insert(last);
    }
    let first = first.unwrap();
    // Three balanced-ish classes start near ln 3 ≈ 1.1; a fitted model is
    // far below 0.05.
    assert!(first > 0.7, "initial loss {first}");
    assert!(
        last < 0.05,
        "training loss only fell from {first} to {last}"
    );
    // And it classifies every training window correctly.
    let logits = net.logits(&batch, None)?.to_vec_f32()?;
    for (i, y) in labels.iter().enumerate() {
        let row = &logits[i * 3..i * 3 + 3];
        let arg = (0..3).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
        assert_eq!(arg as u32, *y, "window {i}");
    }
    Ok(())
}
