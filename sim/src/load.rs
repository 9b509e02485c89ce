//! The load a fleet serves: a request rate over simulated time, from a `timestamp,value` trace
//! (NAB's format: `YYYY-MM-DD HH:MM:SS` UTC, RFC 3339, or epoch seconds) scaled so that its
//! peak is `peak_rate` and replayed `speedup` times faster, or a synthetic shape (a step, a
//! ramp, a diurnal cycle). A trace's rate holds from each sample to the next (the last one
//! for one more step). Arrivals at that rate are a non-homogeneous Poisson process, drawn by
//! thinning (Lewis and Shedler): candidates at the peak rate, each kept with probability
//! rate(t) / peak.

use rand::Rng;
use rand_distr::{Distribution, Exp};

/// Why a trace cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// A line that is not a sample.
    #[error("line {line}: {reason}")]
    Line {
        /// Its number (1 is the header).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The trace as a whole.
    #[error("{0}")]
    Trace(String),
}

/// A synthetic load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `before` requests/s, then `after` from `at_s` on.
    Step {
        /// The rate before.
        before: f64,
        /// The rate after.
        after: f64,
        /// When it steps, seconds.
        at_s: f64,
    },
    /// From `from` to `to` requests/s linearly over `over_s` seconds, then `to`.
    Ramp {
        /// The rate at 0.
        from: f64,
        /// The rate at `over_s` and after.
        to: f64,
        /// How long the ramp lasts, seconds.
        over_s: f64,
    },
    /// `mean` + `amplitude` × sin(2πt / `period_s`), at least 0.
    Diurnal {
        /// The mean rate.
        mean: f64,
        /// The swing around it.
        amplitude: f64,
        /// One cycle, seconds (a day replayed faster is shorter).
        period_s: f64,
    },
}

impl Shape {
    /// The rate at `t_s`.
    pub fn rate_at(&self, t_s: f64) -> f64 {
        match *self {
            Shape::Step {
                before,
                after,
                at_s,
            } => {
                if t_s < at_s {
                    before
                } else {
                    after
                }
            }
            Shape::Ramp { from, to, over_s } => {
                let f = if over_s > 0.0 {
                    (t_s / over_s).clamp(0.0, 1.0)
                } else {
                    1.0
                };
                from + (to - from) * f
            }
            Shape::Diurnal {
                mean,
                amplitude,
                period_s,
            } => (mean + amplitude * (std::f64::consts::TAU * t_s / period_s).sin()).max(0.0),
        }
    }

    /// Its highest rate.
    pub fn peak(&self) -> f64 {
        match *self {
            Shape::Step { before, after, .. } => before.max(after),
            Shape::Ramp { from, to, .. } => from.max(to),
            Shape::Diurnal {
                mean, amplitude, ..
            } => (mean + amplitude.abs()).max(0.0),
        }
    }
}

impl std::str::FromStr for Shape {
    type Err = String;

    /// `step:BEFORE,AFTER,AT`, `ramp:FROM,TO,OVER` or `diurnal:MEAN,AMPLITUDE,PERIOD`: rates
    /// in requests a second, times as durations (`2m`, `90s`, `1d`).
    fn from_str(s: &str) -> Result<Self, String> {
        let usage = "expected step:BEFORE,AFTER,AT, ramp:FROM,TO,OVER or \
                     diurnal:MEAN,AMPLITUDE,PERIOD (rates per second, times like 2m)";
        let (kind, args) = s
            .split_once(':')
            .ok_or_else(|| format!("load `{s}`: {usage}"))?;
        let parts: Vec<&str> = args.split(',').map(str::trim).collect();
        if parts.len() != 3 {
            return Err(format!("load `{s}`: {usage}"));
        }
        let rate = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && *r >= 0.0)
                .ok_or_else(|| format!("load `{s}`: `{v}` is not a rate (requests a second)"))
        };
        let time = |v: &str| {
            humantime::parse_duration(v)
                .map(|d| d.as_secs_f64())
                .map_err(|e| format!("load `{s}`: `{v}` is not a duration ({e})"))
        };
        Ok(match kind.trim() {
            "step" => Shape::Step {
                before: rate(parts[0])?,
                after: rate(parts[1])?,
                at_s: time(parts[2])?,
            },
            "ramp" => Shape::Ramp {
                from: rate(parts[0])?,
                to: rate(parts[1])?,
                over_s: time(parts[2])?,
            },
            "diurnal" => Shape::Diurnal {
                mean: rate(parts[0])?,
                amplitude: parts[1]
                    .parse::<f64>()
                    .ok()
                    .filter(|a| a.is_finite())
                    .ok_or_else(|| format!("load `{s}`: `{}` is not an amplitude", parts[1]))?,
                period_s: time(parts[2]).and_then(|p| {
                    if p > 0.0 {
                        Ok(p)
                    } else {
                        Err(format!("load `{s}`: a period is longer than 0"))
                    }
                })?,
            },
            other => return Err(format!("load `{s}`: `{other}` is not a shape; {usage}")),
        })
    }
}

/// A synthetic load: one shape, or several added (`diurnal:60,40,1d+step:0,80,14h`, a daily
/// cycle with a lasting step on top).
#[derive(Debug, Clone, PartialEq)]
pub struct Load(Vec<Shape>);

impl Load {
    /// The rate at `t_s`: the shapes' sum.
    pub fn rate_at(&self, t_s: f64) -> f64 {
        self.0.iter().map(|s| s.rate_at(t_s)).sum::<f64>().max(0.0)
    }

    /// An upper bound of its rate: the shapes' peaks added.
    pub fn peak(&self) -> f64 {
        self.0.iter().map(Shape::peak).sum()
    }
}

impl std::str::FromStr for Load {
    type Err = String;

    /// Shapes joined by `+`.
    fn from_str(s: &str) -> Result<Self, String> {
        s.split('+')
            .map(str::parse)
            .collect::<Result<Vec<Shape>, String>>()
            .map(Load)
    }
}

/// A replayed trace: sample times (simulated seconds from its start) and rates.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    times_s: Vec<f64>,
    rates: Vec<f64>,
}

fn parse_time(t: &str) -> Option<f64> {
    let t = t.trim();
    if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S") {
        return Some(d.and_utc().timestamp_millis() as f64 / 1e3);
    }
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Some(d.timestamp_millis() as f64 / 1e3);
    }
    t.parse::<f64>().ok().filter(|s| s.is_finite())
}

impl Trace {
    /// The trace in `text` (a `timestamp,value` CSV with its header, in time order), scaled to
    /// `peak_rate` at its highest value and replayed `speedup` times faster.
    pub fn from_csv(text: &str, peak_rate: f64, speedup: f64) -> Result<Trace, LoadError> {
        if !(peak_rate > 0.0 && speedup > 0.0 && peak_rate.is_finite() && speedup.is_finite()) {
            return Err(LoadError::Trace(format!(
                "peak rate ({peak_rate}) and speed-up ({speedup}) must be positive"
            )));
        }
        let mut lines = text.lines().enumerate();
        let header = lines.next().map(|(_, h)| h.trim().to_ascii_lowercase());
        if header.as_deref() != Some("timestamp,value") {
            return Err(LoadError::Line {
                line: 1,
                reason: format!("the header must be `timestamp,value` (found {header:?})"),
            });
        }
        let (mut times, mut values) = (Vec::new(), Vec::new());
        for (i, l) in lines {
            let line = i + 1;
            if l.trim().is_empty() {
                continue;
            }
            let bad = |reason: String| LoadError::Line { line, reason };
            let (t, v) = l
                .split_once(',')
                .ok_or_else(|| bad(format!("`{l}` is not `timestamp,value`")))?;
            let t = parse_time(t).ok_or_else(|| bad(format!("timestamp `{t}`")))?;
            let v: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad(format!("value `{}` is not a number of requests", v.trim())))?;
            if times.last().is_some_and(|&last| t <= last) {
                return Err(bad("timestamps must increase".into()));
            }
            times.push(t);
            values.push(v);
        }
        let peak = values.iter().copied().fold(0.0, f64::max);
        if times.len() < 2 || peak <= 0.0 {
            return Err(LoadError::Trace(
                "a trace needs two samples and a value above 0".into(),
            ));
        }
        let t0 = times[0];
        Ok(Trace {
            times_s: times.iter().map(|t| (t - t0) / speedup).collect(),
            rates: values.iter().map(|v| v / peak * peak_rate).collect(),
        })
    }

    /// The rate at `t_s` (0 outside the trace).
    pub fn rate_at(&self, t_s: f64) -> f64 {
        if t_s < 0.0 || t_s >= self.duration_s() {
            return 0.0;
        }
        let i = self.times_s.partition_point(|&s| s <= t_s);
        self.rates[i.saturating_sub(1)]
    }

    /// How long it lasts: to its last sample, plus one step.
    pub fn duration_s(&self) -> f64 {
        let n = self.times_s.len();
        self.times_s[n - 1] + (self.times_s[n - 1] - self.times_s[n - 2])
    }

    /// Its highest rate (the peak it was scaled to).
    pub fn peak(&self) -> f64 {
        self.rates.iter().copied().fold(0.0, f64::max)
    }
}

/// The next arrival after `t_s` (seconds) at the rate `rate_at`, which never passes `peak`;
/// `None` past `until_s`.
pub fn next_arrival<R: Rng>(
    rng: &mut R,
    t_s: f64,
    until_s: f64,
    peak: f64,
    rate_at: impl Fn(f64) -> f64,
) -> Option<f64> {
    let gap = Exp::new(peak).ok()?;
    let mut t = t_s;
    loop {
        t += gap.sample(rng);
        if t > until_s {
            return None;
        }
        if rng.random::<f64>() * peak < rate_at(t) {
            return Some(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const CSV: &str = "timestamp,value\n\
        2014-04-10 00:00:00,50\n\
        2014-04-10 00:05:00,200\n\
        2014-04-10 00:10:00,100\n";

    #[test]
    fn shapes_are_written_as_kind_and_three_values() {
        assert_eq!(
            "step:20,100,2m".parse::<Shape>(),
            Ok(Shape::Step {
                before: 20.0,
                after: 100.0,
                at_s: 120.0
            })
        );
        assert_eq!(
            "ramp: 10, 50, 90s".parse::<Shape>(),
            Ok(Shape::Ramp {
                from: 10.0,
                to: 50.0,
                over_s: 90.0
            })
        );
        assert_eq!(
            "diurnal:100,-40,1d".parse::<Shape>(),
            Ok(Shape::Diurnal {
                mean: 100.0,
                amplitude: -40.0,
                period_s: 86_400.0
            })
        );
        for bad in [
            "step:20,100",
            "step:-1,2,3s",
            "step:1,2,3",
            "sine:1,2,3s",
            "diurnal:1,2,0s",
            "20",
        ] {
            let e = bad.parse::<Shape>().expect_err(bad);
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn a_trace_is_scaled_to_its_peak_and_replayed_faster() {
        // peak 200 -> 400 requests/s; 5-minute samples replayed 60 times faster: 5 s apart
        let t = Trace::from_csv(CSV, 400.0, 60.0).unwrap();
        assert_eq!(t.duration_s(), 15.0);
        assert_eq!(t.peak(), 400.0);
        let at: Vec<f64> = [0.0, 4.9, 5.0, 9.99, 10.0, 14.9, 15.0, -1.0]
            .iter()
            .map(|&s| t.rate_at(s))
            .collect();
        assert_eq!(at, [100.0, 100.0, 400.0, 400.0, 200.0, 200.0, 0.0, 0.0]);
        // epoch seconds read too
        let e = Trace::from_csv("timestamp,value\n0,1\n10,2\n", 2.0, 1.0).unwrap();
        assert_eq!(e.rate_at(12.0), 2.0);
    }

    #[test]
    fn bad_traces_say_where() {
        for (text, says) in [
            ("time,value\n0,1\n1,2\n", "line 1: the header"),
            (
                "timestamp,value\n0,1\nyesterday,2\n",
                "line 3: timestamp `yesterday`",
            ),
            ("timestamp,value\n0,1\n1,-2\n", "line 3: value `-2`"),
            (
                "timestamp,value\n5,1\n1,2\n",
                "line 3: timestamps must increase",
            ),
            ("timestamp,value\n0,1\n", "two samples"),
            ("timestamp,value\n0,0\n1,0\n", "above 0"),
        ] {
            let e = Trace::from_csv(text, 10.0, 1.0).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
        }
        assert!(Trace::from_csv(CSV, 0.0, 1.0).is_err());
    }

    #[test]
    fn shapes_have_their_exact_rates() {
        let s = Shape::Step {
            before: 10.0,
            after: 30.0,
            at_s: 60.0,
        };
        assert_eq!(
            (s.rate_at(59.9), s.rate_at(60.0), s.peak()),
            (10.0, 30.0, 30.0)
        );
        let r = Shape::Ramp {
            from: 10.0,
            to: 50.0,
            over_s: 100.0,
        };
        assert_eq!((r.rate_at(25.0), r.rate_at(200.0)), (20.0, 50.0));
        let d = Shape::Diurnal {
            mean: 100.0,
            amplitude: 50.0,
            period_s: 240.0,
        };
        assert!(
            (d.rate_at(60.0) - 150.0).abs() < 1e-9,
            "a quarter cycle: the top"
        );
        assert!((d.rate_at(180.0) - 50.0).abs() < 1e-9);
        assert_eq!(d.peak(), 150.0);
    }

    #[test]
    fn arrivals_follow_the_rate_and_a_seed_gives_the_same() {
        // a step from 100/s to 400/s at 50 s, over 100 s: about 5 000 then 20 000 arrivals
        let s = Shape::Step {
            before: 100.0,
            after: 400.0,
            at_s: 50.0,
        };
        let run = |seed: u64| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut t = 0.0;
            let mut times = Vec::new();
            while let Some(n) = next_arrival(&mut rng, t, 100.0, s.peak(), |x| s.rate_at(x)) {
                times.push(n);
                t = n;
            }
            times
        };
        let times = run(9);
        let before = times.iter().filter(|&&t| t < 50.0).count() as f64;
        let after = times.len() as f64 - before;
        // Poisson counts: within 4 standard deviations (sqrt of the mean)
        assert!((before - 5_000.0).abs() < 4.0 * 5_000f64.sqrt(), "{before}");
        assert!((after - 20_000.0).abs() < 4.0 * 20_000f64.sqrt(), "{after}");
        assert_eq!(run(9), times);
        assert!(times.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn shapes_add_up() {
        let load: Load = "diurnal:60,40,1d+step:0,80,14h".parse().unwrap();
        let day = 86_400.0;
        for t in [
            0.0,
            6.0 * 3600.0,
            14.0 * 3600.0 - 1.0,
            14.0 * 3600.0,
            20.0 * 3600.0,
        ] {
            let cycle = 60.0 + 40.0 * (std::f64::consts::TAU * t / day).sin();
            let step = if t < 14.0 * 3600.0 { 0.0 } else { 80.0 };
            assert!((load.rate_at(t) - (cycle + step)).abs() < 1e-9, "{t}");
        }
        assert_eq!(load.peak(), 180.0);
        assert!("step:1,2,3m+nope:1".parse::<Load>().is_err());
        assert_eq!(
            "step:20,100,1m".parse::<Load>().unwrap().rate_at(61.0),
            100.0,
            "one shape alone"
        );
    }
}
