//! One pass over a CSV: rows read in chunks, rendered and checked on every core, then handed on
//! in record order, so that whoever takes them sees exactly what a single-threaded pass would.
//! Chunks keep their rows' buffers from one chunk to the next, so that a pass allocates (and
//! frees on another thread, which glibc makes costly) next to nothing per row.
//!
//! What a chunk holds is bounded: a row may render up to the renderer's byte bound, and a chunk
//! of such rows would hold gigabytes. A row's rendering is kept only while the chunk's renderings
//! stay under `CHUNK_BYTES`; past that it is dropped and done again, on the passing thread, just
//! before the row is passed on (and dropped after). A row with errors keeps no rendering (nobody
//! reads it), and a buffer grown past `KEPT_BYTES` is not kept for a later row.
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use super::row::{Checked, RowRenderer};
use crate::input::problem::Problem;
use crate::input::recipients::Recipients;
use crate::template::Rendered;

/// Rows per chunk: read, rendered and passed on at once. Each chunk boundary makes the threads
/// wait for each other, and rayon's waiting threads spin, so a chunk must be large enough that
/// the waits are rare, and small enough that three of them stay a few megabytes (BENCHMARKS.md
/// has the sizes tried).
pub(super) const CHUNK: usize = 1024;
/// The renderings one chunk keeps (two chunks hold renderings at once): far above what usual
/// rows render (a 4 KiB message makes a chunk 4 MiB), far below the machine's memory.
const CHUNK_BYTES: usize = 64 << 20;
/// A rendering buffer larger than this is given back rather than kept for the slot's next row.
const KEPT_BYTES: usize = 64 << 10;

/// A row's place in a chunk. The reader fills it, a worker renders into it, the pass reads it;
/// then it takes a later row, keeping its buffers.
#[derive(Default)]
pub(super) struct Slot {
    pub(super) number: u64,
    pub(super) line: u64,
    /// `None` only before the slot first holds a row, or after a row that could not be read.
    record: Option<csv::StringRecord>,
    /// The reader's warning about the row.
    pub(super) warning: Option<Problem>,
    /// Why the row could not be read; then nothing else in the slot is the row's.
    pub(super) bad: Option<Problem>,
    pub(super) rendered: Rendered,
    /// `None` when templates cannot render.
    pub(super) checked: Option<Checked>,
    /// The rendering was dropped to keep the chunk under `CHUNK_BYTES`: it is done again when
    /// the row is passed on.
    deferred: bool,
}

/// Slots and how many of them hold rows of this chunk.
#[derive(Default)]
struct Chunk {
    slots: Vec<Slot>,
    filled: usize,
}

impl Chunk {
    fn rows(&mut self) -> &mut [Slot] {
        &mut self.slots[..self.filled]
    }
}

/// Reads up to a chunk of rows; says whether more may follow.
fn read_chunk(recipients: &mut Recipients, chunk: &mut Chunk) -> bool {
    chunk.filled = 0;
    if chunk.slots.len() < CHUNK {
        chunk.slots.resize_with(CHUNK, Slot::default);
    }
    while chunk.filled < CHUNK {
        let slot = &mut chunk.slots[chunk.filled];
        slot.bad = None;
        slot.warning = None;
        slot.checked = None;
        match recipients.next_record(&mut slot.record) {
            None => return false,
            Some(Ok(at)) => {
                slot.number = at.number;
                slot.line = at.line;
                slot.warning = at.warning;
            }
            Some(Err(p)) => {
                // A problem with no record number means reading cannot go on.
                let more = p.record.is_some();
                slot.bad = Some(p);
                chunk.filled += 1;
                if !more {
                    return false;
                }
                continue;
            }
        }
        chunk.filled += 1;
    }
    true
}

fn rendered_bytes(r: &Rendered) -> usize {
    r.body.len() + r.subject.as_ref().map_or(0, String::len) + r.to_id.len()
}

fn buffer_bytes(r: &Rendered) -> usize {
    r.body.capacity() + r.subject.as_ref().map_or(0, String::capacity) + r.to_id.capacity()
}

/// Renders and checks each row of the chunk, on every core, keeping at most `CHUNK_BYTES` of
/// renderings.
fn render_chunk(renderer: &RowRenderer<'_>, chunk: &mut Chunk) {
    let held = AtomicUsize::new(0);
    chunk.rows().par_iter_mut().for_each(|slot| {
        slot.deferred = false;
        if buffer_bytes(&slot.rendered) > KEPT_BYTES {
            slot.rendered = Rendered::default();
        }
        render_slot(renderer, slot);
        let size = match &slot.checked {
            Some(Ok(_)) => rendered_bytes(&slot.rendered),
            _ => {
                if buffer_bytes(&slot.rendered) > KEPT_BYTES {
                    slot.rendered = Rendered::default();
                }
                return;
            }
        };
        if held.fetch_add(size, Ordering::Relaxed) + size > CHUNK_BYTES {
            held.fetch_sub(size, Ordering::Relaxed);
            slot.rendered = Rendered::default();
            slot.deferred = true;
        }
    });
}

/// Renders and checks one row, when it was read.
fn render_slot(renderer: &RowRenderer<'_>, slot: &mut Slot) {
    {
        let (Some(record), None) = (&slot.record, &slot.bad) else {
            return;
        };
        // The fields as `&str`s, on the stack for any usual number of columns.
        let mut stack = [""; 32];
        let heap: Vec<&str>;
        let fields: &[&str] = if record.len() <= stack.len() {
            for (to, from) in stack.iter_mut().zip(record.iter()) {
                *to = from;
            }
            &stack[..record.len()]
        } else {
            heap = record.iter().collect();
            &heap
        };
        slot.checked =
            Some(renderer.check_into(slot.number, slot.line, fields, &mut slot.rendered));
    }
}

/// Passes a row on, rendering it again first if its rendering was dropped.
fn pass_slot(
    renderer: Option<&RowRenderer<'_>>,
    slot: &mut Slot,
    each: &mut (dyn FnMut(&mut Slot) + Send),
) {
    match (slot.deferred, renderer) {
        (true, Some(renderer)) => {
            render_slot(renderer, slot);
            each(slot);
            slot.rendered = Rendered::default();
            slot.deferred = false;
        }
        _ => each(slot),
    }
}

/// Reads every row and renders it on every core (when there is a `renderer`), then hands the
/// rows to `each` in order: the report, the fingerprint and `on_row` see them exactly as a single
/// pass would. Three chunks turn: while one is rendered, the next is read and the previous one
/// goes through `each`.
pub(super) fn each_rendered(
    recipients: &mut Recipients,
    renderer: Option<&RowRenderer<'_>>,
    each: &mut (dyn FnMut(&mut Slot) + Send),
) {
    // The loop runs on one of rayon's threads: a `join` called from outside the pool parks the
    // caller until the pool is done, a sleep and a wake-up per chunk.
    rayon::scope(|_| turn_chunks(recipients, renderer, each));
}

fn turn_chunks(
    recipients: &mut Recipients,
    renderer: Option<&RowRenderer<'_>>,
    each: &mut (dyn FnMut(&mut Slot) + Send),
) {
    let mut reading = Chunk::default();
    let mut rendering = Chunk::default();
    let mut passing = Chunk::default();
    let mut more = read_chunk(recipients, &mut rendering);
    while rendering.filled > 0 || passing.filled > 0 {
        rayon::join(
            || {
                if let Some(renderer) = renderer {
                    render_chunk(renderer, &mut rendering);
                }
            },
            || {
                rayon::join(
                    || {
                        if more {
                            more = read_chunk(recipients, &mut reading);
                        } else {
                            reading.filled = 0;
                        }
                    },
                    || {
                        for slot in passing.rows() {
                            pass_slot(renderer, slot, each);
                        }
                    },
                )
            },
        );
        // The rendered chunk goes through `each` next, the one just read is rendered.
        std::mem::swap(&mut passing, &mut rendering);
        std::mem::swap(&mut rendering, &mut reading);
    }
}
