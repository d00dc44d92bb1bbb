//! Anthropic's Messages API.

use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::http::send_json;
use super::roles::{Role, alternating};
use super::{ChatModel, ChatRequest, ChatResponse, ModelError, StopReason, ToolCall, Turn, Usage};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
const API_VERSION: &str = "2023-06-01";

#[derive(Clone)]
pub struct AnthropicChat {
    http: reqwest::Client,
    /// The API root without `/v1`.
    base_url: String,
    api_key: String,
    model: String,
}

impl fmt::Debug for AnthropicChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicChat")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl AnthropicChat {
    pub fn new(
        http: reqwest::Client,
        base_url: impl Into<String>,
        api_key: impl Into<String>,
        model: impl Into<String>,
    ) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Self { http, base_url, api_key: api_key.into(), model: model.into() }
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let messages: Vec<Value> = alternating(&request.turns, blocks)
            .into_iter()
            .map(|(role, content)| {
                let role = match role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                json!({"role": role, "content": content})
            })
            .collect();
        let mut body = json!({
            "model": self.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "messages": messages,
        });
        if !request.system.is_empty() {
            body["system"] = json!(request.system);
        }
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
                .collect();
            body["tools"] = Value::Array(tools);
        }
        body
    }
}

/// One turn's content blocks. Empty text is left out: the API refuses empty text blocks.
fn blocks(turn: &Turn) -> Vec<Value> {
    match turn {
        Turn::User(text) if text.is_empty() => vec![],
        Turn::User(text) => vec![json!({"type": "text", "text": text})],
        Turn::Assistant { text, tool_calls } => {
            let text = text.iter().filter(|t| !t.is_empty()).map(|t| json!({"type": "text", "text": t}));
            let calls = tool_calls.iter().map(|c| {
                json!({"type": "tool_use", "id": c.id, "name": c.name, "input": arguments_object(&c.arguments)})
            });
            text.chain(calls).collect()
        }
        Turn::ToolResults(results) => results
            .iter()
            .map(|r| json!({"type": "tool_result", "tool_use_id": r.call_id, "content": r.content, "is_error": r.is_error}))
            .collect(),
    }
}

/// The API wants the call's input as an object; arguments the model garbled are sent as `{}`
/// (the tool's error result, which follows, tells the model what went wrong).
pub(crate) fn arguments_object(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ => Value::Object(Map::new()),
    }
}

#[derive(Deserialize)]
struct Answer {
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// Thinking and whatever blocks come next: not for the customer.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u32,
    #[serde(default)]
    output_tokens: u32,
}

fn response(answer: Answer) -> ChatResponse {
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for block in answer.content {
        match block {
            Block::Text { text } => texts.push(text),
            Block::ToolUse { id, name, input } => tool_calls.push(ToolCall { id, name, arguments: input.to_string() }),
            Block::Other => {}
        }
    }
    let text = Some(texts.join("\n")).filter(|t| !t.is_empty());
    let stop = match answer.stop_reason.as_deref() {
        Some("end_turn") => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        _ => StopReason::Other,
    };
    let usage = answer
        .usage
        .map(|u| Usage { prompt_tokens: u.input_tokens, completion_tokens: u.output_tokens })
        .unwrap_or_default();
    ChatResponse { text, tool_calls, stop, usage }
}

impl ChatModel for AnthropicChat {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        let call = self
            .http
            .post(format!("{}/v1/messages", self.base_url))
            .header("x-api-key", &self.api_key)
            .header("anthropic-version", API_VERSION)
            .json(&self.body(request));
        Ok(response(send_json(call).await?))
    }
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::assistant::model::testing::round_trip;

    fn chat(server: &MockServer) -> AnthropicChat {
        AnthropicChat::new(reqwest::Client::new(), format!("{}/", server.uri()), "ak-test", "claude-test")
    }

    #[tokio::test]
    async fn a_tool_round_trip_is_sent_in_anthropic_shape_and_tool_calls_come_back() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .and(header("x-api-key", "ak-test"))
            .and(header("anthropic-version", "2023-06-01"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "msg_1", "type": "message", "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "x"},
                    {"type": "text", "text": "Checking the other one too."},
                    {"type": "tool_use", "id": "toolu_2", "name": "order_status", "input": {"order": "77"}}
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 210, "output_tokens": 40}
            })))
            .expect(1)
            .mount(&server)
            .await;
        let mut request = round_trip();
        // A follow-up question right after the tool result must share its user message.
        request.turns.push(Turn::User("And order 77?".into()));

        let answer = chat(&server).complete(&request).await.unwrap();

        let sent: Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
        assert_eq!(
            sent,
            json!({
                "model": "claude-test",
                "max_tokens": 300,
                "temperature": 0.25,
                "system": "You are the shop's assistant.",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Where is order 1042?"}]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Let me check."},
                        {"type": "tool_use", "id": "call_1", "name": "order_status", "input": {"order": "1042"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "{\"status\":\"shipped\"}",
                         "is_error": false},
                        {"type": "text", "text": "And order 77?"}
                    ]}
                ],
                "tools": [{"name": "order_status", "description": "Looks up an order",
                           "input_schema": {"type": "object", "properties": {"order": {"type": "string"}},
                                            "required": ["order"]}}]
            })
        );
        assert_eq!(answer.text.as_deref(), Some("Checking the other one too."));
        assert_eq!(answer.stop, StopReason::ToolUse);
        assert_eq!(answer.usage, Usage { prompt_tokens: 210, completion_tokens: 40 });
        assert_eq!(
            answer.tool_calls,
            vec![ToolCall { id: "toolu_2".into(), name: "order_status".into(), arguments: r#"{"order":"77"}"#.into() }]
        );
    }

    #[test]
    fn garbled_arguments_are_sent_as_an_empty_object() {
        assert_eq!(arguments_object("{oops"), json!({}));
        assert_eq!(arguments_object("[1]"), json!({}));
        assert_eq!(arguments_object(r#"{"a":1}"#), json!({"a": 1}));
    }

    #[tokio::test]
    async fn overloaded_and_throttled_are_retryable_and_a_bad_request_is_not() {
        let server = MockServer::start().await;
        let mut errors = Vec::new();
        for status in [529, 429, 500, 400, 401] {
            server.reset().await;
            Mock::given(method("POST")).respond_with(ResponseTemplate::new(status)).mount(&server).await;
            errors.push(chat(&server).complete(&round_trip()).await.unwrap_err());
        }
        let retryable: Vec<bool> = errors.iter().map(ModelError::retryable).collect();
        assert_eq!(retryable, [true, true, true, false, false]);
        assert_eq!(errors[0], ModelError::Unavailable { status: 529, retry_after_ms: None });
        assert_eq!(errors[4], ModelError::Refused { status: 401 });
    }
}
