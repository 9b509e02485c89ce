//! The fleet's control endpoints, so that the actuators' executors drive the simulation
//! unchanged:
//!
//! - `POST /hooks/…`: the `webhook` executor's body (`{"decision": …, "replicas_to": …,
//!   "tune_to": …}`), its `X-APO-Signature-256` checked when the sim holds the secret, each
//!   `Idempotency-Key` carried out once (a retry of one already done is answered 200, nothing
//!   done again). Scales, tunes and rollbacks (the service back to its stable version); any
//!   other action is refused (422).
//! - `GET` / `PUT` / `PATCH` of `/apis/apps/v1/namespaces/NS/{deployments,statefulsets}/NAME/scale`:
//!   the `kubernetes` executor's scale subresource (an `autoscaling/v1` `Scale`: `spec.replicas`
//!   asked, `status.replicas` serving, `metadata.resourceVersion` the workload's version). A PUT
//!   naming another resourceVersion is a 409 Conflict; errors are `Status` objects, as the API
//!   server answers. The namespace is not checked: a service is found by its name.
//! - `GET` / `PATCH` of `/apis/apps/v1/namespaces/NS/{deployments,statefulsets}/NAME`: the
//!   workload, its tuned settings as the environment of its one container (`app`); a strategic
//!   merge patch of that environment (or of the pod template's annotations) naming the
//!   resourceVersion it read sets those settings, by the variable's (or annotation's) name,
//!   which is the setting's name on the board. What the `kubernetes` executor's tune sends.
//!
//! A hyper server on a thread of its own (a current-thread tokio runtime), stopped when its
//! [`ControlServer`] is dropped.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use apo_schemas::decision::SigningKey;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::board::{Board, ControlError, Workload};

/// The largest request body read.
const MAX_BODY: usize = 1 << 20;

/// What the endpoints share.
struct Endpoints {
    board: Arc<Board>,
    /// The webhook's secret, when the sim checks signatures.
    secret: Option<SigningKey>,
    /// The idempotency keys carried out.
    done: Mutex<HashSet<String>>,
}

/// A running control server.
pub struct ControlServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ControlServer {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `board` on `bind` (port 0: any free one), checking webhook signatures with `secret`
/// when given.
pub fn serve(
    board: Arc<Board>,
    bind: SocketAddr,
    secret: Option<SigningKey>,
) -> std::io::Result<ControlServer> {
    let listener = std::net::TcpListener::bind(bind)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let endpoints = Arc::new(Endpoints {
        board,
        secret,
        done: Mutex::new(HashSet::new()),
    });
    let thread = std::thread::Builder::new()
        .name("sim-control".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "the sim's control endpoints cannot listen");
                        return;
                    }
                };
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let ep = endpoints.clone();
                            tokio::spawn(async move {
                                let service = service_fn(move |req| {
                                    let ep = ep.clone();
                                    async move { Ok::<_, Infallible>(ep.handle(req).await) }
                                });
                                if let Err(e) = http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await
                                {
                                    tracing::debug!(error = %e, "a control connection ended");
                                }
                            });
                        }
                    }
                }
            })
        })?;
    Ok(ControlServer {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// A JSON answer.
fn answer(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// A Kubernetes `Status` of a failure.
fn status(code: StatusCode, reason: &str, message: &str) -> Response<Full<Bytes>> {
    answer(
        code,
        &json!({
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code.as_u16(),
        }),
    )
}

/// A refusal as a `Status`.
fn refused(e: ControlError) -> Response<Full<Bytes>> {
    let (code, reason) = refusal(&e);
    status(code, reason, &e.to_string())
}

/// The status and reason of a refusal.
fn refusal(e: &ControlError) -> (StatusCode, &'static str) {
    match e {
        ControlError::Unknown(_) => (StatusCode::NOT_FOUND, "NotFound"),
        ControlError::Conflict { .. } => (StatusCode::CONFLICT, "Conflict"),
        ControlError::TooMany { .. } | ControlError::BadValue { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, "Invalid")
        }
    }
}

/// The `Scale` of workload `w` named `name` in `namespace`.
fn scale_of(name: &str, namespace: &str, w: &Workload) -> Value {
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "resourceVersion": w.version.to_string(),
        },
        "spec": { "replicas": w.replicas },
        "status": { "replicas": w.ready, "selector": format!("app={name}") },
    })
}

/// `(namespace, name)` of a scale subresource's path.
fn scale_path(path: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["apis", "apps", "v1", "namespaces", ns, "deployments" | "statefulsets", name, "scale"] => {
            Some((ns, name))
        }
        _ => None,
    }
}

/// `(namespace, name)` of a workload's path.
fn workload_path(path: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["apis", "apps", "v1", "namespaces", ns, "deployments" | "statefulsets", name] => {
            Some((ns, name))
        }
        _ => None,
    }
}

/// The Deployment of workload `w` named `name` in `namespace`: its settings as the
/// environment of its container `app`.
fn deployment_of(name: &str, namespace: &str, w: &Workload) -> Value {
    let env: Vec<Value> = w
        .settings
        .iter()
        .map(|(k, v)| json!({ "name": k, "value": v.to_string() }))
        .collect();
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "resourceVersion": w.version.to_string(),
        },
        "spec": {
            "replicas": w.replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [ { "name": "app", "image": "apo-sim", "env": env } ] },
            },
        },
        "status": { "replicas": w.replicas, "readyReplicas": w.ready },
    })
}

/// The settings a strategic merge patch of a pod template sets: every container's `env`
/// entries and the template's annotations, each a number (else the error).
fn settings_in(patch: &Value) -> Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    let template = &patch["spec"]["template"];
    let containers = template["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let env = containers
        .iter()
        .flat_map(|c| c["env"].as_array().cloned().unwrap_or_default())
        .map(|e| (e["name"].clone(), e["value"].clone()));
    let annotations = template["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (Value::String(k), v));
    for (name, value) in env.chain(annotations) {
        let Some(name) = name.as_str() else {
            return Err("an env entry without a name".into());
        };
        let number = value.as_str().and_then(|t| t.trim().parse::<f64>().ok());
        match number {
            Some(x) => out.push((name.to_string(), x)),
            None => return Err(format!("`{name}`: {value} is not a number the sim can set")),
        }
    }
    Ok(out)
}

/// The resourceVersion a write names (a PUT names the one it read; a PATCH need not): one
/// that is not a number cannot be the workload's, a conflict.
// The error is the response itself, built once per request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn expected_version(v: &Value) -> Result<Option<u64>, Response<Full<Bytes>>> {
    match v
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        Some(text) => text.parse::<u64>().map(Some).map_err(|_| {
            status(
                StatusCode::CONFLICT,
                "Conflict",
                &format!("resourceVersion `{text}` is not this workload's"),
            )
        }),
        None => Ok(None),
    }
}

/// `spec.replicas` of a body, when it is a count.
fn replicas_in(body: &Value) -> Option<u32> {
    body.pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

impl Endpoints {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let bytes = match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("reading the body: {e}"),
                )
            }
        };
        let path = parts.uri.path();
        if let Some((ns, name)) = scale_path(path) {
            return self.scale(&parts.method, ns, name, &bytes);
        }
        if let Some((ns, name)) = workload_path(path) {
            return self.workload(&parts.method, ns, name, &bytes);
        }
        if parts.method == Method::POST && path.starts_with("/hooks/") {
            return self.hook(&parts.headers, &bytes);
        }
        status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{} {path}: not an endpoint of the sim", parts.method),
        )
    }

    /// The scale subresource.
    fn scale(&self, method: &Method, ns: &str, name: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let done = match *method {
            Method::GET => self.board.get(name),
            Method::PUT | Method::PATCH => {
                let Ok(v) = serde_json::from_slice::<Value>(body) else {
                    return status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "the body is not JSON",
                    );
                };
                let Some(replicas) = replicas_in(&v) else {
                    return status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        "spec.replicas: a count of replicas (0 or more) is required",
                    );
                };
                let expect = match expected_version(&v) {
                    Ok(e) => e,
                    Err(r) => return r,
                };
                self.board.scale(name, replicas, expect)
            }
            _ => {
                return status(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    &format!("{method} of a scale: GET, PUT or PATCH"),
                )
            }
        };
        match done {
            Ok(w) => answer(StatusCode::OK, &scale_of(name, ns, &w)),
            Err(e) => refused(e),
        }
    }

    /// The workload: read, or its pod template's settings patched.
    fn workload(
        &self,
        method: &Method,
        ns: &str,
        name: &str,
        body: &[u8],
    ) -> Response<Full<Bytes>> {
        match *method {
            Method::GET => match self.board.get(name) {
                Ok(w) => answer(StatusCode::OK, &deployment_of(name, ns, &w)),
                Err(e) => refused(e),
            },
            Method::PATCH => {
                let Ok(v) = serde_json::from_slice::<Value>(body) else {
                    return status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "the body is not JSON",
                    );
                };
                let settings = match settings_in(&v) {
                    Ok(s) if !s.is_empty() => s,
                    Ok(_) => {
                        return status(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Invalid",
                            "the sim patches a pod template's env or annotations only",
                        )
                    }
                    Err(e) => return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e),
                };
                let mut expect = match expected_version(&v) {
                    Ok(e) => e,
                    Err(r) => return r,
                };
                let mut last = None;
                for (setting, value) in settings {
                    match self.board.tune(name, &setting, value, expect) {
                        Ok(w) => last = Some(w),
                        Err(e) => return refused(e),
                    }
                    // the patch's later entries go with its first
                    expect = None;
                }
                match last {
                    Some(w) => answer(StatusCode::OK, &deployment_of(name, ns, &w)),
                    None => refused(ControlError::Unknown(name.to_string())),
                }
            }
            _ => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                &format!("{method} of a workload: GET or PATCH"),
            ),
        }
    }

    /// The webhook.
    fn hook(&self, headers: &HeaderMap, body: &[u8]) -> Response<Full<Bytes>> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let refuse = |code: StatusCode, why: String| answer(code, &json!({ "error": why }));
        if let Some(key) = &self.secret {
            let want = format!("sha256={}", key.sign_bytes(body));
            if header("x-apo-signature-256") != Some(want.as_str()) {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "X-APO-Signature-256 is missing or wrong".into(),
                );
            }
        }
        let idempotency = header("idempotency-key").map(str::to_string);
        if let Some(k) = &idempotency {
            if self
                .done
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(k)
            {
                return answer(
                    StatusCode::OK,
                    &json!({ "applied": false, "reason": format!("{k} was carried out already") }),
                );
            }
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return refuse(StatusCode::BAD_REQUEST, "the body is not JSON".into());
        };
        let d = &v["decision"];
        let (Some(target), Some(action)) = (d["target"].as_str(), d["action"].as_str()) else {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "decision.target and decision.action are required".into(),
            );
        };
        let done = match action {
            "scale" => {
                let to = v["replicas_to"]
                    .as_u64()
                    .or_else(|| d["replicas_to"].as_u64());
                match to.and_then(|n| u32::try_from(n).ok()) {
                    Some(n) => self.board.scale(target, n, None),
                    None => {
                        return refuse(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "a scale needs replicas_to, a count of replicas".into(),
                        )
                    }
                }
            }
            "tune" => {
                let setting = d.pointer("/tune/setting").and_then(Value::as_str);
                let to = v["tune_to"]
                    .as_f64()
                    .or_else(|| d.pointer("/tune/to").and_then(Value::as_f64));
                match (setting, to) {
                    (Some(s), Some(x)) => self.board.tune(target, s, x, None),
                    _ => {
                        return refuse(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "a tune needs decision.tune.setting and tune_to".into(),
                        )
                    }
                }
            }
            "rollback" => self.board.rollback(target),
            other => {
                return refuse(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("the sim carries out scales, tunes and rollbacks, not `{other}`"),
                )
            }
        };
        match done {
            Ok(w) => {
                if let Some(k) = idempotency {
                    self.done
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(k);
                }
                answer(
                    StatusCode::OK,
                    &json!({
                        "applied": true,
                        "service": target,
                        "replicas": w.replicas,
                        "ready": w.ready,
                        "settings": w.settings,
                    }),
                )
            }
            Err(e) => refuse(refusal(&e).0, e.to_string()),
        }
    }
}
