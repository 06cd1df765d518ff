//! Examples of workflow tests, written as a user of OSP would write them: they live outside
//! the library crates and use only the public API of `osp-testkit`, `osp-core` and
//! `osp-workflows` (and the Temporal SDK for a workflow of their own). The tests are in
//! `tests/`; `docs/testing.md` walks through them.
