//! Cluster ingest: prepare, split by partition, publish, answer once stored.
//!
//! The batch is prepared against the catalog engine with the same `prepare_batch` a
//! single node runs (identifiers, limits, trait types within the batch, name tables),
//! so a bad batch is refused whole with the same 4xx and nothing is published. Checks
//! that depend on a partition's stored state (a trait's type set by earlier batches,
//! the `messageId` de-duplication window) run when the partition's owner applies the
//! part: de-duplication gives the same result as a single node; a type conflict with
//! stored values makes the owner refuse that part (logged, counted in
//! `refused_parts`, alike on every replay) after the request was acknowledged.
//!
//! Until the identity map (issue 14 item 3) exists, a message's profile lives in the
//! partition of its profile key (`u:<userId>`, else `a:<anonymousId>`), and a message
//! naming identities in two partitions (userId and anonymousId, or an alias's two ids,
//! hashing to different partitions) is refused whole with 422
//! `cross_partition_identity` rather than creating two profiles for one person.

use super::*;
use crate::engine::Mutation;
use crate::engine::{Applied, BatchOutcome};
use crate::http::error::ApiError;
use crate::ingest::{Message, MessageKind};
use crate::persist::record::WalRecord;
use axum::http::StatusCode;

/// The partition of a message's profile, or the refusal naming the field that points
/// into another partition.
pub fn message_partition(message: &Message, partitions: u32) -> Result<PartitionId, ApiError> {
    let user = message
        .user_id
        .as_deref()
        .map(|id| partition_of_key(&format!("u:{id}"), partitions));
    let anonymous = message
        .anonymous_id
        .as_deref()
        .map(|id| partition_of_key(&format!("a:{id}"), partitions));
    let Some(home) = user.or(anonymous) else {
        // Validation requires one of them; prepare refused it already.
        return Err(ApiError::internal());
    };
    let cross = |field: &str| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "cross_partition_identity",
            format!(
                "`{field}` belongs to another cluster partition than the message's profile; \
                 linking identities across partitions is not supported in cluster mode yet \
                 (nothing was applied)"
            ),
        )
        .with("path", field)
    };
    if anonymous.is_some_and(|partition| partition != home) {
        return Err(cross("anonymousId"));
    }
    if let MessageKind::Alias { previous_id } = &message.kind {
        // The previous id may be a userId or an anonymousId: both must be at home.
        let as_user = partition_of_key(&format!("u:{previous_id}"), partitions);
        let as_anonymous = partition_of_key(&format!("a:{previous_id}"), partitions);
        if as_user != home || as_anonymous != home {
            return Err(cross("previousId"));
        }
    }
    Ok(home)
}

/// Splits a batch into per-partition parts, each keeping the batch's order.
pub fn split(
    messages: Vec<Message>,
    partitions: u32,
) -> Result<BTreeMap<PartitionId, Vec<Message>>, ApiError> {
    let many = messages.len() > 1;
    let mut parts: BTreeMap<PartitionId, Vec<Message>> = BTreeMap::new();
    for (index, message) in messages.into_iter().enumerate() {
        let partition = message_partition(&message, partitions).map_err(|mut error| {
            if many {
                if let Some(serde_json::Value::String(path)) = error.details.get_mut("path") {
                    *path = format!("batch[{index}].{path}");
                }
            }
            error
        })?;
        parts.entry(partition).or_default().push(message);
    }
    Ok(parts)
}

fn unavailable(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "cluster_unavailable",
        message,
    )
}

/// Prepares, splits and publishes a batch; answers once JetStream stored every part.
pub async fn publish(cluster: &Arc<Cluster>, messages: Vec<Message>) -> Result<Applied, ApiError> {
    let node = cluster.clone();
    let (messages, applied) = tokio::task::spawn_blocking(move || {
        let applied = node.catalog.prepare_batch(&messages)?.applied_len();
        Ok::<_, crate::engine::EngineError>((messages, applied))
    })
    .await
    .map_err(|_| ApiError::internal())??;
    let at_ms = cluster.catalog.now_ms();
    let parts = split(messages, cluster.partitions)?;
    let mut acks = Vec::with_capacity(parts.len());
    for (partition, part) in parts {
        let record = WalRecord::Mutation {
            at_ms,
            mutation: Mutation::Messages(part),
        };
        let ack = cluster
            .jetstream
            .publish(ingest_subject(partition), record.encode().into())
            .await
            .map_err(|error| {
                tracing::error!(%partition, %error, "ingest: publish failed");
                unavailable(
                    "the cluster log cannot be written right now; parts of this batch may be \
                     stored — retry it (messageIds make the retry apply each message once)",
                )
            })?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await.map_err(|error| {
            tracing::error!(%error, "ingest: publish not acknowledged");
            unavailable(
                "the cluster log did not acknowledge every part of this batch; retry it \
                 (messageIds make the retry apply each message once)",
            )
        })?;
    }
    Ok(Applied::Batch(BatchOutcome {
        applied,
        ..BatchOutcome::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(user: Option<&str>, anonymous: Option<&str>, kind: MessageKind) -> Message {
        Message {
            kind,
            user_id: user.map(str::to_string),
            anonymous_id: anonymous.map(str::to_string),
            message_id: None,
            timestamp_ms: None,
        }
    }

    fn identify() -> MessageKind {
        MessageKind::Identify {
            traits: serde_json::Map::new(),
        }
    }

    /// An id whose `prefix:` key falls (or not) into `partition`.
    fn id_in(prefix: &str, partition: PartitionId, same: bool, partitions: u32) -> String {
        (0..10_000)
            .map(|k| format!("id-{k}"))
            .find(|id| {
                (partition_of_key(&format!("{prefix}:{id}"), partitions) == partition) == same
            })
            .unwrap()
    }

    #[test]
    fn a_message_goes_to_its_user_partition_else_its_anonymous_one() {
        let partitions = 8;
        let user = message(Some("ada"), None, identify());
        assert_eq!(
            message_partition(&user, partitions).unwrap(),
            partition_of_key("u:ada", partitions)
        );
        let anonymous = message(None, Some("x1"), identify());
        assert_eq!(
            message_partition(&anonymous, partitions).unwrap(),
            partition_of_key("a:x1", partitions)
        );
        // The same addressing as lookups use.
        assert_eq!(
            partition_of_external("anon:x1", partitions),
            partition_of_key("a:x1", partitions)
        );
    }

    #[test]
    fn identities_in_two_partitions_are_refused_with_the_field_named() {
        let partitions = 8;
        let home = partition_of_key("u:ada", partitions);
        let near = id_in("a", home, true, partitions);
        let far = id_in("a", home, false, partitions);
        let linked = message(Some("ada"), Some(&near), identify());
        assert_eq!(message_partition(&linked, partitions).unwrap(), home);
        let crossing = message(Some("ada"), Some(&far), identify());
        let batch = vec![linked.clone(), crossing];
        let error = split(batch, partitions).unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.code, "cross_partition_identity");
        assert_eq!(error.details["path"], "batch[1].anonymousId");
        let alias = message(
            Some("ada"),
            None,
            MessageKind::Alias {
                previous_id: id_in("u", home, false, partitions),
            },
        );
        assert_eq!(
            message_partition(&alias, partitions).unwrap_err().code,
            "cross_partition_identity"
        );
    }

    #[test]
    fn split_keeps_batch_order_within_each_partition() {
        let partitions = 4;
        let messages: Vec<Message> = (0..40)
            .map(|index| {
                let mut message = message(Some(&format!("u{}", index % 7)), None, identify());
                message.message_id = Some(format!("m{index}"));
                message
            })
            .collect();
        let parts = split(messages.clone(), partitions).unwrap();
        assert_eq!(parts.values().map(Vec::len).sum::<usize>(), messages.len());
        for (partition, part) in &parts {
            let expected: Vec<&Message> = messages
                .iter()
                .filter(|message| message_partition(message, partitions).unwrap() == *partition)
                .collect();
            assert_eq!(part.iter().collect::<Vec<_>>(), expected);
        }
    }
}
