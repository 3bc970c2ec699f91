//! Every wire message decoder on arbitrary bytes: never panics.
#![no_main]
use kasane_protocol::Message as _;
use kasane_protocol::*;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = StartRequest::decode(data);
    let _ = StartResponse::decode(data);
    let _ = FinishRequest::decode(data);
    let _ = SealedBundle::decode(data);
    let _ = ChallengeBundle::decode(data);
    let _ = ResponseRequest::decode(data);
    let _ = ResponseAccept::decode(data);
    let _ = LoginFailure::decode(data);
    let _ = SealedMessage::decode(data);
    let _ = MessageAccepted::decode(data);
    let _ = MessageRefused::decode(data);
    let _ = Delivery::decode(data);
    let _ = Inbox::decode(data);
    let _ = InboxAck::decode(data);
});
