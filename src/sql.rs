//! `apo sql`: runs a query over the data directory and prints the result.

use anyhow::{Context, Result};

use crate::cli::SqlArgs;

pub fn sql(a: SqlArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the query runtime")?;
    let batches = rt.block_on(apo_sinks::sql::query(&a.data_dir, &a.query))?;
    let text = apo_sinks::sql::render(&batches, a.format)?;
    println!("{}", text.trim_end());
    Ok(())
}
