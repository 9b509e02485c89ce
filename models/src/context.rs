//! A contextual anomaly detector: how surprising a series' latest value is given the values
//! before it, learned online per series, no model file. After CAD OSE (Smirnov and Mikhail's
//! Contextual Anomaly Detector, open-source edition, one of NAB's best detectors); the
//! isolation forest judges each window's features on their own, this judges sequences.
//!
//! Each value is quantised into one of 2^`bits` bins of the series' range; the bin's bits are
//! the window's *facts*. A *context* pairs a left set of facts (the previous window's facts
//! plus the contexts that were active then, as "neuron" facts) with a right set (the
//! window's facts). Every window: the contexts whose left and right sets both hold completely
//! become active (their counters grow; the most used `max_active` feed the next left set);
//! new contexts are learnt from the one just seen and from partial matches of known ones
//! (at most `max_left` facts a side). The raw score is
//! `(1 − active / selected + added / candidates) / 2`: high when few of the contexts the
//! past predicts hold and much of what is seen is new. After a raw score of at least
//! `base_threshold`, the detector stays silent (reports 0) for `rest_windows` windows.
//!
//! Differences from CAD OSE, all forced by streaming: the range is not the whole file's
//! minimum and maximum (unknown in a stream) but the first `learn_windows` values' range
//! widened by `range_margin` of it on each side, and widened again to take in any later value
//! outside it (`expand_range`; otherwise such values fall in the edge bins). On NAB this
//! scores 73.7 through the alert stage, where clipping to a learnt range scores 46–56 and CAD
//! OSE's own whole-file range 71 (BENCHMARKS.md). The learning length and margin were chosen on
//! that corpus; split in two (artificial and real files), each half picks the same pair, which
//! scores 72.3 and 67.5 on the other half (raw scores). Ties
//! between equally used contexts go to the older one (CAD OSE breaks them by Python's tuple
//! hashes). The memory grows with the contexts seen; past `max_contexts` the detector
//! relearns from the values it is given next (a series that never repeats itself would
//! otherwise grow without bound).
//!
//! In the stream it follows each series' p95 (a RED row's duration p95), on the anomaly
//! thread beside the forest: on NAB's files about 22 µs a window, the cost growing with the
//! contexts a series holds.
//!
//! `models/train/context_reference.py` is the same algorithm in Python; the golden vectors it
//! wrote (`models/artifacts/golden/context.json`) are checked here to 1e-12.

use std::collections::VecDeque;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use serde::{Deserialize, Serialize};

/// A fact: a sensor bit (`2·i + bit`) or an active context (`NEURON + id`).
type Fact = u64;
/// Offset of the facts that stand for active contexts.
const NEURON: Fact = 1 << 31;

/// Settings of the contextual detector; defaults are CAD OSE's where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContextConfig {
    /// Bits a value is quantised to (3: eight bins).
    pub bits: u32,
    /// Most facts on either side of a learnt (non-zero-level) context (7).
    pub max_left: usize,
    /// Most active contexts carried into the next left set (15).
    pub max_active: usize,
    /// Raw score at or above which the detector goes quiet for `rest_windows` (0.75).
    pub base_threshold: f64,
    /// Windows of quiet after a high raw score (150; CAD OSE uses a fifth of NAB's
    /// probationary period, 150 rows for a long file).
    pub rest_windows: usize,
    /// Windows whose values fix the range before anything is scored (750: NAB's longest
    /// probationary period, the time it gives a detector to learn a series).
    pub learn_windows: usize,
    /// Fraction of the learnt range added below and above it (1.0).
    pub range_margin: f64,
    /// Contexts a series may hold before its detector relearns (50 000).
    pub max_contexts: usize,
    /// Widen the range to take in every value seen since (true), instead of putting values
    /// outside it in the edge bins.
    pub expand_range: bool,
}

impl Default for ContextConfig {
    fn default() -> Self {
        Self {
            bits: 3,
            max_left: 7,
            max_active: 15,
            base_threshold: 0.75,
            rest_windows: 150,
            learn_windows: 750,
            range_margin: 1.0,
            max_contexts: 50_000,
            expand_range: true,
        }
    }
}

impl ContextConfig {
    /// Checks the values make sense; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=16).contains(&self.bits) {
            return Err(format!("bits {} must be in 1..=16", self.bits));
        }
        if self.max_left == 0 || self.max_active == 0 {
            return Err("max_left and max_active must be at least 1".into());
        }
        if !(self.base_threshold > 0.0 && self.base_threshold <= 1.0) {
            return Err(format!(
                "base_threshold {} must be in (0, 1]",
                self.base_threshold
            ));
        }
        if self.learn_windows < 2 {
            return Err(format!(
                "learn_windows {} must be at least 2",
                self.learn_windows
            ));
        }
        if !(self.range_margin >= 0.0 && self.range_margin.is_finite()) {
            return Err(format!(
                "range_margin {} must be 0 or more",
                self.range_margin
            ));
        }
        if self.max_contexts == 0 {
            return Err("max_contexts must be at least 1".into());
        }
        Ok(())
    }
}

/// A set of facts on one side of contexts: how many facts it has, those of the current set it
/// holds (sorted), and what the side keeps besides (`Links` on the left, nothing on the right).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Side<E> {
    len: usize,
    crossed: Vec<Fact>,
    links: E,
}

/// What a left side keeps: the contexts it is part of, by right side.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Links {
    /// (right side, context) in the order learnt.
    contexts: Vec<(usize, usize)>,
    by_right: HashMap<usize, usize>,
}

/// The fact sets seen on one side of contexts, by id and by fact, and which of them hold
/// facts of the current set.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sides<E> {
    ids: HashMap<Vec<Fact>, usize>,
    index: HashMap<Fact, Vec<usize>>,
    all: Vec<Side<E>>,
    /// Ids of the sides holding any fact of the current set, in id order.
    crossed: Vec<usize>,
}

impl<E> Default for Sides<E> {
    fn default() -> Self {
        Sides {
            ids: HashMap::default(),
            index: HashMap::default(),
            all: Vec::new(),
            crossed: Vec::new(),
        }
    }
}

impl<E: Default> Sides<E> {
    /// The id of the side with these facts, learnt if new.
    fn id(&mut self, facts: &[Fact]) -> usize {
        if let Some(id) = self.ids.get(facts) {
            return *id;
        }
        let id = self.all.len();
        self.ids.insert(facts.to_vec(), id);
        self.all.push(Side {
            len: facts.len(),
            crossed: Vec::new(),
            links: E::default(),
        });
        for f in facts {
            self.index.entry(*f).or_default().push(id);
        }
        id
    }

    /// Clears the last crossing, then marks in each side the facts of `facts` it holds.
    fn cross(&mut self, facts: &[Fact]) {
        for i in self.crossed.drain(..) {
            self.all[i].crossed.clear();
        }
        for f in facts {
            for i in self.index.get(f).into_iter().flatten() {
                let crossed = &mut self.all[*i].crossed;
                if crossed.is_empty() {
                    self.crossed.push(*i);
                }
                crossed.push(*f);
            }
        }
        self.crossed.sort_unstable();
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Context {
    used: u64,
    /// Learnt from a whole transition (not from a partial match).
    zero_level: bool,
}

/// A candidate context: a left and a right side (ids) whose crossed facts it would pair.
type Candidate = (usize, usize);

/// The contexts learnt so far, indexed by the facts of their sides.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct ContextMemory {
    max_left: usize,
    lefts: Sides<Links>,
    rights: Sides<()>,
    contexts: Vec<Context>,
    /// The zero-level context learnt this window, not judged in it.
    new_context: Option<usize>,
    /// Reused buffers for a candidate's facts while it is learnt (not state: not saved).
    #[serde(skip)]
    scratch: (Vec<Fact>, Vec<Fact>),
}

impl ContextMemory {
    /// The context (left, right), learnt if new: (its id, whether it is new).
    fn context(&mut self, left: &[Fact], right: &[Fact], zero_level: bool) -> (usize, bool) {
        let l = self.lefts.id(left);
        let r = self.rights.id(right);
        let side = &mut self.lefts.all[l].links;
        if let Some(c) = side.by_right.get(&r) {
            return (*c, false);
        }
        let c = self.contexts.len();
        self.contexts.push(Context {
            used: 0,
            zero_level,
        });
        side.by_right.insert(r, c);
        side.contexts.push((r, c));
        (c, true)
    }

    /// Learns the whole transition (left, right): whether it was new.
    fn learn_transition(&mut self, left: &[Fact], right: &[Fact]) -> bool {
        let (c, new) = self.context(left, right, true);
        if new {
            self.new_context = Some(c);
        } else {
            self.contexts[c].zero_level = true;
        }
        new
    }

    /// A candidate's facts: the crossed facts of its left and right sides.
    fn facts(&self, (l, r): Candidate) -> (&[Fact], &[Fact]) {
        (&self.lefts.all[l].crossed, &self.rights.all[r].crossed)
    }

    /// Learns the candidates (sides crossed as when they were judged; learning adds sides
    /// but changes no crossing): how many were new.
    fn learn_candidates(&mut self, candidates: &[Candidate]) -> usize {
        let (mut left, mut right) = std::mem::take(&mut self.scratch);
        let mut new = 0;
        for &c in candidates {
            let (l, r) = self.facts(c);
            left.clear();
            left.extend_from_slice(l);
            right.clear();
            right.extend_from_slice(r);
            new += usize::from(self.context(&left, &right, false).1);
        }
        self.scratch = (left, right);
        new
    }

    /// After crossing the right sides with the window's facts: the active contexts (id, uses), the number
    /// of contexts whose left side held, and the candidates for learning.
    fn judge(&mut self) -> (Vec<(usize, u64)>, usize, Vec<Candidate>) {
        let mut active = Vec::new();
        let mut selected = 0;
        let mut candidates = Vec::new();
        for &li in &self.lefts.crossed {
            let lv = &self.lefts.all[li];
            let left_whole = lv.len == lv.crossed.len();
            for &(ri, ci) in &lv.links.contexts {
                if self.new_context == Some(ci) {
                    continue;
                }
                let rv = &self.rights.all[ri];
                let held = rv.crossed.len();
                let zero_level = self.contexts[ci].zero_level;
                if left_whole {
                    selected += 1;
                    if held > 0 {
                        if rv.len == held {
                            let c = &mut self.contexts[ci];
                            c.used += 1;
                            active.push((ci, c.used));
                        } else if zero_level && held < self.max_left {
                            candidates.push((li, ri));
                        }
                    }
                } else if zero_level && lv.crossed.len() < self.max_left && held > 0 {
                    candidates.push((li, ri));
                }
            }
        }
        self.new_context = None;
        (active, selected, candidates)
    }
}

/// The sequence learner on quantised values (CAD OSE's detector core), range fixed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Learner {
    lo: f64,
    hi: f64,
    expand: bool,
    step: f64,
    max_bin: u64,
    bits: u32,
    max_active: usize,
    memory: ContextMemory,
    left: Vec<Fact>,
}

impl Learner {
    fn new(config: &ContextConfig, lo: f64, hi: f64) -> Self {
        let max_bin = (1u64 << config.bits) - 1;
        let range = if hi > lo { hi - lo } else { max_bin as f64 };
        Learner {
            lo,
            hi,
            expand: config.expand_range,
            step: range / max_bin as f64,
            max_bin,
            bits: config.bits,
            max_active: config.max_active,
            memory: ContextMemory {
                max_left: config.max_left,
                ..ContextMemory::default()
            },
            left: Vec::new(),
        }
    }

    fn bin(&mut self, value: f64) -> u64 {
        if self.expand && value.is_finite() && (value < self.lo || value > self.hi) {
            self.lo = self.lo.min(value);
            self.hi = self.hi.max(value);
            self.step = (self.hi - self.lo) / self.max_bin as f64;
        }
        let b = ((value - self.lo) / self.step).floor();
        if b.is_nan() || b < 0.0 {
            0
        } else {
            (b as u64).min(self.max_bin)
        }
    }

    /// Takes the next value: its raw score in [0, 1].
    fn raw_score(&mut self, value: f64) -> f64 {
        let b = self.bin(value);
        let current: Vec<Fact> = (0..u64::from(self.bits))
            .map(|i| 2 * i + ((b >> i) & 1))
            .collect();
        let m = &mut self.memory;
        let learnt_new = !self.left.is_empty() && m.learn_transition(&self.left, &current);
        m.rights.cross(&current);
        let (mut active, selected, candidates) = m.judge();
        let unique = {
            let mut unique: HashSet<(&[Fact], &[Fact])> =
                candidates.iter().map(|&c| m.facts(c)).collect();
            if !self.left.is_empty() {
                unique.insert((&self.left, &current));
            }
            unique.len()
        };
        let share_active = if selected > 0 {
            active.len() as f64 / selected as f64
        } else {
            0.0
        };
        active.sort_unstable_by_key(|&(id, used)| (used, std::cmp::Reverse(id)));
        let mut left: Vec<Fact> = current.clone();
        left.extend(
            active
                .iter()
                .rev()
                .take(self.max_active)
                .map(|&(id, _)| NEURON + id as Fact),
        );
        left.sort_unstable();
        left.dedup();
        let mut added = m.learn_candidates(&candidates);
        m.lefts.cross(&left);
        self.left = left;
        if learnt_new {
            added += 1;
        }
        let share_added = if learnt_new && unique > 0 {
            added as f64 / unique as f64
        } else {
            0.0
        };
        (1.0 - share_active + share_added) / 2.0
    }
}

/// One series' contextual detector: learns the range, then scores every value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContextDetector {
    /// Values seen while learning the range.
    learning: Vec<f64>,
    learner: Option<Learner>,
    /// The last `rest_windows` raw scores (starts as one 1.0: quiet at first, as CAD OSE).
    recent: VecDeque<f64>,
}

impl ContextDetector {
    /// Number of contexts learnt so far.
    pub fn contexts(&self) -> usize {
        self.learner.as_ref().map_or(0, |l| l.memory.contexts.len())
    }

    /// Takes the next value (windows in order): its score in [0, 1], or `None` while the
    /// range is being learnt.
    pub fn step(&mut self, config: &ContextConfig, value: f64) -> Option<f64> {
        if self.learner.is_none() {
            if value.is_finite() {
                self.learning.push(value);
            }
            if self.learning.len() < config.learn_windows {
                return None;
            }
            let values = std::mem::take(&mut self.learning);
            self.start(config, values);
            return None;
        }
        if self.contexts() > config.max_contexts {
            tracing::debug!(
                contexts = self.contexts(),
                "contextual detector relearns a series"
            );
            *self = ContextDetector::default();
            return self.step(config, value);
        }
        let learner = self.learner.as_mut()?;
        let raw = learner.raw_score(value);
        let quiet = self.recent.iter().any(|r| *r >= config.base_threshold);
        self.remember(config, raw);
        Some(if quiet { 0.0 } else { raw })
    }

    /// Keeps `raw` among the last `rest_windows` raw scores.
    fn remember(&mut self, config: &ContextConfig, raw: f64) {
        if self.recent.len() >= config.rest_windows.max(1) {
            self.recent.pop_front();
        }
        self.recent.push_back(raw);
    }

    /// Fixes the range from the learnt values and replays them silently.
    fn start(&mut self, config: &ContextConfig, values: Vec<f64>) {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let margin = (hi - lo) * config.range_margin;
        let mut learner = Learner::new(config, lo - margin, hi + margin);
        self.recent.clear();
        self.recent.push_back(1.0);
        for v in values {
            let raw = learner.raw_score(v);
            self.remember(config, raw);
        }
        self.learner = Some(learner);
    }
}
