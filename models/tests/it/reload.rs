//! Replacing a model's files while it runs: a loadable pair is taken, a broken one is refused
//! and the running model keeps scoring.

use std::path::{Path, PathBuf};
use std::time::Duration;

use apo_models::features::FEATURES;
use apo_models::watch::Watched;
use apo_models::IsolationForest;

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("artifacts")
}

fn install(dir: &Path, version: &str) {
    std::fs::copy(
        artifacts().join("iforest.onnx"),
        dir.join("iforest.onnx.tmp"),
    )
    .unwrap();
    let text = std::fs::read_to_string(artifacts().join("iforest.json")).unwrap();
    let mut meta: serde_json::Value = serde_json::from_str(&text).unwrap();
    meta["version"] = version.into();
    std::fs::write(dir.join("iforest.json.tmp"), meta.to_string()).unwrap();
    // roll out as documented: write aside, rename over
    std::fs::rename(dir.join("iforest.onnx.tmp"), dir.join("iforest.onnx")).unwrap();
    std::fs::rename(dir.join("iforest.json.tmp"), dir.join("iforest.json")).unwrap();
}

fn touch_later(path: &Path) {
    // modification times can be coarse: make sure the change is visible
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
}

#[test]
fn replaced_files_are_taken_and_broken_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "v-one");
    let path = dir.path().join("iforest.onnx");
    let mut w: Watched<IsolationForest> = Watched::load(&path, Duration::ZERO).unwrap();
    assert_eq!(w.get().version(), "v-one");
    assert_eq!(w.reloads(), 0, "unchanged files are not reloaded");

    install(dir.path(), "v-two");
    touch_later(&dir.path().join("iforest.json"));
    assert_eq!(w.get().version(), "v-two");
    assert_eq!(w.reloads(), 1);

    // a half-written model: the digest does not match, the running one stays
    std::fs::write(&path, b"half a model").unwrap();
    touch_later(&path);
    let m = w.get();
    assert_eq!(m.version(), "v-two");
    assert_eq!(
        m.score(&[[0.0f32; FEATURES]]).unwrap().len(),
        1,
        "still scoring"
    );
    assert_eq!(w.reloads(), 1);
}
