//! The error a simulated provider answers: an HTTP status and a message for a human (the body becomes a
//! Job-shaped error document, see the server's responses).

/// An error answered to the consumer: an HTTP status and a human message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct SimError {
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for a human.
    pub message: String,
}

impl SimError {
    /// A new error.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        SimError { status, message: message.into() }
    }
}

/// 400: the request is wrong.
pub fn bad(msg: impl Into<String>) -> SimError {
    SimError::new(400, msg)
}

/// 404: nothing at this path.
pub fn not_found(path: &str) -> SimError {
    SimError::new(404, format!("no resource at /{path}"))
}

/// 409: not allowed in the current state.
pub fn conflict(msg: impl Into<String>) -> SimError {
    SimError::new(409, msg)
}
