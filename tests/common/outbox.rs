//! A webhook receiver that counts what it gets, and the checks that a run neither lost nor
//! repeated a notification or a delivery.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use entity::{delivery, notification};
use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder};
use serde_json::Value;

/// Notification ids the receiver got, with how many times.
pub type Received = Arc<Mutex<HashMap<i64, usize>>>;

pub async fn receiver() -> (u16, Received) {
    use poem::listener::{Acceptor, Listener};
    let got: Received = Default::default();
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    let seen = got.clone();
    let ep = poem::endpoint::make(move |mut req: poem::Request| {
        let seen = seen.clone();
        async move {
            let body: Value =
                serde_json::from_str(&req.take_body().into_string().await.unwrap_or_default())
                    .unwrap_or(Value::Null);
            if let Some(id) = body["id"].as_i64() {
                *seen.lock().unwrap().entry(id).or_default() += 1;
            }
            "ok"
        }
    });
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(ep));
    (port, got)
}

/// An alert: its host, metric and label.
type Alert = (Option<i64>, Option<String>, Option<String>);

/// Each alert's events follow the state machine: no firing while it fires, no resolution or
/// change of level while at rest. A notification written twice, or one lost, breaks that.
pub fn events_follow_the_machine(rows: &[notification::Model]) {
    use entity::types::Event::*;
    let mut firing: BTreeMap<Alert, bool> = BTreeMap::new();
    for n in rows {
        let key = (n.host_id, n.metric.clone(), n.label.clone());
        let was = firing.get(&key).copied().unwrap_or(false);
        let event = n.event.expect("an event");
        let ok = match event {
            Fired => !was,
            Escalated | DeEscalated | Reminder | Resolved => was,
        };
        assert!(
            ok,
            "notification {} ({event} {:?}) breaks the sequence",
            n.id, key
        );
        firing.insert(key, event != Resolved);
    }
}

/// Every notification (at least `min` of them) follows the state machine, has exactly one
/// delivery, and was received at least once. Returns the numbers of notifications and
/// deliveries, and how many were received more than once (at-least-once delivery: a send cut
/// off before its outcome was recorded is sent again).
pub async fn delivered_once_each(
    db: &DatabaseConnection,
    received: &Received,
    min: usize,
) -> (usize, usize, usize) {
    let notes = notification::Entity::find()
        .order_by_asc(notification::Column::Id)
        .all(db)
        .await
        .unwrap();
    let deliveries = delivery::Entity::find().all(db).await.unwrap();
    assert!(notes.len() >= min, "only {} notifications", notes.len());
    events_follow_the_machine(&notes);
    let mut per_note: HashMap<i64, usize> = HashMap::new();
    for d in &deliveries {
        *per_note.entry(d.notification_id).or_default() += 1;
    }
    assert!(
        notes.iter().all(|n| per_note.get(&n.id) == Some(&1)),
        "every notification has exactly one delivery to the channel"
    );
    let received = received.lock().unwrap().clone();
    let lost: Vec<i64> = notes
        .iter()
        .map(|n| n.id)
        .filter(|id| !received.contains_key(id))
        .collect();
    assert!(lost.is_empty(), "never received: {lost:?}");
    let twice = received.values().filter(|n| **n > 1).count();
    (notes.len(), deliveries.len(), twice)
}
