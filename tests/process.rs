//! Integration tests: process (see tests/common for the harness).
mod common;
