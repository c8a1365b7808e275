//! [`AuditLog`]: entries appended on their own, and the most recent ones read back.

use async_trait::async_trait;

use super::{MemoryStore, count};
use crate::audit::{AuditEntry, AuditLog};
use crate::ids::PractitionerId;
use crate::repository::RepositoryError;

#[async_trait]
impl AuditLog for MemoryStore {
    async fn append(&self, entry: &AuditEntry) -> Result<(), RepositoryError> {
        self.transaction(|s| s.append_audit(std::slice::from_ref(entry)))
    }

    async fn recent(
        &self,
        practitioner: PractitionerId,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, RepositoryError> {
        Ok(self.read(|s| {
            // Newest first; of two entries at one instant, the later written first.
            let mut found: Vec<(usize, &AuditEntry)> = s
                .audit
                .iter()
                .enumerate()
                .filter(|(_, e)| e.practitioner == practitioner)
                .collect();
            found.sort_by_key(|(seq, e)| std::cmp::Reverse((e.at, *seq)));
            found
                .into_iter()
                .take(count(limit))
                .map(|(_, e)| e.clone())
                .collect()
        }))
    }
}
