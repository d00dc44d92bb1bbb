//! Appointments and the slots they take. A slot is a tenant-local date and start time; each is
//! taken at most once, by a conditional write, so two bookings of the last slot cannot both win.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::{ContactId, RecordId};

/// One bookable unit: `date` (`yyyy-mm-dd`) and `time` (`HH:MM`), in the tenant's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slot {
    pub date: String,
    pub time: String,
}

impl Slot {
    pub fn parse(date: &str, time: &str) -> Option<Self> {
        let date_ok = date.parse::<jiff::civil::Date>().is_ok() && date.len() == 10;
        let time_ok = time.len() == 5 && time.parse::<jiff::civil::Time>().is_ok();
        (date_ok && time_ok).then(|| Self { date: date.to_owned(), time: time.to_owned() })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    Booked,
    Cancelled,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Appointment {
    pub id: RecordId,
    pub contact: ContactId,
    pub service: String,
    /// Unix seconds.
    pub start: i64,
    pub end: i64,
    /// The slots it holds while booked (released when cancelled).
    pub slots: Vec<Slot>,
    pub status: AppointmentStatus,
    pub created_at: i64,
}

impl fmt::Debug for Appointment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Appointment")
            .field("id", &self.id)
            .field("start", &self.start)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_parse_only_real_dates_and_times() {
        assert!(Slot::parse("2026-03-02", "09:30").is_some());
        for (d, t) in [("2026-02-30", "09:30"), ("2026-03-02", "9:30"), ("2026-03-02", "25:00"), ("x#y", "09:00")] {
            assert!(Slot::parse(d, t).is_none(), "{d} {t}");
        }
    }
}
