//! Every Redis key and Lua script of the cluster, in one place (DESIGN §6). Hub nodes,
//! gateways and operators read the same names from here; nothing else spells a key.
//!
//! Keys carry the schema version (`fhc:v1:`). A topic's keys share the hash tag `{ref}`,
//! so they live in one Redis Cluster slot and one script can change them atomically; its
//! bus channel carries the same tag, so sharded pub/sub publishes from that slot.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `fhc:v1:{ref}:meta` | hash | `fence` (never decreases), `owner`, `seq`, `epoch`, `header` (JSON) |
//! | `fhc:v1:{ref}:lease` | string, PX | the owning node's id while its lease runs |
//! | `fhc:v1:{ref}:subs` | hash | endpoint → subscription (JSON) |
//! | `fhc:v1:{ref}:ended` | hash | endpoint → remembered ended endpoint (JSON) |
//! | `fhc:v1:{ref}:ctx` | hash | `Type/id` → open anchor (JSON) |
//! | `fhc:v1:{ref}:ids` | hash | accepted event id → fingerprint |
//! | `fhc:v1:{ref}:idorder` | list | accepted event ids, oldest first (capped) |
//! | `fhc:v1:{ref}:stream` | stream | envelopes (wire form), entry id `<seq>-0`, capped |
//! | `fhc:v1:{ref}:bus` | channel | envelopes as published |
//! | `fhc:v1:{ref}:record` | string | the admin API's record of the topic (JSON); kept when the topic is forgotten |
//! | `fhc:v1:records` | zset | topic ref → when its record was first stored (ms), for listing |
//! | `fhc:v1:ep:{endpoint}` | string, PX | the topic ref an endpoint belongs to |
//! | `fhc:v1:{members}:node` | zset | node id → heartbeat deadline (ms) |
//! | `fhc:v1:{members}:gateway` | zset | gateway id → heartbeat deadline (ms) |
//! | `fhc:v1:{members}:addr` | hash | node id → gRPC address |
//!
//! The membership keys share the hash tag `{members}`, so one pipeline reads them all on a
//! Redis Cluster too.
//!
//! The materialised hashes are the snapshot: a load reads them in one round trip and
//! replays nothing, so no change log grows between snapshots.

use crate::ids::{EndpointId, TopicRef};

/// The prefix of every key: product and schema version.
pub const PREFIX: &str = "fhc:v1";

/// The keys of one topic, in the order the scripts take them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicKeys {
    /// Fence, owner, seq, epoch, header.
    pub meta: String,
    /// The ownership lease.
    pub lease: String,
    /// Subscriptions.
    pub subs: String,
    /// Remembered ended endpoints.
    pub ended: String,
    /// Open anchors.
    pub ctx: String,
    /// Accepted event ids → fingerprints.
    pub ids: String,
    /// Accepted event ids, oldest first.
    pub idorder: String,
    /// The envelope stream (backfill).
    pub stream: String,
    /// The pub/sub channel.
    pub channel: String,
    /// The admin API's record (minted for, revoked).
    pub record: String,
}

impl TopicKeys {
    /// Returns the keys of a topic.
    pub fn of(topic: &TopicRef) -> Self {
        let tag = format!("{PREFIX}:{{{}}}", topic.as_str());
        Self {
            meta: format!("{tag}:meta"),
            lease: format!("{tag}:lease"),
            subs: format!("{tag}:subs"),
            ended: format!("{tag}:ended"),
            ctx: format!("{tag}:ctx"),
            ids: format!("{tag}:ids"),
            idorder: format!("{tag}:idorder"),
            stream: format!("{tag}:stream"),
            channel: format!("{tag}:bus"),
            record: format!("{tag}:record"),
        }
    }

    /// Returns the keys a commit touches, in the order [`COMMIT`] expects them.
    pub fn for_commit(&self) -> [&str; 7] {
        [
            &self.meta,
            &self.subs,
            &self.ended,
            &self.ctx,
            &self.ids,
            &self.idorder,
            &self.stream,
        ]
    }
}

/// Returns the topic ref a channel name carries, for routing a received message.
pub fn topic_of_channel(channel: &str) -> Option<&str> {
    channel
        .strip_prefix(PREFIX)?
        .strip_prefix(":{")?
        .strip_suffix("}:bus")
}

/// Returns the sorted set listing every topic record (member: topic ref).
pub fn records_key() -> String {
    format!("{PREFIX}:records")
}

/// Returns the key resolving an endpoint to its topic.
pub fn endpoint_key(endpoint: &EndpointId) -> String {
    format!("{PREFIX}:ep:{}", endpoint.expose())
}

/// The role of a member process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A hub node (hosts topic actors, serves gRPC).
    Node,
    /// A gateway (holds sockets).
    Gateway,
}

/// Returns the sorted set of live members of a role (score: heartbeat deadline in ms).
pub fn members_key(role: Role) -> String {
    match role {
        Role::Node => format!("{PREFIX}:{{members}}:node"),
        Role::Gateway => format!("{PREFIX}:{{members}}:gateway"),
    }
}

/// Returns the hash of node id → gRPC address.
pub fn node_addresses_key() -> String {
    format!("{PREFIX}:{{members}}:addr")
}

/// Takes ownership of a topic: sets the lease and bumps the fence in one step.
///
/// KEYS: lease, meta. ARGV: node id, lease ms.
/// Returns `{1, fence}` when acquired, `{0, holder}` when another node's lease runs.
pub const ACQUIRE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return {0, holder}
end
local fence = redis.call('HINCRBY', KEYS[2], 'fence', 1)
redis.call('PERSIST', KEYS[2])
redis.call('HSET', KEYS[2], 'owner', ARGV[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, tostring(fence)}
";

/// Extends a lease, only for the holder of the current fence. A lease that lapsed while
/// nobody acquired the topic is taken back (the fence proves nobody wrote meanwhile).
///
/// KEYS: lease, meta. ARGV: node id, fence, lease ms. Returns 1, or 0 when fenced off.
pub const RENEW: &str = r"
if redis.call('HGET', KEYS[2], 'fence') ~= ARGV[2] then
  return 0
end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
";

/// Gives up a lease, only for the holder of the current fence.
///
/// KEYS: lease, meta. ARGV: node id, fence. Returns 1 if released.
pub const RELEASE: &str = r"
if redis.call('HGET', KEYS[2], 'fence') ~= ARGV[2] then
  return 0
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// Deletes a topic that held nothing or was abandoned, only for the holder of the current
/// fence. The fence stays in `meta` (with a long expiry), so no earlier owner can write.
///
/// KEYS: meta, lease, subs, ended, ctx, ids, idorder, stream. ARGV: fence, meta expiry ms.
/// Returns 1, or 0 when fenced off.
pub const FORGET: &str = r"
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8])
redis.call('HDEL', KEYS[1], 'header', 'seq', 'epoch', 'owner')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// Stores a topic's record, only for the holder of the current fence.
///
/// KEYS: meta, record. ARGV: fence, record JSON. Returns 1, or 0 when fenced off.
pub const PUT_RECORD: &str = r"
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2])
return 1
";

/// Starts a new epoch for a topic whose stored seq went back, only for the holder of the
/// current fence. Loads take the epoch from `meta.epoch` over the header's.
///
/// KEYS: meta. ARGV: fence, epoch. Returns 1, or 0 when fenced off.
pub const RESTART_EPOCH: &str = r"
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'epoch', ARGV[2])
return 1
";

/// Commits one change of a topic atomically: fence check, seq continuity, duplicate
/// event ids refused, the touched entries written, the header, the accepted ids capped,
/// each envelope appended to the capped stream and published.
///
/// KEYS: meta, subs, ended, ctx, ids, idorder, stream.
/// ARGV: fence, header JSON, new seq, epoch, ids cap, stream max length, channel, publish
/// command (`PUBLISH` or `SPUBLISH`), delta count, then per delta (kind, field, value) with
/// kind `s`/`e`/`c`/`a` (subscription, ended, context, accepted id) and an empty value for
/// a removal, then per envelope (seq, bytes).
///
/// Errors (a code and a message: Redis turns a one-word error into `ERR <word>`): `FENCED`
/// (someone else owns the topic), `SEQ <stored>` (the stored seq is not where this owner
/// thinks: a rolled-back write, or a second writer), `DUPLICATE <id>`.
pub const COMMIT: &str = r"
local stored = redis.call('HGET', KEYS[1], 'fence')
if stored ~= ARGV[1] then
  return redis.error_reply('FENCED another owner holds the topic')
end
local nd = tonumber(ARGV[9])
local first = 10 + nd * 3
local envelopes = (#ARGV - first + 1) / 2
local stored_seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local stored_epoch = redis.call('HGET', KEYS[1], 'epoch')
if (stored_epoch and stored_epoch ~= ARGV[4]) or stored_seq + envelopes ~= tonumber(ARGV[3]) then
  return redis.error_reply('SEQ ' .. tostring(stored_seq))
end
for i = 0, nd - 1 do
  local kind, field = ARGV[10 + i * 3], ARGV[11 + i * 3]
  if kind == 'a' and redis.call('HEXISTS', KEYS[5], field) == 1 then
    return redis.error_reply('DUPLICATE ' .. field)
  end
end
local hashes = { s = KEYS[2], e = KEYS[3], c = KEYS[4] }
for i = 0, nd - 1 do
  local kind, field, value = ARGV[10 + i * 3], ARGV[11 + i * 3], ARGV[12 + i * 3]
  if kind == 'a' then
    redis.call('HSET', KEYS[5], field, value)
    redis.call('RPUSH', KEYS[6], field)
  elseif value == '' then
    redis.call('HDEL', hashes[kind], field)
  else
    redis.call('HSET', hashes[kind], field, value)
  end
end
local cap = tonumber(ARGV[5])
while redis.call('LLEN', KEYS[6]) > cap do
  redis.call('HDEL', KEYS[5], redis.call('LPOP', KEYS[6]))
end
redis.call('HSET', KEYS[1], 'header', ARGV[2], 'seq', ARGV[3], 'epoch', ARGV[4])
for i = first, #ARGV, 2 do
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[6], ARGV[i] .. '-0', 'e', ARGV[i + 1])
  redis.call(ARGV[8], ARGV[7], ARGV[i + 1])
end
return 1
";

/// Every script, for loading them all at start-up.
pub const SCRIPTS: [&str; 7] = [
    ACQUIRE,
    RENEW,
    RELEASE,
    FORGET,
    RESTART_EPOCH,
    COMMIT,
    PUT_RECORD,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TopicKey;

    #[test]
    fn a_topics_keys_share_one_hash_tag_and_its_channel_names_it() {
        let topic = TopicKey::new(b"k").topic_ref("topic-0123456789abcdef");
        let keys = TopicKeys::of(&topic);
        let tag = format!("{{{}}}", topic.as_str());
        for key in keys
            .for_commit()
            .iter()
            .chain([&keys.lease.as_str(), &keys.channel.as_str()])
        {
            assert!(key.starts_with("fhc:v1:"), "{key}");
            assert_eq!(key.matches(&tag).count(), 1, "{key}");
        }
        assert_eq!(topic_of_channel(&keys.channel), Some(topic.as_str()));
        assert_eq!(topic_of_channel("fhc:v1:{x}:meta"), None);
        assert_eq!(topic_of_channel("other"), None);
    }
}
