//! The window network's convolution over a feature sequence (a character
//! CNN): its values against a direct loop, its gradient against central
//! differences, the GPU against the CPU, and its bad configurations.

mod common;

use deltagrad::gradcheck::{self, GradCheck};
use deltagrad::model::{Activation, Batch, ConvSpec, FeatureSpec, WindowNet, WindowNetConfig};
use deltagrad::{DType, Device, Result, Tensor};

const CLASSES: usize = 7; // rows of the character table
const COUNT: usize = 6; // ids per word
const DIM: usize = 3; // values per id
const WIDTH: usize = 3;
const FILTERS: usize = 4;
const WINDOW: usize = 3;
const HIDDEN: usize = 5;
const TAGS: usize = 2;
const BATCH: usize = 2;

fn config() -> WindowNetConfig {
    WindowNetConfig {
        vocab: 9,
        dim: 2,
        window: WINDOW,
        cap_classes: 0,
        cap_dim: 0,
        hidden: vec![HIDDEN],
        classes: TAGS,
        activation: Activation::Tanh,
        features: vec![FeatureSpec {
            classes: CLASSES,
            dim: DIM,
            count: COUNT,
            conv: Some(ConvSpec {
                width: WIDTH,
                filters: FILTERS,
            }),
        }],
    }
}

fn word_ids() -> Vec<u32> {
    (0..BATCH * WINDOW).map(|i| (i * 5 % 9) as u32).collect()
}

fn char_ids() -> Vec<u32> {
    (0..BATCH * WINDOW * COUNT)
        .map(|i| ((i * 11 + i / 5) % CLASSES) as u32)
        .collect()
}

fn batch(device: &Device) -> Result<Batch> {
    Ok(Batch {
        words: Tensor::ids(word_ids(), &[BATCH * WINDOW], device)?,
        caps: None,
        features: vec![Tensor::ids(char_ids(), &[BATCH * WINDOW * COUNT], device)?],
        labels: Tensor::ids(vec![0, 1], &[BATCH], device)?,
        size: BATCH,
    })
}

fn net(dtype: DType, device: &Device) -> Result<WindowNet> {
    WindowNet::new(config(), dtype, device, &mut Tensor::rng(3))
}

/// The logits computed by loops over the network's parameters.
fn direct_logits(net: &WindowNet) -> Result<Vec<f64>> {
    let emb = net.embeddings.to_vec_f64()?;
    let table = net.feature_embeddings[0].to_vec_f64()?;
    let (cw, cb) = net.feature_convs[0].as_ref().unwrap();
    let (cw, cb) = (cw.to_vec_f64()?, cb.to_vec_f64()?);
    let (w1, wc, b1) = &net.layers[0];
    let (w1, wc, b1) = (
        w1.to_vec_f64()?,
        wc.as_ref().unwrap().to_vec_f64()?,
        b1.to_vec_f64()?,
    );
    let (u, bo) = (net.out_w.to_vec_f64()?, net.out_b.to_vec_f64()?);
    let (words, chars) = (word_ids(), char_ids());
    let dim = net.config.dim;
    let mut out = Vec::new();
    for b in 0..BATCH {
        let mut x = Vec::new();
        for p in 0..WINDOW {
            let w = words[b * WINDOW + p] as usize;
            x.extend_from_slice(&emb[w * dim..(w + 1) * dim]);
        }
        let mut side = Vec::new();
        for p in 0..WINDOW {
            let ids = &chars[(b * WINDOW + p) * COUNT..][..COUNT];
            for f in 0..FILTERS {
                let mut best = f64::NEG_INFINITY;
                for start in 0..=COUNT - WIDTH {
                    let mut z = cb[f];
                    for j in 0..WIDTH {
                        let row = ids[start + j] as usize;
                        for d in 0..DIM {
                            z += table[row * DIM + d] * cw[(j * DIM + d) * FILTERS + f];
                        }
                    }
                    best = best.max(z);
                }
                side.push(best.tanh());
            }
        }
        let h: Vec<f64> = (0..HIDDEN)
            .map(|k| {
                let a: f64 = x
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v * w1[i * HIDDEN + k])
                    .sum();
                let c: f64 = side
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v * wc[i * HIDDEN + k])
                    .sum();
                (a + c + b1[k]).tanh()
            })
            .collect();
        for t in 0..TAGS {
            out.push(
                bo[t]
                    + h.iter()
                        .enumerate()
                        .map(|(k, v)| v * u[k * TAGS + t])
                        .sum::<f64>(),
            );
        }
    }
    Ok(out)
}

#[test]
fn conv_feature_matches_a_direct_loop() -> Result<()> {
    let device = Device::cpu();
    let net = net(DType::F64, &device)?;
    assert_eq!(net.config.side_dim(), FILTERS);
    let got = net.logits(&batch(&device)?, None)?.to_vec_f64()?;
    let want = direct_logits(&net)?;
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12, "logits {got:?} against {want:?}");
    }
    Ok(())
}

#[test]
fn conv_feature_gradient_matches_central_differences() -> Result<()> {
    let device = Device::cpu();
    let template = net(DType::F64, &device)?;
    let params = template.params();
    let inputs: Vec<(Vec<f64>, Vec<usize>)> = params
        .iter()
        .map(|p| Ok((p.to_vec_f64()?, p.shape().to_vec())))
        .collect::<Result<_>>()?;
    gradcheck::check(
        |leaves| {
            let mut n = net(DType::F64, &device)?;
            let mut it = leaves.iter().cloned();
            n.embeddings = it.next().unwrap();
            n.feature_embeddings[0] = it.next().unwrap();
            n.feature_convs[0] = Some((it.next().unwrap(), it.next().unwrap()));
            let (w, wc, b) = &mut n.layers[0];
            *w = it.next().unwrap();
            *wc = Some(it.next().unwrap());
            *b = it.next().unwrap();
            n.out_w = it.next().unwrap();
            n.out_b = it.next().unwrap();
            n.loss(&batch(&device)?, None)
        },
        &inputs,
        GradCheck::default(),
    )?;
    Ok(())
}

#[test]
fn conv_feature_on_the_gpu_matches_the_cpu() -> Result<()> {
    let Some(gpu) = common::gpu() else {
        return Ok(());
    };
    let cpu = Device::cpu();
    let on_cpu = net(DType::F32, &cpu)?;
    let on_gpu = net(DType::F32, &gpu)?;
    let a = on_cpu.logits(&batch(&cpu)?, None)?.to_vec_f32()?;
    let b = on_gpu.logits(&batch(&gpu)?, None)?.to_vec_f32()?;
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "cpu {a:?} gpu {b:?}");
    }
    Ok(())
}

#[test]
fn degenerate_convolutions_are_errors() -> Result<()> {
    let device = Device::cpu();
    // A convolution in the config whose weights are missing.
    let mut n = net(DType::F32, &device)?;
    n.feature_convs[0] = None;
    let msg = match n.logits(&batch(&device)?, None) {
        Ok(_) => panic!("a convolution without weights must fail"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.contains("convolution and its weights disagree"),
        "{msg}"
    );
    for (width, filters) in [(0, 4), (COUNT + 1, 4), (3, 0)] {
        let mut cfg = config();
        cfg.features[0].conv = Some(ConvSpec { width, filters });
        let err = WindowNet::new(cfg, DType::F32, &device, &mut Tensor::rng(1));
        let msg = err
            .err()
            .expect("a degenerate conv must be refused")
            .to_string();
        assert!(msg.contains("degenerate"), "{msg}");
    }
    Ok(())
}
