//! RFC 9807 Appendix C test vectors (OPAQUE-3DH, ristretto255-SHA512, identity KSF) run
//! through Kasane's own OPAQUE wrapper, `kasane_protocol::opaque`, with the suite
//! `SuiteWith<Identity>`: the same code as Kasane's `Suite` but for the key-stretching function.
//!
//! The vectors fix every random value. A replay RNG hands them to opaque-ke in the order it
//! draws them (opaque-ke 4.0.1):
//! - registration start: the blind, as a 64-byte wide scalar (`Scalar::random` reduces 64
//!   bytes mod ℓ, so `blind ‖ 0³²` gives exactly `blind`);
//! - registration finish: the envelope nonce;
//! - login start: the blind (wide, as above), the client key-share seed (opaque-ke derives the
//!   key pair from it with DeriveDiffieHellmanKeyPair, as the RFC does), the client nonce;
//! - login response: 64 bytes for the fake record's masking key (drawn whether or not a record
//!   exists, used only without one), the masking nonce, the server key-share seed, the server
//!   nonce;
//! - login finish and verify draw nothing.
//!
//! The values themselves are RFC 9807's (as published in the opaque-ke repository's copy of
//! Appendix C).
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure (clippy only exempts #[test] fns)"
)]

use std::collections::VecDeque;

use kasane_protocol::opaque::{self, Binding, ServerKeys};
use opaque_ke::ksf::Identity;
use rand_core::{CryptoRng, RngCore};

/// The context of every vector ("OPAQUE-POC").
const CONTEXT: &str = "4f50415155452d504f43";

/// Hands out fixed byte strings, one per draw; a draw of another length is a test failure.
struct ReplayRng(VecDeque<Vec<u8>>);

impl ReplayRng {
    fn new(draws: &[Vec<u8>]) -> Self {
        Self(draws.iter().cloned().collect())
    }

    fn assert_used_up(&self, step: &str) {
        assert!(self.0.is_empty(), "{step}: {} draws left", self.0.len());
    }
}

impl RngCore for ReplayRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let Some(next) = self.0.pop_front() else {
            panic!(
                "a draw of {} bytes past the vector's randomness",
                dest.len()
            );
        };
        assert_eq!(dest.len(), next.len(), "draw length");
        dest.copy_from_slice(&next);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for ReplayRng {}

fn h(hex: &str) -> Vec<u8> {
    hex::decode(hex).unwrap()
}

/// A 32-byte scalar as the 64 bytes `Scalar::random` reduces.
fn wide(hex: &str) -> Vec<u8> {
    [h(hex), vec![0; 32]].concat()
}

/// A real vector: registration and a login that succeeds.
struct Real {
    name: &'static str,
    client_identity: Option<&'static str>,
    server_identity: Option<&'static str>,
    oprf_seed: &'static str,
    credential_identifier: &'static str,
    password: &'static str,
    envelope_nonce: &'static str,
    masking_nonce: &'static str,
    server_private_key: &'static str,
    server_public_key: &'static str,
    server_nonce: &'static str,
    client_nonce: &'static str,
    client_keyshare_seed: &'static str,
    server_keyshare_seed: &'static str,
    blind_registration: &'static str,
    blind_login: &'static str,
    registration_request: &'static str,
    registration_response: &'static str,
    registration_upload: &'static str,
    ke1: &'static str,
    ke2: &'static str,
    ke3: &'static str,
    export_key: &'static str,
    session_key: &'static str,
}

/// A fake vector: the server's answer for a name it has no record of.
struct Fake {
    client_identity: &'static str,
    server_identity: &'static str,
    oprf_seed: &'static str,
    credential_identifier: &'static str,
    masking_nonce: &'static str,
    client_public_key: &'static str,
    server_private_key: &'static str,
    server_public_key: &'static str,
    server_nonce: &'static str,
    server_keyshare_seed: &'static str,
    masking_key: &'static str,
    ke1: &'static str,
    ke2: &'static str,
}

/// RFC 9807 C.1.1 Real Test Vector 1.
const REAL_1: Real = Real {
    name: "C.1.1 Real Test Vector 1",
    client_identity: None,
    server_identity: None,
    oprf_seed: concat!(
        "f433d0227b0b9dd54f7c4422b600e764e47fb503f1f9a0f0a47c6606b054a7fd",
        "c65347f1a08f277e22358bbabe26f823fca82c7848e9a75661f4ec5d5c1989ef",
    ),
    credential_identifier: "31323334",
    password: "436f7272656374486f72736542617474657279537461706c65",
    envelope_nonce: "ac13171b2f17bc2c74997f0fce1e1f35bec6b91fe2e12dbd323d23ba7a38dfec",
    masking_nonce: "38fe59af0df2c79f57b8780278f5ae47355fe1f817119041951c80f612fdfc6d",
    server_private_key: "47451a85372f8b3537e249d7b54188091fb18edde78094b43e2ba42b5eb89f0d",
    server_public_key: "b2fe7af9f48cc502d016729d2fe25cdd433f2c4bc904660b2a382c9b79df1a78",
    server_nonce: "71cd9960ecef2fe0d0f7494986fa3d8b2bb01963537e60efb13981e138e3d4a1",
    client_nonce: "da7e07376d6d6f034cfa9bb537d11b8c6b4238c334333d1f0aebb380cae6a6cc",
    client_keyshare_seed: "82850a697b42a505f5b68fcdafce8c31f0af2b581f063cf1091933541936304b",
    server_keyshare_seed: "05a4f54206eef1ba2f615bc0aa285cb22f26d1153b5b40a1e85ff80da12f982f",
    blind_registration: "76cfbfe758db884bebb33582331ba9f159720ca8784a2a070a265d9c2d6abe01",
    blind_login: "6ecc102d2e7a7cf49617aad7bbe188556792d4acd60a1a8a8d2b65d4b0790308",
    registration_request: "5059ff249eb1551b7ce4991f3336205bde44a105a032e747d21bf382e75f7a71",
    registration_response: concat!(
        "7408a268083e03abc7097fc05b587834539065e86fb0c7b6342fcf5e01e5b019",
        "b2fe7af9f48cc502d016729d2fe25cdd433f2c4bc904660b2a382c9b79df1a78",
    ),
    registration_upload: concat!(
        "76a845464c68a5d2f7e442436bb1424953b17d3e2e289ccbaccafb57ac5c3675",
        "1ac5844383c7708077dea41cbefe2fa15724f449e535dd7dd562e66f5ecfb958",
        "64eadddec9db5874959905117dad40a4524111849799281fefe3c51fa82785c5",
        "ac13171b2f17bc2c74997f0fce1e1f35bec6b91fe2e12dbd323d23ba7a38dfec",
        "634b0f5b96109c198a8027da51854c35bee90d1e1c781806d07d49b76de6a28b",
        "8d9e9b6c93b9f8b64d16dddd9c5bfb5fea48ee8fd2f75012a8b308605cdd8ba5",
    ),
    ke1: concat!(
        "c4dedb0ba6ed5d965d6f250fbe554cd45cba5dfcce3ce836e4aee778aa3cd44d",
        "da7e07376d6d6f034cfa9bb537d11b8c6b4238c334333d1f0aebb380cae6a6cc",
        "6e29bee50701498605b2c085d7b241ca15ba5c32027dd21ba420b94ce60da326",
    ),
    ke2: concat!(
        "7e308140890bcde30cbcea28b01ea1ecfbd077cff62c4def8efa075aabcbb471",
        "38fe59af0df2c79f57b8780278f5ae47355fe1f817119041951c80f612fdfc6d",
        "d6ec60bcdb26dc455ddf3e718f1020490c192d70dfc7e403981179d8073d1146",
        "a4f9aa1ced4e4cd984c657eb3b54ced3848326f70331953d91b02535af44d9fe",
        "dc80188ca46743c52786e0382f95ad85c08f6afcd1ccfbff95e2bdeb015b166c",
        "6b20b92f832cc6df01e0b86a7efd92c1c804ff865781fa93f2f20b446c8371b6",
        "71cd9960ecef2fe0d0f7494986fa3d8b2bb01963537e60efb13981e138e3d4a1",
        "c4f62198a9d6fa9170c42c3c71f1971b29eb1d5d0bd733e40816c91f7912cc4a",
        "660c48dae03e57aaa38f3d0cffcfc21852ebc8b405d15bd6744945ba1a93438a",
        "162b6111699d98a16bb55b7bdddfe0fc5608b23da246e7bd73b47369169c5c90",
    ),
    ke3: concat!(
        "4455df4f810ac31a6748835888564b536e6da5d9944dfea9e34defb9575fe5e2",
        "661ef61d2ae3929bcf57e53d464113d364365eb7d1a57b629707ca48da18e442",
    ),
    export_key: concat!(
        "1ef15b4fa99e8a852412450ab78713aad30d21fa6966c9b8c9fb3262a970dc62",
        "950d4dd4ed62598229b1b72794fc0335199d9f7fcc6eaedde92cc04870e63f16",
    ),
    session_key: concat!(
        "42afde6f5aca0cfa5c163763fbad55e73a41db6b41bc87b8e7b62214a8eedc67",
        "31fa3cb857d657ab9b3764b89a84e91ebcb4785166fbb02cedfcbdfda215b96f",
    ),
};

/// RFC 9807 C.1.2 Real Test Vector 2.
const REAL_2: Real = Real {
    name: "C.1.2 Real Test Vector 2",
    client_identity: Some("616c696365"),
    server_identity: Some("626f62"),
    oprf_seed: concat!(
        "f433d0227b0b9dd54f7c4422b600e764e47fb503f1f9a0f0a47c6606b054a7fd",
        "c65347f1a08f277e22358bbabe26f823fca82c7848e9a75661f4ec5d5c1989ef",
    ),
    credential_identifier: "31323334",
    password: "436f7272656374486f72736542617474657279537461706c65",
    envelope_nonce: "ac13171b2f17bc2c74997f0fce1e1f35bec6b91fe2e12dbd323d23ba7a38dfec",
    masking_nonce: "38fe59af0df2c79f57b8780278f5ae47355fe1f817119041951c80f612fdfc6d",
    server_private_key: "47451a85372f8b3537e249d7b54188091fb18edde78094b43e2ba42b5eb89f0d",
    server_public_key: "b2fe7af9f48cc502d016729d2fe25cdd433f2c4bc904660b2a382c9b79df1a78",
    server_nonce: "71cd9960ecef2fe0d0f7494986fa3d8b2bb01963537e60efb13981e138e3d4a1",
    client_nonce: "da7e07376d6d6f034cfa9bb537d11b8c6b4238c334333d1f0aebb380cae6a6cc",
    client_keyshare_seed: "82850a697b42a505f5b68fcdafce8c31f0af2b581f063cf1091933541936304b",
    server_keyshare_seed: "05a4f54206eef1ba2f615bc0aa285cb22f26d1153b5b40a1e85ff80da12f982f",
    blind_registration: "76cfbfe758db884bebb33582331ba9f159720ca8784a2a070a265d9c2d6abe01",
    blind_login: "6ecc102d2e7a7cf49617aad7bbe188556792d4acd60a1a8a8d2b65d4b0790308",
    registration_request: "5059ff249eb1551b7ce4991f3336205bde44a105a032e747d21bf382e75f7a71",
    registration_response: concat!(
        "7408a268083e03abc7097fc05b587834539065e86fb0c7b6342fcf5e01e5b019",
        "b2fe7af9f48cc502d016729d2fe25cdd433f2c4bc904660b2a382c9b79df1a78",
    ),
    registration_upload: concat!(
        "76a845464c68a5d2f7e442436bb1424953b17d3e2e289ccbaccafb57ac5c3675",
        "1ac5844383c7708077dea41cbefe2fa15724f449e535dd7dd562e66f5ecfb958",
        "64eadddec9db5874959905117dad40a4524111849799281fefe3c51fa82785c5",
        "ac13171b2f17bc2c74997f0fce1e1f35bec6b91fe2e12dbd323d23ba7a38dfec",
        "1ac902dc5589e9a5f0de56ad685ea8486210ef41449cd4d8712828913c5d2b68",
        "0b2b3af4a26c765cff329bfb66d38ecf1d6cfa9e7a73c222c6efe0d9520f7d7c",
    ),
    ke1: concat!(
        "c4dedb0ba6ed5d965d6f250fbe554cd45cba5dfcce3ce836e4aee778aa3cd44d",
        "da7e07376d6d6f034cfa9bb537d11b8c6b4238c334333d1f0aebb380cae6a6cc",
        "6e29bee50701498605b2c085d7b241ca15ba5c32027dd21ba420b94ce60da326",
    ),
    ke2: concat!(
        "7e308140890bcde30cbcea28b01ea1ecfbd077cff62c4def8efa075aabcbb471",
        "38fe59af0df2c79f57b8780278f5ae47355fe1f817119041951c80f612fdfc6d",
        "d6ec60bcdb26dc455ddf3e718f1020490c192d70dfc7e403981179d8073d1146",
        "a4f9aa1ced4e4cd984c657eb3b54ced3848326f70331953d91b02535af44d9fe",
        "a502150b67fe36795dd8914f164e49f81c7688a38928372134b7dccd50e09f8f",
        "ed9518b7b2f94835b3c4fe4c8475e7513f20eb97ff0568a39caee3fd6251876f",
        "71cd9960ecef2fe0d0f7494986fa3d8b2bb01963537e60efb13981e138e3d4a1",
        "c4f62198a9d6fa9170c42c3c71f1971b29eb1d5d0bd733e40816c91f7912cc4a",
        "292371e7809a9031743e943fb3b56f51de903552fc91fba4e7419029951c3970",
        "b2e2f0a9dea218d22e9e4e0000855bb6421aa3610d6fc0f4033a6517030d4341",
    ),
    ke3: concat!(
        "7a026de1d6126905736c3f6d92463a08d209833eb793e46d0f7f15b3e0f62c76",
        "43763c02bbc6b8d3d15b63250cae98171e9260f1ffa789750f534ac11a0176d5",
    ),
    export_key: concat!(
        "1ef15b4fa99e8a852412450ab78713aad30d21fa6966c9b8c9fb3262a970dc62",
        "950d4dd4ed62598229b1b72794fc0335199d9f7fcc6eaedde92cc04870e63f16",
    ),
    session_key: concat!(
        "ae7951123ab5befc27e62e63f52cf472d6236cb386c968cc47b7e34f866aa4bc",
        "7638356a73cfce92becf39d6a7d32a1861f12130e824241fe6cab34fbd471a57",
    ),
};

/// RFC 9807 C.2.1 Fake Test Vector 1 (the server has no record for the name).
const FAKE_1: Fake = Fake {
    client_identity: "616c696365",
    server_identity: "626f62",
    oprf_seed: concat!(
        "743fc168d1f826ad43738933e5adb23da6fb95f95a1b069f0daa0522d0a78b61",
        "7f701fc6aa46d3e7981e70de7765dfcd6b1e13e3369a582eb8dc456b10aa53b0",
    ),
    credential_identifier: "31323334",
    masking_nonce: "9c035896a043e70f897d87180c543e7a063b83c1bb728fbd189c619e27b6e5a6",
    client_public_key: "84f43f9492e19c22d8bdaa4447cc3d4db1cdb5427a9f852c4707921212c36251",
    server_private_key: "c788585ae8b5ba2942b693b849be0c0426384e41977c18d2e81fbe30fd7c9f06",
    server_public_key: "825f832667480f08b0c9069da5083ac4d0e9ee31b49c4e0310031fea04d52966",
    server_nonce: "1e10f6eeab2a7a420bf09da9b27a4639645622c46358de9cf7ae813055ae2d12",
    server_keyshare_seed: "360b0937f47d45f6123a4d8f0d0c0814b6120d840ebb8bc5b4f6b62df07f78c2",
    masking_key: concat!(
        "39ebd51f0e39a07a1c2d2431995b0399bca9996c5d10014d6ebab4453dc10ce5",
        "cef38ed3df6e56bfff40c2d8dd4671c2b4cf63c3d54860f31fe40220d690bb71",
    ),
    ke1: concat!(
        "b0a26dcaca2230b8f5e4b1bcab9c84b586140221bb8b2848486874b0be448905",
        "42d4e61ed3f8d64cdd3b9d153343eca15b9b0d5e388232793c6376bd2d9cfd0a",
        "b641d7f20a245a09f1d4dbb6e301661af7f352beb0791d055e48d3645232f77f",
    ),
    ke2: concat!(
        "928f79ad8df21963e91411b9f55165ba833dea918f441db967cdc09521d22925",
        "9c035896a043e70f897d87180c543e7a063b83c1bb728fbd189c619e27b6e5a6",
        "32b5ab1bff96636144faa4f9f9afaac75dd88ea99cf5175902ae3f3b2195693f",
        "165f11929ba510a5978e64dcdabecbd7ee1e4380ce270e58fea58e6462d92964",
        "a1aaef72698bca1c673baeb04cc2bf7de5f3c2f5553464552d3a0f7698a9ca7f",
        "9c5e70c6cb1f706b2f175ab9d04bbd13926e816b6811a50b4aafa9799d5ed797",
        "1e10f6eeab2a7a420bf09da9b27a4639645622c46358de9cf7ae813055ae2d12",
        "98251c5ba55f6b0b2d58d9ff0c88fe4176484be62a96db6e2a8c4d431bd1bf27",
        "fe6c1d0537603835217d42ebf7b2581982732e74892fd28211b31ed33863f0be",
        "af75ba6f59474c0aaf9d78a60a9b2f4cd24d7ab54131b3c8efa192df6b72db4c",
    ),
};

/// Registration through the wrapper: request, response, upload; returns the record and the
/// registration's export key.
fn register(v: &Real, keys: &ServerKeys<Identity>, binding: &Binding<'_>) -> (Vec<u8>, Vec<u8>) {
    let password = h(v.password);
    let mut rng = ReplayRng::new(&[wide(v.blind_registration)]);
    let (state, request) = opaque::registration_start::<Identity, _>(&mut rng, &password).unwrap();
    rng.assert_used_up("registration start");
    assert_eq!(hex::encode(&request), v.registration_request, "{}", v.name);
    let response = opaque::registration_response(keys, &request, binding.credential_id).unwrap();
    assert_eq!(
        hex::encode(&response),
        v.registration_response,
        "{}",
        v.name
    );
    let mut rng = ReplayRng::new(&[h(v.envelope_nonce)]);
    let (upload, export_key) =
        opaque::registration_finish(state, &mut rng, &password, &response, binding).unwrap();
    rng.assert_used_up("registration finish");
    assert_eq!(hex::encode(&upload), v.registration_upload, "{}", v.name);
    let record = opaque::registration_record::<Identity>(&upload).unwrap();
    assert_eq!(record, upload, "the record is the upload");
    (record, export_key.expose_secret().to_vec())
}

/// The login through the wrapper: KE1, KE2, KE3, and both sides' keys.
fn login(v: &Real, keys: &ServerKeys<Identity>, record: &[u8], binding: &Binding<'_>) {
    let password = h(v.password);
    let draws = [
        wide(v.blind_login),
        h(v.client_keyshare_seed),
        h(v.client_nonce),
    ];
    let mut rng = ReplayRng::new(&draws);
    let (state, ke1) = opaque::login_start::<Identity, _>(&mut rng, &password).unwrap();
    rng.assert_used_up("login start");
    assert_eq!(hex::encode(&ke1), v.ke1, "{} KE1", v.name);
    let draws = [
        vec![0xEE; 64], // the fake record's masking key, unused with a record
        h(v.masking_nonce),
        h(v.server_keyshare_seed),
        h(v.server_nonce),
    ];
    let mut rng = ReplayRng::new(&draws);
    let (server, ke2) = opaque::login_respond(&mut rng, keys, Some(record), &ke1, binding).unwrap();
    rng.assert_used_up("login response");
    assert_eq!(hex::encode(&ke2), v.ke2, "{} KE2", v.name);
    let mut rng = ReplayRng::new(&[]);
    let fin = opaque::login_finish(state, &mut rng, &password, &ke2, binding).unwrap();
    assert_eq!(hex::encode(&fin.ke3), v.ke3, "{} KE3", v.name);
    assert_eq!(hex::encode(fin.session_key.expose_secret()), v.session_key);
    assert_eq!(hex::encode(fin.export_key.expose_secret()), v.export_key);
    // The server's state survives storage, then checks KE3 and holds the same session key.
    let server = opaque::ServerLoginState::<Identity>::from_bytes(&server.to_bytes()).unwrap();
    let session_key = opaque::login_verify(server, &fin.ke3, binding).unwrap();
    assert_eq!(hex::encode(session_key.expose_secret()), v.session_key);
}

fn run_real(v: &Real) {
    let (seed, sk, pk) = (
        h(v.oprf_seed),
        h(v.server_private_key),
        h(v.server_public_key),
    );
    // The fake client key (used only for unknown names) is not part of a real vector.
    let keys = ServerKeys::<Identity>::from_parts(&seed, &sk, &pk).unwrap();
    assert_eq!(
        keys.public_key(),
        pk,
        "the public key follows from the private one"
    );
    let (credential_id, context) = (h(v.credential_identifier), h(CONTEXT));
    let (client_id, server_id) = (v.client_identity.map(h), v.server_identity.map(h));
    let binding = Binding {
        credential_id: &credential_id,
        client_id: client_id.as_deref(),
        server_id: server_id.as_deref(),
        context: &context,
    };
    let (record, export_key) = register(v, &keys, &binding);
    assert_eq!(hex::encode(export_key), v.export_key, "{}", v.name);
    login(v, &keys, &record, &binding);
}

#[test]
fn rfc9807_real_vector_1_without_identities() {
    run_real(&REAL_1);
}

#[test]
fn rfc9807_real_vector_2_with_client_and_server_identities() {
    run_real(&REAL_2);
}

#[test]
fn rfc9807_fake_vector_1_an_unknown_name() {
    let v = &FAKE_1;
    let keys = ServerKeys::<Identity>::from_parts(
        &h(v.oprf_seed),
        &h(v.server_private_key),
        &h(v.client_public_key),
    )
    .unwrap();
    assert_eq!(hex::encode(keys.public_key()), v.server_public_key);
    let (credential_id, context) = (h(v.credential_identifier), h(CONTEXT));
    let (client_id, server_id) = (h(v.client_identity), h(v.server_identity));
    let binding = Binding {
        credential_id: &credential_id,
        client_id: Some(&client_id),
        server_id: Some(&server_id),
        context: &context,
    };
    let draws = [
        h(v.masking_key),
        h(v.masking_nonce),
        h(v.server_keyshare_seed),
        h(v.server_nonce),
    ];
    let mut rng = ReplayRng::new(&draws);
    let (_, ke2) = opaque::login_respond(&mut rng, &keys, None, &h(v.ke1), &binding).unwrap();
    rng.assert_used_up("login response");
    assert_eq!(hex::encode(ke2), v.ke2);
}

#[test]
fn a_changed_vector_input_changes_the_outputs() {
    // The checks above are not vacuous: another context gives another KE2 MAC.
    let v = &REAL_1;
    let keys = ServerKeys::<Identity>::from_parts(
        &h(v.oprf_seed),
        &h(v.server_private_key),
        &h(v.server_public_key),
    )
    .unwrap();
    let credential_id = h(v.credential_identifier);
    let binding = Binding {
        credential_id: &credential_id,
        client_id: None,
        server_id: None,
        context: b"OPAQUE-POD",
    };
    let draws = [
        vec![0; 64],
        h(v.masking_nonce),
        h(v.server_keyshare_seed),
        h(v.server_nonce),
    ];
    let record = h(v.registration_upload);
    let mut rng = ReplayRng::new(&draws);
    let (_, ke2) =
        opaque::login_respond(&mut rng, &keys, Some(&record), &h(v.ke1), &binding).unwrap();
    assert_eq!(hex::encode(&ke2[..256]), v.ke2[..512], "all but the MAC");
    assert_ne!(hex::encode(&ke2[256..]), v.ke2[512..]);
}
