//! Workflow tests as a user of OSP writes them, in one binary (one environment, one link):
//! a replacement activity in a dozen lines, a saga's failure path, and twenty isolated
//! tests side by side.

mod compensation;
mod parallel;
mod replacement_activity;
