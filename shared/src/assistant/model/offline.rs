//! The model with no network: answers from the knowledge base by quoting the sentence that best
//! matches the question, or promises a person. It keeps the assistant useful when no vendor is
//! configured (local runs, demos) and costs nothing.

use std::collections::HashSet;

use super::{ChatModel, ChatRequest, ChatResponse, ModelError, Passage, StopReason, Turn, Usage};

/// Said when the knowledge base has nothing on the question.
pub const FOLLOW_UP: &str = "Thanks for your message! A member of our team will get back to you shortly.";

/// How many of the best passages are read.
const PASSAGES_READ: usize = 3;

/// Words that say nothing about the topic of a question.
const STOP_WORDS: &[&str] = &[
    "about", "after", "all", "also", "and", "any", "are", "can", "could", "did", "does", "for", "from", "get", "had",
    "has", "have", "hello", "her", "here", "him", "his", "how", "into", "its", "just", "let", "like", "may", "more",
    "much", "not", "now", "our", "out", "please", "she", "should", "some", "than", "thank", "thanks", "that", "the",
    "their", "them", "then", "there", "these", "they", "this", "those", "too", "very", "want", "was", "were", "what",
    "when", "where", "which", "who", "whom", "why", "will", "with", "would", "you", "your", "yours",
];

#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineModel;

impl OfflineModel {
    pub fn new() -> Self {
        Self
    }

    /// The answer to the last user turn from the passages.
    pub fn answer(request: &ChatRequest) -> String {
        let question = request.turns.iter().rev().find_map(|t| match t {
            Turn::User(text) => Some(text.as_str()),
            _ => None,
        });
        question.and_then(|q| best_sentence(q, &request.passages)).unwrap_or_else(|| FOLLOW_UP.to_owned())
    }
}

/// The sentence sharing most words with the question, its passage's title counting for each of
/// its sentences (so "Opening hours" answers with the hours even when the sentence says
/// "open"). A word in the sentence itself weighs double; ties go to the better passage and the
/// earlier sentence.
fn best_sentence(question: &str, passages: &[Passage]) -> Option<String> {
    let asked = words(question);
    if asked.is_empty() {
        return None;
    }
    let mut best: Option<(usize, &str)> = None;
    for passage in passages.iter().take(PASSAGES_READ) {
        let title = words(&passage.title).intersection(&asked).count();
        for sentence in sentences(&passage.text) {
            let score = 2 * words(sentence).intersection(&asked).count() + title;
            if score > 0 && best.is_none_or(|(s, _)| score > s) {
                best = Some((score, sentence));
            }
        }
    }
    best.map(|(_, s)| s.to_owned())
}

/// Sentences: split after `.`, `!` or `?` followed by a space, and at line breaks. A time like
/// "8:00" or a price like "9.50" is left whole.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.lines().flat_map(|line| {
        let mut out = Vec::new();
        let mut start = 0;
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        for (i, &(at, c)) in chars.iter().enumerate() {
            let ends = matches!(c, '.' | '!' | '?') && chars.get(i + 1).is_none_or(|&(_, next)| next.is_whitespace());
            if ends {
                out.push(&line[start..at + c.len_utf8()]);
                start = at + c.len_utf8();
            }
        }
        out.push(&line[start..]);
        out.into_iter().map(str::trim).filter(|s| !s.is_empty())
    })
}

/// The meaningful words of a text, lower-cased and crudely stemmed.
fn words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() >= 3 && !STOP_WORDS.contains(&w.as_str()))
        .map(|w| stem(&w))
        .collect()
}

/// "hours" → "hour", "opening" → "open"; good enough to match a question to a sentence.
fn stem(word: &str) -> String {
    let cut = |suffix: &str| word.strip_suffix(suffix).filter(|rest| rest.chars().count() >= 3);
    if let Some(rest) = cut("ing") {
        return rest.to_owned();
    }
    match cut("s") {
        Some(rest) if !rest.ends_with('s') => rest.to_owned(),
        _ => word.to_owned(),
    }
}

fn estimate_tokens(chars: usize) -> u32 {
    u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX)
}

impl ChatModel for OfflineModel {
    fn name(&self) -> &'static str {
        "offline"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        let answer = Self::answer(request);
        let prompt: usize = request.system.chars().count()
            + request
                .turns
                .iter()
                .map(|t| match t {
                    Turn::User(text) => text.chars().count(),
                    Turn::Assistant { text, tool_calls } => {
                        text.as_deref().map_or(0, |t| t.chars().count())
                            + tool_calls.iter().map(|c| c.arguments.chars().count()).sum::<usize>()
                    }
                    Turn::ToolResults(results) => results.iter().map(|r| r.content.chars().count()).sum(),
                })
                .sum::<usize>();
        let usage = Usage {
            prompt_tokens: estimate_tokens(prompt),
            completion_tokens: estimate_tokens(answer.chars().count()),
        };
        Ok(ChatResponse { text: Some(answer), tool_calls: vec![], stop: StopReason::EndTurn, usage })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assistant::model::testing::order_tool;

    fn passage(title: &str, text: &str) -> Passage {
        Passage { title: title.into(), text: text.into(), score: 1.0 }
    }

    fn ask(question: &str, passages: Vec<Passage>) -> ChatRequest {
        ChatRequest {
            system: "x".repeat(40),
            turns: vec![Turn::User("Hi".into()), Turn::User(question.into())],
            tools: vec![order_tool()],
            passages,
            max_tokens: 200,
            temperature: 0.0,
        }
    }

    fn knowledge() -> Vec<Passage> {
        vec![
            passage(
                "Opening hours",
                "Our shop is in the old town. We are open Monday to Friday, 8:00 to 18:00, and Saturday 9:00 to 13:00. \
                 We close on public holidays.",
            ),
            passage("Delivery", "Orders ship within two days.\nDelivery costs 4.90 EUR, free above 50 EUR."),
        ]
    }

    #[tokio::test]
    async fn answers_with_the_sentence_that_matches_the_question() {
        let answer = OfflineModel.complete(&ask("What are your opening hours?", knowledge())).await.unwrap();
        assert_eq!(
            answer.text.as_deref(),
            Some("We are open Monday to Friday, 8:00 to 18:00, and Saturday 9:00 to 13:00.")
        );
        assert!(answer.tool_calls.is_empty());
        assert_eq!(answer.stop, StopReason::EndTurn);
        // 40 + 2 + 28 characters of prompt, 72 of answer, at four characters a token.
        assert_eq!(answer.usage, Usage { prompt_tokens: 18, completion_tokens: 18 });

        let delivery = OfflineModel::answer(&ask("How much does delivery cost?", knowledge()));
        assert_eq!(delivery, "Delivery costs 4.90 EUR, free above 50 EUR.");
        let holidays = OfflineModel::answer(&ask("Do you close on public holidays?", knowledge()));
        assert_eq!(holidays, "We close on public holidays.");
    }

    #[tokio::test]
    async fn nothing_in_common_or_no_passages_promises_a_person() {
        assert_eq!(OfflineModel::answer(&ask("Do you sell bicycles?", knowledge())), FOLLOW_UP);
        assert_eq!(OfflineModel::answer(&ask("What are your opening hours?", vec![])), FOLLOW_UP);
        let mut no_question = ask("", knowledge());
        no_question.turns.clear();
        let answer = OfflineModel.complete(&no_question).await.unwrap();
        assert_eq!(answer.text.as_deref(), Some(FOLLOW_UP));
        assert_eq!(OfflineModel.name(), "offline");
    }

    #[test]
    fn sentences_keep_times_and_prices_whole() {
        let split: Vec<&str> = sentences("Open 8:00 to 9.30 daily. Really? Yes!\nNext line").collect();
        assert_eq!(split, ["Open 8:00 to 9.30 daily.", "Really?", "Yes!", "Next line"]);
        assert_eq!(
            (stem("hours"), stem("opening"), stem("address"), stem("sing")),
            ("hour".into(), "open".into(), "address".into(), "sing".into())
        );
    }
}
