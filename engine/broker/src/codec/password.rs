//! The CONNECT's password is Binary Data (MQTT 3.1.1 §3.1.3.5, MQTT 5 §3.1.3.6), but
//! rumqttd reads it as a UTF-8 string and refuses the whole CONNECT otherwise. A
//! password that is not UTF-8 is taken out of the packet and replaced by ASCII of the
//! same length before rumqttd parses it; the real bytes are what `[security]` checks.

use super::wire::read_varint;

/// Takes a non-UTF-8 password out of a whole CONNECT packet (`header_len` is its fixed
/// header's length), leaving `x`s in its place; `None` when there is no password, it
/// is UTF-8 already, or the packet is too broken to find it (rumqttd then says why).
pub(crate) fn take_binary_password(packet: &mut [u8], header_len: usize, v5: bool) -> Option<Vec<u8>> {
    let mut at = header_len;
    let name_len = u16_at(packet, at)?;
    at += 2 + name_len + 1; // protocol name, level
    let flags = *packet.get(at)?;
    at += 1 + 2; // flags, keep alive
    if v5 {
        at = skip_properties(packet, at)?;
    }
    at += 2 + u16_at(packet, at)?; // client id
    if flags & 0x04 != 0 {
        if v5 {
            at = skip_properties(packet, at)?;
        }
        at += 2 + u16_at(packet, at)?; // will topic
        at += 2 + u16_at(packet, at)?; // will payload
    }
    if flags & 0x80 != 0 {
        at += 2 + u16_at(packet, at)?; // username
    }
    if flags & 0x40 == 0 {
        return None;
    }
    let len = u16_at(packet, at)?;
    let password = packet.get_mut(at + 2..at + 2 + len)?;
    if std::str::from_utf8(password).is_ok() {
        return None;
    }
    let taken = password.to_vec();
    password.fill(b'x');
    Some(taken)
}

fn u16_at(packet: &[u8], at: usize) -> Option<usize> {
    let bytes = packet.get(at..at + 2)?;
    Some(usize::from(u16::from_be_bytes([bytes[0], bytes[1]])))
}

fn skip_properties(packet: &[u8], at: usize) -> Option<usize> {
    let (len, len_len) = read_varint(packet.get(at..)?).ok()??;
    Some(at + len_len + len as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CONNECT with a will, a username and `password`, for 3.1.1 or 5.
    fn connect(v5: bool, password: &[u8]) -> Vec<u8> {
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', if v5 { 5 } else { 4 }, 0xC4 | 0x02, 0, 60];
        if v5 {
            body.extend([3, 0x21, 0, 10]); // properties: receive maximum 10
        }
        body.extend([0, 2, b'i', b'd']);
        if v5 {
            body.push(0); // no will properties
        }
        body.extend([0, 1, b't', 0, 1, b'w', 0, 4, b'u', b's', b'e', b'r']);
        body.extend((password.len() as u16).to_be_bytes());
        body.extend(password);
        let mut packet = vec![0x10, body.len() as u8];
        packet.extend(body);
        packet
    }

    #[test]
    fn a_binary_password_is_taken_out_and_replaced_by_ascii() {
        for v5 in [false, true] {
            let secret = [0xff, 0x00, 0xfe, 0x80];
            let mut packet = connect(v5, &secret);
            assert_eq!(take_binary_password(&mut packet, 2, v5).as_deref(), Some(&secret[..]), "v5: {v5}");
            assert!(packet.ends_with(b"xxxx"), "v5: {v5}");
        }
    }

    #[test]
    fn utf8_passwords_and_broken_packets_are_left_alone() {
        let mut packet = connect(false, "pässword".as_bytes());
        let before = packet.clone();
        assert_eq!(take_binary_password(&mut packet, 2, false), None);
        assert_eq!(packet, before);
        let mut cut = connect(true, &[0xff; 8]);
        cut.truncate(cut.len() - 3);
        assert_eq!(take_binary_password(&mut cut, 2, true), None);
        assert_eq!(take_binary_password(&mut [0x10, 0], 2, false), None);
    }
}
