//! Crash-safe persistence of a simulator (`--state-file FILE`): a snapshot plus an append-only journal.
//!
//! - `FILE` is a snapshot of the whole state, `{"generation": g, "store": …}`, only ever replaced atomically
//!   (written to a new `FILE.tmp.<g>`, synced, renamed over `FILE`, directory synced).
//! - `FILE.journal.<g>` holds the changes made after snapshot `g`, one record per write: a 4-byte little-endian
//!   length, the CRC-32 of the payload (4 bytes, little-endian), and the payload (JSON of what changed, see
//!   [`Record`]). A record holds only the resources the operation touched, so the cost of a write does not
//!   depend on how many resources exist.
//! - Durability: a write's record is appended (under the store lock, so records are in the order of the
//!   changes) and `fdatasync`ed before its response is sent: an acknowledged change survives a crash of the
//!   process or of the machine.
//! - Compaction: when the journal outgrows the last snapshot (and at least [`MIN_COMPACT_BYTES`]), the state is
//!   copied under the lock, a new journal `g+1` is started, and a background thread writes snapshot `g+1` and
//!   then deletes journal `g`. The copy is the only pause; its cost is amortised over at least as many journal
//!   bytes as the snapshot has, so the average cost per write stays independent of the size.
//! - Start: load snapshot `g` (or the catalog when there is none), replay journals `g`, `g+1`… in order; a
//!   record cut short or failing its checksum (a crash in the middle of an append) ends the replay of that file,
//!   which is truncated there. Then a fresh snapshot is written, so a start is also a compaction.
//! - Links: nothing is read or written through a symbolic link. A state file or journal that is a link is an
//!   error at start; new files (journals, temporary snapshots) are created with `create_new` (`O_EXCL`, which
//!   refuses an existing name, a link included), and a snapshot replaces `FILE` by a rename, which replaces a
//!   link planted there instead of writing to its target.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::store::Store;
use super::store::persist::Record;
use super::sync::lock;

/// The journal is never compacted below this size.
pub const MIN_COMPACT_BYTES: u64 = 4 * 1024 * 1024;

/// A record larger than this is taken as corruption, not as a length.
const MAX_RECORD: u32 = 1 << 30;

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, the one of zip and PNG).
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[derive(Serialize)]
struct SnapshotOut<'a> {
    generation: u64,
    store: &'a Store,
}

#[derive(Deserialize)]
struct SnapshotIn {
    generation: u64,
    store: Store,
}

fn journal_path(state: &Path, generation: u64) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(format!(".journal.{generation}"));
    PathBuf::from(name)
}

/// The journals that exist next to `state`, by generation.
fn journals(state: &Path) -> Vec<(u64, PathBuf)> {
    let dir = state.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(stem) = state.file_name().and_then(|n| n.to_str()).map(|n| format!("{n}.journal.")) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let g = name.strip_prefix(&stem)?.parse().ok()?;
            Some((g, e.path()))
        })
        .collect();
    out.sort();
    out
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// A path refused because it is a symbolic link.
fn link_refused(path: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{} is a symbolic link; cimi-sim does not read or write state through links", path.display()),
    )
}

/// Opens an existing file of the state, refusing a symbolic link or anything but a regular file. On Unix the
/// file opened is checked to be the one examined (so a link swapped in between is refused too).
fn open_existing(path: &Path, options: &OpenOptions) -> std::io::Result<File> {
    let seen = std::fs::symlink_metadata(path)?;
    if seen.file_type().is_symlink() {
        return Err(link_refused(path));
    }
    if !seen.is_file() {
        return Err(invalid(path, "not a regular file"));
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let opened = file.metadata()?;
        if (opened.dev(), opened.ino()) != (seen.dev(), seen.ino()) {
            return Err(link_refused(path));
        }
    }
    Ok(file)
}

/// Creates a file that must not exist yet (`O_EXCL`: an existing name, a symbolic link included, is an error).
fn create_new(path: &Path, options: &mut OpenOptions) -> std::io::Result<File> {
    options.create_new(true).open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => std::io::Error::new(
            e.kind(),
            format!("{} exists already (a link or a file left behind); cimi-sim creates it anew", path.display()),
        ),
        _ => e,
    })
}

/// Opens a new journal for appending.
fn create_journal(path: &Path) -> std::io::Result<File> {
    create_new(path, OpenOptions::new().append(true))
}

/// Writes a snapshot atomically: a new temporary file, sync, rename, directory sync. Returns its size.
fn write_snapshot(state: &Path, generation: u64, store: &Store) -> std::io::Result<u64> {
    let mut tmp = state.as_os_str().to_owned();
    tmp.push(format!(".tmp.{generation}"));
    let tmp = PathBuf::from(tmp);
    // One left by a crash is removed (a link is removed itself, its target untouched) and created anew.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let file = create_new(&tmp, OpenOptions::new().write(true))?;
    let mut w = BufWriter::new(file);
    serde_json::to_writer(&mut w, &SnapshotOut { generation, store })?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let size = file.metadata()?.len();
    std::fs::rename(&tmp, state)?;
    sync_dir(state);
    Ok(size)
}

/// Frames one record: length, CRC-32, payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads the complete, intact records of a journal; returns them with the length of the intact prefix.
pub fn read_records(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 8 {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let crc = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        if len > MAX_RECORD || bytes.len() - at - 8 < len as usize {
            break;
        }
        let payload = &bytes[at + 8..at + 8 + len as usize];
        if crc32(payload) != crc {
            break;
        }
        match serde_json::from_slice::<Record>(payload) {
            Ok(r) => records.push(r),
            Err(_) => break,
        }
        at += 8 + len as usize;
    }
    (records, at)
}

/// Why the state file could not be loaded.
fn invalid(path: &Path, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("state file {}: {e}", path.display()))
}

/// The open journal of a running simulator.
pub struct Journal {
    state: PathBuf,
    inner: Mutex<Inner>,
    compacting: Arc<AtomicBool>,
    snapshot_bytes: Arc<AtomicU64>,
}

struct Inner {
    generation: u64,
    file: Arc<File>,
    bytes: u64,
}

impl Journal {
    /// Loads the persisted state (snapshot, then journals), or `fresh()` when there is none, writes a new
    /// snapshot and opens a new journal. A torn last record is dropped (and the file truncated there).
    pub fn open(state: &Path, fresh: impl FnOnce() -> Store) -> std::io::Result<(Journal, Store)> {
        let existing = journals(state);
        if let Some((_, link)) = existing.iter().find(|(_, p)| p.symlink_metadata().is_ok_and(|m| m.is_symlink())) {
            return Err(link_refused(link));
        }
        let (mut generation, mut store) = match open_existing(state, OpenOptions::new().read(true)) {
            Ok(mut file) => {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).map_err(|e| invalid(state, e))?;
                let snap: SnapshotIn = serde_json::from_slice(&bytes).map_err(|e| invalid(state, e))?;
                (snap.generation, snap.store)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, fresh()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Err(e),
            Err(e) => return Err(invalid(state, e)),
        };
        let mut replayed = 0usize;
        for (g, path) in existing {
            if g < generation {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let mut file = open_existing(&path, OpenOptions::new().read(true).write(true))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            let (records, good) = read_records(&bytes);
            if good < bytes.len() {
                tracing::warn!(journal = %path.display(), dropped = bytes.len() - good,
                    "the journal ends with a torn or corrupt record; it is dropped");
                file.set_len(good as u64)?;
            }
            replayed += records.len();
            for r in records {
                store.apply(r);
            }
            generation = g;
        }
        store.rebuild_derived();
        generation += 1;
        let snapshot_bytes = write_snapshot(state, generation, &store)?;
        for (g, path) in journals(state) {
            if g < generation {
                let _ = std::fs::remove_file(&path);
            }
        }
        let file = create_journal(&journal_path(state, generation))?;
        sync_dir(state);
        tracing::debug!(replayed, generation, "simulator state loaded");
        store.track_changes();
        let journal = Journal {
            state: state.to_path_buf(),
            inner: Mutex::new(Inner { generation, file: Arc::new(file), bytes: 0 }),
            compacting: Arc::new(AtomicBool::new(false)),
            snapshot_bytes: Arc::new(AtomicU64::new(snapshot_bytes)),
        };
        Ok((journal, store))
    }

    /// Appends what changed in `store` (call with the store locked, after each change). Returns whether a record
    /// was written (then [`Journal::sync`] before answering).
    pub fn commit(&self, store: &mut Store) -> bool {
        let Some(rec) = store.take_changes() else {
            return false;
        };
        let payload = match serde_json::to_vec(&rec) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot serialize a journal record");
                return false;
            }
        };
        let framed = frame(&payload);
        let mut inner = lock(&self.inner);
        if let Err(e) = (&*inner.file).write_all(&framed) {
            tracing::warn!(error = %e, "cannot append to the simulator journal");
            return false;
        }
        inner.bytes += framed.len() as u64;
        let threshold = self.snapshot_bytes.load(Ordering::Relaxed).max(MIN_COMPACT_BYTES);
        if inner.bytes > threshold && !self.compacting.swap(true, Ordering::AcqRel) {
            self.start_compaction(&mut inner, store);
        }
        true
    }

    /// Makes every appended record durable.
    pub fn sync(&self) {
        let file = lock(&self.inner).file.clone();
        if let Err(e) = file.sync_data() {
            tracing::warn!(error = %e, "cannot sync the simulator journal");
        }
    }

    /// Replaces the whole state (reset): the snapshot of the new state is written before this returns (were it
    /// written in the background, a crash in between would replay the new journal onto the old snapshot).
    pub fn replace(&self, store: &mut Store) {
        store.track_changes();
        let mut inner = lock(&self.inner);
        // Wait for a compaction in progress: two snapshot writers must not race.
        while self.compacting.swap(true, Ordering::AcqRel) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let next = inner.generation + 1;
        let result = create_journal(&journal_path(&self.state, next))
            .and_then(|file| write_snapshot(&self.state, next, store).map(|size| (file, size)));
        match result {
            Ok((file, size)) => {
                inner.generation = next;
                inner.file = Arc::new(file);
                inner.bytes = 0;
                self.snapshot_bytes.store(size, Ordering::Relaxed);
                for (g, path) in journals(&self.state) {
                    if g < next {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot write the simulator snapshot after a reset"),
        }
        self.compacting.store(false, Ordering::Release);
    }

    /// Starts journal `g+1` and writes snapshot `g+1` from a copy of the state in a background thread.
    fn start_compaction(&self, inner: &mut Inner, store: &Store) {
        let next = inner.generation + 1;
        let file = match create_journal(&journal_path(&self.state, next)) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a new journal; compaction postponed");
                self.compacting.store(false, Ordering::Release);
                return;
            }
        };
        // Records appended to journal g but not yet synced must stay durable until snapshot g+1 (which holds
        // them too) replaces it: their requests will sync the new journal, not this one.
        if let Err(e) = inner.file.sync_data() {
            tracing::warn!(error = %e, "cannot sync the simulator journal");
        }
        sync_dir(&self.state);
        inner.generation = next;
        inner.file = Arc::new(file);
        inner.bytes = 0;
        let copy = store.clone();
        let state = self.state.clone();
        let compacting = self.compacting.clone();
        let snapshot_bytes = self.snapshot_bytes.clone();
        std::thread::spawn(move || {
            match write_snapshot(&state, next, &copy) {
                Ok(size) => {
                    snapshot_bytes.store(size, Ordering::Relaxed);
                    for (g, path) in journals(&state) {
                        if g < next {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot write the simulator snapshot"),
            }
            compacting.store(false, Ordering::Release);
        });
    }

    /// Waits for a compaction in progress (stop).
    pub fn settle(&self) {
        while self.compacting.load(Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn torn_and_corrupt_tails_are_cut() {
        let rec = |n: u64| {
            serde_json::to_vec(&serde_json::json!({"globals": {"seq": n, "pending": [], "parents": [], "cep": {},
                "cep_version": 1, "last_tick": null}}))
            .unwrap_or_default()
        };
        let mut bytes = frame(&rec(1));
        bytes.extend(frame(&rec(2)));
        let whole = bytes.len();
        let (records, good) = read_records(&bytes);
        assert_eq!((records.len(), good), (2, whole));
        // A record cut anywhere: the intact prefix stays.
        let third = frame(&rec(3));
        for cut in 1..third.len() {
            let mut torn = bytes.clone();
            torn.extend_from_slice(&third[..cut]);
            let (records, good) = read_records(&torn);
            assert_eq!((records.len(), good), (2, whole), "cut at {cut}");
        }
        // A flipped bit in the last payload fails the checksum.
        let mut flipped = bytes.clone();
        flipped.extend_from_slice(&third);
        let last = flipped.len() - 2;
        flipped[last] ^= 0x10;
        assert_eq!(read_records(&flipped).1, whole);
    }
}
