// SPDX-License-Identifier: GPL-2.0
/*
 * llmq.ko: the kernel transport.  /dev/llmq gives every process that opens
 * it a shared-memory ring (include/uapi/linux/llmq.h) and lets one
 * privileged runtime drain all of them: an event stream (client opened,
 * doorbell, client closed) read from the runtime's fd, client rings mapped
 * through that fd, and batched wake-ups of clients.
 *
 * Lifetimes:
 *  - struct llmq_ring (the vmalloc'ed mapping) is reference counted by its
 *    client and by every VMA mapping it, so it outlives whichever side lets
 *    go first;
 *  - struct llmq_client is reference counted by its file and by the client
 *    table, which keeps a closed client until the runtime has read its
 *    CLOSE event (or detaches);
 *  - the runtime is the client whose file attached; when that file is
 *    released every ring is marked LLMQ_RING_DEAD with ECONNRESET and its
 *    client woken.  Requests still queued in the rings wait for the next
 *    runtime, which is sent an OPEN event for every live client.
 *
 * The control plane's generic netlink family is genl.c's; it learns here
 * when the runtime detaches.  Documentation/admin-guide/llmq.rst and
 * Documentation/userspace-api/llmq.rst describe the interface.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pid.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/uio.h>
#include <linux/vmalloc.h>
#include <linux/wait.h>
#include <linux/xarray.h>

#include <uapi/linux/llmq.h>

#include "llmq_internal.h"

static int runtime_gid = -1;
module_param(runtime_gid, int, 0444);
MODULE_PARM_DESC(runtime_gid,
		 "group whose members may attach as the runtime besides CAP_SYS_ADMIN (-1: none)");

static unsigned int max_clients = 4096;
module_param(max_clients, uint, 0644);
MODULE_PARM_DESC(max_clients, "rings that may exist at once (default 4096)");

static unsigned int max_ring_mb = 4096;
module_param(max_ring_mb, uint, 0644);
MODULE_PARM_DESC(max_ring_mb, "MiB of ring memory all clients together may hold (default 4096)");

/* Events read per batch from the pending list. */
#define LLMQ_EV_BATCH	32

enum llmq_role {
	LLMQ_ROLE_NONE,
	LLMQ_ROLE_CLIENT,
	LLMQ_ROLE_RUNTIME,
};

/* Pending event bits of a client (struct llmq_client.events). */
#define LLMQ_PEND_OPEN		BIT(0)
#define LLMQ_PEND_DOORBELL	BIT(1)
#define LLMQ_PEND_CLOSE		BIT(2)

/**
 * struct llmq_ring - one client's shared mapping
 * @ref:	held by the client and by every VMA that maps it
 * @mem:	vmalloc memory, @size bytes, charged to the memory cgroup of
 *		the process that set the ring up
 * @size:	bytes allocated, @map_size rounded up to a page
 * @map_size:	bytes of the layout
 * @params:	geometry the client asked for, kept out of the client's reach
 */
struct llmq_ring {
	struct kref		ref;
	void			*mem;
	size_t			size;
	u32			map_size;
	struct llmq_params	params;
};

/**
 * struct llmq_client - what an open file of /dev/llmq is
 * @ref:	held by the file and, once set up, by the client table
 * @role:	set once under llmq_dev.mutex, from NONE to CLIENT or RUNTIME
 * @id:		client id, from LLMQ_IOC_SETUP on
 * @ring:	the ring, from LLMQ_IOC_SETUP on
 * @pid:	the opener's thread group
 * @uid:	the opener's effective uid
 * @wait:	the client sleeps here for wake-ups
 * @wakes:	wake-ups not read yet
 * @node:	in llmq_dev.pending while @events is not empty
 * @events:	LLMQ_PEND_* not read yet by the runtime (llmq_dev.lock)
 * @announced:	the runtime has read this client's OPEN (llmq_dev.lock)
 * @closed:	the client's file is gone (llmq_dev.lock)
 * @in_table:	the table holds a reference (llmq_dev.lock)
 * @rcu:	frees the client after lock-free lookups are done with it
 */
struct llmq_client {
	struct kref		ref;
	enum llmq_role		role;
	u32			id;
	struct llmq_ring	*ring;
	struct pid		*pid;
	kuid_t			uid;
	wait_queue_head_t	wait;
	atomic64_t		wakes;
	struct list_head	node;
	u32			events;
	bool			announced;
	bool			closed;
	bool			in_table;
	struct rcu_head		rcu;
};

/**
 * struct llmq_dev - the device
 * @mutex:	serialises set-up, attach, detach and table removal by close
 * @lock:	protects @runtime, @pending and the clients' event state
 * @runtime:	the attached runtime, or NULL
 * @pending:	clients with events the runtime has not read
 * @rt_wait:	the runtime sleeps here for events
 * @clients:	id -> client, every client with a ring
 * @ring_bytes:	ring memory allocated
 * @nr_rings:	rings allocated
 * @opens:	files opened
 * @setups:	rings set up
 * @doorbells:	doorbells rung
 * @wakeups:	client wake-ups by the runtime
 * @events:	events read by the runtime
 * @attaches:	runtimes attached
 * @detaches:	runtimes gone
 * @dead_marks:	rings marked LLMQ_RING_DEAD by a runtime's departure
 * @refused:	set-ups refused for lack of memory or room
 */
struct llmq_dev {
	struct mutex		mutex;	/* set-up, attach, detach, removal by close */
	spinlock_t		lock;	/* @runtime, @pending, clients' event state */
	struct llmq_client	*runtime;
	struct list_head	pending;
	wait_queue_head_t	rt_wait;
	struct xarray		clients;
	atomic64_t		ring_bytes;
	atomic_t		nr_rings;
	atomic64_t		opens;
	atomic64_t		setups;
	atomic64_t		doorbells;
	atomic64_t		wakeups;
	atomic64_t		events;
	atomic64_t		attaches;
	atomic64_t		detaches;
	atomic64_t		dead_marks;
	atomic64_t		refused;
};

static struct llmq_dev llmq = {
	.mutex		= __MUTEX_INITIALIZER(llmq.mutex),
	.lock		= __SPIN_LOCK_UNLOCKED(llmq.lock),
	.pending	= LIST_HEAD_INIT(llmq.pending),
	.rt_wait	= __WAIT_QUEUE_HEAD_INITIALIZER(llmq.rt_wait),
	.clients	= XARRAY_INIT(llmq.clients, XA_FLAGS_ALLOC1),
};

/* ---- rings ---------------------------------------------------------------- */

static void llmq_ring_release(struct kref *ref)
{
	struct llmq_ring *ring = container_of(ref, struct llmq_ring, ref);

	atomic64_sub(ring->size, &llmq.ring_bytes);
	atomic_dec(&llmq.nr_rings);
	vfree(ring->mem);
	kfree(ring);
}

static void llmq_ring_put(struct llmq_ring *ring)
{
	kref_put(&ring->ref, llmq_ring_release);
}

/* The layout rules of include/uapi/linux/llmq.h: 0, or -EINVAL. */
static int llmq_layout(const struct llmq_params *p, u32 *sq_off, u32 *cq_off,
		       u32 *arena_off, u32 *map_size)
{
	u64 sq, cq, ar;
	unsigned int i;

	if (p->flags)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(p->resv); i++)
		if (p->resv[i])
			return -EINVAL;
	if (!is_power_of_2(p->sq_entries) || p->sq_entries < LLMQ_MIN_ENTRIES ||
	    p->sq_entries > LLMQ_MAX_SQ_ENTRIES)
		return -EINVAL;
	if (!is_power_of_2(p->cq_entries) || p->cq_entries < p->sq_entries ||
	    p->cq_entries > LLMQ_MAX_CQ_ENTRIES)
		return -EINVAL;
	if (p->arena_size < LLMQ_MIN_ARENA || p->arena_size > LLMQ_MAX_ARENA ||
	    p->arena_size % 4096)
		return -EINVAL;
	sq = LLMQ_HDR_SIZE;
	cq = ALIGN(sq + (u64)p->sq_entries * sizeof(struct llmq_sqe), 4096);
	ar = ALIGN(cq + (u64)p->cq_entries * sizeof(struct llmq_cqe), 4096);
	if (ar + p->arena_size > U32_MAX)
		return -EINVAL;
	*sq_off = sq;
	*cq_off = cq;
	*arena_off = ar;
	*map_size = ar + p->arena_size;
	return 0;
}

/* A zeroed ring with its header laid out, or an ERR_PTR(). */
static struct llmq_ring *llmq_ring_alloc(const struct llmq_params *p)
{
	u32 sq_off, cq_off, arena_off, map_size;
	struct llmq_ring_hdr *hdr;
	struct llmq_ring *ring;
	u64 limit, bytes;
	unsigned int n;
	int err;

	err = llmq_layout(p, &sq_off, &cq_off, &arena_off, &map_size);
	if (err)
		return ERR_PTR(err);
	ring = kzalloc(sizeof(*ring), GFP_KERNEL);
	if (!ring)
		return ERR_PTR(-ENOMEM);
	kref_init(&ring->ref);
	ring->size = PAGE_ALIGN(map_size);
	ring->map_size = map_size;
	ring->params = *p;
	limit = (u64)READ_ONCE(max_ring_mb) << 20;
	n = atomic_inc_return(&llmq.nr_rings);
	bytes = atomic64_add_return(ring->size, &llmq.ring_bytes);
	if (n > READ_ONCE(max_clients) || bytes > limit) {
		err = -ENOSPC;
		goto undo;
	}
	/*
	 * Ring memory is the client's, though the kernel holds it: charged to
	 * its memory cgroup (GFP_KERNEL_ACCOUNT), so memory.max bounds what a
	 * group of clients may pin, and failing rather than calling the OOM
	 * killer when there is none to spare (__GFP_RETRY_MAYFAIL): a client
	 * asking too much gets ENOMEM, nobody is killed for it.
	 */
	ring->mem = __vmalloc(ring->size, GFP_KERNEL_ACCOUNT | __GFP_ZERO | __GFP_RETRY_MAYFAIL);
	if (!ring->mem) {
		err = -ENOMEM;
		goto undo;
	}
	hdr = ring->mem;
	hdr->magic = LLMQ_MAGIC;
	hdr->version = LLMQ_ABI_VERSION;
	hdr->sq_entries = p->sq_entries;
	hdr->cq_entries = p->cq_entries;
	hdr->arena_size = p->arena_size;
	hdr->sq_off = sq_off;
	hdr->cq_off = cq_off;
	hdr->arena_off = arena_off;
	hdr->map_size = map_size;
	return ring;
undo:
	/* Both counters were raised, whichever refused. */
	atomic64_sub(ring->size, &llmq.ring_bytes);
	atomic_dec(&llmq.nr_rings);
	atomic64_inc(&llmq.refused);
	kfree(ring);
	return ERR_PTR(err);
}

/*
 * Mark a ring dead for its client: no runtime serves it.  A runtime that
 * marked it dead itself (an orderly shutdown) said why; keep its errno.
 * Store the errno before the flag, then a full barrier before the wake-up,
 * the ABI's rule.
 */
static void llmq_ring_mark_dead(struct llmq_ring *ring, u32 err)
{
	struct llmq_ring_hdr *hdr = ring->mem;
	u32 flags = READ_ONCE(hdr->rt_flags);

	if (!(flags & LLMQ_RING_DEAD) || !READ_ONCE(hdr->rt_errno))
		WRITE_ONCE(hdr->rt_errno, err);
	/* The client reads rt_errno after it sees the flag. */
	smp_wmb();
	WRITE_ONCE(hdr->rt_flags, flags | LLMQ_RING_DEAD | LLMQ_RING_NEED_WAKEUP);
	/* Flag stores before the wake-up's look at the sleeper. */
	smp_mb();
}

/* A new runtime serves the ring: it is no longer dead. */
static void llmq_ring_revive(struct llmq_ring *ring)
{
	struct llmq_ring_hdr *hdr = ring->mem;

	WRITE_ONCE(hdr->rt_flags, (READ_ONCE(hdr->rt_flags) & ~LLMQ_RING_DEAD) |
		   LLMQ_RING_NEED_WAKEUP);
	WRITE_ONCE(hdr->rt_errno, 0);
	/* Flags visible before the runtime hears of the ring. */
	smp_mb();
}

/* ---- clients ----------------------------------------------------------------- */

static void llmq_client_release(struct kref *ref)
{
	struct llmq_client *c = container_of(ref, struct llmq_client, ref);

	if (c->ring)
		llmq_ring_put(c->ring);
	put_pid(c->pid);
	kfree_rcu(c, rcu);
}

static void llmq_client_put(struct llmq_client *c)
{
	kref_put(&c->ref, llmq_client_release);
}

/*
 * The role is set once, after the ring and id it implies: readers outside
 * llmq.mutex pair this acquire with that release and then use them.
 */
static enum llmq_role llmq_role(struct llmq_client *c)
{
	/* Pairs with llmq_set_role(). */
	return smp_load_acquire(&c->role);
}

static void llmq_set_role(struct llmq_client *c, enum llmq_role role)
{
	/* Pairs with llmq_role(): the ring and id are visible first. */
	smp_store_release(&c->role, role);
}

/* Drop a client from the table; the caller has cleared @in_table. */
static void llmq_table_remove(struct llmq_client *c)
{
	xa_erase(&llmq.clients, c->id);
	llmq_client_put(c);
}

static void llmq_wake_client(struct llmq_client *c)
{
	atomic64_inc(&c->wakes);
	wake_up_interruptible_poll(&c->wait, EPOLLIN | EPOLLRDNORM);
}

/* Queue @bits for the runtime.  Called with llmq.lock held. */
static void llmq_queue_event(struct llmq_client *c, u32 bits)
{
	if (!llmq.runtime)
		return;
	c->events |= bits;
	if (list_empty(&c->node))
		list_add_tail(&c->node, &llmq.pending);
	wake_up_interruptible_poll(&llmq.rt_wait, EPOLLIN | EPOLLRDNORM);
}

static int llmq_open(struct inode *inode, struct file *file)
{
	struct llmq_client *c;
	int err;

	c = kzalloc(sizeof(*c), GFP_KERNEL);
	if (!c)
		return -ENOMEM;
	err = stream_open(inode, file);
	if (err) {
		kfree(c);
		return err;
	}
	kref_init(&c->ref);
	init_waitqueue_head(&c->wait);
	INIT_LIST_HEAD(&c->node);
	c->pid = get_pid(task_tgid(current));
	c->uid = file->f_cred->euid;
	file->private_data = c;
	/* read() and write() honour IOCB_NOWAIT: io_uring polls, not blocks. */
	file->f_mode |= FMODE_NOWAIT;
	atomic64_inc(&llmq.opens);
	return 0;
}

static void llmq_detach(struct llmq_client *rt);

static int llmq_release(struct inode *inode, struct file *file)
{
	struct llmq_client *c = file->private_data;
	bool remove = false;

	mutex_lock(&llmq.mutex);
	if (c->role == LLMQ_ROLE_RUNTIME) {
		llmq_detach(c);
	} else if (c->role == LLMQ_ROLE_CLIENT) {
		spin_lock(&llmq.lock);
		c->closed = true;
		if (llmq.runtime && c->announced) {
			/* The runtime drops the table's reference on reading it. */
			llmq_queue_event(c, LLMQ_PEND_CLOSE);
		} else {
			/* The runtime never heard of it: forget it silently. */
			list_del_init(&c->node);
			c->events = 0;
			remove = c->in_table;
			c->in_table = false;
		}
		spin_unlock(&llmq.lock);
		if (remove)
			llmq_table_remove(c);
	}
	mutex_unlock(&llmq.mutex);
	llmq_client_put(c);
	return 0;
}

static int llmq_check_magic(u32 magic, u32 version)
{
	if (magic != LLMQ_MAGIC)
		return -EPROTO;
	if (version != LLMQ_ABI_VERSION)
		return -EPROTONOSUPPORT;
	return 0;
}

static int llmq_ioc_setup(struct llmq_client *c, void __user *arg)
{
	struct llmq_setup s;
	struct llmq_ring *ring;
	unsigned int i;
	u32 id;
	int err;

	if (copy_from_user(&s, arg, sizeof(s)))
		return -EFAULT;
	err = llmq_check_magic(s.magic, s.version);
	if (err)
		return err;
	if (s.flags || s.client_id || s.map_size)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(s.resv); i++)
		if (s.resv[i])
			return -EINVAL;

	mutex_lock(&llmq.mutex);
	if (c->role != LLMQ_ROLE_NONE) {
		err = c->role == LLMQ_ROLE_CLIENT ? -EBUSY : -EINVAL;
		goto out;
	}
	ring = llmq_ring_alloc(&s.params);
	if (IS_ERR(ring)) {
		err = PTR_ERR(ring);
		goto out;
	}
	/*
	 * No runtime yet: the client learns so from the ring (ENOTCONN) instead
	 * of sleeping for ever; what it queues waits for the first runtime.
	 * Runtimes come and go under llmq.mutex, which we hold.
	 */
	if (!llmq.runtime)
		llmq_ring_mark_dead(ring, ENOTCONN);
	/* Whoever finds the client in the table finds its ring. */
	c->ring = ring;
	err = xa_alloc(&llmq.clients, &id, c, XA_LIMIT(1, S32_MAX), GFP_KERNEL);
	if (err)
		goto free_ring;
	s.client_id = id;
	s.map_size = ring->map_size;
	if (copy_to_user(arg, &s, sizeof(s))) {
		err = -EFAULT;
		goto erase;
	}
	kref_get(&c->ref);	/* the table's */
	c->id = id;
	spin_lock(&llmq.lock);
	c->in_table = true;
	llmq_set_role(c, LLMQ_ROLE_CLIENT);
	llmq_queue_event(c, LLMQ_PEND_OPEN | LLMQ_PEND_DOORBELL);
	spin_unlock(&llmq.lock);
	atomic64_inc(&llmq.setups);
	mutex_unlock(&llmq.mutex);
	return 0;
erase:
	xa_erase(&llmq.clients, id);
free_ring:
	c->ring = NULL;
	llmq_ring_put(ring);
out:
	mutex_unlock(&llmq.mutex);
	return err;
}

static int llmq_doorbell(struct llmq_client *c)
{
	if (llmq_role(c) != LLMQ_ROLE_CLIENT)
		return -ENXIO;
	spin_lock(&llmq.lock);
	llmq_queue_event(c, LLMQ_PEND_DOORBELL);
	spin_unlock(&llmq.lock);
	atomic64_inc(&llmq.doorbells);
	return 0;
}

static bool llmq_may_attach(void)
{
	if (capable(CAP_SYS_ADMIN))
		return true;
	if (runtime_gid >= 0) {
		kgid_t gid = make_kgid(&init_user_ns, runtime_gid);

		return gid_valid(gid) && in_group_p(gid);
	}
	return false;
}

static int llmq_ioc_attach(struct llmq_client *c, void __user *arg)
{
	struct llmq_client *cl;
	struct llmq_attach a;
	unsigned long idx;
	unsigned int i;
	int err;

	if (copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	err = llmq_check_magic(a.magic, a.version);
	if (err)
		return err;
	if (a.flags)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(a.resv); i++)
		if (a.resv[i])
			return -EINVAL;
	if (!llmq_may_attach())
		return -EPERM;

	mutex_lock(&llmq.mutex);
	if (c->role == LLMQ_ROLE_RUNTIME) {
		err = -EALREADY;
		goto out;
	}
	if (c->role != LLMQ_ROLE_NONE) {
		err = -EINVAL;
		goto out;
	}
	spin_lock(&llmq.lock);
	if (llmq.runtime) {
		spin_unlock(&llmq.lock);
		err = -EBUSY;
		goto out;
	}
	/*
	 * Under the mutex no client joins or leaves the table.  Revive every
	 * ring before the runtime is published, so that whoever sees it
	 * attached (runtime_attached in sysfs) finds no ring still dead; then
	 * announce every client, with a doorbell, so that requests queued
	 * while no runtime was there are found.
	 */
	xa_for_each(&llmq.clients, idx, cl)
		llmq_ring_revive(cl->ring);
	llmq_set_role(c, LLMQ_ROLE_RUNTIME);
	/* Pairs with runtime_attached_show(): the revived flags come first. */
	smp_store_release(&llmq.runtime, c);
	xa_for_each(&llmq.clients, idx, cl)
		llmq_queue_event(cl, LLMQ_PEND_OPEN | LLMQ_PEND_DOORBELL);
	spin_unlock(&llmq.lock);
	atomic64_inc(&llmq.attaches);
out:
	mutex_unlock(&llmq.mutex);
	return err;
}

/**
 * llmq_runtime_is_current() - is the caller the attached runtime?
 *
 * Context: process; takes llmq.lock.  genl.c lets only the runtime's
 * process register for relayed control requests: the one that opened the
 * file attached as the runtime.
 * Return: true if a runtime is attached and current is of its process.
 */
bool llmq_runtime_is_current(void)
{
	bool ret;

	spin_lock(&llmq.lock);
	ret = llmq.runtime && llmq.runtime->pid == task_tgid(current);
	spin_unlock(&llmq.lock);
	return ret;
}

/* The runtime's file is gone.  Called with llmq.mutex held. */
static void llmq_detach(struct llmq_client *rt)
{
	struct llmq_client *c, *tmp;
	unsigned long idx;
	bool remove;

	spin_lock(&llmq.lock);
	llmq.runtime = NULL;
	list_for_each_entry_safe(c, tmp, &llmq.pending, node) {
		list_del_init(&c->node);
		c->events = 0;
	}
	spin_unlock(&llmq.lock);
	/* Relayed requests waiting for it fail now, not at their timeout. */
	llmq_genl_runtime_detached();

	xa_for_each(&llmq.clients, idx, c) {
		spin_lock(&llmq.lock);
		c->announced = false;
		remove = c->closed && c->in_table;
		if (remove)
			c->in_table = false;
		spin_unlock(&llmq.lock);
		if (remove) {
			llmq_table_remove(c);
			continue;
		}
		llmq_ring_mark_dead(c->ring, ECONNRESET);
		llmq_wake_client(c);
		atomic64_inc(&llmq.dead_marks);
	}
	atomic64_inc(&llmq.detaches);
}

/* Wake the clients named by @n ids in @ids; returns how many were woken. */
static int llmq_wake_ids(const u32 *ids, unsigned int n)
{
	struct llmq_client *c;
	unsigned int i;
	int woken = 0;

	rcu_read_lock();
	for (i = 0; i < n; i++) {
		c = xa_load(&llmq.clients, ids[i]);
		if (!c || READ_ONCE(c->closed))
			continue;
		llmq_wake_client(c);
		woken++;
	}
	rcu_read_unlock();
	atomic64_add(woken, &llmq.wakeups);
	return woken;
}

static int llmq_ioc_wake(struct llmq_client *c, void __user *arg)
{
	u32 ids[64];
	struct llmq_wake w;
	const u32 __user *uids;
	unsigned int done, n;
	int woken = 0;

	if (llmq_role(c) != LLMQ_ROLE_RUNTIME)
		return -EPERM;
	if (copy_from_user(&w, arg, sizeof(w)))
		return -EFAULT;
	if (w.flags)
		return -EINVAL;
	if (w.count > LLMQ_WAKE_MAX)
		return -E2BIG;
	uids = u64_to_user_ptr(w.ids);
	for (done = 0; done < w.count; done += n) {
		n = min_t(unsigned int, w.count - done, ARRAY_SIZE(ids));
		if (copy_from_user(ids, uids + done, n * sizeof(u32)))
			return woken ? woken : -EFAULT;
		woken += llmq_wake_ids(ids, n);
	}
	return woken;
}

static long llmq_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct llmq_client *c = file->private_data;
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case LLMQ_IOC_SETUP:
		return llmq_ioc_setup(c, uarg);
	case LLMQ_IOC_DOORBELL:
		return llmq_doorbell(c);
	case LLMQ_IOC_ATTACH:
		return llmq_ioc_attach(c, uarg);
	case LLMQ_IOC_WAKE:
		return llmq_ioc_wake(c, uarg);
	default:
		return -ENOTTY;
	}
}

/* ---- read, write, poll ------------------------------------------------------- */

/* Fill @ev from the pending list; closed clients go to @gone. */
static unsigned int llmq_take_events(struct llmq_event *ev, unsigned int max,
				     struct list_head *gone)
{
	struct llmq_client *c;
	unsigned int n = 0;
	u32 bits;

	spin_lock(&llmq.lock);
	while (n < max && !list_empty(&llmq.pending)) {
		c = list_first_entry(&llmq.pending, struct llmq_client, node);
		bits = c->events;
		memset(&ev[n], 0, sizeof(ev[n]));
		ev[n].client_id = c->id;
		if (bits & LLMQ_PEND_OPEN) {
			const struct llmq_params *p = &c->ring->params;

			ev[n].type = LLMQ_EV_OPEN;
			ev[n].pid = pid_vnr(c->pid);
			ev[n].uid = from_kuid_munged(current_user_ns(), c->uid);
			ev[n].sq_entries = p->sq_entries;
			ev[n].cq_entries = p->cq_entries;
			ev[n].arena_size = p->arena_size;
			ev[n].map_size = c->ring->map_size;
			c->events &= ~LLMQ_PEND_OPEN;
			c->announced = true;
		} else if (bits & LLMQ_PEND_DOORBELL) {
			ev[n].type = LLMQ_EV_DOORBELL;
			c->events &= ~LLMQ_PEND_DOORBELL;
		} else {
			ev[n].type = LLMQ_EV_CLOSE;
			c->events = 0;
			if (c->in_table) {
				c->in_table = false;
				list_move_tail(&c->node, gone);
				n++;
				continue;
			}
		}
		n++;
		if (!c->events)
			list_del_init(&c->node);
	}
	spin_unlock(&llmq.lock);
	return n;
}

static ssize_t llmq_read_events(struct kiocb *iocb, struct iov_iter *to)
{
	struct file *file = iocb->ki_filp;
	struct llmq_event ev[LLMQ_EV_BATCH];
	struct llmq_client *c, *tmp;
	size_t count = iov_iter_count(to);
	unsigned int n;
	LIST_HEAD(gone);
	int err;

	if (count < sizeof(ev[0]))
		return -EINVAL;
	for (;;) {
		n = llmq_take_events(ev, min_t(size_t, count / sizeof(ev[0]),
					       ARRAY_SIZE(ev)), &gone);
		if (n)
			break;
		if ((iocb->ki_flags & IOCB_NOWAIT) || (file->f_flags & O_NONBLOCK))
			return -EAGAIN;
		err = wait_event_interruptible(llmq.rt_wait,
					       !list_empty_careful(&llmq.pending));
		if (err)
			return err;
	}
	list_for_each_entry_safe(c, tmp, &gone, node) {
		list_del_init(&c->node);
		llmq_table_remove(c);
	}
	atomic64_add(n, &llmq.events);
	/* Events copied to a bad buffer are lost: the runtime's own bug. */
	if (copy_to_iter(ev, n * sizeof(ev[0]), to) != n * sizeof(ev[0]))
		return -EFAULT;
	return n * sizeof(ev[0]);
}

static ssize_t llmq_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	struct file *file = iocb->ki_filp;
	struct llmq_client *c = file->private_data;
	enum llmq_role role = llmq_role(c);
	u64 v;
	int err;

	if (role == LLMQ_ROLE_RUNTIME)
		return llmq_read_events(iocb, to);
	if (role != LLMQ_ROLE_CLIENT)
		return -ENXIO;
	if (iov_iter_count(to) < sizeof(v))
		return -EINVAL;
	for (;;) {
		v = atomic64_xchg(&c->wakes, 0);
		if (v)
			break;
		if ((iocb->ki_flags & IOCB_NOWAIT) || (file->f_flags & O_NONBLOCK))
			return -EAGAIN;
		err = wait_event_interruptible(c->wait, atomic64_read(&c->wakes));
		if (err)
			return err;
	}
	if (copy_to_iter(&v, sizeof(v), to) != sizeof(v)) {
		/* Not read after all: keep it for the next reader. */
		atomic64_add(v, &c->wakes);
		return -EFAULT;
	}
	return sizeof(v);
}

static ssize_t llmq_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct llmq_client *c = iocb->ki_filp->private_data;
	size_t count = iov_iter_count(from);
	enum llmq_role role = llmq_role(c);
	u32 ids[64];
	size_t done;
	unsigned int n;
	u64 v;
	int err;

	if (role == LLMQ_ROLE_RUNTIME) {
		/* A batch of client ids to wake. */
		if (!count || count % sizeof(u32) || count > LLMQ_WAKE_MAX * sizeof(u32))
			return -EINVAL;
		for (done = 0; done < count; done += n * sizeof(u32)) {
			n = min_t(size_t, (count - done) / sizeof(u32), ARRAY_SIZE(ids));
			if (!copy_from_iter_full(ids, n * sizeof(u32), from))
				return done ? done : -EFAULT;
			llmq_wake_ids(ids, n);
		}
		return count;
	}
	if (role != LLMQ_ROLE_CLIENT)
		return -ENXIO;
	if (count != sizeof(v))
		return -EINVAL;
	if (!copy_from_iter_full(&v, sizeof(v), from))
		return -EFAULT;
	err = llmq_doorbell(c);
	return err ? err : sizeof(v);
}

static __poll_t llmq_poll(struct file *file, poll_table *wait)
{
	struct llmq_client *c = file->private_data;
	__poll_t mask = 0;

	switch (llmq_role(c)) {
	case LLMQ_ROLE_RUNTIME:
		poll_wait(file, &llmq.rt_wait, wait);
		if (!list_empty_careful(&llmq.pending))
			mask |= EPOLLIN | EPOLLRDNORM;
		mask |= EPOLLOUT | EPOLLWRNORM;
		break;
	case LLMQ_ROLE_CLIENT:
		poll_wait(file, &c->wait, wait);
		if (atomic64_read(&c->wakes))
			mask |= EPOLLIN | EPOLLRDNORM;
		mask |= EPOLLOUT | EPOLLWRNORM;
		break;
	default:
		mask = EPOLLERR;
		break;
	}
	return mask;
}

/* ---- mmap -------------------------------------------------------------------- */

static void llmq_vm_open(struct vm_area_struct *vma)
{
	struct llmq_ring *ring = vma->vm_private_data;

	kref_get(&ring->ref);
}

static void llmq_vm_close(struct vm_area_struct *vma)
{
	llmq_ring_put(vma->vm_private_data);
}

static const struct vm_operations_struct llmq_vm_ops = {
	.open	= llmq_vm_open,
	.close	= llmq_vm_close,
};

/* The ring @pgoff names for @c, with a reference, or an ERR_PTR(). */
static struct llmq_ring *llmq_mmap_ring(struct llmq_client *c, unsigned long pgoff)
{
	const unsigned int shift = LLMQ_RT_MAP_SHIFT - PAGE_SHIFT;
	struct llmq_ring *ring = NULL;
	struct llmq_client *cl;
	unsigned long id;

	switch (llmq_role(c)) {
	case LLMQ_ROLE_CLIENT:
		if (pgoff)
			return ERR_PTR(-EACCES);
		kref_get(&c->ring->ref);
		return c->ring;
	case LLMQ_ROLE_RUNTIME:
		id = pgoff >> shift;
		if (!id || pgoff & ((1UL << shift) - 1) || id > S32_MAX)
			return ERR_PTR(-EINVAL);
		xa_lock(&llmq.clients);
		cl = xa_load(&llmq.clients, id);
		if (cl) {
			ring = cl->ring;
			kref_get(&ring->ref);
		}
		xa_unlock(&llmq.clients);
		return ring ? ring : ERR_PTR(-ENOENT);
	default:
		return ERR_PTR(pgoff ? -EACCES : -ENXIO);
	}
}

/*
 * Map @ring's pages into @vma, which is exactly its size.  Page by page:
 * remap_vmalloc_range() takes only vmalloc_user() memory, which cannot be
 * charged to a memory cgroup.
 */
static int llmq_map_pages(struct vm_area_struct *vma, struct llmq_ring *ring)
{
	unsigned long off;
	int err;

	for (off = 0; off < ring->size; off += PAGE_SIZE) {
		err = vm_insert_page(vma, vma->vm_start + off,
				     vmalloc_to_page((u8 *)ring->mem + off));
		if (err)
			return err;
	}
	return 0;
}

static int llmq_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct llmq_client *c = file->private_data;
	struct llmq_ring *ring;
	int err;

	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (vma->vm_flags & VM_EXEC)
		return -EPERM;
	ring = llmq_mmap_ring(c, vma->vm_pgoff);
	if (IS_ERR(ring))
		return PTR_ERR(ring);
	if (vma->vm_end - vma->vm_start != ring->size) {
		err = -EINVAL;
		goto fail;
	}
	/* No mprotect(PROT_EXEC) later; no mremap() growth (VM_DONTEXPAND). */
	vma->vm_flags &= ~VM_MAYEXEC;
	vma->vm_flags |= VM_DONTEXPAND | VM_DONTDUMP;
	err = llmq_map_pages(vma, ring);
	if (err)
		goto fail;
	vma->vm_private_data = ring;
	vma->vm_ops = &llmq_vm_ops;
	return 0;
fail:
	llmq_ring_put(ring);
	return err;
}

static const struct file_operations llmq_fops = {
	.owner		= THIS_MODULE,
	.open		= llmq_open,
	.release	= llmq_release,
	.read_iter	= llmq_read_iter,
	.write_iter	= llmq_write_iter,
	.poll		= llmq_poll,
	.unlocked_ioctl	= llmq_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.mmap		= llmq_mmap,
	.llseek		= no_llseek,
};

/* ---- counters in sysfs (/sys/class/misc/llmq/) ---------------------------- */

#define LLMQ_ATTR64(name, field)						\
static ssize_t name##_show(struct device *dev,					\
			   struct device_attribute *attr, char *buf)		\
{										\
	return sysfs_emit(buf, "%lld\n", (long long)atomic64_read(&llmq.field));\
}										\
static DEVICE_ATTR_RO(name)

LLMQ_ATTR64(ring_bytes, ring_bytes);
LLMQ_ATTR64(opens, opens);
LLMQ_ATTR64(setups, setups);
LLMQ_ATTR64(doorbells, doorbells);
LLMQ_ATTR64(wakeups, wakeups);
LLMQ_ATTR64(events, events);
LLMQ_ATTR64(attaches, attaches);
LLMQ_ATTR64(detaches, detaches);
LLMQ_ATTR64(dead_marks, dead_marks);
LLMQ_ATTR64(refused, refused);

static ssize_t rings_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&llmq.nr_rings));
}
static DEVICE_ATTR_RO(rings);

static ssize_t runtime_attached_show(struct device *dev, struct device_attribute *attr,
				     char *buf)
{
	/* Pairs with llmq_ioc_attach(): attached means every ring revived. */
	return sysfs_emit(buf, "%d\n", smp_load_acquire(&llmq.runtime) ? 1 : 0);
}
static DEVICE_ATTR_RO(runtime_attached);

static struct attribute *llmq_attrs[] = {
	&dev_attr_rings.attr,
	&dev_attr_ring_bytes.attr,
	&dev_attr_opens.attr,
	&dev_attr_setups.attr,
	&dev_attr_doorbells.attr,
	&dev_attr_wakeups.attr,
	&dev_attr_events.attr,
	&dev_attr_attaches.attr,
	&dev_attr_detaches.attr,
	&dev_attr_dead_marks.attr,
	&dev_attr_refused.attr,
	&dev_attr_runtime_attached.attr,
	NULL,
};

static const struct attribute_group llmq_stats_group = {
	.name	= "stats",
	.attrs	= llmq_attrs,
};

static const struct attribute_group *llmq_groups[] = {
	&llmq_stats_group,
	NULL,
};

static struct miscdevice llmq_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "llmq",
	.fops	= &llmq_fops,
	.groups	= llmq_groups,
	.mode	= 0660,
};

static int __init llmq_init(void)
{
	int err;

	/* The family first: a runtime may register as soon as it attaches. */
	err = llmq_genl_init();
	if (err) {
		pr_err("cannot register the generic netlink family: %d\n", err);
		return err;
	}
	err = misc_register(&llmq_misc);
	if (err) {
		pr_err("cannot register /dev/llmq: %d\n", err);
		goto genl;
	}
	return 0;
genl:
	llmq_genl_exit();
	return err;
}

static void __exit llmq_exit(void)
{
	misc_deregister(&llmq_misc);
	llmq_genl_exit();
	/* Every file held a module reference: nothing can be left. */
	WARN_ON(!xa_empty(&llmq.clients));
	WARN_ON(atomic_read(&llmq.nr_rings));
	xa_destroy(&llmq.clients);
	/* Clients are freed after an RCU grace period. */
	rcu_barrier();
}

module_init(llmq_init);
module_exit(llmq_exit);

MODULE_AUTHOR("llmq developers");
MODULE_DESCRIPTION("llmq: shared-memory LLM request rings served by one runtime");
MODULE_LICENSE("GPL");
