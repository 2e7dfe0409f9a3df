//! Integration tests: threads (see tests/common for the harness).
mod common;
