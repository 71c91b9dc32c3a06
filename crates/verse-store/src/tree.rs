//! Tree objects: the canonical, versioned binary listing of one directory.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! "verse-tree" 0x00 version:u8(=1) count:u32
//! per entry, sorted by name bytes, names unique:
//!   kind:u8 mode:u32 uid:u32 gid:u32 size:u64 name_len:u16 name
//!   payload: file/dir: hash[32] | symlink: len:u32 target | char/block: rdev:u64 | fifo: -
//! ```
//!
//! A tree's hash is the BLAKE3 of these bytes, so a root hash covers everything below it.
//! Decoding is strict: anything a canonical encoder would not produce is refused.

use crate::hash::Hash;

const MAGIC: &[u8] = b"verse-tree\0";
const VERSION: u8 = 1;
/// A layer's root hash names a tree with exactly one directory entry of this name: it
/// carries the root directory's own mode and owner, and points at the root's listing.
pub const LAYER_ROOT_NAME: &[u8] = b"rootfs";
/// Permission bits we keep: rwx for all, setuid, setgid, sticky.
pub const MODE_MASK: u32 = 0o7777;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Regular file with its content object. Hard links resolve to this.
    File(Hash),
    /// Directory with its child tree.
    Dir(Hash),
    /// Symbolic link: the target is data, never followed by the store.
    Symlink(Vec<u8>),
    /// Character device (recorded; checkouts skip it with a warning).
    CharDev {
        rdev: u64,
    },
    /// Block device (recorded; checkouts skip it with a warning).
    BlockDev {
        rdev: u64,
    },
    Fifo,
}

impl EntryKind {
    fn tag(&self) -> u8 {
        match self {
            EntryKind::File(_) => 1,
            EntryKind::Dir(_) => 2,
            EntryKind::Symlink(_) => 3,
            EntryKind::CharDev { .. } => 4,
            EntryKind::BlockDev { .. } => 5,
            EntryKind::Fifo => 6,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            EntryKind::File(_) => "file",
            EntryKind::Dir(_) => "directory",
            EntryKind::Symlink(_) => "symlink",
            EntryKind::CharDev { .. } => "char device",
            EntryKind::BlockDev { .. } => "block device",
            EntryKind::Fifo => "fifo",
        }
    }

    pub fn is_device(&self) -> bool {
        matches!(self, EntryKind::CharDev { .. } | EntryKind::BlockDev { .. })
    }
}

/// Owner and permission bits of an entry, as recorded in the layer (unshifted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Meta {
    pub const ROOT_DIR: Meta = Meta {
        mode: 0o755,
        uid: 0,
        gid: 0,
    };
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    pub meta: Meta,
    /// File size in bytes (0 for everything but files).
    pub size: u64,
    pub kind: EntryKind,
}

/// Why a name cannot be a directory entry, or `None` if it can.
pub fn bad_name_reason(name: &[u8]) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty name")
    } else if name == b"." || name == b".." {
        Some("name is . or ..")
    } else if name.contains(&b'/') {
        Some("name contains '/'")
    } else if name.contains(&0) {
        Some("name contains NUL")
    } else if name.len() > u16::MAX as usize {
        Some("name too long")
    } else {
        None
    }
}

/// Encodes entries (which must be sorted and unique by name) canonically.
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    debug_assert!(entries.windows(2).all(|w| w[0].name < w[1].name));
    let mut out = Vec::with_capacity(16 + entries.len() * 64);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.push(e.kind.tag());
        out.extend_from_slice(&e.meta.mode.to_le_bytes());
        out.extend_from_slice(&e.meta.uid.to_le_bytes());
        out.extend_from_slice(&e.meta.gid.to_le_bytes());
        out.extend_from_slice(&e.size.to_le_bytes());
        out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&e.name);
        match &e.kind {
            EntryKind::File(h) | EntryKind::Dir(h) => out.extend_from_slice(&h.0),
            EntryKind::Symlink(t) => {
                out.extend_from_slice(&(t.len() as u32).to_le_bytes());
                out.extend_from_slice(t);
            }
            EntryKind::CharDev { rdev } | EntryKind::BlockDev { rdev } => {
                out.extend_from_slice(&rdev.to_le_bytes())
            }
            EntryKind::Fifo => {}
        }
    }
    out
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn hash(&mut self) -> Result<Hash, String> {
        Ok(Hash(self.take(32)?.try_into().unwrap()))
    }
}

/// Decodes a tree object, refusing anything non-canonical.
pub fn decode(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let mut r = Reader { buf: bytes };
    if r.take(MAGIC.len())? != MAGIC {
        return Err("not a tree object (bad magic)".into());
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(format!("unsupported tree version {version}"));
    }
    let count = r.u32()? as usize;
    let mut entries: Vec<Entry> = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let tag = r.u8()?;
        let meta = Meta {
            mode: r.u32()?,
            uid: r.u32()?,
            gid: r.u32()?,
        };
        let size = r.u64()?;
        let name_len = r.u16()? as usize;
        let name = r.take(name_len)?.to_vec();
        if let Some(why) = bad_name_reason(&name) {
            return Err(format!("entry {}: {why}", String::from_utf8_lossy(&name)));
        }
        if meta.mode & !MODE_MASK != 0 {
            return Err(format!(
                "entry {}: bad mode",
                String::from_utf8_lossy(&name)
            ));
        }
        let kind = match tag {
            1 => EntryKind::File(r.hash()?),
            2 => EntryKind::Dir(r.hash()?),
            3 => {
                let len = r.u32()? as usize;
                let t = r.take(len)?.to_vec();
                if t.is_empty() || t.contains(&0) {
                    return Err(format!(
                        "entry {}: bad symlink target",
                        String::from_utf8_lossy(&name)
                    ));
                }
                EntryKind::Symlink(t)
            }
            4 => EntryKind::CharDev { rdev: r.u64()? },
            5 => EntryKind::BlockDev { rdev: r.u64()? },
            6 => EntryKind::Fifo,
            t => return Err(format!("unknown entry kind {t}")),
        };
        if !matches!(kind, EntryKind::File(_)) && size != 0 {
            return Err(format!(
                "entry {}: size on a non-file",
                String::from_utf8_lossy(&name)
            ));
        }
        if entries.last().is_some_and(|prev| prev.name >= name) {
            return Err("entries not sorted or duplicated".into());
        }
        entries.push(Entry {
            name,
            meta,
            size,
            kind,
        });
    }
    if !r.buf.is_empty() {
        return Err("trailing bytes after last entry".into());
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: EntryKind, size: u64) -> Entry {
        Entry {
            name: name.into(),
            meta: Meta {
                mode: 0o4755,
                uid: 1,
                gid: 2,
            },
            size,
            kind,
        }
    }

    #[test]
    fn round_trip_and_strictness() {
        let entries = vec![
            entry("a", EntryKind::File(Hash::of(b"x")), 1),
            entry("b", EntryKind::Dir(Hash::of(b"y")), 0),
            entry("c", EntryKind::Symlink(b"/bin/busybox".to_vec()), 0),
            entry("d", EntryKind::CharDev { rdev: 0x0103 }, 0),
            entry("e", EntryKind::Fifo, 0),
        ];
        let bytes = encode(&entries);
        assert_eq!(decode(&bytes).unwrap(), entries);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        // Splice two one-entry trees into one whose entries are out of order.
        let header = MAGIC.len() + 1 + 4;
        let mut unsorted = encode(&entries[1..2]);
        unsorted[header - 4..header].copy_from_slice(&2u32.to_le_bytes());
        unsorted.extend_from_slice(&encode(&entries[..1])[header..]);
        assert!(decode(&unsorted).unwrap_err().contains("sorted"));
    }
}
