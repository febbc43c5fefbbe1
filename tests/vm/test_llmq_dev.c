// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/llmq in a real kernel (the QEMU guest of scripts/vm-check.sh): ioctl
 * validation, mmap limits, doorbells, wake-ups, the runtime's event stream,
 * permissions, client and runtime death, io_uring reads, rmmod while busy,
 * insmod/rmmod cycles and a fuzz loop.  Runs as root in the guest and loads
 * the module itself: test_llmq_dev /path/to/llmq.ko
 */
#include <fcntl.h>
#include <grp.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/llmq.h>

#include "harness.h"

#define DEV		"/dev/llmq"
#define NOBODY		65534
#define RT_GROUP	4242
#define LLMQ_GROUP	100	/* the udev rule's group "llmq" */

static const char *ko_path;
/* A bad pointer the compiler cannot see through. */
static void *volatile bad_ptr;
static unsigned long fuzz_iters = 100000;

/* ---- helpers ------------------------------------------------------------- */

static int kmod_load(const char *params)
{
	int err = vm_insmod(ko_path, params);

	/* What udev/llmq.rules does on a real system: root:llmq 0660. */
	if (!err && (chown(DEV, 0, LLMQ_GROUP) || chmod(DEV, 0660)))
		err = -1;
	return err;
}

/* Unload, retrying while asynchronous teardown (io_uring) lets go. */
static int kmod_unload(unsigned int tries)
{
	while (syscall(SYS_delete_module, "llmq", O_NONBLOCK) < 0) {
		if ((errno != EAGAIN && errno != EBUSY) || !tries--)
			return -1;
		usleep(20000);
	}
	return 0;
}

static int dev_open(void)
{
	return open(DEV, O_RDWR | O_CLOEXEC);
}

static void setup_init(struct llmq_setup *s, uint32_t sq, uint32_t cq, uint32_t arena)
{
	memset(s, 0, sizeof(*s));
	s->magic = LLMQ_MAGIC;
	s->version = LLMQ_ABI_VERSION;
	s->params.sq_entries = sq;
	s->params.cq_entries = cq;
	s->params.arena_size = arena;
}

/* A client fd with a small ring set up; @id and @size filled. */
static int client_new(uint32_t *id, uint32_t *size)
{
	struct llmq_setup s;
	int fd = dev_open();

	if (fd < 0)
		return -1;
	setup_init(&s, 8, 16, 4096);
	if (ioctl(fd, LLMQ_IOC_SETUP, &s) < 0) {
		close(fd);
		return -1;
	}
	if (id)
		*id = s.client_id;
	if (size)
		*size = s.map_size;
	return fd;
}

static int do_attach(int fd)
{
	struct llmq_attach a = { .magic = LLMQ_MAGIC, .version = LLMQ_ABI_VERSION };

	return ioctl(fd, LLMQ_IOC_ATTACH, &a);
}

static int runtime_new(void)
{
	int fd = dev_open();

	if (fd < 0)
		return -1;
	if (do_attach(fd) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read events without sleeping; returns how many, or -1. */
static int events_read(int rt, struct llmq_event *ev, unsigned int max)
{
	struct pollfd p = { .fd = rt, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, 2000) != 1)
		return 0;
	n = read(rt, ev, max * sizeof(*ev));
	if (n < 0)
		return -1;
	if (n % sizeof(*ev))
		return -1;
	return (int)(n / sizeof(*ev));
}

/* Find the next event of @type for @id, reading as needed. */
static int event_expect(int rt, uint32_t type, uint32_t id, struct llmq_event *out)
{
	struct llmq_event ev[16];
	int n, i, rounds;

	for (rounds = 0; rounds < 20; rounds++) {
		n = events_read(rt, ev, 1);
		if (n < 0)
			return -1;
		for (i = 0; i < n; i++) {
			if (ev[i].client_id == id && ev[i].type == type) {
				if (out)
					*out = ev[i];
				return 0;
			}
		}
		if (!n)
			break;
	}
	fprintf(stderr, "no event type %u for client %u\n", type, id);
	return -1;
}

static int wait_child(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Run @fn as uid/gid @uid in a child (groups @groups[@ng]); its status. */
static int as_user(uid_t uid, const gid_t *groups, int ng, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (!pid) {
		if (setgroups(ng, groups) || setgid(uid) || setuid(uid))
			_exit(99);
		_exit(fn(arg) & 0x7f);
	}
	st = wait_child(pid);
	fprintf(stderr, "as uid %u with %d group(s): status %d\n", uid, ng, st);
	return st;
}

/* ---- set-up and ioctl validation ------------------------------------------ */

static int test_setup_validation(void)
{
	struct llmq_setup s;
	int fd = dev_open();

	CHECK(fd >= 0);
	setup_init(&s, 8, 16, 4096);
	s.magic = 0x12345678;
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, &s), EPROTO);
	setup_init(&s, 8, 16, 4096);
	s.version = LLMQ_ABI_VERSION + 1;
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, &s), EPROTONOSUPPORT);
	setup_init(&s, 6, 16, 4096);
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, &s), EINVAL);
	setup_init(&s, 1, 16, 4096);
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, &s), EINVAL);
	setup_init(&s, LLMQ_MAX_SQ_ENTRIES * 2, LLMQ_MAX_CQ_ENTRIES, 4096);
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, &s), EINVAL);
	setup_init(&s, 16, 8, 4096);
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, &s), EINVAL);
	setup_init(&s, 8, LLMQ_MAX_CQ_ENTRIES * 2, 4096);
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, &s), EINVAL);
	setup_init(&s, 8, 16, 4097);
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, &s), EINVAL);
	setup_init(&s, 8, 16, 0);
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, &s), EINVAL);
	setup_init(&s, 8, 16, LLMQ_MAX_ARENA + 4096);
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, &s), EINVAL);
	setup_init(&s, 8, 16, 4096);
	s.params.flags = 1;
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, &s), EINVAL);
	setup_init(&s, 8, 16, 4096);
	s.params.resv[3] = 1;
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, &s), EINVAL);
	setup_init(&s, 8, 16, 4096);
	s.flags = 1;
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, &s), EINVAL);
	setup_init(&s, 8, 16, 4096);
	s.resv[2] = 1;
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, &s), EINVAL);
	setup_init(&s, 8, 16, 4096);
	s.client_id = 7;
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, &s), EINVAL);
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, NULL), EFAULT);
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, (void *)16), EFAULT);
	CHECK_ERR(ioctl(fd, _IOWR(LLMQ_IOC_MAGIC, 0x01, struct llmq_params), &s), ENOTTY);
	CHECK_ERR(ioctl(fd, _IO(LLMQ_IOC_MAGIC, 0x7f)), ENOTTY);
	CHECK_ERR(ioctl(fd, TCGETS, &s), ENOTTY);
	/* Nothing was allocated by the refusals. */
	CHECK(stat_read("rings") == 0);

	setup_init(&s, 8, 16, 4096);
	CHECK(ioctl(fd, LLMQ_IOC_SETUP, &s) == 0);
	CHECK(s.client_id > 0);
	/* header page, 8 SQEs in one page, 16 CQEs in one page, the arena */
	CHECK(s.map_size == 4096 * 4);
	CHECK(stat_read("rings") == 1);
	setup_init(&s, 8, 16, 4096);
	CHECK_ERR(ioctl(fd, LLMQ_IOC_SETUP, &s), EBUSY);
	CHECK_ERR(do_attach(fd), EINVAL);
	close(fd);
	return 0;
}

static int test_layout_and_mmap(void)
{
	struct llmq_ring_hdr *hdr;
	struct llmq_setup s;
	void *m, *m2;
	int fd = dev_open();

	CHECK(fd >= 0);
	CHECK(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
	CHECK(errno == ENXIO);
	setup_init(&s, 64, 1024, 1 << 20);
	CHECK(ioctl(fd, LLMQ_IOC_SETUP, &s) == 0);
	CHECK(s.map_size == 4096 + 64 * 128 + 1024 * 64 + (1 << 20));
	/* Exactly the ring: no smaller, no larger, shared, not executable. */
	CHECK(mmap(NULL, s.map_size - 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED);
	CHECK(errno == EINVAL);
	CHECK(mmap(NULL, s.map_size + 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED);
	CHECK(errno == EINVAL);
	CHECK(mmap(NULL, s.map_size, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED);
	CHECK(errno == EINVAL);
	CHECK(mmap(NULL, s.map_size, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0) == MAP_FAILED);
	CHECK(errno == EPERM);
	CHECK(mmap(NULL, s.map_size, PROT_READ, MAP_SHARED, fd, 4096) == MAP_FAILED);
	CHECK(errno == EACCES);
	CHECK(mmap(NULL, s.map_size, PROT_READ, MAP_SHARED, fd, LLMQ_RT_MAP_OFF(s.client_id)) ==
	      MAP_FAILED);
	CHECK(errno == EACCES);

	m = mmap(NULL, s.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED);
	hdr = m;
	CHECK(hdr->magic == LLMQ_MAGIC);
	CHECK(hdr->version == LLMQ_ABI_VERSION);
	CHECK(hdr->sq_entries == 64 && hdr->cq_entries == 1024);
	CHECK(hdr->arena_size == 1 << 20);
	CHECK(hdr->sq_off == 4096);
	CHECK(hdr->cq_off == 4096 + 64 * 128);
	CHECK(hdr->arena_off == 4096 + 64 * 128 + 1024 * 64);
	CHECK(hdr->map_size == s.map_size);
	CHECK(hdr->sq_head == 0 && hdr->sq_tail == 0);
	/* No runtime: the client is told at once, not left asleep. */
	CHECK(hdr->rt_flags == (LLMQ_RING_DEAD | LLMQ_RING_NEED_WAKEUP));
	CHECK(hdr->rt_errno == ENOTCONN);
	/* Zeroed memory, not someone else's. */
	CHECK(((unsigned char *)m)[s.map_size - 1] == 0);
	CHECK(mprotect(m, s.map_size, PROT_READ | PROT_EXEC) < 0);
	/* No growth. */
	CHECK(mremap(m, s.map_size, s.map_size + 4096, 0) == MAP_FAILED);
	CHECK(mremap(m, s.map_size, s.map_size + 4096, MREMAP_MAYMOVE) == MAP_FAILED);

	/* A second mapping is the same memory; it outlives the fd. */
	m2 = mmap(NULL, s.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m2 != MAP_FAILED);
	hdr->sq_tail = 42;
	CHECK(((struct llmq_ring_hdr *)m2)->sq_tail == 42);
	close(fd);
	CHECK(stat_read("rings") == 1);
	((unsigned char *)m2)[s.map_size - 1] = 7;
	CHECK(((unsigned char *)m)[s.map_size - 1] == 7);
	CHECK(munmap(m, s.map_size) == 0);
	CHECK(stat_read("rings") == 1);
	/* A partial unmap keeps the rest, and the ring, alive. */
	CHECK(munmap(m2, 4096) == 0);
	CHECK(((unsigned char *)m2)[s.map_size - 1] == 7);
	CHECK(munmap((char *)m2 + 4096, s.map_size - 4096) == 0);
	CHECK(stat_wait("rings", 0, 1000) == 0);
	CHECK(stat_read("ring_bytes") == 0);
	return 0;
}

static int test_client_io_validation(void)
{
	uint64_t v = 1, big[2] = { 1, 1 };
	int fd = dev_open();

	CHECK(fd >= 0);
	CHECK_ERR(ioctl(fd, LLMQ_IOC_DOORBELL), ENXIO);
	CHECK_ERR(write(fd, &v, sizeof(v)), ENXIO);
	CHECK_ERR(read(fd, &v, sizeof(v)), ENXIO);
	close(fd);

	fd = client_new(NULL, NULL);
	CHECK(fd >= 0);
	CHECK_ERR(write(fd, &v, 4), EINVAL);
	CHECK_ERR(write(fd, big, 16), EINVAL);
	CHECK_ERR(write(fd, bad_ptr, 8), EFAULT);
	CHECK_ERR(read(fd, &v, 4), EINVAL);
	CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
	CHECK_ERR(read(fd, &v, 8), EAGAIN);
	/* Doorbells without a runtime are fine: the next runtime looks. */
	CHECK(write(fd, &v, 8) == 8);
	CHECK(ioctl(fd, LLMQ_IOC_DOORBELL) == 0);
	CHECK_ERR(ioctl(fd, LLMQ_IOC_WAKE, NULL), EPERM);
	close(fd);
	return 0;
}

/* ---- the runtime ---------------------------------------------------------- */

static int test_attach_validation(void)
{
	struct llmq_attach a = { .magic = LLMQ_MAGIC, .version = LLMQ_ABI_VERSION };
	struct llmq_wake w = { 0 };
	uint32_t ids[2] = { 1, 2 };
	int rt, rt2;

	rt = dev_open();
	CHECK(rt >= 0);
	a.magic = 0;
	CHECK_ERR(ioctl(rt, LLMQ_IOC_ATTACH, &a), EPROTO);
	a.magic = LLMQ_MAGIC;
	a.version = 0;
	CHECK_ERR(ioctl(rt, LLMQ_IOC_ATTACH, &a), EPROTONOSUPPORT);
	a.version = LLMQ_ABI_VERSION;
	a.flags = 1;
	CHECK_ERR(ioctl(rt, LLMQ_IOC_ATTACH, &a), EINVAL);
	a.flags = 0;
	a.resv[4] = 1;
	CHECK_ERR(ioctl(rt, LLMQ_IOC_ATTACH, &a), EINVAL);
	a.resv[4] = 0;
	CHECK_ERR(ioctl(rt, LLMQ_IOC_ATTACH, NULL), EFAULT);
	CHECK(stat_read("runtime_attached") == 0);
	CHECK(ioctl(rt, LLMQ_IOC_ATTACH, &a) == 0);
	CHECK(stat_read("runtime_attached") == 1);
	CHECK_ERR(ioctl(rt, LLMQ_IOC_ATTACH, &a), EALREADY);
	rt2 = dev_open();
	CHECK(rt2 >= 0);
	CHECK_ERR(do_attach(rt2), EBUSY);
	close(rt2);

	/* A runtime has no ring of its own and rings no doorbell. */
	struct llmq_setup s;

	setup_init(&s, 8, 16, 4096);
	CHECK_ERR(ioctl(rt, LLMQ_IOC_SETUP, &s), EINVAL);
	CHECK_ERR(ioctl(rt, LLMQ_IOC_DOORBELL), ENXIO);

	/* Wake arguments. */
	CHECK_ERR(ioctl(rt, LLMQ_IOC_WAKE, NULL), EFAULT);
	w.count = LLMQ_WAKE_MAX + 1;
	w.ids = (uintptr_t)ids;
	CHECK_ERR(ioctl(rt, LLMQ_IOC_WAKE, &w), E2BIG);
	w.count = 2;
	w.flags = 1;
	CHECK_ERR(ioctl(rt, LLMQ_IOC_WAKE, &w), EINVAL);
	w.flags = 0;
	w.ids = 16;
	CHECK_ERR(ioctl(rt, LLMQ_IOC_WAKE, &w), EFAULT);
	w.ids = (uintptr_t)ids;
	CHECK(ioctl(rt, LLMQ_IOC_WAKE, &w) == 0);	/* no such clients */
	CHECK_ERR(write(rt, ids, 6), EINVAL);
	CHECK_ERR(write(rt, ids, 0), EINVAL);
	CHECK_ERR(write(rt, bad_ptr, 8), EFAULT);
	CHECK(write(rt, ids, 8) == 8);

	/* Event reads. */
	struct llmq_event ev[2];

	CHECK_ERR(read(rt, ev, sizeof(ev[0]) - 1), EINVAL);
	CHECK(fcntl(rt, F_SETFL, O_NONBLOCK) == 0);
	CHECK_ERR(read(rt, ev, sizeof(ev)), EAGAIN);
	/* The runtime maps nothing of its own. */
	CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, rt, 0) == MAP_FAILED);
	CHECK(errno == EINVAL);
	CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, rt, LLMQ_RT_MAP_OFF(12345)) == MAP_FAILED);
	CHECK(errno == ENOENT);
	CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, rt, LLMQ_RT_MAP_OFF(1) + 4096) ==
	      MAP_FAILED);
	CHECK(errno == EINVAL);
	close(rt);
	CHECK(stat_read("runtime_attached") == 0);
	rt = runtime_new();
	CHECK(rt >= 0);
	close(rt);
	return 0;
}

static int test_event_stream(void)
{
	struct llmq_event ev[8];
	uint32_t id, size;
	uint64_t one = 1;
	int rt, c, i, n;

	rt = runtime_new();
	CHECK(rt >= 0);
	c = client_new(&id, &size);
	CHECK(c >= 0);
	n = events_read(rt, ev, 8);
	CHECK(n == 2);
	CHECK(ev[0].type == LLMQ_EV_OPEN && ev[0].client_id == id);
	CHECK(ev[0].pid == (uint32_t)getpid() && ev[0].uid == getuid());
	CHECK(ev[0].sq_entries == 8 && ev[0].cq_entries == 16);
	CHECK(ev[0].arena_size == 4096 && ev[0].map_size == size);
	CHECK(ev[0].flags == 0 && !ev[0].resv[0] && !ev[0].resv[1] && !ev[0].resv[2]);
	/* Set-up counts as a doorbell: requests may be queued already. */
	CHECK(ev[1].type == LLMQ_EV_DOORBELL && ev[1].client_id == id);
	CHECK(!ev[1].pid && !ev[1].uid && !ev[1].map_size);

	/* Doorbells not read yet coalesce. */
	for (i = 0; i < 100; i++)
		CHECK(write(c, &one, 8) == 8);
	CHECK(ioctl(c, LLMQ_IOC_DOORBELL) == 0);
	n = events_read(rt, ev, 8);
	CHECK(n == 1);
	CHECK(ev[0].type == LLMQ_EV_DOORBELL && ev[0].client_id == id);
	CHECK(fcntl(rt, F_SETFL, O_NONBLOCK) == 0);
	CHECK_ERR(read(rt, ev, sizeof(ev)), EAGAIN);

	/* Many clients, one read returns several. */
	int cs[5];
	uint32_t ids[5];

	for (i = 0; i < 5; i++) {
		cs[i] = client_new(&ids[i], NULL);
		CHECK(cs[i] >= 0);
	}
	n = events_read(rt, ev, 8);
	CHECK(n == 8);
	CHECK(ev[0].type == LLMQ_EV_OPEN && ev[0].client_id == ids[0]);
	n = events_read(rt, ev, 8);
	CHECK(n == 2);
	for (i = 0; i < 5; i++)
		close(cs[i]);
	n = events_read(rt, ev, 8);
	CHECK(n == 5);
	for (i = 0; i < 5; i++)
		CHECK(ev[i].type == LLMQ_EV_CLOSE && ev[i].client_id == ids[i]);

	/* A client the runtime never heard of leaves without a word. */
	close(c);
	CHECK(event_expect(rt, LLMQ_EV_CLOSE, id, NULL) == 0);
	c = client_new(&id, NULL);
	CHECK(c >= 0);
	close(c);
	CHECK_ERR(read(rt, ev, sizeof(ev)), EAGAIN);
	close(rt);
	CHECK(stat_wait("rings", 0, 1000) == 0);
	return 0;
}

static int test_runtime_maps_ring(void)
{
	struct llmq_ring_hdr *ch, *rh;
	struct llmq_event ev;
	uint32_t id, size;
	int rt, c;

	rt = runtime_new();
	CHECK(rt >= 0);
	c = client_new(&id, &size);
	CHECK(c >= 0);
	CHECK(event_expect(rt, LLMQ_EV_OPEN, id, &ev) == 0);
	ch = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, c, 0);
	CHECK(ch != MAP_FAILED);
	CHECK(mmap(NULL, size + 4096, PROT_READ | PROT_WRITE, MAP_SHARED, rt,
		   LLMQ_RT_MAP_OFF(id)) == MAP_FAILED);
	CHECK(errno == EINVAL);
	rh = mmap(NULL, ev.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, rt, LLMQ_RT_MAP_OFF(id));
	CHECK(rh != MAP_FAILED);
	ch->sq_tail = 3;
	CHECK(rh->sq_tail == 3);
	rh->cq_tail = 5;
	CHECK(ch->cq_tail == 5);
	/* The client goes; the runtime's mapping stays valid until it unmaps. */
	munmap(ch, size);
	close(c);
	CHECK(event_expect(rt, LLMQ_EV_CLOSE, id, NULL) == 0);
	CHECK(stat_read("rings") == 1);
	CHECK(rh->sq_tail == 3);
	CHECK(mmap(NULL, size, PROT_READ, MAP_SHARED, rt, LLMQ_RT_MAP_OFF(id)) == MAP_FAILED);
	CHECK(errno == ENOENT);
	munmap(rh, size);
	CHECK(stat_wait("rings", 0, 1000) == 0);
	close(rt);
	return 0;
}

static int test_batched_wake(void)
{
	enum { N = 16 };
	struct pollfd p[N];
	uint32_t ids[N + 1];
	struct llmq_wake w;
	uint64_t v;
	int rt, i;

	rt = runtime_new();
	CHECK(rt >= 0);
	for (i = 0; i < N; i++) {
		p[i].fd = client_new(&ids[i], NULL);
		p[i].events = POLLIN;
		CHECK(p[i].fd >= 0);
	}
	CHECK(poll(p, N, 0) == 0);
	ids[N] = 999999;	/* unknown ids are skipped */
	w.ids = (uintptr_t)ids;
	w.count = N + 1;
	w.flags = 0;
	CHECK(ioctl(rt, LLMQ_IOC_WAKE, &w) == N);
	CHECK(poll(p, N, 0) == N);
	for (i = 0; i < N; i++) {
		CHECK(read(p[i].fd, &v, 8) == 8);
		CHECK(v == 1);
	}
	CHECK(poll(p, N, 0) == 0);
	/* The same through write(); wake-ups add up until read. */
	CHECK(write(rt, ids, N * 4) == N * 4);
	CHECK(write(rt, ids, 4) == 4);
	CHECK(read(p[0].fd, &v, 8) == 8 && v == 2);
	CHECK(read(p[1].fd, &v, 8) == 8 && v == 1);
	for (i = 0; i < N; i++)
		close(p[i].fd);
	close(rt);
	return 0;
}

/* A client sleeping in read() and one in poll() are woken by the runtime. */
static int test_sleep_and_wake(void)
{
	uint32_t id;
	uint64_t v;
	int rt, c, st;
	pid_t kid;

	rt = runtime_new();
	CHECK(rt >= 0);
	c = client_new(&id, NULL);
	CHECK(c >= 0);
	kid = fork();
	CHECK(kid >= 0);
	if (!kid) {
		struct pollfd p = { .fd = c, .events = POLLIN };

		alarm(10);
		if (poll(&p, 1, -1) != 1 || !(p.revents & POLLIN))
			_exit(1);
		_exit(read(c, &v, 8) == 8 && v == 1 ? 0 : 2);
	}
	usleep(100000);
	CHECK(write(rt, &id, 4) == 4);
	CHECK(wait_child(kid) == 0);

	kid = fork();
	CHECK(kid >= 0);
	if (!kid) {
		alarm(10);
		_exit(read(c, &v, 8) == 8 && v == 1 ? 0 : 2);
	}
	usleep(100000);
	CHECK(write(rt, &id, 4) == 4);
	CHECK(wait_child(kid) == 0);

	/* A signal interrupts a sleeping read. */
	kid = fork();
	CHECK(kid >= 0);
	if (!kid) {
		alarm(10);
		_exit(read(c, &v, 8));
	}
	usleep(100000);
	kill(kid, SIGTERM);
	st = wait_child(kid);
	CHECK(st == 128 + SIGTERM);
	close(c);
	close(rt);
	return 0;
}

/* ---- permissions ---------------------------------------------------------- */

static int try_attach(void *arg)
{
	int fd = dev_open(), err;

	(void)arg;
	if (fd < 0)
		return -1;
	err = do_attach(fd);
	if (!err)
		return 0;
	close(fd);
	return errno == EPERM ? 2 : -1;
}

static int try_map_other(void *arg)
{
	uint32_t other = *(uint32_t *)arg;
	uint32_t id, size;
	void *m;
	int c;

	/* An unprivileged client may set its own ring up and map it ... */
	c = client_new(&id, &size);
	if (c < 0)
		return 10;
	m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, c, 0);
	if (m == MAP_FAILED)
		return 11;
	/* ... but no other offset, and no runtime's powers. */
	if (mmap(NULL, size, PROT_READ, MAP_SHARED, c, LLMQ_RT_MAP_OFF(other)) != MAP_FAILED ||
	    errno != EACCES)
		return 12;
	if (do_attach(c) == 0 || errno != EPERM)
		return 13;
	c = dev_open();
	if (mmap(NULL, size, PROT_READ, MAP_SHARED, c, LLMQ_RT_MAP_OFF(other)) != MAP_FAILED ||
	    errno != EACCES)
		return 14;
	if (do_attach(c) == 0 || errno != EPERM)
		return 15;
	return 0;
}

static int try_open(void *arg)
{
	(void)arg;
	return dev_open() < 0 && errno == EACCES ? 0 : 1;
}

static int test_permissions(void)
{
	gid_t llmq = LLMQ_GROUP, both[2] = { LLMQ_GROUP, RT_GROUP };
	uint32_t id;
	int c;

	c = client_new(&id, NULL);
	CHECK(c >= 0);
	/* Outside the device's group, not even a client. */
	CHECK(as_user(NOBODY, NULL, 0, try_open, NULL) == 0);
	CHECK(as_user(NOBODY, &llmq, 1, try_attach, NULL) == 2);
	CHECK(as_user(NOBODY, &llmq, 1, try_map_other, &id) == 0);
	/* Without the runtime_gid parameter, the group is worth nothing. */
	CHECK(as_user(NOBODY, both, 2, try_attach, NULL) == 2);
	close(c);
	CHECK(stat_wait("rings", 0, 1000) == 0);

	/* With it, a member may attach; someone else still may not. */
	CHECK(kmod_unload(100) == 0);
	CHECK(kmod_load("runtime_gid=4242") == 0);
	CHECK(as_user(NOBODY, both, 2, try_attach, NULL) == 0);
	CHECK(as_user(NOBODY, &llmq, 1, try_attach, NULL) == 2);
	CHECK(stat_read("attaches") == 1);
	CHECK(kmod_unload(100) == 0);
	CHECK(kmod_load("") == 0);
	return 0;
}

/* ---- lifetimes --------------------------------------------------------------- */

static int test_client_killed(void)
{
	struct llmq_event ev;
	int rt, sync[2];
	uint32_t id;
	pid_t kid;
	void *rh;

	rt = runtime_new();
	CHECK(rt >= 0);
	CHECK(pipe(sync) == 0);
	kid = fork();
	CHECK(kid >= 0);
	if (!kid) {
		uint32_t cid, size;
		struct llmq_ring_hdr *h;
		int c = client_new(&cid, &size);

		h = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, c, 0);
		if (h == MAP_FAILED)
			_exit(1);
		h->sq_tail = 1;		/* a request in flight */
		ioctl(c, LLMQ_IOC_DOORBELL);
		if (write(sync[1], &cid, 4) != 4)
			_exit(1);
		for (;;)
			pause();
	}
	CHECK(read(sync[0], &id, 4) == 4);
	CHECK(event_expect(rt, LLMQ_EV_OPEN, id, &ev) == 0);
	CHECK(ev.pid == (uint32_t)kid);
	rh = mmap(NULL, ev.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, rt, LLMQ_RT_MAP_OFF(id));
	CHECK(rh != MAP_FAILED);
	kill(kid, SIGKILL);
	CHECK(wait_child(kid) == 128 + SIGKILL);
	CHECK(event_expect(rt, LLMQ_EV_CLOSE, id, NULL) == 0);
	/* Both sides must let go before the ring is freed. */
	CHECK(stat_read("rings") == 1);
	CHECK(((struct llmq_ring_hdr *)rh)->sq_tail == 1);
	munmap(rh, ev.map_size);
	CHECK(stat_wait("rings", 0, 1000) == 0);
	close(rt);
	return 0;
}

static int runtime_child(int sync_fd)
{
	int rt = runtime_new();
	char x = 1;

	if (rt < 0 || write(sync_fd, &x, 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

static int test_runtime_death(void)
{
	struct llmq_ring_hdr *h;
	struct llmq_event ev;
	uint32_t id, size;
	int c, rt, sync[2];
	pid_t rtpid, sleeper;
	uint64_t v;
	char x;

	CHECK(pipe(sync) == 0);
	rtpid = fork();
	CHECK(rtpid >= 0);
	if (!rtpid)
		runtime_child(sync[1]);
	CHECK(read(sync[0], &x, 1) == 1);
	c = client_new(&id, &size);
	CHECK(c >= 0);
	h = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, c, 0);
	CHECK(h != MAP_FAILED);
	h->sq_tail = 2;		/* two requests queued */
	CHECK(ioctl(c, LLMQ_IOC_DOORBELL) == 0);

	sleeper = fork();
	CHECK(sleeper >= 0);
	if (!sleeper) {
		/* A client asleep in read() when the runtime dies. */
		alarm(10);
		_exit(read(c, &v, 8) == 8 && v >= 1 ? 0 : 1);
	}
	usleep(50000);
	kill(rtpid, SIGKILL);
	CHECK(wait_child(rtpid) == 128 + SIGKILL);
	CHECK(wait_child(sleeper) == 0);
	CHECK(stat_read("runtime_attached") == 0);
	CHECK(h->rt_flags & LLMQ_RING_DEAD);
	CHECK(h->rt_flags & LLMQ_RING_NEED_WAKEUP);
	CHECK(h->rt_errno == ECONNRESET);
	CHECK(h->sq_tail == 2 && h->sq_head == 0);

	/* The next runtime hears of the client and finds its queued work. */
	rt = runtime_new();
	CHECK(rt >= 0);
	CHECK(!(h->rt_flags & LLMQ_RING_DEAD));
	CHECK(h->rt_errno == 0);
	CHECK(event_expect(rt, LLMQ_EV_OPEN, id, &ev) == 0);
	CHECK(ev.map_size == size);
	CHECK(event_expect(rt, LLMQ_EV_DOORBELL, id, NULL) == 0);
	{
		struct llmq_ring_hdr *rh;

		rh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, rt,
			  LLMQ_RT_MAP_OFF(id));
		CHECK(rh != MAP_FAILED);
		CHECK(rh->sq_tail == 2);
		munmap(rh, size);
	}
	close(rt);
	CHECK(h->rt_flags & LLMQ_RING_DEAD);
	CHECK(h->rt_errno == ECONNRESET);

	/* A runtime that says why it leaves keeps its errno. */
	rt = runtime_new();
	CHECK(rt >= 0);
	CHECK(!(h->rt_flags & LLMQ_RING_DEAD));
	h->rt_errno = ESHUTDOWN;	/* as llmqd's client_kill_all() does */
	h->rt_flags |= LLMQ_RING_DEAD;
	close(rt);
	CHECK(h->rt_errno == ESHUTDOWN);
	close(c);
	munmap(h, size);
	CHECK(stat_wait("rings", 0, 1000) == 0);
	CHECK(stat_read("dead_marks") >= 2);
	return 0;
}

/* ---- io_uring ---------------------------------------------------------------- */

static int test_io_uring_events(void)
{
	struct io_uring_cqe *cqe;
	struct llmq_event ev[4];
	struct io_uring_sqe *sqe;
	struct io_uring ring;
	uint32_t id;
	int rt, c;

	rt = runtime_new();
	CHECK(rt >= 0);
	CHECK(io_uring_queue_init(8, &ring, 0) == 0);
	c = client_new(&id, NULL);
	CHECK(c >= 0);
	CHECK(event_expect(rt, LLMQ_EV_DOORBELL, id, NULL) == 0);

	/* A READ with nothing to read waits (polled, no worker blocks). */
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_read(sqe, rt, ev, sizeof(ev), 0);
	CHECK(io_uring_submit(&ring) == 1);
	CHECK(io_uring_peek_cqe(&ring, &cqe) == -EAGAIN);
	CHECK(ioctl(c, LLMQ_IOC_DOORBELL) == 0);
	CHECK(io_uring_wait_cqe(&ring, &cqe) == 0);
	CHECK(cqe->res == (int)sizeof(ev[0]));
	CHECK(ev[0].type == LLMQ_EV_DOORBELL && ev[0].client_id == id);
	io_uring_cqe_seen(&ring, cqe);

	/* A client's read through io_uring, woken by the runtime's write. */
	uint64_t v = 0;

	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_read(sqe, c, &v, 8, 0);
	CHECK(io_uring_submit(&ring) == 1);
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_write(sqe, rt, &id, 4, 0);
	CHECK(io_uring_submit(&ring) == 1);
	for (int i = 0; i < 2; i++) {
		CHECK(io_uring_wait_cqe(&ring, &cqe) == 0);
		CHECK(cqe->res == 8 || cqe->res == 4);
		io_uring_cqe_seen(&ring, cqe);
	}
	CHECK(v == 1);
	io_uring_queue_exit(&ring);
	close(c);
	close(rt);
	return 0;
}

/* A runtime killed with a READ parked in its io_uring does not pin anything. */
static int test_io_uring_runtime_killed(void)
{
	int sync[2], rt;
	pid_t kid;
	char x;

	CHECK(pipe(sync) == 0);
	kid = fork();
	CHECK(kid >= 0);
	if (!kid) {
		static struct llmq_event ev[4];
		struct io_uring ring;
		struct io_uring_sqe *sqe;
		int fd = runtime_new();

		if (fd < 0 || io_uring_queue_init(8, &ring, 0))
			_exit(1);
		sqe = io_uring_get_sqe(&ring);
		io_uring_prep_read(sqe, fd, ev, sizeof(ev), 0);
		if (io_uring_submit(&ring) != 1)
			_exit(1);
		/* The ring holds the only reference to the file now. */
		close(fd);
		x = 1;
		if (write(sync[1], &x, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	CHECK(read(sync[0], &x, 1) == 1);
	CHECK(stat_read("runtime_attached") == 1);
	kill(kid, SIGKILL);
	CHECK(wait_child(kid) == 128 + SIGKILL);
	/* io_uring tears down asynchronously; then the runtime is gone. */
	CHECK(stat_wait("runtime_attached", 0, 5000) == 0);
	rt = runtime_new();
	CHECK(rt >= 0);
	close(rt);
	/* And the module can go. */
	CHECK(kmod_unload(250) == 0);
	CHECK(kmod_load("") == 0);
	return 0;
}

/* ---- module lifetime --------------------------------------------------------- */

static int test_rmmod_busy(void)
{
	uint32_t size;
	void *m;
	int c;

	c = client_new(NULL, &size);
	CHECK(c >= 0);
	m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, c, 0);
	CHECK(m != MAP_FAILED);
	CHECK(kmod_unload(0) < 0);
	close(c);
	/* The mapping alone keeps the module. */
	CHECK(kmod_unload(0) < 0);
	CHECK(((struct llmq_ring_hdr *)m)->magic == LLMQ_MAGIC);
	munmap(m, size);
	CHECK(kmod_unload(100) == 0);
	CHECK(access(DEV, F_OK) < 0);
	CHECK(kmod_load("") == 0);
	return 0;
}

static int test_insmod_rmmod_cycles(void)
{
	int i, c, rt;

	for (i = 0; i < 20; i++) {
		CHECK(kmod_unload(100) == 0);
		CHECK(kmod_load(i & 1 ? "runtime_gid=7 max_clients=8" : "") == 0);
		rt = runtime_new();
		CHECK(rt >= 0);
		c = client_new(NULL, NULL);
		CHECK(c >= 0);
		CHECK(stat_read("rings") == 1);
		close(c);
		close(rt);
	}
	return 0;
}

/*
 * Bytes in the kernel's kmalloc caches.  Each cache is shrunk first
 * (/sys/kernel/slab/NAME/shrink): SLUB counts the free objects of per-CPU
 * slabs as active, which would hide a small leak in noise.
 */
static long kmalloc_bytes(void)
{
	char line[512], name[64], path[128];
	long active, total = 0, size;
	FILE *f;
	int fd;

	f = fopen("/proc/slabinfo", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63s %ld %*d %ld", name, &active, &size) != 3 ||
		    strncmp(name, "kmalloc-", 8))
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/slab/%s/shrink", name);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)!write(fd, "1", 1);
			close(fd);
		}
	}
	rewind(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %ld %*d %ld", name, &active, &size) == 3 &&
		    !strncmp(name, "kmalloc-", 8))
			total += active * size;
	fclose(f);
	return total;
}

/* A /proc/meminfo field, in kB. */
static long meminfo_kb(const char *key)
{
	char line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

#define CHURN_CLIENTS	200

/*
 * One cycle of everything that allocates: load, a runtime, clients with
 * rings mapped by both sides, doorbells and their events, a client closed
 * while mapped by the runtime, a batched wake, unload.
 */
static int churn(void)
{
	static struct llmq_event ev[2 * CHURN_CLIENTS + 8];
	int c[CHURN_CLIENTS], i, rt, got = 0, n;
	static uint32_t id[CHURN_CLIENTS], wake[CHURN_CLIENTS];
	static void *cm[CHURN_CLIENTS], *rm[CHURN_CLIENTS];
	uint32_t size;
	struct llmq_wake w = { .ids = (uintptr_t)wake, .count = CHURN_CLIENTS };
	uint64_t one = 1;

	CHECK(kmod_unload(100) == 0);
	CHECK(kmod_load("") == 0);
	rt = runtime_new();
	CHECK(rt >= 0);
	for (i = 0; i < CHURN_CLIENTS; i++) {
		c[i] = client_new(&id[i], &size);
		CHECK(c[i] >= 0);
		cm[i] = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, c[i], 0);
		CHECK(cm[i] != MAP_FAILED);
		rm[i] = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, rt,
			     LLMQ_RT_MAP_OFF(id[i]));
		CHECK(rm[i] != MAP_FAILED);
		CHECK(write(c[i], &one, sizeof(one)) == sizeof(one));
		wake[i] = id[i];
	}
	/* An open and a doorbell per client. */
	while (got < 2 * CHURN_CLIENTS) {
		n = events_read(rt, ev, sizeof(ev) / sizeof(ev[0]));
		CHECK(n > 0);
		got += n;
	}
	CHECK(ioctl(rt, LLMQ_IOC_WAKE, &w) == CHURN_CLIENTS);
	for (i = 0; i < CHURN_CLIENTS; i++) {
		munmap(cm[i], size);
		close(c[i]);
	}
	/* The closes, while the runtime still maps every ring. */
	for (got = 0; got < CHURN_CLIENTS; got += n) {
		n = events_read(rt, ev, sizeof(ev) / sizeof(ev[0]));
		CHECK(n > 0);
	}
	for (i = 0; i < CHURN_CLIENTS; i++)
		munmap(rm[i], size);
	close(rt);
	return 0;
}

/*
 * No leaks across insmod/rmmod cycles: after a warm-up cycle, 15 more with
 * 200 clients each.  Every ring is vmalloc_user()ed, at least three pages:
 * vmalloc may move by what loading a module itself leaves (20 kB seen),
 * not by rings.  The kmalloc caches move by up to 50 KiB either way with
 * no leak at all (seen over 20 cycles); one client context or ring
 * structure leaked per client would be 3000 objects of 64 bytes or more,
 * 192 KiB, over the 96 KiB allowed.
 */
static int test_no_leaks(void)
{
	long vm0, vm1, km0, km1;
	int i;

	CHECK(churn() == 0);
	vm0 = meminfo_kb("VmallocUsed");
	km0 = kmalloc_bytes();
	CHECK(vm0 > 0 && km0 > 0);
	for (i = 0; i < 15; i++)
		CHECK(churn() == 0);
	vm1 = meminfo_kb("VmallocUsed");
	km1 = kmalloc_bytes();
	printf("no_leaks: 3000 clients: VmallocUsed %ld -> %ld kB, kmalloc %ld -> %ld bytes\n",
	       vm0, vm1, km0, km1);
	CHECK(vm1 - vm0 < 64);
	CHECK(km1 - km0 < 96 * 1024);
	return 0;
}

#define MEMCG		"/sys/fs/cgroup/llmq-test"

static int put_str(const char *path, const char *v)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, v, strlen(v)) == (ssize_t)strlen(v);
	close(fd);
	return ok ? 0 : -1;
}

static long get_long(const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtol(buf, NULL, 10) : -1;
}

/* In a cgroup of memory.max 16 MiB: what rings of 4 MiB cost and where they stop. */
static int memcg_child(void)
{
	char pid[32];
	int fds[16], n, i;
	struct llmq_setup s;
	long before, after;

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	CHECK(put_str(MEMCG "/cgroup.procs", pid) == 0);
	before = get_long(MEMCG "/memory.current");
	for (n = 0; n < 16; n++) {
		fds[n] = dev_open();
		CHECK(fds[n] >= 0);
		setup_init(&s, 8, 16, 4u << 20);
		if (ioctl(fds[n], LLMQ_IOC_SETUP, &s) < 0) {
			CHECK(errno == ENOMEM);
			break;
		}
		if (n == 0) {
			after = get_long(MEMCG "/memory.current");
			fprintf(stderr, "memcg: one ring of %u bytes: memory.current %ld -> %ld\n",
				s.map_size, before, after);
			/* Charges come in per-CPU batches of 64 pages: within that. */
			CHECK(after - before >= (long)s.map_size - 64 * 4096);
		}
	}
	fprintf(stderr, "memcg: %d rings of 4 MiB under memory.max 16 MiB, then ENOMEM\n", n);
	CHECK(n >= 1 && n <= 4);
	for (i = 0; i <= n && i < 16; i++)
		close(fds[i]);
	return 0;
}

/*
 * Ring memory is the client's, held by the kernel: charged to the memory
 * cgroup of the process that set the ring up, so memory.max bounds it, and
 * a client that asks past it gets ENOMEM rather than the OOM killer.
 */
static int test_ring_memcg(void)
{
	pid_t pid;

	if (mount("none", "/sys/fs/cgroup", "cgroup2", 0, NULL) && errno != EBUSY)
		CHECK(0);
	CHECK(put_str("/sys/fs/cgroup/cgroup.subtree_control", "+memory") == 0);
	CHECK(mkdir(MEMCG, 0755) == 0 || errno == EEXIST);
	CHECK(put_str(MEMCG "/memory.max", "16M") == 0);
	CHECK(put_str(MEMCG "/memory.swap.max", "0") == 0 || errno == ENOENT);
	pid = fork();
	CHECK(pid >= 0);
	if (!pid)
		_exit(memcg_child() ? 1 : 0);
	/* Exited by itself: not killed by the cgroup's OOM killer. */
	CHECK(wait_child(pid) == 0);
	CHECK(stat_wait("rings", 0, 2000) == 0);
	CHECK(rmdir(MEMCG) == 0);
	return 0;
}

static int test_limits(void)
{
	struct llmq_setup s;
	int fds[9], i;

	CHECK(kmod_unload(100) == 0);
	CHECK(kmod_load("max_clients=8 max_ring_mb=1") == 0);
	for (i = 0; i < 8; i++) {
		fds[i] = client_new(NULL, NULL);
		CHECK(fds[i] >= 0);
	}
	fds[8] = dev_open();
	CHECK(fds[8] >= 0);
	setup_init(&s, 8, 16, 4096);
	CHECK_ERR(ioctl(fds[8], LLMQ_IOC_SETUP, &s), ENOSPC);
	close(fds[0]);
	CHECK(ioctl(fds[8], LLMQ_IOC_SETUP, &s) == 0);
	for (i = 1; i < 9; i++)
		close(fds[i]);
	/* 1 MiB of rings in all. */
	fds[0] = dev_open();
	setup_init(&s, 8, 16, 1 << 20);
	CHECK_ERR(ioctl(fds[0], LLMQ_IOC_SETUP, &s), ENOSPC);
	CHECK(stat_read("refused") == 2);
	CHECK(stat_read("ring_bytes") == 0);
	close(fds[0]);
	CHECK(kmod_unload(100) == 0);
	CHECK(kmod_load("") == 0);
	return 0;
}

/* ---- fuzz ---------------------------------------------------------------- */

static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static uint32_t rnd_size(void)
{
	static const uint32_t interesting[] = {
		0, 1, 2, 3, 4, 8, 16, 64, 1024, 4095, 4096, 4097, 65536, 1 << 20,
		LLMQ_MAX_SQ_ENTRIES, LLMQ_MAX_CQ_ENTRIES, LLMQ_MAX_ARENA, 0x80000000u,
		0xffffffffu,
	};

	if (rnd() & 1)
		return interesting[rnd() % (sizeof(interesting) / sizeof(interesting[0]))];
	return (uint32_t)rnd();
}

#define FUZZ_FDS	8
#define FUZZ_MAPS	8

static int fuzz_loop(unsigned long iters)
{
	static const unsigned int cmds[] = {
		LLMQ_IOC_SETUP, LLMQ_IOC_DOORBELL, LLMQ_IOC_ATTACH, LLMQ_IOC_WAKE,
		_IOWR(LLMQ_IOC_MAGIC, 0x01, struct llmq_attach), _IO(LLMQ_IOC_MAGIC, 0x10),
		_IOR(LLMQ_IOC_MAGIC, 0x11, struct llmq_wake), FIONREAD, 0,
	};
	union {
		struct llmq_setup s;
		struct llmq_attach a;
		struct llmq_wake w;
		unsigned char raw[256];
	} arg;
	struct { void *p; size_t len; } maps[FUZZ_MAPS] = { { 0 } };
	unsigned char buf[512];
	int fds[FUZZ_FDS];
	uint32_t ids[64];
	unsigned long i;
	unsigned int k;

	for (k = 0; k < FUZZ_FDS; k++)
		fds[k] = -1;
	for (i = 0; i < iters; i++) {
		unsigned int f = rnd() % FUZZ_FDS, m = rnd() % FUZZ_MAPS;
		int fd;

		if (fds[f] < 0 || !(rnd() % 64)) {
			if (fds[f] >= 0)
				close(fds[f]);
			fds[f] = open(DEV, O_RDWR | O_CLOEXEC | O_NONBLOCK);
			continue;
		}
		fd = fds[f];
		switch (rnd() % 8) {
		case 0:		/* a valid-looking set-up with random corruption */
			setup_init(&arg.s, 1u << (rnd() % 14), 1u << (rnd() % 18),
				   (uint32_t)(4096 * (1 + rnd() % 16)));
			if (rnd() % 4 == 0)
				arg.raw[rnd() % sizeof(arg.s)] ^= (unsigned char)(1u << (rnd() % 8));
			if (rnd() % 8 == 0)
				arg.s.params.arena_size = rnd_size();
			ioctl(fd, LLMQ_IOC_SETUP, &arg.s);
			break;
		case 1:
			memset(&arg, 0, sizeof(arg));
			arg.a.magic = LLMQ_MAGIC;
			arg.a.version = LLMQ_ABI_VERSION;
			if (rnd() % 4 == 0)
				arg.raw[rnd() % sizeof(arg.a)] = (unsigned char)rnd();
			ioctl(fd, LLMQ_IOC_ATTACH, &arg.a);
			break;
		case 2:
			for (k = 0; k < 64; k++)
				ids[k] = (uint32_t)(rnd() % 40);
			arg.w.ids = rnd() % 8 ? (uintptr_t)ids : rnd();
			arg.w.count = rnd() % 8 ? (uint32_t)(rnd() % 65) : rnd_size();
			arg.w.flags = rnd() % 16 ? 0 : (uint32_t)rnd();
			ioctl(fd, LLMQ_IOC_WAKE, &arg.w);
			break;
		case 3:		/* random commands and random argument bytes */
			for (k = 0; k < sizeof(arg.raw); k++)
				arg.raw[k] = (unsigned char)rnd();
			ioctl(fd, rnd() % 4 ? cmds[rnd() % (sizeof(cmds) / sizeof(cmds[0]))] :
			      (unsigned int)rnd(), rnd() % 8 ? (unsigned long)&arg : rnd());
			break;
		case 4: {	/* mmap at random sizes and offsets */
			size_t len = rnd() % 4 ? 4096 * (1 + rnd() % 24) : rnd_size();
			off_t off = rnd() % 2 ? 0 : rnd() % 2 ?
				    (off_t)LLMQ_RT_MAP_OFF(rnd() % 40) : (off_t)(rnd() & ~4095ULL);
			void *p;

			if (maps[m].p) {
				munmap(maps[m].p, maps[m].len);
				maps[m].p = NULL;
			}
			p = mmap(NULL, len, rnd() % 4 ? PROT_READ | PROT_WRITE :
				 (int)(rnd() % 8), rnd() % 8 ? MAP_SHARED : MAP_PRIVATE, fd, off);
			if (p != MAP_FAILED) {
				maps[m].p = p;
				maps[m].len = len;
				/* Scribble over the header: the kernel must not care. */
				if (rnd() % 2 && mprotect(p, 4096, PROT_READ | PROT_WRITE) == 0)
					memset(p, (int)rnd(), 512);
			}
			break;
		}
		case 5:
			if (maps[m].p) {
				if (rnd() % 2)
					munmap(maps[m].p, maps[m].len);
				else
					mremap(maps[m].p, maps[m].len, maps[m].len * 2, MREMAP_MAYMOVE);
				/* Whatever mremap() did, the old range goes. */
				munmap(maps[m].p, maps[m].len);
				maps[m].p = NULL;
			}
			break;
		case 6:
			read(fd, rnd() % 8 ? (void *)buf : (void *)(uintptr_t)rnd(),
			     rnd() % 2 ? 8 : rnd() % sizeof(buf));
			break;
		case 7:
			for (k = 0; k < 16; k++)
				((uint32_t *)buf)[k] = (uint32_t)(rnd() % 40);
			write(fd, rnd() % 8 ? (void *)buf : (void *)(uintptr_t)rnd(),
			      rnd() % 2 ? 8 : rnd() % 80);
			break;
		}
		if (!(rnd() % 4096)) {
			pid_t kid = fork();

			/* A child inherits fds and maps, then dies abruptly. */
			if (!kid) {
				ioctl(fds[rnd() % FUZZ_FDS], LLMQ_IOC_DOORBELL);
				_exit(0);
			}
			if (kid > 0)
				waitpid(kid, NULL, 0);
		}
	}
	for (k = 0; k < FUZZ_MAPS; k++)
		if (maps[k].p)
			munmap(maps[k].p, maps[k].len);
	for (k = 0; k < FUZZ_FDS; k++)
		if (fds[k] >= 0)
			close(fds[k]);
	return 0;
}

static int test_fuzz(void)
{
	pid_t kids[2];
	int i;

	/*
	 * Its set-ups ask for up to 256 MiB a ring: within the default
	 * max_ring_mb (4096) two processes could pin more than the guest's
	 * 512 MiB and the OOM killer, not the module, would end the test.
	 */
	CHECK(kmod_unload(250) == 0);
	CHECK(kmod_load("max_ring_mb=96") == 0);
	/* Two processes at once, so that clients and runtimes race. */
	for (i = 0; i < 2; i++) {
		kids[i] = fork();
		CHECK(kids[i] >= 0);
		if (!kids[i]) {
			rnd_state += (uint64_t)i * 0x1234567ULL + 1;
			_exit(fuzz_loop(fuzz_iters / 2));
		}
	}
	for (i = 0; i < 2; i++)
		CHECK(wait_child(kids[i]) == 0);
	fprintf(stderr, "fuzz: %lu iterations\n", fuzz_iters);
	CHECK(stat_wait("rings", 0, 2000) == 0);
	CHECK(stat_read("ring_bytes") == 0);
	CHECK(stat_read("runtime_attached") == 0);
	CHECK(kmod_unload(250) == 0);
	CHECK(kmod_load("") == 0);
	return 0;
}

/* Last: the module unloads, and nothing of it is left. */
static int test_final_rmmod(void)
{
	CHECK(kmod_unload(250) == 0);
	CHECK(access(DEV, F_OK) < 0);
	CHECK(access(STATS "rings", F_OK) < 0);
	return 0;
}

/* After every test: nothing left over. */
static int after_test(const char *name)
{
	if (!strcmp(name, "test_final_rmmod"))
		return 0;
	return vm_nothing_left(name, 2000);
}

static const struct vm_test tests[] = {
	VM_TEST(test_setup_validation, 20),
	VM_TEST(test_layout_and_mmap, 20),
	VM_TEST(test_client_io_validation, 20),
	VM_TEST(test_attach_validation, 20),
	VM_TEST(test_event_stream, 20),
	VM_TEST(test_runtime_maps_ring, 20),
	VM_TEST(test_batched_wake, 20),
	VM_TEST(test_sleep_and_wake, 20),
	VM_TEST(test_permissions, 30),
	VM_TEST(test_client_killed, 20),
	VM_TEST(test_runtime_death, 20),
	VM_TEST(test_io_uring_events, 20),
	VM_TEST(test_io_uring_runtime_killed, 30),
	VM_TEST(test_rmmod_busy, 20),
	VM_TEST(test_limits, 20),
	VM_TEST(test_ring_memcg, 20),
	VM_TEST(test_insmod_rmmod_cycles, 60),
	VM_TEST(test_no_leaks, 60),
	VM_TEST(test_fuzz, 120),
	VM_TEST(test_final_rmmod, 20),
};

int main(int argc, char **argv)
{
	int failed;

	if (argc < 2) {
		fprintf(stderr, "usage: %s LLMQ.KO [FUZZ-ITERATIONS]\n", argv[0]);
		return 2;
	}
	ko_path = argv[1];
	if (argc > 2)
		fuzz_iters = strtoul(argv[2], NULL, 10);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (kmod_load("") < 0) {
		perror("finit_module");
		printf("[  FAILED  ] 1 test(s), listed below:\n[  FAILED  ] insmod\n");
		return 1;
	}
	failed = vm_run_tests("llmq.ko", tests, sizeof(tests) / sizeof(tests[0]), after_test);
	return failed ? 1 : 0;
}
