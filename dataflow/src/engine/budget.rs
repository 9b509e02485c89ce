//! The process's memory budget (issue 14, part 2): a ceiling on the state the pipeline holds
//! (open and revisable windows, traces being assembled), shared by every lane and worker of a
//! process.
//!
//! The budget is for the whole process, as a container's memory limit is. What the process
//! needs with no state at all (code, models, client buffers) is measured once, as its resident
//! memory when the first lane starts, and the rest is the state's allowance. Every stateful
//! operator reports an estimate of the bytes it holds; the lanes publish their workers' sums
//! here and re-evaluate the budget about ten times a second.
//!
//! The estimate counts the state, not the allocator's slack nor output rows in flight, so the
//! resident memory itself is watched as well: the budget is *over* when the state passes 80 %
//! of its allowance or the resident memory 90 % of the ceiling (the rest is room for what is
//! only seen after the fact), until they have been back under 70 % and 80 % for 5 s.
//! An open metric window counts the memory its row will take on its way out as well: the
//! windows of a size all close at once. While the budget is over:
//!
//! - the lanes read more slowly (a tenth of a poll batch at a time, at most every 10 ms): the
//!   dataflow catches up on what is in flight before more comes in;
//! - the series limit folds every *new* metric series into its overflow series (series already
//!   live keep their windows): the held windows stop growing with cardinality;
//! - trace assembly emits its longest-waiting traces early (as `memory_bound`), a tenth of
//!   what it holds at each evaluation that finds the budget over.
//!
//! Under the budget nothing of this happens, and the outputs are what the input decides. Over
//! it, which series fold depends on when the budget was found over: the price of not growing.
//! A process whose resident memory stays above 80 % of the ceiling after its state shrank
//! (memory the allocator keeps) stays over: it keeps its live series, folds new ones and reads
//! slowly, and says so in its progress line; the budget is then too small for the load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Fraction of the state's allowance past which the budget is over, and under which it must
/// stay to be released: the rest is room for what the estimate only sees after the fact (a
/// burst of closing windows' rows, the allocator's slack).
const ACT: f64 = 0.8;
const RELEASE: f64 = 0.7;

/// The same fractions of the ceiling, for the resident memory.
const RSS_ACT: f64 = 0.9;
const RSS_RELEASE: f64 = 0.8;

/// How long the state and the resident memory must stay under [`RELEASE`] before the budget
/// stops being over (resident memory swings as windows close and their rows go out).
const RELEASE_AFTER: Duration = Duration::from_secs(5);

/// A process's memory ceiling and what its lanes hold against it.
#[derive(Debug, Default)]
pub struct MemoryBudget {
    /// The process's ceiling, bytes; `None`: unlimited.
    limit: Option<u64>,
    /// Resident memory measured before any state was held (0 until measured).
    baseline: AtomicU64,
    /// Each lane-worker's estimate of the bytes it holds.
    slots: Mutex<Vec<Arc<AtomicU64>>>,
    /// The sum at the last evaluation.
    used: AtomicU64,
    /// The resident memory at the last evaluation that knew it.
    resident: AtomicU64,
    over: AtomicBool,
    /// Evaluations that found the budget over (an operator sheds once per new one).
    over_count: AtomicU64,
    /// Times the budget went over.
    episodes: AtomicU64,
    /// Evaluations so far.
    evaluations: AtomicU64,
    /// Since when it has been over but under the release levels.
    under_since: Mutex<Option<Instant>>,
}

/// What the budget's use is, for the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetUse {
    /// Bytes of state held (estimated).
    pub used: u64,
    /// Bytes of state allowed (`None`: unlimited).
    pub allowed: Option<u64>,
    /// The process's ceiling.
    pub limit: Option<u64>,
    /// Over the allowance now.
    pub over: bool,
    /// Times it went over since the start.
    pub episodes: u64,
    /// The process's resident memory at the last evaluation (0: not known).
    pub resident: u64,
}

impl MemoryBudget {
    /// A ceiling of `limit` bytes for the process (`None`: no ceiling, only counting).
    pub fn new(limit: Option<u64>) -> Self {
        MemoryBudget {
            limit,
            ..Default::default()
        }
    }

    /// No ceiling.
    pub fn unlimited() -> Arc<Self> {
        Arc::new(MemoryBudget::default())
    }

    /// A slot for one lane of one worker to publish the bytes it holds. The first slot taken
    /// measures the baseline (the process's resident memory then).
    pub fn slot(&self) -> Arc<AtomicU64> {
        let slot = Arc::new(AtomicU64::new(0));
        if let Ok(mut s) = self.slots.lock() {
            if s.is_empty() && self.baseline.load(Ordering::Relaxed) == 0 {
                self.baseline
                    .store(resident_bytes().unwrap_or(0), Ordering::Relaxed);
            }
            s.push(slot.clone());
        }
        slot
    }

    /// Sets the baseline (what the process holds with no state) instead of measuring it.
    pub fn set_baseline(&self, bytes: u64) {
        self.baseline.store(bytes, Ordering::Relaxed);
    }

    /// The state's allowance: the ceiling less the baseline (at least a tenth of the ceiling).
    pub fn allowed(&self) -> Option<u64> {
        let limit = self.limit?;
        let base = self.baseline.load(Ordering::Relaxed);
        Some(limit.saturating_sub(base).max(limit / 10))
    }

    /// Sums the slots, reads the process's resident memory, and decides whether the budget is
    /// over; returns whether it is. Logs when it goes over and when it is back under.
    pub fn evaluate(&self) -> bool {
        self.evaluate_with(resident_bytes())
    }

    /// [`MemoryBudget::evaluate`] with the resident memory given (`None`: not known). Over when
    /// the state's estimate passes 80 % of its allowance or the resident memory 90 % of the
    /// ceiling (the estimate does not see the allocator's slack nor output in flight); back
    /// under once they have been below 70 % and 80 % for 5 s.
    pub fn evaluate_with(&self, rss: Option<u64>) -> bool {
        self.evaluate_at(rss, Instant::now())
    }

    /// [`MemoryBudget::evaluate_with`] at `now`.
    pub fn evaluate_at(&self, rss: Option<u64>, now: Instant) -> bool {
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        let used: u64 = self
            .slots
            .lock()
            .map(|s| s.iter().map(|a| a.load(Ordering::Relaxed)).sum())
            .unwrap_or(0);
        self.used.store(used, Ordering::Relaxed);
        if let Some(r) = rss {
            self.resident.store(r, Ordering::Relaxed);
        }
        let (Some(allowed), Some(limit)) = (self.allowed(), self.limit) else {
            return false;
        };
        let rss = rss.unwrap_or(0);
        let was = self.over.load(Ordering::Relaxed);
        let over = if was {
            let under = (used as f64) < allowed as f64 * RELEASE
                && (rss as f64) < limit as f64 * RSS_RELEASE;
            let Ok(mut since) = self.under_since.lock() else {
                return was;
            };
            match (under, *since) {
                (false, _) => {
                    *since = None;
                    true
                }
                (true, None) => {
                    *since = Some(now);
                    true
                }
                (true, Some(at)) => now.duration_since(at) < RELEASE_AFTER,
            }
        } else {
            used as f64 > allowed as f64 * ACT || rss as f64 > limit as f64 * RSS_ACT
        };
        if over != was && self.over.swap(over, Ordering::Relaxed) == was {
            if let Ok(mut since) = self.under_since.lock() {
                *since = None;
            }
            let mb = |b: u64| b as f64 / 1e6;
            if over {
                self.episodes.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    state_mb = mb(used),
                    allowed_mb = mb(allowed),
                    resident_mb = mb(rss),
                    budget_mb = mb(limit),
                    "memory budget reached: reading slowly, new metric series fold into their \
                     overflow series and trace assembly emits its oldest traces early until \
                     the state and the resident memory are under 70 % and 80 % of theirs \
                     (--memory-budget)"
                );
            } else {
                tracing::info!(
                    state_mb = mb(used),
                    allowed_mb = mb(allowed),
                    resident_mb = mb(rss),
                    "memory back under budget"
                );
            }
        }
        if over {
            self.over_count.fetch_add(1, Ordering::Relaxed);
        }
        over
    }

    /// Over the allowance at the last evaluation.
    pub fn over(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    /// How many evaluations found the budget over so far: an operator that sheds state does so
    /// once each time this moves.
    pub fn over_count(&self) -> u64 {
        self.over_count.load(Ordering::Relaxed)
    }

    /// What the state may still grow by before the budget is over, as of the last evaluation:
    /// the least of what the estimate leaves of its allowance and what the resident memory
    /// leaves of the ceiling (rows of closed windows on their way out are in the second only).
    /// `None`: no budget; negative when past.
    pub fn room(&self) -> Option<i64> {
        let by_state =
            (self.allowed()? as f64 * ACT) as i64 - self.used.load(Ordering::Relaxed) as i64;
        let rss = self.resident.load(Ordering::Relaxed);
        let by_rss = match (self.limit, rss) {
            (Some(limit), r) if r > 0 => (limit as f64 * RSS_ACT) as i64 - r as i64,
            _ => i64::MAX,
        };
        Some(by_state.min(by_rss))
    }

    /// Evaluations so far: what was used is as of the latest of them.
    pub fn evaluations(&self) -> u64 {
        self.evaluations.load(Ordering::Relaxed)
    }

    /// The budget's use at the last evaluation.
    pub fn usage(&self) -> BudgetUse {
        BudgetUse {
            used: self.used.load(Ordering::Relaxed),
            allowed: self.allowed(),
            limit: self.limit,
            over: self.over(),
            episodes: self.episodes.load(Ordering::Relaxed),
            resident: self.resident.load(Ordering::Relaxed),
        }
    }
}

/// This process's resident memory (Linux: `VmRSS` of `/proc/self/status`); `None` elsewhere.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::MemoryBudget;

    #[test]
    fn over_past_eighty_percent_of_the_allowance_and_back_after_five_seconds_under_seventy() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let b = MemoryBudget::new(Some(1_000));
        let (x, y) = (b.slot(), b.slot());
        b.set_baseline(200);
        assert_eq!(b.allowed(), Some(800));
        x.store(500, Ordering::Relaxed);
        y.store(140, Ordering::Relaxed);
        assert!(!b.evaluate_at(None, at(0)), "640 is 80 % of 800: not over");
        y.store(141, Ordering::Relaxed);
        assert!(b.evaluate_at(None, at(1)));
        assert_eq!(b.over_count(), 1);
        // 560 is 70 % of 800: still over until under it, and then for 5 s.
        y.store(60, Ordering::Relaxed);
        assert!(b.evaluate_at(None, at(2)));
        y.store(59, Ordering::Relaxed);
        assert!(b.evaluate_at(None, at(3)), "under since 3 s");
        y.store(70, Ordering::Relaxed);
        assert!(
            b.evaluate_at(None, at(4)),
            "above again: the 5 s start over"
        );
        y.store(59, Ordering::Relaxed);
        assert!(b.evaluate_at(None, at(5)));
        assert!(b.evaluate_at(None, at(9)), "under for 4 s");
        assert!(!b.evaluate_at(None, at(10)), "under for 5 s");
        let u = b.usage();
        assert_eq!(
            (u.used, u.allowed, u.over, u.episodes),
            (559, Some(800), false, 1)
        );
        assert_eq!(b.over_count(), 6, "six evaluations found it over");
    }

    #[test]
    fn resident_memory_over_the_ceiling_is_over_whatever_the_estimate_says() {
        let b = MemoryBudget::new(Some(1_000));
        b.slot().store(10, Ordering::Relaxed);
        b.set_baseline(100);
        let t0 = Instant::now();
        assert!(!b.evaluate_at(Some(900), t0));
        assert!(
            b.evaluate_at(Some(901), t0),
            "resident past 90 % of the ceiling"
        );
        assert!(b.evaluate_at(Some(800), t0), "not yet under 80 %");
        assert!(b.evaluate_at(Some(799), t0));
        assert!(!b.evaluate_at(Some(799), t0 + Duration::from_secs(5)));
        assert_eq!(b.usage().resident, 799);
        // The room is the least of what the state and the resident memory leave: 900 − 799.
        assert_eq!(b.room(), Some(101));
    }

    #[test]
    fn a_baseline_above_the_ceiling_leaves_a_tenth_and_no_limit_is_never_over() {
        let b = MemoryBudget::new(Some(1_000));
        b.set_baseline(5_000);
        assert_eq!(b.allowed(), Some(100));
        let u = MemoryBudget::new(None);
        u.slot().store(u64::MAX / 4, Ordering::Relaxed);
        assert!(!u.evaluate_with(None));
        assert_eq!(u.usage().used, u64::MAX / 4);
    }

    #[test]
    fn resident_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let rss = super::resident_bytes().expect("statm");
            assert!(rss > 1 << 20, "a test process holds more than 1 MiB: {rss}");
        }
    }
}
