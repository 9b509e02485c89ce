//! Worker-local pre-aggregation: the points a worker reads at one timely time are folded into one
//! [`Partial`] per (series, window) before they are exchanged, so what crosses workers is one
//! sketch per series and window rather than every point. A series is the service, the metric
//! and the point's series attributes ([`SeriesAttributeKeys`]).

use std::collections::HashMap;

use apo_schemas::attributes::{Attributes, SeriesAttributeKeys};
use apo_schemas::MetricPoint;

use crate::ops::aggregate::{window_start, Partial, WindowKey};

pub struct PreAggregator {
    /// (seconds, milliseconds) of each configured window size.
    sizes: Vec<(u32, i64)>,
    alpha: f64,
    keys: SeriesAttributeKeys,
    /// service → metric → attributes → partials of that series (one per window touched).
    series: HashMap<String, HashMap<String, HashMap<Attributes, Vec<Partial>>>>,
    points: usize,
}

impl PreAggregator {
    /// Partials of windows of `window_seconds` with sketches of `alpha`, series split by
    /// `keys`.
    pub fn new(window_seconds: &[u32], alpha: f64, keys: SeriesAttributeKeys) -> Self {
        PreAggregator {
            sizes: window_seconds
                .iter()
                .map(|&s| (s, s as i64 * 1000))
                .collect(),
            alpha,
            keys,
            series: HashMap::new(),
            points: 0,
        }
    }

    /// Points added since the last drain.
    pub fn points(&self) -> usize {
        self.points
    }

    /// Adds `p` to the partials of its series' windows.
    pub fn add(&mut self, p: &MetricPoint) {
        self.points += 1;
        let by_metric = match self.series.get_mut(&p.service) {
            Some(m) => m,
            None => self.series.entry(p.service.clone()).or_default(),
        };
        let by_attributes = match by_metric.get_mut(&p.name) {
            Some(v) => v,
            None => by_metric.entry(p.name.clone()).or_default(),
        };
        let attributes = self.keys.select(&p.tags);
        let partials = match by_attributes.get_mut(&attributes) {
            Some(v) => v,
            None => by_attributes.entry(attributes.clone()).or_default(),
        };
        for &(secs, ms) in &self.sizes {
            let start = window_start(p.timestamp, ms);
            let found = partials
                .iter_mut()
                .position(|x| x.key.window_seconds == secs && x.key.window_start == start);
            let at = match found {
                Some(i) => i,
                None => {
                    partials.push(Partial::new(
                        WindowKey {
                            service: p.service.clone(),
                            metric: p.name.clone(),
                            attributes: attributes.clone(),
                            window_seconds: secs,
                            window_start: start,
                        },
                        p.unit.clone(),
                        self.alpha,
                    ));
                    partials.len() - 1
                }
            };
            partials[at].add(p);
        }
    }

    /// Takes every partial built so far.
    pub fn drain(&mut self, out: &mut Vec<Partial>) {
        for by_metric in self.series.values_mut() {
            // Attribute sets come and go: none is kept past the drain.
            for by_attributes in by_metric.values_mut() {
                for (_, mut partials) in by_attributes.drain() {
                    out.append(&mut partials);
                }
            }
        }
        self.points = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(route: &str, host: &str, value: f64) -> MetricPoint {
        let mut p: MetricPoint = serde_json::from_str(
            r#"{"timestamp": 60500, "service": "s", "name": "http.server.request.duration", "value": 0}"#,
        )
        .unwrap();
        p.value = value;
        p.tags.insert("http.route".into(), route.into());
        p.tags.insert("k8s.pod.name".into(), host.into());
        p
    }

    /// Each route is a series with its own partial; a tag that is not a series attribute
    /// (the pod) does not split them; without keys there is one series.
    #[test]
    fn series_attributes_split_partials() {
        let mut pre = PreAggregator::new(&[10], 0.01, SeriesAttributeKeys::default());
        for (r, pod, v) in [("/a", "p1", 1.0), ("/a", "p2", 3.0), ("/b", "p1", 10.0)] {
            pre.add(&point(r, pod, v));
        }
        let mut out = Vec::new();
        pre.drain(&mut out);
        out.sort_by(|a, b| a.key.cmp(&b.key));
        let got: Vec<(String, u64, f64)> = out
            .iter()
            .map(|p| {
                (
                    p.key.attributes["http.route"].clone(),
                    p.count,
                    p.sum.value(),
                )
            })
            .collect();
        assert_eq!(got, vec![("/a".into(), 2, 4.0), ("/b".into(), 1, 10.0)]);

        let mut pre = PreAggregator::new(&[10], 0.01, SeriesAttributeKeys::none());
        pre.add(&point("/a", "p1", 1.0));
        pre.add(&point("/b", "p1", 2.0));
        pre.drain(&mut out);
        assert_eq!(out.len(), 3);
        assert!(out[2].key.attributes.is_empty());
        assert_eq!(out[2].count, 2);
    }
}
