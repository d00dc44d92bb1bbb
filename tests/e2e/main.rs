//! End-to-end: real handlers, real SDK clients, the emulator. One binary, one stack per test.

mod audit;
mod budget;
mod config;
mod events;
mod faults;
mod iam;
mod isolation;
mod kms;
mod local_runner;
mod logs;
mod meta;
mod model;
mod privacy;
mod purge;
mod reply;
mod requests;
mod shopify;
mod sweeper;
mod twilio;
