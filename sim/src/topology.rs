//! The fleet's topology: its services (nodes) and the calls each request makes to the others
//! after its own work, synchronously (the caller's worker waits for every answer: a fan-out
//! runs its calls in parallel) or asynchronously (a message the callee consumes; the caller
//! does not wait). A node may be external (an API that is not ours: never scaled, no telemetry
//! of its own, seen through its callers' client spans) and may fail a share of its requests on
//! its own. Calls go from a node to a later one, so the graph has no cycle; node 0 is the entry
//! the load arrives at.
//!
//! [`Topology::single`] is one service; [`Topology::shop`] the web shop the trace generator
//! draws (`ingest/src/trace_generator.rs`), as queues.

use crate::service::{CacheConfig, DbConfig, ServiceConfig};

/// A call a node's requests make.
#[derive(Debug, Clone, PartialEq)]
pub struct Dependency {
    /// The node called.
    pub to: usize,
    /// A message the callee consumes later (the caller does not wait for it).
    pub asynchronous: bool,
    /// The share of the node's requests that make it (1: all).
    pub chance: f64,
}

/// A service of the fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Its name: its telemetry's `service`, its control endpoints' workload.
    pub name: String,
    /// Its replicas, workers, service time, database, cache.
    pub service: ServiceConfig,
    /// Its replicas at the start (serving from the start).
    pub replicas: u32,
    /// The calls its requests make after their own work.
    pub calls: Vec<Dependency>,
    /// The share of its requests that fail on their own (an external API's errors).
    pub error_rate: f64,
    /// Not ours: not scaled, no telemetry of its own.
    pub external: bool,
}

impl Node {
    /// A service of ours named `name` that calls nothing.
    pub fn new(name: &str, service: ServiceConfig, replicas: u32) -> Self {
        Node {
            name: name.to_string(),
            service,
            replicas,
            calls: Vec::new(),
            error_rate: 0.0,
            external: false,
        }
    }

    /// With a synchronous call to `to` made by `chance` of its requests.
    pub fn calls(mut self, to: usize, chance: f64) -> Self {
        self.calls.push(Dependency {
            to,
            asynchronous: false,
            chance,
        });
        self
    }

    /// With a message to `to` sent by `chance` of its requests.
    pub fn sends(mut self, to: usize, chance: f64) -> Self {
        self.calls.push(Dependency {
            to,
            asynchronous: true,
            chance,
        });
        self
    }
}

/// The fleet: its nodes, the entry first.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// The nodes.
    pub nodes: Vec<Node>,
}

impl Topology {
    /// One service named `name`.
    pub fn single(name: &str, service: ServiceConfig, replicas: u32) -> Self {
        Topology {
            nodes: vec![Node::new(name, service, replicas)],
        }
    }

    /// The web shop, its services named after the trace generator's:
    ///
    /// ```text
    /// frontend ─┬→ product-catalog (90 %; a cache in front of its database)
    ///           ├→ recommendation  (60 %; the heavy one: 80 ms of work, σ 0.5)
    ///           ├→ cart            (40 %)
    ///           └→ checkout        (10 %) ─→ payment ─→ stripe-api (external, 150 ms, 0.5 % errors)
    ///                              (its database)  ⇒ email (a message, consumed later)
    /// ```
    ///
    /// The frontend's calls run in parallel, its 64 workers per replica holding a request
    /// while it waits for them. Every service of ours takes `entry`'s start-up, timeout, line
    /// limit and most replicas; the frontend starts with `replicas`. 100 requests a second
    /// keep recommendation (2 replicas of 4 workers) about 70 % busy, the others less.
    pub fn shop(entry: &ServiceConfig, replicas: u32) -> Self {
        let ours = |workers: usize, median_s: f64, sigma: f64| ServiceConfig {
            workers,
            median_s,
            sigma,
            db: None,
            cache: None,
            stable_median_s: None,
            heap: None,
            ..entry.clone()
        };
        let db = |pool_size: usize, median_s: f64| DbConfig {
            pool_size,
            servers: 32,
            median_s,
            sigma: 0.4,
        };
        // an asynchronous server: its workers mostly wait for its calls
        let frontend = Node::new("frontend", ours(64, 0.01, 0.3), replicas)
            .calls(1, 0.9)
            .calls(2, 0.6)
            .calls(3, 0.4)
            .calls(4, 0.1);
        let catalog = Node::new(
            "product-catalog",
            ServiceConfig {
                db: Some(db(8, 0.01)),
                cache: Some(CacheConfig {
                    objects: 100_000,
                    alpha: 0.9,
                    size: 20_000,
                }),
                ..ours(8, 0.005, 0.3)
            },
            1,
        );
        // 60 requests/s x 91 ms (the mean of median 80 ms, sigma 0.5) over 2 x 4 workers: 0.68
        let recommendation = Node::new("recommendation", ours(4, 0.08, 0.5), 2);
        let cart = Node::new("cart", ours(4, 0.003, 0.3), 1);
        let checkout = Node::new(
            "checkout",
            ServiceConfig {
                db: Some(db(4, 0.015)),
                ..ours(8, 0.02, 0.3)
            },
            1,
        )
        .calls(5, 1.0)
        .sends(7, 1.0);
        let payment = Node::new("payment", ours(8, 0.005, 0.3), 1).calls(6, 1.0);
        let stripe = Node {
            error_rate: 0.005,
            external: true,
            ..Node::new(
                "stripe-api",
                ServiceConfig {
                    workers: 10_000,
                    median_s: 0.15,
                    sigma: 0.4,
                    timeout: None,
                    queue_limit: None,
                    ..ours(1, 0.15, 0.4)
                },
                1,
            )
        };
        let email = Node::new("email", ours(2, 0.05, 0.3), 1);
        Topology {
            nodes: vec![
                frontend,
                catalog,
                recommendation,
                cart,
                checkout,
                payment,
                stripe,
                email,
            ],
        }
    }

    /// The topology `name` names (`single` or `shop`), its entry `entry` named `service`
    /// (`single`; the shop's entry is `frontend`).
    pub fn named(
        name: &str,
        service: &str,
        entry: &ServiceConfig,
        replicas: u32,
    ) -> Result<Self, String> {
        match name {
            "single" => Ok(Topology::single(service, entry.clone(), replicas)),
            "shop" => Ok(Topology::shop(entry, replicas)),
            other => Err(format!("topology `{other}`: expected single or shop")),
        }
    }

    /// What is wrong with it, if anything: no node, an external entry, a call to itself, an
    /// earlier or a missing node, a chance or error rate outside 0 to 1, two nodes of a name.
    pub fn check(&self) -> Result<(), String> {
        let Some(entry) = self.nodes.first() else {
            return Err("a fleet needs a service".into());
        };
        if entry.external {
            return Err(format!(
                "the entry `{}` is external: the load arrives at one of ours",
                entry.name
            ));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if self.nodes[..i].iter().any(|m| m.name == n.name) {
                return Err(format!("two services named `{}`", n.name));
            }
            if !(0.0..=1.0).contains(&n.error_rate) {
                return Err(format!(
                    "`{}`: an error rate of {} is not a share",
                    n.name, n.error_rate
                ));
            }
            for d in &n.calls {
                if d.to <= i || d.to >= self.nodes.len() {
                    return Err(format!(
                        "`{}` calls node {}: calls go to a later node of the {}",
                        n.name,
                        d.to,
                        self.nodes.len()
                    ));
                }
                if !(0.0..=1.0).contains(&d.chance) {
                    return Err(format!(
                        "`{}` calls `{}` with a chance of {}, not a share",
                        n.name, self.nodes[d.to].name, d.chance
                    ));
                }
            }
        }
        Ok(())
    }

    /// Each node's share of the entry's requests: 1 at the entry, and along every call the
    /// caller's share times the call's chance, synchronous or a message (calls go to later
    /// nodes, so one pass in order adds up every path).
    pub fn shares(&self) -> Vec<f64> {
        let mut shares = vec![0.0; self.nodes.len()];
        if let Some(entry) = shares.first_mut() {
            *entry = 1.0;
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let from = shares[i];
            for d in &n.calls {
                if let Some(to) = shares.get_mut(d.to) {
                    *to += from * d.chance;
                }
            }
        }
        shares
    }

    /// The same fleet, every node's name followed by `-suffix` (the report's runs: three
    /// fleets in one system, their services apart).
    pub fn suffixed(mut self, suffix: &str) -> Self {
        for n in &mut self.nodes {
            n.name = format!("{}-{suffix}", n.name);
        }
        self
    }

    /// The index of the node named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shop_is_a_valid_fleet_and_bad_ones_are_refused() {
        let shop = Topology::shop(&ServiceConfig::default(), 2);
        assert_eq!(shop.check(), Ok(()));
        assert_eq!(shop.index("recommendation"), Some(2));
        assert!(shop.nodes[6].external && shop.nodes[7].calls.is_empty());
        let mut cycle = shop.clone();
        cycle.nodes[5].calls.push(Dependency {
            to: 4,
            asynchronous: false,
            chance: 1.0,
        });
        assert!(cycle.check().unwrap_err().contains("later node"));
        let mut twice = shop.clone();
        twice.nodes[3].name = "frontend".into();
        assert!(twice.check().unwrap_err().contains("two services"));
        let mut external = shop;
        external.nodes[0].external = true;
        assert!(external.check().unwrap_err().contains("external"));
        assert!(Topology { nodes: Vec::new() }.check().is_err());
        assert!(Topology::named("mesh", "x", &ServiceConfig::default(), 1).is_err());
    }

    /// The shop's shares by hand: the frontend's fan-out (90, 60, 40, 10 %), checkout's call
    /// to payment and payment's to stripe-api (all of theirs), and checkout's message to email.
    #[test]
    fn each_service_takes_its_share_of_the_entrys_requests() {
        let shop = Topology::shop(&ServiceConfig::default(), 2);
        let named: Vec<(&str, f64)> = shop
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .zip(shop.shares())
            .collect();
        assert_eq!(
            named,
            [
                ("frontend", 1.0),
                ("product-catalog", 0.9),
                ("recommendation", 0.6),
                ("cart", 0.4),
                ("checkout", 0.1),
                ("payment", 0.1),
                ("stripe-api", 0.1),
                ("email", 0.1)
            ]
        );
        // two paths to one node add up: a calls b (50 %) and c (all), c calls b (50 %)
        let both = Topology {
            nodes: vec![
                Node::new("a", ServiceConfig::default(), 1)
                    .calls(1, 0.5)
                    .sends(2, 1.0),
                Node::new("b", ServiceConfig::default(), 1),
                Node::new("c", ServiceConfig::default(), 1).calls(1, 0.5),
            ],
        };
        assert_eq!(both.shares(), vec![1.0, 1.0, 1.0]);
        let hpa = shop.suffixed("hpa");
        assert_eq!(hpa.nodes[0].name, "frontend-hpa");
        assert_eq!(hpa.index("stripe-api-hpa"), Some(6));
        assert_eq!(hpa.check(), Ok(()));
        // a replica's own work: 4 workers at 100 ms, σ 0.3 → 4 / 0.1046 = 38.25 a second
        let per = ServiceConfig::default().per_replica();
        assert!((per - 4.0 / (0.1 * (0.045f64).exp())).abs() < 1e-12 && per > 38.2);
    }
}
