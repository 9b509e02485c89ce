//! Claims in a file under `--state-dir` (`claims.jsonl`, one JSON line per step, each written
//! and synced to disk before the step it records goes on): one actuator per decisions topic
//! (`apo actuate --local-claims`). A torn last line (a crash mid-write) is ignored; a bad line
//! anywhere else is an error. The file grows with the decisions; nothing prunes it yet.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::{fold, Claim, Line};
use crate::ActuateError;

/// The claims file, appended to.
pub struct ClaimsFile {
    path: PathBuf,
    file: File,
}

impl ClaimsFile {
    /// Opens (or creates) the claims file of `dir`, with what it holds.
    pub fn open(dir: &Path) -> Result<(Self, HashMap<String, Claim>), ActuateError> {
        let path = dir.join("claims.jsonl");
        let err = |e: std::io::Error| ActuateError::Claims {
            path: path.display().to_string(),
            error: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut claims = HashMap::new();
        if path.exists() {
            let lines: Vec<String> = BufReader::new(File::open(&path).map_err(err)?)
                .lines()
                .collect::<Result<_, _>>()
                .map_err(err)?;
            let n = lines.len();
            for (i, text) in lines.into_iter().enumerate() {
                match serde_json::from_str::<Line>(&text) {
                    Ok(l) => {
                        fold(&mut claims, l);
                    }
                    Err(e) if i + 1 == n => {
                        tracing::warn!(path = %path.display(), error = %e, "ignoring a torn last line of the claims file");
                    }
                    Err(e) => {
                        return Err(ActuateError::Claims {
                            path: path.display().to_string(),
                            error: format!("line {}: {e}", i + 1),
                        })
                    }
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        Ok((ClaimsFile { path, file }, claims))
    }

    /// Writes `line` and syncs it to disk.
    pub fn append(&mut self, line: &Line) -> Result<(), ActuateError> {
        let mut text = serde_json::to_string(line).map_err(|e| ActuateError::Claims {
            path: self.path.display().to_string(),
            error: e.to_string(),
        })?;
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| ActuateError::Claims {
                path: self.path.display().to_string(),
                error: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{verify_id, Actor, Claims, Step};
    use super::*;
    use crate::effect::Watching;
    use apo_schemas::action::{ActionOutcome, ActionRecord};

    #[test]
    fn claims_survive_a_reopen_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let record = ActionRecord {
            decision_id: "a".into(),
            target: "t".into(),
            action: "scale".into(),
            executed_at: 1,
            actor: "log".into(),
            outcome: ActionOutcome::Succeeded,
            detail: None,
        };
        {
            let mut c = Claims::in_file(dir.path(), Actor::new("x")).unwrap();
            c.mark("a", 0, 7, Step::Started, None).unwrap();
            c.mark("a", 0, 7, Step::Done, Some(&record)).unwrap();
            c.mark("b", 1, 3, Step::Started, None).unwrap();
            let w = Watching {
                decision: crate::testing::scale("a", "t", 2, 4),
                applied_replicas: Some(4),
                applied_value: None,
                executed_at: 5,
            };
            c.watch(0, 7, &w).unwrap();
            c.mark(&verify_id("a"), 0, 7, Step::Started, None).unwrap();
        }
        let path = dir.path().join("claims.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"id\":\"c\",\"parti").unwrap();
        drop(f);
        let c = Claims::in_file(dir.path(), Actor::new("x")).unwrap();
        let a = c.get("a").unwrap();
        assert_eq!((a.offset, a.step), (7, Step::Done));
        assert_eq!(a.record.as_ref(), Some(&record));
        assert_eq!(c.get("b").unwrap().step, Step::Started);
        assert!(c.get("c").is_none());
        let v = c.get("a/verify").unwrap();
        assert_eq!(v.step, Step::Started);
        assert_eq!(v.watching.as_ref().map(|w| w.executed_at), Some(5));
        // a file written before claims named their writer still reads
        std::fs::write(
            &path,
            "{\"id\":\"a\",\"partition\":0,\"offset\":1,\"step\":\"started\"}\n",
        )
        .unwrap();
        let old = Claims::in_file(dir.path(), Actor::new("x")).unwrap();
        assert_eq!(old.get("a").map(|c| c.step), Some(Step::Started));
        // a bad line in the middle is an error, not a silent loss
        std::fs::write(
            &path,
            "garbage\n{\"id\":\"a\",\"partition\":0,\"offset\":1,\"step\":\"started\"}\n",
        )
        .unwrap();
        assert!(Claims::in_file(dir.path(), Actor::new("x")).is_err());
    }
}
