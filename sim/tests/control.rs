//! The sim's control endpoints driven by the actuators' own executors, unchanged: the
//! `webhook` executor's signed POST and the `kubernetes` executor (kube-rs) on the `apps/v1`
//! scale subresource, each built from a policy file as `apo actuate` builds them, against a
//! real HTTP server on loopback.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use apo_actuators::executors::Executors;
use apo_actuators::policy::Policy;
use apo_actuators::testing::{scale_now, tune};
use apo_schemas::decision::Decision;
use apo_sim::control::board::{Board, Command};
use apo_sim::control::http::{serve, ControlServer};
use apo_sim::load::Shape;
use apo_sim::run::{run, Paced, RunSpec};
use apo_sim::service::ServiceConfig;
use apo_sim::topology::Topology;

const SECRET: &str = "sim-webhook-secret-0123456789";

fn decision(id: &str, from: u32, to: u32) -> Decision {
    scale_now(id, "checkout", from, to)
}

/// What the executor named by `policy` says of `d` (after the policy's judgement).
fn execute(policy: &str, d: &Decision) -> Result<String, String> {
    let policy = Policy::from_toml(policy).unwrap();
    let allowed = policy.judge(d).unwrap();
    let mut executors = Executors::for_policy(&policy).unwrap();
    executors
        .of(&d.target)
        .execute(d, &allowed)
        .map_err(|e| e.to_string())
}

fn webhook_policy(server: &ControlServer, secret: &Path) -> String {
    format!(
        r#"
[targets.checkout]
executor = "webhook"
dry_run = false
max_replicas = 20
[targets.checkout.webhook]
url = "{}/hooks/apo"
secret_file = "{}"
retries = 0
[targets.checkout.settings."db.client.connection.max"]
max = 100
"#,
        server.url(),
        secret.display()
    )
}

/// A policy acting on `checkout` through the kubernetes executor against `server`, and
/// `extra`.
fn kubernetes_policy(server: &ControlServer, extra: &str) -> String {
    format!(
        r#"
[targets.checkout]
executor = "kubernetes"
dry_run = false
[targets.checkout.kubernetes]
kind = "Deployment"
namespace = "shop"
api_server = "{}"
{extra}"#,
        server.url()
    )
}

fn started() -> (std::sync::Arc<Board>, ControlServer, tempfile::TempDir) {
    let board = Board::new([("checkout", 2, 10)]);
    let key = apo_schemas::decision::SigningKey::new(None, SECRET.as_bytes()).unwrap();
    let server = serve(board.clone(), "127.0.0.1:0".parse().unwrap(), Some(key)).unwrap();
    (board, server, tempfile::tempdir().unwrap())
}

#[test]
fn the_webhook_executor_scales_and_tunes_the_sim_once_per_decision() {
    let (board, server, dir) = started();
    let secret = dir.path().join("webhook.key");
    std::fs::write(&secret, SECRET).unwrap();
    let policy = webhook_policy(&server, &secret);

    let d = decision("up-1", 2, 5);
    let said = execute(&policy, &d).unwrap();
    assert!(said.contains("200"), "{said}");
    assert_eq!(board.get("checkout").unwrap().replicas, 5);
    assert_eq!(
        board.take(),
        vec![Command::Scale {
            service: "checkout".into(),
            replicas: 5
        }]
    );
    // the same decision again (a retry that reached the sim twice): carried out once
    let again = execute(&policy, &d).unwrap();
    assert!(again.contains("already"), "{again}");
    assert!(board.take().is_empty());

    let t = tune("pool-1", "checkout", 10.0, 20.0);
    execute(&policy, &t).unwrap();
    assert_eq!(
        board.get("checkout").unwrap().settings["db.client.connection.max"],
        20.0
    );

    // more than the sim's service may have: refused, nothing changed
    let over = execute(&policy, &decision("up-2", 5, 12)).unwrap_err();
    assert!(
        over.contains("422") && over.contains("at most 10"),
        "{over}"
    );
    assert_eq!(board.get("checkout").unwrap().replicas, 5);

    // signed with another secret: refused
    let wrong = dir.path().join("wrong.key");
    std::fs::write(&wrong, "another-secret-0123456789abc").unwrap();
    let refused = execute(&webhook_policy(&server, &wrong), &decision("up-3", 5, 6)).unwrap_err();
    assert!(refused.contains("401"), "{refused}");
    assert_eq!(board.get("checkout").unwrap().replicas, 5);
    assert_eq!(
        board.take(),
        vec![Command::Tune {
            service: "checkout".into(),
            setting: "db.client.connection.max".into(),
            value: 20.0
        }]
    );
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
fn request(server: &ControlServer, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn the_kubernetes_executor_scales_the_sim_through_the_scale_subresource() {
    let (board, server, _dir) = started();
    let policy = kubernetes_policy(&server, "");
    let said = execute(&policy, &decision("k-1", 2, 4)).unwrap();
    assert!(said.contains("2 -> 4"), "{said}");
    assert_eq!(board.get("checkout").unwrap().replicas, 4);
    // a decision that saw 2 replicas where there are 4 is stale: nothing changes
    let stale = execute(&policy, &decision("k-2", 2, 6));
    assert_eq!(board.get("checkout").unwrap().replicas, 4, "{stale:?}");

    // the subresource itself: the scale as the API server shows it, a write on an old
    // resourceVersion a 409 Conflict Status, more than the most a 422
    board.report_ready("checkout", 3);
    let path = "/apis/apps/v1/namespaces/shop/deployments/checkout/scale";
    let (code, body) = request(&server, "GET", path, "");
    assert_eq!(code, 200, "{body}");
    let scale: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 4);
    assert_eq!(scale["status"]["replicas"], 3);
    let version = scale["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let put = |v: &str, n: i64| {
        format!(
            r#"{{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{{"name":"checkout","resourceVersion":"{v}"}},"spec":{{"replicas":{n}}}}}"#
        )
    };
    let (code, body) = request(&server, "PUT", path, &put("1", 5));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("\"reason\":\"Conflict\""), "{body}");
    let (code, body) = request(&server, "PUT", path, &put(&version, 11));
    assert_eq!(code, 422, "{body}");
    let (code, body) = request(&server, "PUT", path, &put(&version, -1));
    assert_eq!(code, 422, "no negative replicas: {body}");
    let (code, _) = request(&server, "PUT", path, &put(&version, 5));
    assert_eq!(code, 200);
    let (code, _) = request(
        &server,
        "GET",
        "/apis/apps/v1/namespaces/shop/deployments/cart/scale",
        "",
    );
    assert_eq!(code, 404);
    assert_eq!(board.get("checkout").unwrap().replicas, 5);
}

/// The loop closed through an executor: one service under a step from 20 to 100 requests/s at
/// 120 s, on 2 replicas (about 76/s of capacity), run at 60 times wall time; once the step's
/// minute is under way, the webhook executor carries out a scale to 6 (as `apo actuate` would
/// a planner's decision) and the run takes it from the board: the new replicas serve after
/// their 30 s start-up and the p95 comes back under 0.5 s.
#[test]
fn a_paced_run_takes_the_scale_an_executor_asked_for() {
    let (board, server, dir) = started();
    let secret = dir.path().join("webhook.key");
    std::fs::write(&secret, SECRET).unwrap();
    let policy = webhook_policy(&server, &secret);
    let load = Shape::Step {
        before: 20.0,
        after: 100.0,
        at_s: 120.0,
    };
    let rate = move |t: f64| load.rate_at(t);
    let speed = 60.0;
    let actor = std::thread::spawn(move || {
        // 135 s of simulated time
        std::thread::sleep(Duration::from_secs_f64(135.0 / speed));
        execute(&policy, &decision("step-up", 2, 6))
    });
    let spec = RunSpec {
        fleet: Topology::single("checkout", ServiceConfig::default(), 2),
        rate: &rate,
        peak: load.peak(),
        duration_s: 420.0,
        window_s: 60.0,
        scales: vec![],
        seed: 11,
        paced: Some(Paced {
            board: board.clone(),
            speed,
        }),
        tunes: Vec::new(),
        scrape_s: None,
        trace_sample: 0.0,
    };
    let started = std::time::Instant::now();
    let w = run(&spec).unwrap();
    let wall = started.elapsed();
    let said = actor.join().unwrap().unwrap();
    assert!(said.contains("200"), "{said}");
    let p95: Vec<f64> = w.iter().map(|w| w.p95_s).collect();
    let replicas: Vec<(u32, u32)> = w.iter().map(|w| (w.replicas, w.ready)).collect();
    eprintln!("p95 per minute {p95:?}, replicas {replicas:?}, {wall:?} of wall time");
    assert!(
        wall >= Duration::from_secs_f64(420.0 / speed * 0.9),
        "paced: {wall:?}"
    );
    assert!(p95[1] < 0.5, "20/s on 2 replicas: {p95:?}");
    assert!(p95[2] > 1.0, "100/s on 2 replicas: {p95:?}");
    assert!(p95[5] < 0.5 && p95[6] < 0.5, "6 replicas: {p95:?}");
    assert_eq!(replicas[2], (2, 2), "{replicas:?}");
    // (at 60 times wall time the scale lands near 135 s, serving near 165 s; the last two
    // minutes leave it a minute of slack on a loaded machine)
    assert_eq!(replicas[5..], [(6, 6), (6, 6)], "{replicas:?}");
    let w = board.get("checkout").unwrap();
    assert_eq!((w.replicas, w.ready), (6, 6));
}

/// The kubernetes executor's tune: it reads the workload, checks the value the decision saw
/// against the container's environment, and patches that environment with the
/// resourceVersion it read; the sim sets the setting by the variable's name.
#[test]
fn the_kubernetes_executor_tunes_the_sim_through_the_pod_templates_env() {
    let (board, server, _dir) = started();
    board
        .tune("checkout", "DB_POOL_MAX_SIZE", 10.0, None)
        .unwrap();
    board.take();
    let policy = kubernetes_policy(
        &server,
        r#"
[targets.checkout.kubernetes.env]
"db.client.connection.max" = "DB_POOL_MAX_SIZE"
[targets.checkout.settings."db.client.connection.max"]
max = 100
"#,
    );
    let said = execute(&policy, &tune("pool-k", "checkout", 10.0, 20.0)).unwrap();
    assert!(said.contains("DB_POOL_MAX_SIZE 10 -> 20"), "{said}");
    assert_eq!(
        board.get("checkout").unwrap().settings["DB_POOL_MAX_SIZE"],
        20.0
    );
    assert_eq!(
        board.take(),
        vec![Command::Tune {
            service: "checkout".into(),
            setting: "DB_POOL_MAX_SIZE".into(),
            value: 20.0
        }]
    );
    // a decision that saw 10 where there are 20 is stale: nothing changes
    let stale = execute(&policy, &tune("pool-k2", "checkout", 10.0, 30.0)).unwrap_err();
    assert!(stale.contains("stale"), "{stale}");
    assert_eq!(
        board.get("checkout").unwrap().settings["DB_POOL_MAX_SIZE"],
        20.0
    );
    // a patch on an old resourceVersion is a conflict
    let old = r#"{"metadata":{"resourceVersion":"1"},"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"DB_POOL_MAX_SIZE","value":"40"}]}]}}}}"#;
    let (code, body) = request(
        &server,
        "PATCH",
        "/apis/apps/v1/namespaces/shop/deployments/checkout",
        old,
    );
    assert_eq!(code, 409, "{body}");
    assert!(board.take().is_empty());
}
