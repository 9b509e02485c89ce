//! `apo score` and `apo forecast`: the models over a `timestamp,value` CSV file (NAB's
//! format), as the stream would run them, for offline evaluation. Reading and writing CSV is
//! here; the scoring is `apo_models::series`.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use apo_models::{series, Forecaster, IsolationForest};
use chrono::{DateTime, NaiveDateTime};

use crate::args::{ForecastArgs, ScoreArgs, SeriesIo};

/// A series read from CSV: the timestamps as written (echoed back), in ms, and the values.
struct Series {
    raw_times: Vec<String>,
    raw_values: Vec<String>,
    times_ms: Vec<i64>,
    values: Vec<f64>,
}

fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Some(t.and_utc().timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    s.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .map(|x| (x * 1000.0).round() as i64)
}

fn read_series(path: &Path) -> Result<Series> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("{}: no header line", path.display()))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(tc), Some(vc)) = (col("timestamp"), col("value")) else {
        bail!(
            "{}: the header must name `timestamp` and `value` columns (found: {})",
            path.display(),
            headers.iter().collect::<Vec<_>>().join(",")
        );
    };
    let mut s = Series {
        raw_times: Vec::new(),
        raw_values: Vec::new(),
        times_ms: Vec::new(),
        values: Vec::new(),
    };
    for (i, rec) in reader.records().enumerate() {
        let line = i + 2;
        let rec = rec.with_context(|| format!("{}: line {line}", path.display()))?;
        let t = rec.get(tc).unwrap_or_default();
        let v = rec.get(vc).unwrap_or_default();
        let ms = parse_time(t).with_context(|| format!("{}: line {line}: timestamp {t:?} is not `YYYY-MM-DD HH:MM:SS`, RFC 3339 or epoch seconds", path.display()))?;
        let value: f64 = v
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite())
            .with_context(|| {
                format!(
                    "{}: line {line}: value {v:?} is not a finite number",
                    path.display()
                )
            })?;
        s.raw_times.push(t.to_string());
        s.raw_values.push(v.to_string());
        s.times_ms.push(ms);
        s.values.push(value);
    }
    if s.values.is_empty() {
        bail!("{}: no samples", path.display());
    }
    Ok(s)
}

fn writer(io: &SeriesIo) -> Result<csv::Writer<Box<dyn Write>>> {
    let sink: Box<dyn Write> = match &io.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    Ok(csv::Writer::from_writer(sink))
}

/// `apo score`: the anomaly model and the contextual detector over a CSV series, through the alert stage, as CSV.
pub fn score(args: ScoreArgs) -> Result<()> {
    let model = IsolationForest::load(&args.model).context("loading the anomaly model")?;
    let config = args.alert.config();
    config
        .validate()
        .map_err(anyhow::Error::msg)
        .context("alert settings")?;
    let s = read_series(&args.io.file)?;
    let scored = series::score(&model, &config, &s.times_ms, &s.values)
        .with_context(|| format!("scoring {}", args.io.file.display()))?;
    let mut w = writer(&args.io)?;
    w.write_record([
        "timestamp",
        "value",
        "anomaly_score",
        "label",
        "context_score",
    ])?;
    for (i, r) in scored.iter().enumerate() {
        w.write_record([
            s.raw_times[i].as_str(),
            s.raw_values[i].as_str(),
            &format!("{:.6}", r.score),
            if r.alert.raised { "1" } else { "0" },
            &r.context_score.map_or(String::new(), |c| format!("{c:.6}")),
        ])?;
    }
    w.flush()?;
    let alerts = scored.iter().filter(|r| r.alert.raised).count();
    tracing::info!(
        samples = scored.len(),
        alerts,
        model = model.version(),
        "scored {}",
        args.io.file.display()
    );
    Ok(())
}

/// `apo forecast`: the LSTM's forecasts of a CSV series next to its actual values, as CSV.
pub fn forecast(args: ForecastArgs) -> Result<()> {
    let model = Forecaster::load(&args.model).context("loading the forecast model")?;
    let s = read_series(&args.io.file)?;
    let issued = series::forecast(&model, &s.times_ms, &s.values)
        .with_context(|| format!("forecasting {}", args.io.file.display()))?;
    let by_time: std::collections::HashMap<i64, usize> = s
        .times_ms
        .iter()
        .enumerate()
        .map(|(i, t)| (*t, i))
        .collect();
    let mut w = writer(&args.io)?;
    w.write_record([
        "timestamp",
        "value",
        "forecast",
        "lower",
        "upper",
        "issued_at",
    ])?;
    for f in &issued {
        let actual = by_time
            .get(&f.target_ms)
            .map(|i| s.raw_values[*i].as_str())
            .unwrap_or_default();
        let target = DateTime::from_timestamp_millis(f.target_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        w.write_record([
            target.as_str(),
            actual,
            &format!("{:.6}", f.forecast.value),
            &format!("{:.6}", f.forecast.lower),
            &format!("{:.6}", f.forecast.upper),
            s.raw_times[f.issued_at].as_str(),
        ])?;
    }
    w.flush()?;
    tracing::info!(
        forecasts = issued.len(),
        model = model.version(),
        "forecast {}",
        args.io.file.display()
    );
    Ok(())
}
