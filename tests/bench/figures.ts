// Every figure the bench publishes, in order, with what it means for a user. The report
// generator prints these sentences; the harness test checks that a run has every name.

export interface Figure {
  name: string;
  family: string;
  means: string;
}

const F = (family: string, name: string, means: string): Figure => ({ name, family, means });

export const FIGURES: Figure[] = [
  F('scan', 'scan.hash', 'indexing new data: `vdfs scan` of a fresh tree (small files and one big file), cold, whole process timed, against `b3sum` hashing the same files.'),
  F('scan', 'scan.rescan', 'a rescan when nothing changed, against `find` listing the same metadata.'),
  F('fuse', 'fuse.seqread.cold', 'opening a big file for the first time: `dd bs=1M` through each mount after the kernel caches were dropped.'),
  F(
    'fuse',
    'fuse.seqread.warm.pagecache',
    'reading the same file again right away, with whatever each target leaves in the kernel page cache (vdfs keeps it across opens, rclone drops it): a real, user-visible difference, but a cache policy rather than a faster server.',
  ),
  F(
    'fuse',
    'fuse.seqread.warm.served',
    "the same warm read with the file's own page-cache pages dropped, so every byte goes through the FUSE server: the serving path compared on equal terms.",
  ),
  F(
    'fuse',
    'fuse.randread.cold',
    'databases and random-access tools on a file nobody read yet: fio 4 KiB random reads, queue depth 1, buffered, after drop_caches for every target.',
  ),
  F('fuse', 'fuse.randread.warm', 'the same random reads after the file was read whole through the same target.'),
  F(
    'fuse',
    'fuse.randread.served',
    "the same random reads with O_DIRECT, the server's own copy warm: every 4 KiB read is one round trip through the FUSE binding (issue #15's ≥ 40,000 IOPS and ≥ 2.5× rclone).",
  ),
  F(
    'fuse',
    'fuse.randread.passthrough',
    "the same O_DIRECT random reads on a mount made with `--passthrough` (root, Linux ≥ 6.9): the kernel reads the backing file itself, against the same fio on that file (issue #15's ≥ 0.8×).",
  ),
  F(
    'fuse',
    'fuse.stat.cold',
    "`find -printf '%s %T@'` over a tree after drop_caches: backup tools and file managers walking a tree for the first time. Every mount has the same 10 s attribute and entry timeouts.",
  ),
  F('fuse', 'fuse.stat.warm', 'the same walk again right away (second of two runs), same timeouts for every mount.'),
  F('fuse', 'fuse.readdir', '`ls -l` of a 10,000-entry directory after drop_caches: opening a large folder.'),
  F(
    'fuse',
    'fuse.write',
    'saving a big file: `dd conv=fsync` into a new file, the clock stopped when every byte is in the backing folder (rclone `full` uploads from its cache some seconds later).',
  ),
  F('fuse', 'fuse.write.accepted', 'the same writes, the clock stopped when `dd` returned: when the application thinks it is done.'),
  F('fuse', 'fuse.untar', 'unpacking a source tarball of 20,000 small files into the mount, until every file is in the backing folder.'),
  F(
    'fuse',
    'fuse.rsync',
    'copying 2,000 small files in with `rsync -a` (a temporary name, mode and times set by name, a rename per file), until every file is in the backing folder.',
  ),
  F('fuse', 'fuse.gitstatus.cold', '`git status` in a 10,000-file repository inside the mount, after drop_caches.'),
  F('fuse', 'fuse.gitstatus.warm', '`git status` again right away.'),
  F('fuse', 'fuse.parallel', 'four programs reading four different big files at once, cold: total throughput.'),
  F(
    'cache',
    'cache.reread',
    "content of a remote or offline source read again from the vdfs block cache (kernel caches dropped), against rclone's VFS cache and a cold local read.",
  ),
  F('webdav', 'webdav.get', 'downloading a big file through the WebDAV share on loopback, warm.'),
  F('webdav', 'webdav.range', 'video players and apps seeking: a 1 MiB range GET from the middle of a big file, warm, one keep-alive connection.'),
  F('webdav', 'webdav.propfind', 'listing a 10,000-entry folder in a WebDAV client (PROPFIND Depth 1, allprop), warm.'),
  F('webdav', 'webdav.put', "uploading a big file, at equal durability: the server's answer, then an fsync of the file where it landed, for every target."),
  F('webdav', 'webdav.put.accepted', "the same uploads, the clock stopped at the server's answer (vdfs fsyncs before answering, rclone and Apache do not)."),
  F(
    'webdav',
    'webdav.browse.cold',
    'a file manager opening a folder of 1,000 photos for the first time: PROPFIND Depth 1, then the first 64 KiB of every file over 6 parallel connections, after drop_caches.',
  ),
  F('webdav', 'webdav.browse.warm', 'the same folder opened again right away.'),
  F(
    's3',
    's3.seqread.cold',
    'reading an S3 object through the mount with an empty block cache, against the AWS SDK streaming it from the same server; caches dropped before every target.',
  ),
  F('s3', 's3.ttfb', 'time to the first 4 KiB at a random offset of an S3 object not in the block cache, against one ranged GetObject.'),
  F(
    's3',
    's3.smallfiles',
    'opening a folder of photos kept in S3: 100 KiB files read whole by 8 parallel readers through the mount with an empty block cache, against the AWS SDK doing the same with 8 concurrent GetObjects.',
  ),
  F('s3', 's3.reread.cached', 'the S3 object read again with the server stopped: every byte from the block cache, against a cold local read.'),
  F(
    's3',
    'daemon.rss.s3',
    "the daemon's peak memory while it streams two big S3 objects at once, one through the FUSE mount and one through its WebDAV share (the issue's 10 GB + 4 GiB, scaled 640 + 256 MiB in a quick run), against a Node process streaming both with the AWS SDK.",
  ),
  F(
    'gdrive',
    'gdrive.seqread.cold',
    'reading a Google Drive file through the mount with an empty block cache, against the official client (@googleapis/drive) streaming it from the same server (a Drive-protocol server on loopback: there is no Internet here).',
  ),
  F('gdrive', 'gdrive.ttfb', 'time to the first 4 KiB at a random offset of a Drive file not in the block cache, against one ranged files.get.'),
  F(
    'peer',
    'peer.fetch',
    "what a user on node B gets reading a file of paired node A: `dd` through B's FUSE mount (a fresh daemon, empty block cache), every block fetched over mutual TLS and verified, against a plain TLS stream and A's raw blob endpoint.",
  ),
  F('peer', 'peer.replicate', 'adding a peer location of many entries (snapshot and apply).'),
  F('rss', 'daemon.rss', 'memory of a fresh FUSE server after one fixed workload (big read, tree walk, big listing, big write), the same for every target.'),
  F('rss', 'daemon.rss.webdav', 'memory of a fresh WebDAV server after one fixed workload (big GET, big PROPFIND, big PUT), the same for every target.'),
];

export const FIGURE_NAMES = FIGURES.map((f) => f.name);
