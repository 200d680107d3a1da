//! Fault injection: rules matched by method, resource type, action and name pattern, each with one kind of
//! fault. Rules are set at start (`--faults FILE`), through `PUT /_sim/faults`, or with
//! [`SimHandle::set_faults`](super::SimHandle::set_faults).
//!
//! JSON shape of one rule (every matcher optional; `rate` defaults to 1, `times` to unlimited):
//! `{"method": "POST", "resourceType": "Machine", "action": "start", "name": "web-*", "rate": 0.5, "times": 2,
//!   "kind": "error", "status": 500}`; a provider that offers no way out of a state:
//! `{"resourceType": "Machine", "name": "stuck-*", "kind": "withhold", "operations": ["delete", "stop"]}`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum FaultKind {
    /// Delay the answer by `ms` milliseconds.
    Latency {
        /// The delay.
        ms: u64,
    },
    /// Answer with this HTTP status (and a Job-shaped error body) instead of doing the operation.
    Error {
        /// The status, e.g. 500.
        status: u16,
    },
    /// Answer 429 Too Many Requests with `Retry-After: <retryAfter>` seconds.
    Throttle {
        /// Seconds the client must wait.
        #[serde(rename = "retryAfter", default = "one")]
        retry_after: u64,
    },
    /// Answer 503 with `Retry-After` for `seconds` from the first matching request on.
    Unavailable {
        /// Length of the window.
        seconds: u64,
    },
    /// The operation is accepted, but its Job ends FAILED (and the resource goes to ERROR or back).
    JobFails,
    /// The operation is accepted, but its Job stays RUNNING until stopped.
    JobHangs,
    /// Collections serve at most `max` entries while `count` tells the truth.
    Truncate {
        /// How many entries to serve.
        max: usize,
    },
    /// The change is applied, then the connection is dropped before any answer.
    CommitThenDrop,
    /// The resource offers none of these operations (`delete`, `edit` or action names such as `stop`): they are
    /// left out of its `operations` when it is read, and invoking one is refused with 409. Matched like any
    /// rule, so a rule without `method` and `action` covers both the reads and the operations.
    Withhold {
        /// The operations withheld.
        operations: Vec<String>,
    },
}

fn one() -> u64 {
    1
}

/// One fault rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// HTTP method to match (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Resource type to match, e.g. `Machine` or `MachineCollection` (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Operation to match: `read`, `add`, `edit`, `delete` or an action name such as `start` (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Glob (`*` wildcard) on the name of the resource operated on, or of the one being created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Probability that a matching request is affected (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// How many more times the rule may fire (unlimited when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// The fault.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// For `unavailable`: when the window opened (set by the simulator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<DateTime<Utc>>,
}

/// The JSON document of `GET/PUT /_sim/faults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultSet {
    /// The rules, tried in order; every matching rule applies.
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

/// A glob match with `*` as the only wildcard.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// What a request looks like to the fault matcher.
#[derive(Debug, Clone)]
pub struct RequestFacts<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Resource type (or `<Type>Collection`).
    pub resource_type: &'a str,
    /// Operation: read, add, edit, delete or an action name.
    pub action: &'a str,
    /// Name of the resource concerned, when known.
    pub name: Option<&'a str>,
}

impl FaultRule {
    /// Whether the matchers of this rule accept the request (rate and times aside).
    pub fn matches(&self, facts: &RequestFacts<'_>) -> bool {
        self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(facts.method))
            && self.resource_type.as_deref().is_none_or(|t| t == facts.resource_type)
            && self.action.as_deref().is_none_or(|a| a == facts.action)
            && self.name.as_deref().is_none_or(|p| facts.name.is_some_and(|n| glob(p, n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("web-*", "web-1"));
        assert!(glob("*", ""));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("a*c*e", "abcd"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
    }

    #[test]
    fn rule_json_shape() {
        let rule: FaultRule = serde_json::from_str(
            r#"{"method":"POST","resourceType":"Machine","action":"start","name":"web-*","kind":"error","status":500}"#,
        )
        .expect("parses");
        assert_eq!(rule.kind, FaultKind::Error { status: 500 });
        let facts = RequestFacts { method: "post", resource_type: "Machine", action: "start", name: Some("web-3") };
        assert!(rule.matches(&facts));
        let other = RequestFacts { name: Some("db"), ..facts.clone() };
        assert!(!rule.matches(&other));
        let throttle: FaultRule = serde_json::from_str(r#"{"kind":"throttle","retryAfter":2}"#).expect("parses");
        assert_eq!(throttle.kind, FaultKind::Throttle { retry_after: 2 });
    }
}
