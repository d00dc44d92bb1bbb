//! Amazon Bedrock's Converse API, through the SDK (which signs the requests).

use std::fmt;

use aws_sdk_bedrockruntime::error::SdkError;
use aws_sdk_bedrockruntime::operation::converse::{ConverseError, ConverseOutput as Converse};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseOutput, InferenceConfiguration, Message, StopReason as WireStop,
    SystemContentBlock, Tool, ToolConfiguration, ToolInputSchema, ToolResultBlock, ToolResultContentBlock,
    ToolResultStatus, ToolSpecification, ToolUseBlock,
};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::{Document, Number};
use serde_json::Value;

use super::anthropic::arguments_object;
use super::roles::{Role, alternating};
use super::{ChatModel, ChatRequest, ChatResponse, ModelError, StopReason, ToolCall, Turn, Usage};

#[derive(Clone)]
pub struct BedrockChat {
    client: aws_sdk_bedrockruntime::Client,
    model_id: String,
}

impl fmt::Debug for BedrockChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BedrockChat").field("model_id", &self.model_id).finish_non_exhaustive()
    }
}

/// A request the SDK's builders refused: our bug, and the same again will not pass.
fn unbuildable<E>(_: E) -> ModelError {
    ModelError::Refused { status: 0 }
}

impl BedrockChat {
    pub fn new(client: aws_sdk_bedrockruntime::Client, model_id: impl Into<String>) -> Self {
        Self { client, model_id: model_id.into() }
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    async fn converse(&self, request: &ChatRequest) -> Result<Converse, ModelError> {
        let mut call = self
            .client
            .converse()
            .model_id(&self.model_id)
            .set_messages(Some(messages(&request.turns)?))
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(i32::try_from(request.max_tokens).unwrap_or(i32::MAX))
                    .temperature(request.temperature)
                    .build(),
            );
        if !request.system.is_empty() {
            call = call.system(SystemContentBlock::Text(request.system.clone()));
        }
        if !request.tools.is_empty() {
            let mut config = ToolConfiguration::builder();
            for tool in &request.tools {
                let spec = ToolSpecification::builder()
                    .name(tool.name)
                    .description(tool.description)
                    .input_schema(ToolInputSchema::Json(to_document(&tool.parameters)))
                    .build()
                    .map_err(unbuildable)?;
                config = config.tools(Tool::ToolSpec(spec));
            }
            call = call.tool_config(config.build().map_err(unbuildable)?);
        }
        // Retries belong to the caller (`Retrying`), which knows the invocation's deadline; the
        // SDK's own would multiply them.
        let no_retries = aws_sdk_bedrockruntime::config::Builder::default().retry_config(RetryConfig::disabled());
        call.customize().config_override(no_retries).send().await.map_err(error)
    }
}

fn messages(turns: &[Turn]) -> Result<Vec<Message>, ModelError> {
    let mut built = Vec::new();
    let mut failed = None;
    let merged = alternating(turns, |turn| match blocks(turn) {
        Ok(b) => b,
        Err(e) => {
            failed = Some(e);
            vec![]
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    for (role, content) in merged {
        let role = match role {
            Role::User => ConversationRole::User,
            Role::Assistant => ConversationRole::Assistant,
        };
        built.push(Message::builder().role(role).set_content(Some(content)).build().map_err(unbuildable)?);
    }
    Ok(built)
}

/// One turn's content blocks (empty text left out: Converse refuses blank text blocks).
fn blocks(turn: &Turn) -> Result<Vec<ContentBlock>, ModelError> {
    let mut out = Vec::new();
    match turn {
        Turn::User(text) if !text.is_empty() => out.push(ContentBlock::Text(text.clone())),
        Turn::User(_) => {}
        Turn::Assistant { text, tool_calls } => {
            out.extend(text.iter().filter(|t| !t.is_empty()).map(|t| ContentBlock::Text(t.clone())));
            for call in tool_calls {
                let block = ToolUseBlock::builder()
                    .tool_use_id(&call.id)
                    .name(&call.name)
                    .input(to_document(&arguments_object(&call.arguments)))
                    .build()
                    .map_err(unbuildable)?;
                out.push(ContentBlock::ToolUse(block));
            }
        }
        Turn::ToolResults(results) => {
            for result in results {
                let mut block = ToolResultBlock::builder()
                    .tool_use_id(&result.call_id)
                    .content(ToolResultContentBlock::Text(result.content.clone()));
                // Only some models accept a status: sent only when it says something.
                if result.is_error {
                    block = block.status(ToolResultStatus::Error);
                }
                out.push(ContentBlock::ToolResult(block.build().map_err(unbuildable)?));
            }
        }
    }
    Ok(out)
}

fn response(output: Converse) -> Result<ChatResponse, ModelError> {
    let Some(ConverseOutput::Message(message)) = output.output() else {
        return Err(ModelError::Malformed("no message in the answer".into()));
    };
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for block in message.content() {
        match block {
            ContentBlock::Text(text) => texts.push(text.as_str()),
            ContentBlock::ToolUse(call) => tool_calls.push(ToolCall {
                id: call.tool_use_id().to_owned(),
                name: call.name().to_owned(),
                arguments: from_document(call.input()).to_string(),
            }),
            // Reasoning and the like: not for the customer.
            _ => {}
        }
    }
    let text = Some(texts.join("\n")).filter(|t| !t.is_empty());
    let stop = match output.stop_reason() {
        WireStop::EndTurn => StopReason::EndTurn,
        WireStop::ToolUse => StopReason::ToolUse,
        WireStop::MaxTokens => StopReason::MaxTokens,
        _ => StopReason::Other,
    };
    let usage = output
        .usage()
        .map(|u| Usage {
            prompt_tokens: u32::try_from(u.input_tokens()).unwrap_or(0),
            completion_tokens: u32::try_from(u.output_tokens()).unwrap_or(0),
        })
        .unwrap_or_default();
    Ok(ChatResponse { text, tool_calls, stop, usage })
}

/// Bedrock's failures as the port's. Service messages are left out: a validation message may
/// quote the request.
fn error(err: SdkError<ConverseError, HttpResponse>) -> ModelError {
    match &err {
        SdkError::TimeoutError(_) => ModelError::Timeout,
        SdkError::DispatchFailure(f) if f.is_timeout() => ModelError::Timeout,
        SdkError::ResponseError(_) => ModelError::Malformed("the Converse answer could not be read".into()),
        SdkError::ConstructionFailure(_) => ModelError::Refused { status: 0 },
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            match context.err() {
                ConverseError::ModelTimeoutException(_) => ModelError::Timeout,
                ConverseError::ThrottlingException(_)
                | ConverseError::ServiceUnavailableException(_)
                | ConverseError::ModelNotReadyException(_)
                | ConverseError::InternalServerException(_)
                | ConverseError::ModelErrorException(_) => ModelError::Unavailable { status, retry_after_ms: None },
                ConverseError::ValidationException(_)
                | ConverseError::AccessDeniedException(_)
                | ConverseError::ResourceNotFoundException(_) => ModelError::Refused { status },
                _ if status == 429 || status >= 500 => ModelError::Unavailable { status, retry_after_ms: None },
                _ => ModelError::Refused { status },
            }
        }
        // Connection failures: the SDK's description names the endpoint and the cause only.
        _ => ModelError::Transport(crate::aws::describe(err)),
    }
}

impl ChatModel for BedrockChat {
    fn name(&self) -> &'static str {
        "bedrock"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        response(self.converse(request).await?)
    }
}

/// JSON as the SDK's document type (tool schemas, tool inputs).
pub(crate) fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Number::PosInt(u),
            (None, Some(i)) => Number::NegInt(i),
            _ => Number::Float(n.as_f64().unwrap_or(0.0)),
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(map) => Document::Object(map.iter().map(|(k, v)| (k.clone(), to_document(v))).collect()),
    }
}

/// The SDK's document type as JSON; a non-finite float (JSON has none) becomes null.
pub(crate) fn from_document(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(from_document).collect()),
        Document::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), from_document(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
    use serde_json::json;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::assistant::model::testing::round_trip;

    fn chat(server: &MockServer) -> BedrockChat {
        let config = aws_sdk_bedrockruntime::Config::builder()
            .endpoint_url(server.uri())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("a", "b", None, None, "test"))
            .behavior_version(BehaviorVersion::latest())
            .build();
        BedrockChat::new(aws_sdk_bedrockruntime::Client::from_conf(config), "test-model")
    }

    #[tokio::test]
    async fn a_tool_round_trip_is_sent_in_converse_shape_and_tool_calls_come_back() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/model/test-model/converse"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "output": {"message": {"role": "assistant", "content": [
                    {"text": "One moment."},
                    {"toolUse": {"toolUseId": "tu_2", "name": "order_status", "input": {"order": "77", "n": -2}}}
                ]}},
                "stopReason": "tool_use",
                "usage": {"inputTokens": 90, "outputTokens": 12, "totalTokens": 102},
                "metrics": {"latencyMs": 1}
            })))
            .expect(1)
            .mount(&server)
            .await;
        let mut request = round_trip();
        request.turns.push(Turn::ToolResults(vec![crate::assistant::model::ToolResult {
            call_id: "call_0".into(),
            name: "order_status".into(),
            content: "{\"error\":\"unknown order\"}".into(),
            is_error: true,
        }]));

        let answer = chat(&server).complete(&request).await.unwrap();

        let sent: Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
        assert_eq!(
            sent,
            json!({
                "messages": [
                    {"role": "user", "content": [{"text": "Where is order 1042?"}]},
                    {"role": "assistant", "content": [
                        {"text": "Let me check."},
                        {"toolUse": {"toolUseId": "call_1", "name": "order_status", "input": {"order": "1042"}}}
                    ]},
                    {"role": "user", "content": [
                        {"toolResult": {"toolUseId": "call_1", "content": [{"text": "{\"status\":\"shipped\"}"}]}},
                        {"toolResult": {"toolUseId": "call_0", "content": [{"text": "{\"error\":\"unknown order\"}"}],
                                        "status": "error"}}
                    ]}
                ],
                "system": [{"text": "You are the shop's assistant."}],
                "inferenceConfig": {"maxTokens": 300, "temperature": 0.25},
                "toolConfig": {"tools": [{"toolSpec": {
                    "name": "order_status", "description": "Looks up an order",
                    "inputSchema": {"json": {"type": "object", "properties": {"order": {"type": "string"}},
                                             "required": ["order"]}}
                }}]}
            })
        );
        assert_eq!(answer.text.as_deref(), Some("One moment."));
        assert_eq!(answer.stop, StopReason::ToolUse);
        assert_eq!(answer.usage, Usage { prompt_tokens: 90, completion_tokens: 12 });
        assert_eq!(answer.tool_calls.len(), 1);
        assert_eq!((answer.tool_calls[0].id.as_str(), answer.tool_calls[0].name.as_str()), ("tu_2", "order_status"));
        let arguments: Value = serde_json::from_str(&answer.tool_calls[0].arguments).unwrap();
        assert_eq!(arguments, json!({"order": "77", "n": -2}));
    }

    #[tokio::test]
    async fn throttling_is_unavailable_once_and_validation_is_refused() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("x-amzn-errortype", "ThrottlingException")
                    .set_body_json(json!({"message": "Too many requests"})),
            )
            .mount(&server)
            .await;
        let err = chat(&server).complete(&round_trip()).await.unwrap_err();
        assert_eq!(err, ModelError::Unavailable { status: 429, retry_after_ms: None });
        // One request: the SDK's own retries are off, `Retrying` decides.
        assert_eq!(server.received_requests().await.unwrap().len(), 1);

        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(400)
                    .insert_header("x-amzn-errortype", "ValidationException")
                    .set_body_json(json!({"message": "Jane Doe is too long"})),
            )
            .mount(&server)
            .await;
        let err = chat(&server).complete(&round_trip()).await.unwrap_err();
        assert_eq!(err, ModelError::Refused { status: 400 });
    }

    #[test]
    fn documents_and_json_convert_both_ways() {
        let value = json!({"a": [1, -2, 2.5, true, null, "x"], "b": {"c": {}}});
        assert_eq!(from_document(&to_document(&value)), value);
        assert_eq!(from_document(&Document::Number(Number::Float(f64::NAN))), Value::Null);
    }
}
