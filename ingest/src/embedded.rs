//! The embedded Kafka-protocol broker used when `apo run` is given no `--brokers`: the
//! `tansu-broker` library served on a tokio runtime of its own, with `sqlite://` storage in the
//! data directory (DESIGN.md §7; tansu's in-memory engine loses records on commit/resume), and
//! listening on a loopback port that other processes (`apo produce`, any Kafka client) can use.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use url::Url;

use crate::IngestError;

/// A running in-process broker; it stops when dropped.
pub struct EmbeddedBroker {
    address: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl EmbeddedBroker {
    /// Starts a broker on `127.0.0.1:port` (0 picks a free port) storing its log in
    /// `<data_dir>/broker.db` (any directory). Returns once the port accepts connections.
    pub fn start(data_dir: &Path, port: u16) -> Result<Self, IngestError> {
        Self::start_with_schemas(data_dir, port, None)
    }

    /// [`EmbeddedBroker::start`] with a schema registry: the directory `schemas` holds a
    /// schema per topic that has one (`TOPIC.json`, a JSON schema whose `properties.value`
    /// (and `properties.key`) a record's value (key) must match; `TOPIC.avsc`, `TOPIC.proto`),
    /// and the broker refuses a record that does not match its topic's (`INVALID_RECORD`), as a
    /// broker with schema validation does.
    pub fn start_with_schemas(
        data_dir: &Path,
        port: u16,
        schemas: Option<&Path>,
    ) -> Result<Self, IngestError> {
        let err = |m: String| IngestError::Embedded(m);
        std::fs::create_dir_all(data_dir)
            .map_err(|e| err(format!("creating {}: {e}", data_dir.display())))?;
        let cwd = std::env::current_dir().map_err(|e| err(e.to_string()))?;
        let abs = std::fs::canonicalize(data_dir).map_err(|e| err(e.to_string()))?;
        let storage = storage_url(&cwd, &abs);
        let port = if port == 0 {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| err(format!("finding a free port: {e}")))?
                .port()
        } else {
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                return Err(err(format!(
                    "port {port} is in use; pass another with --embedded-port (0 picks a free one)"
                )));
            }
            port
        };
        let address = format!("127.0.0.1:{port}");
        let url = |s: &str| Url::parse(s).map_err(|e| err(format!("{s}: {e}")));
        let listener = url(&format!("tcp://{address}"))?;
        let storage = url(&storage)?;
        let registry = match schemas {
            None => None,
            Some(dir) => {
                let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| err(format!("the schema directory {}: {e}", dir.display())))?;
                Some(tansu_schema::Registry::new(store))
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("embedded-broker")
            .enable_all()
            .build()
            .map_err(|e| err(format!("runtime: {e}")))?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        runtime.spawn(async move {
            let built = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
                .node_id(tansu_broker::NODE_ID)
                .cluster_id("apo-embedded")
                .incarnation_id(uuid::Uuid::new_v4())
                .advertised_listener(listener.clone())
                .storage(storage)
                .schema_registry(registry)
                .listener(listener)
                .silent(true)
                .build()
                .await;
            match built {
                Ok(mut broker) => {
                    if let Err(e) = broker.serve(tokio::time::Instant::now()).await {
                        let _ = tx.send(format!("{e:?}"));
                    }
                }
                Err(e) => {
                    let _ = tx.send(format!("{e:?}"));
                }
            }
        });
        let addr: SocketAddr = address
            .parse()
            .map_err(|e| err(format!("{address}: {e}")))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(msg) = rx.try_recv() {
                return Err(err(format!("broker stopped: {msg}")));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(err(format!(
                    "broker did not listen on {address} within 30 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(EmbeddedBroker {
            address,
            runtime: Some(runtime),
        })
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// tansu's `sqlite://` storage URL for the database in `dir` (absolute). tansu joins the URL's
/// host and path to the working directory `cwd` after dropping the path's first `/`: a
/// directory under `cwd` is given relative to it, any other as a path that stays absolute
/// after that (`sqlite:////abs/dir/broker.db`).
fn storage_url(cwd: &Path, dir: &Path) -> String {
    match dir.strip_prefix(cwd) {
        Ok(rel) if rel.as_os_str().is_empty() => "sqlite://./broker.db".to_string(),
        Ok(rel) => format!(
            "sqlite://./{}/broker.db",
            rel.to_string_lossy().replace('\\', "/")
        ),
        Err(_) => format!("sqlite:///{}/broker.db", dir.to_string_lossy()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls_keep_the_directory_wherever_it_is() {
        let cwd = Path::new("/work/apo");
        assert_eq!(storage_url(cwd, cwd), "sqlite://./broker.db");
        assert_eq!(
            storage_url(cwd, Path::new("/work/apo/apo-data")),
            "sqlite://./apo-data/broker.db"
        );
        assert_eq!(
            storage_url(cwd, Path::new("/tmp/apo-data")),
            "sqlite:////tmp/apo-data/broker.db"
        );
    }

    #[test]
    fn a_data_directory_outside_the_working_directory_holds_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = std::env::current_dir().unwrap();
        let data = std::fs::canonicalize(dir.path()).unwrap();
        assert!(
            !data.starts_with(&cwd),
            "the test needs a directory outside {cwd:?}"
        );
        let broker = EmbeddedBroker::start(&data, 0).unwrap();
        let client = crate::kafka::client_config(broker.address(), &[]);
        crate::kafka::ensure_topics(&client, &["outside"], 1).unwrap();
        drop(broker);
        assert!(
            data.join("broker.db").exists(),
            "{:?}",
            std::fs::read_dir(&data).unwrap().collect::<Vec<_>>()
        );
    }
}
