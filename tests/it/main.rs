//! The integration suite: the real server on an ephemeral port, driven over HTTP, against
//! every configured store (see `support::backends`). One binary, many modules.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic loudly

mod agents;
mod analytics;
mod archive;
mod audit;
mod billing;
mod cli;
mod clients;
mod cluster;
mod compliance;
mod configuration;
mod conformance;
mod credentials;
mod ctl;
mod delegation;
mod dids;
mod edges;
mod embedder;
mod federation;
mod federation_bounds;
mod hardening;
mod interop;
mod janitor;
mod jose;
mod keys;
mod lifecycle;
mod local_cluster;
mod ops;
mod outages;
mod packaging;
mod probe_round2;
mod quota_nodes;
mod quota_property;
mod resilience;
mod resources;
mod support;
mod tenancy;
mod tiers;
mod tls;
mod tokens;
mod users;
mod webhooks;
