//! The control board: what the executors asked of the fleet and what the fleet shows them.
//! The HTTP endpoints ([`super::http`]) write commands to it and read the workloads' state;
//! the simulation takes the commands at its next step ([`Board::take`]) and reports each
//! service's ready replicas back ([`Board::report_ready`]).
//!
//! A workload's `version` is its `resourceVersion`: it grows with every change, so a write
//! that names the version it read fails with a conflict when something changed in between.
//! Replicas are bounded (`0..=max`): more is refused and changes nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One service as the control API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// The replicas asked for (the scale's `spec.replicas`).
    pub replicas: u32,
    /// The replicas serving (the scale's `status.replicas`), as the simulation reported.
    pub ready: u32,
    /// The most it may be scaled to.
    pub max: u32,
    /// Tuned settings, by name (a pool's size, a cache's).
    pub settings: BTreeMap<String, f64>,
    /// Grows with every change (`resourceVersion`).
    pub version: u64,
}

/// A change for the simulation to make.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Scale `service` to `replicas`.
    Scale {
        /// The service.
        service: String,
        /// Its replicas.
        replicas: u32,
    },
    /// Set `setting` of `service` to `value`.
    Tune {
        /// The service.
        service: String,
        /// The setting.
        setting: String,
        /// Its value.
        value: f64,
    },
    /// Roll `service` back to its stable version (the webhook's `rollback` action).
    Rollback {
        /// The service.
        service: String,
    },
}

/// Why the board refused a change (nothing changed).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    /// No such service in the fleet.
    #[error("no service `{0}` in the simulated fleet")]
    Unknown(String),
    /// The version named is not the workload's.
    #[error("`{service}` changed: resourceVersion {actual}, not {expected}")]
    Conflict {
        /// The service.
        service: String,
        /// The version the writer read.
        expected: u64,
        /// The workload's.
        actual: u64,
    },
    /// More replicas than the service may have.
    #[error("`{service}` may have at most {max} replicas, not {asked}")]
    TooMany {
        /// The service.
        service: String,
        /// What was asked.
        asked: u32,
        /// Its most.
        max: u32,
    },
    /// A value that is not a finite number of at least 0.
    #[error("`{setting}` of `{service}`: {value} is not a size")]
    BadValue {
        /// The service.
        service: String,
        /// The setting.
        setting: String,
        /// The value.
        value: f64,
    },
}

#[derive(Debug, Default)]
struct Inner {
    workloads: BTreeMap<String, Workload>,
    pending: Vec<Command>,
}

impl Inner {
    /// `service`, to change, when its version is still `expect` (if given).
    fn writable(
        &mut self,
        service: &str,
        expect: Option<u64>,
    ) -> Result<&mut Workload, ControlError> {
        let w = self
            .workloads
            .get_mut(service)
            .ok_or_else(|| ControlError::Unknown(service.to_string()))?;
        match expect.filter(|v| *v != w.version) {
            Some(expected) => Err(ControlError::Conflict {
                service: service.to_string(),
                expected,
                actual: w.version,
            }),
            None => Ok(w),
        }
    }
}

/// The board, shared by the endpoints and the simulation.
#[derive(Debug, Default)]
pub struct Board {
    inner: Mutex<Inner>,
}

impl Board {
    /// A board of `services`: (name, replicas, most replicas).
    pub fn new<'a>(services: impl IntoIterator<Item = (&'a str, u32, u32)>) -> Arc<Board> {
        let workloads = services
            .into_iter()
            .map(|(name, replicas, max)| {
                let w = Workload {
                    replicas,
                    ready: replicas,
                    max,
                    settings: BTreeMap::new(),
                    version: 1,
                };
                (name.to_string(), w)
            })
            .collect();
        Arc::new(Board {
            inner: Mutex::new(Inner {
                workloads,
                pending: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // a panic while holding the lock leaves plain data: still usable
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `service` now.
    pub fn get(&self, service: &str) -> Result<Workload, ControlError> {
        self.lock()
            .workloads
            .get(service)
            .cloned()
            .ok_or_else(|| ControlError::Unknown(service.to_string()))
    }

    /// Asks for `replicas` of `service`, when its version is still `expect` (if given); the
    /// workload after.
    pub fn scale(
        &self,
        service: &str,
        replicas: u32,
        expect: Option<u64>,
    ) -> Result<Workload, ControlError> {
        let mut inner = self.lock();
        let w = inner.writable(service, expect)?;
        if replicas > w.max {
            return Err(ControlError::TooMany {
                service: service.to_string(),
                asked: replicas,
                max: w.max,
            });
        }
        if replicas != w.replicas {
            w.replicas = replicas;
            w.version += 1;
        }
        let after = w.clone();
        inner.pending.push(Command::Scale {
            service: service.to_string(),
            replicas,
        });
        Ok(after)
    }

    /// Sets `setting` of `service` to `value`, when its version is still `expect` (if given);
    /// the workload after.
    pub fn tune(
        &self,
        service: &str,
        setting: &str,
        value: f64,
        expect: Option<u64>,
    ) -> Result<Workload, ControlError> {
        let mut inner = self.lock();
        let w = inner.writable(service, expect)?;
        if !(value.is_finite() && value >= 0.0) {
            return Err(ControlError::BadValue {
                service: service.to_string(),
                setting: setting.to_string(),
                value,
            });
        }
        if w.settings.insert(setting.to_string(), value) != Some(value) {
            w.version += 1;
        }
        let after = w.clone();
        inner.pending.push(Command::Tune {
            service: service.to_string(),
            setting: setting.to_string(),
            value,
        });
        Ok(after)
    }

    /// Rolls `service` back to its stable version; the workload after (its version moves).
    pub fn rollback(&self, service: &str) -> Result<Workload, ControlError> {
        let mut inner = self.lock();
        let w = inner.writable(service, None)?;
        w.version += 1;
        let after = w.clone();
        inner.pending.push(Command::Rollback {
            service: service.to_string(),
        });
        Ok(after)
    }

    /// The commands given since the last call, in the order given.
    pub fn take(&self) -> Vec<Command> {
        std::mem::take(&mut self.lock().pending)
    }

    /// The simulation's report: `ready` replicas of `service` serve.
    pub fn report_ready(&self, service: &str, ready: u32) {
        if let Some(w) = self.lock().workloads.get_mut(service) {
            if w.ready != ready {
                w.ready = ready;
                w.version += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_bounded_versioned_and_queued() {
        let b = Board::new([("checkout", 2, 10)]);
        let w = b.get("checkout").unwrap();
        assert_eq!((w.replicas, w.ready, w.version), (2, 2, 1));
        // a write on the version read applies; on an older one it is a conflict
        assert_eq!(b.scale("checkout", 4, Some(1)).unwrap().version, 2);
        assert_eq!(
            b.scale("checkout", 5, Some(1)),
            Err(ControlError::Conflict {
                service: "checkout".into(),
                expected: 1,
                actual: 2
            })
        );
        // over the most: refused, nothing changed
        assert!(matches!(
            b.scale("checkout", 11, None),
            Err(ControlError::TooMany { max: 10, .. })
        ));
        assert_eq!(b.get("checkout").unwrap().replicas, 4);
        assert!(matches!(
            b.scale("cart", 1, None),
            Err(ControlError::Unknown(_))
        ));
        assert!(b.tune("checkout", "pool", -1.0, None).is_err());
        assert!(b.tune("checkout", "pool", f64::NAN, None).is_err());
        assert!(matches!(
            b.tune("checkout", "pool", 20.0, Some(1)),
            Err(ControlError::Conflict { .. })
        ));
        b.tune("checkout", "pool", 20.0, Some(2)).unwrap();
        assert_eq!(
            b.take(),
            vec![
                Command::Scale {
                    service: "checkout".into(),
                    replicas: 4
                },
                Command::Tune {
                    service: "checkout".into(),
                    setting: "pool".into(),
                    value: 20.0
                }
            ]
        );
        assert!(b.take().is_empty());
        // the simulation's report shows as the status, and is a change
        b.report_ready("checkout", 3);
        let w = b.get("checkout").unwrap();
        assert_eq!((w.replicas, w.ready, w.version), (4, 3, 4));
    }
}
