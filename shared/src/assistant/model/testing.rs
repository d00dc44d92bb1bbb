//! Fixtures shared by the providers' tests.

use serde_json::json;

use super::{ChatRequest, ToolCall, ToolResult, ToolSpec, Turn};

pub(crate) fn order_tool() -> ToolSpec {
    ToolSpec {
        name: "order_status",
        description: "Looks up an order",
        parameters: json!({"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]}),
    }
}

/// A user question, the model's tool call, and the tool's result: one full round trip.
pub(crate) fn round_trip() -> ChatRequest {
    ChatRequest {
        system: "You are the shop's assistant.".into(),
        turns: vec![
            Turn::User("Where is order 1042?".into()),
            Turn::Assistant {
                text: Some("Let me check.".into()),
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "order_status".into(),
                    arguments: r#"{"order":"1042"}"#.into(),
                }],
            },
            Turn::ToolResults(vec![ToolResult {
                call_id: "call_1".into(),
                name: "order_status".into(),
                content: r#"{"status":"shipped"}"#.into(),
                is_error: false,
            }]),
        ],
        tools: vec![order_tool()],
        passages: vec![],
        max_tokens: 300,
        temperature: 0.25,
    }
}
