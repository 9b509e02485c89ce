//! The report's plot (SVG, plotters): over the run's hours, the load offered, each run's
//! replicas, and each run's request p95 per minute (log scale, the objective dashed).

use std::path::Path;

use plotters::prelude::*;

use crate::report::measure::Summary;

/// The runs' colours, in the order fixed, HPA, APO.
const COLOURS: [RGBColor; 3] = [RGBColor(120, 120, 120), RGBColor(214, 96, 0), BLUE];

/// Draws `runs` (label, summary) with the objective `slo_p95_s` to `path`.
pub fn svg(path: &Path, runs: &[(&str, &Summary)], slo_p95_s: f64) -> Result<(), String> {
    draw(path, runs, slo_p95_s).map_err(|e| format!("drawing {}: {e}", path.display()))
}

/// A panel's chart builder: its caption, margins and label areas.
fn labelled<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(area);
    b.caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60);
    b
}

fn draw(
    path: &Path,
    runs: &[(&str, &Summary)],
    slo_p95_s: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let hours = runs
        .iter()
        .flat_map(|(_, s)| s.minutes.last().map(|m| m.end_s / 3600.0))
        .fold(1.0 / 60.0, f64::max);
    let root = SVGBackend::new(path, (1200, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((3, 1));
    let colour = |i: usize| COLOURS[i.min(COLOURS.len() - 1)];

    // the load (the same for every run: the first's)
    let load: Vec<(f64, f64)> = runs
        .first()
        .map(|(_, s)| {
            s.minutes
                .iter()
                .map(|m| (m.end_s / 3600.0, m.load))
                .collect()
        })
        .unwrap_or_default();
    let top = load.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let mut chart = labelled(&panels[0], "load offered (requests/s)")
        .build_cartesian_2d(0.0..hours, 0.0..top)?;
    chart.configure_mesh().x_desc("hours").draw()?;
    chart.draw_series(LineSeries::new(load, &BLACK))?;

    // replicas asked for
    let top = runs
        .iter()
        .flat_map(|(_, s)| s.minutes.iter().map(|m| f64::from(m.replicas)))
        .fold(1.0, f64::max)
        + 1.0;
    let mut chart =
        labelled(&panels[1], "replicas (asked for)").build_cartesian_2d(0.0..hours, 0.0..top)?;
    chart.configure_mesh().x_desc("hours").draw()?;
    for (i, (label, s)) in runs.iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(
                s.minutes
                    .iter()
                    .map(|m| (m.end_s / 3600.0, f64::from(m.replicas))),
                c.stroke_width(2),
            ))?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    // p95 per minute, log scale
    let low = (slo_p95_s / 20.0).max(1e-3);
    let high = runs
        .iter()
        .flat_map(|(_, s)| s.minutes.iter().map(|m| m.p95_s))
        .fold(slo_p95_s * 4.0, f64::max)
        * 1.5;
    let mut chart = labelled(
        &panels[2],
        &format!("request p95 per minute (s, log scale; dashed: the objective, {slo_p95_s} s)"),
    )
    .build_cartesian_2d(0.0..hours, (low..high).log_scale())?;
    chart.configure_mesh().x_desc("hours").draw()?;
    for (i, (label, s)) in runs.iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(
                s.minutes
                    .iter()
                    .filter(|m| m.requests > 0)
                    .map(|m| (m.end_s / 3600.0, m.p95_s.max(low))),
                c.stroke_width(1),
            ))?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart.draw_series(DashedLineSeries::new(
        vec![(0.0, slo_p95_s), (hours, slo_p95_s)],
        8,
        6,
        RED.stroke_width(1),
    ))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
