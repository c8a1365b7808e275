//! [`SandboxStore`]: the sandbox gateway's rows, stamped with the version of the write
//! that last changed them, and one writer at a time.
//!
//! The writer lock is an async mutex held by the open [`SandboxWrite`] (an owned
//! guard, released when the write commits or is dropped): a second `begin` waits for
//! it without blocking the thread, so writers joined in one task take turns.
//! Everything a write changes is applied at its commit, so a dropped write changes
//! nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::Duration;
use futures_util::lock::OwnedMutexGuard;

use super::MemoryStore;
use crate::gateway::{SandboxHead, SandboxRow, SandboxStore, SandboxWrite};
use crate::repository::RepositoryError;

/// The sandbox's rows, by kind and id, with the version that last wrote each.
#[derive(Debug)]
pub(super) struct SandboxState {
    head: SandboxHead,
    rows: BTreeMap<(String, String), (i64, String)>,
}

impl Default for SandboxState {
    fn default() -> Self {
        SandboxState {
            head: SandboxHead {
                version: 0,
                clock_offset: Duration::zero(),
            },
            rows: BTreeMap::new(),
        }
    }
}

fn lock(state: &Mutex<SandboxState>) -> MutexGuard<'_, SandboxState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl SandboxStore for MemoryStore {
    async fn begin(&self) -> Result<Box<dyn SandboxWrite>, RepositoryError> {
        let writer = self.sandbox_writer.clone().lock_owned().await;
        let head = lock(&self.sandbox).head;
        Ok(Box::new(MemorySandboxWrite {
            _writer: writer,
            head,
            state: Arc::clone(&self.sandbox),
        }))
    }

    async fn head(&self) -> Result<SandboxHead, RepositoryError> {
        Ok(lock(&self.sandbox).head)
    }
}

/// A write in progress: holds the writer lock until it commits or is dropped.
#[derive(Debug)]
struct MemorySandboxWrite {
    _writer: OwnedMutexGuard<()>,
    head: SandboxHead,
    state: Arc<Mutex<SandboxState>>,
}

#[async_trait]
impl SandboxWrite for MemorySandboxWrite {
    fn head(&self) -> SandboxHead {
        self.head
    }

    async fn changed_since(&mut self, version: i64) -> Result<Vec<SandboxRow>, RepositoryError> {
        Ok(lock(&self.state)
            .rows
            .iter()
            .filter(|(_, (written, _))| *written > version)
            .map(|((kind, id), (_, body))| SandboxRow {
                kind: kind.clone(),
                id: id.clone(),
                body: body.clone(),
            })
            .collect())
    }

    async fn commit(
        self: Box<Self>,
        rows: Vec<SandboxRow>,
        clock_offset: Duration,
    ) -> Result<SandboxHead, RepositoryError> {
        // The adapter keeps the offset in microseconds.
        if clock_offset.num_microseconds().is_none() {
            return Err(RepositoryError::Corrupt(
                "the sandbox clock is too far ahead".into(),
            ));
        }
        let next = SandboxHead {
            version: self.head.version + 1,
            clock_offset,
        };
        let mut state = lock(&self.state);
        for row in rows {
            state
                .rows
                .insert((row.kind, row.id), (next.version, row.body));
        }
        state.head = next;
        Ok(next)
        // The writer lock is released when `self` is dropped, after the commit.
    }
}
