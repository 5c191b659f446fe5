//! Errors as kube-apiserver reports them: a `Status` object with a code, a reason and causes.

use serde_json::{Value, json};

/// One cause of an error, naming the field (`spec.ports[0].port`) like kube-apiserver does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, `FieldManagerConflict`, …
    pub reason: String,
    /// The field path, e.g. `spec.ports[0].port`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl Cause {
    /// A `FieldValueInvalid` cause.
    pub fn invalid(field: impl Into<String>, value: &Value, why: impl AsRef<str>) -> Self {
        let field = field.into();
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {shown}: {}", why.as_ref()),
            field,
        }
    }

    /// A `FieldValueRequired` cause.
    pub fn required(field: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueRequired".into(),
            field: field.into(),
            message: "Required value".into(),
        }
    }

    /// A `FieldValueNotSupported` cause listing the accepted values.
    pub fn not_supported(field: impl Into<String>, value: &Value, allowed: &[&str]) -> Self {
        let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
        Cause {
            reason: "FieldValueNotSupported".into(),
            field: field.into(),
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
        }
    }

    /// Human form: `field: message`.
    pub fn render(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// `services` or `ingresses.networking.k8s.io`, as kube-apiserver names resources.
fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// An API error; becomes a `Status` response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Kubernetes reason (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `Expired`, …).
    pub reason: &'static str,
    /// The full message.
    pub message: String,
    /// Kind and name the error is about, when known.
    pub details: Option<(String, String)>,
    /// Field-level causes.
    pub causes: Vec<Cause>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            causes: Vec::new(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 404 for an object.
    pub fn not_found(resource: &str, group: &str, name: &str) -> Self {
        let what = qualified(resource, group);
        let mut e = Self::new(404, "NotFound", format!("{what} {name:?} not found"));
        e.details = Some((resource.to_string(), name.to_string()));
        e
    }

    /// 404 for a path the server does not serve.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 405.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 409 AlreadyExists.
    pub fn already_exists(resource: &str, group: &str, name: &str) -> Self {
        let what = qualified(resource, group);
        let mut e = Self::new(
            409,
            "AlreadyExists",
            format!("{what} {name:?} already exists"),
        );
        e.details = Some((resource.to_string(), name.to_string()));
        e
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(resource: &str, group: &str, name: &str) -> Self {
        let what = qualified(resource, group);
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {what} {name:?}: the object has been modified; please apply your changes to the latest version and try again"
            ),
        );
        e.details = Some((resource.to_string(), name.to_string()));
        e
    }

    /// 409 Conflict from server-side apply, naming each contested field and its owner.
    pub fn apply_conflict(kind: &str, name: &str, conflicts: Vec<(String, String)>) -> Self {
        let n = conflicts.len();
        let mut lines = Vec::new();
        let mut causes = Vec::new();
        for (manager, field) in conflicts {
            lines.push(format!("- conflict with {manager:?}: {field}"));
            causes.push(Cause {
                reason: "FieldManagerConflict".into(),
                field: field.clone(),
                message: format!("conflict with {manager:?}"),
            });
        }
        let plural = if n == 1 { "" } else { "s" };
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {n} conflict{plural}:\n{}",
                lines.join("\n")
            ),
        );
        e.details = Some((kind.to_string(), name.to_string()));
        e.causes = causes;
        e
    }

    /// 410 Gone: the resourceVersion was compacted away.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 422 Invalid, naming every bad field.
    pub fn invalid(kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes.iter().map(Cause::render).collect();
        let body = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{kind} {name:?} is invalid: {body}"),
        );
        e.details = Some((kind.to_string(), name.to_string()));
        e.causes = causes;
        e
    }

    /// 400 from strict field validation (unknown or duplicate fields).
    pub fn strict_decoding(fields: &[String]) -> Self {
        let list: Vec<String> = fields
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect();
        let mut e = Self::bad_request(format!("strict decoding error: {}", list.join(", ")));
        e.causes = fields
            .iter()
            .map(|f| Cause {
                reason: "FieldValueInvalid".into(),
                field: f.clone(),
                message: format!("unknown field {f:?}"),
            })
            .collect();
        e
    }

    /// 415 for a body in a media type the store reads, holding something it cannot read
    /// in that type (a protobuf field it does not decode), with the reason.
    pub fn unsupported_body(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    /// 415.
    pub fn unsupported_media(ct: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {ct:?})"
            ),
        )
    }

    /// An error a node's agent answered (`kubectl logs`), passed on with its code.
    pub fn from_node(code: u16, message: impl Into<String>) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 | 403 => "Forbidden",
            404 => "NotFound",
            503 => "ServiceUnavailable",
            _ => "InternalError",
        };
        Self::new(code, reason, message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// 403: the authorizer said no (`message` names user, verb, resource and namespace).
    pub fn forbidden(message: impl Into<String>, resource: &str, name: &str) -> Self {
        let mut e = Self::new(403, "Forbidden", message);
        e.details = Some((resource.to_string(), name.to_string()));
        e
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.details.is_some() || !self.causes.is_empty() {
            let mut details = serde_json::Map::new();
            if let Some((kind, name)) = &self.details {
                details.insert("name".into(), json!(name));
                details.insert("kind".into(), json!(kind));
            }
            if !self.causes.is_empty() {
                details.insert(
                    "causes".into(),
                    Value::Array(
                        self.causes
                            .iter()
                            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                            .collect(),
                    ),
                );
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

impl From<redb::Error> for ApiError {
    fn from(e: redb::Error) -> Self {
        ApiError::internal(format!("storage: {e}"))
    }
}

/// Result alias for API operations.
pub type ApiResult<T> = Result<T, ApiError>;
