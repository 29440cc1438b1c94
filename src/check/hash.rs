//! What a pass keeps of the rows it rendered, as hashes: each valid row's recipient (to find
//! duplicates, and for send's manifest to compare a resume with), each valid row's request (for
//! send to notice a row that changed since preflight), and the content fingerprint of them all.
//! The fingerprint is recorded in journal headers, so its bytes must not change between versions
//! (`tests::the_content_fingerprint_is_what_earlier_versions_recorded` pins them).
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::input::config::{Campaign, MessageType};
use crate::template::{MessageRequest, Rendered};

/// A recipient's 8-byte hash: what duplicate detection keeps of each valid row, and all it keeps.
pub fn recipient_hash(kind: &str, id: &str) -> u64 {
    // The key is `kind NUL id`, hashed in one call; on the stack when it fits, as ids do.
    let len = kind.len() + id.len() + 1;
    let mut stack = [0u8; 128];
    let mut heap = Vec::new();
    let key = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap[..]
    };
    key[..kind.len()].copy_from_slice(kind.as_bytes());
    key[kind.len()] = 0;
    key[kind.len() + 1..].copy_from_slice(id.as_bytes());
    xxh3_64(key)
}

/// What a valid row's request holds that varies by row (the rest is in the settings
/// fingerprint), as `Rendered::into_request` sets it: subject (empty for in-app), body, recipient.
fn row_parts<'r>(campaign: &Campaign, rendered: &'r Rendered) -> [&'r str; 3] {
    let subject = match campaign.message_type {
        MessageType::Email => rendered.subject.as_deref().unwrap_or(""),
        MessageType::InApp => "",
    };
    [subject, rendered.body.trim_end(), &rendered.to_id]
}

/// The content fingerprint: every valid row's number and `row_parts`, each part after its
/// length, hashed as one stream.
#[derive(Default)]
pub(super) struct Fingerprint {
    hasher: Xxh3,
    /// A row's bytes, gathered so that the hasher takes each row in one call (a call costs about
    /// what hashing a few hundred bytes does). The stream, and so the digest, is the same as
    /// with a call per piece.
    row: Vec<u8>,
}

impl Fingerprint {
    pub(super) fn add(&mut self, number: u64, campaign: &Campaign, rendered: &Rendered) {
        self.row.clear();
        self.row.extend_from_slice(&number.to_le_bytes());
        put_parts(&mut self.row, row_parts(campaign, rendered));
        self.hasher.update(&self.row);
    }

    pub(super) fn digest(&self) -> u64 {
        self.hasher.digest()
    }
}

/// Appends each part after its length: what the fingerprint and the row hashes hash.
fn put_parts(out: &mut Vec<u8>, parts: [&str; 3]) {
    for part in parts {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(part.as_bytes());
    }
}

fn hash_of_parts(parts: [&str; 3]) -> u32 {
    let mut bytes = Vec::with_capacity(24 + parts.iter().map(|p| p.len()).sum::<usize>());
    put_parts(&mut bytes, parts);
    xxh3_64(&bytes) as u32
}

/// A hash of a valid row's request, as preflight rendered it: the send pass compares it with
/// `request_hash` of what it is about to send, and so notices a file that changed in between.
/// 32 bits, since send keeps one per row: a changed row goes unnoticed once in 4 billion.
pub fn row_hash(campaign: &Campaign, rendered: &Rendered) -> u32 {
    hash_of_parts(row_parts(campaign, rendered))
}

/// `row_hash` of a request.
pub fn request_hash(request: &MessageRequest) -> u32 {
    let subject = request.subject.as_deref().unwrap_or("");
    hash_of_parts([subject, &request.body, &request.to.id])
}
