//! gate's integration tests: one crate, so the suite links once and libtest runs every test of
//! every area in one process, in parallel (`cargo test --test integration [FILTER]`; a module's
//! tests alone: `cargo test --test integration server_api::`). The layout follows `just`'s
//! tests/lib.rs: a module per area, one shared `common` (the `Gate` builder, the process and
//! server harness, throw-away users, an independent JCS).
//!
//! To add an area: put the file at `tests/integration/NAME.rs`, start it with
//! `use crate::common;` (then `use common::{Gate, Ran};` and friends), and add `mod NAME;` below,
//! in alphabetical order. Do not add another `tests/*.rs` file: each one is a crate of its own
//! that links gate again. Snapshots (insta) live in `tests/integration/snapshots/`, named
//! `integration__NAME__SNAPSHOT.snap`.
//!
//! Bringing in a `tests/NAME.rs` written as a crate of its own: `git mv` it here, replace its
//! `mod common;` with `use crate::common;`, make `include_str!("../…")` paths `"../../…"`, add
//! `mod NAME;` below. `Gate::run` then checks exit 0 and an empty stderr unless the test says
//! otherwise (`.status(n)`, `.stderr(exact)`, `.stderr_contains(..)`, `.any_stderr()`): a run
//! whose output nobody checked fails, which is the point.

mod common;

mod agent_hooks;
mod agent_policy;
mod allow9;
mod approval_reuse;
mod chat_sims;
mod ci_identity;
mod cli_help;
mod credential_release;
mod deploy_files;
mod docs_examples;
mod doctor;
mod errors9;
mod format_vectors;
mod generated;
mod harness;
mod local_approval;
mod local_attacks;
mod log_attacks;
mod log_cli;
mod log_robustness;
mod module_layers;
mod oidc_web;
mod output_color;
mod outputs;
mod pipeline9;
mod policy_cli;
mod policy_one_pass;
mod policy_tiers;
mod requests_view;
mod rewrites;
mod run_path;
mod server_api;
mod server_crash;
mod server_failover;
mod server_faults;
mod server_limits;
mod server_postgres;
mod server_tls;
mod server_web;
mod setup_agents;
mod setup_local;
mod shell_split;
mod shims;
mod signed_decisions;
mod sink_http;
mod sink_server;
mod sink_syslog;
mod slack_server;
mod slack_server_attacks;
mod slack_standalone;
mod teams_server;
mod two_stage;
mod verify9;
mod verify_tamper;
mod waiting;
