//! OpenAI-compatible chat completions (OpenAI itself, or a local server speaking its API).

use std::fmt;

use serde::Deserialize;
use serde_json::{Value, json};

use super::http::send_json;
use super::{ChatModel, ChatRequest, ChatResponse, ModelError, StopReason, ToolCall, Turn, Usage};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

#[derive(Clone)]
pub struct OpenAiChat {
    http: reqwest::Client,
    /// The API root as OpenAI's own clients take it, ending in `/v1`.
    base_url: String,
    /// Optional: local OpenAI-compatible servers often need none.
    api_key: Option<String>,
    model: String,
}

impl fmt::Debug for OpenAiChat {
    // The key is a secret: only whether there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiChat")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| ".."))
            .field("model", &self.model)
            .finish()
    }
}

impl OpenAiChat {
    pub fn new(
        http: reqwest::Client,
        base_url: impl Into<String>,
        api_key: Option<String>,
        model: impl Into<String>,
    ) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Self { http, base_url, api_key, model: model.into() }
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let mut messages = vec![json!({"role": "system", "content": request.system})];
        for turn in &request.turns {
            match turn {
                Turn::User(text) => messages.push(json!({"role": "user", "content": text})),
                Turn::Assistant { text, tool_calls } => {
                    let mut message = json!({"role": "assistant", "content": text});
                    if !tool_calls.is_empty() {
                        let calls: Vec<Value> = tool_calls
                            .iter()
                            .map(|c| {
                                json!({"id": c.id, "type": "function",
                                       "function": {"name": c.name, "arguments": c.arguments}})
                            })
                            .collect();
                        message["tool_calls"] = Value::Array(calls);
                    }
                    messages.push(message);
                }
                Turn::ToolResults(results) => messages.extend(
                    results.iter().map(|r| json!({"role": "tool", "tool_call_id": r.call_id, "content": r.content})),
                ),
            }
        }
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        });
        // Some compatible servers refuse an empty tool list (or a tool_choice without tools).
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|t| {
                    json!({"type": "function",
                           "function": {"name": t.name, "description": t.description, "parameters": t.parameters}})
                })
                .collect();
            body["tools"] = Value::Array(tools);
            body["tool_choice"] = json!("auto");
        }
        body
    }
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireCall>,
}

#[derive(Deserialize)]
struct WireCall {
    id: String,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    /// JSON text, which may not parse: passed on as the model wrote it.
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

fn response(completion: Completion) -> Result<ChatResponse, ModelError> {
    let usage = completion
        .usage
        .map(|u| Usage { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens })
        .unwrap_or_default();
    let choice = completion
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ModelError::Malformed("no choices in the answer".into()))?;
    let tool_calls: Vec<ToolCall> = choice
        .message
        .tool_calls
        .into_iter()
        .map(|c| ToolCall { id: c.id, name: c.function.name, arguments: c.function.arguments })
        .collect();
    let stop = match choice.finish_reason.as_deref() {
        Some("tool_calls") => StopReason::ToolUse,
        Some("length") => StopReason::MaxTokens,
        // Some compatible servers say "stop" even when they called a tool.
        Some("stop") if !tool_calls.is_empty() => StopReason::ToolUse,
        Some("stop") => StopReason::EndTurn,
        _ => StopReason::Other,
    };
    let text = choice.message.content.filter(|t| !t.is_empty());
    Ok(ChatResponse { text, tool_calls, stop, usage })
}

impl ChatModel for OpenAiChat {
    fn name(&self) -> &'static str {
        "openai"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        let mut call = self.http.post(format!("{}/chat/completions", self.base_url)).json(&self.body(request));
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        response(send_json(call).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::assistant::model::testing::round_trip;

    fn chat(server: &MockServer, key: Option<&str>) -> OpenAiChat {
        OpenAiChat::new(reqwest::Client::new(), format!("{}/v1/", server.uri()), key.map(str::to_owned), "gpt-test")
    }

    fn tool_call_answer() -> Value {
        json!({
            "choices": [{
                "message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_2", "type": "function",
                     "function": {"name": "order_status", "arguments": "{\"order\":\"77\"}"}},
                    {"id": "call_3", "type": "function", "function": {"name": "order_status", "arguments": "{oops"}}
                ]},
                "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}
        })
    }

    #[tokio::test]
    async fn a_tool_round_trip_is_sent_in_openai_shape_and_tool_calls_come_back() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(header("authorization", "Bearer sk-test"))
            .respond_with(ResponseTemplate::new(200).set_body_json(tool_call_answer()))
            .expect(1)
            .mount(&server)
            .await;

        let answer = chat(&server, Some("sk-test")).complete(&round_trip()).await.unwrap();

        let sent: Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
        assert_eq!(
            sent,
            json!({
                "model": "gpt-test",
                "messages": [
                    {"role": "system", "content": "You are the shop's assistant."},
                    {"role": "user", "content": "Where is order 1042?"},
                    {"role": "assistant", "content": "Let me check.", "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "order_status", "arguments": "{\"order\":\"1042\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "{\"status\":\"shipped\"}"}
                ],
                "tools": [{"type": "function", "function": {
                    "name": "order_status", "description": "Looks up an order",
                    "parameters": {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]}
                }}],
                "tool_choice": "auto",
                "max_tokens": 300,
                "temperature": 0.25
            })
        );
        assert_eq!(answer.stop, StopReason::ToolUse);
        assert_eq!(answer.text, None);
        assert_eq!(answer.usage, Usage { prompt_tokens: 120, completion_tokens: 30 });
        assert_eq!(
            answer.tool_calls,
            vec![
                ToolCall { id: "call_2".into(), name: "order_status".into(), arguments: r#"{"order":"77"}"#.into() },
                // Invalid arguments are the tools layer's to judge: passed on untouched.
                ToolCall { id: "call_3".into(), name: "order_status".into(), arguments: "{oops".into() },
            ]
        );
    }

    #[tokio::test]
    async fn no_key_no_tools_means_no_header_and_no_tool_fields() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "choices": [{"message": {"content": "Hello!"}, "finish_reason": "stop"}]
            })))
            .mount(&server)
            .await;
        let mut request = round_trip();
        request.tools.clear();
        request.turns.truncate(1);

        let answer = chat(&server, None).complete(&request).await.unwrap();

        let received = &server.received_requests().await.unwrap()[0];
        assert!(!received.headers.contains_key("authorization"));
        let sent: Value = received.body_json().unwrap();
        assert!(sent.get("tools").is_none() && sent.get("tool_choice").is_none(), "{sent}");
        assert_eq!(answer.text.as_deref(), Some("Hello!"));
        assert_eq!((answer.stop, answer.usage), (StopReason::EndTurn, Usage::default()));
    }

    #[tokio::test]
    async fn failures_map_to_model_errors_without_bodies() {
        let server = MockServer::start().await;
        let model = chat(&server, Some("k"));
        let cases = [
            (ResponseTemplate::new(429).insert_header("retry-after", "3"), "429"),
            (ResponseTemplate::new(503), "503"),
            (ResponseTemplate::new(400).set_body_string("your message 'Jane Doe' is too long"), "400"),
            (ResponseTemplate::new(200).set_body_string("{\"choices\": \"Jane Doe\"}"), "bad json"),
            (ResponseTemplate::new(200).set_body_json(json!({"choices": []})), "no choice"),
        ];
        let mut errors = Vec::new();
        for (template, _) in cases {
            server.reset().await;
            Mock::given(method("POST")).respond_with(template).mount(&server).await;
            errors.push(model.complete(&round_trip()).await.unwrap_err());
        }
        assert_eq!(errors[0], ModelError::Unavailable { status: 429, retry_after_ms: Some(3000) });
        assert_eq!(errors[1], ModelError::Unavailable { status: 503, retry_after_ms: None });
        assert_eq!(errors[2], ModelError::Refused { status: 400 });
        assert!(matches!(errors[3], ModelError::Malformed(_)) && matches!(errors[4], ModelError::Malformed(_)));
        for e in &errors {
            assert!(!format!("{e} {e:?}").contains("Jane"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_slow_answer_times_out_and_a_dead_port_is_a_transport_error() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
            .mount(&server)
            .await;
        let http = reqwest::Client::builder().timeout(Duration::from_millis(50)).build().unwrap();
        let slow = OpenAiChat::new(http, format!("{}/v1", server.uri()), None, "m");
        assert_eq!(slow.complete(&round_trip()).await.unwrap_err(), ModelError::Timeout);

        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dead = OpenAiChat::new(reqwest::Client::new(), format!("http://127.0.0.1:{port}/v1"), None, "m");
        let err = dead.complete(&round_trip()).await.unwrap_err();
        assert!(matches!(err, ModelError::Transport(_)), "{err:?}");
    }
}
