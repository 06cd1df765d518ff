//! OSP contracts: the names, payloads, event types, manifest and configuration that other
//! programs depend on (see `docs/contracts.md`). Pure data and validation; no I/O.

pub mod config;
