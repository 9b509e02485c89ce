//! The `kubernetes` executor (kube-rs): a Deployment's or StatefulSet's `scale` subresource for
//! replicas, an annotation for a circuit's state, the pod template's env or annotations for a
//! tuned setting.
//!
//! ```toml
//! [targets.checkout]
//! executor = "kubernetes"
//! dry_run = false
//! [targets.checkout.kubernetes]
//! kind = "Deployment"          # or "StatefulSet"
//! name = "checkout"            # default: the target's name
//! namespace = "shop"           # default: the kubeconfig's namespace ("default")
//! # api_server = "https://…"   # default: in-cluster, else $KUBECONFIG / ~/.kube/config
//! # container = "app"          # the container whose env a tune sets (default: the first)
//! [targets.checkout.kubernetes.env]          # a tuned setting -> the container's variable
//! "db.client.connection.max" = "DB_POOL_MAX_SIZE"
//! # [targets.checkout.kubernetes.annotations] # or -> a pod template annotation
//! # "db.client.connection.max" = "apo.dev/db-pool-max"
//! ```
//!
//! - **scale**: GET the scale; if the workload does not have the replicas the decision saw
//!   (`replicas_from`), nothing changes (the decision is stale: someone or something else
//!   scaled it); else PUT the scale with the `resourceVersion` just read, so a change made
//!   in between is a 409 Conflict, not a lost update: then the scale is read again (the same
//!   staleness check) and written again, at most three times.
//! - **rollback**: the target is the canary's workload: scaled to 0 (the canary pattern of a
//!   Deployment of its own beside the baseline's).
//! - **circuit**: a merge patch of the workload's own annotations (not the pod template's: no
//!   rollout), `apo.dev/circuit.<peer>: open|half_open|closed`, for a mesh controller or the
//!   client's library to act on.
//! - **tune**: GET the workload; if the pod template already sets the setting's variable (or
//!   annotation) to another value than the decision saw (`from`), nothing changes (stale);
//!   else a strategic merge patch of the pod template, the container's `env` entry (or the
//!   template's annotation) set to the value, carrying the `resourceVersion` just read so
//!   that a change made in between is a 409 Conflict: read again, at most three times. A
//!   change of the pod template rolls the workload out: the new value takes effect as the
//!   pods are replaced. A setting the table maps to neither is refused (nothing changes).
//!
//! Only tested against an HTTP server standing in for the API server's `apps/v1` paths; it has
//! not run against a real cluster.

use std::collections::BTreeMap;
use std::fmt::Debug;

use apo_schemas::decision::{Decision, DecisionAction};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{ExecError, Executor};
use crate::policy::Allowed;

/// Writes of a scale tried after a conflict.
const CONFLICT_TRIES: u32 = 3;

/// ` after N conflict(s)` when there were any.
fn after_conflicts(conflicts: &[String]) -> String {
    if conflicts.is_empty() {
        String::new()
    } else {
        format!(" after {} conflict(s)", conflicts.len())
    }
}

/// The error when every try of `doing` met a conflict.
fn gave_up(doing: &str, conflicts: &[String]) -> ExecError {
    ExecError(format!(
        "{doing}: {CONFLICT_TRIES} conflicts (resourceVersions {}); nothing changed",
        conflicts.join(", ")
    ))
}

/// The workload kinds with a scale subresource this executor handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Kind {
    /// `apps/v1` Deployment.
    #[default]
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
}

/// A target's `[targets.X.kubernetes]` table.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The workload's kind.
    #[serde(default)]
    pub kind: Kind,
    /// Its name (default: the target's).
    #[serde(default)]
    pub name: Option<String>,
    /// Its namespace (default: the kubeconfig's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The API server (default: in-cluster, else the kubeconfig).
    #[serde(default)]
    pub api_server: Option<String>,
    /// The container whose environment a tune sets (default: the pod template's first).
    #[serde(default)]
    pub container: Option<String>,
    /// Per tuned setting, the container's environment variable that carries it.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Per tuned setting, the pod template's annotation that carries it.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl KubernetesConfig {
    /// What is wrong with these settings, if anything.
    pub fn check(&self) -> Result<(), String> {
        if let Some(s) = self.env.keys().find(|s| self.annotations.contains_key(*s)) {
            return Err(format!(
                "kubernetes: setting `{s}` is in both env and annotations; give one"
            ));
        }
        Ok(())
    }
}

/// Where a tuned setting lives in the pod template.
enum Carrier<'a> {
    /// A container's environment variable.
    Env(&'a str),
    /// A template annotation.
    Annotation(&'a str),
}

/// A number as a setting's text: `10`, `0.5`.
fn setting_text(v: f64) -> String {
    v.to_string()
}

/// Acts on one cluster.
pub struct KubernetesExecutor {
    config: KubernetesConfig,
    runtime: tokio::runtime::Runtime,
    client: Client,
    namespace: String,
}

impl KubernetesExecutor {
    /// An executor for `config`, its client built (the kubeconfig read) now.
    pub fn new(config: &KubernetesConfig) -> Result<Self, String> {
        config.check()?;
        // Several TLS crypto providers are linked into the binary (kube-rs' ring, others'
        // aws-lc-rs): rustls then needs one named for the process. Already set: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("a runtime for the Kubernetes client: {e}"))?;
        let kube_config = match &config.api_server {
            Some(url) => {
                let uri = url
                    .parse()
                    .map_err(|e| format!("api_server `{url}`: {e}"))?;
                Config::new(uri)
            }
            None => runtime.block_on(Config::infer()).map_err(|e| {
                format!("no Kubernetes configuration (in-cluster or kubeconfig): {e}")
            })?,
        };
        let namespace = config
            .namespace
            .clone()
            .unwrap_or_else(|| kube_config.default_namespace.clone());
        let client = {
            let _guard = runtime.enter();
            Client::try_from(kube_config).map_err(|e| format!("a Kubernetes client: {e}"))?
        };
        Ok(KubernetesExecutor {
            config: config.clone(),
            runtime,
            client,
            namespace,
        })
    }

    fn name<'a>(&'a self, d: &'a Decision) -> &'a str {
        self.config.name.as_deref().unwrap_or(&d.target)
    }

    fn what(&self, d: &Decision) -> String {
        format!("{:?} {}/{}", self.config.kind, self.namespace, self.name(d))
    }

    /// Sets the workload's replicas to `to`, if it has `from` (when given).
    fn scale(&self, d: &Decision, from: Option<u32>, to: u32) -> Result<String, ExecError> {
        match self.config.kind {
            Kind::Deployment => self.scale_of::<Deployment>(d, from, to),
            Kind::StatefulSet => self.scale_of::<StatefulSet>(d, from, to),
        }
    }

    fn scale_of<K>(&self, d: &Decision, from: Option<u32>, to: u32) -> Result<String, ExecError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.namespace);
        let (name, what) = (self.name(d), self.what(d));
        let mut conflicts = Vec::new();
        for _ in 0..CONFLICT_TRIES {
            let mut scale = self
                .runtime
                .block_on(api.get_scale(name))
                .map_err(|e| ExecError(format!("reading the scale of {what}: {e}")))?;
            let live = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            if let Some(from) = from.filter(|f| i64::from(*f) != i64::from(live)) {
                return Err(ExecError(format!(
                    "stale: {what} has {live} replicas, the decision saw {from}; nothing changed"
                )));
            }
            let version = scale.metadata.resource_version.clone().unwrap_or_default();
            scale.spec.get_or_insert_with(Default::default).replicas =
                Some(i32::try_from(to).unwrap_or(i32::MAX));
            match self
                .runtime
                .block_on(api.replace_scale(name, &PostParams::default(), &scale))
            {
                Ok(done) => {
                    let after = done.metadata.resource_version.unwrap_or_default();
                    let retried = after_conflicts(&conflicts);
                    return Ok(format!(
                        "scaled {what} {live} -> {to} (resourceVersion {version} -> {after}){retried}"
                    ));
                }
                Err(kube::Error::Api(status)) if status.is_conflict() => {
                    tracing::warn!(workload = %what, "scale conflict at resourceVersion {version}: reading it again");
                    conflicts.push(version);
                }
                Err(e) => return Err(ExecError(format!("writing the scale of {what}: {e}"))),
            }
        }
        Err(gave_up(&format!("writing the scale of {what}"), &conflicts))
    }

    /// Sets a tuned setting in the pod template (see the module's doc).
    fn tune(&self, d: &Decision, to: f64) -> Result<String, ExecError> {
        let t = d
            .tune
            .as_ref()
            .ok_or_else(|| ExecError("a tune decision without its setting".into()))?;
        let carrier = match (
            self.config.env.get(&t.setting),
            self.config.annotations.get(&t.setting),
        ) {
            (Some(var), _) => Carrier::Env(var),
            (None, Some(key)) => Carrier::Annotation(key),
            (None, None) => {
                return Err(ExecError(format!(
                    "no env variable or annotation for the setting `{}` in \
                     [targets.{}.kubernetes]; nothing changed",
                    t.setting, d.target
                )))
            }
        };
        match self.config.kind {
            Kind::Deployment => self.tune_of::<Deployment>(d, t.from, to, &carrier),
            Kind::StatefulSet => self.tune_of::<StatefulSet>(d, t.from, to, &carrier),
        }
    }

    fn tune_of<K>(
        &self,
        d: &Decision,
        from: Option<f64>,
        to: f64,
        carrier: &Carrier<'_>,
    ) -> Result<String, ExecError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Serialize
            + Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.namespace);
        let (name, what) = (self.name(d), self.what(d));
        let value = setting_text(to);
        let mut conflicts = Vec::new();
        for _ in 0..CONFLICT_TRIES {
            let live = self
                .runtime
                .block_on(api.get(name))
                .map_err(|e| ExecError(format!("reading {what}: {e}")))?;
            let live = serde_json::to_value(&live)
                .map_err(|e| ExecError(format!("reading {what}: {e}")))?;
            let version = live["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let template = &live["spec"]["template"];
            let (now, patch, place) = match carrier {
                Carrier::Env(var) => {
                    let containers = template["spec"]["containers"].as_array();
                    let container = containers.and_then(|cs| match &self.config.container {
                        Some(c) => cs.iter().find(|x| x["name"] == c.as_str()),
                        None => cs.first(),
                    });
                    let Some(container) = container else {
                        return Err(ExecError(format!(
                            "{what} has no container {}; nothing changed",
                            self.config.container.as_deref().unwrap_or("at all")
                        )));
                    };
                    let cname = container["name"].as_str().unwrap_or_default().to_string();
                    let now = container["env"].as_array().and_then(|env| {
                        env.iter()
                            .find(|e| e["name"] == *var)
                            .and_then(|e| e["value"].as_str().map(str::to_string))
                    });
                    let patch = serde_json::json!({
                        "metadata": { "resourceVersion": version },
                        "spec": { "template": { "spec": { "containers": [
                            { "name": cname, "env": [ { "name": var, "value": value } ] }
                        ] } } }
                    });
                    (now, patch, format!("container {cname} env {var}"))
                }
                Carrier::Annotation(key) => {
                    let now = template["metadata"]["annotations"][*key]
                        .as_str()
                        .map(str::to_string);
                    let patch = serde_json::json!({
                        "metadata": { "resourceVersion": version },
                        "spec": { "template": { "metadata": { "annotations": { *key: value } } } }
                    });
                    (now, patch, format!("pod template annotation {key}"))
                }
            };
            if let (Some(now), Some(from)) = (&now, from) {
                if now.trim().parse::<f64>().ok() != Some(from) {
                    return Err(ExecError(format!(
                        "stale: {what} has {place}={now}, the decision saw {}; nothing changed",
                        setting_text(from)
                    )));
                }
            }
            match self.runtime.block_on(api.patch(
                name,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )) {
                Ok(_) => {
                    let retried = after_conflicts(&conflicts);
                    return Ok(format!(
                        "set {what} {place} {} -> {value} (resourceVersion {version}; the pods \
                         roll out){retried}",
                        now.as_deref().unwrap_or("unset")
                    ));
                }
                Err(kube::Error::Api(status)) if status.is_conflict() => {
                    tracing::warn!(workload = %what, "tune conflict at resourceVersion {version}: reading it again");
                    conflicts.push(version);
                }
                Err(e) => return Err(ExecError(format!("patching {what}: {e}"))),
            }
        }
        Err(gave_up(&format!("patching {what}"), &conflicts))
    }

    /// Annotates the workload with `key: value` (a merge patch).
    fn annotate(&self, d: &Decision, key: &str, value: &str) -> Result<String, ExecError> {
        let patch = serde_json::json!({ "metadata": { "annotations": { key: value } } });
        let name = self.name(d);
        let what = self.what(d);
        let params = PatchParams::default();
        let result = match self.config.kind {
            Kind::Deployment => {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
                self.runtime
                    .block_on(api.patch(name, &params, &Patch::Merge(&patch)))
                    .map(|_| ())
            }
            Kind::StatefulSet => {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &self.namespace);
                self.runtime
                    .block_on(api.patch(name, &params, &Patch::Merge(&patch)))
                    .map(|_| ())
            }
        };
        result.map_err(|e| ExecError(format!("annotating {what}: {e}")))?;
        Ok(format!("annotated {what} {key}={value}"))
    }
}

impl Executor for KubernetesExecutor {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn execute(&mut self, d: &Decision, allowed: &Allowed) -> Result<String, ExecError> {
        match d.action {
            DecisionAction::Scale => {
                let to = allowed
                    .replicas_to
                    .ok_or_else(|| ExecError("a scale without replicas_to".into()))?;
                self.scale(d, d.replicas_from, to)
            }
            DecisionAction::Rollback => self.scale(d, None, 0),
            DecisionAction::Circuit => {
                let c = d
                    .circuit
                    .as_ref()
                    .ok_or_else(|| ExecError("a circuit decision without its change".into()))?;
                self.annotate(d, &format!("apo.dev/circuit.{}", c.peer), c.state.as_str())
            }
            DecisionAction::Tune => {
                let to = allowed
                    .tune_to
                    .ok_or_else(|| ExecError("a tune without its value".into()))?;
                self.tune(d, to)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apo_schemas::decision::{CircuitChange, CircuitState};
    use std::sync::{Arc, Mutex};

    /// A request as the stand-in API server saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        url: String,
        content_type: String,
        body: serde_json::Value,
    }

    /// An HTTP server standing in for the API server's `apps/v1` paths of one Deployment
    /// (shop/checkout): its scale (GET, PUT with resourceVersion checks: a stale version is a
    /// 409 Conflict) and merge patches; `meddle` PUTs to the scale are answered with a conflict
    /// first, as if someone else had written in between (their write: +1 replica).
    struct ApiServer {
        url: String,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl ApiServer {
        fn start(replicas: i32, meddle: usize) -> ApiServer {
            let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
            let port = server.server_addr().to_ip().unwrap().port();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let log = seen.clone();
            std::thread::spawn(move || {
                let (mut replicas, mut version, mut meddle) = (replicas, 7u64, meddle);
                // the pod template's env variable of container `app` and its annotations
                let mut pool = Some("5".to_string());
                let mut annotations = serde_json::Map::new();
                let scale_path = "/apis/apps/v1/namespaces/shop/deployments/checkout/scale";
                for mut req in server.incoming_requests() {
                    let mut text = String::new();
                    let _ = req.as_reader().read_to_string(&mut text);
                    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
                    let method = req.method().to_string();
                    let url = req.url().to_string();
                    let content_type = req
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("Content-Type"))
                        .map(|h| h.value.to_string())
                        .unwrap_or_default();
                    log.lock().unwrap().push(Seen {
                        method: method.clone(),
                        url: url.clone(),
                        content_type: content_type.clone(),
                        body: body.clone(),
                    });
                    let scale = |r: i32, v: u64| {
                        serde_json::json!({
                            "apiVersion": "autoscaling/v1", "kind": "Scale",
                            "metadata": {"name": "checkout", "namespace": "shop",
                                         "resourceVersion": v.to_string()},
                            "spec": {"replicas": r}, "status": {"replicas": r}
                        })
                    };
                    let conflict = serde_json::json!({
                        "kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "reason": "Conflict", "code": 409,
                        "message": "Operation cannot be fulfilled on deployments.apps \"checkout\": the object has been modified; please apply your changes to the latest version and try again"
                    });
                    let deployment = |pool: &Option<String>,
                                      annotations: &serde_json::Map<String, serde_json::Value>,
                                      v: u64| {
                        let env: Vec<serde_json::Value> = pool
                            .iter()
                            .map(|p| serde_json::json!({"name": "DB_POOL_MAX", "value": p}))
                            .collect();
                        serde_json::json!({
                            "apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "checkout", "namespace": "shop",
                                         "resourceVersion": v.to_string()},
                            "spec": {"selector": {"matchLabels": {"app": "checkout"}},
                                     "template": {
                                        "metadata": {"annotations": annotations},
                                        "spec": {"containers": [
                                            {"name": "app", "image": "shop/checkout:1", "env": env},
                                            {"name": "proxy", "image": "envoy:1"}]}}}
                        })
                    };
                    let strategic = content_type == "application/strategic-merge-patch+json";
                    let deployment_path = "/apis/apps/v1/namespaces/shop/deployments/checkout";
                    let (code, answer) = match (
                        method.as_str(),
                        url.split('?').next().unwrap_or(""),
                    ) {
                        ("GET", p) if p == deployment_path => {
                            (200, deployment(&pool, &annotations, version))
                        }
                        ("PATCH", p) if p == deployment_path && strategic => {
                            let asked = body["metadata"]["resourceVersion"].as_str().unwrap_or("");
                            if meddle > 0 {
                                // someone else set the variable in between
                                meddle -= 1;
                                pool = Some("6".into());
                                version += 1;
                                (409, conflict.clone())
                            } else if asked != version.to_string() {
                                (409, conflict.clone())
                            } else {
                                let template = &body["spec"]["template"];
                                for c in template["spec"]["containers"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                {
                                    for e in c["env"].as_array().into_iter().flatten() {
                                        if c["name"] == "app" && e["name"] == "DB_POOL_MAX" {
                                            pool = e["value"].as_str().map(str::to_string);
                                        }
                                    }
                                }
                                if let Some(a) = template["metadata"]["annotations"].as_object() {
                                    annotations.extend(a.clone());
                                }
                                version += 1;
                                (200, deployment(&pool, &annotations, version))
                            }
                        }
                        ("GET", p) if p == scale_path => (200, scale(replicas, version)),
                        ("PUT", p) if p == scale_path => {
                            let asked = body["metadata"]["resourceVersion"].as_str().unwrap_or("");
                            if meddle > 0 {
                                meddle -= 1;
                                replicas += 1;
                                version += 1;
                                (409, conflict)
                            } else if asked != version.to_string() {
                                (409, conflict)
                            } else {
                                replicas = body["spec"]["replicas"].as_i64().unwrap_or(0) as i32;
                                version += 1;
                                (200, scale(replicas, version))
                            }
                        }
                        ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/checkout") => (
                            200,
                            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
                                "metadata": {"name": "checkout", "namespace": "shop"}}),
                        ),
                        _ => (
                            404,
                            serde_json::json!({"kind": "Status", "apiVersion": "v1",
                            "metadata": {}, "status": "Failure", "reason": "NotFound", "code": 404}),
                        ),
                    };
                    let header = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        &b"application/json"[..],
                    )
                    .unwrap();
                    let _ = req.respond(
                        tiny_http::Response::from_string(answer.to_string())
                            .with_status_code(code)
                            .with_header(header),
                    );
                }
            });
            ApiServer {
                url: format!("http://127.0.0.1:{port}"),
                seen,
            }
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    fn config(api: &ApiServer) -> KubernetesConfig {
        KubernetesConfig {
            kind: Kind::Deployment,
            name: None,
            namespace: Some("shop".into()),
            api_server: Some(api.url.clone()),
            ..KubernetesConfig::default()
        }
    }

    fn executor(api: &ApiServer) -> KubernetesExecutor {
        KubernetesExecutor::new(&config(api)).unwrap()
    }

    fn allowed(to: Option<u32>) -> Allowed {
        Allowed {
            replicas_to: to,
            tune_to: None,
            dry_run: false,
            executor: "kubernetes".into(),
            note: None,
        }
    }

    #[test]
    fn a_scale_reads_then_writes_the_scale_with_its_resource_version() {
        let api = ApiServer::start(4, 0);
        let d = crate::testing::scale("d", "checkout", 4, 6);
        let msg = executor(&api).execute(&d, &allowed(Some(6))).unwrap();
        assert_eq!(
            msg,
            "scaled Deployment shop/checkout 4 -> 6 (resourceVersion 7 -> 8)"
        );
        let seen = api.seen();
        let calls: Vec<(&str, &str)> = seen
            .iter()
            .map(|s| (s.method.as_str(), s.url.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                (
                    "GET",
                    "/apis/apps/v1/namespaces/shop/deployments/checkout/scale"
                ),
                (
                    "PUT",
                    "/apis/apps/v1/namespaces/shop/deployments/checkout/scale?"
                ),
            ]
        );
        let put = &seen[1];
        assert_eq!(put.content_type, "application/json");
        assert_eq!(put.body["kind"], "Scale");
        assert_eq!(put.body["metadata"]["resourceVersion"], "7");
        assert_eq!(put.body["spec"]["replicas"], 6);
    }

    #[test]
    fn a_conflict_is_read_again_and_a_stale_decision_changes_nothing() {
        // someone scaled to 5 between our read and our write: the conflict is read again,
        // and 4 -> 6 was decided on 4: refused
        let api = ApiServer::start(4, 1);
        let d = crate::testing::scale("d", "checkout", 4, 6);
        let e = executor(&api)
            .execute(&d, &allowed(Some(6)))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "stale: Deployment shop/checkout has 5 replicas, the decision saw 4; nothing changed"
        );
        let methods: Vec<String> = api.seen().iter().map(|s| s.method.clone()).collect();
        assert_eq!(methods, ["GET", "PUT", "GET"]);

        // a rollback (no replicas seen) writes again after the conflict, with the new version
        let api = ApiServer::start(4, 1);
        let mut d = crate::testing::scale("r", "checkout", 4, 4);
        d.action = DecisionAction::Rollback;
        d.replicas_from = None;
        let msg = executor(&api).execute(&d, &allowed(None)).unwrap();
        assert_eq!(
            msg,
            "scaled Deployment shop/checkout 5 -> 0 (resourceVersion 8 -> 9) after 1 conflict(s)"
        );
        let seen = api.seen();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[3].body["metadata"]["resourceVersion"], "8");

        // three conflicts in a row: it gives up
        let api = ApiServer::start(4, 3);
        let e = executor(&api)
            .execute(&d, &allowed(None))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("3 conflicts (resourceVersions 7, 8, 9); nothing changed"),
            "{e}"
        );
    }

    #[test]
    fn a_circuit_annotates_the_workload_and_errors_are_clear() {
        let api = ApiServer::start(4, 0);
        let mut d = crate::testing::scale("c", "checkout", 4, 4);
        d.action = DecisionAction::Circuit;
        d.circuit = Some(CircuitChange {
            peer: "payments".into(),
            state: CircuitState::Open,
            open_for_ms: Some(30_000),
        });
        let msg = executor(&api).execute(&d, &allowed(None)).unwrap();
        assert_eq!(
            msg,
            "annotated Deployment shop/checkout apo.dev/circuit.payments=open"
        );
        let seen = api.seen();
        assert_eq!(seen[0].method, "PATCH");
        assert_eq!(seen[0].content_type, "application/merge-patch+json");
        assert_eq!(
            seen[0].body,
            serde_json::json!({"metadata": {"annotations": {"apo.dev/circuit.payments": "open"}}})
        );
        // a workload that does not exist: the API server's answer, nothing else tried
        let mut other = crate::testing::scale("x", "cart", 1, 2);
        other.target = "cart".into();
        let e = executor(&api)
            .execute(&other, &allowed(Some(2)))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("reading the scale of Deployment shop/cart:"),
            "{e}"
        );
        let refused = KubernetesExecutor::new(&KubernetesConfig {
            api_server: Some("not a url".into()),
            ..KubernetesConfig::default()
        });
        assert!(refused.err().unwrap().contains("api_server `not a url`"));
    }

    /// A tune of the pool size from `from` to `to`.
    fn tune(from: f64, to: f64) -> (Decision, Allowed) {
        let d = crate::testing::tune("t", "checkout", from, to);
        let a = Allowed {
            tune_to: Some(to),
            ..allowed(None)
        };
        (d, a)
    }

    fn tuning(api: &ApiServer, env: bool) -> KubernetesExecutor {
        let mut c = config(api);
        let map = if env { &mut c.env } else { &mut c.annotations };
        map.insert(
            "db.client.connection.max".into(),
            if env {
                "DB_POOL_MAX"
            } else {
                "apo.dev/db-pool-max"
            }
            .into(),
        );
        KubernetesExecutor::new(&c).unwrap()
    }

    #[test]
    fn a_tune_patches_the_containers_env_with_its_resource_version() {
        let api = ApiServer::start(4, 0);
        let (d, a) = tune(5.0, 10.0);
        let msg = tuning(&api, true).execute(&d, &a).unwrap();
        assert_eq!(
            msg,
            "set Deployment shop/checkout container app env DB_POOL_MAX 5 -> 10 \
             (resourceVersion 7; the pods roll out)"
        );
        let seen = api.seen();
        let calls: Vec<(&str, &str)> = seen
            .iter()
            .map(|s| (s.method.as_str(), s.url.split('?').next().unwrap()))
            .collect();
        let path = "/apis/apps/v1/namespaces/shop/deployments/checkout";
        assert_eq!(calls, [("GET", path), ("PATCH", path)]);
        assert_eq!(
            seen[1].content_type,
            "application/strategic-merge-patch+json"
        );
        assert_eq!(
            seen[1].body,
            serde_json::json!({
                "metadata": {"resourceVersion": "7"},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "app", "env": [{"name": "DB_POOL_MAX", "value": "10"}]}
                ]}}}
            })
        );
        // the server has it now: the same decision again is stale (10, not 5)
        let e = tuning(&api, true).execute(&d, &a).unwrap_err().to_string();
        assert_eq!(
            e,
            "stale: Deployment shop/checkout has container app env DB_POOL_MAX=10, the \
             decision saw 5; nothing changed"
        );
    }

    #[test]
    fn a_tune_conflict_is_read_again_and_annotations_carry_a_setting_too() {
        // someone set 6 between our read and our write: read again, stale, nothing changed
        let api = ApiServer::start(4, 1);
        let (d, a) = tune(5.0, 10.0);
        let e = tuning(&api, true).execute(&d, &a).unwrap_err().to_string();
        assert!(
            e.starts_with("stale:") && e.contains("DB_POOL_MAX=6"),
            "{e}"
        );
        let methods: Vec<String> = api.seen().iter().map(|s| s.method.clone()).collect();
        assert_eq!(methods, ["GET", "PATCH", "GET"]);
        // a tune that saw no value writes again after the conflict, with the new version
        let api = ApiServer::start(4, 1);
        let (mut blind, a) = tune(5.0, 10.0);
        blind.tune.as_mut().unwrap().from = None;
        let msg = tuning(&api, true).execute(&blind, &a).unwrap();
        assert!(
            msg.ends_with(
                "DB_POOL_MAX 6 -> 10 (resourceVersion 8; the pods roll out) after 1 conflict(s)"
            ),
            "{msg}"
        );

        // an annotation of the pod template: not set before, so nothing to be stale against
        let api = ApiServer::start(4, 0);
        let msg = tuning(&api, false).execute(&d, &a).unwrap();
        assert_eq!(
            msg,
            "set Deployment shop/checkout pod template annotation apo.dev/db-pool-max unset -> 10 \
             (resourceVersion 7; the pods roll out)"
        );
        assert_eq!(
            api.seen()[1].body["spec"]["template"]["metadata"]["annotations"],
            serde_json::json!({"apo.dev/db-pool-max": "10"})
        );

        // a setting the table does not map, a container that is not there, both maps at once
        let e = executor(&api).execute(&d, &a).unwrap_err().to_string();
        assert!(
            e.starts_with("no env variable or annotation for the setting"),
            "{e}"
        );
        let mut c = config(&api);
        c.container = Some("web".into());
        c.env
            .insert("db.client.connection.max".into(), "DB_POOL_MAX".into());
        let e = KubernetesExecutor::new(&c)
            .unwrap()
            .execute(&d, &a)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "Deployment shop/checkout has no container web; nothing changed"
        );
        c.annotations
            .insert("db.client.connection.max".into(), "x".into());
        assert!(KubernetesExecutor::new(&c)
            .err()
            .unwrap()
            .contains("in both env and annotations"));
    }
}
