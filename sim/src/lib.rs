//! `apo-sim`: a simulated fleet that answers to decisions (issue 18), in simulated event time,
//! deterministic for a seed:
//!
//! - [`command`]: `apo sim`, a fleet paced against the clock (`APO_NOW`'s speed), its
//!   control endpoints served, its metrics and sampled spans published each scrape, a
//!   progress line per window;
//! - [`embedded`]: the embedded default's closed loop, the sim beside `apo run`'s pipeline
//!   with the planner's HPA rule and an actuator scaling it through its webhook;
//! - [`cache`]: a cache's hit ratio by its size (Zipf requests, LRU, Che's approximation);
//! - [`control`]: the control API the actuators' executors drive: the webhook's endpoint and
//!   the `apps/v1` scale subresource, over a board of bounded, versioned workloads whose
//!   commands the simulation takes;
//! - [`gc`]: a replica's garbage-collected heap, its stop-the-world pauses growing with heap
//!   pressure;
//! - [`events`]: the discrete-event clock, events in time order (ties in the order they were
//!   scheduled, so a seed gives one history);
//! - [`queue`]: a multi-server FIFO queue (`station.rs`), the M/M/c simulation built on it
//!   (`mmc.rs`), and the queueing theory its latency is tested against (`erlang.rs`: Erlang C);
//! - [`load`]: the request rate over simulated time, a replayed `timestamp,value` trace or a
//!   synthetic shape, and Poisson arrivals at that rate (thinning);
//! - [`run`]: a fleet under a load, its requests through the services' queues, pools, caches
//!   and calls, scaled at given times or, paced at a multiple of wall time, by the control
//!   board's commands, measured per window (user requests, failed, latency p50 and p95,
//!   replicas), and scraped, what a monitoring agent sees of each service each scrape
//!   interval, with the sampled requests' spans;
//! - [`service`]: a service of replicas, each a station, with a start-up delay before a new
//!   replica serves, log-normal service times, and the bounded control API the executors will
//!   drive (`scale_to`).
//!
//! - [`topology`]: the fleet's services and the calls between them, synchronous (a fan-out
//!   waits for every answer) or messages; one service, or the web shop;
//! - [`telemetry`]: a scrape as OpenTelemetry-named metric points (the requests' durations as
//!   a histogram, the replicas, each replica's utilisation) and their producer to Kafka.
//!
//! - [`report`]: `apo sim --report`, the effectiveness report: one load three times through
//!   the whole system (fixed capacity, the HPA rule, APO), a table and a plot.
//!

pub mod cache;
pub mod command;
pub mod control;
pub mod embedded;
pub mod events;
pub mod gc;
pub mod load;
pub mod queue;
pub mod report;
pub mod run;
pub mod service;
pub mod telemetry;
pub mod topology;
