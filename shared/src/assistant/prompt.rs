//! Prompt assembly: the system prompt (persona, rules, opening hours, today's date in the
//! tenant's zone, the chosen passages), the recent conversation and the customer's message, all
//! within a token budget. Everything the customer or the conversation said passes through the
//! caller's redaction hook before it enters the request; business content does not.

use std::borrow::Cow;
use std::fmt::Write as _;

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};

use super::model::{ChatRequest, Passage, ToolSpec, Turn};
use crate::domain::{Content, MediaKind};
use crate::store::messages::ConversationEntry;
use crate::tenants::settings::{TenantSettings, WEEKDAYS};

/// Low: answers should follow the passages, not improvise.
pub const TEMPERATURE: f32 = 0.2;

/// Role markers and message framing that every vendor adds around a turn.
const TURN_OVERHEAD: u32 = 4;

/// Stands in for the customer's side when the kept history starts with our own message (Bedrock
/// and Anthropic require the first turn to be the user's).
const EARLIER_OMITTED: &str = "[earlier messages omitted]";
const OPENED_BY_BUSINESS: &str = "[conversation opened by the business]";

/// Tokens in `text`, estimated: an ASCII character counts a quarter token (about four per token
/// in English-like text), any other character three quarters (accented letters, Cyrillic and CJK
/// take one token or more). It errs high for non-English text, which keeps the budget safe; we do
/// not ship a tokenizer, to keep the binary lean.
pub fn estimate_tokens(text: &str) -> u32 {
    let units: usize = text
        .bytes()
        .map(|b| match b {
            0..0x80 => 1,
            // A UTF-8 lead byte starts a non-ASCII character; continuation bytes add nothing.
            0xC0.. => 3,
            _ => 0,
        })
        .sum();
    units.div_ceil(4).try_into().unwrap_or(u32::MAX)
}

/// How much of the model's context one answer may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// System prompt, tools, history and the current message, estimated.
    pub max_prompt_tokens: u32,
    /// History messages kept at most (newest first), before the token budget is applied.
    pub max_history_turns: usize,
    pub max_passages: usize,
    pub max_reply_tokens: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Self { max_prompt_tokens: 1_500, max_history_turns: 10, max_passages: 4, max_reply_tokens: 300 }
    }
}

impl Budget {
    /// The customer's current text is kept up to this; the rest of an enormous paste is clipped.
    fn current_cap(&self) -> u32 {
        self.max_prompt_tokens / 2
    }

    /// A single history message is clipped to this, so one long paste cannot crowd out the rest.
    fn history_message_cap(&self) -> u32 {
        self.max_prompt_tokens / 6
    }
}

/// Everything one answer's prompt is made of.
pub struct PromptInput<'a> {
    pub business_name: &'a str,
    pub settings: &'a TenantSettings,
    /// Shown as a date in `settings.timezone`, so "tomorrow" means the customer's tomorrow.
    pub now: Timestamp,
    /// Retrieved passages, in any order (the best-scored are kept).
    pub passages: &'a [Passage],
    /// The conversation before the current messages, oldest first.
    pub history: &'a [ConversationEntry],
    /// The message or burst of messages being answered, oldest first.
    pub current: &'a [&'a str],
    pub tools: Vec<ToolSpec>,
    pub budget: Budget,
}

/// The request for the model, with what went into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub request: ChatRequest,
    pub estimated_tokens: u32,
    pub passages_used: usize,
    /// History messages kept (before merging same-role neighbours into one turn).
    pub history_used: usize,
}

/// What a message shows the model: its text, or a marker for what cannot be read as text.
/// `None` for what is not part of the conversation (system notices, removed reactions).
pub fn describe(content: &Content) -> Option<Cow<'_, str>> {
    Some(match content {
        Content::Text { body } => Cow::Borrowed(body.as_str()),
        Content::Media { kind, caption, .. } => {
            let kind = match kind {
                MediaKind::Image => "image",
                MediaKind::Audio => "voice message",
                MediaKind::Video => "video",
                MediaKind::Document => "document",
                MediaKind::Sticker => "sticker",
            };
            match caption.as_deref().map(str::trim) {
                Some(caption) if !caption.is_empty() => Cow::Owned(format!("[{kind}] {caption}")),
                _ => Cow::Owned(format!("[{kind}]")),
            }
        }
        // Never coordinates: where the customer is stays out of the prompt.
        Content::Location { .. } => Cow::Borrowed("[location]"),
        Content::Contacts { .. } => Cow::Borrowed("[contact card]"),
        Content::InteractiveReply { title, .. } => Cow::Borrowed(title.as_str()),
        Content::Button { text, .. } => Cow::Borrowed(text.as_str()),
        Content::Reaction { emoji: Some(emoji), .. } => Cow::Owned(format!("[reacted {emoji}]")),
        Content::Order { .. } => Cow::Borrowed("[order]"),
        Content::Unsupported { .. } => Cow::Borrowed("[unsupported message]"),
        Content::Reaction { emoji: None, .. } | Content::System { .. } => return None,
    })
}

/// Builds the request. `redact` sees every piece of conversation text (history both ways and
/// the current messages) before it is used; the persona and passages are not passed to it.
pub fn assemble(input: PromptInput<'_>, redact: &mut dyn FnMut(&str) -> String) -> Prompt {
    let budget = input.budget;
    let max = budget.max_prompt_tokens;
    let mut system = preamble(&input);

    // Redacted before clipping, so a cut can never split an address the redactor would have caught.
    let current = input.current.iter().map(|m| redact(m)).collect::<Vec<_>>().join("\n");
    let current = clip(&current, budget.current_cap());

    let mut used = estimate_tokens(&system)
        + estimate_tokens(&current)
        + TURN_OVERHEAD
        + input.tools.iter().map(tool_tokens).sum::<u32>()
        + estimate_tokens(EARLIER_OMITTED).max(estimate_tokens(OPENED_BY_BUSINESS))
        + TURN_OVERHEAD;

    // Passages first, best first: what the business knows matters more than old chat.
    let mut ranked: Vec<&Passage> = input.passages.iter().collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut passages = Vec::new();
    let mut knowledge = String::new();
    for passage in ranked.into_iter().take(budget.max_passages) {
        let block = format!("\n[{}] {}\n{}\n", passages.len() + 1, passage.title, passage.text);
        let cost = estimate_tokens(&block);
        if used + cost > max {
            break;
        }
        used += cost;
        knowledge.push_str(&block);
        passages.push(passage.clone());
    }
    if passages.is_empty() {
        system.push_str("\nKnowledge base: nothing relevant found for this message.\n");
    } else {
        system.push_str("\nKnowledge base:\n");
        system.push_str(&knowledge);
    }

    let (mut turns, history_used) = history(input.history, budget, max.saturating_sub(used), redact);
    match turns.last_mut() {
        Some(Turn::User(text)) => {
            text.push('\n');
            text.push_str(&current);
        }
        _ => turns.push(Turn::User(current)),
    }

    let request = ChatRequest {
        system,
        turns,
        tools: input.tools,
        passages,
        max_tokens: budget.max_reply_tokens,
        temperature: TEMPERATURE,
    };
    Prompt {
        estimated_tokens: estimate_request(&request),
        passages_used: request.passages.len(),
        history_used,
        request,
    }
}

/// The estimate of everything a request sends the model (not the reply).
pub fn estimate_request(request: &ChatRequest) -> u32 {
    let turns: u32 = request
        .turns
        .iter()
        .map(|turn| {
            TURN_OVERHEAD
                + match turn {
                    Turn::User(text) => estimate_tokens(text),
                    Turn::Assistant { text, tool_calls } => {
                        text.as_deref().map_or(0, estimate_tokens)
                            + tool_calls
                                .iter()
                                .map(|c| estimate_tokens(&c.name) + estimate_tokens(&c.arguments))
                                .sum::<u32>()
                    }
                    Turn::ToolResults(results) => results.iter().map(|r| estimate_tokens(&r.content)).sum(),
                }
        })
        .sum();
    estimate_tokens(&request.system) + turns + request.tools.iter().map(tool_tokens).sum::<u32>()
}

fn tool_tokens(tool: &ToolSpec) -> u32 {
    estimate_tokens(tool.name) + estimate_tokens(tool.description) + estimate_tokens(&tool.parameters.to_string())
}

/// Persona, rules, opening hours and today's date.
fn preamble(input: &PromptInput<'_>) -> String {
    let settings = input.settings;
    let name = input.business_name;
    let mut s = String::with_capacity(2_048);
    match settings.persona.as_deref().map(str::trim) {
        Some(persona) if !persona.is_empty() => s.push_str(persona),
        _ => {
            let _ = write!(s, "You are the WhatsApp assistant of {name}, helping its customers.");
        }
    }
    let tz = TimeZone::get(&settings.timezone).unwrap_or(TimeZone::UTC);
    let local = input.now.to_zoned_datetime(tz);
    let _ = write!(
        s,
        "\n\nBusiness: {name}\nToday is {} ({}), local time {:02}:{:02} ({}).\n",
        weekday(&local),
        local.date(),
        local.hour(),
        local.minute(),
        settings.timezone,
    );
    s.push_str(
        "\nRules:\n\
         - Answer only from the knowledge base below and the conversation. If they do not answer the question, \
         say so and offer to put the customer in touch with a person.\n\
         - Never invent prices, opening hours, availability or policies.\n\
         - Be brief and friendly, WhatsApp style: a few short sentences, no headings.\n",
    );
    let _ = writeln!(s, "- Answer in the customer's language; when it is unclear, in {}.", settings.language);
    if !input.tools.is_empty() {
        s.push_str(
            "- Use the tools to capture a lead, check availability, book or cancel appointments, and hand over \
             to a human when the customer asks for one or you cannot help.\n",
        );
    }
    s.push_str(
        "- Placeholders such as [EMAIL_1] or [PHONE_1] stand for the customer's data: keep them exactly as \
         written.\n",
    );
    opening_hours(settings, &mut s);
    s
}

fn opening_hours(settings: &TenantSettings, s: &mut String) {
    if settings.opening_hours.is_empty() {
        s.push_str("\nOpening hours: not stated; do not guess them.\n");
        return;
    }
    let _ = writeln!(s, "\nOpening hours ({}):", settings.timezone);
    for day in WEEKDAYS {
        match settings.opening_hours.get(day) {
            Some(intervals) if !intervals.is_empty() => {
                let _ = writeln!(s, "{} {}", capitalized(day), intervals.join(", "));
            }
            _ => {
                let _ = writeln!(s, "{} closed", capitalized(day));
            }
        }
    }
}

fn capitalized(day: &str) -> String {
    let mut chars = day.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn weekday(local: &ZonedDateTime) -> &'static str {
    match local.weekday() {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

/// The newest history that fits `room` tokens and the budget's message count, as alternating
/// turns starting with the user's; and how many messages that is.
fn history(
    entries: &[ConversationEntry],
    budget: Budget,
    mut room: u32,
    redact: &mut dyn FnMut(&str) -> String,
) -> (Vec<Turn>, usize) {
    // Newest first while choosing; (is_user, text).
    let mut kept: Vec<(bool, String)> = Vec::new();
    let mut used = 0;
    let mut exhausted = true;
    for entry in entries.iter().rev() {
        if used == budget.max_history_turns {
            exhausted = false;
            break;
        }
        let (is_user, content) = match entry {
            ConversationEntry::Inbound(m) => (true, &m.content),
            ConversationEntry::Outbound(m) => (false, &m.content),
        };
        let Some(text) = describe(content) else { continue };
        let text = clip(&redact(&text), budget.history_message_cap());
        let cost = estimate_tokens(&text) + TURN_OVERHEAD;
        if cost > room {
            exhausted = false;
            break;
        }
        room -= cost;
        used += 1;
        match kept.last_mut() {
            // Same role as the newer neighbour: one turn, since some vendors require alternation.
            Some((last_is_user, newer)) if *last_is_user == is_user => {
                *newer = format!("{text}\n{newer}");
            }
            _ => kept.push((is_user, text)),
        }
    }
    if kept.last().is_some_and(|(is_user, _)| !is_user) {
        let marker = if exhausted { OPENED_BY_BUSINESS } else { EARLIER_OMITTED };
        kept.push((true, marker.to_owned()));
    }
    let turns = kept
        .into_iter()
        .rev()
        .map(
            |(is_user, text)| {
                if is_user { Turn::User(text) } else { Turn::Assistant { text: Some(text), tool_calls: vec![] } }
            },
        )
        .collect();
    (turns, used)
}

/// `text` cut to about `max_tokens`, at a character boundary, marked with an ellipsis.
fn clip(text: &str, max_tokens: u32) -> String {
    if estimate_tokens(text) <= max_tokens {
        return text.to_owned();
    }
    // Room for the ellipsis (one non-ASCII character).
    let mut units = (max_tokens as usize * 4).saturating_sub(3);
    let mut end = 0;
    for (i, c) in text.char_indices() {
        let cost = if c.is_ascii() { 1 } else { 3 };
        if cost > units {
            break;
        }
        units -= cost;
        end = i + c.len_utf8();
    }
    format!("{}…", text[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::domain::{Attachment, Channel, ContactId, InboundMessage, OutboundMessage, ProviderMessageId, RecordId};

    fn inbound(i: usize, content: Content) -> ConversationEntry {
        ConversationEntry::Inbound(InboundMessage {
            channel: Channel::Meta,
            id: ProviderMessageId::parse(&format!("wamid.{i}")).unwrap(),
            contact: ContactId::parse_key("+4915112345678").unwrap(),
            profile_name: None,
            sent_at: i as i64,
            reply_to: None,
            content,
        })
    }

    fn outbound(i: usize, content: Content) -> ConversationEntry {
        ConversationEntry::Outbound(OutboundMessage {
            id: RecordId::parse(&format!("o{i}")).unwrap(),
            channel: Channel::Meta,
            contact: ContactId::parse_key("+4915112345678").unwrap(),
            created_at: i as i64,
            content,
            in_reply_to: None,
            provider_id: None,
        })
    }

    fn text(body: &str) -> Content {
        Content::Text { body: body.into() }
    }

    fn passage(title: &str, words: usize, score: f32) -> Passage {
        Passage { title: title.into(), text: vec!["lorem"; words].join(" "), score }
    }

    fn settings() -> TenantSettings {
        let mut s = TenantSettings { timezone: "Europe/Madrid".into(), language: "es".into(), ..Default::default() };
        s.opening_hours = BTreeMap::from([
            ("mon".into(), vec!["09:00-14:00".into(), "16:00-20:00".into()]),
            ("sat".into(), vec!["10:00-13:00".into()]),
        ]);
        s
    }

    fn tools() -> Vec<ToolSpec> {
        let schema = json!({"type": "object", "properties": {"date": {"type": "string", "format": "date"}}});
        vec![ToolSpec { name: "check_availability", description: "Free slots on a date.", parameters: schema }]
    }

    fn input<'a>(
        settings: &'a TenantSettings,
        passages: &'a [Passage],
        history: &'a [ConversationEntry],
        current: &'a [&'a str],
    ) -> PromptInput<'a> {
        PromptInput {
            business_name: "Clínica Sol",
            settings,
            now: "2026-03-10T23:30:00Z".parse().unwrap(),
            passages,
            history,
            current,
            tools: tools(),
            budget: Budget::default(),
        }
    }

    fn same(s: &str) -> String {
        s.to_owned()
    }

    fn user_texts(prompt: &Prompt) -> Vec<&str> {
        prompt
            .request
            .turns
            .iter()
            .map(|t| match t {
                Turn::User(text) => text.as_str(),
                Turn::Assistant { text, .. } => text.as_deref().unwrap_or_default(),
                Turn::ToolResults(_) => "",
            })
            .collect()
    }

    #[test]
    fn estimates_count_non_ascii_more_heavily() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert!(estimate_tokens("ñññññññ") > estimate_tokens("nnnnnnn"));
        assert_eq!(estimate_tokens("日本語の"), 3);
    }

    #[test]
    fn a_big_knowledge_base_and_long_history_stay_within_budget() {
        let settings = settings();
        // Lower scores first, to check the best are kept whatever the order.
        let passages: Vec<Passage> = (0..40).map(|i| passage(&format!("P{i}"), 110, i as f32)).collect();
        let history: Vec<ConversationEntry> = (0..60)
            .map(|i| {
                let body = format!("message {i} {}", "blah ".repeat(60));
                if i % 2 == 0 { inbound(i, text(&body)) } else { outbound(i, text(&body)) }
            })
            .collect();
        let mut input = input(&settings, &passages, &history, &["¿Tenéis cita mañana?"]);
        input.budget.max_passages = 40;
        input.budget.max_history_turns = 60;
        let prompt = assemble(input, &mut same);
        assert!(prompt.estimated_tokens <= 1_500, "{}", prompt.estimated_tokens);
        assert!(prompt.estimated_tokens > 1_200, "the budget is used, not wasted: {}", prompt.estimated_tokens);
        assert_eq!(prompt.estimated_tokens, estimate_request(&prompt.request));
        assert!((1..40).contains(&prompt.passages_used));
        assert_eq!(prompt.request.passages[0].title, "P39");
        assert!(prompt.request.passages.windows(2).all(|w| w[0].score > w[1].score));
        assert!(prompt.request.system.contains("[1] P39\n"));
        // Passages come before history; what history fits is the newest.
        assert!(prompt.history_used < 60);
        let texts = user_texts(&prompt);
        let turns = prompt.request.turns.len();
        if prompt.history_used > 0 {
            assert!(texts[turns - 2].starts_with("message 59 "), "{texts:?}");
        }
        assert!(texts[turns - 1].ends_with("¿Tenéis cita mañana?"));
    }

    #[test]
    fn history_keeps_the_newest_messages_up_to_the_count() {
        let settings = settings();
        let history: Vec<ConversationEntry> = (0..30)
            .map(|i| if i % 2 == 0 { inbound(i, text(&format!("q{i}"))) } else { outbound(i, text(&format!("a{i}"))) })
            .collect();
        let prompt = assemble(input(&settings, &[], &history, &["now"]), &mut same);
        assert_eq!(prompt.history_used, 10);
        let texts = user_texts(&prompt);
        // q20..a29 kept; starts with the user's q20, ends with a29 then the current message.
        assert_eq!(texts.first(), Some(&"q20"));
        assert_eq!(texts[texts.len() - 2], "a29");
        assert!(!texts.iter().any(|t| t.contains("a19")));
    }

    #[test]
    fn the_current_message_is_always_there_clipped_when_enormous() {
        let mut settings = settings();
        settings.persona = Some("Very long persona. ".repeat(200));
        let huge = format!("START {}", "x".repeat(100_000));
        let passages = [passage("P", 100, 1.0)];
        let history = [inbound(1, text("earlier"))];
        let prompt = assemble(input(&settings, &passages, &history, &[&huge]), &mut same);
        let Some(Turn::User(last)) = prompt.request.turns.last() else { panic!("no user turn last") };
        assert!(last.starts_with("START xxx") && last.ends_with('…'));
        assert!(estimate_tokens(last) <= Budget::default().max_prompt_tokens / 2);
        // The persona alone nearly fills the budget: passages and history give way, not the message.
        assert_eq!((prompt.passages_used, prompt.history_used), (0, 0));
        assert!(prompt.request.system.contains("nothing relevant found"));

        let short = assemble(input(&settings, &[], &[], &["hola", "¿abrís el sábado?"]), &mut same);
        assert_eq!(short.request.turns, vec![Turn::User("hola\n¿abrís el sábado?".into())]);
    }

    #[test]
    fn the_redaction_hook_sees_all_conversation_text_and_no_business_text() {
        let mut settings = settings();
        settings.persona = Some("Persona mentions SECRET.".into());
        let passages = [Passage { title: "SECRET title".into(), text: "SECRET passage".into(), score: 1.0 }];
        let caption = Content::Media {
            kind: MediaKind::Image,
            caption: Some("photo SECRET".into()),
            attachments: vec![Attachment::default()],
        };
        let history = [
            inbound(1, text("mail SECRET")),
            outbound(2, text("we noted SECRET")),
            inbound(3, caption),
            inbound(4, Content::Button { payload: None, text: "yes SECRET".into() }),
        ];
        let mut calls = 0;
        let mut redact = |s: &str| {
            calls += 1;
            s.replace("SECRET", "[EMAIL_1]")
        };
        let prompt = assemble(input(&settings, &passages, &history, &["first SECRET", "second SECRET"]), &mut redact);
        assert_eq!(calls, 6);
        let texts = user_texts(&prompt);
        assert_eq!(texts.len(), 3);
        for t in &texts {
            assert!(!t.contains("SECRET") && t.contains("[EMAIL_1]"), "{t}");
        }
        assert_eq!(texts[2], "[image] photo [EMAIL_1]\nyes [EMAIL_1]\nfirst [EMAIL_1]\nsecond [EMAIL_1]");
        let system = &prompt.request.system;
        for business in ["Persona mentions SECRET.", "[1] SECRET title\nSECRET passage"] {
            assert!(system.contains(business), "{system}");
        }
        assert!(system.contains("keep them exactly as written"));
    }

    #[test]
    fn turns_alternate_and_start_with_the_user() {
        let settings = settings();
        let history = [
            outbound(1, text("Reminder: your visit is tomorrow at 10:00.")),
            inbound(2, text("ok")),
            inbound(3, Content::Location { latitude: 40.4168, longitude: -3.7038, name: None, address: None }),
            inbound(4, Content::System { body: Some("number changed".into()) }),
            outbound(5, text("Thanks!")),
            outbound(6, text("Anything else?")),
        ];
        let prompt = assemble(input(&settings, &[], &history, &["Can I move it?"]), &mut same);
        let turns = &prompt.request.turns;
        let expected = vec![
            Turn::User(OPENED_BY_BUSINESS.into()),
            Turn::Assistant { text: Some("Reminder: your visit is tomorrow at 10:00.".into()), tool_calls: vec![] },
            Turn::User("ok\n[location]".into()),
            Turn::Assistant { text: Some("Thanks!\nAnything else?".into()), tool_calls: vec![] },
            Turn::User("Can I move it?".into()),
        ];
        assert_eq!(turns, &expected);
        assert_eq!(prompt.history_used, 5);
        assert!(!format!("{turns:?}").contains("40.41"));

        // A trailing unanswered customer message joins the current one.
        let history = [outbound(1, text("Hi!")), inbound(2, text("hello?"))];
        let mut input = input(&settings, &[], &history, &["anyone?"]);
        input.budget.max_history_turns = 1;
        let prompt = assemble(input, &mut same);
        assert_eq!(prompt.request.turns, vec![Turn::User("hello?\nanyone?".into())]);
    }

    #[test]
    fn the_date_is_the_tenants_local_date() {
        // 23:30 UTC on Tuesday 10 March 2026.
        let mut settings = settings();
        let madrid = assemble(input(&settings, &[], &[], &["hi"]), &mut same).request.system;
        assert!(madrid.contains("Today is Wednesday (2026-03-11), local time 00:30 (Europe/Madrid)"), "{madrid}");
        settings.timezone = "America/Los_Angeles".into();
        let la = assemble(input(&settings, &[], &[], &["hi"]), &mut same).request.system;
        assert!(la.contains("Today is Tuesday (2026-03-10), local time 16:30"), "{la}");
    }

    #[test]
    fn the_system_prompt_states_persona_hours_rules_and_passages() {
        let settings = settings();
        let passages = [passage("Prices", 5, 2.0)];
        let prompt = assemble(input(&settings, &passages, &[], &["hi"]), &mut same);
        let system = &prompt.request.system;
        for part in [
            "You are the WhatsApp assistant of Clínica Sol",
            "Mon 09:00-14:00, 16:00-20:00\nTue closed",
            "Sat 10:00-13:00\nSun closed",
            "when it is unclear, in es.",
            "Never invent prices",
            "hand over to a human",
            "[1] Prices\nlorem lorem",
        ] {
            assert!(system.contains(part), "{part}: {system}");
        }
        assert_eq!((prompt.request.max_tokens, prompt.request.tools.len()), (300, 1));
        let printed = format!("{prompt:?}");
        assert!(!printed.contains("hi\"") && !printed.contains("lorem"), "{printed}");
    }
}
