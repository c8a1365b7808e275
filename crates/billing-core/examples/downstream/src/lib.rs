//! A clinic's billing, embedding `billing-core` the way a downstream team would: it
//! keeps webhook events and API idempotency keys in the key-value store it already
//! runs ([`KvKeys`], an adapter for billing-core's `WebhookInbox` and
//! `IdempotencyStore` ports, written from their docs and proven by billing-core's
//! conformance suite), and wires the act's validation from just the ports it uses
//! ([`validation`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use billing_core::async_trait::async_trait;
use billing_core::chrono::{DateTime, Utc};
use billing_core::consultation::ports::ConsultationRepository;
use billing_core::gateway::PaymentGateway;
use billing_core::ids::EventId;
use billing_core::payment::ledger::Ledger;
use billing_core::payment::ports::{
    IdempotencyRecord, IdempotencyStore, PaymentRepository, Reservation, WebhookInbox,
};
use billing_core::payment::service::PaymentService;
use billing_core::practitioner::ports::PractitionerRepository;
use billing_core::repository::RepositoryError;
use billing_core::system::{Clock, IdGenerator};
use billing_core::uuid::Uuid;

/// The clinic's key-value store, as its other services use it: string keys and
/// values, and one atomic write (set if absent), like Redis's `SET NX` or a
/// conditional put.
pub trait KeyValue: Send + Sync {
    /// The value under `key`.
    fn get(&self, key: &str) -> Option<String>;
    /// Stores `value` under `key` unless a value is there; returns the value that was
    /// there (`None`: stored). Atomic.
    fn set_if_absent(&self, key: &str, value: &str) -> Option<String>;
    /// Replaces the value under `key` if it is `expected`; whether it did. Atomic.
    fn compare_and_set(&self, key: &str, expected: &str, value: Option<&str>) -> bool;
}

/// The in-process stand-in for the clinic's store.
#[derive(Debug, Default)]
pub struct MemoryKv(Mutex<HashMap<String, String>>);

impl KeyValue for MemoryKv {
    fn get(&self, key: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn set_if_absent(&self, key: &str, value: &str) -> Option<String> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(key) {
            Some(existing) => Some(existing.clone()),
            None => {
                map.insert(key.to_owned(), value.to_owned());
                None
            }
        }
    }

    fn compare_and_set(&self, key: &str, expected: &str, value: Option<&str>) -> bool {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(key).map(String::as_str) != Some(expected) {
            return false;
        }
        match value {
            Some(v) => map.insert(key.to_owned(), v.to_owned()),
            None => map.remove(key),
        };
        true
    }
}

/// Webhook events and idempotency keys in a [`KeyValue`] store: `event:{id}` holds
/// `seen` or `processed`; `key:{scope}:{key}` holds the record, one field per line.
#[derive(Debug)]
pub struct KvKeys<K>(K);

impl<K: KeyValue> KvKeys<K> {
    /// The adapter on `store`.
    pub fn new(store: K) -> Self {
        KvKeys(store)
    }
}

const SEEN: &str = "seen";
const PROCESSED: &str = "processed";

fn key_of(scope: &str, key: &str) -> String {
    // Lengths first, so that no scope and key can spell another pair's name.
    format!("key:{}:{scope}:{key}", scope.len())
}

fn encode(r: &IdempotencyRecord) -> String {
    let resource = r.resource.map(|u| u.to_string()).unwrap_or_default();
    format!(
        "{}\n{resource}\n{}",
        r.fingerprint,
        r.created_at.to_rfc3339()
    )
}

fn decode(scope: &str, key: &str, value: &str) -> Result<IdempotencyRecord, RepositoryError> {
    let corrupt = || RepositoryError::Corrupt(format!("idempotency key {key}: {value:?}"));
    let mut fields = value.splitn(3, '\n');
    let (Some(fingerprint), Some(resource), Some(created_at)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return Err(corrupt());
    };
    Ok(IdempotencyRecord {
        scope: scope.to_owned(),
        key: key.to_owned(),
        fingerprint: fingerprint.to_owned(),
        resource: match resource {
            "" => None,
            uuid => Some(Uuid::parse_str(uuid).map_err(|_| corrupt())?),
        },
        created_at: DateTime::parse_from_rfc3339(created_at)
            .map_err(|_| corrupt())?
            .with_timezone(&Utc),
    })
}

#[async_trait]
impl<K: KeyValue> WebhookInbox for KvKeys<K> {
    async fn processed(&self, id: &EventId) -> Result<bool, RepositoryError> {
        Ok(self.0.get(&format!("event:{id}")).as_deref() == Some(PROCESSED))
    }

    async fn record_processed(
        &self,
        id: &EventId,
        _kind: &str,
        _received_at: DateTime<Utc>,
        _processed_at: DateTime<Utc>,
        _outcome: &str,
    ) -> Result<(), RepositoryError> {
        let key = format!("event:{id}");
        if self.0.set_if_absent(&key, PROCESSED).as_deref() == Some(SEEN) {
            self.0.compare_and_set(&key, SEEN, Some(PROCESSED));
        }
        Ok(())
    }

    async fn record_received(
        &self,
        id: &EventId,
        _kind: &str,
        _received_at: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        self.0.set_if_absent(&format!("event:{id}"), SEEN);
        Ok(())
    }
}

#[async_trait]
impl<K: KeyValue> IdempotencyStore for KvKeys<K> {
    async fn reserve(&self, record: &IdempotencyRecord) -> Result<Reservation, RepositoryError> {
        let name = key_of(&record.scope, &record.key);
        match self.0.set_if_absent(&name, &encode(record)) {
            None => Ok(Reservation::New),
            Some(existing) => Ok(Reservation::Existing(decode(
                &record.scope,
                &record.key,
                &existing,
            )?)),
        }
    }

    async fn complete(
        &self,
        scope: &str,
        key: &str,
        resource: Uuid,
    ) -> Result<(), RepositoryError> {
        let name = key_of(scope, key);
        let current = self.0.get(&name).ok_or(RepositoryError::NotFound)?;
        let mut record = decode(scope, key, &current)?;
        record.resource = Some(resource);
        if self
            .0
            .compare_and_set(&name, &current, Some(&encode(&record)))
        {
            Ok(())
        } else {
            // Released and reserved again meanwhile: not this request's key any more.
            Err(RepositoryError::Conflict)
        }
    }

    async fn release(&self, scope: &str, key: &str) -> Result<(), RepositoryError> {
        let name = key_of(scope, key);
        let Some(current) = self.0.get(&name) else {
            return Ok(());
        };
        if decode(scope, key, &current)?.resource.is_none() {
            // A completed key keeps answering replays; a lost race means someone else
            // settled it, which is theirs to keep.
            self.0.compare_and_set(&name, &current, None);
        }
        Ok(())
    }
}

/// The ports the act's validation uses, and nothing else.
#[derive(Clone)]
pub struct ValidationPorts {
    /// Consultations and their payments (billing-core's `MemoryStore` in the tests).
    pub consultations: Arc<dyn ConsultationRepository>,
    /// Payments and their history.
    pub payments: Arc<dyn PaymentRepository>,
    /// Practitioners, for their Stripe account.
    pub practitioners: Arc<dyn PractitionerRepository>,
    /// The clinic's own idempotency keys ([`KvKeys`]).
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// The payment processor.
    pub gateway: Arc<dyn PaymentGateway>,
    /// New ids (history rows, documents).
    pub ids: Arc<dyn IdGenerator>,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

/// The act's validation (and refunds), wired from [`ValidationPorts`] alone.
pub fn validation(ports: ValidationPorts) -> PaymentService {
    let ledger = Ledger::new(
        ports.payments,
        ports.consultations.clone(),
        ports.practitioners,
        ports.gateway,
        ports.ids,
        ports.clock,
    );
    PaymentService::new(ports.consultations, ports.idempotency, ledger)
}
