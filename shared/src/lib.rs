//! Concierge: the shared library of the Lambda functions — domain types, provider channels,
//! privacy building blocks, and the AWS adapters behind small ports.

pub mod aws;
pub mod channels;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod ingest;
pub mod privacy;
pub mod queue;
pub mod store;
pub mod telemetry;
pub mod tenants;
