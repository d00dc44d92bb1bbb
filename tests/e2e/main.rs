//! End-to-end: real handlers, real SDK clients, the emulator. One binary, one stack per test.

mod budget;
mod events;
mod isolation;
mod kms;
mod local_runner;
mod meta;
mod twilio;
