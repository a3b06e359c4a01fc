//! What each receiver type is sent: the URL, the body and the headers of one notification.
//!
//! Building is pure and separate from sending, so tests assert every field without a
//! network. The generic webhook's payload is versioned ([`WEBHOOK_VERSION`]); its fields are
//! an interface and only ever added to within a version.

use aws_lc_rs::hmac;
use serde_json::{Value, json};

use super::rfc3339;
use super::state::{Event, Notification};
use crate::config::{Receiver, ReceiverKind};

/// The version of the webhook payload, its `version` field.
pub const WEBHOOK_VERSION: u32 = 1;

/// The header carrying the webhook signature: `sha256=` and the lower-case hex HMAC-SHA256 of
/// the body under the receiver's secret.
pub const SIGNATURE_HEADER: &str = "x-certdrift-signature";

/// One HTTP POST, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Where to POST.
    pub url: String,
    /// The JSON body.
    pub body: Vec<u8>,
    /// Headers beside `content-type: application/json`.
    pub headers: Vec<(&'static str, String)>,
}

/// The request that delivers `notification` to `receiver`; `generator_url` links back to
/// certdrift's status page.
pub fn build(receiver: &Receiver, notification: &Notification, generator_url: &str) -> Request {
    match &receiver.kind {
        ReceiverKind::Webhook { secret } => {
            let body = to_vec(&webhook_payload(notification, generator_url));
            let headers = secret
                .iter()
                .map(|secret| {
                    (
                        SIGNATURE_HEADER,
                        signature(secret.expose().as_bytes(), &body),
                    )
                })
                .collect();
            Request {
                url: receiver.url.expose().to_owned(),
                body,
                headers,
            }
        }
        ReceiverKind::Slack => Request {
            url: receiver.url.expose().to_owned(),
            body: to_vec(&slack_payload(notification)),
            headers: Vec::new(),
        },
        ReceiverKind::Alertmanager => Request {
            url: alertmanager_url(receiver.url.expose()),
            body: to_vec(&alertmanager_payload(notification, generator_url)),
            headers: Vec::new(),
        },
    }
}

/// certdrift's own payload, version [`WEBHOOK_VERSION`].
pub fn webhook_payload(notification: &Notification, generator_url: &str) -> Value {
    let status = match notification.event {
        Event::Resolved => "resolved",
        Event::Firing | Event::Repeat => "firing",
    };
    json!({
        "version": WEBHOOK_VERSION,
        "id": notification.id,
        "event": notification.event.as_str(),
        "status": status,
        "alert": notification.key.alert.as_str(),
        "severity": notification.severity.as_str(),
        "site": notification.key.site,
        "address": notification.key.address,
        "summary": notification.summary,
        "description": notification.description,
        "started_at": rfc3339(notification.started_at),
        "ended_at": notification.ended_at.map(rfc3339),
        "generator_url": generator_url,
    })
}

/// A Slack-compatible incoming-webhook message: `text` only, which Slack, Mattermost and
/// Rocket.Chat all render.
pub fn slack_payload(notification: &Notification) -> Value {
    let tag = match notification.event {
        Event::Firing => "FIRING",
        Event::Repeat => "STILL FIRING",
        Event::Resolved => "RESOLVED",
    };
    json!({
        "text": format!(
            "[{tag}] {} ({}): {}\n{}",
            notification.key.alert,
            notification.severity,
            notification.summary,
            notification.description
        ),
    })
}

/// Alertmanager API v2's `postableAlerts`: one alert, labelled like the shipped Prometheus
/// rules' alerts (`alertname` is `Certdrift` and the alert's name), so one routing tree
/// serves both. A firing alert has no `endsAt` and is re-sent every `repeat_interval`;
/// Alertmanager resolves it by itself if certdrift stops re-sending for its `resolve_timeout`.
pub fn alertmanager_payload(notification: &Notification, generator_url: &str) -> Value {
    let mut alert = json!({
        "labels": {
            "alertname": format!("Certdrift{}", notification.key.alert),
            "severity": notification.severity.as_str(),
            "site": notification.key.site,
            "address": notification.key.address,
        },
        "annotations": {
            "summary": notification.summary,
            "description": notification.description,
        },
        "startsAt": rfc3339(notification.started_at),
        "generatorURL": generator_url,
    });
    if let Some(ended_at) = notification.ended_at {
        alert["endsAt"] = Value::String(rfc3339(ended_at));
    }
    Value::Array(vec![alert])
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, body);
    let hex: String = tag
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// The alerts endpoint under an Alertmanager base URL; a URL that already names it is kept.
fn alertmanager_url(base: &str) -> String {
    if base.trim_end_matches('/').ends_with("/api/v2/alerts") {
        base.to_owned()
    } else {
        format!("{}/api/v2/alerts", base.trim_end_matches('/'))
    }
}

fn to_vec(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value serializes")
}
