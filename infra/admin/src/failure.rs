//! How a command ends, and the exit code each outcome has (documented in `--help`).

use std::process::ExitCode;

use concierge::store::StoreError;

/// A command that ran to its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Done, intact: exit 0.
    Yes,
    /// The answer is no (a broken chain, a request not done in time): exit 1.
    No,
    /// The report is printed, but AWS failed part of it (a tenant that could not be read): exit 3.
    Partial,
}

/// A command that could not give its answer.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Exit 2: a bad flag or value, a resource not named or naming nothing, an unknown tenant,
    /// an unreadable key.
    #[error("{0}")]
    Usage(String),
    /// Exit 3: AWS (or the emulator) unreachable, or a request it failed.
    #[error("{0}")]
    Aws(String),
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) => ExitCode::from(2),
            Self::Aws(_) => ExitCode::from(3),
        }
    }
}

impl Verdict {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Self::Yes => ExitCode::SUCCESS,
            Self::No => ExitCode::from(1),
            Self::Partial => ExitCode::from(3),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            // DynamoDB refused the request as malformed, or the key does not open what it
            // sealed: the configuration is wrong, retrying will not help.
            StoreError::Invalid { .. } | StoreError::Crypto(_) => Self::Usage(e.to_string()),
            StoreError::Aws { .. } | StoreError::Corrupt(_) | StoreError::Conflict(_) => Self::Aws(e.to_string()),
        }
    }
}
