//! PKCS#11 signer (in progress).
