//! centralino — a call-center queue manager for a city's public-relations office.
//!
//! ```text
//!  SIP (sip/) ──SipEvent──▶ runtime ◀──LegEvent── media/ (RTP per call leg)
//!                              │ feeds (now, input), drains outputs
//!                              ▼
//!                         engine/ (sans-IO: calls, IVR, queues, schedule)
//!  http (admin) ──AdminRequest──▶ runtime          metrics ◀── engine stats + driver counters
//! ```
//! Dependency direction: `main → app → {runtime, config, cli, http, metrics, sip, media,
//! ivr_scripts, store} → engine`. `engine` imports nothing else from this crate.

/// Composition root: builds and starts everything, shuts it down in order.
pub mod app;
/// Command-line definitions (clap).
pub mod cli;
/// The one place that reads the clock.
pub mod clock;
/// The subcommands' bodies.
pub mod commands;
/// The database subcommands: migrate, operators, report, export.
pub mod commands_db;
/// Typed configuration with embedded defaults and environment overrides.
pub mod config;
/// The sans-IO decision core.
pub mod engine;
/// Admin HTTP: health, metrics, live calls.
pub mod http;
/// IVR scripts and prompt files: loading and validation.
pub mod ivr_scripts;
/// RTP: codecs, DTMF, pacing, per-leg drivers, the port pool.
pub mod media;
/// Prometheus exposition from plain data.
pub mod metrics;
/// The control loop around the engine.
pub mod runtime;
/// SIP transports, transactions, dialogs, SDP.
pub mod sip;
/// SQL store: pool, migrations, call records, queue events, reports; the batching writer.
pub mod store;
