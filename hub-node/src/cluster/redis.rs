//! How processes reach Redis, whichever way a hospital runs it (DESIGN §6): one server,
//! a primary watched by Sentinels, or a Redis Cluster. The operator writes one URL:
//!
//! | URL | topology |
//! |---|---|
//! | `redis://user:password@host:port/db`, `rediss://…` (TLS) | one server |
//! | `redis+sentinel://user:password@host:port,host:port/master-name`, `rediss+sentinel://…` | Sentinel |
//! | `redis+cluster://user:password@host:port,host:port`, `rediss+cluster://…` | Redis Cluster |
//!
//! Credentials and the database are optional.
//!
//! The credentials apply to the data servers (and to the sentinels). [`RedisConn`] is one
//! cloneable, multiplexed connection for commands and scripts: with Sentinel it follows
//! failovers (it moves when the sentinels name another primary, and a write answered
//! `READONLY` or a lost connection makes it ask them again); with Redis Cluster it routes
//! by slot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::sentinel_watch::{address_of, connect_if_moved, follow_announcements, watch_primary};

/// Longest a connection attempt or a reply may take.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Where Redis is, as the operator wrote it.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server.
    Single {
        /// Its URL.
        url: String,
    },
    /// A primary found through Sentinels.
    Sentinel {
        /// The sentinels' URLs (carrying the credentials).
        sentinels: Vec<String>,
        /// The monitored master's name.
        master: String,
        /// Whether the data servers speak TLS.
        tls: bool,
        /// ACL user of the data servers.
        username: Option<String>,
        /// Password of the data servers.
        password: Option<String>,
    },
    /// A Redis Cluster.
    Cluster {
        /// Seed nodes' URLs (carrying the credentials).
        nodes: Vec<String>,
    },
}

impl std::fmt::Debug for RedisTarget {
    /// Never prints credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Single { .. } => f.write_str("RedisTarget::Single"),
            Self::Sentinel { master, .. } => write!(f, "RedisTarget::Sentinel({master})"),
            Self::Cluster { nodes } => write!(f, "RedisTarget::Cluster({} seeds)", nodes.len()),
        }
    }
}

impl RedisTarget {
    /// Parses the operator's URL; the error says what is wrong, never the password.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url.split_once("://").ok_or(
            "a Redis URL starts with redis://, rediss://, redis+sentinel:// or redis+cluster://",
        )?;
        let (base, tls) = match scheme {
            "redis" | "rediss" => {
                return Ok(Self::Single {
                    url: url.to_owned(),
                });
            }
            "redis+sentinel" | "redis+cluster" => (scheme, false),
            "rediss+sentinel" | "rediss+cluster" => (scheme, true),
            _ => return Err(format!("unknown Redis URL scheme {scheme:?}")),
        };
        let plain = if tls { "rediss" } else { "redis" };
        let (credentials, hosts_and_path) = match rest.rsplit_once('@') {
            Some((credentials, hosts)) => (Some(credentials), hosts),
            None => (None, rest),
        };
        let (hosts, path) = hosts_and_path
            .split_once('/')
            .map_or((hosts_and_path, ""), |(hosts, path)| (hosts, path));
        let hosts: Vec<&str> = hosts.split(',').filter(|host| !host.is_empty()).collect();
        if hosts.is_empty() {
            return Err("the Redis URL names no host".into());
        }
        let prefix = credentials.map_or(String::new(), |credentials| format!("{credentials}@"));
        let urls = |scheme: &str| -> Vec<String> {
            hosts
                .iter()
                .map(|host| format!("{scheme}://{prefix}{host}"))
                .collect()
        };
        if base.ends_with("cluster") {
            return Ok(Self::Cluster { nodes: urls(plain) });
        }
        let master = path.split('?').next().unwrap_or_default();
        if master.is_empty() {
            return Err("a redis+sentinel:// URL ends with /<master name>".into());
        }
        let (username, password) = match credentials.map(|c| c.split_once(':')) {
            Some(Some((user, password))) => (
                (!user.is_empty()).then(|| user.to_owned()),
                Some(password.to_owned()),
            ),
            Some(None) => (None, credentials.map(str::to_owned)),
            None => (None, None),
        };
        Ok(Self::Sentinel {
            // Sentinels are reached in plain text here; their own TLS is not configurable yet.
            sentinels: urls("redis"),
            master: master.to_owned(),
            tls,
            username,
            password,
        })
    }

    /// Returns a client for the data server at `host:port` of a Sentinel target, with the
    /// target's credentials and TLS.
    pub fn client_at(&self, address: &str) -> RedisResult<redis::Client> {
        let Self::Sentinel {
            tls,
            username,
            password,
            ..
        } = self
        else {
            return Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "only a Sentinel target names its servers",
            )));
        };
        let (host, port) = address
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)))
            .ok_or_else(|| {
                RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "a server address is host:port",
                ))
            })?;
        let addr = if *tls {
            redis::ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            redis::ConnectionAddr::Tcp(host, port)
        };
        let mut settings = redis::RedisConnectionInfo::default();
        if let Some(username) = username {
            settings = settings.set_username(username);
        }
        if let Some(password) = password {
            settings = settings.set_password(password);
        }
        let info =
            redis::IntoConnectionInfo::into_connection_info(addr)?.set_redis_settings(settings);
        redis::Client::open(info)
    }

    /// Returns true for Redis Cluster (sharded pub/sub, slot routing).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// Returns a client for the current primary: the URL itself, or the server the
    /// sentinels name now.
    pub async fn primary_client(&self) -> RedisResult<redis::Client> {
        match self {
            Self::Single { url } => redis::Client::open(url.as_str()),
            Self::Sentinel {
                sentinels,
                master,
                tls,
                username,
                password,
            } => {
                let mut info = redis::RedisConnectionInfo::default();
                if let Some(username) = username {
                    info = info.set_username(username);
                }
                if let Some(password) = password {
                    info = info.set_password(password);
                }
                let mut node =
                    SentinelNodeConnectionInfo::default().set_redis_connection_info(info);
                if *tls {
                    node = node.set_tls_mode(redis::TlsMode::Secure);
                }
                let mut client = SentinelClient::build(
                    sentinels.clone(),
                    master.clone(),
                    Some(node),
                    SentinelServerType::Master,
                )?;
                client.async_get_client().await
            }
            Self::Cluster { .. } => Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a Redis Cluster has no single primary",
            ))),
        }
    }
}

/// Returns `client` speaking RESP3 (pub/sub pushes need it).
pub fn resp3(client: &redis::Client) -> RedisResult<redis::Client> {
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    redis::Client::open(info.set_redis_settings(settings))
}

/// Connection settings every process uses: bounded connect and reply times, and few
/// reconnection attempts. Commands issued while a connection reconnects wait for it, so the
/// library's default (6 attempts with growing pauses, about 6 s against a dead server) would
/// hold every command that long: a publish would not fail closed promptly, and a member
/// would not move to a newly promoted primary until its pending commands gave up.
pub fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(RECONNECT_ATTEMPTS)
        .set_max_delay(RECONNECT_MAX_PAUSE)
}

/// Reconnection attempts after a connection drops, before pending commands fail.
const RECONNECT_ATTEMPTS: usize = 2;
/// Longest pause between two reconnection attempts.
const RECONNECT_MAX_PAUSE: Duration = Duration::from_millis(400);

/// A connection to the primary that follows failovers.
#[derive(Clone)]
pub struct PrimaryConn {
    shared: Arc<Shared>,
}

struct Shared {
    target: RedisTarget,
    current: RwLock<Current>,
    resolving: Mutex<()>,
    /// How many times the connection moved to another primary.
    moves: AtomicU64,
    /// When it last did.
    moved_at: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// The connection in use and the server it reaches.
struct Current {
    manager: ConnectionManager,
    address: Option<String>,
}

impl std::fmt::Debug for PrimaryConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrimaryConn({:?})", self.shared.target)
    }
}

impl PrimaryConn {
    async fn connect(target: &RedisTarget) -> RedisResult<Self> {
        let client = target.primary_client().await?;
        let address = address_of(&client);
        let manager = ConnectionManager::new_with_config(client, manager_config()).await?;
        let conn = Self {
            shared: Arc::new(Shared {
                target: target.clone(),
                current: RwLock::new(Current { manager, address }),
                resolving: Mutex::new(()),
                moves: AtomicU64::new(0),
                moved_at: std::sync::Mutex::new(None),
            }),
        };
        if let Some(named) = watch_primary(target) {
            let shared = Arc::downgrade(&conn.shared);
            let conn_of = move || shared.upgrade().map(|shared| PrimaryConn { shared });
            tokio::spawn(follow_announcements(
                named,
                {
                    let conn_of = conn_of.clone();
                    move || conn_of().map(|conn| conn.current().address.clone())
                },
                move |announced| {
                    if let Some(conn) = conn_of() {
                        conn.follow_failover(Some(announced));
                    }
                },
            ));
        }
        Ok(conn)
    }

    fn current(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.shared
            .current
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn manager(&self) -> ConnectionManager {
        self.current().manager.clone()
    }

    /// After an error that may mean the primary moved, or when the sentinels name another
    /// primary: ask the sentinels and switch if they name another server than the one in
    /// use. One resolution at a time.
    fn follow_failover(&self, announced: Option<String>) {
        if !matches!(self.shared.target, RedisTarget::Sentinel { .. }) {
            return;
        }
        let conn = self.clone();
        tokio::spawn(async move {
            let Ok(_resolving) = conn.shared.resolving.try_lock() else {
                return;
            };
            let in_use = conn.current().address.clone();
            let moved = connect_if_moved(&conn.shared.target, in_use, announced, |client| {
                ConnectionManager::new_with_config(client, manager_config())
            })
            .await;
            let Some((manager, address)) = moved else {
                return;
            };
            *conn
                .shared
                .current
                .write()
                .unwrap_or_else(|poison| poison.into_inner()) = Current { manager, address };
            conn.shared.moves.fetch_add(1, Ordering::AcqRel);
            *conn
                .shared
                .moved_at
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()) = Some(tokio::time::Instant::now());
            info!("moved to the primary the sentinels name");
        });
    }
}

/// Pause between two attempts to reach the primary after a failover.
const FAILOVER_RETRY: Duration = Duration::from_millis(250);

/// Retries `connect` until it succeeds. Right after a primary dies the sentinels still name
/// it for a while (until they agree it is down and promote a replica), so the first
/// attempts fail; a failover takes seconds, and nothing else can be done meanwhile.
pub async fn until_primary<T, F, Fut>(mut connect: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = RedisResult<T>>,
{
    let mut failures = 0u32;
    loop {
        match connect().await {
            Ok(connected) => return connected,
            Err(err) => {
                failures += 1;
                // One line when it starts failing, then one every ~10 s.
                if failures % 40 == 1 {
                    warn!(error = %err, "cannot reach the primary the sentinels name yet; retrying");
                }
            }
        }
        tokio::time::sleep(FAILOVER_RETRY).await;
    }
}

/// Returns true for an error after which the primary may be elsewhere.
fn primary_may_have_moved(err: &RedisError) -> bool {
    err.is_io_error() || err.is_connection_dropped() || err.code() == Some("READONLY")
}

/// One multiplexed connection for commands and scripts.
#[derive(Clone)]
pub enum RedisConn {
    /// One server, or the Sentinel primary.
    Primary(PrimaryConn),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Primary(conn) => write!(f, "RedisConn::Primary({:?})", conn.shared.target),
            Self::Cluster(_) => f.write_str("RedisConn::Cluster"),
        }
    }
}

impl RedisConn {
    /// Connects to `target`.
    pub async fn connect(target: &RedisTarget) -> RedisResult<Self> {
        match target {
            RedisTarget::Cluster { nodes } => {
                let client = ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(REDIS_TIMEOUT)
                    .response_timeout(REDIS_TIMEOUT)
                    .build()?;
                Ok(Self::Cluster(client.get_async_connection().await?))
            }
            _ => Ok(Self::Primary(PrimaryConn::connect(target).await?)),
        }
    }
}

impl RedisConn {
    /// Returns how many times this connection moved to another primary (a Sentinel
    /// failover): what was read before a move may come from another server's data.
    pub fn moves(&self) -> u64 {
        match self {
            Self::Primary(primary) => primary.shared.moves.load(Ordering::Acquire),
            Self::Cluster(_) => 0,
        }
    }

    /// Returns when this connection last moved to another primary, if it ever did.
    pub fn last_moved(&self) -> Option<tokio::time::Instant> {
        match self {
            Self::Primary(primary) => *primary
                .shared
                .moved_at
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()),
            Self::Cluster(_) => None,
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Cluster(conn) => conn.req_packed_command(cmd),
            Self::Primary(primary) => Box::pin(async move {
                let result = primary.manager().req_packed_command(cmd).await;
                if let Err(err) = &result
                    && primary_may_have_moved(err)
                {
                    primary.follow_failover(None);
                }
                result
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Primary(primary) => Box::pin(async move {
                let result = primary
                    .manager()
                    .req_packed_commands(pipeline, offset, count)
                    .await;
                if let Err(err) = &result
                    && primary_may_have_moved(err)
                {
                    primary.follow_failover(None);
                }
                result
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Cluster(conn) => conn.get_db(),
            Self::Primary(primary) => primary.manager().get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_url_forms_name_their_topology_and_keep_credentials_out_of_debug() {
        assert_eq!(
            RedisTarget::parse("redis://127.0.0.1:6379"),
            Ok(RedisTarget::Single {
                url: "redis://127.0.0.1:6379".into()
            })
        );
        let sentinel = RedisTarget::parse(
            "rediss+sentinel://hub:s3cret@10.0.0.1:26379,10.0.0.2:26379/fhircast",
        )
        .expect("sentinel URL");
        assert_eq!(
            sentinel,
            RedisTarget::Sentinel {
                sentinels: vec![
                    "redis://hub:s3cret@10.0.0.1:26379".into(),
                    "redis://hub:s3cret@10.0.0.2:26379".into()
                ],
                master: "fhircast".into(),
                tls: true,
                username: Some("hub".into()),
                password: Some("s3cret".into()),
            }
        );
        assert!(!format!("{sentinel:?}").contains("s3cret"));
        let cluster = RedisTarget::parse("redis+cluster://:pw@a:7000,b:7001").expect("cluster URL");
        assert!(cluster.is_cluster());
        assert_eq!(
            cluster,
            RedisTarget::Cluster {
                nodes: vec!["redis://:pw@a:7000".into(), "redis://:pw@b:7001".into()]
            }
        );
        assert!(RedisTarget::parse("redis+sentinel://a:1").is_err());
        assert!(RedisTarget::parse("http://a:1").is_err());
        assert!(RedisTarget::parse("redis+cluster:///x").is_err());
    }
}
