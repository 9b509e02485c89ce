//! A service as a queue: `station.rs` (c servers, FIFO, the jobs waiting), `mmc.rs` (Poisson
//! arrivals and exponential service through a station: the M/M/c queue, simulated), and
//! `erlang.rs` (the M/M/c queue's waiting probability, mean wait and response-time quantiles
//! in closed form, Erlang C: what the simulation is tested against, and what the report sizes
//! APO's replicas by), and `pool.rs` (a connection pool: its size, the
//! callers waiting for a connection, resized at run time).

pub mod erlang;
pub mod mmc;
pub mod pool;
pub mod station;
