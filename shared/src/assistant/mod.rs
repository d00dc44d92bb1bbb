//! The assistant: what the reply worker does with a customer's message between reading it and
//! sending the answer. Keywords first (opt-out, opt-in, handoff: no model involved), then the
//! knowledge base, the redacted prompt, the model with its tools, and the answer restored.

pub mod booking;
pub mod keywords;
pub mod knowledge;
pub mod model;
pub mod prompt;
pub mod redact;
pub mod tools;
