//! The lecture's window classifier with the public API only: each word is
//! classified from the concatenated vectors of its 5-word window (x = Le),
//! through h = tanh(Wx + b) and softmax(Uh + c), trained with SGD on a few
//! invented sentences. Run: `cargo run --example window_ner_minimal`.

use deltagrad::{DType, Device, Result, Sgd, Tensor};

const SENTENCES: &[&str] = &[
    "Alice/PER visited Paris/LOC in May",
    "Bob/PER lives in London/LOC with Carol/PER",
    "the museum in Rome/LOC hired Dave/PER",
    "Erin/PER and Frank/PER flew to Oslo/LOC",
    "Lima/LOC is far from Paris/LOC",
];
const TAGS: [&str; 3] = ["O", "PER", "LOC"];
const WINDOW: usize = 5;

/// Trains for `epochs` full-batch steps; returns the printed report.
pub fn run(epochs: usize) -> Result<String> {
    let (mut vocab, mut windows, mut labels, mut words) = (vec!["<pad>"], vec![], vec![], vec![]);
    for s in SENTENCES {
        let tagged: Vec<(&str, &str)> = s
            .split(' ')
            .map(|w| w.split_once('/').unwrap_or((w, "O")))
            .collect();
        let mut ids = vec![];
        for (w, t) in &tagged {
            if !vocab.contains(w) {
                vocab.push(w);
            }
            ids.push(vocab.iter().position(|v| v == w).unwrap_or(0) as u32);
            labels.push(TAGS.iter().position(|x| x == t).unwrap_or(0) as u32);
            words.push(*w);
        }
        // The window of word i is words i − 2 ..= i + 2; id 0 pads the edges.
        let padded = [&[0, 0][..], &ids, &[0, 0]].concat();
        for i in 0..ids.len() {
            windows.extend_from_slice(&padded[i..i + WINDOW]);
        }
    }
    let (dev, n, mut rng) = (Device::cpu(), labels.len(), Tensor::rng(0));
    // L (8-d word vectors), W and b (16 hidden units), U and c (3 classes).
    let shapes = [[vocab.len(), 8], [40, 16], [1, 16], [16, 3], [1, 3]];
    let p = shapes
        .iter()
        .map(|s| Ok(Tensor::randn(s, 0.2, DType::F32, &dev, &mut rng)?.requires_grad()))
        .collect::<Result<Vec<_>>>()?;
    let x_ids = Tensor::ids(windows, &[n * WINDOW], &dev)?;
    let y = Tensor::ids(labels.clone(), &[n], &dev)?;
    let scores = || -> Result<Tensor> {
        let x = p[0].gather_rows(&x_ids)?.reshape(&[n, WINDOW * 8])?; // x = Le, concatenated
        x.linear(&p[1], &p[2])?.tanh()?.linear(&p[3], &p[4])
    };
    let (mut sgd, mut out) = (Sgd::new(p.clone(), 0.5), String::new());
    for epoch in 0..epochs {
        let loss = scores()?.softmax_cross_entropy(&y)?;
        loss.backward()?;
        sgd.step_with(&[&loss])?; // forward, backward and update: one plan
        if epoch % (epochs / 4).max(1) == 0 || epoch + 1 == epochs {
            out += &format!("epoch {epoch:4}  loss {:.4}\n", loss.item()?);
        }
    }
    let pred = scores()?.argmax(1)?.to_ids()?;
    let right = pred.iter().zip(&labels).filter(|(p, l)| p == l).count();
    out += &format!("training accuracy {right}/{n}\n");
    for (w, p) in words.iter().zip(&pred) {
        out += &format!("{w}/{} ", TAGS[*p as usize]);
    }
    Ok(out + "\n")
}

#[allow(dead_code)]
fn main() -> Result<()> {
    print!("{}", run(200)?);
    Ok(())
}
