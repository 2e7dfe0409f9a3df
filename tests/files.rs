//! Integration tests: files (see tests/common for the harness).
mod common;
