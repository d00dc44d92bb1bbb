//! The model behind the assistant, behind one port (`ChatModel`), whatever the vendor: a request
//! is a system prompt, the conversation so far (with tool calls and their results) and the
//! tools on offer; an answer is text, tool calls, or both. Every failure says whether a retry
//! can help, so the caller can fall back politely instead of leaving the customer unanswered.

pub mod anthropic;
pub mod bedrock;
mod http;
pub mod offline;
pub mod openai;
pub mod provider;
pub mod retry;
mod roles;
#[cfg(test)]
mod testing;

pub use anthropic::AnthropicChat;
pub use bedrock::BedrockChat;
pub use offline::OfflineModel;
pub use openai::OpenAiChat;
pub use provider::{AnyModel, ModelConfig, ProviderKind, http_client};
pub use retry::Retrying;

use std::fmt;
use std::future::Future;

use serde_json::Value;

/// A tool the model may call: its JSON Schema is what the vendor receives.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub parameters: Value,
}

/// A tool call as the model made it. The arguments are the model's JSON text, which may not
/// parse or validate: the tools layer treats that as an ordinary outcome.
#[derive(Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl fmt::Debug for ToolCall {
    // Arguments carry what the customer said (names, emails): never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolCall").field("id", &self.id).field("name", &self.name).finish_non_exhaustive()
    }
}

/// What a tool answered, sent back to the model.
#[derive(Clone, PartialEq)]
pub struct ToolResult {
    pub call_id: String,
    /// The tool's name (Bedrock and Anthropic do not need it; some OpenAI-compatible servers do).
    pub name: String,
    /// JSON text.
    pub content: String,
    pub is_error: bool,
}

impl fmt::Debug for ToolResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolResult")
            .field("call_id", &self.call_id)
            .field("is_error", &self.is_error)
            .finish_non_exhaustive()
    }
}

/// One turn of the conversation as the model sees it. Text here is already redacted.
#[derive(Clone, PartialEq)]
pub enum Turn {
    User(String),
    Assistant { text: Option<String>, tool_calls: Vec<ToolCall> },
    ToolResults(Vec<ToolResult>),
}

impl fmt::Debug for Turn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(_) => f.write_str("Turn::User(..)"),
            Self::Assistant { tool_calls, .. } => write!(f, "Turn::Assistant({} tool calls, ..)", tool_calls.len()),
            Self::ToolResults(r) => write!(f, "Turn::ToolResults({})", r.len()),
        }
    }
}

/// A knowledge-base passage chosen for the question (the offline provider answers from these).
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub title: String,
    pub text: String,
    pub score: f32,
}

#[derive(Clone, PartialEq)]
pub struct ChatRequest {
    /// Persona, instructions and the passages, as one system prompt.
    pub system: String,
    pub turns: Vec<Turn>,
    pub tools: Vec<ToolSpec>,
    /// The passages that went into `system`, best first.
    pub passages: Vec<Passage>,
    pub max_tokens: u32,
    pub temperature: f32,
}

impl fmt::Debug for ChatRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatRequest")
            .field("turns", &self.turns)
            .field("tools", &self.tools.len())
            .field("passages", &self.passages.len())
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    Other,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Clone, PartialEq)]
pub struct ChatResponse {
    pub text: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub stop: StopReason,
    pub usage: Usage,
}

impl fmt::Debug for ChatResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatResponse")
            .field("text", &self.text.as_ref().map(|_| ".."))
            .field("tool_calls", &self.tool_calls)
            .field("stop", &self.stop)
            .field("usage", &self.usage)
            .finish()
    }
}

/// Why a model call failed. Carries no request or response text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("model call timed out")]
    Timeout,
    /// 429, 5xx, Anthropic's 529, Bedrock's throttling: worth another try.
    #[error("model provider busy or failing (status {status})")]
    Unavailable { status: u16, retry_after_ms: Option<u64> },
    /// 4xx other than 429: the request itself is refused; retrying the same will not help.
    #[error("model provider refused the request (status {status})")]
    Refused { status: u16 },
    #[error("model connection failed: {0}")]
    Transport(String),
    #[error("model answer not understood: {0}")]
    Malformed(String),
}

impl ModelError {
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Timeout | Self::Unavailable { .. } | Self::Transport(_))
    }
}

/// The port.
pub trait ChatModel: Send + Sync {
    /// The provider's name, for logs and counts.
    fn name(&self) -> &'static str;
    fn complete(&self, request: &ChatRequest) -> impl Future<Output = Result<ChatResponse, ModelError>> + Send;
}
