//! A missing, corrupt or mismatched model is a clear error at load, never a panic.

use std::path::{Path, PathBuf};

use apo_models::{IsolationForest, ModelError};

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("artifacts")
}

fn copy_model(dir: &Path) -> PathBuf {
    for ext in ["onnx", "json"] {
        std::fs::copy(
            artifacts().join(format!("iforest.{ext}")),
            dir.join(format!("iforest.{ext}")),
        )
        .expect("copy");
    }
    dir.join("iforest.onnx")
}

fn edit_meta(model: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = model.with_extension("json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    f(&mut meta);
    std::fs::write(&path, serde_json::to_string(&meta).expect("json")).expect("write");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn missing_model_names_the_file() {
    let err = IsolationForest::load(Path::new("/nonexistent/iforest.onnx")).expect_err("missing");
    assert!(matches!(err, ModelError::Io { .. }), "{err}");
    assert!(
        err.to_string().contains("/nonexistent/iforest.onnx"),
        "{err}"
    );
}

#[test]
fn truncated_model_fails_its_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = copy_model(dir.path());
    let bytes = std::fs::read(&model).expect("read");
    std::fs::write(&model, &bytes[..bytes.len() / 2]).expect("write");
    let err = IsolationForest::load(&model).expect_err("truncated");
    assert!(matches!(err, ModelError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("SHA-256"), "{err}");
}

#[test]
fn garbage_with_a_matching_digest_is_not_an_onnx_graph() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = copy_model(dir.path());
    let garbage = b"this is not a protobuf at all \xff\xfe\x00".to_vec();
    std::fs::write(&model, &garbage).expect("write");
    edit_meta(&model, |m| m["sha256"] = sha256_hex(&garbage).into());
    let err = IsolationForest::load(&model).expect_err("garbage");
    assert!(matches!(err, ModelError::Onnx { .. }), "{err}");
}

#[test]
fn metadata_that_does_not_match_the_inputs_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = copy_model(dir.path());
    edit_meta(&model, |m| m["features"][0] = "level_p42".into());
    let err = IsolationForest::load(&model).expect_err("features");
    assert!(err.to_string().contains("level_p42"), "{err}");

    let model = copy_model(dir.path());
    edit_meta(&model, |m| m["input"] = "x".into());
    let err = IsolationForest::load(&model).expect_err("input name");
    assert!(
        matches!(err, ModelError::Mismatch { .. }) && err.to_string().contains("\"x\""),
        "{err}"
    );

    let model = copy_model(dir.path());
    edit_meta(&model, |m| m["kind"] = "lstm_forecaster".into());
    assert!(matches!(
        IsolationForest::load(&model),
        Err(ModelError::Metadata { .. })
    ));

    let model = copy_model(dir.path());
    std::fs::write(model.with_extension("json"), "{ not json").expect("write");
    assert!(matches!(
        IsolationForest::load(&model),
        Err(ModelError::Metadata { .. })
    ));
}
