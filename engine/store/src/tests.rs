use super::*;

fn settings(dir: &Path, sync: SyncMode) -> StoreSettings {
    StoreSettings { dir: dir.to_path_buf(), sync, sync_interval: Duration::from_millis(50) }
}

fn message(topic: &str, payload: &str) -> StoredMessage {
    StoredMessage {
        topic: Bytes::copy_from_slice(topic.as_bytes()),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos: 1,
        ..Default::default()
    }
}

fn session(id: &str) -> StoredSession {
    StoredSession {
        client_id: id.into(),
        username: None,
        protocol: 5,
        expiry_secs: 60,
        disconnected_at_ms: None,
        subscriptions: vec![StoredSubscription {
            filter: "a/#".into(),
            qos: 1,
            no_local: false,
            retain_as_published: true,
            retain_handling: 0,
            id: None,
        }],
    }
}

fn delivery(payload: &str, state: DeliveryState) -> StoredDelivery {
    StoredDelivery { message: message("a/b", payload), qos: 1, retain: false, subscription_ids: vec![], state }
}

#[test]
fn what_was_kept_is_read_back_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    for sync in [SyncMode::Batch, SyncMode::Always] {
        let dir = dir.path().join(format!("{sync:?}"));
        {
            let (store, restored) = Store::open(&settings(&dir, sync)).unwrap();
            assert!(restored.retained.is_empty() && restored.sessions.is_empty());
            store.put_retained(&message("r/1", "one"));
            store.put_retained(&message("r/2", "two"));
            store.clear_retained(b"r/2");
            store.put_session(&session("c1"));
            store.put_session(&session("c2"));
            let seqs: Vec<u64> = (0..3).map(|_| store.next_seq()).collect();
            store.put_delivery("c1", seqs[0], &delivery("m0", DeliveryState::Waiting));
            store.set_state("c1", seqs[0], DeliveryState::Sent(7));
            store.put_delivery("c1", seqs[1], &delivery("m1", DeliveryState::Sent(1)));
            store.put_delivery("c1", seqs[2], &delivery("m2", DeliveryState::Waiting));
            store.remove_delivery("c1", seqs[1], false);
            store.put_delivery("c2", store.next_seq(), &delivery("x", DeliveryState::Waiting));
            store.remove_session("c2");
            store.put_will("c1", &StoredWill { message: message("w", "gone"), delay_secs: 5 });
            store.sync_blocking().unwrap();
        }
        let (store, restored) = Store::open(&settings(&dir, sync)).unwrap();
        assert_eq!(restored.retained, vec![message("r/1", "one")]);
        assert_eq!(restored.sessions.len(), 1, "c2 ended");
        let c1 = &restored.sessions[0];
        assert_eq!(c1.session, session("c1"));
        let got: Vec<_> = c1.deliveries.iter().map(|(_, d, s)| (d.message.payload.clone(), *s)).collect();
        assert_eq!(got, vec![(Bytes::from("m0"), DeliveryState::Sent(7)), (Bytes::from("m2"), DeliveryState::Waiting)]);
        assert_eq!(restored.wills.len(), 1);
        assert!(store.next_seq() > c1.deliveries.last().unwrap().0, "sequence numbers go on after a restart");
    }
}

#[test]
fn a_second_process_cannot_open_a_store_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, _) = Store::open(&settings(dir.path(), SyncMode::Batch)).unwrap();
    match Store::open(&settings(dir.path(), SyncMode::Batch)) {
        Err(StoreError::Locked(d)) => assert_eq!(d, dir.path()),
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn a_barrier_answers_after_the_changes_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&settings(dir.path(), SyncMode::Always)).unwrap();
    store.put_retained(&message("t", "v"));
    store.sync().await.unwrap();
    // Visible to a reader of the keyspace now: it is in the journal.
    let got = store.inner.partition.get(keys::simple(keys::RETAINED, b"t")).unwrap();
    assert!(got.is_some());
}

#[test]
fn a_backup_restores_into_an_identical_store_and_a_damaged_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let file = dir.path().join("backup.bin");
    {
        let (store, _) = Store::open(&settings(&live, SyncMode::Batch)).unwrap();
        for i in 0..100 {
            store.put_retained(&message(&format!("r/{i}"), "v"));
        }
        store.put_session(&session("c1"));
        store.put_delivery("c1", store.next_seq(), &delivery("m", DeliveryState::Released(3)));
        store.sync_blocking().unwrap();
        let summary = store.backup(&file).unwrap();
        assert_eq!(summary.records, 102);
        // The backup is a copy as of its instant: later changes are not in it.
        store.put_retained(&message("r/late", "v"));
        store.sync_blocking().unwrap();
        assert!(matches!(restore(&live, &file), Err(StoreError::Locked(_))), "not while it is open");
    }
    let other = dir.path().join("other");
    let summary = restore(&other, &file).unwrap();
    assert_eq!(summary.records, 102);
    let (_, restored) = Store::open(&settings(&other, SyncMode::Batch)).unwrap();
    assert_eq!(restored.retained.len(), 100);
    assert_eq!(restored.sessions[0].deliveries[0].2, DeliveryState::Released(3));

    let bytes = std::fs::read(&file).unwrap();
    for (name, damaged) in [
        ("cut", bytes[..bytes.len() - 1].to_vec()),
        ("flipped", {
            let mut b = bytes.clone();
            b[40] ^= 1;
            b
        }),
        ("empty", vec![]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, damaged).unwrap();
        let err = restore(&dir.path().join(format!("restore-{name}")), &path).unwrap_err();
        assert!(err.to_string().contains("not a whole Alicia store backup"), "{name}: {err}");
        assert!(!dir.path().join(format!("restore-{name}")).join("db").exists(), "{name}: nothing restored");
    }
}

#[test]
fn owned_records_are_kept_apart_by_namespace_and_read_back_by_their_owner() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = Store::open(&settings(dir.path(), SyncMode::Batch)).unwrap();
        store.put_owned("timers", "t-1", Bytes::from_static(b"one"));
        store.put_owned("timers", "t-2", Bytes::from_static(b"two"));
        store.put_owned("timersx", "t-3", Bytes::from_static(b"other namespace"));
        store.remove_owned("timers", "t-2");
        store.sync_blocking().unwrap();
        assert_eq!(store.read_owned("timers").unwrap(), [("t-1".to_string(), Bytes::from_static(b"one"))]);
    }
    let (store, restored) = Store::open(&settings(dir.path(), SyncMode::Batch)).unwrap();
    assert_eq!(restored.skipped, 0, "owned records are not the store's to read back");
    assert_eq!(store.read_owned("timers").unwrap(), [("t-1".to_string(), Bytes::from_static(b"one"))]);
    assert_eq!(store.read_owned("timersx").unwrap().len(), 1);
}
