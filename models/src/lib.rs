//! `apo-models`: ONNX models (isolation forest, LSTM forecaster) loaded and scored with tract,
//! with their training scripts under `models/train/` (DESIGN.md §5). Nothing here yet: the
//! models issue fills it.
