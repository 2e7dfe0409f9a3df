//! Integration tests: cli (see tests/common for the harness).
mod common;
