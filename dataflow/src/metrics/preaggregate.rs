//! Worker-local pre-aggregation: the points a worker reads at one timely time are folded into one
//! [`Partial`] per (series, window) before they are exchanged, so what crosses workers is one
//! sketch per series and window rather than every point.

use std::collections::HashMap;

use apo_schemas::MetricPoint;

use crate::ops::aggregate::{window_start, Partial, WindowKey};

pub struct PreAggregator {
    /// (seconds, milliseconds) of each configured window size.
    sizes: Vec<(u32, i64)>,
    alpha: f64,
    /// service → metric → partials of that series (one per window touched).
    series: HashMap<String, HashMap<String, Vec<Partial>>>,
    points: usize,
}

impl PreAggregator {
    pub fn new(window_seconds: &[u32], alpha: f64) -> Self {
        PreAggregator {
            sizes: window_seconds
                .iter()
                .map(|&s| (s, s as i64 * 1000))
                .collect(),
            alpha,
            series: HashMap::new(),
            points: 0,
        }
    }

    /// Points added since the last drain.
    pub fn points(&self) -> usize {
        self.points
    }

    pub fn add(&mut self, p: &MetricPoint) {
        self.points += 1;
        let by_metric = match self.series.get_mut(&p.service) {
            Some(m) => m,
            None => self.series.entry(p.service.clone()).or_default(),
        };
        let partials = match by_metric.get_mut(&p.name) {
            Some(v) => v,
            None => by_metric.entry(p.name.clone()).or_default(),
        };
        for &(secs, ms) in &self.sizes {
            let start = window_start(p.timestamp, ms);
            let found = partials
                .iter_mut()
                .find(|x| x.key.window_seconds == secs && x.key.window_start == start);
            let partial = match found {
                Some(x) => x,
                None => {
                    partials.push(Partial::new(
                        WindowKey {
                            service: p.service.clone(),
                            metric: p.name.clone(),
                            window_seconds: secs,
                            window_start: start,
                        },
                        p.unit.clone(),
                        self.alpha,
                    ));
                    let last = partials.len() - 1;
                    &mut partials[last]
                }
            };
            partial.add(p);
        }
    }

    /// Takes every partial built so far.
    pub fn drain(&mut self, out: &mut Vec<Partial>) {
        for by_metric in self.series.values_mut() {
            for partials in by_metric.values_mut() {
                out.append(partials);
            }
        }
        self.points = 0;
    }
}
