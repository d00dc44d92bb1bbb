//! End-to-end: real handlers, real SDK clients, the emulator. One binary, one stack per test.

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
mod reply;
mod requests;
mod sweeper;
mod twilio;
mod privacy;
