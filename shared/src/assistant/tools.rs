//! The tools the model may call. Each acts for the conversation's own tenant and contact, and
//! nobody else: those are given by the worker, never read from the model's arguments, so a model
//! talked by customer text into "cancel appointment X of +34…" can only ever touch the
//! customer's own appointments. Arguments that do not parse or validate are an ordinary outcome:
//! the model gets an error result and tells the customer.

use serde::Deserialize;
use serde_json::{Value, json};

use super::booking::{Calendar, Opening, Unbookable};
use super::model::{ToolCall, ToolResult, ToolSpec};
use crate::domain::{Appointment, AppointmentStatus, ContactId, E164, Lead, LeadStage, RecordId};
use crate::privacy::{Expiry, retention::Category};
use crate::store::StoreError;
use crate::store::contacts::{AppointmentStore, Booking, LeadStore};
use crate::tenants::Tenant;

pub const CAPTURE_LEAD: &str = "capture_lead";
pub const CHECK_AVAILABILITY: &str = "check_availability";
pub const BOOK_APPOINTMENT: &str = "book_appointment";
pub const CANCEL_APPOINTMENT: &str = "cancel_appointment";
pub const HANDOFF_TO_HUMAN: &str = "handoff_to_human";
pub const NAMES: [&str; 5] = [CAPTURE_LEAD, CHECK_AVAILABILITY, BOOK_APPOINTMENT, CANCEL_APPOINTMENT, HANDOFF_TO_HUMAN];

/// How many free starts `check_availability` offers at most.
const OFFERED: usize = 6;

/// The tools on offer. Booking tools only when the tenant has opening hours to book against.
pub fn specs(tenant: &Tenant) -> Vec<ToolSpec> {
    let services: Vec<&str> = tenant.settings.booking.services.iter().map(|s| s.name.as_str()).collect();
    let service = if services.is_empty() {
        json!({"type": "string", "description": "What the appointment is for."})
    } else {
        json!({"type": "string", "enum": services})
    };
    let mut tools = vec![
        ToolSpec {
            name: CAPTURE_LEAD,
            description: "Record the customer's interest so the business can follow up. Call it when the customer \
                          shows buying interest or leaves contact details.",
            parameters: json!({"type": "object", "properties": {
                "name": {"type": "string"},
                "email": {"type": "string"},
                "phone": {"type": "string"},
                "interest": {"type": "string", "description": "What they are interested in."}
            }}),
        },
        ToolSpec {
            name: HANDOFF_TO_HUMAN,
            description: "Hand the conversation to a person at the business: when the customer asks for one, or \
                          when you cannot help.",
            parameters: json!({"type": "object", "properties": {"reason": {"type": "string"}}}),
        },
    ];
    if !tenant.settings.opening_hours.is_empty() {
        tools.extend([
            ToolSpec {
                name: CHECK_AVAILABILITY,
                description: "Free appointment times from a date on (YYYY-MM-DD, the business's time zone).",
                parameters: json!({"type": "object", "properties": {
                    "date": {"type": "string", "description": "YYYY-MM-DD; today when absent."},
                    "service": service.clone()
                }}),
            },
            ToolSpec {
                name: BOOK_APPOINTMENT,
                description: "Book an appointment for this customer at a free time.",
                parameters: json!({"type": "object", "required": ["date", "time"], "properties": {
                    "date": {"type": "string", "description": "YYYY-MM-DD"},
                    "time": {"type": "string", "description": "HH:MM, 24-hour, business time zone"},
                    "service": service
                }}),
            },
            ToolSpec {
                name: CANCEL_APPOINTMENT,
                description: "Cancel one of this customer's appointments (their next one when no id is given).",
                parameters: json!({"type": "object", "properties": {"appointment_id": {"type": "string"}}}),
            },
        ]);
    }
    tools
}

/// What a tool call changed, besides what it answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    None,
    LeadCaptured,
    Booked(Appointment),
    Cancelled(Appointment),
    Handoff { reason: Option<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub result: ToolResult,
    pub effect: Effect,
}

/// Who the tools act for: fixed by the worker from the stored message, never by the model.
pub struct Scope<'a> {
    pub tenant: &'a Tenant,
    pub contact: &'a ContactId,
    /// Unix milliseconds.
    pub now_ms: i64,
    /// A stable id base per answer, so a retried answer writes the same records again.
    pub id_seed: &'a str,
}

impl Scope<'_> {
    fn expiry(&self, category: Category) -> Expiry {
        Expiry::new(&self.tenant.id, category, self.now_ms / 1000, &self.tenant.retention)
    }

    fn calendar(&self) -> Calendar<'_> {
        Calendar::new(&self.tenant.settings, self.now_ms / 1000)
    }
}

fn ok(call: &ToolCall, content: Value, effect: Effect) -> Outcome {
    let result =
        ToolResult { call_id: call.id.clone(), name: call.name.clone(), content: content.to_string(), is_error: false };
    Outcome { result, effect }
}

fn refused(call: &ToolCall, message: impl std::fmt::Display) -> Outcome {
    let result = ToolResult {
        call_id: call.id.clone(),
        name: call.name.clone(),
        content: json!({"error": message.to_string()}).to_string(),
        is_error: true,
    };
    Outcome { result, effect: Effect::None }
}

fn opening_json(o: &Opening) -> Value {
    json!({"date": o.date(), "time": o.time()})
}

/// Runs one call. `arguments` are the call's arguments with the customer's data restored.
/// Store failures are errors (the answer is retried); everything the model got wrong is an
/// error *result* for the model.
pub async fn run<S: LeadStore + AppointmentStore>(
    store: &S,
    scope: &Scope<'_>,
    call: &ToolCall,
    arguments: Value,
) -> Result<Outcome, StoreError> {
    let arguments = if arguments.is_null() { json!({}) } else { arguments };
    match call.name.as_str() {
        CAPTURE_LEAD => with_args(call, arguments, |a| capture_lead(store, scope, call, a)).await,
        CHECK_AVAILABILITY => with_args(call, arguments, |a| check_availability(store, scope, call, a)).await,
        BOOK_APPOINTMENT => with_args(call, arguments, |a| book(store, scope, call, a)).await,
        CANCEL_APPOINTMENT => with_args(call, arguments, |a| cancel(store, scope, call, a)).await,
        HANDOFF_TO_HUMAN => {
            #[derive(Deserialize)]
            struct Args {
                reason: Option<String>,
            }
            let reason = serde_json::from_value::<Args>(arguments).ok().and_then(|a| a.reason);
            let reason = reason.map(|r| r.chars().take(200).collect());
            Ok(ok(call, json!({"handed_off": true}), Effect::Handoff { reason }))
        }
        _ => Ok(refused(call, "no such tool")),
    }
}

/// Runs `tool` with the call's arguments in its own type; arguments that do not fit it are the
/// model's mistake, answered to the model.
async fn with_args<T, Fut>(
    call: &ToolCall,
    arguments: Value,
    tool: impl FnOnce(T) -> Fut,
) -> Result<Outcome, StoreError>
where
    T: serde::de::DeserializeOwned,
    Fut: std::future::Future<Output = Result<Outcome, StoreError>>,
{
    match serde_json::from_value(arguments) {
        Ok(args) => tool(args).await,
        Err(_) => Ok(refused(call, "the arguments do not match the tool's parameters")),
    }
}

fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    !local.is_empty() && domain.contains('.') && !email.contains(char::is_whitespace) && email.len() <= 254
}

/// 0-100: how much the business knows to follow up with.
fn score(lead: &Lead) -> u8 {
    let mut score = 10;
    score += if lead.email.is_some() { 25 } else { 0 };
    score += if lead.phone.is_some() { 25 } else { 0 };
    score += if lead.name.is_some() { 10 } else { 0 };
    score += if lead.interest.is_some() { 30 } else { 0 };
    score
}

#[derive(Deserialize)]
struct LeadArgs {
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    interest: Option<String>,
}

async fn capture_lead<S: LeadStore>(
    store: &S,
    scope: &Scope<'_>,
    call: &ToolCall,
    args: LeadArgs,
) -> Result<Outcome, StoreError> {
    let clean = |v: Option<String>, max: usize| {
        v.map(|s| s.trim().chars().take(max).collect::<String>()).filter(|s: &String| !s.is_empty())
    };
    let email = clean(args.email, 254);
    if email.as_deref().is_some_and(|e| !plausible_email(e)) {
        return Ok(refused(call, "that email address does not look valid"));
    }
    // A number in any common format, read in the tenant's country; the contact's own otherwise.
    let phone = match clean(args.phone, 40) {
        Some(p) => match normalise_phone(&p, scope.tenant.settings.default_country.as_deref()) {
            Some(e164) => Some(e164),
            None => return Ok(refused(call, "that phone number does not look valid")),
        },
        None => match scope.contact {
            ContactId::Phone(p) => Some(p.as_str().to_owned()),
            _ => None,
        },
    };
    // One lead per contact, updated as the customer tells more.
    let existing = store.leads_of(&scope.tenant.id, scope.contact).await?.into_iter().max_by_key(|l| l.updated_at_ms);
    let mut lead = existing.unwrap_or_else(|| Lead {
        id: RecordId::parse(&format!("lead-{}", scope.id_seed)).unwrap_or_else(|_| RecordId::generate()),
        contact: scope.contact.clone(),
        name: None,
        email: None,
        phone: None,
        interest: None,
        score: 0,
        stage: LeadStage::New,
        created_at_ms: scope.now_ms,
        updated_at_ms: scope.now_ms,
    });
    lead.name = clean(args.name, 200).or(lead.name);
    lead.email = email.or(lead.email);
    lead.phone = phone.or(lead.phone);
    lead.interest = clean(args.interest, 500).or(lead.interest);
    lead.score = score(&lead);
    lead.updated_at_ms = scope.now_ms;
    store.save_lead(&scope.tenant.id, &lead, &scope.expiry(Category::Leads)).await?;
    Ok(ok(call, json!({"saved": true, "lead_id": lead.id.as_str()}), Effect::LeadCaptured))
}

/// A phone number a customer gave (for a lead), in E.164, if it is a valid number.
pub fn normalise_phone(text: &str, default_country: Option<&str>) -> Option<String> {
    let number = crate::tenants::settings::read_phone(text, default_country)?;
    if !phonenumber::is_valid(&number) {
        return None;
    }
    let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
    E164::parse(&e164).ok().map(|p| p.as_str().to_owned())
}

#[derive(Deserialize)]
struct AvailabilityArgs {
    date: Option<String>,
    service: Option<String>,
}

async fn check_availability<S: AppointmentStore>(
    store: &S,
    scope: &Scope<'_>,
    call: &ToolCall,
    args: AvailabilityArgs,
) -> Result<Outcome, StoreError> {
    let calendar = scope.calendar();
    let service = match calendar.service(args.service.as_deref()) {
        Ok(s) => s,
        Err(e) => return Ok(refused(call, e)),
    };
    let from = match args.date.as_deref().map(str::parse::<jiff::civil::Date>) {
        None => calendar.today(),
        Some(Ok(d)) => d,
        Some(Err(_)) => return Ok(refused(call, Unbookable::Invalid)),
    };
    // Taken slots per date, read only for the dates that have openings (a week at most).
    let mut taken = std::collections::HashMap::new();
    let mut day = from.max(calendar.today());
    for _ in 0..7 {
        if !calendar.openings_on(day, &service).is_empty() {
            let date = day.to_string();
            let slots = store.taken_slots(&scope.tenant.id, &date).await?;
            taken.insert(date, slots);
        }
        day = day.saturating_add(jiff::Span::new().days(1));
    }
    let free = calendar.free(&service, from, 7, OFFERED, &|date| taken.get(date).cloned().unwrap_or_default());
    let times: Vec<Value> = free.iter().map(opening_json).collect();
    Ok(ok(
        call,
        json!({"service": service.name, "free": times, "time_zone": scope.tenant.settings.timezone}),
        Effect::None,
    ))
}

#[derive(Deserialize)]
struct BookArgs {
    date: String,
    time: String,
    service: Option<String>,
}

async fn book<S: AppointmentStore>(
    store: &S,
    scope: &Scope<'_>,
    call: &ToolCall,
    args: BookArgs,
) -> Result<Outcome, StoreError> {
    let calendar = scope.calendar();
    let opening = match calendar
        .service(args.service.as_deref())
        .and_then(|s| calendar.opening(&s, args.date.trim(), args.time.trim()).map(|o| (s, o)))
    {
        Ok(found) => found,
        Err(e) => return Ok(refused(call, e)),
    };
    let (service, opening) = opening;
    let appointment = Appointment {
        // The answer and the start, not the model's call id (new on every model call): a retried
        // answer books the same appointment again, found as its own below, never a second one.
        id: RecordId::parse(&format!("appt-{}-{}-{}", scope.id_seed, opening.date(), opening.time().replace(':', "")))
            .unwrap_or_else(|_| RecordId::generate()),
        contact: scope.contact.clone(),
        service: service.name.clone(),
        start: opening.start,
        end: opening.end,
        slots: opening.slots.clone(),
        status: AppointmentStatus::Booked,
        created_at: scope.now_ms / 1000,
    };
    let booked = json!({"booked": true, "appointment_id": appointment.id.as_str(), "service": service.name,
                        "date": opening.date(), "time": opening.time()});
    match store.book(&scope.tenant.id, &appointment, &scope.expiry(Category::Appointments)).await? {
        Booking::Booked => Ok(ok(call, booked, Effect::Booked(appointment))),
        Booking::SlotTaken => {
            // Taken by this very answer on an earlier attempt: the booking stands.
            let mine = store.appointments_of(&scope.tenant.id, scope.contact).await?;
            if let Some(same) =
                mine.into_iter().find(|a| a.id == appointment.id && a.status == AppointmentStatus::Booked)
            {
                return Ok(ok(call, booked, Effect::Booked(same)));
            }
            let taken = |date: &str| if date == opening.date() { opening.slots.clone() } else { Vec::new() };
            let day = opening.date().parse().unwrap_or_else(|_| calendar.today());
            let alternatives: Vec<Value> =
                calendar.free(&service, day, 3, 3, &taken).iter().map(opening_json).collect();
            Ok(ok(
                call,
                json!({"booked": false, "reason": "that time was just taken", "alternatives": alternatives}),
                Effect::None,
            ))
        }
    }
}

#[derive(Deserialize)]
struct CancelArgs {
    appointment_id: Option<String>,
}

async fn cancel<S: AppointmentStore>(
    store: &S,
    scope: &Scope<'_>,
    call: &ToolCall,
    args: CancelArgs,
) -> Result<Outcome, StoreError> {
    let now = scope.now_ms / 1000;
    let id = match args.appointment_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(id) => match RecordId::parse(id) {
            Ok(id) => id,
            Err(_) => return Ok(refused(call, "no such appointment of this customer")),
        },
        None => {
            let mine = store.appointments_of(&scope.tenant.id, scope.contact).await?;
            let next = mine
                .into_iter()
                .filter(|a| a.status == AppointmentStatus::Booked && a.start > now)
                .min_by_key(|a| a.start);
            match next {
                Some(a) => a.id,
                None => return Ok(refused(call, "this customer has no upcoming appointment")),
            }
        }
    };
    // The store looks the id up under this contact only: someone else's id is simply not found.
    match store.cancel(&scope.tenant.id, scope.contact, &id).await? {
        Some(a) => Ok(ok(call, json!({"cancelled": true, "appointment_id": a.id.as_str()}), Effect::Cancelled(a))),
        None => Ok(refused(call, "no such appointment of this customer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantId;
    use crate::store::contacts::MemoryContacts;

    /// Sunday 2026-03-01 12:00 in Madrid.
    const NOW_MS: i64 = 1_772_362_800_000;

    fn tenant() -> Tenant {
        let mut t = Tenant::new(TenantId::parse("acme").unwrap());
        t.settings.timezone = "Europe/Madrid".into();
        t.settings.default_country = Some("ES".into());
        t.settings.opening_hours.insert("mon".into(), vec!["09:00-11:00".into()]);
        t
    }

    fn call(id: &str, name: &str) -> ToolCall {
        ToolCall { id: id.into(), name: name.into(), arguments: String::new() }
    }

    fn contact(n: &str) -> ContactId {
        ContactId::parse_key(n).unwrap()
    }

    #[tokio::test]
    async fn a_lead_is_captured_for_this_contact_with_a_normalised_phone_and_a_score() {
        let (store, tenant, jana) = (MemoryContacts::default(), tenant(), contact("+34600111222"));
        let scope = Scope { tenant: &tenant, contact: &jana, now_ms: NOW_MS, id_seed: "s" };
        let args = json!({"name": "Jana", "email": "jana@example.com", "phone": "611 22 33 44", "interest": "whitening",
                          "contact": "+34999999999"});
        let out = run(&store, &scope, &call("1", CAPTURE_LEAD), args).await.unwrap();
        assert_eq!(out.effect, Effect::LeadCaptured);
        let leads = store.leads_of(&tenant.id, &jana).await.unwrap();
        assert_eq!(leads.len(), 1);
        assert_eq!(leads[0].phone.as_deref(), Some("+34611223344"), "read in the tenant's country");
        assert_eq!(leads[0].score, 100);
        // A second call updates the same lead.
        run(&store, &scope, &call("2", CAPTURE_LEAD), json!({"interest": "cleaning"})).await.unwrap();
        let leads = store.leads_of(&tenant.id, &jana).await.unwrap();
        assert_eq!((leads.len(), leads[0].interest.as_deref()), (1, Some("cleaning")));
        assert!(store.leads_of(&tenant.id, &contact("+34999999999")).await.unwrap().is_empty());
    }

    #[test]
    fn a_lead_phone_written_internationally_keeps_its_own_country() {
        // Read with the tenant's country, the parser took `+49 151…` for a US number.
        assert_eq!(normalise_phone("+49 151 99887766", Some("US")).as_deref(), Some("+4915199887766"));
        assert_eq!(normalise_phone("0049 151 99887766", Some("ES")).as_deref(), Some("+4915199887766"));
        assert_eq!(normalise_phone("611 22 33 44", Some("ES")).as_deref(), Some("+34611223344"));
        assert_eq!(normalise_phone("12", Some("ES")), None, "not a valid number");
    }

    #[tokio::test]
    async fn arguments_that_do_not_validate_are_an_error_result_not_a_failure() {
        let (store, tenant, jana) = (MemoryContacts::default(), tenant(), contact("+34600111222"));
        let scope = Scope { tenant: &tenant, contact: &jana, now_ms: NOW_MS, id_seed: "s" };
        for (name, args) in [
            (CAPTURE_LEAD, json!({"email": "not an email"})),
            (CAPTURE_LEAD, json!({"name": 42})),
            (BOOK_APPOINTMENT, json!({"date": "tomorrow"})),
            (BOOK_APPOINTMENT, json!({"date": "2026-03-03", "time": "10:00"})),
            ("delete_everything", json!({})),
        ] {
            let out = run(&store, &scope, &call("1", name), args).await.unwrap();
            assert!(out.result.is_error, "{name}");
            assert_eq!(out.effect, Effect::None);
        }
    }

    #[tokio::test]
    async fn cancelling_someone_elses_appointment_changes_nothing() {
        let (store, tenant) = (MemoryContacts::default(), tenant());
        let (jana, mallory) = (contact("+34600111222"), contact("+34600999888"));
        let jana_scope = Scope { tenant: &tenant, contact: &jana, now_ms: NOW_MS, id_seed: "j" };
        let booked =
            run(&store, &jana_scope, &call("1", BOOK_APPOINTMENT), json!({"date": "2026-03-02", "time": "09:00"}))
                .await
                .unwrap();
        let Effect::Booked(appointment) = booked.effect else { panic!("booked: {:?}", booked.result) };

        let mallory_scope = Scope { tenant: &tenant, contact: &mallory, now_ms: NOW_MS, id_seed: "m" };
        let attempt = json!({"appointment_id": appointment.id.as_str(), "contact": "+34600111222"});
        let out = run(&store, &mallory_scope, &call("2", CANCEL_APPOINTMENT), attempt).await.unwrap();
        assert!(out.result.is_error);
        let jana_appointments = store.appointments_of(&tenant.id, &jana).await.unwrap();
        assert_eq!(jana_appointments[0].status, AppointmentStatus::Booked);

        // Her own cancel (no id: her next appointment) works and frees the slot.
        let out = run(&store, &jana_scope, &call("3", CANCEL_APPOINTMENT), json!({})).await.unwrap();
        assert!(matches!(out.effect, Effect::Cancelled(_)));
        assert!(store.taken_slots(&tenant.id, "2026-03-02").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_taken_slot_offers_alternatives_and_a_retried_booking_stands() {
        let (store, tenant) = (MemoryContacts::default(), tenant());
        let (jana, otto) = (contact("+34600111222"), contact("+34600999888"));
        let args = json!({"date": "2026-03-02", "time": "09:00"});
        let jana_scope = Scope { tenant: &tenant, contact: &jana, now_ms: NOW_MS, id_seed: "j" };
        let first = run(&store, &jana_scope, &call("1", BOOK_APPOINTMENT), args.clone()).await.unwrap();
        assert!(matches!(first.effect, Effect::Booked(_)));
        // The same answer retried (same seed and call): the booking stands, nothing doubles.
        let again = run(&store, &jana_scope, &call("1", BOOK_APPOINTMENT), args.clone()).await.unwrap();
        assert!(matches!(again.effect, Effect::Booked(_)));
        assert_eq!(store.appointments_of(&tenant.id, &jana).await.unwrap().len(), 1);

        let otto_scope = Scope { tenant: &tenant, contact: &otto, now_ms: NOW_MS, id_seed: "o" };
        let taken = run(&store, &otto_scope, &call("1", BOOK_APPOINTMENT), args).await.unwrap();
        assert_eq!(taken.effect, Effect::None);
        let result: Value = serde_json::from_str(&taken.result.content).unwrap();
        assert_eq!(result["booked"], false);
        assert_eq!(result["alternatives"][0], json!({"date": "2026-03-02", "time": "09:30"}));
    }

    #[test]
    fn booking_tools_are_offered_only_with_opening_hours() {
        let names = |t: &Tenant| specs(t).iter().map(|s| s.name).collect::<Vec<_>>();
        assert!(names(&tenant()).contains(&BOOK_APPOINTMENT));
        assert!(!names(&Tenant::new(TenantId::parse("x").unwrap())).contains(&BOOK_APPOINTMENT));
    }
}
