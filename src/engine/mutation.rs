//! The one command type of the write path.
//!
//! A [`Mutation`] is produced once (by the HTTP layer, an importer, a tool), encoded
//! once as the WAL record (`crate::persist::record`), and applied by one
//! [`Engine::apply`]. Recovery replays the WAL by calling the same `apply` with the
//! clock pinned to the record's time, so replay is apply.

use super::*;

/// Every change to segd's state that is logged.
#[derive(Clone, Debug, PartialEq)]
pub enum Mutation {
    /// Segment-spec messages (`identify`, `track`, `page`, `screen`, `group`, `alias`),
    /// applied as one all-or-nothing batch.
    Messages(Vec<Message>),
    CreateSegment {
        name: String,
        description: String,
        /// `None` makes a static segment.
        rule: Option<Rule>,
        /// Record every initial member in the change log (cause `initial`).
        emit_initial: bool,
    },
    UpdateSegment {
        id: SegmentId,
        rule: Rule,
        description: Option<String>,
    },
    DeleteSegment {
        id: SegmentId,
    },
    EditStatic {
        id: SegmentId,
        edit: StaticEdit,
        profiles: Vec<String>,
    },
    /// Deletes a profile and suppresses its identifiers.
    EraseProfile {
        external_id: String,
    },
    DeleteProfile {
        external_id: String,
    },
    /// State owned by the HTTP layer (webhook registrations), replaced whole; opaque to
    /// the engine, kept by the database in snapshots.
    ApplicationState(Vec<u8>),
}

/// What applying a mutation did.
#[derive(Clone, Debug)]
pub enum Applied {
    Batch(BatchOutcome),
    Segment(SegmentSummary),
    Updated(SegmentSummary, Vec<MembershipChange>),
    Deleted,
    /// Changes of a static edit, and the profiles it named that do not exist.
    StaticEdited(Vec<MembershipChange>, Vec<String>),
    Removed(Vec<MembershipChange>),
    ApplicationState,
}

impl Mutation {
    /// Short name for reports and metrics.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Mutation::Messages(_) => "messages",
            Mutation::CreateSegment { .. } => "create_segment",
            Mutation::UpdateSegment { .. } => "update_segment",
            Mutation::DeleteSegment { .. } => "delete_segment",
            Mutation::EditStatic { .. } => "edit_static",
            Mutation::EraseProfile { .. } => "erase_profile",
            Mutation::DeleteProfile { .. } => "delete_profile",
            Mutation::ApplicationState(_) => "application_state",
        }
    }

    /// How many profiles the mutation may touch at most (`None`: every profile), for
    /// bounding the change-log sequences it can use.
    pub fn profiles_touched(&self) -> Option<u64> {
        match self {
            // A message can touch its profile and one it merges.
            Mutation::Messages(messages) => Some(2 * messages.len() as u64),
            Mutation::EraseProfile { .. } | Mutation::DeleteProfile { .. } => Some(1),
            Mutation::DeleteSegment { .. } | Mutation::ApplicationState(_) => Some(0),
            Mutation::CreateSegment { .. }
            | Mutation::UpdateSegment { .. }
            | Mutation::EditStatic { .. } => None,
        }
    }
}

impl Engine {
    /// Applies one mutation. Input errors leave no trace; the caller logs only what
    /// was applied.
    pub fn apply(&self, mutation: &Mutation) -> Result<Applied, EngineError> {
        match mutation {
            Mutation::Messages(messages) => self.apply_batch(messages).map(Applied::Batch),
            Mutation::CreateSegment {
                name,
                description,
                rule,
                emit_initial,
            } => self
                .create_segment_with(
                    name,
                    description,
                    rule.clone().map(RuleInput::Ast),
                    *emit_initial,
                )
                .map(Applied::Segment),
            Mutation::UpdateSegment {
                id,
                rule,
                description,
            } => self
                .update_segment(*id, RuleInput::Ast(rule.clone()), description.as_deref())
                .map(|(summary, changes)| Applied::Updated(summary, changes)),
            Mutation::DeleteSegment { id } => self.delete_segment(*id).map(|()| Applied::Deleted),
            Mutation::EditStatic { id, edit, profiles } => self
                .edit_static(*id, *edit, profiles)
                .map(|(changes, missing)| Applied::StaticEdited(changes, missing)),
            Mutation::EraseProfile { external_id } => {
                self.erase_profile(external_id).map(Applied::Removed)
            }
            Mutation::DeleteProfile { external_id } => {
                self.delete_profile(external_id).map(Applied::Removed)
            }
            Mutation::ApplicationState(_) => Ok(Applied::ApplicationState),
        }
    }
}
