//! How an exchange ended: one value per exchange, mapped to its outcome label by [`crate::error`].

use crate::error::{ErrorType, Outcome};

/// How an exchange ended.
#[derive(Debug)]
pub enum End {
    /// The upstream ended cleanly and everything was delivered.
    Completed,
    /// The client went away (or stopped reading); with `on_disconnect = "drain"`, returned when the drain
    /// after it is over.
    ClientGone,
    /// A failure, reported to the client as an error response or `event: error`.
    Failed { ty: ErrorType, reusable: bool },
    /// The attempt produced no event within `retry.first_event_timeout` and another backend takes over.
    /// Internal to the exchange: it never ends a request.
    NextBackend,
    /// The process shut down and the client was handed over to the next one (a resumable route on a shared
    /// store): it got `retry:` and a clean close while this process went on recording the upstream
    /// ([`super::handover`]). Outcome `shutdown`, no error.
    HandedOver,
}

impl End {
    pub fn outcome(&self) -> Outcome {
        match self {
            End::Completed => Outcome::Completed,
            End::ClientGone => Outcome::ClientClosed,
            End::Failed { ty, .. } => ty.outcome(),
            End::NextBackend => ErrorType::UpstreamTimeout.outcome(),
            End::HandedOver => Outcome::Shutdown,
        }
    }

    pub fn error_type(&self) -> Option<ErrorType> {
        match self {
            End::Failed { ty, .. } => Some(*ty),
            End::NextBackend => Some(ErrorType::UpstreamTimeout),
            End::Completed | End::ClientGone | End::HandedOver => None,
        }
    }

    /// Whether the client connection may serve another request.
    pub fn reusable(&self) -> bool {
        matches!(self, End::Completed | End::Failed { reusable: true, .. })
    }
}
