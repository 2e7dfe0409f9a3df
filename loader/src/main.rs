//! `restart`: the loader library (`lib.rs`: `_start`, the heap, the panic
//! handler and every module), linked as a static executable at a fixed
//! address (build.rs, `linker.ld`).
#![no_std]
#![no_main]

use ckpt_loader as _;
