//! A scripted model provider on loopback: an OpenAI-compatible chat-completions server that
//! answers from a script, in order (the last answer repeats), and keeps every request body, so
//! tests can check what reached the model.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[derive(Clone, Default)]
pub struct ScriptedModel {
    replies: Arc<Vec<Value>>,
    next: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Respond for ScriptedModel {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.bodies.lock().unwrap().push(String::from_utf8_lossy(&request.body).into_owned());
        let i = self.next.fetch_add(1, Ordering::SeqCst).min(self.replies.len() - 1);
        ResponseTemplate::new(200).set_body_json(&self.replies[i])
    }
}

impl ScriptedModel {
    pub async fn serve(replies: Vec<Value>) -> (MockServer, Self) {
        let server = MockServer::start().await;
        let model = Self { replies: Arc::new(replies), ..Self::default() };
        Mock::given(method("POST")).and(path("/v1/chat/completions")).respond_with(model.clone()).mount(&server).await;
        (server, model)
    }

    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

/// A chat-completions answer calling one tool.
pub fn tool_call(id: &str, name: &str, arguments: Value) -> Value {
    json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
        "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": arguments.to_string()}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10}})
}

/// A chat-completions answer with text only.
pub fn text_reply(content: &str) -> Value {
    json!({"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10}})
}
