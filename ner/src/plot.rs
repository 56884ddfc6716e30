//! A PNG of training loss and dev F1 per epoch.

use std::path::Path;

use deltagrad::{Error, Result};
use plotters::prelude::*;

use crate::options::EpochMetrics;

fn err(e: impl std::fmt::Display) -> Error {
    Error::Other(format!("plot: {e}"))
}

/// System fonts tried for the labels, in order.
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

fn register_font() -> Result<()> {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        FONTS.iter().any(|p| {
            std::fs::read(p).ok().is_some_and(|bytes| {
                // ab_glyph keeps the font for the life of the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    });
    if ok {
        Ok(())
    } else {
        Err(err(format!(
            "no font found (tried {FONTS:?}); install fonts-dejavu-core"
        )))
    }
}

/// Two panels side by side: training loss, and dev F1.
pub fn write(path: &Path, epochs: &[EpochMetrics]) -> Result<()> {
    if epochs.is_empty() {
        return Ok(());
    }
    register_font()?;
    let root = BitMapBackend::new(path, (960, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(480);
    let n = epochs.len() as f64;
    let loss: Vec<(f64, f64)> = epochs
        .iter()
        .map(|m| (m.epoch as f64, m.train_loss))
        .collect();
    let f1: Vec<(f64, f64)> = epochs.iter().map(|m| (m.epoch as f64, m.dev_f1)).collect();
    panel(&left, "training loss", &loss, n, RED)?;
    panel(&right, "dev F1 (%)", &f1, n, BLUE)?;
    root.present().map_err(err)
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    pts: &[(f64, f64)],
    n: f64,
    color: RGBColor,
) -> Result<()> {
    let lo = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.5..n + 0.5, (lo - pad)..(hi + pad))
        .map_err(err)?;
    chart.configure_mesh().x_desc("epoch").draw().map_err(err)?;
    chart
        .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
        .map_err(err)?;
    chart
        .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
        .map_err(err)?;
    Ok(())
}
