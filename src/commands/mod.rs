//! The subcommands other than the run form. Each takes resolved settings and an [`Output`].

pub mod check;
pub mod doctor;
pub mod generate;
pub mod hook;
pub mod log;
pub mod policy;
pub mod request_view;
pub mod requests;
pub mod secret;
pub mod serve;
pub mod setup;
pub mod setup_agents;
pub mod shim;

pub use crate::output::Output;
