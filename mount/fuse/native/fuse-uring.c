/*
 * FUSE over io_uring (kernel protocol 7.42, Linux >= 6.14). The kernel keeps one queue per
 * possible CPU and puts a request on the queue of the CPU its caller runs on; each queue here
 * has a thread pinned to that CPU with its own io_uring, so the thread the kernel wakes for a
 * request runs where the caller just went to sleep. Over /dev/fuse, a QD1 reader on one vCPU
 * and the daemon's reader on the other cost this VM a ~60 µs cross-vCPU wake-up per request.
 *
 * Protocol (include/uapi/linux/fuse.h, fs/fuse/dev_uring.c): every entry registers a header
 * buffer (struct u_req_header) and a payload buffer of at least the connection's max payload
 * (1 MiB here) with FUSE_IO_URING_CMD_REGISTER; the command completes when the kernel put a
 * request in them. The reply goes into the same buffers and is committed with
 * FUSE_IO_URING_CMD_COMMIT_AND_FETCH, which also waits for the entry's next request. The
 * kernel only routes requests to the rings once every queue has an entry registered; until
 * then, and always for INIT, FORGET, INTERRUPT and notifications, /dev/fuse is used as before.
 *
 * An io_uring command's later completions run as task work of the thread that submitted it,
 * so only a queue's own thread submits to its ring: a reply from another thread (JS) is
 * copied into the entry and queued to that thread, woken by an eventfd polled on its ring.
 * Raw syscalls (no liburing): the few calls needed are below; the ABI structs are defined
 * here because Debian 12's headers predate them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/fuse.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>
#include "fuse-uring.h"
#include "posix-calls.h"

#define ENTS_PER_QUEUE 32
/* The kernel refuses a payload buffer smaller than max(max_write, max_pages * 4096): both are 1 MiB (native-server.ts INIT). */
#define PAYLOAD_MAX (1024 * 1024)
/* Room before the payload where the request is laid out as /dev/fuse gives it (header + op header <= 40 + 128). */
#define HEADROOM 4096
#define POLL_TAG 1ull
#define MAX_QUEUES 1024
/*
 * After a request, a queue thread in a burst (its last request less than BURST_NS ago) waits up
 * to SPIN_NS for the next one yielding the CPU instead of sleeping: a vCPU that halts takes ~60 us
 * to wake on this kind of VM, and at QD1 the caller's next request often comes on the other CPU
 * (the scheduler wakes it where a CPU is idle). sched_yield enters the kernel, which runs the
 * ring's task work (a request arriving), and lets anything else runnable here go first.
 */
#define SPIN_NS 50000ull
#define BURST_NS 1000000ull

struct u_ent_in_out {
  uint64_t flags;
  uint64_t commit_id;
  uint32_t payload_sz;
  uint32_t padding;
  uint64_t reserved;
};
struct u_req_header {
  char in_out[128]; /* fuse_in_header from the kernel, fuse_out_header back */
  char op_in[128];  /* the op's fixed header (fuse_read_in, ...): the request's first argument */
  struct u_ent_in_out ent;
};
struct u_cmd_req {
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};
enum { CMD_REGISTER = 1, CMD_COMMIT_AND_FETCH = 2 };

struct uring_queue;

struct uring_ent {
  struct u_req_header *hdr;
  char *buf;     /* HEADROOM + PAYLOAD_MAX, mapped lazily */
  char *payload; /* buf + HEADROOM */
  struct iovec iov[2];
  struct uring_queue *q;
  uint64_t commit_id;
  uint64_t js_unique; /* the request JS holds this entry for; 0 when none (under q->mu) */
  int replied;        /* answered on the queue thread (vdfs_send_reply) */
  int registered;     /* the kernel has taken its REGISTER */
  int committed;      /* committed early by vdfs_reply_now */
  struct uring_ent *next;
};

struct uring_queue {
  struct fuse_uring *u;
  int qid;
  int rfd, efd;
  unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
  char *sqes;
  struct io_uring_cqe *cqes;
  void *sq_map, *cq_map, *sqe_map;
  size_t sq_len, cq_len, sqe_len;
  unsigned to_submit;
  pthread_t thread;
  int started;
  pthread_mutex_t mu;
  struct uring_ent *commits; /* replied from other threads, to be committed by this thread */
  int yielding;              /* in spin_for_next, which also looks for commits: a reply needs no wake-up (under mu) */
  struct u_req_header *hdrs;
  atomic_ullong requests;
  uint64_t last_request_ns;
  atomic_ullong spin_hits;
  atomic_ullong quiet_replies; /* JS replies queued while the thread yielded: no eventfd write */
  char *bufs; /* every entry's buf, one mapping of bufs_len (map_huge) */
  size_t bufs_len;
  struct uring_ent ents[ENTS_PER_QUEUE];
};

struct fuse_uring {
  int devfd;
  uring_handler handler;
  void *arg;
  int nq;
  atomic_int stopping;
  atomic_ullong requests;
  struct uring_queue *qs;
};

/* The ring entry the calling queue thread is answering, if any (vdfs_send_reply). */
static __thread struct uring_ent *cur_ent;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cq_empty(struct uring_queue *q) { return *q->cq_head == __atomic_load_n(q->cq_tail, __ATOMIC_ACQUIRE); }

static int commits_waiting(struct uring_queue *q) { return __atomic_load_n(&q->commits, __ATOMIC_ACQUIRE) != NULL; }

static void set_yielding(struct uring_queue *q, int on) {
  pthread_mutex_lock(&q->mu);
  q->yielding = on;
  pthread_mutex_unlock(&q->mu);
}

/*
 * In a burst: submit what is ready, then yield for up to SPIN_NS while the completion queue is
 * empty and no reply from JS is queued. A reply JS queues meanwhile does not write the eventfd
 * (uring_reply): on this kind of VM that write, which wakes this thread through its ring, was
 * the largest single cost of JS's reply (~10 % of the JS thread in `rsync -a` into the mount).
 * The caller takes the queued commits before it sleeps.
 */
static void spin_for_next(struct uring_queue *q) {
  uint64_t t = now_ns();
  if (!q->last_request_ns || t - q->last_request_ns > BURST_NS) return;
  if (q->to_submit) {
    int rc = (int)syscall(__NR_io_uring_enter, q->rfd, q->to_submit, 0, 0, NULL, 0);
    if (rc > 0) q->to_submit -= (unsigned)rc < q->to_submit ? (unsigned)rc : q->to_submit;
  }
  uint64_t until = t + SPIN_NS;
  set_yielding(q, 1);
  while (cq_empty(q) && !commits_waiting(q) && !atomic_load(&q->u->stopping) && now_ns() <= until) sched_yield();
  set_yielding(q, 0);
  if (!cq_empty(q)) atomic_fetch_add_explicit(&q->spin_hits, 1, memory_order_relaxed);
}

static int possible_cpus(void) {
  FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
  int lo = 0, hi = -1;
  if (f) {
    /* "0-N" or "0": the kernel sizes its queues by num_possible_cpus() */
    char line[64];
    if (fgets(line, sizeof line, f)) {
      char *dash = strchr(line, '-');
      lo = atoi(line);
      hi = dash ? atoi(dash + 1) : lo;
    }
    fclose(f);
  }
  if (hi < lo || lo != 0) return get_nprocs_conf();
  return hi + 1;
}

static int ring_setup(struct uring_queue *q) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  /* 128-byte SQEs: the fuse command (struct u_cmd_req) lives in the SQE's extra 64 bytes. */
  p.flags = IORING_SETUP_SQE128;
  q->rfd = (int)syscall(__NR_io_uring_setup, ENTS_PER_QUEUE * 2, &p);
  if (q->rfd < 0) return -errno;
  q->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  q->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  q->sqe_len = p.sq_entries * 128;
  q->sq_map = mmap(NULL, q->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, q->rfd, IORING_OFF_SQ_RING);
  q->cq_map = mmap(NULL, q->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, q->rfd, IORING_OFF_CQ_RING);
  q->sqe_map = mmap(NULL, q->sqe_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, q->rfd, IORING_OFF_SQES);
  if (q->sq_map == MAP_FAILED || q->cq_map == MAP_FAILED || q->sqe_map == MAP_FAILED) return -ENOMEM;
  char *sq = q->sq_map, *cq = q->cq_map;
  q->sq_tail = (unsigned *)(sq + p.sq_off.tail);
  q->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
  q->sq_array = (unsigned *)(sq + p.sq_off.array);
  q->cq_head = (unsigned *)(cq + p.cq_off.head);
  q->cq_tail = (unsigned *)(cq + p.cq_off.tail);
  q->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
  q->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
  q->sqes = q->sqe_map;
  return 0;
}

static struct io_uring_sqe *next_sqe(struct uring_queue *q) {
  unsigned tail = *q->sq_tail, idx = tail & *q->sq_mask;
  struct io_uring_sqe *sqe = (struct io_uring_sqe *)(q->sqes + (size_t)idx * 128);
  memset(sqe, 0, 128);
  q->sq_array[idx] = idx;
  __atomic_store_n(q->sq_tail, tail + 1, __ATOMIC_RELEASE);
  q->to_submit++;
  return sqe;
}

static void prep_cmd(struct uring_queue *q, struct uring_ent *e, int op) {
  struct io_uring_sqe *sqe = next_sqe(q);
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = q->u->devfd;
  sqe->cmd_op = op;
  sqe->addr = (uint64_t)(uintptr_t)e->iov;
  sqe->len = 2;
  sqe->user_data = (uint64_t)(uintptr_t)e;
  struct u_cmd_req *c = (struct u_cmd_req *)sqe->cmd;
  c->commit_id = op == CMD_COMMIT_AND_FETCH ? e->commit_id : 0;
  c->qid = (uint16_t)q->qid;
}

static void prep_poll(struct uring_queue *q) {
  struct io_uring_sqe *sqe = next_sqe(q);
  sqe->opcode = IORING_OP_POLL_ADD;
  sqe->fd = q->efd;
  sqe->poll32_events = POLLIN;
  sqe->user_data = POLL_TAG;
}

/* Copies a reply (fuse_out_header, then its payload) into the entry. -EINVAL (and an EIO reply) when it does not fit. */
static int ent_fill(struct uring_ent *e, const struct iovec *iov, int cnt) {
  size_t hdr = 0, pay = 0;
  int bad = 0;
  for (int i = 0; i < cnt && !bad; i++) {
    const char *p = iov[i].iov_base;
    size_t n = iov[i].iov_len;
    if (hdr < sizeof(struct fuse_out_header)) {
      size_t k = n < sizeof(struct fuse_out_header) - hdr ? n : sizeof(struct fuse_out_header) - hdr;
      memcpy(e->hdr->in_out + hdr, p, k);
      hdr += k;
      p += k;
      n -= k;
    }
    if (!n) continue;
    if (pay + n > PAYLOAD_MAX) bad = 1;
    else if (p != e->payload + pay) memmove(e->payload + pay, p, n);
    pay += n;
  }
  if (hdr < sizeof(struct fuse_out_header) || bad) {
    struct fuse_out_header *oh = (struct fuse_out_header *)e->hdr->in_out;
    oh->len = sizeof *oh;
    oh->error = -EIO;
    oh->unique = e->commit_id;
    e->hdr->ent.payload_sz = 0;
    return -EINVAL;
  }
  e->hdr->ent.payload_sz = (uint32_t)pay;
  return 0;
}

int vdfs_send_reply(int devfd, const struct iovec *iov, int cnt) {
  struct uring_ent *e = cur_ent;
  if (e) {
    e->replied = 1;
    return ent_fill(e, iov, cnt);
  }
  for (;;) {
    ssize_t n = writev(devfd, iov, cnt);
    if (n >= 0) return 0;
    if (errno == EINTR) continue;
    return -errno;
  }
}

void vdfs_reply_now(void) {
  struct uring_ent *e = cur_ent;
  if (!e || !e->replied || e->committed) return;
  struct uring_queue *q = e->q;
  e->committed = 1;
  /* From the commit on, the kernel may put the entry's next request in its buffers (not in the headroom, where this request's header stays). */
  cur_ent = NULL;
  pthread_mutex_lock(&q->mu);
  e->js_unique = 0;
  pthread_mutex_unlock(&q->mu);
  prep_cmd(q, e, CMD_COMMIT_AND_FETCH);
  int rc = (int)syscall(__NR_io_uring_enter, q->rfd, q->to_submit, 0, 0, NULL, 0);
  if (rc > 0) q->to_submit -= (unsigned)rc < q->to_submit ? (unsigned)rc : q->to_submit;
}

/* A request arrived in entry e: lay it out as /dev/fuse would and hand it to the handler. */
static void serve(struct uring_queue *q, struct uring_ent *e) {
  struct fuse_in_header ih;
  memcpy(&ih, e->hdr->in_out, sizeof ih);
  uint32_t psz = e->hdr->ent.payload_sz;
  e->commit_id = e->hdr->ent.commit_id;
  atomic_fetch_add_explicit(&q->u->requests, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&q->requests, 1, memory_order_relaxed);
  q->last_request_ns = now_ns();
  if (ih.len < sizeof ih || psz > PAYLOAD_MAX || ih.len - sizeof ih < psz || ih.len - sizeof ih - psz > sizeof e->hdr->op_in) {
    struct fuse_out_header oh = {.len = sizeof oh, .error = -EIO, .unique = ih.unique};
    struct iovec iov = {.iov_base = &oh, .iov_len = sizeof oh};
    ent_fill(e, &iov, 1);
    prep_cmd(q, e, CMD_COMMIT_AND_FETCH);
    return;
  }
  uint32_t a0 = ih.len - (uint32_t)sizeof ih - psz;
  char *req = e->payload - sizeof ih - a0;
  memcpy(req, &ih, sizeof ih);
  memcpy(req + sizeof ih, e->hdr->op_in, a0);
  /* Before the handler: a hand-over to JS may be answered (uring_reply) before it returns. */
  pthread_mutex_lock(&q->mu);
  e->js_unique = ih.unique;
  pthread_mutex_unlock(&q->mu);
  e->replied = 0;
  e->committed = 0;
  cur_ent = e;
  q->u->handler(q->u->arg, req, ih.len, e->payload);
  cur_ent = NULL;
  if (e->replied && !e->committed) {
    pthread_mutex_lock(&q->mu);
    e->js_unique = 0;
    pthread_mutex_unlock(&q->mu);
    prep_cmd(q, e, CMD_COMMIT_AND_FETCH);
  }
}

static void take_commits(struct uring_queue *q) {
  pthread_mutex_lock(&q->mu);
  struct uring_ent *e = q->commits;
  __atomic_store_n(&q->commits, NULL, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&q->mu);
  for (; e; e = e->next) prep_cmd(q, e, CMD_COMMIT_AND_FETCH);
}

static void *queue_main(void *arg) {
  struct uring_queue *q = arg;
  struct fuse_uring *u = q->u;
  cpu_set_t cs;
  CPU_ZERO(&cs);
  CPU_SET(q->qid, &cs);
  /* Fails for a CPU that is offline: the queue still works, only from wherever it runs. */
  pthread_setaffinity_np(pthread_self(), sizeof cs, &cs);
  for (int i = 0; i < ENTS_PER_QUEUE; i++) prep_cmd(q, &q->ents[i], CMD_REGISTER);
  prep_poll(q);
  while (!atomic_load(&u->stopping)) {
    spin_for_next(q);
    /* Replies queued while it yielded came without a wake-up: submitted by the next spin, which then yields for the next request. */
    if (commits_waiting(q)) {
      take_commits(q);
      continue;
    }
    int rc = (int)syscall(__NR_io_uring_enter, q->rfd, q->to_submit, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    if (rc < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EBUSY) continue;
      fprintf(stderr, "vdfs-fuse: io_uring_enter: %s\n", strerror(errno));
      break;
    }
    q->to_submit -= (unsigned)rc < q->to_submit ? (unsigned)rc : q->to_submit;
    unsigned head = *q->cq_head;
    while (head != __atomic_load_n(q->cq_tail, __ATOMIC_ACQUIRE)) {
      struct io_uring_cqe *c = &q->cqes[head & *q->cq_mask];
      uint64_t tag = c->user_data;
      int res = c->res;
      head++;
      __atomic_store_n(q->cq_head, head, __ATOMIC_RELEASE);
      if (tag == POLL_TAG) {
        uint64_t v;
        ssize_t ignored = read(q->efd, &v, sizeof v);
        (void)ignored;
        if (!atomic_load(&u->stopping)) prep_poll(q);
        continue;
      }
      struct uring_ent *e = (struct uring_ent *)(uintptr_t)tag;
      if (res == 0) {
        e->registered = 1;
        serve(q, e);
      } else if (res == -EAGAIN && !e->registered && !atomic_load(&u->stopping)) {
        /* The kernel had not processed INIT's reply yet: a queue left unregistered would hold every request, so try again. */
        usleep(1000);
        prep_cmd(q, e, CMD_REGISTER);
      }
      /* Other errors: the connection ended (-ENOTCONN), or the entry was cancelled; it is not used again. */
    }
    take_commits(q);
  }
  return NULL;
}

static void queue_free(struct uring_queue *q) {
  if (q->bufs) munmap(q->bufs, q->bufs_len);
  if (q->sq_map && q->sq_map != MAP_FAILED) munmap(q->sq_map, q->sq_len);
  if (q->cq_map && q->cq_map != MAP_FAILED) munmap(q->cq_map, q->cq_len);
  if (q->sqe_map && q->sqe_map != MAP_FAILED) munmap(q->sqe_map, q->sqe_len);
  if (q->rfd > 0) close(q->rfd);
  if (q->efd > 0) close(q->efd);
  free(q->hdrs);
  pthread_mutex_destroy(&q->mu);
}

static int queue_init(struct fuse_uring *u, struct uring_queue *q, int qid) {
  q->u = u;
  q->qid = qid;
  q->rfd = q->efd = -1;
  pthread_mutex_init(&q->mu, NULL);
  int err = ring_setup(q);
  if (err) return err;
  q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  q->hdrs = calloc(ENTS_PER_QUEUE, sizeof *q->hdrs);
  if (q->efd < 0 || !q->hdrs) return -ENOMEM;
  /*
   * One mapping for every entry, in huge pages: untouched until used (the kernel hands out the
   * entry committed last first, so a few are), and a payload's first use costs a fault per
   * 2 MiB instead of per 4 KiB page, twice (the copy into it, then the first read of it), ~8 ms
   * per fresh MiB on this project's VMs (docs/read-pipeline.md, "Fresh memory").
   */
  q->bufs_len = ((size_t)ENTS_PER_QUEUE * (HEADROOM + PAYLOAD_MAX) + ((size_t)2 << 20) - 1) & ~(((size_t)2 << 20) - 1);
  q->bufs = map_huge(q->bufs_len);
  if (!q->bufs) return -ENOMEM;
  for (int i = 0; i < ENTS_PER_QUEUE; i++) {
    struct uring_ent *e = &q->ents[i];
    e->buf = q->bufs + (size_t)i * (HEADROOM + PAYLOAD_MAX);
    e->payload = e->buf + HEADROOM;
    e->hdr = &q->hdrs[i];
    e->q = q;
    e->iov[0] = (struct iovec){.iov_base = e->hdr, .iov_len = sizeof *e->hdr};
    e->iov[1] = (struct iovec){.iov_base = e->payload, .iov_len = PAYLOAD_MAX};
  }
  return 0;
}

struct fuse_uring *uring_prepare(int devfd, uring_handler handler, void *arg, int *err) {
  int nq = possible_cpus();
  if (nq < 1 || nq > MAX_QUEUES) {
    *err = EINVAL;
    return NULL;
  }
  struct fuse_uring *u = calloc(1, sizeof *u);
  struct uring_queue *qs = calloc((size_t)nq, sizeof *qs);
  if (!u || !qs) {
    free(u);
    free(qs);
    *err = ENOMEM;
    return NULL;
  }
  u->devfd = devfd;
  u->handler = handler;
  u->arg = arg;
  u->nq = nq;
  u->qs = qs;
  /* Everything that can fail is set up before any entry is registered: once one is, the kernel holds every request until all queues have one. */
  for (int i = 0; i < nq; i++) {
    int e = queue_init(u, &qs[i], i);
    if (e) {
      for (int j = 0; j <= i; j++) queue_free(&qs[j]);
      free(qs);
      free(u);
      *err = -e;
      return NULL;
    }
  }
  return u;
}

int uring_run(struct fuse_uring *u) {
  for (int i = 0; i < u->nq; i++) {
    int e = pthread_create(&u->qs[i].thread, NULL, queue_main, &u->qs[i]);
    if (e) return -e;
    u->qs[i].started = 1;
  }
  return 0;
}

int uring_reply(struct fuse_uring *u, const void *buf, size_t len) {
  if (len < sizeof(struct fuse_out_header)) return 0;
  uint64_t unique = ((const struct fuse_out_header *)buf)->unique;
  if (!unique) return 0;
  for (int i = 0; i < u->nq; i++) {
    struct uring_queue *q = &u->qs[i];
    struct uring_ent *e = NULL;
    pthread_mutex_lock(&q->mu);
    for (int k = 0; k < ENTS_PER_QUEUE; k++) {
      if (q->ents[k].js_unique == unique) {
        e = &q->ents[k];
        e->js_unique = 0;
        break;
      }
    }
    pthread_mutex_unlock(&q->mu);
    if (!e) continue;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    ent_fill(e, &iov, 1);
    pthread_mutex_lock(&q->mu);
    e->next = q->commits;
    __atomic_store_n(&q->commits, e, __ATOMIC_RELEASE);
    int awake = q->yielding;
    pthread_mutex_unlock(&q->mu);
    if (awake) {
      atomic_fetch_add_explicit(&q->quiet_replies, 1, memory_order_relaxed);
      return 1;
    }
    uint64_t one = 1;
    ssize_t ignored = write(q->efd, &one, sizeof one);
    (void)ignored;
    return 1;
  }
  return 0;
}

void uring_stop(struct fuse_uring *u) {
  if (!u) return;
  atomic_store(&u->stopping, 1);
  uint64_t one = 1;
  for (int i = 0; i < u->nq; i++) {
    ssize_t ignored = write(u->qs[i].efd, &one, sizeof one);
    (void)ignored;
  }
  for (int i = 0; i < u->nq; i++)
    if (u->qs[i].started) pthread_join(u->qs[i].thread, NULL);
  /* Closing a ring cancels its commands still waiting in the kernel. */
  for (int i = 0; i < u->nq; i++) queue_free(&u->qs[i]);
  free(u->qs);
  free(u);
}

uint64_t uring_requests(const struct fuse_uring *u) { return u ? atomic_load(&((struct fuse_uring *)u)->requests) : 0; }

int uring_queues(const struct fuse_uring *u) { return u ? u->nq : 0; }

uint64_t uring_queue_requests(const struct fuse_uring *u, int qid) {
  return u && qid >= 0 && qid < u->nq ? atomic_load(&u->qs[qid].requests) : 0;
}

uint64_t uring_quiet_replies(const struct fuse_uring *u) {
  uint64_t n = 0;
  for (int i = 0; u && i < u->nq; i++) n += atomic_load(&u->qs[i].quiet_replies);
  return n;
}

uint64_t uring_spin_hits(const struct fuse_uring *u) {
  uint64_t n = 0;
  for (int i = 0; u && i < u->nq; i++) n += atomic_load(&u->qs[i].spin_hits);
  return n;
}
