//! gate puts a human decision in front of privileged commands: classify the command against
//! policy, ask for approval where the policy says so, run exactly the approved argv, and record
//! everything in a hash-chained audit log.
//!
//! Data flows one way: `cli → policy::classify → approval → exec → audit`. The binary's
//! `main` only parses arguments and maps [`Error`]s to exit codes.
#![forbid(unsafe_code)]

pub mod approval;
pub mod audit;
pub mod ci;
pub mod cli;
pub mod clock;
pub mod command;
pub mod commands;
pub mod config;
pub mod error;
pub mod exec;
pub mod hook;
pub mod http;
pub mod identity;
pub mod jcs;
pub mod output;
pub mod policy;
pub mod request;
pub mod run;
pub mod secrets;
pub mod server;
pub mod shim;

pub use error::Error;
