//! A lead: what a contact told the assistant about wanting to buy, scored and staged.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::{ContactId, RecordId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadStage {
    New,
    Contacted,
    Qualified,
    Won,
    Lost,
}

impl LeadStage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Contacted => "contacted",
            Self::Qualified => "qualified",
            Self::Won => "won",
            Self::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::New, Self::Contacted, Self::Qualified, Self::Won, Self::Lost].into_iter().find(|st| st.as_str() == s)
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    pub id: RecordId,
    pub contact: ContactId,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub interest: Option<String>,
    /// 0-100.
    pub score: u8,
    pub stage: LeadStage,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl fmt::Debug for Lead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lead")
            .field("id", &self.id)
            .field("score", &self.score)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}
