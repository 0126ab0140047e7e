//! Control entries: state every node must change at the same point of the log.
//!
//! Shared subscriptions are the case: each message matching `$share/{group}/{filter}`
//! goes to one member, chosen by every node the same way from the same membership, so
//! membership changes are entries in the log like the messages they affect.

use bytes::Bytes;

use super::SessionKey;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    /// `member` subscribed to the shared subscription `share` (`$share/{group}/{filter}`).
    ShareJoin { share: String, member: SessionKey },
    /// `member` left it (unsubscribed, or its session ended).
    ShareLeave { share: String, member: SessionKey },
}

impl Control {
    pub(crate) fn encode(&self) -> Bytes {
        let (op, share, member) = match self {
            Control::ShareJoin { share, member } => ('J', share, member),
            Control::ShareLeave { share, member } => ('L', share, member),
        };
        Bytes::from(format!("{op}\n{}\n{share}", member.encode()))
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Control> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, '\n');
        let (op, member, share) = (parts.next()?, parts.next()?, parts.next()?);
        let member = SessionKey::decode(member)?;
        let share = share.to_string();
        match op {
            "J" => Some(Control::ShareJoin { share, member }),
            "L" => Some(Control::ShareLeave { share, member }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let member = SessionKey { node: 1, slot: 2, generation: 3 };
        for control in [
            Control::ShareJoin { share: "$share/g/a/\n/#".into(), member },
            Control::ShareLeave { share: "$share/g/温度".into(), member },
        ] {
            assert_eq!(Control::decode(&control.encode()), Some(control));
        }
        assert_eq!(Control::decode(b"X\n1.2.3\n$share/g/a"), None);
        assert_eq!(Control::decode(&[0xff]), None);
    }
}
