//! The same ACL file, decided by the real mosquitto 2 and by us, must agree.
//!
//! Publish cases: the writer publishes and `spy` (who may read everything without a
//! `$`) listens; read cases: `spy` publishes and the reader listens. Negative cases wait
//! out mosquitto_sub's 2 s timeout, so the cases run in parallel.

mod support;

use alicia_auth::{Acl, Identity, PasswordFile};
use support::Mosquitto;

const ACL: &str = "\
topic read public/#

user alice
topic readwrite a/b/#
topic read r/+/x
topic deny a/b/secret
topic write w/#

user spy
topic readwrite #
topic readwrite $app/#

user dollar
topic readwrite +/#
topic read $app/#

user e+v
topic readwrite ev/#

pattern readwrite dev/%u/#
pattern read cid/%c
pattern deny dev/%u/locked
";

const USERS: &[&str] = &["alice", "spy", "dollar", "e+v", "bo/b", "dave"];

enum Case {
    /// (writer, client id, topic): does `spy` see it?
    Publish(&'static str, &'static str, &'static str),
    /// (reader, client id, filter, topic): does the reader see `spy`'s message?
    Read(&'static str, &'static str, &'static str, &'static str),
}

#[test]
fn mosquitto_and_we_decide_alike() {
    let dir = tempfile::tempdir().unwrap();
    let acl_path = dir.path().join("acl");
    let pw_path = dir.path().join("passwords");
    std::fs::write(&acl_path, ACL).unwrap();
    let mut passwords = PasswordFile::new();
    for user in USERS {
        passwords.set(user, b"pw").unwrap();
    }
    passwords.save(&pw_path).unwrap();
    let acl = Acl::load(&acl_path).unwrap();
    let broker = Mosquitto::start(&format!(
        "allow_anonymous false\npassword_file {}\nacl_file {}\n",
        pw_path.display(),
        acl_path.display()
    ));

    use Case::*;
    let cases = [
        Publish("alice", "p1", "a/b/c"),
        Publish("alice", "p2", "a/b/secret"),
        Publish("alice", "p3", "r/q/x"),
        Publish("alice", "p4", "w/1"),
        Publish("alice", "p5", "zz"),
        Publish("alice", "p6", "dev/alice/1"),
        Publish("alice", "p7", "dev/alice/locked"),
        Publish("alice", "p8", "dev/dave/1"),
        Publish("bo/b", "p9", "dev/bo/b/1"),
        Publish("dave", "p10", "public/1"),
        Read("alice", "r1", "a/#", "a/b/c"),
        Read("alice", "r2", "a/b/secret", "a/b/secret"),
        Read("alice", "r3", "r/+/x", "r/q/x"),
        Read("alice", "r4", "w/#", "w/1"),
        Read("alice", "r5", "#", "public/1"),
        Read("alice", "cid", "cid/+", "cid/cid"),
        Read("alice", "r6", "cid/+", "cid/other"),
        Read("alice", "a+b", "#", "dev/alice/1"),
        Read("alice", "r7", "#", "dev/alice/1"),
        Read("e+v", "r8", "ev/#", "ev/1"),
        Read("dave", "r9", "public/#", "public/1"),
        Read("dollar", "r10", "$app/#", "$app/x"),
        Read("alice", "r11", "$app/#", "$app/x"),
        Read("spy", "r12", "dev/+/locked", "dev/spy/locked"),
    ];

    let outcomes: Vec<(String, bool, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .iter()
            .map(|case| {
                let (broker, acl) = (&broker, &acl);
                scope.spawn(move || match *case {
                    Publish(writer, id, topic) => {
                        let seen = broker.receives(("spy", "pw"), &format!("spy-{id}"), topic, id, || {
                            broker.publish_message(Some((writer, "pw")), Some(id), topic, id);
                        });
                        let ours = acl.can_publish(&Identity::user(writer, id), topic);
                        (format!("{writer} ({id}) publishes {topic}"), seen, ours)
                    }
                    Read(reader, id, filter, topic) => {
                        let seen = broker.receives((reader, "pw"), id, filter, id, || {
                            broker.publish_message(Some(("spy", "pw")), Some(&format!("w-{id}")), topic, id);
                        });
                        let rules = acl.rules_for(&Identity::user(reader, id));
                        let ours = rules.can_subscribe(filter) && rules.can_read(topic);
                        (format!("{reader} ({id}) reads {topic} through {filter}"), seen, ours)
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let disagreements: Vec<String> = outcomes
        .iter()
        .filter(|(_, mosquitto, ours)| mosquitto != ours)
        .map(|(case, mosquitto, ours)| format!("{case}: mosquitto {mosquitto}, ours {ours}"))
        .collect();
    assert!(disagreements.is_empty(), "{disagreements:#?}\n{}", broker.log());
    // The cases must exercise both answers, or agreement proves nothing.
    assert!(outcomes.iter().any(|o| o.1) && outcomes.iter().any(|o| !o.1));
}
