//! OSP contracts: the names, payloads, event types, manifest and configuration that other
//! programs depend on (`../shared/CONTRACTS.md`, kept in `docs/contracts.md`). Pure data and
//! validation; no I/O.

pub mod activities;
pub mod config;
pub mod events;
pub mod manifest;
pub mod payloads;
pub mod validate;
pub mod workflows;
