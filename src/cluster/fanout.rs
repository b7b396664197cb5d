//! Reads across nodes over NATS request/reply: the owner of partition `p` answers on
//! `segd.query.<p>`. A reader needs no address book of nodes: NATS routes the request
//! to whoever subscribed (the owner, once caught up), reports "no responders" at once
//! when nobody owns the partition yet, and every request has a deadline. Counts ask
//! every partition and sum; lookups ask the profile's partition.
//!
//! Each request carries the segment-log sequence the reader's catalog has applied; an
//! owner that has not applied as far answers `behind` and the reader asks again, so a
//! segment id always means the same segment on both sides.

use super::*;
use crate::http::error::ApiError;
use crate::ids::SegmentId;
use axum::http::StatusCode;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

/// A read one partition answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Query {
    Count { segment: SegmentId },
    IsMember { segment: SegmentId, profile: String },
    SegmentsOf { profile: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    segments_seq: u64,
    query: Query,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum Reply {
    Ok {
        value: serde_json::Value,
    },
    /// The owner has not applied the segment log as far as the reader.
    Behind,
    /// An error the reader passes on (e.g. 404 `profile_not_found`).
    Error {
        http_status: u16,
        code: String,
        message: String,
    },
}

fn answer(engine: &Engine, query: Query) -> Reply {
    let result = match query {
        Query::Count { segment } => Ok(serde_json::json!(engine.count(segment))),
        Query::IsMember { segment, profile } => engine
            .is_member(segment, &profile)
            .map(|member| serde_json::json!(member)),
        Query::SegmentsOf { profile } => match engine.resolve(&profile) {
            Some(reference) => {
                let mut ids = Vec::new();
                engine.segments_of_profile(reference, &mut ids);
                ids.sort_unstable();
                Ok(serde_json::json!(ids))
            }
            None => Err(crate::engine::EngineError::ProfileNotFound(profile)),
        },
    };
    match result {
        Ok(value) => Reply::Ok { value },
        Err(error) => {
            let error = ApiError::from(error);
            Reply::Error {
                http_status: error.status.as_u16(),
                code: error.code.to_string(),
                message: error.message,
            }
        }
    }
}

/// Answers reads for an owned partition until it is stopped.
pub(crate) async fn respond(
    cluster: Arc<Cluster>,
    owned: Arc<Owned>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let partition = owned.partition;
    let mut requests = match cluster.client.subscribe(query_subject(partition)).await {
        Ok(subscriber) => subscriber,
        Err(error) => {
            tracing::error!(%partition, %error, "cannot answer reads for the partition");
            return;
        }
    };
    loop {
        let request = tokio::select! {
            _ = stopped.changed() => break,
            request = requests.next() => request,
        };
        let Some(request) = request else { break };
        let Some(reply_to) = request.reply.clone() else {
            continue;
        };
        let reply = match serde_json::from_slice::<Request>(&request.payload) {
            Err(error) => Reply::Error {
                http_status: 500,
                code: "internal".into(),
                message: format!("undecodable cluster query: {error}"),
            },
            Ok(request) if cluster.segments_applied() < request.segments_seq => Reply::Behind,
            Ok(request) => {
                let engine = owned.engine.clone();
                tokio::task::spawn_blocking(move || answer(&engine, request.query))
                    .await
                    .unwrap_or(Reply::Error {
                        http_status: 500,
                        code: "internal".into(),
                        message: "a cluster query panicked".into(),
                    })
            }
        };
        let payload = serde_json::to_vec(&reply).unwrap_or_default();
        if let Err(error) = cluster.client.publish(reply_to, payload.into()).await {
            tracing::warn!(%partition, %error, "cannot send a query reply");
        }
    }
    let _ = requests.unsubscribe().await;
}

fn partition_unavailable(partition: PartitionId, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "partition_unavailable",
        format!(
            "partition {partition} cannot answer right now ({why}); it may be being taken over — retry shortly"
        ),
    )
    .with("partition", partition.0)
}

/// Asks one partition, retrying while nobody owns it yet or its owner is behind, up
/// to the read deadline.
pub async fn ask(
    cluster: &Cluster,
    partition: PartitionId,
    query: Query,
) -> Result<serde_json::Value, ApiError> {
    let payload = serde_json::to_vec(&Request {
        segments_seq: cluster.segments_applied(),
        query,
    })
    .map_err(|_| ApiError::internal())?;
    let deadline = tokio::time::Instant::now() + cluster.read_wait();
    let mut why;
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_millis(1_000),
            cluster
                .client
                .request(query_subject(partition), payload.clone().into()),
        )
        .await;
        match attempt {
            Ok(Ok(message)) => match serde_json::from_slice::<Reply>(&message.payload) {
                Ok(Reply::Ok { value }) => return Ok(value),
                Ok(Reply::Behind) => why = "its owner is applying segment changes",
                Ok(Reply::Error {
                    http_status,
                    code,
                    message,
                }) => {
                    if http_status >= 500 {
                        tracing::error!(%partition, %code, %message, "a partition failed a query");
                        return Err(ApiError::internal());
                    }
                    let status =
                        StatusCode::from_u16(http_status).unwrap_or(StatusCode::BAD_REQUEST);
                    // Codes are a fixed set; keep the generic one for anything else.
                    let code = match code.as_str() {
                        "profile_not_found" => "profile_not_found",
                        "segment_not_found" => "segment_not_found",
                        _ => "invalid_request",
                    };
                    return Err(ApiError::new(status, code, message));
                }
                Err(_) => return Err(ApiError::internal()),
            },
            Ok(Err(_)) => why = "no owner answering",
            Err(_) => why = "its owner did not answer in time",
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(partition_unavailable(partition, why));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A segment's member count over every partition.
pub async fn count(cluster: &Cluster, segment: SegmentId) -> Result<u64, ApiError> {
    let answers = futures_util::future::join_all(
        (0..cluster.partitions)
            .map(|partition| ask(cluster, PartitionId(partition), Query::Count { segment })),
    )
    .await;
    let mut total = 0;
    for answer in answers {
        total += answer?.as_u64().ok_or_else(ApiError::internal)?;
    }
    Ok(total)
}

/// Is the profile a member (asked of its partition)?
pub async fn is_member(
    cluster: &Cluster,
    segment: SegmentId,
    profile: &str,
) -> Result<bool, ApiError> {
    let partition = partition_of_external(profile, cluster.partitions);
    let query = Query::IsMember {
        segment,
        profile: profile.to_string(),
    };
    ask(cluster, partition, query)
        .await?
        .as_bool()
        .ok_or_else(ApiError::internal)
}

/// The profile's segments (asked of its partition).
pub async fn segments_of(cluster: &Cluster, profile: &str) -> Result<Vec<SegmentId>, ApiError> {
    let partition = partition_of_external(profile, cluster.partitions);
    let query = Query::SegmentsOf {
        profile: profile.to_string(),
    };
    let value = ask(cluster, partition, query).await?;
    serde_json::from_value(value).map_err(|_| ApiError::internal())
}
