//! hydrowatch: flood and drought monitoring for a county flood-control office.
//!
//! Gauge stations publish water levels and rainfall over MQTT; hydrowatch commits every reading
//! to an embedded journal before acknowledging it, forwards the journal to InfluxDB, evaluates
//! each station's flood and drought rules in observation time, and pages the patrol team that
//! owns the station until somebody acknowledges.
//!
//! The pipeline, one module per component:
//!
//! - [`ingest`]: the sources (MQTT, the SL 651 centre) and the payload decoder (contract:
//!   gauge messages);
//! - [`writer`]: the single writer that orders a group of messages, their rule evaluations,
//!   alert changes and notifications into one transaction, then acknowledges them;
//! - [`journal`]: the SQLite journal: every table and its SQL, and the readers behind the API;
//! - [`sink`]: InfluxDB line protocol and the forwarder that drains the journal;
//! - [`rules`]: stage, rise-rate, rain, drought, dry-spell, offline and sensor rules (pure);
//! - [`alerts`]: the alert lifecycle and its events;
//! - [`notify`]: the outbox dispatcher and the channels that reach patrol teams;
//! - [`api`]: HTTP API, metrics, server-sent events and the status board;
//! - [`broker`]: the embedded MQTT broker for small installations and the demo, and the client
//!   options hydrowatch's own MQTT connections share;
//! - [`tls`]: certificates and keys for hydrowatch's own TLS listeners;
//! - [`model`]: the vocabulary every component shares (readings, dead-letter causes, time);
//! - [`sim`]: the gauge simulator and CSV replay;
//! - [`sl651`]: the SL 651-2014 telemetry protocol that RTUs speak to a centre (frames,
//!   elements, readings, answers; pure);
//! - [`config`]: layered configuration and its validation.

pub mod alerts;
pub mod api;
pub mod broker;
pub mod bulletin;
pub mod config;
pub mod daemon;
pub mod ingest;
pub mod journal;
pub mod model;
pub mod notify;
pub mod rules;
pub mod shutdown;
pub mod sim;
pub mod sink;
pub mod sl651;
pub mod tls;
pub mod writer;
