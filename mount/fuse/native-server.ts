import type { Logger } from 'pino';
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { FsError } from '../../core/fs-error';
import type { KernelVfs, NotedStat } from '../vfs/types';
import { toErrno } from './errno';
import { InodeTable } from './inode-table';
import { Invalidator } from './invalidator';
import { DEFAULT_MAX_NODES, NodeBudget } from './node-budget';
import type { NativeFuse, NativeSession } from '../../core/native-addon';
import { HANDLERS } from './native-ops';
import { dropBlockFile, nativeBlocksRead } from './block-files';
import type { OpContext } from './op-context';
import { fullGc } from '../../core/idle-gc';
import { getHeapStatistics } from 'node:v8';
import { recycleReply } from './reply-pool';
import { ATTR_OUT, IN_HEADER, INIT, INIT2, NOTIFY, OP, errorReply, notedStat, notification, parseHeader, replyBuffer, u64, w64, writeAttr, writeValid } from './proto';

export interface ServerOptions {
  /** Seconds the kernel caches names and attributes. */
  entryTtl: number;
  attrTtl: number;
  /** Seconds the kernel remembers that a name does not exist. */
  negativeTtl: number;
  /** Use kernel passthrough for read-only opens of local files when the kernel and privileges allow. */
  passthrough: boolean;
  /** Nodes the table keeps before it asks the kernel to drop old names (NodeBudget); default DEFAULT_MAX_NODES. */
  maxNodes?: number;
  /** FUSE over io_uring when the kernel offers it (default true; false: always /dev/fuse). */
  uring?: boolean;
  log: Logger;
}

/** The largest READ/WRITE the kernel may send (max_pages, max_write), and the read-ahead asked for. */
export const MAX_IO = 1 << 20;
/** Not a kernel opcode: the addon's note that it wrote a registered handle natively (no reply). */
const NATIVE_WROTE = 0x40000001;
/** Notes that the addon answered a SETATTR (owner, mode, times) or a FLUSH of a local file open for writing (native-meta.c). */
const NATIVE_SETATTR = 0x40000002;
const NATIVE_FLUSHED = 0x40000003;
/** Note from the addon: its READs of a handle's block files reached the block JS asked about (blockWake). */
const NATIVE_BLOCKS_READ = 0x40000004;
const EINTR = 4;
/** The longest ctx.quiet waits for the other requests to be answered (a READ stalled on a remote must not hold a RELEASE back). */
const QUIET_MAX_MS = 20;
/** After this many requests, the first RECLAIM_IDLE_MS without any give the burst's memory back (see reclaim). */
const RECLAIM_AFTER = 2000;
const RECLAIM_IDLE_MS = 2000;
/**
 * Within a long burst (a walk of a million names) the heap is checked every BURST_GC_EVERY
 * requests, and fully collected once it grew by BURST_GC_GROWTH since the last collection:
 * left alone, V8 let a walk's garbage reach 3-4 times the live heap (RSS 420 MB for ~80 MB live).
 */
const BURST_GC_EVERY = 4096;
const BURST_GC_GROWTH = 48 * 1024 ** 2;
/** Ops without side effects: an INTERRUPT may answer them EINTR while the VFS still works on them. */
const INTERRUPTIBLE = new Set<number>([OP.LOOKUP, OP.GETATTR, OP.READ, OP.OPENDIR, OP.READDIR, OP.READDIRPLUS, OP.READLINK, OP.GETXATTR, OP.LISTXATTR, OP.STATFS]);

const OP_NAMES = new Map<number, string>(Object.entries(OP).map(([k, v]) => [v, k.toLowerCase()]));

/** The addon's counters as flat diagnostics: `op.lookup` requests seen, `native.getxattr` of them answered in the addon. */
function flatStats(st: ReturnType<NativeFuse['stats']>): Record<string, number> {
  const { opsSeen, opsNative, ringQueueRequests, ...rest } = st;
  const out: Record<string, number> = { ...rest };
  ringQueueRequests?.forEach((n, cpu) => (out[`ring.cpu${cpu}`] = n));
  opsSeen.forEach((n, op) => {
    if (n > 0) out[`op.${OP_NAMES.get(op) ?? op}`] = n;
  });
  opsNative.forEach((n, op) => {
    if (n > 0) out[`native.${OP_NAMES.get(op) ?? op}`] = n;
  });
  return out;
}

/**
 * Answers kernel FUSE requests handed over by the addon's reader threads: INIT, the node
 * table (FORGET), INTERRUPT, and every other op through HANDLERS over the path-based VFS.
 * Every request is answered exactly once whatever happens; nothing thrown here escapes.
 */
export class FuseServer {
  readonly inodes = new InodeTable();
  readonly ctx: OpContext;
  private session?: NativeSession;
  private invalidator?: Invalidator;
  /** Nodes whose next GETATTR the addon answers (primeAttr), until JS sees another request about them. */
  private readonly primed = new Set<number>();
  /** Folders whose attributes are being read to prime them: requests about them seen meanwhile, and how many primings are pending. */
  private readonly priming = new Map<number, { seen: number; pending: number }>();
  private budget?: NodeBudget;
  /** unique -> answered flag of requests in progress, for INTERRUPT. */
  private readonly inflight = new Map<number, { op: number; node: number; answered: boolean }>();
  /** Requests in `inflight` waiting in ctx.quiet (not being handled), and those waiting for the others to be answered. */
  private quietWaiting = 0;
  private readonly quietQueue: (() => void)[] = [];
  /** Kernel passthrough negotiated at INIT (root, Linux >= 6.9, not disabled). */
  private passthrough = false;
  /** FUSE over io_uring negotiated at INIT (prepareUring). */
  private uring = false;
  private passthroughOpens = 0;
  private sinceReclaim = 0;
  private requests = 0;
  /** Microseconds from each request reaching JS to its reply, summed by opcode (diagnostics `js.create`...). */
  private readonly jsMicros = new Map<number, number>();
  /** Heap in use after the last full collection (burstGc). */
  private liveHeap = getHeapStatistics().used_heap_size;
  private lastRequest = 0;
  private reclaimTimer?: NodeJS.Timeout;
  private initDone!: () => void;
  readonly initialized = new Promise<void>((res) => (this.initDone = res));
  private closedDone!: () => void;
  /** Resolves when the kernel ends the connection (unmounted from outside, or aborted). */
  readonly closed = new Promise<void>((res) => (this.closedDone = res));

  constructor(
    private readonly addon: NativeFuse,
    vfs: KernelVfs,
    private readonly opts: ServerOptions,
  ) {
    this.ctx = {
      vfs,
      inodes: this.inodes,
      entryTtl: opts.entryTtl,
      attrTtl: opts.attrTtl,
      negativeTtl: opts.negativeTtl,
      dirs: new Map(),
      nextDir: 1,
      changeSeq: 0,
      quiet: (ms) => this.quiet(ms),
      registerFd: (fh, fd, writable, nodeid) => {
        if (this.session) addon.registerFd(this.session, fh, fd, writable, nodeid ?? 0);
      },
      unregisterFd: (fh) => {
        if (this.session) addon.unregisterFd(this.session, fh);
      },
      registerBlocks: (fh, blockSize, size) => {
        if (this.session) addon.registerBlocks(this.session, fh, blockSize, size);
      },
      setBlockFile: (fh, index, path) => {
        if (this.session) addon.setBlockFile(this.session, fh, index, path);
      },
      unregisterBlocks: (fh) => {
        if (this.session) addon.unregisterBlocks(this.session, fh);
      },
      blockWake: (fh, index) => (this.session ? addon.blockWake(this.session, fh, index) : -1),
      primeStart: (nodeid) => {
        let w = this.priming.get(nodeid);
        if (w) w.pending++;
        else this.priming.set(nodeid, (w = { seen: 0, pending: 1 }));
        // Another request about the folder still being handled (begun before this CREATE) may change it after its attributes are read.
        let about = 0;
        for (const r of this.inflight.values()) if (r.node === nodeid) about++;
        return about > 1 ? -1 : w.seen;
      },
      primeAttr: (nodeid, token, a) => {
        const w = this.priming.get(nodeid);
        if (!w) return;
        if (--w.pending === 0) this.priming.delete(nodeid);
        if (!this.session || !a || w.seen !== token) return;
        const out = Buffer.alloc(ATTR_OUT);
        writeValid(out, 0, 8, this.ctx.attrTtl);
        writeAttr(out, 16, a);
        addon.primeAttr(this.session, nodeid, out);
        this.primed.add(nodeid);
        // The addon keeps PRIMED_SLOTS; an old entry here only costs a call when its node is seen again.
        if (this.primed.size > 256) this.unprime(this.primed.values().next().value as number);
      },
      freshDir: (nodeid, ms) => this.session && addon.freshDir?.(this.session, nodeid, Math.max(0, Math.min(ms, 0xffffffff))),
      adoptDir: (fh) => this.session && addon.adoptDir?.(this.session, fh),
      blockHandles: new Map(),
      blockUsers: new Map(),
      openBacking: (fd) => this.openBacking(fd),
      closeBacking: (id) => {
        if (this.session) addon.backingClose(this.session, id);
      },
      openFiles: new Map(),
      writers: new Map(),
      stats: () => ({
        backend: 'native',
        nodes: this.inodes.size,
        maxNodes: this.budget?.max ?? 0,
        namesDropped: this.budget?.asked ?? 0,
        openDirs: this.ctx.dirs.size,
        passthrough: this.passthrough ? 1 : 0,
        passthroughOpens: this.passthroughOpens,
        uring: this.uring ? 1 : 0,
        ...this.invalidator?.stats(),
        changes: this.ctx.changeSeq,
        ...(this.session ? flatStats(addon.stats(this.session)) : {}),
        ...Object.fromEntries([...this.jsMicros].map(([op, us]) => [`js.${OP_NAMES.get(op) ?? op}`, Math.round(us)])),
      }),
    };
  }

  start(fd: number, threads: number): NativeSession {
    this.session = this.addon.start(fd, threads, (req) => this.onRequest(req));
    this.addon.setAttrTtl?.(this.session, this.ctx.attrTtl);
    this.ctx.vfs.onChange(() => {
      this.ctx.changeSeq++;
      this.dirsChanged();
    });
    this.ctx.vfs.onBlockFileRemoved((file) => dropBlockFile(this.ctx, file));
    this.invalidator = new Invalidator(this.ctx.vfs, this.inodes, this);
    this.budget = new NodeBudget(this.inodes, this, this.opts.maxNodes ?? DEFAULT_MAX_NODES);
    return this.session;
  }

  /** No more notifications (the session is about to stop). */
  stop(): void {
    this.invalidator?.stop();
    if (this.reclaimTimer) clearTimeout(this.reclaimTimer);
  }

  /** `n` requests' (or forgotten nodes') worth of work: after RECLAIM_AFTER of it, the next idle moment reclaims. */
  private noteWork(n: number): void {
    this.sinceReclaim += n;
    if (this.sinceReclaim < RECLAIM_AFTER) return;
    this.lastRequest = Date.now();
    if (!this.reclaimTimer) this.armReclaim(RECLAIM_IDLE_MS);
  }

  private armReclaim(ms: number): void {
    this.reclaimTimer = setTimeout(() => {
      const idle = Date.now() - this.lastRequest;
      if (idle < RECLAIM_IDLE_MS) return this.armReclaim(RECLAIM_IDLE_MS - idle);
      this.reclaimTimer = undefined;
      this.reclaim();
    }, ms).unref();
  }

  /**
   * A burst of requests is over (a walk, a listing of a big folder): one full garbage
   * collection and the allocator's free pages back to the system, so that an idle daemon does
   * not keep the garbage of its last walk resident (idle RSS; docs/fuse.md).
   */
  private reclaim(): void {
    this.sinceReclaim = 0;
    const before = process.memoryUsage.rss();
    this.ctx.vfs.shrinkCaches();
    this.inodes.negatives.prune();
    fullGc(true);
    this.liveHeap = getHeapStatistics().used_heap_size;
    this.addon.trimMemory?.();
    this.opts.log.debug({ before, after: process.memoryUsage.rss() }, 'memory of the last burst of FUSE requests given back');
  }

  private burstGc(): void {
    if (getHeapStatistics().used_heap_size < this.liveHeap + BURST_GC_GROWTH) return;
    fullGc();
    this.liveHeap = getHeapStatistics().used_heap_size;
  }

  /** No folder's OPENDIR is answered natively until JS marks it fresh again (ctx.freshDir). */
  private dirsChanged(): void {
    if (this.session) this.addon.dirsChanged?.(this.session);
  }

  /** See OpContext.quiet. */
  private quiet(ms: number): Promise<void> {
    this.quietWaiting++;
    return new Promise<void>((resolve) => {
      let done = false;
      const go = () => {
        if (done) return;
        done = true;
        this.quietWaiting--;
        resolve();
      };
      setTimeout(() => {
        if (this.inflight.size <= this.quietWaiting) return go();
        this.quietQueue.push(go);
        setTimeout(go, QUIET_MAX_MS);
      }, ms);
    });
  }

  /** Writes a reply; never throws (an exception here would escape a promise callback). */
  private send(buf: Buffer): void {
    if (!this.session) return;
    try {
      const r = this.addon.reply(this.session, buf);
      if (r < 0 && r !== -2 && r !== -9) this.opts.log.debug({ errno: -r }, 'writing a FUSE reply failed');
    } catch (err) {
      this.opts.log.error({ err }, 'writing a FUSE reply threw');
    }
  }

  /** Called by the addon for each request; null when the kernel closed the connection. */
  onRequest(req: Buffer | null): void {
    if (req === null) {
      this.closedDone();
      return;
    }
    this.noteWork(1);
    if (++this.requests % BURST_GC_EVERY === 0) this.burstGc();
    try {
      this.dispatch(req);
      this.budget?.check();
    } catch (err) {
      this.opts.log.error({ err }, 'FUSE request could not be handled');
      try {
        this.send(errorReply(req, 5));
      } catch {
        /* nothing more to do */
      }
    }
  }

  private dispatch(req: Buffer): void {
    const h = parseHeader(req);
    if (this.primed.size > 0 && this.primed.has(h.nodeid)) this.unprime(h.nodeid);
    if (this.priming.size > 0) {
      const w = this.priming.get(h.nodeid);
      if (w) w.seen++;
    }
    switch (h.opcode) {
      case OP.INIT:
        return this.init(req);
      case OP.FORGET:
        return this.inodes.forget(h.nodeid, u64(req, IN_HEADER));
      case OP.BATCH_FORGET: {
        const count = req.readUInt32LE(IN_HEADER);
        for (let i = 0, off = IN_HEADER + 8; i < count && off + 16 <= req.length; i++, off += 16) this.inodes.forget(u64(req, off), u64(req, off + 8));
        // drop_caches after a walk forgets ~100k nodes in a few hundred requests: their memory is given back too.
        this.noteWork(count);
        return;
      }
      case OP.INTERRUPT:
        return this.interrupt(u64(req, IN_HEADER));
      case NATIVE_WROTE:
        try {
          this.ctx.vfs.noteWritten(u64(req, IN_HEADER), u64(req, IN_HEADER + 8), req.readUInt32LE(IN_HEADER + 16));
        } catch (err) {
          this.opts.log.error({ err }, 'bookkeeping of a native write failed');
        }
        return;
      case NATIVE_SETATTR:
        return this.nativeNote(h.opcode, u64(req, IN_HEADER + 8), notedStat(req), h.nodeid);
      case NATIVE_FLUSHED:
        return this.nativeNote(h.opcode, u64(req, IN_HEADER));
      case NATIVE_BLOCKS_READ:
        return nativeBlocksRead(this.ctx, u64(req, IN_HEADER), u64(req, IN_HEADER + 8));
      case OP.DESTROY:
        return this.send(replyBuffer(req, 0));
    }
    // A folder removed or replaced (RENAME over it) is opened by JS again, which answers ENOENT.
    if (h.opcode === OP.RMDIR || h.opcode === OP.RENAME || h.opcode === OP.RENAME2) this.dirsChanged();
    const handler = HANDLERS[h.opcode];
    if (!handler) return this.send(errorReply(req, 38)); // ENOSYS: the kernel stops asking for most ops
    const state = { op: h.opcode, node: h.nodeid, answered: false };
    this.inflight.set(h.unique, state);
    const start = performance.now();
    const answer = (buf: Buffer | null) => {
      this.inflight.delete(h.unique);
      // The last request being handled is answered: what waits in ctx.quiet goes now.
      if (this.quietQueue.length > 0 && this.inflight.size <= this.quietWaiting) for (const go of this.quietQueue.splice(0)) go();
      if (state.answered) return;
      state.answered = true;
      this.jsMicros.set(h.opcode, (this.jsMicros.get(h.opcode) ?? 0) + (performance.now() - start) * 1000);
      if (buf) {
        this.send(buf);
        recycleReply(buf); // written (synchronously): a pooled READ reply is free again
      }
    };
    handler(this.ctx, h, req).then(answer, (err: unknown) => {
      if (!(err instanceof FsError)) this.opts.log.error({ err, op: h.opcode }, 'unexpected error in FUSE op');
      else if (err.code === 'EIO' || err.code === 'EHOSTDOWN') this.opts.log.warn({ op: h.opcode, code: err.code }, err.message);
      try {
        answer(errorReply(req, toErrno(err)));
      } catch (e) {
        this.opts.log.error({ err: e }, 'FUSE error reply failed');
      }
    });
  }

  /** Bookkeeping after the addon answered a SETATTR or FLUSH of handle `fh` itself; never throws. */
  private nativeNote(op: number, fh: number, st?: NotedStat, nodeid = 0): void {
    try {
      if (op !== NATIVE_SETATTR) return this.ctx.vfs.flushed(fh);
      try {
        this.ctx.vfs.noteSetattr(fh, st);
      } catch (err) {
        if (!(err instanceof FsError) || err.code !== 'EBADF') throw err;
        // Answered through a writer's descriptor while its RELEASE, read by another reader
        // thread (FUSE over io_uring has one per CPU), was handled first: by the node's name.
        const node = this.ctx.inodes.find(nodeid);
        if (node && !node.unlinked) this.ctx.vfs.noteChanged(this.ctx.inodes.pathOf(node));
        return;
      }
      // The kernel now holds the owner and mode the addon answered. The invalidator's sweep
      // compares the index with `last`: left as it was, every file `rsync -a` fchmods (0600 at
      // its creation) looked changed to the next sweep, which dropped them all from the kernel.
      // Sizes and times set natively (writers only) are left as they were: the sweep then
      // invalidates that node, which costs a request and is never wrong.
      const node = this.ctx.openFiles.get(fh)?.node;
      if (node?.last && st) node.last = { ...node.last, mode: Number(st.mode) & 0o7777, uid: Number(st.uid), gid: Number(st.gid) };
    } catch (err) {
      this.opts.log.error({ err, op }, 'bookkeeping of a natively answered request failed');
    }
  }

  private openBacking(fd: number): { id: number; writable: boolean } | undefined {
    if (!this.passthrough || !this.session) return undefined;
    // The backing file is opened for reading and writing when the file allows it (not a
    // read-only filesystem, not a running program): every later open of the node, a writer's
    // too, must share it (the kernel allows one backing file per inode in passthrough mode).
    // Through /proc/self/fd: the same file as `fd`, with no path walk.
    let rw: number | undefined;
    try {
      rw = openSync(`/proc/self/fd/${fd}`, fsConstants.O_RDWR);
    } catch {
      /* read-only backing: a writer then waits for the readers (EBUSY) */
    }
    const id = this.addon.backingOpen(this.session, rw ?? fd);
    if (rw !== undefined) closeSync(rw); // the kernel holds the file from here
    if (id < 0) {
      this.opts.log.debug({ errno: -id }, 'passthrough refused for this file; reading it natively');
      return undefined;
    }
    this.passthroughOpens++;
    return { id, writable: rw !== undefined };
  }

  private interrupt(unique: number): void {
    const state = this.inflight.get(unique);
    if (!state || state.answered || !INTERRUPTIBLE.has(state.op)) return;
    state.answered = true;
    this.inflight.delete(unique);
    const out = Buffer.alloc(16);
    out.writeUInt32LE(16, 0);
    out.writeInt32LE(-EINTR, 4);
    w64(out, 8, unique);
    this.send(out);
  }

  private init(req: Buffer): void {
    const major = req.readUInt32LE(IN_HEADER);
    const minor = req.readUInt32LE(IN_HEADER + 4);
    const maxReadahead = req.readUInt32LE(IN_HEADER + 8);
    const kflags = req.readUInt32LE(IN_HEADER + 12);
    const kflags2 = kflags & INIT.INIT_EXT ? req.readUInt32LE(IN_HEADER + 16) : 0;
    // Passthrough needs protocol 7.40 (where open_out carries the backing id) and CAP_SYS_ADMIN.
    this.passthrough = this.opts.passthrough && minor >= 40 && (kflags2 & INIT2.PASSTHROUGH) !== 0 && process.getuid?.() === 0;
    const out = replyBuffer(req, 64);
    out.fill(0, 16);
    out.writeUInt32LE(7, 16);
    out.writeUInt32LE(Math.min(minor, this.passthrough ? 40 : 38), 20);
    if (major !== 7) {
      this.opts.log.error({ major }, 'kernel FUSE protocol is not 7.x');
      this.send(errorReply(req, 71)); // EPROTO
      return;
    }
    const want =
      INIT.ASYNC_READ |
      INIT.BIG_WRITES |
      INIT.AUTO_INVAL_DATA |
      // Always READDIRPLUS, not READDIRPLUS_AUTO: with AUTO the kernel asks plus only for a
      // directory's first chunk (or after lookups in it), so `find` over 1,000-entry folders sent
      // a LOOKUP to JS for two names in three (22k per 100k files), each dearer than the listing.
      INIT.DO_READDIRPLUS |
      // Not ASYNC_DIO: a synchronous O_DIRECT read then waits uninterruptibly and a signal cannot stop it.
      INIT.PARALLEL_DIROPS |
      INIT.MAX_PAGES |
      INIT.CACHE_SYMLINKS;
    out.writeUInt32LE(Math.min(maxReadahead, MAX_IO), 24);
    this.uring = this.prepareUring(kflags2);
    const flags2 = (this.passthrough ? INIT2.PASSTHROUGH : 0) | (this.uring ? INIT2.OVER_IO_URING : 0);
    out.writeUInt32LE(((kflags & want) | (flags2 ? INIT.INIT_EXT : 0)) >>> 0, 28);
    out.writeUInt32LE(flags2 >>> 0, 48);
    if (this.passthrough) out.writeUInt32LE(1, 52); // max_stack_depth: backing files on ordinary filesystems
    out.writeUInt16LE(64, 32); // max_background
    out.writeUInt16LE(48, 34); // congestion_threshold
    out.writeUInt32LE(MAX_IO, 36); // max_write
    out.writeUInt32LE(1, 40); // time_gran (ns)
    out.writeUInt16LE(MAX_IO / 4096, 44); // max_pages
    this.send(out);
    // The rings' entries can only be registered once the kernel has processed INIT's reply.
    if (this.uring && this.session && this.addon.uringStart) {
      const rc = this.addon.uringStart(this.session);
      // The kernel would hold every request until all queues register: end the mount (the
      // mount's `closed` unmounts and aborts the connection) rather than hang every reader.
      if (rc < 0) {
        this.opts.log.error({ errno: -rc }, 'FUSE over io_uring: the queue threads did not start; ending the mount');
        this.closedDone();
      }
    }
    this.opts.log.info({ minor, passthrough: this.passthrough, uring: this.uring }, 'FUSE connection initialised');
    this.initDone();
  }

  /**
   * FUSE over io_uring when the kernel offers it (Linux >= 6.14 with the fuse module's
   * enable_uring on) and it is not turned off: a ring per CPU, set up before INIT is answered
   * (the kernel holds every request from then until all queues are registered). See docs/fuse.md.
   */
  private prepareUring(kflags2: number): boolean {
    if (this.opts.uring === false || (kflags2 & INIT2.OVER_IO_URING) === 0 || !this.session || !this.addon.uringPrepare) return false;
    const rc = this.addon.uringPrepare(this.session);
    if (rc < 0) this.opts.log.warn({ errno: -rc }, 'FUSE over io_uring could not be set up; requests go through /dev/fuse');
    return rc > 0;
  }

  /** The addon no longer answers the node's next GETATTR (primeAttr): something else may have changed it. */
  private unprime(nodeid: number): void {
    this.primed.delete(nodeid);
    if (this.session) this.addon.primeAttr(this.session, nodeid, null);
  }

  /** Drops the kernel's cached attributes and pages of a node (no-op when the kernel has none). */
  invalidateNode(nodeid: number): void {
    if (this.primed.has(nodeid)) this.unprime(nodeid);
    if (!this.session) return;
    const p = Buffer.alloc(24);
    w64(p, 0, nodeid);
    p.writeBigInt64LE(0n, 8);
    p.writeBigInt64LE(-1n, 16);
    this.addon.notify(this.session, notification(NOTIFY.INVAL_INODE, p));
  }

  /** Drops the kernel's cached name `name` in directory node `parent`. */
  invalidateEntry(parent: number, name: string): void {
    if (!this.session) return;
    const nb = Buffer.from(name);
    const p = Buffer.alloc(16 + nb.length + 1);
    w64(p, 0, parent);
    p.writeUInt32LE(nb.length, 8);
    nb.copy(p, 16);
    this.addon.notify(this.session, notification(NOTIFY.INVAL_ENTRY, p));
  }
}
