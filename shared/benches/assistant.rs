//! The assistant's CPU path before the model call: retrieve the best passages of a 1,000-passage
//! knowledge base for a customer's question and assemble the prompt around them (persona,
//! rules, hours, date, a short history, tools). Building the index is measured apart: it happens
//! once per tenant and knowledge-base version on a warm instance.

use std::hint::black_box;

use concierge::assistant::knowledge::{KnowledgeDoc, KnowledgeIndex};
use concierge::assistant::model::ToolSpec;
use concierge::assistant::prompt::{Budget, PromptInput, assemble};
use concierge::domain::{Channel, ContactId, Content, InboundMessage, OutboundMessage, ProviderMessageId, RecordId};
use concierge::store::messages::ConversationEntry;
use concierge::tenants::settings::TenantSettings;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;

// As in the function binaries.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PASSAGES: usize = 1_000;

const QUESTIONS: [&str; 8] = [
    "When are you open on Saturday?",
    "How much does a professional teeth cleaning cost?",
    "Do you ship to Germany and how long does delivery take?",
    "Can I return a jacket after 30 days if I opened the box?",
    "Is there parking near the shop?",
    "Do you accept credit cards or only cash?",
    "Can I book an appointment for tomorrow afternoon?",
    "My order arrived damaged, what should I do?",
];

const TOPICS: [&str; 24] = [
    "teeth cleaning",
    "whitening",
    "delivery",
    "returns",
    "warranty",
    "parking",
    "payment",
    "gift cards",
    "jackets",
    "shoes",
    "repairs",
    "appointments",
    "cancellations",
    "insurance",
    "membership",
    "discounts",
    "opening hours",
    "accessibility",
    "pets",
    "children",
    "orders",
    "damaged items",
    "invoices",
    "loyalty points",
];
const NOUNS: [&str; 32] = [
    "customer",
    "order",
    "parcel",
    "invoice",
    "refund",
    "voucher",
    "courier",
    "receipt",
    "appointment",
    "slot",
    "clinic",
    "store",
    "garage",
    "card",
    "account",
    "booking",
    "label",
    "box",
    "size",
    "colour",
    "fabric",
    "treatment",
    "checkup",
    "price",
    "fee",
    "deposit",
    "confirmation",
    "email",
    "branch",
    "counter",
    "team",
    "manager",
];
const VERBS: [&str; 20] = [
    "book",
    "cancel",
    "return",
    "exchange",
    "collect",
    "deliver",
    "repair",
    "replace",
    "pay",
    "confirm",
    "ship",
    "track",
    "reschedule",
    "register",
    "upgrade",
    "inspect",
    "clean",
    "measure",
    "wrap",
    "refund",
];
const EXTRAS: [&str; 16] = [
    "within 14 days",
    "free of charge",
    "for a small fee",
    "on weekdays",
    "before noon",
    "at the front desk",
    "by phone or WhatsApp",
    "with the original receipt",
    "in most cases",
    "for members",
    "during the sale",
    "after the first visit",
    "on request",
    "at any branch",
    "within Spain",
    "outside the EU",
];

/// A fixed-seed linear congruential generator: the same knowledge base on every run.
struct Lcg(u64);

impl Lcg {
    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        words[(self.0 >> 33) as usize % words.len()]
    }
}

/// One synthetic FAQ paragraph of 50-115 words per document, so each is one passage.
fn knowledge_base() -> Vec<KnowledgeDoc> {
    let mut rng = Lcg(42);
    (0..PASSAGES)
        .map(|i| {
            let topic = TOPICS[i % TOPICS.len()];
            let mut text = String::new();
            while text.split_whitespace().count() < 50 + i % 50 {
                let (verb, noun, extra, other) =
                    (rng.pick(&VERBS), rng.pick(&NOUNS), rng.pick(&EXTRAS), rng.pick(&NOUNS));
                text.push_str(&format!(
                    "You can {verb} your {noun} {extra}; the {other} team handles {topic} for every {noun}. "
                ));
            }
            KnowledgeDoc { title: format!("{} ({})", capital(topic), i / TOPICS.len() + 1), text }
        })
        .collect()
}

fn capital(s: &str) -> String {
    s[..1].to_uppercase() + &s[1..]
}

fn settings() -> TenantSettings {
    let mut s = TenantSettings { timezone: "Europe/Madrid".into(), ..Default::default() };
    s.persona = Some("You are Sol, the friendly assistant of Clínica Sol, a dental clinic in Madrid.".into());
    for day in ["mon", "tue", "wed", "thu", "fri"] {
        s.opening_hours.insert(day.into(), vec!["09:00-14:00".into(), "16:00-20:00".into()]);
    }
    s.opening_hours.insert("sat".into(), vec!["10:00-13:00".into()]);
    s
}

fn tools() -> Vec<ToolSpec> {
    let object = |props: serde_json::Value| json!({"type": "object", "properties": props});
    vec![
        ToolSpec {
            name: "capture_lead",
            description: "Store the customer's name, email and what they are interested in.",
            parameters: object(
                json!({"name": {"type": "string"}, "email": {"type": "string"}, "interest": {"type": "string"}}),
            ),
        },
        ToolSpec {
            name: "check_availability",
            description: "Free slots for a service on a date.",
            parameters: object(json!({"service": {"type": "string"}, "date": {"type": "string", "format": "date"}})),
        },
        ToolSpec {
            name: "book",
            description: "Book a slot returned by check_availability.",
            parameters: object(json!({"slot_id": {"type": "string"}, "name": {"type": "string"}})),
        },
        ToolSpec {
            name: "handoff",
            description: "Hand the conversation to a person.",
            parameters: object(json!({"reason": {"type": "string"}})),
        },
    ]
}

fn history() -> Vec<ConversationEntry> {
    let contact = ContactId::parse_key("+34600111222").unwrap();
    let lines = [
        (true, "Hi! I'm Ana, I was at your clinic last month."),
        (false, "Hello Ana! How can we help you today?"),
        (true, "I wanted to ask a few things before my next visit."),
        (false, "Of course, go ahead."),
        (true, "My email is [EMAIL_1] in case you need it."),
        (false, "Thanks, noted."),
    ];
    lines
        .iter()
        .enumerate()
        .map(|(i, (inbound, body))| {
            let content = Content::Text { body: (*body).into() };
            if *inbound {
                ConversationEntry::Inbound(InboundMessage {
                    channel: Channel::Meta,
                    id: ProviderMessageId::parse(&format!("wamid.{i}")).unwrap(),
                    contact: contact.clone(),
                    profile_name: None,
                    sent_at: 1_767_225_600 + i as i64,
                    reply_to: None,
                    content,
                })
            } else {
                ConversationEntry::Outbound(OutboundMessage {
                    id: RecordId::parse(&format!("o{i}")).unwrap(),
                    channel: Channel::Meta,
                    contact: contact.clone(),
                    created_at: 1_767_225_600 + i as i64,
                    content,
                    in_reply_to: None,
                    provider_id: None,
                })
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let docs = knowledge_base();
    let index = KnowledgeIndex::build(&docs);
    assert_eq!(index.len(), PASSAGES);
    let (settings, history, tools) = (settings(), history(), tools());
    let now = "2026-03-10T10:15:00Z".parse().unwrap();
    let budget = Budget::default();
    let answer = |question: &str| {
        let passages = index.search(question, budget.max_passages);
        let input = PromptInput {
            business_name: "Clínica Sol",
            settings: &settings,
            now,
            passages: &passages,
            history: &history,
            current: &[question],
            tools: tools.clone(),
            budget,
        };
        // The real redactor is measured on its own; this one only copies, as it must at least.
        assemble(input, &mut |s: &str| s.to_owned())
    };

    let mut tokens: Vec<u32> = QUESTIONS.iter().map(|q| answer(q).estimated_tokens).collect();
    tokens.sort_unstable();
    let passages: Vec<usize> = QUESTIONS.iter().map(|q| answer(q).passages_used).collect();
    eprintln!(
        "assistant: median estimated prompt tokens {} (min {}, max {}) over {} questions; passages used {passages:?}",
        tokens[tokens.len() / 2],
        tokens[0],
        tokens[tokens.len() - 1],
        QUESTIONS.len(),
    );

    let mut group = c.benchmark_group("assistant_1000_passages");
    for (i, question) in QUESTIONS.iter().enumerate() {
        group.bench_with_input(BenchmarkId::new("retrieve_and_assemble", i), question, |b, q| {
            b.iter(|| black_box(answer(black_box(q))))
        });
    }
    group.bench_function("retrieve_only", |b| b.iter(|| black_box(index.search(black_box(QUESTIONS[1]), 4))));
    group.finish();

    let mut build = c.benchmark_group("assistant_build");
    build.sample_size(10);
    build.bench_function("index_1000_passages", |b| b.iter(|| black_box(KnowledgeIndex::build(black_box(&docs)))));
    build.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
