//! The tenant's knowledge base, searchable. Documents are cut into passages of a few sentences
//! (a passage is what the model reads, so it should be small and whole), ranked with BM25 (the
//! `bm25` crate) and kept built across warm invocations: one index per tenant and version.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bm25::{DefaultTokenizer, Embedder, EmbedderBuilder, Language, LanguageMode, Scorer};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::model::Passage;
use crate::domain::TenantId;
use crate::tenants::records::KnowledgeItem;

/// Fewer words than this and a passage lacks context (unless its whole document is shorter).
pub const MIN_PASSAGE_WORDS: usize = 40;
/// More than this and a passage spends the prompt budget on text that does not answer.
pub const MAX_PASSAGE_WORDS: usize = 120;

/// How many tenants' indexes a warm instance keeps.
pub const DEFAULT_CACHE_TENANTS: usize = 64;

/// One document of a tenant's knowledge base (business content, not personal data), as the
/// tenants file states it and as it is stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeDoc {
    pub title: String,
    pub text: String,
}

impl From<KnowledgeItem> for KnowledgeDoc {
    fn from(item: KnowledgeItem) -> Self {
        Self { title: item.title, text: item.text }
    }
}

/// A content hash of the documents in order: the cache key that changes whenever any of them does.
pub fn version(docs: &[KnowledgeDoc]) -> String {
    let mut hash = Sha256::new();
    for doc in docs {
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        for part in [&doc.title, &doc.text] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
    }
    hex::encode(&hash.finalize()[..16])
}

/// The stemmer and stop words for a tenant's language (BCP 47); English when unsupported.
pub fn language_mode(tag: &str) -> LanguageMode {
    let primary = tag.split(['-', '_']).next().unwrap_or_default().to_ascii_lowercase();
    let language = match primary.as_str() {
        "ar" => Language::Arabic,
        "da" => Language::Danish,
        "nl" => Language::Dutch,
        "fr" => Language::French,
        "de" => Language::German,
        "el" => Language::Greek,
        "hu" => Language::Hungarian,
        "it" => Language::Italian,
        "no" | "nb" | "nn" => Language::Norwegian,
        "pt" => Language::Portuguese,
        "ro" => Language::Romanian,
        "ru" => Language::Russian,
        "es" => Language::Spanish,
        "sv" => Language::Swedish,
        "ta" => Language::Tamil,
        "tr" => Language::Turkish,
        _ => Language::English,
    };
    LanguageMode::Fixed(language)
}

/// What follows a word in its document: where a passage may end, and how to rejoin the words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Break {
    Word,
    Sentence,
    Line,
    Paragraph,
}

/// Cuts a document into passages of `MIN_PASSAGE_WORDS..=MAX_PASSAGE_WORDS` words (a shorter
/// document stays whole), preferring paragraph ends, then sentence or line ends.
pub fn chunk(text: &str) -> Vec<String> {
    let (words, breaks) = words_and_breaks(text);
    let n = words.len();
    let mut passages = Vec::new();
    let mut start = 0;
    while start < n {
        let end = if n - start <= MAX_PASSAGE_WORDS {
            n
        } else {
            // Never leave a remainder too short to stand alone.
            let range = start + MIN_PASSAGE_WORDS..=(start + MAX_PASSAGE_WORDS).min(n - MIN_PASSAGE_WORDS);
            let after = |end: usize| breaks[end - 1];
            range
                .clone()
                .find(|&end| after(end) == Break::Paragraph)
                .or_else(|| range.clone().rev().find(|&end| after(end) > Break::Word))
                .unwrap_or(*range.end())
        };
        passages.push(join(&words[start..end], &breaks[start..end]));
        start = end;
    }
    passages
}

fn words_and_breaks(text: &str) -> (Vec<&str>, Vec<Break>) {
    let (mut words, mut breaks) = (Vec::new(), Vec::new());
    for line in text.lines() {
        if line.trim().is_empty() {
            if let Some(last) = breaks.last_mut() {
                *last = Break::Paragraph;
            }
            continue;
        }
        for word in line.split_whitespace() {
            words.push(word);
            breaks.push(if ends_sentence(word) { Break::Sentence } else { Break::Word });
        }
        if let Some(last) = breaks.last_mut() {
            *last = (*last).max(Break::Line);
        }
    }
    (words, breaks)
}

fn ends_sentence(word: &str) -> bool {
    word.trim_end_matches(['"', '\'', ')', '»', '”']).ends_with(['.', '!', '?', ':', ';'])
}

fn join(words: &[&str], breaks: &[Break]) -> String {
    let mut text = String::with_capacity(words.iter().map(|w| w.len() + 1).sum());
    for (word, brk) in words.iter().zip(breaks) {
        text.push_str(word);
        // Lines are kept: knowledge bases list hours and prices one per line.
        text.push(if *brk >= Break::Line { '\n' } else { ' ' });
    }
    text.truncate(text.trim_end().len());
    text
}

struct Entry {
    title: Arc<str>,
    text: String,
}

/// A tenant's passages with their BM25 index.
pub struct KnowledgeIndex {
    // The engine's two halves rather than `bm25::SearchEngine`: that one keeps a second copy of
    // every passage, clones each match's text, and breaks score ties in hash order.
    embedder: Embedder<u32, DefaultTokenizer>,
    scorer: Scorer<u32, u32>,
    // Titles again, as a field of their own: a title names the topic ("Opening hours") that its
    // text often never repeats, and a short field matched outweighs a word in a long text.
    titles: Scorer<u32, u32>,
    passages: Vec<Entry>,
}

impl fmt::Debug for KnowledgeIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnowledgeIndex").field("passages", &self.passages.len()).finish_non_exhaustive()
    }
}

impl KnowledgeIndex {
    /// An index with English stemming and stop words.
    pub fn build(docs: &[KnowledgeDoc]) -> Self {
        Self::build_in(docs, "en")
    }

    /// An index with the stemming and stop words of `language` (BCP 47).
    pub fn build_in(docs: &[KnowledgeDoc], language: &str) -> Self {
        let passages: Vec<Entry> = docs
            .iter()
            .flat_map(|doc| {
                let title: Arc<str> = doc.title.trim().into();
                chunk(&doc.text).into_iter().map(move |text| Entry { title: title.clone(), text })
            })
            .collect();
        let bodies: Vec<String> = passages.iter().map(|p| format!("{}\n{}", p.title, p.text)).collect();
        let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let titles: Vec<&str> = passages.iter().map(|p| &*p.title).collect();
        let fit = |corpus: &[&str]| {
            let tokenizer = DefaultTokenizer::new(language_mode(language));
            let embedder =
                EmbedderBuilder::<u32, DefaultTokenizer>::with_tokenizer_and_fit_to_corpus(tokenizer, corpus).build();
            let mut scorer = Scorer::new();
            for (id, text) in corpus.iter().enumerate() {
                scorer.upsert(&(id as u32), embedder.embed(text));
            }
            (embedder, scorer)
        };
        let (embedder, scorer) = fit(&bodies);
        let (_, titles) = fit(&titles);
        Self { embedder, scorer, titles, passages }
    }

    /// The `k` best passages for `query`, best first; only those sharing a term with it.
    pub fn search(&self, query: &str, k: usize) -> Vec<Passage> {
        if k == 0 || self.passages.is_empty() {
            return Vec::new();
        }
        // The same tokenizer for both fields, so one query embedding serves both (BM25 uses only
        // the query's terms, not its weights).
        let query = self.embedder.embed(query);
        let mut matches = self.scorer.matches(&query);
        for m in &mut matches {
            // Bodies hold their title, so every title match is among the body matches.
            m.score += self.titles.score(&m.id, &query).unwrap_or(0.0);
        }
        matches.retain(|m| m.score > 0.0);
        // Ties by position in the knowledge base, so the same question gets the same prompt.
        matches.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        matches
            .iter()
            .take(k)
            .map(|m| {
                let entry = &self.passages[m.id as usize];
                Passage { title: entry.title.to_string(), text: entry.text.clone(), score: m.score }
            })
            .collect()
    }

    /// How many passages the knowledge base was cut into.
    pub fn len(&self) -> usize {
        self.passages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }
}

/// Built indexes kept across warm invocations: one per tenant, for the version asked last, so a
/// tenant's index is built once per knowledge-base version. Bounded: the least recently used
/// tenant makes room.
pub struct KnowledgeCache {
    capacity: usize,
    slots: Mutex<Slots>,
    builds: AtomicU64,
}

#[derive(Default)]
struct Slots {
    clock: u64,
    by_tenant: HashMap<TenantId, Slot>,
}

struct Slot {
    version: String,
    language: String,
    // Shared by every caller of the same key, so concurrent misses build once.
    index: Arc<OnceCell<Arc<KnowledgeIndex>>>,
    used: u64,
}

impl Default for KnowledgeCache {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_TENANTS)
    }
}

impl fmt::Debug for KnowledgeCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnowledgeCache")
            .field("capacity", &self.capacity)
            .field("builds", &self.builds())
            .finish_non_exhaustive()
    }
}

impl KnowledgeCache {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), slots: Mutex::default(), builds: AtomicU64::new(0) }
    }

    /// The tenant's index for `version` (English), calling `load` for its documents only when
    /// it is not built yet.
    pub async fn get_or_build<F, Fut, E>(
        &self,
        tenant: &TenantId,
        version: &str,
        load: F,
    ) -> Result<Arc<KnowledgeIndex>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<KnowledgeDoc>, E>>,
    {
        self.get_or_build_in(tenant, version, "en", load).await
    }

    /// As `get_or_build`, with the stemming of `language`; a change of language rebuilds.
    pub async fn get_or_build_in<F, Fut, E>(
        &self,
        tenant: &TenantId,
        version: &str,
        language: &str,
        load: F,
    ) -> Result<Arc<KnowledgeIndex>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<KnowledgeDoc>, E>>,
    {
        let cell = self.cell(tenant, version, language);
        let index = cell
            .get_or_try_init(|| async {
                let docs = load().await?;
                self.builds.fetch_add(1, Ordering::Relaxed);
                Ok(Arc::new(KnowledgeIndex::build_in(&docs, language)))
            })
            .await?;
        Ok(index.clone())
    }

    /// How many indexes were built so far.
    pub fn builds(&self) -> u64 {
        self.builds.load(Ordering::Relaxed)
    }

    /// The slot's cell for this key, replacing the tenant's slot when its version differs.
    fn cell(&self, tenant: &TenantId, version: &str, language: &str) -> Arc<OnceCell<Arc<KnowledgeIndex>>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.clock += 1;
        let now = slots.clock;
        if let Some(slot) = slots.by_tenant.get_mut(tenant)
            && slot.version == version
            && slot.language == language
        {
            slot.used = now;
            return slot.index.clone();
        }
        if !slots.by_tenant.contains_key(tenant) && slots.by_tenant.len() >= self.capacity {
            let oldest = slots.by_tenant.iter().min_by_key(|(_, s)| s.used).map(|(t, _)| t.clone());
            if let Some(oldest) = oldest {
                slots.by_tenant.remove(&oldest);
            }
        }
        let index = Arc::new(OnceCell::new());
        let slot = Slot { version: version.to_owned(), language: language.to_owned(), index: index.clone(), used: now };
        slots.by_tenant.insert(tenant.clone(), slot);
        index
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn doc(title: &str, text: &str) -> KnowledgeDoc {
        KnowledgeDoc { title: title.into(), text: text.into() }
    }

    fn shop() -> Vec<KnowledgeDoc> {
        vec![
            doc(
                "Returns",
                "Items can be returned within 30 days, even when the box was opened. \
                 Open a return from your order page and we send a prepaid label.",
            ),
            doc("Opening hours", "Monday to Friday 09:00-18:00.\nSaturday 10:00-14:00.\nClosed on Sundays."),
            doc("Delivery", "We deliver within two working days. Parcels can be opened at the door to check them."),
        ]
    }

    fn words(n: usize, sentence: usize) -> String {
        (1..=n)
            .map(|i| if i % sentence == 0 { format!("w{i}.") } else { format!("w{i}") })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn a_title_wins_for_a_question_its_text_never_answers_in_those_words() {
        let index = KnowledgeIndex::build(&shop());
        for question in ["when are you open?", "opening hours?", "What are your hours on Saturday"] {
            let found = index.search(question, 3);
            assert_eq!(found[0].title, "Opening hours", "{question}: {found:?}");
        }
        let found = index.search("can I send it back after opening", 2);
        assert!(found.len() <= 2 && found.windows(2).all(|w| w[0].score >= w[1].score));
        assert!(found.iter().all(|p| p.score > 0.0));
    }

    #[test]
    fn passages_keep_their_lines_and_unknown_words_match_nothing() {
        let index = KnowledgeIndex::build(&shop());
        assert_eq!(index.len(), 3);
        let hours = &index.search("saturday", 1)[0];
        assert_eq!(hours.text, "Monday to Friday 09:00-18:00.\nSaturday 10:00-14:00.\nClosed on Sundays.");
        assert!(index.search("xylophone", 5).is_empty());
        assert!(index.search("the", 5).is_empty(), "stop words alone match nothing");
    }

    #[test]
    fn passages_stay_within_bounds_and_lose_no_word() {
        for (n, sentence) in [(10, 4), (39, 5), (121, 7), (130, 200), (250, 9), (1000, 13), (333, 1)] {
            let text = words(n, sentence);
            let passages = chunk(&text);
            for p in &passages {
                let count = p.split_whitespace().count();
                assert!(count <= MAX_PASSAGE_WORDS, "{n}: {count}");
                assert!(count >= MIN_PASSAGE_WORDS.min(n), "{n}: {count}");
            }
            let rejoined: Vec<&str> = passages.iter().flat_map(|p| p.split_whitespace()).collect();
            assert_eq!(rejoined, text.split_whitespace().collect::<Vec<_>>());
        }
        assert_eq!(chunk("Short doc.").len(), 1);
        assert!(chunk("  \n\n ").is_empty());
    }

    #[test]
    fn passages_end_at_paragraphs_then_sentences() {
        // Two 60-word paragraphs: one passage each, not one cut at 120 words.
        let text = format!("{}\n\n{}", words(60, 10), words(60, 10).replace('w', "v"));
        let passages = chunk(&format!("{text}\n\n{}", words(30, 10).replace('w', "u")));
        assert!(passages[0].ends_with("w60.") && passages[1].starts_with("v1 "), "{passages:?}");
        // Without paragraphs, a cut falls after a sentence.
        let passages = chunk(&words(200, 25));
        assert!(passages.iter().all(|p| p.ends_with('.')), "{passages:?}");
    }

    #[test]
    fn every_passage_carries_its_document_title() {
        let long = doc("Warranty", &words(300, 10));
        let index = KnowledgeIndex::build(&[long]);
        assert!(index.len() >= 3);
        let found = index.search("warranty", 10);
        assert_eq!(found.len(), index.len());
        assert!(found.iter().all(|p| p.title == "Warranty"));
    }

    #[test]
    fn an_empty_knowledge_base_finds_nothing() {
        let index = KnowledgeIndex::build(&[]);
        assert!(index.is_empty());
        assert!(index.search("opening hours", 4).is_empty());
        assert_eq!(KnowledgeIndex::build(&[doc("Empty", " ")]).len(), 0);
    }

    #[test]
    fn the_tenants_language_stems_its_words() {
        let docs = [doc("Citas", "Las reservas se hacen por teléfono.")];
        let spanish = KnowledgeIndex::build_in(&docs, "es-ES");
        assert_eq!(spanish.search("¿Puedo reservar?", 1).len(), 1);
        assert!(KnowledgeIndex::build_in(&docs, "en").search("¿Puedo reservar?", 1).is_empty());
    }

    #[test]
    fn the_version_changes_with_any_title_or_text_and_with_order() {
        let docs = shop();
        let v = version(&docs);
        assert_eq!(v, version(&shop()));
        assert_eq!(v.len(), 32);
        let mut retitled = shop();
        retitled[1].title.push('!');
        let mut edited = shop();
        edited[2].text.push('!');
        let mut reordered = shop();
        reordered.swap(0, 1);
        let split = vec![doc("ab", "c")];
        let joined = vec![doc("a", "bc")];
        for other in [version(&retitled), version(&edited), version(&reordered), version(&[])] {
            assert_ne!(v, other);
        }
        assert_ne!(version(&split), version(&joined));
    }

    async fn get(
        cache: &KnowledgeCache,
        tenant: &TenantId,
        docs: Vec<KnowledgeDoc>,
        loads: &AtomicUsize,
    ) -> Arc<KnowledgeIndex> {
        let v = version(&docs);
        cache
            .get_or_build(tenant, &v, || async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(docs)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_cache_builds_once_per_version_and_rebuilds_on_a_new_one() {
        let cache = KnowledgeCache::default();
        let loads = AtomicUsize::new(0);
        let acme = TenantId::parse("acme").unwrap();
        let first = get(&cache, &acme, shop(), &loads).await;
        let again = get(&cache, &acme, shop(), &loads).await;
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!((cache.builds(), loads.load(Ordering::SeqCst)), (1, 1));
        let mut edited = shop();
        edited.push(doc("Parking", "Free parking behind the shop."));
        let newer = get(&cache, &acme, edited, &loads).await;
        assert_eq!((cache.builds(), newer.len()), (2, 4));
        assert!(!newer.search("parking", 1).is_empty() && first.search("parking", 1).is_empty());
    }

    #[tokio::test]
    async fn tenants_never_share_an_index_even_with_the_same_version() {
        let cache = KnowledgeCache::default();
        let loads = AtomicUsize::new(0);
        let (a, b) = (TenantId::parse("alpha").unwrap(), TenantId::parse("beta").unwrap());
        let of_a = get(&cache, &a, shop(), &loads).await;
        let of_b = cache
            .get_or_build(&b, &version(&shop()), || async { Ok::<_, Infallible>(vec![doc("Beta", "Only beta.")]) })
            .await
            .unwrap();
        assert!(!Arc::ptr_eq(&of_a, &of_b));
        assert_eq!((of_b.len(), cache.builds()), (1, 2));
        // And a's entry is still a's.
        assert!(Arc::ptr_eq(&of_a, &get(&cache, &a, shop(), &loads).await));
    }

    #[tokio::test]
    async fn concurrent_misses_build_once_and_failures_are_not_cached() {
        let cache = KnowledgeCache::default();
        let loads = AtomicUsize::new(0);
        let acme = TenantId::parse("acme").unwrap();
        let slow = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok::<_, Infallible>(shop())
        };
        let (x, y) = tokio::join!(cache.get_or_build(&acme, "v1", slow), cache.get_or_build(&acme, "v1", slow));
        assert!(Arc::ptr_eq(&x.unwrap(), &y.unwrap()));
        assert_eq!((cache.builds(), loads.load(Ordering::SeqCst)), (1, 1));

        let failed = cache.get_or_build(&acme, "v2", || async { Err::<Vec<KnowledgeDoc>, _>("dynamo down") }).await;
        assert_eq!(failed.unwrap_err(), "dynamo down");
        let retried = cache.get_or_build(&acme, "v2", || async { Ok::<_, &str>(shop()) }).await.unwrap();
        assert_eq!((retried.len(), cache.builds()), (3, 2));
    }

    #[tokio::test]
    async fn the_least_recently_used_tenant_makes_room() {
        let cache = KnowledgeCache::new(2);
        let loads = AtomicUsize::new(0);
        let [a, b, c] = ["a", "b", "c"].map(|t| TenantId::parse(t).unwrap());
        get(&cache, &a, shop(), &loads).await;
        get(&cache, &b, shop(), &loads).await;
        get(&cache, &a, shop(), &loads).await; // a is now the more recent
        get(&cache, &c, shop(), &loads).await; // evicts b
        assert_eq!(cache.builds(), 3);
        get(&cache, &a, shop(), &loads).await;
        assert_eq!(cache.builds(), 3);
        get(&cache, &b, shop(), &loads).await;
        assert_eq!(cache.builds(), 4);
    }
}
