//! Bytes from a QUIC peer into fjell-quic's frame decoder, as a stream fed in arbitrary
//! chunks or as a datagram: never a panic; the decoder never holds more than one maximum
//! frame beyond the bytes just fed; every frame it returns survives a re-encode/decode round
//! trip unchanged.
//!
//! Input layout (so seeds are plain bytes): `mode:u8 max:u16-le chunk:u8 data...`. Mode bit 0
//! picks stream or datagram; `max` is the maximum frame (at least 1); `chunk` the feed size
//! (0 = everything at once).
#![no_main]

use bytes::Bytes;
use fjell_quic::frame::{Frame, FrameDecoder, LEN_PREFIX, STREAM_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fn round_trip(f: &Frame) {
    let mut framed = Vec::new();
    f.encode_framed(&mut framed);
    let len = u32::from_le_bytes(framed[..LEN_PREFIX].try_into().unwrap()) as usize;
    assert_eq!(len, framed.len() - LEN_PREFIX);
    assert!(len <= f.body_len(), "body_len is an upper bound");
    let again = Frame::decode_body(Bytes::from(framed).slice(LEN_PREFIX..)).expect("re-decode");
    assert_eq!(&again, f);
    let dg = f.encode_datagram();
    assert_eq!(&Frame::decode_datagram(Bytes::from(dg)).expect("datagram re-decode"), f);
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 4 {
        return;
    }
    let (mode, max, chunk) = (
        input[0],
        usize::from(u16::from_le_bytes([input[1], input[2]]).max(1)),
        usize::from(input[3]),
    );
    let data = &input[4..];
    if mode & 1 == 1 {
        if let Ok(f) = Frame::decode_datagram(Bytes::copy_from_slice(data)) {
            round_trip(&f);
        }
        return;
    }
    let mut dec = FrameDecoder::new(max);
    let chunk = if chunk == 0 { data.len().max(1) } else { chunk };
    'stream: for part in data.chunks(chunk) {
        let held = dec.buffered();
        assert!(held <= (LEN_PREFIX + max).max(STREAM_HEADER_LEN), "held {held} > one frame");
        dec.feed(part);
        assert_eq!(dec.buffered(), held + part.len());
        loop {
            match dec.next_frame() {
                Ok(Some(f)) => {
                    assert!(f.body_len() + LEN_PREFIX >= 1);
                    round_trip(&f);
                }
                Ok(None) => break,
                // The transport closes the stream here.
                Err(_) => break 'stream,
            }
        }
        assert!(dec.buffered() <= (LEN_PREFIX + max).max(STREAM_HEADER_LEN) + part.len());
    }
});
