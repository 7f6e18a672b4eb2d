//! PNG plots with `plotters`' bitmap backend. Text is drawn by `ab_glyph` (pure Rust, no system
//! fontconfig) with DejaVu Sans embedded from the `dejavu` crate, so plots render the same on
//! any machine.

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::metrics::RunResult;
use crate::params::{Protocol, RunConfig, Scenario};

static FONT: Once = Once::new();

/// Registers the embedded font as `sans-serif` (once).
pub fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

fn color(p: Protocol) -> RGBColor {
    match p {
        Protocol::Supra => RGBColor(0, 114, 178),
        Protocol::Sdpp => RGBColor(213, 94, 0),
        Protocol::Ppsp => RGBColor(0, 158, 115),
    }
}

fn label(p: Protocol) -> &'static str {
    match p {
        Protocol::Supra => "SUPRA (ours)",
        Protocol::Sdpp => "SDPP",
        Protocol::Ppsp => "PPSP (pay before)",
    }
}

/// One line of a chart.
type Series = (Protocol, Vec<(f64, f64)>);

fn e<E: std::fmt::Debug>(x: E) -> anyhow::Error {
    anyhow!("plot: {x:?}")
}

/// On-chain transactions of the honest subscription, by protocol, against the loss rate.
pub fn txs_vs_loss_series(loss: &[RunResult]) -> Vec<Series> {
    Protocol::ALL
        .iter()
        .map(|p| {
            let pts = loss
                .iter()
                .filter(|r| r.protocol == *p && r.scenario == Scenario::Honest)
                .map(|r| (r.cfg.link.loss, r.ledger.txs as f64))
                .collect();
            (*p, pts)
        })
        .collect()
}

/// Seller exposure (max unpaid over honest, withhold and leave) against the loss rate.
pub fn unpaid_vs_loss_series(loss: &[RunResult]) -> Vec<Series> {
    Protocol::ALL
        .iter()
        .map(|p| {
            let mut xs: Vec<f64> = loss
                .iter()
                .filter(|r| r.protocol == *p)
                .map(|r| r.cfg.link.loss)
                .collect();
            xs.sort_by(f64::total_cmp);
            xs.dedup();
            let pts = xs
                .into_iter()
                .map(|x| {
                    let m = loss
                        .iter()
                        .filter(|r| {
                            r.protocol == *p && r.cfg.link.loss == x && r.scenario.honest_seller()
                        })
                        .map(RunResult::unpaid)
                        .max()
                        .unwrap_or(0);
                    (x, m as f64)
                })
                .collect();
            (*p, pts)
        })
        .collect()
}

/// On-chain transactions of the honest subscription against K (SUPRA: flat, it has no K).
pub fn txs_vs_k_series(kres: &[RunResult], ks: &[u64]) -> Vec<Series> {
    Protocol::ALL
        .iter()
        .map(|p| {
            let pts = if *p == Protocol::Supra {
                let t = kres
                    .iter()
                    .find(|r| r.protocol == *p && r.scenario == Scenario::Honest)
                    .map_or(0.0, |r| r.ledger.txs as f64);
                ks.iter().map(|k| (*k as f64, t)).collect()
            } else {
                kres.iter()
                    .filter(|r| r.protocol == *p && r.scenario == Scenario::Honest)
                    .map(|r| (r.cfg.k as f64, r.ledger.txs as f64))
                    .collect()
            };
            (*p, pts)
        })
        .collect()
}

fn bounds(series: &[Series]) -> (f64, f64, f64, f64) {
    let pts = series.iter().flat_map(|s| s.1.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in pts {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if x0 > x1 {
        return (0.0, 1.0, 0.0, 1.0);
    }
    (x0, x1, y0, y1)
}

macro_rules! chart {
    ($area:expr, $title:expr, $xl:expr, $yl:expr, $x:expr, $y:expr, $xfmt:expr, $series:expr) => {{
        let mut chart = ChartBuilder::on($area)
            .caption($title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d($x, $y)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc($xl)
            .y_desc($yl)
            .x_label_formatter(&$xfmt)
            .y_label_formatter(&|v: &f64| format!("{v:.0}"))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(e)?;
        // Lines that coincide stay visible: SDPP wide and pale, PPSP dashed, SUPRA on top.
        for (p, pts) in $series {
            let c = color(*p);
            let pts: Vec<(f64, f64)> = pts.clone();
            match p {
                Protocol::Sdpp => {
                    chart
                        .draw_series(LineSeries::new(
                            pts.iter().copied(),
                            c.mix(0.45).stroke_width(7),
                        ))
                        .map_err(e)?
                        .label(label(*p))
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], c.mix(0.45).stroke_width(7))
                        });
                    chart
                        .draw_series(
                            pts.iter()
                                .map(|pt| Circle::new(*pt, 6, c.mix(0.45).filled())),
                        )
                        .map_err(e)?;
                }
                Protocol::Ppsp => {
                    chart
                        .draw_series(DashedLineSeries::new(
                            pts.iter().copied(),
                            10,
                            6,
                            c.stroke_width(2),
                        ))
                        .map_err(e)?
                        .label(label(*p))
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                        });
                    chart
                        .draw_series(pts.iter().map(|pt| TriangleMarker::new(*pt, 6, c.filled())))
                        .map_err(e)?;
                }
                Protocol::Supra => {
                    chart
                        .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                        .map_err(e)?
                        .label(label(*p))
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                        });
                    chart
                        .draw_series(pts.iter().map(|pt| Circle::new(*pt, 4, c.filled())))
                        .map_err(e)?;
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(e)?;
    }};
}

/// Series drawn in this order (SUPRA last, on top).
fn ordered(s: &[Series]) -> Vec<Series> {
    let mut v = s.to_vec();
    v.sort_by_key(|(p, _)| match p {
        Protocol::Sdpp => 0,
        Protocol::Ppsp => 1,
        Protocol::Supra => 2,
    });
    v
}

fn fmt_loss(v: &f64) -> String {
    format!("{v:.2}")
}

fn fmt_int(v: &f64) -> String {
    format!("{v:.0}")
}

fn draw_txs_vs_loss(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    s: &[Series],
) -> anyhow::Result<()> {
    let (x0, x1, _, y1) = bounds(s);
    chart!(
        area,
        "On-chain transactions vs loss rate",
        "frame loss rate",
        "transactions / subscription (log)",
        x0..x1.max(x0 + 1e-9),
        (1f64..(y1 * 3.0).max(10.0)).log_scale(),
        fmt_loss,
        ordered(s).iter()
    );
    Ok(())
}

fn draw_txs_vs_k(area: &DrawingArea<BitMapBackend<'_>, Shift>, s: &[Series]) -> anyhow::Result<()> {
    let (x0, x1, _, y1) = bounds(s);
    chart!(
        area,
        "On-chain transactions vs K",
        "K (SDPP invoice period, PPSP chunk)",
        "transactions / subscription (log)",
        (x0.max(1.0)..x1.max(x0 + 1.0)).log_scale(),
        (1f64..(y1 * 3.0).max(10.0)).log_scale(),
        fmt_int,
        ordered(s).iter()
    );
    Ok(())
}

fn draw_unpaid(area: &DrawingArea<BitMapBackend<'_>, Shift>, s: &[Series]) -> anyhow::Result<()> {
    let (x0, x1, _, y1) = bounds(s);
    chart!(
        area,
        "Seller exposure vs loss rate",
        "frame loss rate",
        "max unpaid messages (buyer attacks)",
        x0..x1.max(x0 + 1e-9),
        0f64..(y1 * 1.25).max(5.0),
        fmt_loss,
        ordered(s).iter()
    );
    Ok(())
}

fn save(
    path: &Path,
    w: u32,
    h: u32,
    f: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    register_font();
    {
        let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        f(&root)?;
        root.present()
            .map_err(e)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `txs_vs_loss.png`.
pub fn txs_vs_loss(path: &Path, loss: &[RunResult]) -> anyhow::Result<()> {
    let s = txs_vs_loss_series(loss);
    save(path, 800, 520, |a| draw_txs_vs_loss(a, &s))
}

/// `txs_vs_k.png`.
pub fn txs_vs_k(path: &Path, kres: &[RunResult], ks: &[u64]) -> anyhow::Result<()> {
    let s = txs_vs_k_series(kres, ks);
    save(path, 800, 520, |a| draw_txs_vs_k(a, &s))
}

/// `unpaid_vs_loss.png`.
pub fn unpaid_vs_loss(path: &Path, loss: &[RunResult]) -> anyhow::Result<()> {
    let s = unpaid_vs_loss_series(loss);
    save(path, 800, 520, |a| draw_unpaid(a, &s))
}

/// The three charts side by side, with the settings underneath (the README's figure).
pub fn overview(
    path: &Path,
    loss: &[RunResult],
    kres: &[RunResult],
    ks: &[u64],
    base: &RunConfig,
) -> anyhow::Result<()> {
    let a = txs_vs_loss_series(loss);
    let b = txs_vs_k_series(kres, ks);
    let c = unpaid_vs_loss_series(loss);
    let caption = format!(
        "supra-sim, seed {}: N = {}, W = {}, K = {} (loss panels), block {} s, Δ {} s, T_ack {} s, one message every {} ms, delay {:?}",
        base.seed,
        base.n,
        base.window,
        base.k,
        base.chain.block_ms / 1000,
        base.chain.delta_onchain_ms / 1000,
        base.t_ack_secs,
        base.publish_every_ms,
        base.link.delay
    );
    let note = "Coinciding lines overlap: SDPP = PPSP in the two transaction panels; SUPRA = PPSP = 0 in the exposure panel. \
                Unpaid = delivered and never paid, max over the honest, withhold and leave runs.";
    save(path, 2100, 620, |root| {
        let (top, bottom) = root.split_vertically(560);
        let panels = top.split_evenly((1, 3));
        draw_txs_vs_loss(&panels[0], &a)?;
        draw_txs_vs_k(&panels[1], &b)?;
        draw_unpaid(&panels[2], &c)?;
        bottom
            .draw(&Text::new(caption, (16, 6), ("sans-serif", 16).into_font()))
            .map_err(e)?;
        bottom
            .draw(&Text::new(note, (16, 32), ("sans-serif", 16).into_font()))
            .map_err(e)?;
        Ok(())
    })
}
