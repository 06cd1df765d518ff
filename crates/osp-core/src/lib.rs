//! OSP contracts: the names, payloads, event types and manifest that other programs depend
//! on (`../shared/CONTRACTS.md`, kept in `docs/contracts.md`). Pure data and validation; no
//! I/O. Configuration lives in `osp-config`.

pub mod activities;
pub mod events;
pub mod manifest;
pub mod payloads;
pub mod validate;
pub mod workflows;
