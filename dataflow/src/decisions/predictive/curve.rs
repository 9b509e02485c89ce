//! A scale target's forecast curve: the load its predictive rule plans for (a quantile of its
//! load metric's forecast, the upper bound by default: `Predictive::planned`), by the
//! window the forecast is for, kept from the moment it is issued until that window is past.
//! A decision on the window ending at `T` sees the forecasts issued by `T` (those of windows
//! ending at or before it) for windows ending after `T`, the latest such of each window,
//! whatever else has arrived in the same batch: the same windows give the same decisions in a
//! replay. So every issue of a window's forecast is kept until the window is past (one per
//! horizon the forecaster has; it has one).

use std::collections::BTreeMap;

use super::capacity::Load;

/// A target's forecasts of its load, by the end of the window each is for.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ForecastCurve {
    /// Window end → the end of the window each forecast of it was issued at → the load planned.
    points: BTreeMap<i64, BTreeMap<i64, f64>>,
    /// The signal of the forecasts (the window statistic forecast: `rate`, `mean`, …).
    signal: String,
}

impl ForecastCurve {
    /// Keeps the forecast of `signal` issued at `issued` (a window's end) of the window
    /// ending at `target_end` (the same issue again replaces it).
    pub fn insert(&mut self, issued: i64, target_end: i64, planned: f64, signal: &str) {
        if !planned.is_finite() || target_end <= issued {
            return;
        }
        if self.signal != signal {
            self.signal = signal.to_string();
        }
        self.points
            .entry(target_end)
            .or_default()
            .insert(issued, planned);
    }

    /// The forecasts known at `now` (the latest of each window issued at or before it) of
    /// windows ending after it, in order.
    pub fn ahead_of(&self, now: i64) -> Vec<Load> {
        self.points
            .range(now + 1..)
            .filter_map(|(&end, issues)| {
                let (_, &planned) = issues.range(..=now).next_back()?;
                Some(Load { end, planned })
            })
            .collect()
    }

    /// Forgets the windows ending at or before `now`.
    pub fn forget_through(&mut self, now: i64) {
        self.points = self.points.split_off(&(now + 1));
    }

    /// The signal forecast (empty before the first forecast).
    pub fn signal(&self) -> &str {
        &self.signal
    }

    /// Forecasts held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.points.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_sees_what_was_issued_by_its_window_for_after_it() {
        let mut c = ForecastCurve::default();
        c.insert(60, 960, 5.0, "rate");
        c.insert(120, 1020, 6.0, "rate");
        c.insert(180, 1080, 7.0, "rate"); // issued after the window decided on below
        c.insert(60, 50, 1.0, "rate"); // for a window before its issue: ignored
        c.insert(60, 900, f64::NAN, "rate"); // not a number: ignored
        assert_eq!(c.signal(), "rate");
        assert_eq!(
            c.ahead_of(120),
            [
                Load {
                    end: 960,
                    planned: 5.0
                },
                Load {
                    end: 1020,
                    planned: 6.0
                }
            ]
        );
        // the latest issue by then counts: an older one does not, nor a newer one later
        c.insert(0, 960, 50.0, "rate");
        assert_eq!(c.ahead_of(120)[0].planned, 5.0);
        c.insert(100, 960, 9.0, "rate");
        c.insert(200, 960, 11.0, "rate");
        assert_eq!(c.ahead_of(120)[0].planned, 9.0);
        assert_eq!(c.ahead_of(50)[0].planned, 50.0);
        assert_eq!(c.ahead_of(200)[0].planned, 11.0);
        c.forget_through(1020);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c.ahead_of(180),
            [Load {
                end: 1080,
                planned: 7.0
            }]
        );
    }
}
