//! KMS encryption of the data channel (protocol reference 4.8, HS-006), with a fake KMS.
//!
//! The real client calls KMS `GenerateDataKey` and the real agent calls `Decrypt`; both are
//! network calls the sans-IO machine cannot make. Here KMS is a pure value, [`Kms`]: a key id and
//! a master key the harness holds. `GenerateDataKey` draws the 64-byte data key from the calling
//! machine's seeded generator and returns it with a ciphertext blob (the data key sealed with
//! AES-256-GCM under the master key, the key id and the encryption context `aws:ssm:SessionId` /
//! `aws:ssm:TargetId` bound as associated data); `Decrypt` opens the blob under the same context.
//! Whoever holds the same [`Kms`] (both machines of a pair, and the checks judging a trace) can
//! recover the data key.
//!
//! The data channel itself: bytes 0..31 of the data key encrypt agent-to-client traffic
//! ([`DataKey::agent_key`]), bytes 32..63 client-to-agent ([`DataKey::client_key`]). A sealed
//! payload is `nonce (12) || ciphertext || tag (16)` ([`seal`], [`open`]); the nonce comes from
//! the sender's seeded generator, never from the operating system.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};

use crate::rng::Rng;
use crate::{PayloadType, Role};

/// Length of a KMS data key for the data channel.
pub const DATA_KEY_LEN: usize = 64;
/// AES-256-GCM nonce length, the prefix of every sealed payload.
pub const NONCE_LEN: usize = 12;
/// AES-256-GCM tag length, the suffix of every sealed payload.
pub const TAG_LEN: usize = 16;
/// Length of the agent's encryption challenge (before encryption).
pub const CHALLENGE_LEN: usize = 64;
/// Encryption context keys of the data key (4.8).
pub const CONTEXT_SESSION_ID: &str = "aws:ssm:SessionId";
pub const CONTEXT_TARGET_ID: &str = "aws:ssm:TargetId";

/// A 256-bit AES key.
pub type AesKey = [u8; 32];

/// The encryption context a data key is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptionContext<'a> {
    pub session_id: &'a str,
    pub target_id: &'a str,
}

impl EncryptionContext<'_> {
    /// The associated data of a blob: key id and context pairs, length-prefixed, keys in order.
    fn aad(&self, key_id: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for part in [key_id, CONTEXT_SESSION_ID, self.session_id, CONTEXT_TARGET_ID, self.target_id] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// Why the fake KMS refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsError {
    /// GenerateDataKey named a key this KMS does not hold (KMS `NotFoundException`).
    #[error("KMS key {0:?} does not exist")]
    NotFound(String),
    /// Decrypt: the blob was not issued by this KMS for this context, or was altered
    /// (KMS `InvalidCiphertextException`).
    #[error("the ciphertext blob does not decrypt under this key and encryption context")]
    InvalidCiphertext,
}

/// A sealed payload did not open (wrong key, altered bytes, or too short).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("AES-256-GCM authentication failed ({len} bytes)")]
pub struct OpenError {
    pub len: usize,
}

/// A 64-byte data key.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; DATA_KEY_LEN]);

impl DataKey {
    pub fn from_bytes(b: [u8; DATA_KEY_LEN]) -> Self {
        DataKey(b)
    }

    pub fn as_bytes(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }

    /// Bytes 0..31: encrypt agent-to-client traffic.
    pub fn agent_key(&self) -> AesKey {
        let mut k = [0u8; 32];
        k.copy_from_slice(&self.0[..32]);
        k
    }

    /// Bytes 32..63: encrypt client-to-agent traffic.
    pub fn client_key(&self) -> AesKey {
        let mut k = [0u8; 32];
        k.copy_from_slice(&self.0[32..]);
        k
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// A fake KMS: one symmetric key, held by the harness.
#[derive(Clone, PartialEq, Eq)]
pub struct Kms {
    key_id: String,
    master_key: AesKey,
}

impl fmt::Debug for Kms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kms").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl Kms {
    /// The key id of [`Kms::harness`].
    pub const HARNESS_KEY_ID: &'static str =
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    pub fn new(key_id: impl Into<String>, master_key: AesKey) -> Self {
        Kms { key_id: key_id.into(), master_key }
    }

    /// The KMS the simulator gives both machines of an encrypted session, and the one the
    /// checks use to read a trace: a fixed key id and a fixed master key.
    pub fn harness() -> Self {
        let mut master_key = [0u8; 32];
        Rng::new(0x4b4d_535f_6861_726e).fill(&mut master_key);
        Kms::new(Self::HARNESS_KEY_ID, master_key)
    }

    /// The key the agent names in its HandshakeRequest (`KMSKeyId`).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `GenerateDataKey` for `key_id` with 64 bytes: the data key, drawn from `rng`, and its
    /// ciphertext blob (`nonce || AES-256-GCM(master key, data key) || tag`, also from `rng`).
    pub fn generate_data_key(
        &self,
        rng: &mut Rng,
        key_id: &str,
        ctx: &EncryptionContext<'_>,
    ) -> Result<(DataKey, Vec<u8>), KmsError> {
        if key_id != self.key_id {
            return Err(KmsError::NotFound(key_id.to_owned()));
        }
        let mut key = [0u8; DATA_KEY_LEN];
        rng.fill(&mut key);
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce);
        let blob = seal_with_aad(&self.master_key, nonce, &key, &ctx.aad(&self.key_id));
        Ok((DataKey(key), blob))
    }

    /// `Decrypt`: the data key inside `blob`, if this KMS issued it for `ctx`.
    pub fn decrypt(&self, blob: &[u8], ctx: &EncryptionContext<'_>) -> Result<DataKey, KmsError> {
        let plain = open_with_aad(&self.master_key, blob, &ctx.aad(&self.key_id))
            .map_err(|_| KmsError::InvalidCiphertext)?;
        let key: [u8; DATA_KEY_LEN] = plain.try_into().map_err(|_| KmsError::InvalidCiphertext)?;
        Ok(DataKey(key))
    }
}

/// Whether `sender` encrypts payloads of this type once KMS encryption is on (4.8): the client
/// only Output, the agent Output, StdErr and ExitCode. Everything else travels in the clear.
pub fn encrypts(sender: Role, pt: PayloadType) -> bool {
    match sender {
        Role::Client => pt == PayloadType::OUTPUT,
        Role::Agent => matches!(pt, PayloadType::OUTPUT | PayloadType::STDERR | PayloadType::EXIT_CODE),
    }
}

fn cipher(key: &AesKey) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

fn seal_with_aad(key: &AesKey, nonce: [u8; NONCE_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    // Encrypting into a Vec only fails for inputs beyond AES-GCM's 64 GiB limit.
    if let Ok(ct) = cipher(key).encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad }) {
        out.extend_from_slice(&ct);
    }
    out
}

fn open_with_aad(key: &AesKey, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, OpenError> {
    let err = OpenError { len: sealed.len() };
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(err);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    cipher(key).decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad }).map_err(|_| err)
}

/// Seals a data-channel payload: `nonce || ciphertext || tag`, no associated data (as both
/// references do).
pub fn seal(key: &AesKey, nonce: [u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
    seal_with_aad(key, nonce, plaintext, &[])
}

/// Opens a payload sealed by [`seal`].
pub fn open(key: &AesKey, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    open_with_aad(key, sealed, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: EncryptionContext<'static> = EncryptionContext { session_id: "s-1", target_id: "i-1" };

    #[test]
    fn data_key_round_trip_bound_to_key_and_context() {
        let kms = Kms::harness();
        let mut rng = Rng::new(9);
        let (key, blob) = kms.generate_data_key(&mut rng, Kms::HARNESS_KEY_ID, &CTX).unwrap();
        assert_eq!(blob.len(), NONCE_LEN + DATA_KEY_LEN + TAG_LEN);
        assert_eq!(kms.decrypt(&blob, &CTX), Ok(key.clone()));
        // Same seed, same key and blob: deterministic.
        let again = kms.generate_data_key(&mut Rng::new(9), Kms::HARNESS_KEY_ID, &CTX).unwrap();
        assert_eq!(again, (key, blob.clone()));
        let other = EncryptionContext { session_id: "s-2", ..CTX };
        assert_eq!(kms.decrypt(&blob, &other), Err(KmsError::InvalidCiphertext));
        let mut bad = blob.clone();
        bad[20] ^= 1;
        assert_eq!(kms.decrypt(&bad, &CTX), Err(KmsError::InvalidCiphertext));
        assert_eq!(kms.decrypt(&blob[..10], &CTX), Err(KmsError::InvalidCiphertext));
        assert_eq!(
            kms.generate_data_key(&mut rng, "alias/other", &CTX).map(|_| ()),
            Err(KmsError::NotFound("alias/other".into()))
        );
        let stranger = Kms::new(Kms::HARNESS_KEY_ID, [7; 32]);
        assert_eq!(stranger.decrypt(&blob, &CTX), Err(KmsError::InvalidCiphertext));
    }

    #[test]
    fn encrypted_payload_types() {
        use PayloadType as P;
        assert!(encrypts(Role::Client, P::OUTPUT) && !encrypts(Role::Client, P::EXIT_CODE));
        assert!(!encrypts(Role::Client, P::SIZE) && !encrypts(Role::Client, P::FLAG));
        assert!([P::OUTPUT, P::STDERR, P::EXIT_CODE].iter().all(|&pt| encrypts(Role::Agent, pt)));
        assert!(
            !encrypts(Role::Agent, P::HANDSHAKE_REQUEST) && !encrypts(Role::Agent, P::ENC_CHALLENGE_REQUEST)
        );
    }

    #[test]
    fn key_halves() {
        let mut b = [0u8; DATA_KEY_LEN];
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8;
        }
        let k = DataKey::from_bytes(b);
        assert_eq!(k.agent_key()[0], 0);
        assert_eq!(k.agent_key()[31], 31);
        assert_eq!(k.client_key()[0], 32);
        assert_eq!(k.client_key()[31], 63);
        assert_eq!(format!("{k:?}"), "DataKey(..)");
        assert!(!format!("{:?}", Kms::harness()).contains("master"));
    }

    #[test]
    fn sealed_payload_layout() {
        let key = [3u8; 32];
        let nonce = [1u8; NONCE_LEN];
        let sealed = seal(&key, nonce, b"hello");
        assert_eq!(sealed.len(), NONCE_LEN + 5 + TAG_LEN);
        assert_eq!(sealed[..NONCE_LEN], nonce);
        assert_ne!(&sealed[NONCE_LEN..NONCE_LEN + 5], b"hello");
        assert_eq!(open(&key, &sealed).unwrap(), b"hello");
        assert!(open(&[4u8; 32], &sealed).is_err());
        assert_eq!(open(&key, &sealed[..NONCE_LEN + TAG_LEN - 1]), Err(OpenError { len: 27 }));
        let mut flipped = sealed.clone();
        flipped[NONCE_LEN] ^= 0x80;
        assert!(open(&key, &flipped).is_err());
    }

    /// A known-answer test: AES-256-GCM of the NIST/McGrew-Viega test case 13/14 family
    /// (all-zero key and nonce), so a wrong cipher or mode cannot slip through.
    #[test]
    fn aes_256_gcm_known_answer() {
        let sealed = seal(&[0; 32], [0; NONCE_LEN], &[0; 16]);
        assert_eq!(
            hex::encode(&sealed[NONCE_LEN..]),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
        let empty = seal(&[0; 32], [0; NONCE_LEN], &[]);
        assert_eq!(hex::encode(&empty[NONCE_LEN..]), "530f8afbc74536b9a963b4f1c4cb738b");
    }
}
