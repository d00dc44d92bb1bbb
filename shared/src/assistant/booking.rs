//! When a tenant can be booked: the opening hours of a day, cut into slots of the tenant's slot
//! length, in the tenant's time zone, minus what is taken, in the past or beyond the horizon.
//! Pure: the tools read what is taken from the store and ask this what is free.

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;

use crate::domain::Slot;
use crate::tenants::TenantSettings;
use crate::tenants::settings::{Service, parse_interval};

/// Customers cannot book a slot starting sooner than this: someone has to see the booking.
pub const MIN_NOTICE_SECS: i64 = 3600;

/// A bookable start: the slots it holds (a service may take several) and when it runs (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    pub slots: Vec<Slot>,
    pub start: i64,
    pub end: i64,
}

impl Opening {
    pub fn date(&self) -> &str {
        &self.slots[0].date
    }

    pub fn time(&self) -> &str {
        &self.slots[0].time
    }
}

/// Why a requested start cannot be booked (said to the model, which tells the customer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unbookable {
    #[error("that date or time is not valid (use YYYY-MM-DD and HH:MM)")]
    Invalid,
    #[error("that time is in the past or too soon")]
    TooSoon,
    #[error("that date is beyond how far ahead bookings are taken")]
    TooFar,
    #[error("the business is closed then")]
    Closed,
    #[error("that service is not offered")]
    UnknownService,
}

pub struct Calendar<'a> {
    settings: &'a TenantSettings,
    zone: TimeZone,
    now: i64,
}

fn weekday_key(day: Weekday) -> &'static str {
    crate::tenants::settings::WEEKDAYS[day.to_monday_zero_offset() as usize]
}

fn hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

impl<'a> Calendar<'a> {
    /// `now`: unix seconds. An unknown zone (validated at load, so never in practice) is UTC.
    pub fn new(settings: &'a TenantSettings, now: i64) -> Self {
        let zone = TimeZone::get(&settings.timezone).unwrap_or(TimeZone::UTC);
        Self { settings, zone, now }
    }

    /// Today in the tenant's zone.
    pub fn today(&self) -> Date {
        Timestamp::from_second(self.now).map(|t| t.to_zoned_datetime(self.zone.clone()).date()).unwrap_or_default()
    }

    /// The service by name (case-insensitive), or one slot when the tenant lists none and none is named.
    pub fn service(&self, name: Option<&str>) -> Result<Service, Unbookable> {
        let services = &self.settings.booking.services;
        match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(name) => services
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(name))
                .cloned()
                .or_else(|| services.is_empty().then(|| self.default_service()))
                .ok_or(Unbookable::UnknownService),
            None => Ok(services.first().cloned().unwrap_or_else(|| self.default_service())),
        }
    }

    fn default_service(&self) -> Service {
        Service { name: "appointment".into(), minutes: self.settings.booking.slot_minutes }
    }

    /// The opening for `service` starting at `date` `time`, if the tenant is open then.
    pub fn opening(&self, service: &Service, date: &str, time: &str) -> Result<Opening, Unbookable> {
        let slot = Slot::parse(date, time).ok_or(Unbookable::Invalid)?;
        let day: Date = slot.date.parse().map_err(|_| Unbookable::Invalid)?;
        let start_minute = {
            let t: Time = slot.time.parse().map_err(|_| Unbookable::Invalid)?;
            t.hour() as u16 * 60 + t.minute() as u16
        };
        let horizon = i64::from(self.settings.booking.horizon_days);
        if (day - self.today()).get_days() as i64 > horizon {
            return Err(Unbookable::TooFar);
        }
        self.openings_on(day, service).into_iter().find(|o| o.time() == hhmm(start_minute)).ok_or_else(|| {
            // Distinguish "closed" from "too soon" so the customer hears the right reason.
            let start = self.unix(day, start_minute);
            if start.is_some_and(|s| s < self.now + MIN_NOTICE_SECS) { Unbookable::TooSoon } else { Unbookable::Closed }
        })
    }

    /// Every start on `day` at which `service` fits inside one opening interval, soonest first
    /// (taken slots not considered: the caller removes those).
    pub fn openings_on(&self, day: Date, service: &Service) -> Vec<Opening> {
        let slot = self.settings.booking.slot_minutes.max(1);
        let needed = service.minutes.div_ceil(slot).max(1);
        let intervals = self.settings.opening_hours.get(weekday_key(day.weekday())).cloned().unwrap_or_default();
        let date = day.to_string();
        let mut out = Vec::new();
        for (open, close) in intervals.iter().filter_map(|i| parse_interval(i)) {
            // Slots run from the interval's own start ("09:15-12:00" offers 09:15); intervals of
            // a day never overlap, so no two labels cover the same minute.
            let mut start = open;
            while start + needed * slot <= close {
                let slots = (0..needed).map(|k| Slot { date: date.clone(), time: hhmm(start + k * slot) }).collect();
                if let Some(begin) = self.unix(day, start)
                    && begin >= self.now + MIN_NOTICE_SECS
                {
                    out.push(Opening { slots, start: begin, end: begin + i64::from(needed * slot) * 60 });
                }
                start += slot;
            }
        }
        out
    }

    /// Free starts from `from` on, at most `limit`, skipping any that holds a taken slot.
    /// `taken(date)` gives the taken slots of one date.
    pub fn free(
        &self,
        service: &Service,
        from: Date,
        days: u16,
        limit: usize,
        taken: &dyn Fn(&str) -> Vec<Slot>,
    ) -> Vec<Opening> {
        let last = self.today().saturating_add(jiff::Span::new().days(i64::from(self.settings.booking.horizon_days)));
        let mut out = Vec::new();
        let mut day = from.max(self.today());
        for _ in 0..days {
            if day > last || out.len() >= limit {
                break;
            }
            let openings = self.openings_on(day, service);
            if !openings.is_empty() {
                let busy = taken(&day.to_string());
                out.extend(openings.into_iter().filter(|o| !o.slots.iter().any(|s| busy.contains(s))));
            }
            day = day.saturating_add(jiff::Span::new().days(1));
        }
        out.truncate(limit);
        out
    }

    fn unix(&self, day: Date, minute: u16) -> Option<i64> {
        let time = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()?;
        // A local time skipped by a DST change resolves forward (jiff's compatible strategy).
        day.to_datetime(time).to_zoned_datetime(self.zone.clone()).ok().map(|z| z.timestamp().as_second())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::settings::BookingSettings;

    fn settings() -> TenantSettings {
        let mut s = TenantSettings { timezone: "Europe/Madrid".into(), ..TenantSettings::default() };
        s.opening_hours.insert("mon".into(), vec!["09:00-12:00".into(), "14:00-15:00".into()]);
        s.opening_hours.insert("sat".into(), vec!["10:00-11:00".into()]);
        s.booking = BookingSettings {
            slot_minutes: 30,
            horizon_days: 14,
            services: vec![
                Service { name: "Cleaning".into(), minutes: 60 },
                Service { name: "Check".into(), minutes: 30 },
            ],
        };
        s
    }

    /// Sunday 2026-03-01 12:00 in Madrid (UTC+1).
    const SUNDAY_NOON: i64 = 1_772_362_800;

    #[test]
    fn a_service_fits_only_inside_one_interval() {
        let s = settings();
        let cal = Calendar::new(&s, SUNDAY_NOON);
        let cleaning = cal.service(Some("cleaning")).unwrap();
        let monday: Date = "2026-03-02".parse().unwrap();
        let starts: Vec<String> = cal.openings_on(monday, &cleaning).iter().map(|o| o.time().to_owned()).collect();
        // 60 minutes: 09:00..11:00 in the morning, 14:00 in the afternoon; never 11:30 or 14:30.
        assert_eq!(starts, ["09:00", "09:30", "10:00", "10:30", "11:00", "14:00"]);
        let first = &cal.openings_on(monday, &cleaning)[0];
        assert_eq!(first.slots.len(), 2);
        // 09:00 in Madrid is 08:00 UTC.
        assert_eq!(first.start, 1_772_438_400);
        assert_eq!(first.end - first.start, 3600);
    }

    #[test]
    fn closed_days_past_times_and_far_dates_are_refused_with_their_reason() {
        let s = settings();
        let cal = Calendar::new(&s, SUNDAY_NOON);
        let check = cal.service(Some("Check")).unwrap();
        assert_eq!(cal.opening(&check, "2026-03-03", "10:00"), Err(Unbookable::Closed), "tuesday is not listed");
        assert_eq!(cal.opening(&check, "2026-03-01", "12:30"), Err(Unbookable::TooSoon));
        assert_eq!(cal.opening(&check, "2026-04-06", "09:00"), Err(Unbookable::TooFar));
        assert_eq!(cal.opening(&check, "2026-03-02", "9:00"), Err(Unbookable::Invalid));
        assert_eq!(cal.service(Some("Massage")), Err(Unbookable::UnknownService));
        assert!(cal.opening(&check, "2026-03-02", "14:30").is_ok());
    }

    #[test]
    fn taken_slots_are_skipped_and_the_search_stops_at_the_limit() {
        let s = settings();
        let cal = Calendar::new(&s, SUNDAY_NOON);
        let cleaning = cal.service(Some("Cleaning")).unwrap();
        let taken = |date: &str| if date == "2026-03-02" { vec![Slot::parse(date, "09:30").unwrap()] } else { vec![] };
        let free = cal.free(&cleaning, cal.today(), 14, 3, &taken);
        let starts: Vec<(&str, &str)> = free.iter().map(|o| (o.date(), o.time())).collect();
        // 09:00 and 09:30 both need the 09:30 slot.
        assert_eq!(starts, [("2026-03-02", "10:00"), ("2026-03-02", "10:30"), ("2026-03-02", "11:00")]);
    }

    #[test]
    fn slots_start_where_the_interval_starts() {
        let mut s = settings();
        s.opening_hours.insert("tue".into(), vec!["09:15-10:15".into()]);
        let cal = Calendar::new(&s, SUNDAY_NOON);
        let check = cal.service(Some("Check")).unwrap();
        let tuesday: Date = "2026-03-03".parse().unwrap();
        let starts: Vec<String> = cal.openings_on(tuesday, &check).iter().map(|o| o.time().to_owned()).collect();
        assert_eq!(starts, ["09:15", "09:45"]);
    }

    #[test]
    fn no_opening_hours_means_nothing_to_book() {
        let s = TenantSettings::default();
        let cal = Calendar::new(&s, SUNDAY_NOON);
        let any = cal.service(None).unwrap();
        assert!(cal.free(&any, cal.today(), 30, 5, &|_| vec![]).is_empty());
    }
}
