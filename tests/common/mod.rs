//! Helpers shared by integration tests. Each test crate includes this module with
//! `mod common;` and uses what it needs (hence `dead_code` is allowed here).
#![allow(dead_code)]

pub mod openapi;
pub mod strategies;
