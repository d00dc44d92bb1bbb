//! Concierge: the shared library of the Lambda functions — domain types, provider channels,
//! privacy building blocks, the storage ports and their adapters, and what every function is
//! to its hosts (Lambda and the local runner).

pub mod assistant;
pub mod aws;
pub mod channels;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod function;
pub mod ingest;
pub mod invocation;
pub mod media;
pub mod privacy;
pub mod purge;
pub mod queue;
pub mod reply;
pub mod shopify;
pub mod store;
pub mod sweeper;
pub mod telemetry;
pub mod tenants;
