//! `apo bench` (filled in below).
use anyhow::Result;

use crate::cli::BenchArgs;

pub fn bench(_a: BenchArgs) -> Result<()> {
    anyhow::bail!("not built yet")
}
