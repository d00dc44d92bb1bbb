//! Redaction before any model call: a customer's emails, phone numbers, card numbers, IBANs and
//! order ids reach a model provider only as placeholders (`[EMAIL_1]`), and are put back in the
//! answer and in tool arguments. Each recogniser checks what it finds (Luhn, mod-97, the shape of
//! a phone number) so that ordinary content — times, prices, dates — reaches the model intact.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::ops::Range;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What a placeholder stands for. Declared in the order spans are claimed: a span a stronger kind
/// took is not looked at again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Email,
    Iban,
    Card,
    Order,
    Phone,
}

impl Kind {
    const ALL: [Kind; 5] = [Kind::Email, Kind::Iban, Kind::Card, Kind::Order, Kind::Phone];

    fn label(self) -> &'static str {
        match self {
            Kind::Email => "EMAIL",
            Kind::Iban => "IBAN",
            Kind::Card => "CARD",
            Kind::Order => "ORDER",
            Kind::Phone => "PHONE",
        }
    }

    fn from_label(label: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.label() == label)
    }

    /// The form two spellings of one value share, so history and the current message agree.
    fn normalise(self, original: &str) -> String {
        match self {
            Kind::Email => original.to_lowercase(),
            Kind::Phone | Kind::Card => original.chars().filter(char::is_ascii_digit).collect(),
            Kind::Iban | Kind::Order => {
                original.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect()
            }
        }
    }
}

/// The placeholders of one conversation and what they stand for. Holds personal data: `Debug`
/// shows counts only.
#[derive(Default, Clone)]
pub struct Vault {
    /// Per kind (`Kind as usize`), the originals in order: placeholder `n` is at `n - 1`.
    originals: [Vec<String>; 5],
    numbers: HashMap<(Kind, String), usize>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Vault");
        for kind in Kind::ALL {
            s.field(kind.label(), &self.originals[kind as usize].len());
        }
        s.finish()
    }
}

impl Vault {
    /// `text` with every recognised value replaced by its placeholder. A value seen before (in any
    /// spelling that normalises alike) gets the placeholder it got then.
    pub fn redact(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for claim in claims(text) {
            let Some(kind) = claim.kind else { continue };
            out.push_str(&text[last..claim.span.start]);
            let n = self.number(kind, &text[claim.span.clone()]);
            let _ = write!(out, "[{}_{n}]", kind.label());
            last = claim.span.end;
        }
        out.push_str(&text[last..]);
        out
    }

    /// `text` with every placeholder of this vault replaced by its original (the spelling first
    /// seen). Placeholder-like text the vault does not know is left as it is.
    pub fn restore(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_owned();
        }
        PLACEHOLDER
            .replace_all(text, |c: &Captures| match self.original(&c[1], &c[2]) {
                Some(original) => original.to_owned(),
                None => c[0].to_owned(),
            })
            .into_owned()
    }

    /// Restores every string inside a JSON value, e.g. a tool call's arguments, so a captured lead
    /// gets the real email.
    pub fn restore_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => *s = self.restore(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.restore_json(v)),
            serde_json::Value::Object(fields) => fields.values_mut().for_each(|v| self.restore_json(v)),
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many distinct values the vault holds.
    pub fn len(&self) -> usize {
        self.originals.iter().map(Vec::len).sum()
    }

    fn number(&mut self, kind: Kind, original: &str) -> usize {
        let key = (kind, kind.normalise(original));
        if let Some(&n) = self.numbers.get(&key) {
            return n;
        }
        let originals = &mut self.originals[kind as usize];
        originals.push(original.to_owned());
        self.numbers.insert(key, originals.len());
        originals.len()
    }

    fn original(&self, label: &str, number: &str) -> Option<&str> {
        let kind = Kind::from_label(label)?;
        let n: usize = number.parse().ok()?;
        self.originals[kind as usize].get(n.checked_sub(1)?).map(String::as_str)
    }
}

static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[(EMAIL|IBAN|CARD|ORDER|PHONE)_([0-9]{1,9})\]").expect("placeholder pattern"));

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}").expect("email pattern")
});

/// Country code, check digits and up to 30 BBAN characters, single spaces allowed between them.
static IBAN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z]{2}[0-9]{2}(?: ?[A-Za-z0-9]){11,30}").expect("iban pattern"));

/// Dates and times are claimed (and kept) before cards and phones look: `2026-03-02 09:30` is
/// ten digits with separators, which would otherwise pass for a phone number.
static DATE_OR_TIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}",
        r"|[0-9]{1,2}[-/.][0-9]{1,2}[-/.](?:[0-9]{4}|[0-9]{2})",
        r"|[0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?",
    ))
    .expect("date pattern")
});

static CARD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[0-9](?:[ -]?[0-9]){12,18}").expect("card pattern"));

/// `order 12345`, `order no. 12345`, `Bestellung Nr. 12345`, `pedido nº 12345` (the id alone is
/// replaced, the word stays for the model); `#1001`; `ORD-12345`, `ORDER-AB12CD`.
static ORDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)\b(?:orders?|bestellung|bestellnummer|auftrag|pedido|encomenda|commande|ordine|bestelling)",
        r"\s*(?P<marker>(?:(?:number|nummer|numero|num|nr|no|n)\b\.?\s*[°º]?|n[°º]\.?|\#|:)\s*:?)?",
        r"\s*(?P<id>\#?[0-9a-z]+(?:-[0-9a-z]+)*)",
        r"|(?P<hash>\#[0-9]{3,12})",
        r"|\b(?P<code>ord(?:er)?-[0-9a-z]+(?:-[0-9a-z]+)*)",
    ))
    .expect("order pattern")
});

/// Digit groups with the separators people write: `+34 600 11 12 22`, `(555) 625-1199`,
/// `+49 (0)151-1234 5678`. Whether a match is a phone number is decided by `phone`.
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    let sep = r"(?: ?[./-] ?| {1,2})";
    let area = r"\([0-9]{1,5}\) ?";
    let pattern = format!(r"\+?(?:{area})?[0-9]{{1,15}}(?:{sep}?{area}[0-9]{{1,15}}|{sep}[0-9]{{1,15}}){{0,7}}");
    Regex::new(&pattern).expect("phone pattern")
});

/// A span of the text and what it holds; `None`: a date or time, kept as it is.
struct Claim {
    span: Range<usize>,
    kind: Option<Kind>,
}

/// Every span to replace or keep, in text order, none overlapping.
fn claims(text: &str) -> Vec<Claim> {
    let mut claims = Vec::new();
    scan(text, &mut claims, Some(Kind::Email), &EMAIL, |_, c| c.get(0).map(|m| m.range()));
    scan(text, &mut claims, Some(Kind::Iban), &IBAN, iban);
    scan(text, &mut claims, None, &DATE_OR_TIME, date_or_time);
    scan(text, &mut claims, Some(Kind::Card), &CARD, card);
    scan(text, &mut claims, Some(Kind::Order), &ORDER, order);
    scan(text, &mut claims, Some(Kind::Phone), &PHONE, phone);
    claims
}

/// Runs `regex` over the text not claimed yet and claims what `accept` keeps (perhaps a part of
/// the match).
fn scan(
    text: &str,
    claims: &mut Vec<Claim>,
    kind: Option<Kind>,
    regex: &Regex,
    accept: impl Fn(&str, &Captures) -> Option<Range<usize>>,
) {
    let mut gaps = Vec::with_capacity(claims.len() + 1);
    let mut start = 0;
    for claim in claims.iter() {
        gaps.push(start..claim.span.start);
        start = claim.span.end;
    }
    gaps.push(start..text.len());

    for gap in gaps {
        // Cut at the gap's end so no match runs into a claimed span; the text before the gap
        // still counts for `\b`.
        let haystack = &text[..gap.end];
        let mut at = gap.start;
        while at < gap.end {
            let Some(caps) = regex.captures_at(haystack, at) else { break };
            let found = caps.get(0).expect("group 0").range();
            match accept(text, &caps).filter(|span| !span.is_empty()) {
                Some(span) => {
                    at = span.end;
                    claims.push(Claim { span, kind });
                }
                // Glued to a word on its left, the value may start further in; otherwise the
                // match as a whole was not one (a 16-digit run failing Luhn is no phone number).
                None if is_word(before(text, found.start)) => at = next_word(text, found.start),
                None => at = found.end,
            }
        }
    }
    claims.sort_by_key(|c| c.span.start);
}

/// The first position after `at` that follows a character that is not a letter or digit: a long
/// run is skipped whole rather than searched again from each of its characters.
fn next_word(text: &str, at: usize) -> usize {
    let mut chars = text[at..].char_indices();
    let Some((_, mut previous)) = chars.next() else { return text.len() };
    for (i, c) in chars {
        if !previous.is_alphanumeric() {
            return at + i;
        }
        previous = c;
    }
    text.len()
}

fn before(text: &str, at: usize) -> Option<char> {
    text[..at].chars().next_back()
}

fn after(text: &str, at: usize) -> Option<char> {
    text[at..].chars().next()
}

fn is_word(c: Option<char>) -> bool {
    c.is_some_and(char::is_alphanumeric)
}

/// The longest part of `span` that ends at one of `separators` (or at the span's end), is not
/// followed by a letter or digit, and that `valid` accepts: a greedy match may have run on into a
/// following number or word.
fn longest_valid(
    text: &str,
    span: Range<usize>,
    separators: &[char],
    valid: impl Fn(&str) -> bool,
) -> Option<Range<usize>> {
    let mut ends: Vec<usize> = text[span.clone()].match_indices(separators).map(|(i, _)| span.start + i).collect();
    ends.push(span.end);
    ends.into_iter().rev().map(|end| span.start..end).find(|r| !is_word(after(text, r.end)) && valid(&text[r.clone()]))
}

fn iban(text: &str, caps: &Captures) -> Option<Range<usize>> {
    let found = caps.get(0)?.range();
    if is_word(before(text, found.start)) {
        return None;
    }
    longest_valid(text, found, &[' '], iban_checks)
}

/// ISO 13616: 15 to 34 characters, and the number read with the first four characters moved to
/// the end (letters as 10–35) leaves 1 modulo 97.
fn iban_checks(candidate: &str) -> bool {
    let compact: Vec<u8> = candidate.bytes().filter(|b| *b != b' ').map(|b| b.to_ascii_uppercase()).collect();
    if !(15..=34).contains(&compact.len())
        || !compact[..2].iter().all(u8::is_ascii_uppercase)
        || !compact[2..4].iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    let mut remainder = 0u32;
    for &b in compact[4..].iter().chain(&compact[..4]) {
        remainder = match b {
            b'0'..=b'9' => (remainder * 10 + u32::from(b - b'0')) % 97,
            b'A'..=b'Z' => (remainder * 100 + u32::from(b - b'A') + 10) % 97,
            _ => return false,
        };
    }
    remainder == 1
}

fn card(text: &str, caps: &Captures) -> Option<Range<usize>> {
    let found = caps.get(0)?.range();
    // A number after '+' is a phone number; no card number starts with 0.
    if is_word(before(text, found.start))
        || before(text, found.start) == Some('+')
        || text[found.clone()].starts_with('0')
    {
        return None;
    }
    longest_valid(text, found, &[' ', '-'], |candidate| {
        let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
        (13..=19).contains(&digits.len()) && luhn(&digits)
    })
}

fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d })
        .sum();
    sum.is_multiple_of(10)
}

fn order(text: &str, caps: &Captures) -> Option<Range<usize>> {
    if let Some(m) = caps.name("hash") {
        let glued = is_word(before(text, m.start())) || before(text, m.start()) == Some('&'); // `&#1001;`
        return (!glued && !is_word(after(text, m.end()))).then(|| m.range());
    }
    let m = caps.name("id").or_else(|| caps.name("code"))?;
    let id = m.as_str().trim_start_matches('#');
    // Without a marker (`no.`, `#`, `:`) a short number is more likely a quantity: "order 500 flyers".
    let marked = caps.name("marker").is_some() || m.as_str().starts_with('#') || caps.name("code").is_some();
    let long_enough = id.len() >= if marked { 3 } else { 5 };
    (long_enough && id.bytes().any(|b| b.is_ascii_digit()) && !is_word(after(text, m.end()))).then(|| m.range())
}

fn date_or_time(text: &str, caps: &Captures) -> Option<Range<usize>> {
    let found = caps.get(0)?.range();
    // Digits glued on either side make this a piece of a longer number (`+34 12.12.2026 55`,
    // `06.12.34.56.78`), which the phone check must see whole.
    let mut left = text[..found.start].chars().rev();
    let glued_left = match left.next() {
        Some(c) if c.is_alphanumeric() || c == '+' => true,
        Some('.' | '-' | '/' | ':' | ' ') => left.next().is_some_and(|c| c.is_ascii_digit() || c == '+'),
        _ => false,
    };
    let mut right = text[found.end..].chars();
    let glued_right = match right.next() {
        Some(c) if c.is_alphanumeric() => true,
        Some('.' | '-' | '/' | ':') => right.next().is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    };
    if glued_left || glued_right {
        return None;
    }
    let matched = &text[found.clone()];
    let groups: Vec<&str> = matched.split(|c: char| !c.is_ascii_digit()).collect();
    let plausible = if matched.contains(':') {
        let n = |s: &str| s.parse::<u32>().unwrap_or(u32::MAX);
        n(groups[0]) <= 24 && groups[1..].iter().all(|g| n(g) <= 59)
    } else {
        groups.len() == 3 && is_date(groups[0], groups[1], groups[2])
    };
    plausible.then_some(found)
}

/// `2026-03-02`, `02/03/2026`, `24.12.2026`: day and month in either order, a four-digit year
/// first or a two- or four-digit year last.
fn is_date(a: &str, b: &str, c: &str) -> bool {
    let n = |s: &str| s.parse::<u32>().unwrap_or(u32::MAX);
    let day_month = |d: u32, m: u32| (1..=31).contains(&d) && (1..=12).contains(&m);
    match (a.len(), b.len(), c.len()) {
        (4, 1..=2, 1..=2) => day_month(n(c), n(b)),
        (1..=2, 1..=2, 2 | 4) => day_month(n(a), n(b)) || day_month(n(b), n(a)),
        _ => false,
    }
}

/// A run of digits in a phone candidate, with the separator text before it.
struct Group<'a> {
    digits: &'a str,
    separator: &'a str,
    in_parens: bool,
}

fn groups(candidate: &str) -> Vec<Group<'_>> {
    let mut out = Vec::new();
    let (mut i, mut last) = (0, 0);
    let bytes = candidate.as_bytes();
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let separator = &candidate[last..start];
            out.push(Group { digits: &candidate[start..i], separator, in_parens: separator.ends_with('(') });
            last = i;
        } else {
            i += 1;
        }
    }
    out
}

const CURRENCY_WORDS: [&str; 8] = ["eur", "euro", "euros", "usd", "gbp", "chf", "dollars", "pounds"];

fn phone(text: &str, caps: &Captures) -> Option<Range<usize>> {
    let found = caps.get(0)?.range();
    if is_word(before(text, found.start)) || is_word(after(text, found.end)) {
        return None;
    }
    let candidate = &text[found.clone()];
    let groups = groups(candidate);
    let plus = candidate.starts_with('+');
    let international = plus || candidate.starts_with("00");
    // `+49 (0)151…`: the trunk prefix in parentheses is not dialled from abroad.
    let trunk = |g: &Group| international && g.in_parens && g.digits == "0";
    let digits: usize = groups.iter().filter(|g| !trunk(g)).map(|g| g.digits.len()).sum();
    let allowed = if plus {
        7..=15
    } else if international {
        9..=17
    } else {
        7..=13
    };
    // Phone numbers come in groups of two or more digits, but for a country code or the like.
    let singles = groups.iter().filter(|g| g.digits.len() == 1 && !trunk(g)).count();
    if !allowed.contains(&digits) || singles > 1 {
        return None;
    }
    // A number written without country code is the kind that dates, year ranges and amounts look like.
    let national_lookalike =
        !international && (contains_date(&groups) || is_year_range(&groups) || is_amount(text, found.clone()));
    (!national_lookalike).then_some(found)
}

/// Three groups that read as a date and stand apart: `5 12.12.2026`, `2026-03-02 09`. A dotted run
/// that goes on (`06.12.34.56.78`) is a phone number.
fn contains_date(groups: &[Group]) -> bool {
    (0..groups.len().saturating_sub(2)).any(|i| {
        let separator = groups[i + 1].separator.trim();
        ["-", "/", "."].contains(&separator)
            && groups[i + 2].separator.trim() == separator
            && (i == 0 || groups[i].separator.trim() != separator)
            && groups.get(i + 3).is_none_or(|g| g.separator.trim() != separator)
            && is_date(groups[i].digits, groups[i + 1].digits, groups[i + 2].digits)
    })
}

fn is_year_range(groups: &[Group]) -> bool {
    let year = |g: &Group| g.digits.len() == 4 && (g.digits.starts_with("19") || g.digits.starts_with("20"));
    groups.len() == 2 && groups.iter().all(year)
}

fn is_amount(text: &str, span: Range<usize>) -> bool {
    let preceding = text[..span.start].trim_end().chars().next_back();
    let following = text[span.end..].trim_start();
    let word: String = following.chars().take_while(|c| c.is_alphabetic()).collect::<String>().to_lowercase();
    matches!(preceding, Some('€' | '$' | '£'))
        || following.starts_with(['%', '€', '$', '£'])
        || CURRENCY_WORDS.contains(&word.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn redacted(text: &str) -> String {
        Vault::default().redact(text)
    }

    #[test]
    fn emails_become_placeholders_and_come_back() {
        let mut vault = Vault::default();
        let text = "Write to Ana.Lopez+shop@mail.example.co.uk or bob@x.io.";
        let out = vault.redact(text);
        assert_eq!(out, "Write to [EMAIL_1] or [EMAIL_2].");
        assert_eq!(vault.restore(&out), text);
    }

    #[test]
    fn the_same_email_twice_gets_one_placeholder_across_messages() {
        let mut vault = Vault::default();
        assert_eq!(vault.redact("me: ana@shop.es"), "me: [EMAIL_1]");
        assert_eq!(vault.redact("again ANA@shop.es and ana@shop.es"), "again [EMAIL_1] and [EMAIL_1]");
        assert_eq!(vault.len(), 1);
    }

    #[test]
    fn phone_numbers_in_common_formats_are_redacted() {
        for phone in [
            "+34 600 11 12 22",
            "(555) 625-1199",
            "555-625-1199",
            "555.625.1199",
            "0151 12345678",
            "+49 (0)151-1234 5678",
            "0034600111222",
            "+4915112345678",
            "+33 6 12 34 56 78",
            "06.12.34.56.78",
        ] {
            assert_eq!(redacted(&format!("call me on {phone} please")), "call me on [PHONE_1] please", "{phone}");
        }
    }

    #[test]
    fn card_numbers_that_pass_luhn_are_redacted() {
        for card in ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "4111111111111111"] {
            assert_eq!(redacted(&format!("card {card}, thanks")), "card [CARD_1], thanks", "{card}");
        }
    }

    #[test]
    fn a_card_number_that_fails_luhn_is_left_alone() {
        let out = redacted("card 4111 1111 1111 1112");
        assert!(!out.contains("[CARD"), "{out}");
        assert!(out.contains("1112"), "{out}");
    }

    #[test]
    fn a_card_next_to_other_numbers_is_still_found() {
        assert_eq!(redacted("4111 1111 1111 1111 2026"), "[CARD_1] 2026");
        assert_eq!(redacted("ref12 4111 1111 1111 1111"), "ref12 [CARD_1]");
    }

    #[test]
    fn ibans_that_pass_mod_97_are_redacted() {
        for iban in [
            "ES91 2100 0418 4502 0005 1332",
            "DE89370400440532013000",
            "GB29 NWBK 6016 1331 9268 19",
            "es9121000418450200051332",
        ] {
            assert_eq!(redacted(&format!("IBAN: {iban} ok")), "IBAN: [IBAN_1] ok", "{iban}");
        }
    }

    #[test]
    fn an_iban_that_fails_mod_97_is_left_alone() {
        let text = "IBAN: DE89 3704 0044 0532 0130 01";
        assert!(!redacted(text).contains("[IBAN"), "{}", redacted(text));
    }

    #[test]
    fn order_ids_in_several_languages_are_redacted() {
        for (text, expected) in [
            ("where is #1001?", "where is [ORDER_1]?"),
            ("order 12345 is late", "order [ORDER_1] is late"),
            ("Order no. 12345 is late", "Order no. [ORDER_1] is late"),
            ("meine Bestellung 12345", "meine Bestellung [ORDER_1]"),
            ("Bestellung Nr. 4711", "Bestellung Nr. [ORDER_1]"),
            ("mi pedido 12345", "mi pedido [ORDER_1]"),
            ("pedido nº 123", "pedido nº [ORDER_1]"),
            ("ref ORD-12345 please", "ref [ORDER_1] please"),
            ("ORDER-AB12CD arrived", "[ORDER_1] arrived"),
            ("order #1001", "order #[ORDER_1]"),
        ] {
            assert_eq!(redacted(text), expected, "{text}");
        }
    }

    #[test]
    fn a_quantity_after_the_verb_order_is_not_an_order_id() {
        assert_eq!(redacted("I'd like to order 500 flyers"), "I'd like to order 500 flyers");
    }

    #[test]
    fn ordinary_numbers_are_not_redacted() {
        for text in [
            "We are open 8:00 to 18:00",
            "Can I come at 09:30?",
            "The cleaning costs 89 EUR",
            "That is 35.50 in total",
            "Is 2026-03-02 free?",
            "Is 02/03/2026 free?",
            "Is 24.12.2026 free?",
            "since 2019, 3 people, room 12",
            "Book the slot 2026-03-02 09:30 please",
            "slots: 2026-03-02 09:30, 2026-03-02 10:00 and 2026-03-03 11:30",
            "a 15% discount, 12.5 % off",
            "seasons 2025-2026",
            "a price of 1.250.000 EUR",
        ] {
            assert_eq!(redacted(text), text);
        }
    }

    #[test]
    fn a_stronger_kind_keeps_its_span() {
        // The email's digits would pass for a phone number; the IBAN's for a card.
        let mut vault = Vault::default();
        let out = vault.redact("600111222@example.com and ES91 2100 0418 4502 0005 1332");
        assert_eq!(out, "[EMAIL_1] and [IBAN_1]");
    }

    #[test]
    fn restore_replaces_repeated_placeholders_and_leaves_unknown_ones() {
        let mut vault = Vault::default();
        vault.redact("ana@shop.es, +34 600 11 12 22");
        let answer = "Sent to [EMAIL_1]; [EMAIL_1] is noted, [PHONE_1] too. [EMAIL_2] and [CARD_1] are not ours.";
        assert_eq!(
            vault.restore(answer),
            "Sent to ana@shop.es; ana@shop.es is noted, +34 600 11 12 22 too. [EMAIL_2] and [CARD_1] are not ours."
        );
    }

    #[test]
    fn restore_json_reaches_nested_strings() {
        let mut vault = Vault::default();
        vault.redact("I am ana@shop.es");
        let mut args = serde_json::json!({"lead": {"email": "[EMAIL_1]", "notes": ["call [EMAIL_1]", 3]}});
        vault.restore_json(&mut args);
        assert_eq!(args, serde_json::json!({"lead": {"email": "ana@shop.es", "notes": ["call ana@shop.es", 3]}}));
    }

    #[test]
    fn debug_shows_counts_not_values() {
        let mut vault = Vault::default();
        vault.redact("ana@shop.es +34 600 11 12 22");
        let printed = format!("{vault:?}");
        assert!(!printed.contains("ana") && !printed.contains("600"), "{printed}");
        assert!(printed.contains("EMAIL: 1") && printed.contains("PHONE: 1"), "{printed}");
    }

    #[test]
    fn everything_restores_to_the_original() {
        let text = "Hi, I'm ana@shop.es, +34 600 11 12 22, card 4111 1111 1111 1111, IBAN ES91 2100 0418 4502 0005 \
                    1332, about order 12345 on 2026-03-02 09:30 for 89 EUR.";
        let mut vault = Vault::default();
        let out = vault.redact(text);
        assert_eq!(
            out,
            "Hi, I'm [EMAIL_1], [PHONE_1], card [CARD_1], IBAN [IBAN_1], about order [ORDER_1] on 2026-03-02 09:30 \
             for 89 EUR."
        );
        assert_eq!(vault.len(), 5);
        assert_eq!(vault.restore(&out), text);
    }

    fn phone_number() -> impl Strategy<Value = String> {
        let separator = || prop::sample::select(vec![" ", "-", ".", ""]);
        ("[1-9][0-9]{0,2}", "[0-9]{8,11}", prop::collection::vec(separator(), 4)).prop_map(|(country, rest, seps)| {
            // Separators after the country code and after the 2nd, 4th and 6th digit.
            let mut phone = format!("+{country}{}", seps[0]);
            for (i, digit) in rest.chars().enumerate() {
                if let Some(sep) = [2, 4, 6].iter().position(|&p| p == i) {
                    phone.push_str(seps[sep + 1]);
                }
                phone.push(digit);
            }
            phone
        })
    }

    fn digits_only(s: &str) -> String {
        s.chars().filter(char::is_ascii_digit).collect()
    }

    proptest! {
        #[test]
        fn emails_and_phones_among_words_never_reach_the_model(
            words in prop::collection::vec("[a-zA-Z]{1,10}", 0..12),
            email in "[a-z][a-z0-9]{0,8}(\\.[a-z0-9]{1,5})?@[a-z]{2,10}\\.(com|es|de|org)",
            phone in phone_number(),
            email_at in 0usize..12,
            phone_at in 0usize..12,
        ) {
            let mut parts = words.clone();
            parts.insert(email_at.min(parts.len()), email.clone());
            parts.insert(phone_at.min(parts.len()), phone.clone());
            let text = parts.join(" ");

            let mut vault = Vault::default();
            let out = vault.redact(&text);
            prop_assert!(!out.contains(&email), "{}", out);
            prop_assert!(!digits_only(&out).contains(&digits_only(&phone)), "{}", out);
            prop_assert_eq!(vault.restore(&out), text);
        }

        #[test]
        fn redact_never_panics(text in "\\PC{0,200}", digits in "[0-9 +()./:#@a-zA-Z\\-éß€]{0,80}") {
            let mut vault = Vault::default();
            for t in [&text, &digits] {
                let out = vault.redact(t);
                let _ = vault.restore(&out);
            }
        }
    }
}
