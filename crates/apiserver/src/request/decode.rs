//! Decoding a request: its query, headers and body (JSON, YAML, or protobuf for the kinds
//! `protobuf` maps; 3 MiB at most, as
//! kube-apiserver limits it), the field manager and the field validation it asks for.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, Method, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::Value;

use crate::auth::UserInfo;
use crate::error::{ApiError, ApiResult};

/// The largest request body accepted (kube-apiserver's limit is 3 MiB).
pub(super) const MAX_BODY: usize = 3 * 1024 * 1024;

/// A decoded request: method, query, headers and the whole body.
pub(super) struct Ctx {
    pub(super) method: Method,
    pub(super) query: HashMap<String, String>,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    /// Who asks (`None` on a public path without a token).
    pub(super) user: Option<UserInfo>,
}

impl Ctx {
    /// Read a request's body (at most 3 MiB: 413 beyond, as kube-apiserver answers).
    pub(super) async fn read(
        method: Method,
        query: HashMap<String, String>,
        headers: HeaderMap,
        body: Incoming,
        user: Option<UserInfo>,
    ) -> ApiResult<Ctx> {
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                let mut err = ApiError::bad_request(format!("reading request body: {e}"));
                if e.to_string().contains("length limit") {
                    err.code = 413;
                    err.reason = "RequestEntityTooLarge";
                    err.message = "Request entity too large: limit is 3145728".into();
                }
                err
            })?
            .to_bytes();
        Ok(Ctx {
            method,
            query,
            headers,
            body,
            user,
        })
    }

    pub(super) fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }
    pub(super) fn wants_table(&self) -> bool {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(|a| a.split(',').next().unwrap_or("").contains("as=Table"))
            .unwrap_or(false)
    }
    pub(super) fn dry_run(&self) -> bool {
        self.q("dryRun").is_some_and(|v| v == "All")
    }
    pub(super) fn manager(&self, default_op: &str) -> String {
        if let Some(m) = self.q("fieldManager") {
            return m.to_string();
        }
        let ua = self
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        let base = ua.split('/').next().unwrap_or("unknown");
        if base.is_empty() {
            default_op.to_string()
        } else {
            base.to_string()
        }
    }
    pub(super) fn content_type(&self) -> String {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    }
    pub(super) fn validation(&self) -> FieldValidation {
        match self.q("fieldValidation") {
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            _ => FieldValidation::Warn,
        }
    }
    pub(super) fn body_value(&self) -> ApiResult<Value> {
        parse_body(&self.body, &self.content_type())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

pub(super) fn parse_body(body: &[u8], ct: &str) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    if ct == "application/vnd.kubernetes.protobuf" {
        return super::protobuf::decode(body);
    }
    if ct.contains("protobuf") || ct.contains("cbor") {
        return Err(ApiError::unsupported_media(ct));
    }
    if ct.contains("yaml") {
        let text = std::str::from_utf8(body)
            .map_err(|e| ApiError::bad_request(format!("request body is not UTF-8: {e}")))?;
        let v: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        return Ok(v);
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
}
