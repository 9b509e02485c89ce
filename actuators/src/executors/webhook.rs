//! The `webhook` executor: an HTTP POST of the decision to a receiver that carries it out (a
//! deploy tool, a runbook automation, a chat bot), signed, bounded in time, retried.
//!
//! ```toml
//! [targets.checkout]
//! executor = "webhook"
//! dry_run = false
//! [targets.checkout.webhook]
//! url = "https://deploy.internal/hooks/apo"
//! secret_file = "/etc/apo/webhook.key"   # HMAC-SHA256 of the body, required
//! timeout = "5s"                         # per attempt (default 5s)
//! retries = 3                            # after the first attempt (default 3)
//! backoff = "500ms"                      # before the first retry, doubling, at most 30s
//! headers = { Authorization = "Bearer …" }
//! ```
//!
//! The body is `{"decision": <the signed decision>, "replicas_to": <after the policy>,
//! "tune_to": <after the policy>}` (null where the action has none),
//! identical on every attempt. Headers: `Content-Type: application/json`,
//! `Idempotency-Key` and `X-APO-Decision-Id` (the decision id: a retry after a timeout may
//! reach a receiver that already acted, and it should act once per key), `X-APO-Attempt`
//! (1, 2, …) and `X-APO-Signature-256: sha256=<hex HMAC-SHA256 of the body>` (as GitHub
//! signs its webhooks).
//!
//! A 2xx answer is success; its status and the start of its body go into the audit record.
//! A connection error, a timeout, 408, 429 and 5xx are retried after the back-off (or the
//! answer's `Retry-After` seconds, at most 30 s); any other answer fails at once (the receiver
//! refused: sending it again would not change that).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use apo_schemas::decision::{Decision, SigningKey};
use serde::Deserialize;

use super::{ExecError, Executor};
use crate::policy::Allowed;

/// The longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How much of the receiver's answer the audit record keeps, characters.
const ANSWER_CHARS: usize = 200;

/// A target's `[targets.X.webhook]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST (`http://` or `https://`).
    pub url: String,
    /// The file holding the secret the body is signed with (at least 16 bytes).
    pub secret_file: PathBuf,
    /// Limit of one attempt (connect, send, answer).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts after the first one.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Wait before the first retry, doubled before each further one.
    #[serde(default = "default_backoff", with = "humantime_serde")]
    pub backoff: Duration,
    /// Extra headers (an `Authorization`, say).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_retries() -> u32 {
    3
}

fn default_backoff() -> Duration {
    Duration::from_millis(500)
}

/// POSTs decisions to one receiver.
pub struct WebhookExecutor {
    config: WebhookConfig,
    secret: SigningKey,
    client: reqwest::blocking::Client,
}

impl WebhookExecutor {
    /// An executor for `config` (its secret read, its URL and headers checked).
    pub fn new(config: &WebhookConfig) -> Result<Self, String> {
        let url =
            reqwest::Url::parse(&config.url).map_err(|e| format!("url `{}`: {e}", config.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("url `{}`: not http or https", config.url));
        }
        if config.timeout.is_zero() {
            return Err("timeout must be more than 0".into());
        }
        for (name, value) in &config.headers {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("header `{name}`: {e}"))?;
            reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| format!("header `{name}`'s value: {e}"))?;
        }
        let secret = SigningKey::load(Some(&config.secret_file), Some("webhook"))
            .map_err(|e| format!("secret_file: {e}"))?;
        let client = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("apo-actuate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("an HTTP client: {e}"))?;
        Ok(WebhookExecutor {
            config: config.clone(),
            secret,
            client,
        })
    }

    /// One attempt: the answer's status and text, or the transport error.
    fn attempt(
        &self,
        d: &Decision,
        body: &[u8],
        n: u32,
    ) -> Result<(u16, String, Option<Duration>), String> {
        let mut req = self
            .client
            .post(&self.config.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &d.id)
            .header("X-APO-Decision-Id", &d.id)
            .header("X-APO-Attempt", n.to_string())
            .header(
                "X-APO-Signature-256",
                format!("sha256={}", self.secret.sign_bytes(body)),
            );
        for (k, v) in &self.config.headers {
            req = req.header(k, v);
        }
        let resp = req.body(body.to_vec()).send().map_err(describe)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().unwrap_or_default();
        let text: String = text.trim().chars().take(ANSWER_CHARS).collect();
        Ok((status, text, retry_after))
    }
}

/// A transport error in a few words (reqwest's own text nests its causes).
fn describe(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    match causes.last() {
        Some(root) => format!("{what}: {root}"),
        None => format!("{what}: {e}"),
    }
}

/// Whether an answer with `status` is worth another attempt.
fn retryable(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

impl Executor for WebhookExecutor {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn execute(&mut self, d: &Decision, allowed: &Allowed) -> Result<String, ExecError> {
        let body = serde_json::to_vec(&serde_json::json!({
            "decision": d,
            "replicas_to": allowed.replicas_to,
            "tune_to": allowed.tune_to,
        }))
        .map_err(|e| ExecError(format!("encoding the body: {e}")))?;
        let attempts = self.config.retries.saturating_add(1);
        let mut wait = self.config.backoff;
        let mut history: Vec<String> = Vec::new();
        for n in 1..=attempts {
            let outcome = self.attempt(d, &body, n);
            let (again, pause) = match &outcome {
                Ok((status, text, _)) if (200..300).contains(status) => {
                    let earlier = if history.is_empty() {
                        String::new()
                    } else {
                        format!(" after {}", history.join("; "))
                    };
                    return Ok(format!(
                        "POST {}: {status} on attempt {n}{earlier}{}",
                        self.config.url,
                        if text.is_empty() {
                            String::new()
                        } else {
                            format!(": {text}")
                        }
                    ));
                }
                Ok((status, text, retry_after)) => {
                    history.push(format!(
                        "attempt {n}: {status}{}",
                        if text.is_empty() {
                            String::new()
                        } else {
                            format!(" {text}")
                        }
                    ));
                    (retryable(*status), retry_after.map(|r| r.min(MAX_BACKOFF)))
                }
                Err(e) => {
                    history.push(format!("attempt {n}: {e}"));
                    (true, None)
                }
            };
            if !again || n == attempts {
                break;
            }
            let pause = pause.unwrap_or(wait);
            tracing::warn!(
                url = %self.config.url,
                decision = %d.id,
                "webhook {}; trying again in {pause:?}",
                history.last().map(String::as_str).unwrap_or("")
            );
            std::thread::sleep(pause);
            wait = (wait * 2).min(MAX_BACKOFF);
        }
        Err(ExecError(format!(
            "POST {} failed after {} attempt(s): {}",
            self.config.url,
            history.len(),
            history.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    const SECRET: &str = "webhook-secret-0123456789abcdef";

    /// A request as the receiver saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        headers: BTreeMap<String, String>,
        body: Vec<u8>,
    }

    /// A real HTTP server on loopback answering each request with the next of `answers`
    /// (status, delay before answering), each on its own thread; the requests it received.
    fn receiver(answers: Vec<(u16, Duration)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for (status, delay) in answers {
                let Ok(mut req) = server.recv() else { return };
                let mut body = Vec::new();
                req.as_reader().read_to_end(&mut body).unwrap();
                let headers = req
                    .headers()
                    .iter()
                    .map(|h| {
                        (
                            h.field.as_str().as_str().to_ascii_lowercase(),
                            h.value.to_string(),
                        )
                    })
                    .collect();
                log.lock().unwrap().push(Seen { headers, body });
                // each answer on its own thread: a slow one does not hold up the next request
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let _ = req.respond(
                        tiny_http::Response::from_string(format!("answer {status}"))
                            .with_status_code(status),
                    );
                });
            }
        });
        (format!("http://127.0.0.1:{port}/hooks/apo"), seen)
    }

    fn executor(
        url: &str,
        dir: &std::path::Path,
        timeout_ms: u64,
        retries: u32,
    ) -> WebhookExecutor {
        let secret_file = dir.join("webhook.key");
        std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
        WebhookExecutor::new(&WebhookConfig {
            url: url.into(),
            secret_file,
            timeout: Duration::from_millis(timeout_ms),
            retries,
            backoff: Duration::from_millis(20),
            headers: [("Authorization".to_string(), "Bearer t0k3n".to_string())].into(),
        })
        .unwrap()
    }

    fn decision() -> (Decision, Allowed) {
        let key = SigningKey::new(Some("planner"), b"0123456789abcdef0123456789abcdef").unwrap();
        let mut d = crate::testing::scale("d-42", "checkout", 4, 9);
        d.sign(&key);
        let allowed = Allowed {
            replicas_to: Some(8),
            tune_to: None,
            dry_run: false,
            executor: "webhook".into(),
            note: None,
        };
        (d, allowed)
    }

    #[test]
    fn a_500_then_a_200_is_one_success_with_the_same_signed_body_twice() {
        let dir = tempfile::tempdir().unwrap();
        let (url, seen) = receiver(vec![(500, Duration::ZERO), (200, Duration::ZERO)]);
        let (d, allowed) = decision();
        let msg = executor(&url, dir.path(), 2_000, 3)
            .execute(&d, &allowed)
            .unwrap();
        assert_eq!(
            msg,
            format!("POST {url}: 200 on attempt 2 after attempt 1: 500 answer 500: answer 200")
        );
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].body, seen[1].body, "the same body on every attempt");
        let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
        assert_eq!(body["replicas_to"], 8, "the replicas after the policy");
        let sent = Decision::decode(Some(body["decision"].to_string().as_bytes())).unwrap();
        assert_eq!(sent, d, "the signed decision, whole");
        let signer = SigningKey::new(Some("planner"), b"0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(sent.verify(&[signer]), Ok(()));
        let webhook_key = SigningKey::new(None, SECRET.as_bytes()).unwrap();
        for (i, s) in seen.iter().enumerate() {
            assert_eq!(s.headers["idempotency-key"], "d-42");
            assert_eq!(s.headers["x-apo-decision-id"], "d-42");
            assert_eq!(s.headers["x-apo-attempt"], (i + 1).to_string());
            assert_eq!(s.headers["content-type"], "application/json");
            assert_eq!(s.headers["authorization"], "Bearer t0k3n");
            assert_eq!(
                s.headers["x-apo-signature-256"],
                format!("sha256={}", webhook_key.sign_bytes(&s.body))
            );
        }
    }

    #[test]
    fn a_receiver_that_does_not_answer_in_time_fails_after_its_retries() {
        let dir = tempfile::tempdir().unwrap();
        let (url, seen) = receiver(vec![
            (200, Duration::from_secs(3)),
            (200, Duration::from_secs(3)),
        ]);
        let (d, allowed) = decision();
        let started = Instant::now();
        let e = executor(&url, dir.path(), 300, 1)
            .execute(&d, &allowed)
            .unwrap_err()
            .to_string();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(
            e.starts_with(&format!(
                "POST {url} failed after 2 attempt(s): attempt 1: timed out"
            )),
            "{e}"
        );
        assert!(e.contains("attempt 2: timed out"), "{e}");
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_refused_connection_is_retried_then_failed_and_a_4xx_is_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let url = format!("http://127.0.0.1:{port}/");
        let (d, allowed) = decision();
        let e = executor(&url, dir.path(), 1_000, 2)
            .execute(&d, &allowed)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("failed after 3 attempt(s): attempt 1: could not connect"),
            "{e}"
        );
        assert!(e.to_lowercase().contains("connection refused"), "{e}");

        let (url, seen) = receiver(vec![(403, Duration::ZERO), (200, Duration::ZERO)]);
        let e = executor(&url, dir.path(), 1_000, 3)
            .execute(&d, &allowed)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!("POST {url} failed after 1 attempt(s): attempt 1: 403 answer 403")
        );
        assert_eq!(seen.lock().unwrap().len(), 1, "a refusal is not sent again");
    }

    #[test]
    fn bad_settings_are_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let ok = |url: &str, secret: &std::path::Path| WebhookConfig {
            url: url.into(),
            secret_file: secret.into(),
            timeout: default_timeout(),
            retries: 0,
            backoff: default_backoff(),
            headers: BTreeMap::new(),
        };
        let key = dir.path().join("k");
        std::fs::write(&key, SECRET).unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "abc").unwrap();
        for (c, says) in [
            (ok("ftp://x/", &key), "not http or https"),
            (ok("not a url", &key), "url `not a url`"),
            (ok("http://x/", &short), "at least 16 bytes"),
            (ok("http://x/", &dir.path().join("none")), "secret_file"),
        ] {
            let e = WebhookExecutor::new(&c).err().unwrap();
            assert!(e.contains(says), "{c:?}: {e}");
        }
    }
}
