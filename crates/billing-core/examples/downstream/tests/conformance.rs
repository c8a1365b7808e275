//! The adapter keeps billing-core's contract for its port group: every case of the
//! inbox group of the conformance suite, each on a fresh store.

use billing_core::testing::{block_on, conformance};
use clinic_billing::{KvKeys, MemoryKv};

#[test]
fn kv_keys_pass_the_inbox_group_of_the_conformance_suite() {
    let cases = conformance::inbox_cases::<KvKeys<MemoryKv>>();
    assert!(!cases.is_empty());
    for case in cases {
        eprintln!("conformance: {}", case.name);
        block_on(case.run(KvKeys::new(MemoryKv::default())));
    }
}
