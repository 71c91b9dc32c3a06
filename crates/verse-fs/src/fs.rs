//! The FUSE side: inode numbers for paths, open files, and the kernel's
//! requests answered from a [`View`]. Anything that needs the daemon runs
//! as a task on the runtime and replies when it is done, so a slow call
//! (a hibernate, say) never holds up the filesystem's other requests, and a
//! read of `events` can wait for the next event without tying up a thread.

use crate::ctl;
use crate::render;
use crate::tree::{EnvFile, Kind, Node};
use crate::view::{View, errno_of, lock};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, OpenFlags,
    PollEvents, PollFlags, PollNotifier, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyPoll, ReplyWrite, Request,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The thread id of the mount's own thread that writes to `state` files
/// for inotify's sake (FUSE requests carry the caller's thread id).
pub static TOUCHER: AtomicU32 = AtomicU32::new(0);

/// Nothing is cached by the kernel: every stat and lookup asks, so states,
/// envs that come and go, and new log output show at once.
const TTL: Duration = Duration::ZERO;

/// Inode numbers, one per path ever looked up (the root is 1).
struct Inodes {
    by_path: HashMap<String, u64>,
    paths: Vec<String>,
}

impl Inodes {
    fn ino(&mut self, path: &str) -> u64 {
        if let Some(ino) = self.by_path.get(path) {
            return *ino;
        }
        self.paths.push(path.to_string());
        let ino = self.paths.len() as u64;
        self.by_path.insert(path.to_string(), ino);
        ino
    }

    fn path(&self, ino: u64) -> Option<String> {
        self.paths.get(ino.checked_sub(1)? as usize).cloned()
    }
}

fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// Where a reader of `events` is.
struct Cursor {
    after: u64,
    pending: Vec<u8>,
}

enum Open {
    /// Content read once at open (`state` is read again from offset 0).
    Data {
        node: Node,
        bytes: Vec<u8>,
        /// The env's state-change count when `bytes` was made.
        changes: u64,
    },
    Console(String),
    Events {
        env: Option<String>,
        cursor: Arc<tokio::sync::Mutex<Cursor>>,
        nonblock: bool,
    },
    /// Opened for writing: each write is a command or a new value.
    Write(Node),
    /// The mount's own writes to `state` (see [`VerseFs::touch_state`]): dropped.
    Touch,
    Dir(Vec<(String, Kind)>),
    /// A file of the env itself (`files/...`), read in chunks of up to
    /// [`verse_api::MAX_FILE_CHUNK`] from the daemon, the last one kept.
    EnvFile {
        env: String,
        path: String,
        chunk: Arc<tokio::sync::Mutex<(u64, Vec<u8>)>>,
    },
}

struct Handle {
    view: Arc<View>,
    open: Open,
}

pub struct VerseFs {
    main: Arc<View>,
    /// With `allow_other`: the view of each other uid that has a token.
    by_uid: HashMap<u32, Arc<View>>,
    owner: u32,
    allow_other: bool,
    rt: tokio::runtime::Handle,
    inodes: Mutex<Inodes>,
    handles: Arc<Mutex<HashMap<u64, Arc<Mutex<Handle>>>>>,
    next_fh: AtomicU64,
    started: SystemTime,
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
    }
}

/// The attributes of an env's own file: its kind, size, time and mode,
/// without write bits (`files/` is read-only).
fn env_attr(base: FileAttr, entry: &verse_api::FileEntry) -> FileAttr {
    let kind = render::entry_kind(entry);
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(entry.mtime.max(0) as u64);
    FileAttr {
        size: entry.size,
        blocks: entry.size.div_ceil(512),
        mtime,
        ctime: mtime,
        kind: file_type(kind),
        perm: (entry.mode & 0o7555) as u16,
        nlink: if kind == Kind::Dir { 2 } else { 1 },
        ..base
    }
}

impl VerseFs {
    pub fn new(
        main: Arc<View>,
        by_uid: HashMap<u32, Arc<View>>,
        allow_other: bool,
        rt: tokio::runtime::Handle,
    ) -> VerseFs {
        let mut inodes = Inodes {
            by_path: HashMap::new(),
            paths: Vec::new(),
        };
        inodes.ino("");
        VerseFs {
            main,
            by_uid,
            // SAFETY: getuid cannot fail and touches no memory.
            owner: unsafe { libc::getuid() },
            allow_other,
            rt,
            inodes: Mutex::new(inodes),
            handles: Arc::new(Mutex::new(HashMap::new())),
            next_fh: AtomicU64::new(1),
            started: SystemTime::now(),
        }
    }

    /// The identity a request acts with: the mount's own, or (with
    /// `allow_other`) the caller's uid's token; `None`: refused.
    fn view(&self, req: &Request) -> Option<Arc<View>> {
        if !self.allow_other || req.uid() == self.owner {
            return Some(Arc::clone(&self.main));
        }
        self.by_uid.get(&req.uid()).cloned()
    }

    fn path(&self, ino: INodeNo) -> Option<String> {
        lock(&self.inodes).path(ino.0)
    }

    fn ino(&self, path: &str) -> INodeNo {
        INodeNo(lock(&self.inodes).ino(path))
    }

    fn attr(&self, req: &Request, path: &str, node: &Node, size: u64) -> FileAttr {
        let kind = node.kind();
        FileAttr {
            ino: self.ino(path),
            size,
            blocks: size.div_ceil(512),
            atime: self.started,
            mtime: SystemTime::now(),
            ctime: self.started,
            crtime: self.started,
            kind: file_type(kind),
            perm: node.perm(),
            nlink: if kind == Kind::Dir { 2 } else { 1 },
            // Shown as the caller's: the modes say what this mount lets them do.
            uid: req.uid(),
            gid: req.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// The size `stat` shows, where it costs nothing to know; 0 otherwise
    /// (reads go to the end all the same, as in /proc).
    fn cheap_size(view: &View, node: &Node) -> Option<u64> {
        match node {
            Node::Status | Node::EnvFile(_, EnvFile::State | EnvFile::Error) | Node::Limit(..) => {
                Some(
                    render::cached(view, node)
                        .and_then(Result::ok)
                        .map_or(0, |b| b.len() as u64),
                )
            }
            Node::Current => None,
            _ => Some(0),
        }
    }

    /// Whether `node` exists without asking the daemon, when that is enough.
    fn known(view: &View, node: &Node) -> Option<bool> {
        if let Some(env) = node.env()
            && view.env(env).is_none()
        {
            return Some(false);
        }
        match node {
            Node::Snapshot(..)
            | Node::Image(_)
            | Node::ImageFile(..)
            | Node::Generation(_)
            | Node::GenerationSpec(_)
            | Node::Current
            | Node::QuarantineItem(_)
            | Node::QuarantineFile(..) => None,
            Node::EnvPath(_, path) if path != "/" => None,
            _ => Some(true),
        }
    }

    fn spawn<F>(&self, f: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(f);
    }

    fn add_handle(&self, view: Arc<View>, open: Open) -> FileHandle {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, Arc::new(Mutex::new(Handle { view, open })));
        FileHandle(fh)
    }

    /// Why nothing can be made or removed in `parent`: `files/` is
    /// read-only (EROFS); elsewhere the tree is fixed (EACCES).
    fn cannot_make(&self, parent: INodeNo) -> Errno {
        match self.path(parent).and_then(|p| Node::parse(&p)) {
            Some(Node::EnvPath(..)) => Errno::EROFS,
            _ => Errno::EACCES,
        }
    }

    fn handle(&self, fh: FileHandle) -> Option<Arc<Mutex<Handle>>> {
        lock(&self.handles).get(&fh.0).cloned()
    }

    /// Answers lookup and getattr alike: the node's attributes, if it exists.
    fn stat(
        &self,
        req: &Request,
        path: String,
        reply: impl FnOnce(Result<FileAttr, Errno>) + Send + 'static,
    ) {
        let Some(view) = self.view(req) else {
            return reply(Err(Errno::EACCES));
        };
        let Some(node) = Node::parse(&path) else {
            return reply(Err(Errno::ENOENT));
        };
        let known = Self::known(&view, &node);
        if known == Some(false) {
            return reply(Err(Errno::ENOENT));
        }
        let size = Self::cheap_size(&view, &node);
        let console = matches!(node, Node::EnvFile(_, EnvFile::Console));
        if known == Some(true) && size.is_some() && !console {
            return reply(Ok(self.attr(req, &path, &node, size.unwrap_or(0))));
        }
        if let Node::EnvPath(env, at) = &node {
            let (env, at) = (env.clone(), at.clone());
            let attr = self.attr(req, &path, &node, 0);
            return self.spawn(async move {
                reply(
                    render::env_path(&view, &env, &at)
                        .await
                        .map(|found| env_attr(attr, &found.entry)),
                )
            });
        }
        // Needs the daemon: whether it exists, or (console) how long it is.
        let attr = self.attr(req, &path, &node, 0);
        self.spawn(async move {
            let result = if console {
                let env = node.env().unwrap_or_default();
                view.console(env)
                    .await
                    .map(|b| b.len() as u64)
                    .map_err(|e| errno_of(&e))
            } else {
                render::exists(&view, &node)
                    .await
                    .and_then(|found| if found { Ok(0) } else { Err(Errno::ENOENT) })
            };
            reply(result.map(|size| FileAttr {
                size,
                blocks: size.div_ceil(512),
                ..attr
            }))
        });
    }
}

impl Filesystem for VerseFs {
    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (Some(parent), Some(name)) = (self.path(parent), name.to_str()) else {
            return reply.error(Errno::ENOENT);
        };
        self.stat(req, child_path(&parent, name), move |r| match r {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        });
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let Some(path) = self.path(ino) else {
            return reply.error(Errno::ENOENT);
        };
        self.stat(req, path, move |r| match r {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        });
    }

    /// Truncation (`echo x > ctl` opens with O_TRUNC) and time changes are
    /// accepted and change nothing.
    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if matches!(
            self.path(ino).and_then(|p| Node::parse(&p)),
            Some(Node::EnvPath(..))
        ) {
            return reply.error(Errno::EROFS);
        }
        self.getattr(req, ino, None, reply);
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let Some(view) = self.view(req) else {
            return reply.error(Errno::EACCES);
        };
        let node = self.path(ino).and_then(|p| Node::parse(&p));
        if let Some(Node::EnvPath(env, at)) = node {
            return self.spawn(async move {
                match render::env_path(&view, &env, &at).await {
                    Ok(found) => match found.entry.target {
                        Some(target) => {
                            reply.data(crate::tree::contained_target(&at, &target).as_bytes())
                        }
                        None => reply.error(Errno::EINVAL),
                    },
                    Err(e) => reply.error(e),
                }
            });
        }
        if node != Some(Node::Current) {
            return reply.error(Errno::EINVAL);
        }
        self.spawn(async move {
            match render::current_generation(&view).await {
                Ok(n) => reply.data(n.to_string().as_bytes()),
                Err(e) => reply.error(e),
            }
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let Some(view) = self.view(req) else {
            return reply.error(Errno::EACCES);
        };
        let Some(node) = self.path(ino).and_then(|p| Node::parse(&p)) else {
            return reply.error(Errno::ENOENT);
        };
        if node.kind() == Kind::Dir {
            return reply.error(Errno::EISDIR);
        }
        if Self::known(&view, &node) == Some(false) {
            return reply.error(Errno::ENOENT);
        }
        let raw = flags.0;
        let writing = raw & libc::O_ACCMODE != libc::O_RDONLY;
        let direct = FopenFlags::FOPEN_DIRECT_IO;
        if let Node::EnvPath(env, path) = &node {
            if writing || raw & libc::O_TRUNC != 0 {
                return reply.error(Errno::EROFS);
            }
            let open = Open::EnvFile {
                env: env.clone(),
                path: path.clone(),
                chunk: Arc::new(tokio::sync::Mutex::new((0, Vec::new()))),
            };
            let fh = self.add_handle(view, open);
            return reply.opened(fh, direct);
        }
        if writing {
            let own = req.pid() == TOUCHER.load(Ordering::Relaxed) && req.pid() != 0;
            let open = match &node {
                Node::EnvFile(_, EnvFile::State) if own => Open::Touch,
                n if n.writable() => Open::Write(node.clone()),
                _ => return reply.error(Errno::EACCES),
            };
            let fh = self.add_handle(view, open);
            return reply.opened(fh, direct);
        }
        match &node {
            Node::EnvFile(env, EnvFile::Console) => {
                let fh = self.add_handle(view, Open::Console(env.clone()));
                reply.opened(fh, direct)
            }
            Node::Events | Node::EnvFile(_, EnvFile::Events) => {
                let open = Open::Events {
                    env: node.env().map(str::to_string),
                    cursor: Arc::new(tokio::sync::Mutex::new(Cursor {
                        after: 0,
                        pending: Vec::new(),
                    })),
                    nonblock: raw & libc::O_NONBLOCK != 0,
                };
                let fh = self.add_handle(view, open);
                reply.opened(fh, direct)
            }
            _ => {
                let handles = Arc::clone(&self.handles);
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                self.spawn(async move {
                    let changes = node
                        .env()
                        .and_then(|e| view.state_of(e))
                        .map_or(0, |(_, c)| c);
                    match render::content(&view, &node).await {
                        Ok(bytes) => {
                            let open = Open::Data {
                                node,
                                bytes,
                                changes,
                            };
                            lock(&handles).insert(fh, Arc::new(Mutex::new(Handle { view, open })));
                            reply.opened(FileHandle(fh), direct)
                        }
                        Err(e) => reply.error(e),
                    }
                });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let Some(handle) = self.handle(fh) else {
            return reply.error(Errno::EBADF);
        };
        let slice = move |bytes: &[u8]| -> Vec<u8> {
            let start = (offset as usize).min(bytes.len());
            let end = start.saturating_add(size as usize).min(bytes.len());
            bytes[start..end].to_vec()
        };
        let mut guard = lock(&handle);
        let view = Arc::clone(&guard.view);
        match &mut guard.open {
            Open::Data {
                node,
                bytes,
                changes,
            } => {
                // `state` re-read from the start (after poll, or `lseek 0`) is current.
                if offset == 0
                    && let Node::EnvFile(env, EnvFile::State) = node
                    && let Some((state, now)) = view.state_of(env)
                {
                    *bytes = format!("{state}\n").into_bytes();
                    *changes = now;
                }
                reply.data(&slice(bytes))
            }
            Open::Console(env) => {
                let env = env.clone();
                drop(guard);
                self.spawn(async move {
                    match view.console(&env).await {
                        Ok(bytes) => reply.data(&slice(&bytes)),
                        Err(e) => reply.error(errno_of(&e)),
                    }
                });
            }
            Open::Events {
                env,
                cursor,
                nonblock,
            } => {
                let (env, cursor, nonblock) = (env.clone(), Arc::clone(cursor), *nonblock);
                drop(guard);
                self.spawn(async move {
                    let mut newest = view.newest();
                    let mut cursor = cursor.lock().await;
                    loop {
                        if cursor.pending.is_empty() {
                            let (bytes, last) = view.events_after(cursor.after, env.as_deref());
                            cursor.after = last;
                            cursor.pending = bytes;
                        }
                        if !cursor.pending.is_empty() {
                            let n = cursor.pending.len().min(size as usize);
                            let out: Vec<u8> = cursor.pending.drain(..n).collect();
                            return reply.data(&out);
                        }
                        if nonblock {
                            return reply.error(Errno::EAGAIN);
                        }
                        // Blocks until the follower sees a new event.
                        if newest.changed().await.is_err() {
                            return reply.data(&[]);
                        }
                    }
                });
            }
            Open::EnvFile { env, path, chunk } => {
                let (env, path, chunk) = (env.clone(), path.clone(), Arc::clone(chunk));
                drop(guard);
                self.spawn(async move {
                    let mut chunk = chunk.lock().await;
                    let (start, bytes) = &*chunk;
                    let end = offset.saturating_add(size as u64);
                    let held = *start <= offset && start + bytes.len() as u64 >= end;
                    if !held {
                        let length = verse_api::MAX_FILE_CHUNK.max(size as u64);
                        match render::env_read(&view, &env, &path, offset, length).await {
                            Ok(bytes) => *chunk = (offset, bytes),
                            Err(e) => return reply.error(e),
                        }
                    }
                    let (start, bytes) = &*chunk;
                    let from = ((offset - start) as usize).min(bytes.len());
                    let to = from.saturating_add(size as usize).min(bytes.len());
                    reply.data(&bytes[from..to])
                });
            }
            Open::Write(_) | Open::Touch => reply.data(&[]),
            Open::Dir(_) => reply.error(Errno::EISDIR),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(handle) = self.handle(fh) else {
            return reply.error(Errno::EBADF);
        };
        let guard = lock(&handle);
        let view = Arc::clone(&guard.view);
        let node = match &guard.open {
            Open::Write(node) => node.clone(),
            Open::Touch => return reply.written(data.len() as u32),
            _ => return reply.error(Errno::EBADF),
        };
        drop(guard);
        let data = data.to_vec();
        self.spawn(async move {
            let key = ctl::error_key(&node).unwrap_or_default();
            match ctl::write(&view, &node, &data).await {
                Ok(()) => {
                    view.set_error(&key, None);
                    reply.written(data.len() as u32)
                }
                Err(refusal) => {
                    let text = refusal.text();
                    tracing::info!(
                        "refused: `{}` to {key}: {text}",
                        String::from_utf8_lossy(&data).trim()
                    );
                    view.set_error(&key, Some(text));
                    reply.error(refusal.errno())
                }
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _d: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.handles).remove(&fh.0);
        reply.ok();
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let Some(view) = self.view(req) else {
            return reply.error(Errno::EACCES);
        };
        let Some(node) = self.path(ino).and_then(|p| Node::parse(&p)) else {
            return reply.error(Errno::ENOENT);
        };
        if node.kind() != Kind::Dir && !matches!(node, Node::EnvPath(..)) {
            return reply.error(Errno::ENOTDIR);
        }
        let handles = Arc::clone(&self.handles);
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.spawn(async move {
            match render::list(&view, &node).await {
                Ok(entries) => {
                    let open = Open::Dir(entries);
                    lock(&handles).insert(fh, Arc::new(Mutex::new(Handle { view, open })));
                    reply.opened(FileHandle(fh), FopenFlags::empty())
                }
                Err(e) => reply.error(e),
            }
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let (Some(handle), Some(path)) = (self.handle(fh), self.path(ino)) else {
            return reply.error(Errno::EBADF);
        };
        let guard = lock(&handle);
        let Open::Dir(entries) = &guard.open else {
            return reply.error(Errno::ENOTDIR);
        };
        let parent = match path.rsplit_once('/') {
            Some((p, _)) => p.to_string(),
            None => String::new(),
        };
        let mut all: Vec<(INodeNo, FileType, String)> = vec![
            (ino, FileType::Directory, ".".into()),
            (self.ino(&parent), FileType::Directory, "..".into()),
        ];
        for (name, kind) in entries {
            all.push((
                self.ino(&child_path(&path, name)),
                file_type(*kind),
                name.clone(),
            ));
        }
        for (i, (ino, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(ino, (i + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.handles).remove(&fh.0);
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(self.cannot_make(parent));
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(self.cannot_make(parent));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(self.cannot_make(parent));
    }

    /// `rm snapshots/ID` deletes the snapshot (`verse snapshot rm`).
    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(view) = self.view(req) else {
            return reply.error(Errno::EACCES);
        };
        let (Some(parent), Some(name)) = (self.path(parent), name.to_str()) else {
            return reply.error(Errno::ENOENT);
        };
        let (env, id) = match Node::parse(&child_path(&parent, name)) {
            Some(Node::Snapshot(env, id)) => (env, id),
            Some(Node::EnvPath(..)) => return reply.error(Errno::EROFS),
            _ => return reply.error(Errno::EACCES),
        };
        self.spawn(async move {
            let result: Result<serde_json::Value, _> = view
                .client
                .delete(&format!("/v1/envs/{env}/snapshots/{id}"))
                .await;
            match result {
                Ok(_) => {
                    view.set_error(&env, None);
                    reply.ok()
                }
                Err(e) => {
                    view.set_error(&env, Some(crate::view::reason(&e)));
                    reply.error(errno_of(&e))
                }
            }
        });
    }

    /// `state` is readable and changes raise POLLPRI (as sysfs attributes
    /// do); `events` is readable when an event is waiting.
    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        ph: PollNotifier,
        _events: PollEvents,
        flags: PollFlags,
        reply: ReplyPoll,
    ) {
        let readable = PollEvents::POLLIN | PollEvents::POLLRDNORM;
        let Some(handle) = self.handle(fh) else {
            return reply.error(Errno::EBADF);
        };
        let guard = lock(&handle);
        let wants_notice = flags.contains(PollFlags::FUSE_POLL_SCHEDULE_NOTIFY);
        match &guard.open {
            Open::Data {
                node: Node::EnvFile(env, EnvFile::State),
                changes,
                ..
            } => {
                let now = guard.view.state_of(env).map_or(u64::MAX, |(_, c)| c);
                if now != *changes {
                    reply.poll(readable | PollEvents::POLLPRI | PollEvents::POLLERR)
                } else {
                    if wants_notice {
                        guard.view.add_poller(env, ph);
                    }
                    reply.poll(readable)
                }
            }
            Open::Events { env, cursor, .. } => {
                let waiting = cursor.try_lock().map_or(true, |c| {
                    !c.pending.is_empty()
                        || !guard
                            .view
                            .events_after(c.after, env.as_deref())
                            .0
                            .is_empty()
                });
                if waiting {
                    reply.poll(readable)
                } else {
                    if wants_notice {
                        guard.view.add_poller("", ph);
                    }
                    reply.poll(PollEvents::empty())
                }
            }
            _ => reply.poll(readable),
        }
    }
}
