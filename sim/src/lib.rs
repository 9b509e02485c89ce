//! `apo-sim`: a simulated fleet that answers to decisions (issue 18), in simulated event time,
//! deterministic for a seed. So far its core:
//!
//! - [`command`]: `apo sim`, a service paced against the clock (`APO_NOW`'s speed), its
//!   control endpoints served, its metrics published each scrape, a progress line per window;
//! - [`embedded`]: the embedded default's closed loop, the sim beside `apo run`'s pipeline
//!   with the planner's HPA rule and an actuator scaling it through its webhook;
//! - [`cache`]: a cache's hit ratio by its size (Zipf requests, LRU, Che's approximation);
//! - [`control`]: the control API the actuators' executors drive: the webhook's endpoint and
//!   the `apps/v1` scale subresource, over a board of bounded, versioned workloads whose
//!   commands the simulation takes;
//! - [`events`]: the discrete-event clock, events in time order (ties in the order they were
//!   scheduled, so a seed gives one history);
//! - [`queue`]: a multi-server FIFO queue (`station.rs`), the M/M/c simulation built on it
//!   (`mmc.rs`), and the queueing theory its latency is tested against (`erlang.rs`: Erlang C);
//! - [`load`]: the request rate over simulated time, a replayed `timestamp,value` trace or a
//!   synthetic shape, and Poisson arrivals at that rate (thinning);
//! - [`run`]: one service under a load, scaled at given times or, paced at a multiple of wall
//!   time, by the control board's commands, measured per window (requests, refused, latency p50
//!   and p95, replicas), and scraped, what a monitoring agent sees each scrape interval;
//! - [`service`]: a service of replicas, each a station, with a start-up delay before a new
//!   replica serves, log-normal service times, and the bounded control API the executors will
//!   drive (`scale_to`).
//!
//! - [`telemetry`]: a scrape as OpenTelemetry-named metric points (the requests' durations as
//!   a histogram, the replicas, each replica's utilisation) and their producer to Kafka.
//!
//! - [`report`]: `apo sim --report`, the effectiveness report: one load three times through
//!   the whole system (fixed capacity, the HPA rule, APO), a table and a plot.
//!
//! To come (issue 18): the web shop's topology with connection pools, the cache and GC pauses;
//! spans; the whole fleet taking the control board's commands.

pub mod cache;
pub mod command;
pub mod control;
pub mod embedded;
pub mod events;
pub mod load;
pub mod queue;
pub mod report;
pub mod run;
pub mod service;
pub mod telemetry;
