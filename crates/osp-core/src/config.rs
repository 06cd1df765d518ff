//! Layered configuration (defaults < TOML file < environment), parsed from injected sources.
