//! The ceiling on live metric series (issue 14, part 2).
//!
//! A series is one (service, metric, series attributes). It is *live* while one of its windows
//! can still change:
//! until the end of its latest window plus the horizon has passed. Each worker decides for the
//! series it owns (partials are exchanged by series before this stage, as the windows are), with
//! an equal share of each limit (`ceil(limit / workers)`): with one worker the limits are exact.
//!
//! A new series over a limit is not dropped: its data are folded into an overflow series, as
//! OpenTelemetry SDKs fold attribute sets past their cardinality limit into one marked
//! `otel.metric.overflow`:
//!
//! - an attribute set of a metric past the per-metric limit (`max_attribute_sets`, the SDKs'
//!   default cardinality limit of 2000), into the metric's series with the one attribute
//!   `otel.metric.overflow = "true"`, exactly as the SDKs mark it. Every attribute series of a
//!   metric is on one worker (they share its route), so this limit is exact whatever the
//!   number of workers. The overflow series is a series like the others for the limits below;
//! - past the per-service limit, into `(service, otel.metric.overflow)`;
//! - past the total (the per-service overflow series count towards it), into
//!   `(otel.metric.overflow, otel.metric.overflow)`, which is always kept.
//!
//! Counts and sums of an overflow series are exact totals of what was folded into it; its
//! quantiles mix metrics and mean little. A series' fate is decided when it first arrives (or
//! arrives again after it was forgotten) and kept while it is live; the new series of one
//! event-time batch are decided in key order. Which batch a series first arrives in can depend
//! on how partitions interleave, so near the limits two runs may keep different series.
//!
//! While the process is over its memory budget ([`crate::engine::budget`]) every new series is
//! folded as if it were past the limits: into its service's overflow series when that one is
//! live already, else into the global one. Series already live keep their own windows. Between
//! the budget's evaluations (ten a second) the limiter also spends the budget's room itself:
//! each window a series admitted since then opens is charged what it will take
//! ([`new_window_bytes`]), and once this worker's share of the room is spent, new series fold
//! as if the budget were over. A batch of 100 000 new series cannot overshoot the budget
//! before it is next evaluated.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use apo_schemas::attributes::{is_overflow, overflow_attributes};

use crate::engine::checkpoint::OperatorCheckpoint;
use crate::engine::progress::Progress;
use crate::ops::aggregate::Partial;
use crate::ops::route::route_strs;
use crate::ops::stash::MergedStash;
use crate::ops::window::new_window_bytes;

/// The service and metric name of overflow series.
pub const OVERFLOW: &str = "otel.metric.overflow";

/// How many series may be live at once (see `apo run --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeriesLimits {
    /// Live series in total (every service, overflow series of services included).
    pub max_series: usize,
    /// Live series of one service.
    pub max_series_per_service: usize,
    /// Live attribute sets of one metric of one service.
    pub max_attribute_sets: usize,
}

impl Default for SeriesLimits {
    fn default() -> Self {
        SeriesLimits {
            max_series: 20_000,
            max_series_per_service: 2_000,
            max_attribute_sets: 2_000,
        }
    }
}

impl SeriesLimits {
    /// This worker's share of each limit when `workers` share the series.
    pub fn share(&self, workers: usize) -> SeriesLimits {
        let w = workers.max(1);
        SeriesLimits {
            max_series: self.max_series.div_ceil(w),
            max_series_per_service: self.max_series_per_service.div_ceil(w),
            // A metric's attribute sets are all on one worker.
            max_attribute_sets: self.max_attribute_sets,
        }
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Live {
    /// End of the latest window + horizon: live until the watermark reaches it.
    expires: i64,
    /// Hash of the service, for its count.
    service: u64,
    /// What the series is: kept, a service's overflow series, or folded away.
    fate: Fate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Fate {
    Kept,
    ServiceOverflow,
    Folded { into_global: bool },
}

/// Counts of a limiter, for the progress line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesCounts {
    /// Series live now (kept ones and overflow series).
    pub live: usize,
    /// Distinct series live now whose data go to an overflow series.
    pub folded: usize,
    /// Points folded into overflow series so far.
    pub points_folded: u64,
    /// New series folded because the memory budget was over, so far.
    pub budget_folds: u64,
}

/// The ids whose candidate expiry is at or before `t`, taken out of `expiry` (an id renewed
/// since has a later entry: its caller checks its latest expiry).
fn take_due(expiry: &mut BTreeMap<i64, Vec<u64>>, t: i64) -> Vec<u64> {
    let later = match t.checked_add(1) {
        Some(after) => expiry.split_off(&after),
        None => BTreeMap::new(),
    };
    std::mem::replace(expiry, later)
        .into_values()
        .flatten()
        .collect()
}

/// A live attribute set of a metric, and whether it is folded into the metric's overflow
/// series.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct LiveSet {
    expires: i64,
    /// The route of its (service, metric).
    metric: u64,
    folded: bool,
}

/// One worker's live attribute sets per metric, against `max_attribute_sets`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct AttributeSets {
    sets: HashMap<u64, LiveSet>,
    /// Kept sets per metric.
    per_metric: HashMap<u64, usize>,
    expiry: BTreeMap<i64, Vec<u64>>,
    /// Live sets folded into their metric's overflow series.
    folded: usize,
}

impl AttributeSets {
    /// Whether the set `id` of `metric`, live until `expires`, is folded (deciding a new one).
    fn admit(&mut self, id: u64, metric: u64, expires: i64, limit: usize) -> bool {
        let live = match self.sets.get_mut(&id) {
            Some(l) => l,
            None => {
                let kept = self.per_metric.get(&metric).copied().unwrap_or(0);
                let folded = kept >= limit;
                if folded {
                    self.folded += 1;
                } else {
                    *self.per_metric.entry(metric).or_default() += 1;
                }
                self.sets.entry(id).or_insert(LiveSet {
                    expires: i64::MIN,
                    metric,
                    folded,
                })
            }
        };
        if expires > live.expires {
            live.expires = expires;
            self.expiry.entry(expires).or_default().push(id);
        }
        live.folded
    }

    fn evict_until(&mut self, t: i64) {
        for id in take_due(&mut self.expiry, t) {
            let Some(l) = self.sets.get(&id).copied() else {
                continue;
            };
            if l.expires > t {
                continue;
            }
            self.sets.remove(&id);
            if l.folded {
                self.folded -= 1;
            } else if let Some(n) = self.per_metric.get_mut(&l.metric) {
                *n -= 1;
                if *n == 0 {
                    self.per_metric.remove(&l.metric);
                }
            }
        }
    }
}

/// One worker's live series and the decision for each.
#[derive(Debug)]
pub struct SeriesLimiter {
    limits: SeriesLimits,
    horizon_ms: i64,
    series: HashMap<u64, Live>,
    per_service: HashMap<u64, usize>,
    /// Candidate expiries (a series is checked against its latest when popped).
    expiry: BTreeMap<i64, Vec<u64>>,
    /// Series counting towards the total (kept and service overflow).
    total: usize,
    folded: usize,
    /// Folded series whose data go to the global overflow series.
    folded_global: usize,
    points_folded: u64,
    /// The memory budget is over: new series fold.
    over_budget: bool,
    budget_folds: u64,
    /// Bytes this worker may still take before the budget's next evaluation (`None`: no
    /// budget).
    room: Option<i64>,
    /// Points are counted from the partials of this window size only (every point is in one
    /// window of each size); `None`: from every partial.
    points_of: Option<u32>,
    /// Series admitted since the room was set: their windows are new (a series admitted
    /// earlier is in what the budget counted).
    fresh: std::collections::HashSet<u64>,
    /// Attribute sets per metric.
    sets: AttributeSets,
}

/// What a checkpoint keeps of a limiter: its live series and their decisions, and its counts
/// (its limits, horizon and budget come from the run's settings).
type LimiterSnapshot<'a> = (
    &'a HashMap<u64, Live>,
    &'a HashMap<u64, usize>,
    &'a BTreeMap<i64, Vec<u64>>,
    [u64; 5],
    &'a AttributeSets,
);
type LimiterRestored = (
    HashMap<u64, Live>,
    HashMap<u64, usize>,
    BTreeMap<i64, Vec<u64>>,
    [u64; 5],
    AttributeSets,
);

impl SeriesLimiter {
    /// The live series and their decisions as bytes, for a checkpoint.
    pub fn snapshot(&self) -> Result<Vec<u8>, bincode::Error> {
        let counts = [
            self.total as u64,
            self.folded as u64,
            self.folded_global as u64,
            self.points_folded,
            self.budget_folds,
        ];
        let s: LimiterSnapshot<'_> = (
            &self.series,
            &self.per_service,
            &self.expiry,
            counts,
            &self.sets,
        );
        bincode::serialize(&s)
    }

    /// This limiter with the live series and decisions of a [`SeriesLimiter::snapshot`].
    pub fn restored(mut self, bytes: &[u8]) -> Result<Self, bincode::Error> {
        let (series, per_service, expiry, c, sets): LimiterRestored = bincode::deserialize(bytes)?;
        self.series = series;
        self.per_service = per_service;
        self.expiry = expiry;
        self.total = c[0] as usize;
        self.folded = c[1] as usize;
        self.folded_global = c[2] as usize;
        self.points_folded = c[3];
        self.budget_folds = c[4];
        self.sets = sets;
        Ok(self)
    }

    /// A limiter with `limits` (this worker's share) for windows revisable `horizon_ms` after
    /// their end.
    pub fn new(limits: SeriesLimits, horizon_ms: i64) -> Self {
        SeriesLimiter {
            limits,
            horizon_ms,
            series: HashMap::new(),
            per_service: HashMap::new(),
            expiry: BTreeMap::new(),
            total: 0,
            folded: 0,
            folded_global: 0,
            points_folded: 0,
            over_budget: false,
            budget_folds: 0,
            room: None,
            fresh: std::collections::HashSet::new(),
            points_of: None,
            sets: AttributeSets::default(),
        }
    }

    /// Counts folded points from the partials of windows of `window_seconds` only: each point
    /// is in one window of every size, and would otherwise count once per size.
    pub fn counting_points_of(mut self, window_seconds: u32) -> Self {
        self.points_of = Some(window_seconds);
        self
    }

    fn count_points(&mut self, p: &Partial) {
        if self.points_of.is_none_or(|s| s == p.key.window_seconds) {
            self.points_folded += p.count;
        }
    }

    /// The bytes this worker may take until the budget is next evaluated (`None`: no budget);
    /// series admitted from now on are charged against it.
    pub fn set_room(&mut self, room: Option<i64>) {
        self.room = room;
        self.fresh.clear();
    }

    /// Whether the process is over its memory budget now (new series fold while it is).
    pub fn set_over_budget(&mut self, over: bool) {
        self.over_budget = over;
    }

    /// Counts now.
    pub fn counts(&self) -> SeriesCounts {
        SeriesCounts {
            live: self.total + usize::from(self.folded_global > 0),
            folded: self.folded + self.sets.folded,
            points_folded: self.points_folded,
            budget_folds: self.budget_folds,
        }
    }

    /// Forgets series whose windows can no longer change at watermark `t`.
    pub fn evict_until(&mut self, t: i64) {
        self.sets.evict_until(t);
        for id in take_due(&mut self.expiry, t) {
            let Some(l) = self.series.get(&id).copied() else {
                continue;
            };
            if l.expires > t {
                continue; // renewed since: a later entry stands for it
            }
            self.series.remove(&id);
            match l.fate {
                Fate::Kept => {
                    self.total -= 1;
                    if let Some(n) = self.per_service.get_mut(&l.service) {
                        *n -= 1;
                        if *n == 0 {
                            self.per_service.remove(&l.service);
                        }
                    }
                }
                Fate::ServiceOverflow => self.total -= 1,
                Fate::Folded { into_global } => {
                    self.folded -= 1;
                    if into_global {
                        self.folded_global -= 1;
                    }
                }
            }
        }
    }

    /// Decides for `p` (re-keying it to its overflow series when its series is over a limit);
    /// true when it was folded.
    pub fn admit(&mut self, p: &mut Partial) -> bool {
        let expires = p.key.window_end().saturating_add(self.horizon_ms);
        if p.key.service == OVERFLOW && p.key.metric == OVERFLOW {
            self.count_points(p);
            return true;
        }
        // An attribute set past its metric's limit becomes the metric's overflow series.
        let set_folded = !p.key.attributes.is_empty()
            && !is_overflow(&p.key.attributes)
            && self.sets.admit(
                p.key.series_id(),
                p.key.route(),
                expires,
                self.limits.max_attribute_sets,
            );
        if set_folded {
            p.key.attributes = overflow_attributes();
        }
        let folded = self.admit_series(p, expires);
        if set_folded || folded {
            self.count_points(p);
        }
        set_folded || folded
    }

    /// Decides for the series of `p` against the service's and the total limit, re-keying it
    /// when folded; true when it was.
    fn admit_series(&mut self, p: &mut Partial, expires: i64) -> bool {
        let id = p.key.series_id();
        let (fate, service) = match self.series.get(&id) {
            Some(l) => (l.fate, l.service),
            None => {
                let service = route_strs(&[&p.key.service]);
                let f = self.decide_new(id, service, &p.key.service);
                self.series.insert(
                    id,
                    Live {
                        expires: i64::MIN,
                        service,
                        fate: f,
                    },
                );
                (f, service)
            }
        };
        self.renew(id, expires);
        if let Some(room) = self.room.as_mut() {
            if self.fresh.contains(&id) {
                *room -= new_window_bytes(p) as i64;
            }
        }
        match fate {
            Fate::Kept | Fate::ServiceOverflow => false,
            Fate::Folded { into_global } => {
                if into_global {
                    p.key.service = OVERFLOW.to_string();
                } else {
                    // The service's overflow series is live as long as what it holds.
                    let oid = route_strs(&[&p.key.service, OVERFLOW]);
                    if !self.series.contains_key(&oid) {
                        // Forgotten before the series folded into it: it counts again.
                        self.add_service_overflow(oid, service);
                    }
                    self.renew(oid, expires);
                }
                p.key.metric = OVERFLOW.to_string();
                // The overflow series mixes metrics: no attributes.
                p.key.attributes.clear();
                true
            }
        }
    }

    /// What a series not seen (or forgotten) becomes, counting it.
    fn decide_new(&mut self, id: u64, service: u64, name: &str) -> Fate {
        let of_service = self.per_service.get(&service).copied().unwrap_or(0);
        let oid = route_strs(&[name, OVERFLOW]);
        if self.over_budget || self.room.is_some_and(|r| r <= 0) {
            // No new series at all: the service's overflow series if it is live, else the
            // global one.
            self.folded += 1;
            self.budget_folds += 1;
            let into_global = !self.series.contains_key(&oid);
            self.folded_global += usize::from(into_global);
            return Fate::Folded { into_global };
        }
        if of_service < self.limits.max_series_per_service && self.total < self.limits.max_series {
            *self.per_service.entry(service).or_default() += 1;
            self.total += 1;
            if self.room.is_some() {
                self.fresh.insert(id);
            }
            return Fate::Kept;
        }
        self.folded += 1;
        // Past the service's limit its overflow series takes it, if that series exists or
        // fits in the total; past the total everything goes to the global one.
        let service_overflow_fits = self.series.contains_key(&oid) || {
            let fits = self.total < self.limits.max_series;
            if fits {
                self.add_service_overflow(oid, service);
            }
            fits
        };
        let into_global =
            !(of_service >= self.limits.max_series_per_service && service_overflow_fits);
        self.folded_global += usize::from(into_global);
        Fate::Folded { into_global }
    }

    /// Starts the overflow series `oid` of `service`, counting it towards the total.
    fn add_service_overflow(&mut self, oid: u64, service: u64) {
        self.total += 1;
        self.series.insert(
            oid,
            Live {
                expires: i64::MIN,
                service,
                fate: Fate::ServiceOverflow,
            },
        );
    }

    fn renew(&mut self, id: u64, expires: i64) {
        if let Some(l) = self.series.get_mut(&id) {
            if expires > l.expires {
                l.expires = expires;
                self.expiry.entry(expires).or_default().push(id);
            }
        }
    }
}

/// The series limit as a dataflow stage: exchanges partials by series, applies each event-time
/// batch in time order once the frontier has passed it (forgetting series whose windows can no
/// longer change first), and passes the partials on, those of series over a limit re-keyed to
/// their overflow series. The counts go to `progress` (worker `index`'s slot).
pub fn series_limit_operator<'scope>(
    partials: StreamVec<'scope, u64, Partial>,
    limits: SeriesLimits,
    smallest_window_seconds: u32,
    horizon_ms: i64,
    progress: Arc<Progress>,
    stash_held: std::rc::Rc<crate::ops::held::Held>,
    mut checkpoint: Option<OperatorCheckpoint>,
) -> StreamVec<'scope, u64, Partial> {
    let index = partials.scope().index();
    let peers = partials.scope().peers().max(1);
    let share = limits.share(peers);
    let pact = Exchange::new(|p: &Partial| p.key.route());
    let scope = partials.scope();
    partials.unary_frontier(pact, "SeriesLimit", move |_cap, info| {
        if let Some(c) = &checkpoint {
            c.wake_with(scope.activator_for(info.address.clone()));
        }
        let mut limiter =
            SeriesLimiter::new(share, horizon_ms).counting_points_of(smallest_window_seconds);
        if let Some(bytes) = checkpoint.as_ref().and_then(|c| c.restored()) {
            let fresh =
                SeriesLimiter::new(share, horizon_ms).counting_points_of(smallest_window_seconds);
            match fresh.restored(bytes) {
                Ok(l) => limiter = l,
                Err(e) => tracing::error!(error = %e, "series limits in the checkpoint unreadable; starting empty"),
            }
        }
        let mut stash: MergedStash<Partial> = MergedStash::default();
        let mut evaluated = u64::MAX;
        move |(input, frontier), output| {
            stash.take(input);
            let f = frontier.frontier();
            // A checkpoint due before batch `next`: the limiter with every batch before its
            // time applied.
            let mut deposit_before = |next: u64, limiter: &SeriesLimiter| {
                if let Some(c) = checkpoint.as_mut() {
                    c.deposit_due(next, |_| limiter.snapshot());
                }
            };
            while let Some(t) = stash.first_time() {
                if f.less_equal(&t) {
                    break;
                }
                deposit_before(t, &limiter);
                let Some((cap, mut batch)) = stash.pop_first() else {
                    break;
                };
                limiter.evict_until(t as i64);
                limiter.set_over_budget(progress.budget.over());
                // The room is what the last evaluation left; spent until the next one.
                if progress.budget.evaluations() != evaluated {
                    evaluated = progress.budget.evaluations();
                    limiter.set_room(progress.budget.room().map(|r| r / peers as i64));
                }
                // New series of one batch are decided in key order, not in the order the
                // exchange delivered them: the same input decides the same way.
                batch.sort_unstable_by(|a, b| a.key.cmp(&b.key));
                for p in batch.iter_mut() {
                    limiter.admit(p);
                }
                output.session(&cap).give_iterator(batch.into_iter());
                let c = limiter.counts();
                progress.set_series(index, c.live, c.folded, c.points_folded);
            }
            deposit_before(f.first().copied().unwrap_or(u64::MAX), &limiter);
            // Partials waiting for the frontier (behind a held watermark, every one read).
            stash_held.set(stash.len(), stash.bytes());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::aggregate::WindowKey;
    use apo_schemas::attributes::Attributes;

    fn partial(service: &str, metric: &str, start: i64, count: u64) -> Partial {
        let mut p = Partial::new(
            WindowKey {
                attributes: Default::default(),
                service: service.into(),
                metric: metric.into(),
                window_seconds: 10,
                window_start: start,
            },
            String::new(),
            0.01,
        );
        p.count = count;
        p
    }

    fn name(p: &Partial) -> (String, String) {
        (p.key.service.clone(), p.key.metric.clone())
    }

    #[test]
    fn series_past_the_service_limit_fold_into_its_overflow_series() {
        let limits = SeriesLimits {
            max_series: 100,
            max_series_per_service: 2,
            ..SeriesLimits::default()
        };
        let mut l = SeriesLimiter::new(limits, 0);
        let mut out = Vec::new();
        for m in ["a", "b", "c", "d", "a"] {
            let mut p = partial("svc", m, 0, 3);
            let folded = l.admit(&mut p);
            out.push((name(&p), folded));
        }
        let o = OVERFLOW.to_string();
        let s = "svc".to_string();
        assert_eq!(
            out,
            vec![
                ((s.clone(), "a".into()), false),
                ((s.clone(), "b".into()), false),
                ((s.clone(), o.clone()), true),
                ((s.clone(), o.clone()), true),
                ((s.clone(), "a".into()), false),
            ]
        );
        // a, b and svc's overflow series count; c and d are folded.
        assert_eq!(
            l.counts(),
            SeriesCounts {
                live: 3,
                folded: 2,
                points_folded: 6,
                budget_folds: 0
            }
        );
    }

    #[test]
    fn past_the_total_everything_new_goes_to_the_global_overflow_series() {
        let limits = SeriesLimits {
            max_series: 3,
            max_series_per_service: 10,
            ..SeriesLimits::default()
        };
        let mut l = SeriesLimiter::new(limits, 0);
        let mut names = Vec::new();
        for (s, m) in [("x", "1"), ("y", "1"), ("z", "1"), ("w", "1"), ("x", "2")] {
            let mut p = partial(s, m, 0, 1);
            l.admit(&mut p);
            names.push(name(&p));
        }
        let g = (OVERFLOW.to_string(), OVERFLOW.to_string());
        assert_eq!(names[3], g);
        assert_eq!(names[4], g);
        assert_eq!(l.counts().folded, 2);
        assert_eq!(
            l.counts().live,
            4,
            "three kept and the global overflow series"
        );
    }

    #[test]
    fn a_series_whose_windows_are_past_the_horizon_frees_its_place() {
        let limits = SeriesLimits {
            max_series: 1,
            max_series_per_service: 1,
            ..SeriesLimits::default()
        };
        // Windows of 10 s, horizon 5 s: a series with a window [0, 10 s) is live until 15 s.
        let mut l = SeriesLimiter::new(limits, 5_000);
        assert!(!l.admit(&mut partial("s", "a", 0, 1)));
        assert!(l.admit(&mut partial("s", "b", 0, 1)), "over the limit");
        l.evict_until(14_999);
        assert!(
            l.admit(&mut partial("s", "b", 0, 1)),
            "still decided folded"
        );
        // a renews itself with a later window: live until 25 s.
        assert!(!l.admit(&mut partial("s", "a", 10_000, 1)));
        l.evict_until(15_000);
        assert_eq!(l.counts().folded, 0, "b's windows are past the horizon");
        assert!(
            l.admit(&mut partial("s", "b", 20_000, 1)),
            "a still holds the place"
        );
        l.evict_until(35_000);
        assert_eq!(
            l.counts(),
            SeriesCounts {
                live: 0,
                folded: 0,
                points_folded: 3,
                budget_folds: 0
            }
        );
        assert!(
            !l.admit(&mut partial("s", "b", 40_000, 1)),
            "the place is free"
        );
    }

    #[test]
    fn over_the_memory_budget_new_series_fold_and_live_ones_keep_their_windows() {
        let mut l = SeriesLimiter::new(SeriesLimits::default(), 0);
        assert!(!l.admit(&mut partial("svc", "a", 0, 1)));
        l.set_over_budget(true);
        assert!(!l.admit(&mut partial("svc", "a", 10_000, 1)), "a is live");
        let mut b = partial("svc", "b", 10_000, 2);
        assert!(l.admit(&mut b), "b is new: folded");
        assert_eq!(
            name(&b),
            (OVERFLOW.to_string(), OVERFLOW.to_string()),
            "svc has no overflow series yet: the global one takes it"
        );
        l.set_over_budget(false);
        let mut c = partial("svc", "c", 10_000, 1);
        assert!(!l.admit(&mut c), "under the budget again: c is kept");
        assert!(
            l.admit(&mut partial("svc", "b", 20_000, 1)),
            "b stays folded while live"
        );
        assert_eq!(
            l.counts(),
            SeriesCounts {
                live: 3,
                folded: 1,
                points_folded: 3,
                budget_folds: 1
            }
        );
    }

    #[test]
    fn the_room_left_in_the_budget_is_spent_by_the_series_of_one_batch() {
        let mut l = SeriesLimiter::new(SeriesLimits::default(), 0);
        let cost = new_window_bytes(&partial("svc", "a", 0, 1)) as i64;
        // Room for two windows and a half: the third new series folds.
        l.set_room(Some(cost * 5 / 2));
        let folded: Vec<bool> = ["a", "b", "c", "d"]
            .iter()
            .map(|m| l.admit(&mut partial("svc", m, 0, 1)))
            .collect();
        assert_eq!(folded, [false, false, false, true]);
        // A kept series' further windows are not new series: never refused for room.
        l.set_room(Some(0));
        assert!(!l.admit(&mut partial("svc", "a", 10_000, 1)));
        assert!(l.admit(&mut partial("svc", "e", 10_000, 1)));
        assert_eq!(l.counts().budget_folds, 2);
        // No budget: no room to spend.
        l.set_room(None);
        assert!(!l.admit(&mut partial("svc", "f", 10_000, 1)));
    }

    #[test]
    fn folded_points_are_counted_once_whatever_the_window_sizes() {
        let limits = SeriesLimits {
            max_series: 1,
            max_series_per_service: 1,
            ..SeriesLimits::default()
        };
        let mut l = SeriesLimiter::new(limits, 0).counting_points_of(10);
        assert!(!l.admit(&mut partial("s", "a", 0, 4)));
        // b's 5 points, in a 10 s and a 60 s window.
        let mut sixty = partial("s", "b", 0, 5);
        sixty.key.window_seconds = 60;
        assert!(l.admit(&mut partial("s", "b", 0, 5)));
        assert!(l.admit(&mut sixty));
        assert_eq!(l.counts().points_folded, 5);
    }

    #[test]
    fn shares_round_up() {
        let s = SeriesLimits {
            max_series: 5,
            max_series_per_service: 1,
            ..SeriesLimits::default()
        }
        .share(2);
        assert_eq!((s.max_series, s.max_series_per_service), (3, 1));
    }

    fn routed(route: &str, start: i64) -> Partial {
        let mut p = partial("svc", "http.server.request.duration", start, 2);
        p.key
            .attributes
            .insert("http.route".to_string(), route.to_string());
        p
    }

    /// The SDKs' cardinality limit, per metric: the first `max_attribute_sets` attribute sets
    /// are series of their own; every later one goes to the metric's series marked
    /// `otel.metric.overflow = "true"`, and a set forgotten frees its place.
    #[test]
    fn attribute_sets_past_the_metric_limit_fold_into_its_marked_overflow_series() {
        let limits = SeriesLimits {
            max_attribute_sets: 3,
            ..SeriesLimits::default()
        };
        let mut l = SeriesLimiter::new(limits, 0);
        let mut seen = Vec::new();
        for r in ["/a", "/b", "/c", "/d", "/e", "/a"] {
            let mut p = routed(r, 0);
            let folded = l.admit(&mut p);
            seen.push((p.key.attributes.clone(), folded));
        }
        let route = |r: &str| Attributes::from([("http.route".to_string(), r.to_string())]);
        assert_eq!(
            seen,
            vec![
                (route("/a"), false),
                (route("/b"), false),
                (route("/c"), false),
                (overflow_attributes(), true),
                (overflow_attributes(), true),
                (route("/a"), false),
            ]
        );
        // Three sets and the overflow series are live; /d and /e are folded, 2 points each.
        assert_eq!(
            l.counts(),
            SeriesCounts {
                live: 4,
                folded: 2,
                points_folded: 4,
                budget_folds: 0,
            }
        );
        // Another metric of the service has its own three.
        let mut other = routed("/d", 0);
        other.key.metric = "rpc.server.duration".into();
        assert!(!l.admit(&mut other));
        // Once every set's windows are closed, a new set is a series again.
        l.evict_until(10_000);
        assert_eq!(l.counts().live, 0);
        let mut p = routed("/e", 10_000);
        assert!(!l.admit(&mut p));
        assert_eq!(p.key.attributes, route("/e"));
    }

    /// An attribute set's overflow series is a series of its service: past the service's
    /// limit, it goes to the service's overflow series (without attributes) in turn.
    #[test]
    fn a_metric_overflow_series_counts_towards_its_service_limit() {
        let limits = SeriesLimits {
            max_series: 100,
            max_series_per_service: 1,
            max_attribute_sets: 1,
        };
        let mut l = SeriesLimiter::new(limits, 0);
        let mut a = routed("/a", 0);
        assert!(!l.admit(&mut a));
        let mut b = routed("/b", 0);
        assert!(l.admit(&mut b));
        assert_eq!(b.key.metric, OVERFLOW);
        assert!(b.key.attributes.is_empty());
        // Folded twice, counted once.
        assert_eq!(l.counts().points_folded, 2);
    }
}
