//! Whisper's text tokens, from CTranslate2's `vocabulary.txt` to the raw bytes ggml
//! stores.
//!
//! `vocabulary.txt` holds one token per line in GPT-2's byte-level alphabet: every
//! byte is shown as a printable character (a space is `Ġ`, a newline `Ċ`). ggml wants
//! the bytes themselves. whisper.cpp names the special tokens (`<|startoftranscript|>`
//! and after) itself, so only the text tokens up to and including `<|endoftext|>` go
//! into the file.

use crate::error::ConvertError;

/// The first special token after the text tokens.
const FIRST_SPECIAL: &str = "<|startoftranscript|>";

/// Bytes that GPT-2 shows as themselves: printable Latin-1 except the soft hyphen.
fn shown_as_itself(byte: u8) -> bool {
    matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// Maps each character of GPT-2's byte alphabet back to its byte. The other bytes
/// (controls, space, DEL, ...) are shown as U+0100 onwards, in byte order.
struct ByteAlphabet {
    // Indexed by code point; every alphabet character is below U+0144.
    to_byte: [Option<u8>; 0x144],
}

impl ByteAlphabet {
    fn new() -> Self {
        let mut to_byte = [None; 0x144];
        let mut next_stand_in = 0x100;
        for byte in 0..=255u8 {
            if shown_as_itself(byte) {
                to_byte[usize::from(byte)] = Some(byte);
            } else {
                to_byte[next_stand_in] = Some(byte);
                next_stand_in += 1;
            }
        }
        Self { to_byte }
    }

    fn decode(&self, token: &str) -> Option<Vec<u8>> {
        token.chars().map(|c| self.to_byte.get(c as usize).copied().flatten()).collect()
    }
}

/// The text tokens of `vocabulary`, as bytes, in id order.
pub(crate) fn text_tokens(vocabulary: &str) -> Result<Vec<Vec<u8>>, ConvertError> {
    let lines: Vec<&str> = vocabulary.lines().collect();
    let specials = lines.iter().position(|&line| line == FIRST_SPECIAL).ok_or(ConvertError::NoSpecialTokens)?;
    let alphabet = ByteAlphabet::new();
    lines[..specials]
        .iter()
        .enumerate()
        .map(|(index, token)| {
            alphabet.decode(token).ok_or_else(|| ConvertError::BadToken { index, token: (*token).to_owned() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_characters_decode_to_raw_bytes() {
        let vocabulary = "!\nĠthe\nĊ\nÃ©\nĀ\n<|endoftext|>\n<|startoftranscript|>\n<|en|>\n";
        let tokens = text_tokens(vocabulary).unwrap();
        let expected: [&[u8]; 6] = [b"!", b" the", b"\n", "é".as_bytes(), &[0], b"<|endoftext|>"];
        assert_eq!(tokens, expected);
    }

    #[test]
    fn the_alphabet_covers_every_byte_once() {
        let alphabet = ByteAlphabet::new();
        let mut bytes: Vec<u8> = alphabet.to_byte.iter().flatten().copied().collect();
        bytes.sort_unstable();
        assert_eq!(bytes, (0..=255).collect::<Vec<u8>>());
        assert_eq!(alphabet.decode("Ġ"), Some(vec![b' ']));
        assert_eq!(alphabet.decode("ł"), Some(vec![0xA0]));
        assert_eq!(alphabet.decode("Ń"), Some(vec![0xAD]));
    }

    #[test]
    fn unknown_characters_and_missing_specials_are_errors() {
        assert!(matches!(text_tokens("a\nb\n"), Err(ConvertError::NoSpecialTokens)));
        let err = text_tokens("a\n€\n<|startoftranscript|>\n").unwrap_err();
        assert!(matches!(err, ConvertError::BadToken { index: 1, .. }), "{err}");
    }
}
