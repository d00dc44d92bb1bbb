//! A tenant's settings for the assistant, as the tenants file states them and as they are
//! stored in the tenant's profile. Every field is optional in the file; the defaults are what a
//! business that wrote nothing would expect. These types read stored profiles too, so they accept
//! fields they do not know (a newer loader may have written them); the tenants file refuses
//! unknown fields on its own (`file.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Days of the week, as the file names them.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The burst quiet window is capped: a customer must not wait long for an answer.
pub const MAX_QUIET_WINDOW_MS: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantSettings {
    /// IANA time zone of the business: opening hours and slots are in it.
    pub timezone: String,
    /// ISO 3166 alpha-2 country for numbers written without `+` (e.g. Shopify's `555-625-1199`).
    /// Absent: the country of the tenant's own WhatsApp number.
    pub default_country: Option<String>,
    /// The language the assistant answers in when the customer's is unclear (BCP 47, e.g. `en`, `de-AT`).
    pub language: String,
    /// How the assistant presents itself (prepended to every prompt).
    pub persona: Option<String>,
    /// Opening hours per weekday (`mon` … `sun`), each a list of `HH:MM-HH:MM`; a day not
    /// listed is closed.
    pub opening_hours: BTreeMap<String, Vec<String>>,
    pub booking: BookingSettings,
    /// Keywords per language, added to the built-in ones.
    pub keywords: BTreeMap<String, KeywordSet>,
    pub burst: BurstSettings,
    /// What to send outside the 24-hour window, when anything: an approved template.
    pub outside_window_template: Option<TemplateRef>,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
            default_country: None,
            language: "en".into(),
            persona: None,
            opening_hours: BTreeMap::new(),
            booking: BookingSettings::default(),
            keywords: BTreeMap::new(),
            burst: BurstSettings::default(),
            outside_window_template: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BookingSettings {
    /// Length of one bookable slot.
    pub slot_minutes: u16,
    /// How far ahead customers may book.
    pub horizon_days: u16,
    /// What can be booked, and for how long (a service takes as many slots as it needs).
    pub services: Vec<Service>,
}

impl Default for BookingSettings {
    fn default() -> Self {
        Self { slot_minutes: 30, horizon_days: 30, services: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub minutes: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeywordSet {
    pub opt_out: Vec<String>,
    pub opt_in: Vec<String>,
    pub handoff: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BurstSettings {
    /// Messages from one contact this close together get one answer.
    pub quiet_window_ms: u32,
}

impl Default for BurstSettings {
    fn default() -> Self {
        Self { quiet_window_ms: 2_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRef {
    pub name: String,
    /// The template's language code, e.g. `en_US`.
    pub language: String,
}

/// `HH:MM-HH:MM` as minutes since midnight, start before end.
pub fn parse_interval(text: &str) -> Option<(u16, u16)> {
    let (start, end) = text.split_once('-')?;
    let minutes = |t: &str| {
        let t = t.trim();
        let time: jiff::civil::Time = t.parse().ok()?;
        (t.len() == 5).then(|| time.hour() as u16 * 60 + time.minute() as u16)
    };
    let (start, end) = (minutes(start)?, minutes(end)?);
    (start < end).then_some((start, end))
}

impl TenantSettings {
    /// Checks everything a person could get wrong, with a message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        jiff::tz::TimeZone::get(&self.timezone)
            .map_err(|_| format!("timezone: {:?} is not an IANA time zone (e.g. Europe/Madrid)", self.timezone))?;
        if let Some(country) = &self.default_country {
            country_id(country).ok_or_else(|| {
                format!("default_country: {country:?} is not an ISO 3166 alpha-2 country code (e.g. ES)")
            })?;
        }
        if !is_language_tag(&self.language) {
            return Err(format!("language: {:?} is not a language tag (e.g. en, de-AT)", self.language));
        }
        if self.persona.as_ref().is_some_and(|p| p.len() > 4_000) {
            return Err("persona: at most 4,000 characters".into());
        }
        for (day, intervals) in &self.opening_hours {
            if !WEEKDAYS.contains(&day.as_str()) {
                return Err(format!("opening_hours: {day:?} is not one of {}", WEEKDAYS.join(", ")));
            }
            let mut parsed = intervals
                .iter()
                .map(|i| parse_interval(i).ok_or_else(|| format!("opening_hours.{day}: {i:?} is not HH:MM-HH:MM")))
                .collect::<Result<Vec<_>, _>>()?;
            parsed.sort();
            if parsed.windows(2).any(|w| w[0].1 > w[1].0) {
                return Err(format!("opening_hours.{day}: intervals overlap"));
            }
        }
        let b = &self.booking;
        if !(5..=480).contains(&b.slot_minutes) || 1440 % b.slot_minutes != 0 {
            return Err("booking.slot_minutes: between 5 and 480, dividing a day evenly (e.g. 15, 30, 60)".into());
        }
        if !(1..=365).contains(&b.horizon_days) {
            return Err("booking.horizon_days: between 1 and 365".into());
        }
        for s in &b.services {
            if s.name.trim().is_empty() || s.minutes == 0 || s.minutes % b.slot_minutes != 0 || s.minutes > 1440 {
                return Err(format!(
                    "booking.services: {:?} needs a name and a duration that is a multiple of slot_minutes ({})",
                    s.name, b.slot_minutes
                ));
            }
        }
        for (language, set) in &self.keywords {
            if !is_language_tag(language) {
                return Err(format!("keywords: {language:?} is not a language tag"));
            }
            if set.opt_out.iter().chain(&set.opt_in).chain(&set.handoff).any(|k| k.trim().is_empty() || k.len() > 64) {
                return Err(format!("keywords.{language}: keywords must be 1-64 characters"));
            }
        }
        if self.burst.quiet_window_ms > MAX_QUIET_WINDOW_MS {
            return Err(format!("burst.quiet_window_ms: at most {MAX_QUIET_WINDOW_MS}"));
        }
        if let Some(t) = &self.outside_window_template
            && (t.name.trim().is_empty() || t.language.trim().is_empty())
        {
            return Err("outside_window_template: needs a name and a language".into());
        }
        Ok(())
    }
}

/// An ISO 3166 alpha-2 code that has a calling code.
pub fn country_id(code: &str) -> Option<phonenumber::country::Id> {
    (code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())).then(|| code.parse().ok()).flatten()
}

/// A phone number as a person writes it: an international one (`+…`, `00…`) as written, any
/// other in the tenant's country. The international form is read without the country: given
/// one, the parser strips what it takes for that country's trunk prefix from the international
/// number too (`+49 151…` read in the US lost its `1`).
pub fn read_phone(text: &str, default_country: Option<&str>) -> Option<phonenumber::PhoneNumber> {
    let text = text.trim();
    let (country, text) = match (text.strip_prefix('+'), text.strip_prefix("00")) {
        (Some(_), _) => (None, text.to_owned()),
        (None, Some(rest)) => (None, format!("+{rest}")),
        (None, None) => (default_country.and_then(country_id), text.to_owned()),
    };
    phonenumber::parse(country, text).ok()
}

/// The country of a phone number in E.164 (`+34600111222` → `ES`).
pub fn country_of(e164: &str) -> Option<String> {
    let number = phonenumber::parse(None, e164).ok()?;
    number.country().id().map(|id| format!("{id:?}"))
}

fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split(['-', '_']);
    let primary = parts.next().unwrap_or_default();
    (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_lowercase())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_sensible() {
        let d = TenantSettings::default();
        assert!(d.validate().is_ok());
        assert_eq!((d.timezone.as_str(), d.language.as_str(), d.burst.quiet_window_ms), ("UTC", "en", 2_000));
        assert_eq!(d.booking.slot_minutes, 30);
    }

    #[test]
    fn each_mistake_is_named() {
        let check = |f: fn(&mut TenantSettings), field: &str| {
            let mut s = TenantSettings::default();
            f(&mut s);
            let err = s.validate().unwrap_err();
            assert!(err.starts_with(field), "{err}");
        };
        check(|s| s.timezone = "Mars/Olympus".into(), "timezone");
        check(|s| s.default_country = Some("XX".into()), "default_country");
        check(|s| s.default_country = Some("es".into()), "default_country");
        check(|s| s.language = "English".into(), "language");
        check(
            |s| {
                s.opening_hours.insert("monday".into(), vec![]);
            },
            "opening_hours",
        );
        check(
            |s| {
                s.opening_hours.insert("mon".into(), vec!["9-17".into()]);
            },
            "opening_hours.mon",
        );
        check(
            |s| {
                s.opening_hours.insert("mon".into(), vec!["09:00-13:00".into(), "12:00-18:00".into()]);
            },
            "opening_hours.mon",
        );
        check(|s| s.booking.slot_minutes = 7, "booking.slot_minutes");
        check(|s| s.booking.services = vec![Service { name: "Cut".into(), minutes: 45 }], "booking.services");
        check(|s| s.burst.quiet_window_ms = 60_000, "burst.quiet_window_ms");
        check(
            |s| {
                s.keywords.insert("en".into(), KeywordSet { opt_out: vec![" ".into()], ..Default::default() });
            },
            "keywords.en",
        );
    }

    #[test]
    fn intervals_and_countries() {
        assert_eq!(parse_interval("08:00-18:30"), Some((480, 1110)));
        assert_eq!(parse_interval("18:00-08:00"), None);
        assert_eq!(country_of("+34600111222").as_deref(), Some("ES"));
        assert_eq!(country_of("+14155550100").as_deref(), Some("US"));
        assert!(country_id("DE").is_some());
    }
}
