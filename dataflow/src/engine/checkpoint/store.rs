//! Where checkpoints live: one directory per job (`DATA_DIR/checkpoints/<job>/`), one directory
//! per complete checkpoint inside it (`epoch-000000000042/`): a `manifest.json` (the epoch, its
//! time, what configuration it was taken under, every lane's read positions and watermark
//! state, and every operator part's file, size and CRC-32) and one binary file per stateful
//! operator of each worker.
//!
//! A checkpoint is written into `epoch-N.tmp/`, each file flushed to disk, the manifest last,
//! then the directory renamed into place and its parent flushed: a checkpoint directory
//! without `.tmp` is complete. Loading takes the newest one whose manifest parses and whose
//! parts have the size and CRC-32 the manifest says; a corrupt or partial one is skipped with
//! a warning, never loaded. The newest [`KEEP`] are kept.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Complete checkpoints kept per job.
pub const KEEP: usize = 3;

/// The manifest's format; a manifest of another format is skipped.
const FORMAT: u32 = 1;

/// Why a checkpoint could not be written or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("checkpoint directory {path}: {source}")]
    /// A file or directory operation failed.
    Io {
        /// What was being read or written.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    #[error("checkpoints at {url}: {detail}")]
    /// The object store failed.
    Object {
        /// Where the checkpoints are.
        url: String,
        /// What failed.
        detail: String,
    },
    #[error("checkpoint {path}: {detail}")]
    /// A checkpoint is corrupt or partial.
    Corrupt {
        /// The checkpoint directory.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One lane's part of a checkpoint: where each of its partitions is read from next, its
/// watermark state, and the input time it resumes at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneState {
    /// The worker.
    pub worker: usize,
    /// (partition, next offset to read) of every partition read from since the start.
    pub positions: Vec<(i32, i64)>,
    /// (partition, highest event time seen) of every partition the watermark tracks.
    pub event_times: Vec<(i32, Option<i64>)>,
    /// The watermark.
    pub watermark: i64,
    /// The input time the lane resumes at (at or past the checkpoint's time).
    pub time: u64,
    /// When the lane was at these positions (wall clock, ms since the epoch; none in a
    /// checkpoint of an older version): every message after them was read, and its dead
    /// letters written, after it.
    #[serde(default)]
    pub at_ms: Option<i64>,
}

/// One operator part's entry in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartEntry {
    /// The worker whose operator it is.
    pub worker: usize,
    /// The operator's name on that worker (`Windows#0`).
    pub operator: String,
    /// Its file in the checkpoint directory.
    pub file: String,
    /// Its size, bytes.
    pub bytes: u64,
    /// Its CRC-32.
    pub crc32: u32,
}

/// What a checkpoint holds, as its manifest says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest's format.
    pub format: u32,
    /// The job (`metrics`).
    pub job: String,
    /// The checkpoint's number, increasing.
    pub epoch: u64,
    /// Its time: the state is every input before it (ms of event time, the timely time).
    pub time: u64,
    /// When it was taken (wall clock, ms since the epoch).
    pub taken_at_ms: i64,
    /// The configuration the state depends on, as text: a checkpoint taken under another is
    /// refused.
    pub fingerprint: String,
    /// Workers of the run that took it.
    pub workers: usize,
    /// Every lane's state.
    pub lanes: Vec<LaneState>,
    /// Every operator part.
    pub parts: Vec<PartEntry>,
}

/// A loaded checkpoint: its manifest and every operator part's bytes.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Its manifest.
    pub manifest: Manifest,
    /// (worker, operator) → bytes.
    pub parts: std::collections::BTreeMap<(usize, String), Vec<u8>>,
    /// Where it was read from.
    pub path: PathBuf,
}

/// A job's checkpoints: a directory, or a prefix in an object store.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    object: Option<std::sync::Arc<crate::engine::checkpoint::object::ObjectBackend>>,
}

fn epoch_dir_name(epoch: u64) -> String {
    format!("epoch-{epoch:012}")
}

fn file_name(worker: usize, operator: &str) -> String {
    let safe: String = operator
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("w{worker}-{safe}.bin")
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

impl Store {
    /// The store of checkpoints under `dir` (created when the first is written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store {
            dir: dir.into(),
            object: None,
        }
    }

    /// The store of `job`'s checkpoints under the object store `url` (`s3://bucket/prefix`,
    /// `file:///path`), credentials and settings from the environment (`AWS_*`).
    pub fn at_url(url: &str, job: &str) -> Result<Self, StoreError> {
        let backend = crate::engine::checkpoint::object::ObjectBackend::open(url, job)?;
        Ok(Store {
            dir: PathBuf::from(backend.url()),
            object: Some(std::sync::Arc::new(backend)),
        })
    }

    /// Its directory (for an object store, its URL).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The epochs of the object store's checkpoints, newest first, each with whether it is
    /// complete.
    fn object_epochs(
        o: &crate::engine::checkpoint::object::ObjectBackend,
    ) -> Result<Vec<(u64, String, bool)>, StoreError> {
        let mut out: Vec<(u64, String, bool)> = o
            .epochs()?
            .into_iter()
            .filter_map(|(name, complete)| {
                let n = name.strip_prefix("epoch-")?.parse::<u64>().ok()?;
                Some((n, name, complete))
            })
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.0));
        Ok(out)
    }

    /// The epochs of the complete checkpoint directories, newest first.
    fn epochs(&self) -> Result<Vec<(u64, PathBuf)>, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        let mut out: Vec<(u64, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let n = name.strip_prefix("epoch-")?.parse::<u64>().ok()?;
                Some((n, e.path()))
            })
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.0));
        Ok(out)
    }

    /// The highest epoch number of any checkpoint here, complete or not (new ones go above).
    pub fn last_epoch(&self) -> Result<Option<u64>, StoreError> {
        if let Some(o) = &self.object {
            return Ok(Self::object_epochs(o)?.first().map(|e| e.0));
        }
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        Ok(entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let digits = name.strip_prefix("epoch-")?;
                digits.trim_end_matches(".tmp").parse::<u64>().ok()
            })
            .max())
    }

    /// Writes a checkpoint: `parts` are (worker, operator, bytes); the manifest's `parts` are
    /// filled in here. Returns its directory and total size in bytes. Older checkpoints past
    /// the newest [`KEEP`] are removed.
    pub fn write(
        &self,
        mut manifest: Manifest,
        parts: &[(usize, String, Vec<u8>)],
    ) -> Result<(PathBuf, u64), StoreError> {
        manifest.format = FORMAT;
        if let Some(o) = &self.object {
            return self.write_object(o, manifest, parts);
        }
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let name = epoch_dir_name(manifest.epoch);
        let tmp = self.dir.join(format!("{name}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir(&tmp).map_err(io(&tmp))?;
        let mut total = 0u64;
        manifest.parts.clear();
        for (worker, operator, bytes) in parts {
            let file = file_name(*worker, operator);
            let path = tmp.join(&file);
            let mut f = File::create(&path).map_err(io(&path))?;
            f.write_all(bytes).map_err(io(&path))?;
            f.sync_all().map_err(io(&path))?;
            total += bytes.len() as u64;
            manifest.parts.push(PartEntry {
                worker: *worker,
                operator: operator.clone(),
                file,
                bytes: bytes.len() as u64,
                crc32: crc32fast::hash(bytes),
            });
        }
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError::Corrupt {
            path: tmp.display().to_string(),
            detail: format!("manifest not serialisable: {e}"),
        })?;
        let path = tmp.join("manifest.json");
        let mut f = File::create(&path).map_err(io(&path))?;
        f.write_all(&text).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
        total += text.len() as u64;
        sync_dir(&tmp)?;
        let done = self.dir.join(&name);
        std::fs::rename(&tmp, &done).map_err(io(&done))?;
        sync_dir(&self.dir)?;
        self.prune()?;
        Ok((done, total))
    }

    /// [`Store::write`] into an object store: every part, then the manifest.
    fn write_object(
        &self,
        o: &crate::engine::checkpoint::object::ObjectBackend,
        mut manifest: Manifest,
        parts: &[(usize, String, Vec<u8>)],
    ) -> Result<(PathBuf, u64), StoreError> {
        let name = epoch_dir_name(manifest.epoch);
        let mut total = 0u64;
        manifest.parts.clear();
        let mut files: Vec<(String, &[u8])> = Vec::new();
        for (worker, operator, bytes) in parts {
            let file = file_name(*worker, operator);
            total += bytes.len() as u64;
            manifest.parts.push(PartEntry {
                worker: *worker,
                operator: operator.clone(),
                file: file.clone(),
                bytes: bytes.len() as u64,
                crc32: crc32fast::hash(bytes),
            });
            files.push((file, bytes));
        }
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError::Corrupt {
            path: format!("{}/{name}", o.url()),
            detail: format!("manifest not serialisable: {e}"),
        })?;
        total += text.len() as u64;
        let mut all: Vec<(&str, &[u8])> = files.iter().map(|(f, b)| (f.as_str(), *b)).collect();
        all.push(("manifest.json", &text));
        o.put_all(&name, &all)?;
        // Complete past the newest KEEP, and partial ones older than this one, go.
        let epochs = Self::object_epochs(o)?;
        let mut complete = 0;
        for (n, dir, whole) in epochs {
            if whole {
                complete += 1;
            }
            if (whole && complete > KEEP) || (!whole && n < manifest.epoch) {
                o.remove(&dir)?;
            }
        }
        Ok((PathBuf::from(format!("{}/{name}", o.url())), total))
    }

    /// Removes complete checkpoints past the newest [`KEEP`], and unfinished ones older than
    /// the newest complete one.
    fn prune(&self) -> Result<(), StoreError> {
        let epochs = self.epochs()?;
        let complete: Vec<&(u64, PathBuf)> = epochs
            .iter()
            .filter(|(_, p)| p.extension().is_none())
            .collect();
        let newest = complete.first().map(|(n, _)| *n);
        for (i, (_, p)) in complete.iter().enumerate() {
            if i >= KEEP {
                std::fs::remove_dir_all(p).map_err(io(p))?;
            }
        }
        for (n, p) in &epochs {
            if p.extension().is_some() && newest.is_some_and(|m| *n < m) {
                std::fs::remove_dir_all(p).map_err(io(p))?;
            }
        }
        Ok(())
    }

    /// Reads and checks the checkpoint in `dir`.
    fn read(dir: &Path) -> Result<Loaded, StoreError> {
        Self::read_with(dir, |file| {
            let path = dir.join(file);
            std::fs::read(&path).map_err(io(&path))
        })
    }

    /// Reads and checks the checkpoint at `dir` (a directory or an object store's URL), its
    /// files read by `read`.
    fn read_with(
        dir: &Path,
        mut read: impl FnMut(&str) -> Result<Vec<u8>, StoreError>,
    ) -> Result<Loaded, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            path: dir.display().to_string(),
            detail,
        };
        let text = read("manifest.json")?;
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|e| corrupt(format!("manifest unreadable: {e}")))?;
        if manifest.format != FORMAT {
            return Err(corrupt(format!(
                "manifest format {} (this build reads {FORMAT})",
                manifest.format
            )));
        }
        let mut parts = std::collections::BTreeMap::new();
        for p in &manifest.parts {
            let bytes = read(&p.file)?;
            if bytes.len() as u64 != p.bytes || crc32fast::hash(&bytes) != p.crc32 {
                return Err(corrupt(format!(
                    "{} has {} bytes and CRC-32 {:08x}; the manifest says {} and {:08x}",
                    p.file,
                    bytes.len(),
                    crc32fast::hash(&bytes),
                    p.bytes,
                    p.crc32
                )));
            }
            parts.insert((p.worker, p.operator.clone()), bytes);
        }
        Ok(Loaded {
            manifest,
            parts,
            path: dir.to_path_buf(),
        })
    }

    /// The newest complete checkpoint that reads back whole, skipping (with a warning) any
    /// newer one that does not.
    pub fn load_newest(&self) -> Result<Option<Loaded>, StoreError> {
        if let Some(o) = &self.object {
            for (_, name, complete) in Self::object_epochs(o)? {
                if !complete {
                    continue;
                }
                let at = PathBuf::from(format!("{}/{name}", o.url()));
                match Self::read_with(&at, |file| o.get(&name, file)) {
                    Ok(c) => return Ok(Some(c)),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "skipping a checkpoint that does not read back whole; trying the one before"
                    ),
                }
            }
            return Ok(None);
        }
        for (_, dir) in self.epochs()? {
            if dir.extension().is_some() {
                continue;
            }
            match Self::read(&dir) {
                Ok(c) => return Ok(Some(c)),
                Err(e) => tracing::warn!(
                    error = %e,
                    "skipping a checkpoint that does not read back whole; trying the one before"
                ),
            }
        }
        Ok(None)
    }

    /// Removes every checkpoint of the job (`--from-scratch`).
    pub fn clear(&self) -> Result<(), StoreError> {
        if let Some(o) = &self.object {
            for (_, name, _) in Self::object_epochs(o)? {
                o.remove(&name)?;
            }
            return Ok(());
        }
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&self.dir)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(epoch: u64) -> Manifest {
        Manifest {
            format: 0,
            job: "metrics".into(),
            epoch,
            time: epoch * 1000,
            taken_at_ms: 0,
            fingerprint: "windows=10s".into(),
            workers: 1,
            lanes: vec![LaneState {
                worker: 0,
                positions: vec![(0, 10 * epoch as i64)],
                event_times: vec![(0, Some(5))],
                watermark: 0,
                time: epoch * 1000,
                at_ms: None,
            }],
            parts: Vec::new(),
        }
    }

    fn part(epoch: u64) -> Vec<(usize, String, Vec<u8>)> {
        vec![(0, "Windows#0".into(), vec![epoch as u8; 100])]
    }

    #[test]
    fn writes_reads_back_and_keeps_the_newest_three() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("metrics"));
        assert!(store.load_newest().unwrap().is_none());
        for e in 1..=5 {
            store.write(manifest(e), &part(e)).unwrap();
        }
        let c = store.load_newest().unwrap().unwrap();
        assert_eq!(c.manifest.epoch, 5);
        assert_eq!(c.manifest.lanes[0].positions, vec![(0, 50)]);
        assert_eq!(c.parts[&(0, "Windows#0".to_string())], vec![5u8; 100]);
        let kept: Vec<u64> = store.epochs().unwrap().iter().map(|(n, _)| *n).collect();
        assert_eq!(kept, vec![5, 4, 3]);
        assert_eq!(store.last_epoch().unwrap(), Some(5));
    }

    #[test]
    fn a_corrupt_or_partial_newest_checkpoint_is_skipped_for_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.write(manifest(1), &part(1)).unwrap();
        let (newest, _) = store.write(manifest(2), &part(2)).unwrap();
        // A flipped byte in a part.
        let file = newest.join("w0-Windows_0.bin");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[7] ^= 1;
        std::fs::write(&file, bytes).unwrap();
        assert_eq!(store.load_newest().unwrap().unwrap().manifest.epoch, 1);
        // A checkpoint that was being written when the process died.
        std::fs::create_dir(dir.path().join("epoch-000000000003.tmp")).unwrap();
        assert_eq!(store.load_newest().unwrap().unwrap().manifest.epoch, 1);
        assert_eq!(store.last_epoch().unwrap(), Some(3));
        // A manifest cut short.
        let m = dir.path().join("epoch-000000000001/manifest.json");
        let text = std::fs::read(&m).unwrap();
        std::fs::write(&m, &text[..text.len() / 2]).unwrap();
        assert!(store.load_newest().unwrap().is_none());
    }

    /// The same store through an object store (`file://` here; `s3://` in the integration
    /// test against an S3 server): newest three kept, a corrupt or partial newest one skipped,
    /// `clear` removes all.
    #[test]
    fn an_object_store_keeps_the_newest_three_and_skips_a_corrupt_or_partial_one() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = Store::at_url(&url, "metrics").unwrap();
        assert!(store.load_newest().unwrap().is_none());
        for e in 1..=5 {
            store.write(manifest(e), &part(e)).unwrap();
        }
        let root = dir.path().join("metrics");
        // (a file:// store leaves the directories of removed ones empty)
        let mut on_disk: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| std::fs::read_dir(p).unwrap().next().is_some())
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        on_disk.sort();
        assert_eq!(
            on_disk,
            [
                "epoch-000000000003",
                "epoch-000000000004",
                "epoch-000000000005"
            ]
        );
        let c = store.load_newest().unwrap().unwrap();
        assert_eq!(c.manifest.epoch, 5);
        assert_eq!(c.parts[&(0, "Windows#0".to_string())], vec![5u8; 100]);
        assert!(c
            .path
            .display()
            .to_string()
            .ends_with("/metrics/epoch-000000000005"));
        // A flipped byte in the newest's part: the one before is loaded.
        let file = root.join("epoch-000000000005/w0-Windows_0.bin");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[7] ^= 1;
        std::fs::write(&file, bytes).unwrap();
        assert_eq!(store.load_newest().unwrap().unwrap().manifest.epoch, 4);
        // Parts without a manifest (the process died before putting it): partial, skipped,
        // but its number is taken.
        std::fs::create_dir(root.join("epoch-000000000006")).unwrap();
        std::fs::write(root.join("epoch-000000000006/w0-Windows_0.bin"), [6u8; 100]).unwrap();
        assert_eq!(store.load_newest().unwrap().unwrap().manifest.epoch, 4);
        assert_eq!(store.last_epoch().unwrap(), Some(6));
        store.clear().unwrap();
        assert!(store.load_newest().unwrap().is_none());
        assert_eq!(store.last_epoch().unwrap(), None);
        assert!(Store::at_url("gs:/nope", "metrics").is_err());
    }
}
